//! `vltava cluster info`: cluster id, controller, nodes (DescribeCluster) and the API versions
//! the contacted broker serves (ApiVersions). rdkafka hides both, so this goes through
//! kafka-protocol.

use anyhow::bail;
use clap::{Args, Subcommand};
use kafka_protocol::messages::{ApiKey, DescribeClusterRequest};

use super::client::ClientArgs;
use super::output::table;

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Nodes, controller and the Kafka API versions the broker serves.
    #[command(after_help = "Example:\n  vltava cluster info --bootstrap-server 10.0.0.1:9092")]
    Info {
        /// Also list every API and its version range.
        #[arg(long)]
        versions: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

pub fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let ClusterCommand::Info { versions, client } = args.command;
    let mut raw = client.raw()?;
    let cluster = raw.send(DescribeClusterRequest::default(), (0, 1))?;
    if cluster.error_code != 0 {
        bail!(
            "DescribeCluster failed: {}",
            cluster.error_message.as_ref().map_or_else(
                || format!("error code {}", cluster.error_code),
                |m| m.to_string()
            )
        );
    }
    println!("cluster id: {}", cluster.cluster_id.as_str());
    println!("controller: {}", cluster.controller_id.0);
    let mut nodes: Vec<_> = cluster.brokers.iter().collect();
    nodes.sort_by_key(|b| b.broker_id.0);
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|b| {
            vec![
                b.broker_id.0.to_string(),
                format!("{}:{}", b.host.as_str(), b.port),
                b.rack.as_ref().map_or("-".to_string(), |r| r.to_string()),
                if b.is_fenced { "fenced" } else { "active" }.to_string(),
            ]
        })
        .collect();
    print!("{}", table(&["NODE", "ADDRESS", "RACK", "STATE"], &rows));
    if versions {
        let rows: Vec<Vec<String>> = raw
            .versions
            .iter()
            .map(|(key, min, max)| {
                let name = ApiKey::try_from(*key)
                    .map(|k| format!("{k:?}"))
                    .unwrap_or_else(|_| format!("unknown({key})"));
                vec![key.to_string(), name, format!("{min}-{max}")]
            })
            .collect();
        println!();
        print!("{}", table(&["KEY", "API", "VERSIONS"], &rows));
    } else {
        println!("{} APIs served (--versions lists them)", raw.versions.len());
    }
    Ok(())
}
