//! The `vltava` binary: the server and the command-line tools.
use clap::Parser;

#[derive(Parser)]
#[command(name = "vltava", version, about = "A Kafka-compatible event streaming platform in one binary")]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    println!("vltava {}", env!("CARGO_PKG_VERSION"));
    Ok(())
}
