//! The `vltava` binary: the server and (in later issues) the command-line tools.

mod cli;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "vltava",
    version,
    about = "A Kafka-compatible event streaming platform in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker (and metadata controller) node.
    Server(cli::server::ServerArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => cli::server::run(args),
    }
}
