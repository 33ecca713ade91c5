//! `vltava topic create|list|describe|delete|add-partitions`, through rdkafka's admin client.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use rdkafka::admin::{
    AdminClient, AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::metadata::Metadata;

use super::client::{key_value, ClientArgs};
use super::output::table;

#[derive(Args, Debug)]
pub struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Subcommand, Debug)]
enum TopicCommand {
    /// Create a topic.
    #[command(
        after_help = "Example:\n  vltava topic create orders --partitions 6 --config retention.ms=86400000"
    )]
    Create {
        name: String,
        /// Number of partitions (default: the broker's num.partitions).
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Replicas per partition (default: the broker's default.replication.factor).
        #[arg(long, short = 'r')]
        replication_factor: Option<i32>,
        /// Topic config as key=value; may be repeated.
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE")]
        configs: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List topics with their partition counts.
    #[command(after_help = "Example:\n  vltava topic list --bootstrap-server 10.0.0.1:9092")]
    List {
        /// Show internal topics (__consumer_offsets) too.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a topic's partitions (leader, replicas, ISR) and its non-default configs.
    #[command(after_help = "Example:\n  vltava topic describe orders")]
    Describe {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a topic and its data.
    #[command(after_help = "Example:\n  vltava topic delete orders")]
    Delete {
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Grow a topic to a total number of partitions.
    #[command(after_help = "Example:\n  vltava topic add-partitions orders --partitions 12")]
    AddPartitions {
        name: String,
        /// The new total number of partitions.
        #[arg(long, short = 'p')]
        partitions: usize,
        #[command(flatten)]
        client: ClientArgs,
    },
}

pub async fn run(args: TopicArgs) -> anyhow::Result<()> {
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
            client,
        } => {
            let configs = configs
                .iter()
                .map(|c| key_value(c, "--config"))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let admin = admin(&client)?;
            let mut topic = NewTopic::new(
                &name,
                partitions.unwrap_or(-1),
                TopicReplication::Fixed(replication_factor.unwrap_or(-1)),
            );
            for (k, v) in &configs {
                topic = topic.set(k, v);
            }
            let results = admin
                .create_topics([&topic], &options(&client))
                .await
                .context("creating topic")?;
            check(results, &name, "create")?;
            println!("created topic {name}");
        }
        TopicCommand::List { all, client } => {
            let metadata = metadata(&client)?;
            let rows: Vec<Vec<String>> = sorted_topics(&metadata)
                .into_iter()
                .filter(|t| all || !t.name().starts_with("__"))
                .map(|t| {
                    let rf = t.partitions().first().map_or(0, |p| p.replicas().len());
                    vec![
                        t.name().to_string(),
                        t.partitions().len().to_string(),
                        rf.to_string(),
                    ]
                })
                .collect();
            print!("{}", table(&["TOPIC", "PARTITIONS", "REPLICATION"], &rows));
        }
        TopicCommand::Describe { name, client } => {
            let metadata = metadata(&client)?;
            let Some(topic) = metadata.topics().iter().find(|t| t.name() == name) else {
                bail!("unknown topic {name:?}");
            };
            let mut partitions: Vec<_> = topic.partitions().iter().collect();
            partitions.sort_by_key(|p| p.id());
            println!("topic {name}: {} partitions", partitions.len());
            let admin = admin(&client)?;
            let configs = admin
                .describe_configs([&ResourceSpecifier::Topic(&name)], &options(&client))
                .await
                .context("describing topic configs")?;
            for resource in configs.into_iter().flatten() {
                for entry in resource.entries.iter().filter(|e| !e.is_default) {
                    println!(
                        "  {}={}",
                        entry.name,
                        entry.value.as_deref().unwrap_or("(null)")
                    );
                }
            }
            let rows: Vec<Vec<String>> = partitions
                .iter()
                .map(|p| {
                    vec![
                        p.id().to_string(),
                        p.leader().to_string(),
                        join(p.replicas()),
                        join(p.isr()),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["PARTITION", "LEADER", "REPLICAS", "ISR"], &rows)
            );
        }
        TopicCommand::Delete { name, client } => {
            let admin = admin(&client)?;
            let results = admin
                .delete_topics(&[&name], &options(&client))
                .await
                .context("deleting topic")?;
            check(results, &name, "delete")?;
            println!("deleted topic {name}");
        }
        TopicCommand::AddPartitions {
            name,
            partitions,
            client,
        } => {
            let admin = admin(&client)?;
            let new = NewPartitions::new(&name, partitions);
            let results = admin
                .create_partitions([&new], &options(&client))
                .await
                .context("adding partitions")?;
            check(results, &name, "add partitions to")?;
            println!("topic {name} now has {partitions} partitions");
        }
    }
    Ok(())
}

pub fn admin(client: &ClientArgs) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    client.check_reachable()?;
    client
        .rdkafka()
        .create()
        .context("creating the admin client")
}

pub fn options(client: &ClientArgs) -> AdminOptions {
    AdminOptions::new().request_timeout(Some(client.timeout()))
}

/// Cluster metadata for every topic (never a topic list: a named, unknown topic could be
/// auto-created by the request that asks about it).
pub fn metadata(client: &ClientArgs) -> anyhow::Result<Metadata> {
    let admin = admin(client)?;
    admin
        .inner()
        .fetch_metadata(None, client.timeout())
        .context("fetching cluster metadata")
}

fn sorted_topics(metadata: &Metadata) -> Vec<&rdkafka::metadata::MetadataTopic> {
    let mut topics: Vec<_> = metadata.topics().iter().collect();
    topics.sort_by(|a, b| a.name().cmp(b.name()));
    topics
}

fn check(
    results: Vec<Result<String, (String, rdkafka::types::RDKafkaErrorCode)>>,
    name: &str,
    verb: &str,
) -> anyhow::Result<()> {
    for result in results {
        if let Err((topic, code)) = result {
            let topic = if topic.is_empty() { name } else { &topic };
            match code {
                rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition => {
                    bail!("unknown topic {topic:?}")
                }
                code => bail!("cannot {verb} topic {topic:?}: {code}"),
            }
        }
    }
    Ok(())
}

fn join(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}
