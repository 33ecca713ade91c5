//! `vltava config get|set`: topic and broker configs through DescribeConfigs (rdkafka) and
//! IncrementalAlterConfigs (kafka-protocol: rdkafka 0.39 only wraps the legacy AlterConfigs,
//! which replaces a resource's whole config set).

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::IncrementalAlterConfigsRequest;
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{ConfigSource, ResourceSpecifier};

use super::client::{key_value, ClientArgs};
use super::output::table;
use super::topic::{admin, options};

#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

/// Which resource: a topic or a broker.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
struct Resource {
    /// A topic's configs.
    #[arg(long)]
    topic: Option<String>,
    /// A broker's configs, by node id.
    #[arg(long)]
    broker: Option<i32>,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Show configs (all, or the keys named).
    #[command(after_help = "Examples:\n  vltava config get --topic orders\n  \
        vltava config get --topic orders retention.ms segment.bytes\n  vltava config get --broker 1")]
    Get {
        #[command(flatten)]
        resource: Resource,
        /// Only these keys.
        keys: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Set or delete configs (IncrementalAlterConfigs).
    #[command(
        after_help = "Examples:\n  vltava config set --topic orders retention.ms=86400000\n  \
        vltava config set --topic orders --delete retention.ms"
    )]
    Set {
        #[command(flatten)]
        resource: Resource,
        /// key=value pairs to set.
        #[arg(value_name = "KEY=VALUE")]
        pairs: Vec<String>,
        /// Keys to return to their default; may be repeated.
        #[arg(long, value_name = "KEY")]
        delete: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// IncrementalAlterConfigs operations (KIP-339).
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
/// ConfigResource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

pub async fn run(args: ConfigArgs) -> anyhow::Result<()> {
    match args.command {
        ConfigCommand::Get {
            resource,
            keys,
            client,
        } => get(&resource, &keys, &client).await,
        ConfigCommand::Set {
            resource,
            pairs,
            delete,
            client,
        } => set(&resource, &pairs, &delete, &client),
    }
}

impl Resource {
    fn describe(&self) -> String {
        match (&self.topic, self.broker) {
            (Some(topic), _) => format!("topic {topic:?}"),
            (None, Some(id)) => format!("broker {id}"),
            (None, None) => "nothing".to_string(),
        }
    }
}

async fn get(resource: &Resource, keys: &[String], client: &ClientArgs) -> anyhow::Result<()> {
    let specifier = match (&resource.topic, resource.broker) {
        (Some(topic), _) => ResourceSpecifier::Topic(topic),
        (None, Some(id)) => ResourceSpecifier::Broker(id),
        (None, None) => bail!("name a --topic or a --broker"),
    };
    let admin = admin(client)?;
    let results = admin
        .describe_configs([&specifier], &options(client))
        .await
        .context("describing configs")?;
    let mut rows = Vec::new();
    for result in results {
        let config = match result {
            Ok(config) => config,
            Err(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition) => {
                bail!("unknown {}", resource.describe())
            }
            Err(code) => bail!("cannot describe {}: {code}", resource.describe()),
        };
        for key in keys {
            if config.get(key).is_none() {
                bail!("unknown config key {key:?} for {}", resource.describe());
            }
        }
        for entry in &config.entries {
            if !keys.is_empty() && !keys.contains(&entry.name) {
                continue;
            }
            let value = if entry.is_sensitive {
                "(sensitive)".to_string()
            } else {
                entry.value.clone().unwrap_or_else(|| "(null)".to_string())
            };
            rows.push(vec![
                entry.name.clone(),
                value,
                source(&entry.source).into(),
            ]);
        }
    }
    print!("{}", table(&["KEY", "VALUE", "SOURCE"], &rows));
    Ok(())
}

fn source(source: &ConfigSource) -> &'static str {
    match source {
        ConfigSource::Unknown => "unknown",
        ConfigSource::DynamicTopic => "topic",
        ConfigSource::DynamicBroker => "dynamic broker",
        ConfigSource::DynamicDefaultBroker => "dynamic default",
        ConfigSource::StaticBroker => "server.properties",
        ConfigSource::Default => "default",
    }
}

fn set(
    resource: &Resource,
    pairs: &[String],
    delete: &[String],
    client: &ClientArgs,
) -> anyhow::Result<()> {
    if pairs.is_empty() && delete.is_empty() {
        bail!("nothing to change: give key=value pairs or --delete KEY");
    }
    let (resource_type, name) = match (&resource.topic, resource.broker) {
        (Some(topic), _) => (RESOURCE_TOPIC, topic.clone()),
        (None, Some(id)) => (RESOURCE_BROKER, id.to_string()),
        (None, None) => bail!("name a --topic or a --broker"),
    };
    let mut configs = Vec::new();
    for pair in pairs {
        let (key, value) = key_value(pair, "config")?;
        configs.push(
            AlterableConfig::default()
                .with_name(StrBytes::from_string(key))
                .with_config_operation(OP_SET)
                .with_value(Some(StrBytes::from_string(value))),
        );
    }
    for key in delete {
        configs.push(
            AlterableConfig::default()
                .with_name(StrBytes::from_string(key.clone()))
                .with_config_operation(OP_DELETE),
        );
    }
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(StrBytes::from_string(name))
            .with_configs(configs),
    ]);
    let mut raw = client.raw()?;
    let response = raw.send(request, (0, 1))?;
    for result in &response.responses {
        if result.error_code != 0 {
            let message = result
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_else(|| format!("error code {}", result.error_code));
            bail!("cannot change {}: {message}", resource.describe());
        }
    }
    println!("updated {}", resource.describe());
    Ok(())
}
