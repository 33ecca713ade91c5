//! The `vltava` binary: the server and the command-line tools that talk to a cluster (through
//! rdkafka, plus kafka-protocol for the requests rdkafka does not expose).

mod cli;
mod metrics_endpoint;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vltava",
    version,
    about = "A Kafka-compatible event streaming platform in one binary",
    after_help = "Examples:\n  vltava server --config server.properties\n  \
        vltava topic create orders --partitions 6\n  vltava produce orders < events.txt\n  \
        vltava consume orders --group billing --from-beginning"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (and metadata controller) node.
    #[command(after_help = "Examples:\n  vltava server\n  \
        vltava server --config /etc/vltava/server.properties --override log.retention.hours=1")]
    Server(cli::server::ServerArgs),
    /// Create, list, describe, delete topics; add partitions.
    Topic(cli::topic::TopicArgs),
    /// Send records to a topic, one per line of stdin or a file.
    Produce(cli::produce::ProduceArgs),
    /// Print records from a topic.
    Consume(cli::consume::ConsumeArgs),
    /// Show or change topic and broker configs.
    Config(cli::config::ConfigArgs),
    /// List, describe, delete consumer groups; reset their offsets.
    Group(cli::group::GroupArgs),
    /// Nodes, controller and API versions.
    Cluster(cli::cluster::ClusterArgs),
    /// Load generators: producer and consumer throughput, end-to-end latency.
    Bench(cli::bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // One line, as for every other error; clap's usage block is one --help away.
            let message = e.to_string();
            let first = message.lines().next().unwrap_or("error: bad arguments");
            eprintln!("{first} (see --help)");
            return ExitCode::from(2);
        }
    };
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` joins the context chain on one line: "creating topic: Broker: ...".
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    let client =
        |future: std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>>>>| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(future)
        };
    match command {
        Command::Server(args) => cli::server::run(args),
        Command::Topic(args) => client(Box::pin(cli::topic::run(args))),
        Command::Produce(args) => cli::produce::run(args),
        Command::Consume(args) => client(Box::pin(cli::consume::run(args))),
        Command::Config(args) => client(Box::pin(cli::config::run(args))),
        Command::Group(args) => client(Box::pin(cli::group::run(args))),
        Command::Cluster(args) => cli::cluster::run(args),
        Command::Bench(args) => cli::bench::run(args),
    }
}
