//! DescribeConfigs (32): a topic's effective configs (its own settings over the broker
//! defaults), or this broker's static configuration.

use std::sync::Arc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::config::topic::TOPIC_CONFIGS;
use crate::error::{self, ConnectionError};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// `ConfigSource` values (KIP-226).
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

/// Broker keys Kafka declares without a default (it derives them from `*.hours` or leaves them
/// unset): Kafka lists no DEFAULT_CONFIG synonym under them, so neither does Vltava.
const NO_KAFKA_DEFAULT: &[&str] = &["log.retention.ms", "log.roll.ms", "log.flush.interval.ms"];

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DescribeConfigsRequest,
) -> Result<Reply, ConnectionError> {
    let image = broker.image();
    let mut response = DescribeConfigsResponse::default();
    // v1+: synonyms on request, as kafka-configs asks (`synonyms={...}` in its output).
    let synonyms = ctx.api_version >= 1 && request.include_synonyms;
    for resource in &request.resources {
        let wanted = |name: &str| {
            resource
                .configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.is_empty() || keys.iter().any(|k| k.as_str() == name))
        };
        let mut result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        match resource.resource_type {
            TOPIC => match image.topic(resource.resource_name.as_str()) {
                None => {
                    result.error_code = error::UNKNOWN_TOPIC_OR_PARTITION;
                    result.error_message = Some(StrBytes::from_static_str(
                        "This server does not host this topic-partition.",
                    ));
                }
                Some(topic) => {
                    for key in TOPIC_CONFIGS.iter().filter(|k| wanted(k.name)) {
                        let default = (key.default)(&broker.config);
                        let own = topic.configs.get(key.name);
                        let (value, source) = match own {
                            Some(v) => (v.clone(), DYNAMIC_TOPIC_CONFIG),
                            None => (default.clone(), DEFAULT_CONFIG),
                        };
                        let mut e = entry(ctx, key.name, value, source, false);
                        if synonyms {
                            // Kafka's order: the topic's own value, then the broker key
                            // that sets the default.
                            if let Some(v) = own {
                                e.synonyms.push(synonym(key.name, v.clone(), source));
                            }
                            if let Some(bkey) =
                                key.broker_key.filter(|b| !NO_KAFKA_DEFAULT.contains(b))
                            {
                                e.synonyms.push(synonym(bkey, default, DEFAULT_CONFIG));
                            }
                        }
                        result.configs.push(e);
                    }
                }
            },
            BROKER => {
                let name = resource.resource_name.as_str();
                if !name.is_empty() && name != broker.node_id().to_string() {
                    result.error_code = error::INVALID_REQUEST;
                    result.error_message = Some(StrBytes::from_string(format!(
                        "Unexpected broker id, expected {} or empty string, but received {name}",
                        broker.node_id()
                    )));
                } else {
                    for (key, value) in broker.config.describe() {
                        if wanted(key) {
                            let mut e = entry(ctx, key, value.clone(), STATIC_BROKER_CONFIG, true);
                            if synonyms {
                                e.synonyms.push(synonym(key, value, STATIC_BROKER_CONFIG));
                            }
                            result.configs.push(e);
                        }
                    }
                }
            }
            other => {
                result.error_code = error::INVALID_REQUEST;
                result.error_message = Some(StrBytes::from_string(format!(
                    "Unsupported resource type {other}"
                )));
            }
        }
        response.results.push(result);
    }
    ctx.reply(&response)
}

fn entry(
    ctx: &RequestContext,
    name: &'static str,
    value: String,
    source: i8,
    read_only: bool,
) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(name))
        .with_value(Some(StrBytes::from_string(value)))
        .with_read_only(read_only);
    if ctx.api_version >= 1 {
        e.config_source = source;
    }
    if ctx.api_version >= 3 {
        e.config_type = config_type(name);
    }
    e
}

fn synonym(name: &'static str, value: String, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(StrBytes::from_static_str(name))
        .with_value(Some(StrBytes::from_string(value)))
        .with_source(source)
}

/// `ConfigType` (KIP-569): BOOLEAN 1, STRING 2, INT 3, LONG 5, LIST 7.
fn config_type(name: &str) -> i8 {
    match name {
        "unclean.leader.election.enable"
        | "auto.create.topics.enable"
        | "delete.topic.enable"
        | "preallocate"
        | "log.preallocate" => 1,
        "cleanup.policy"
        | "listeners"
        | "advertised.listeners"
        | "log.dirs"
        | "process.roles"
        | "controller.quorum.voters" => 7,
        "compression.type" | "message.timestamp.type" | "log.message.timestamp.type" => 2,
        "max.message.bytes"
        | "min.insync.replicas"
        | "segment.bytes"
        | "index.interval.bytes"
        | "segment.index.bytes"
        | "node.id"
        | "num.partitions"
        | "message.max.bytes"
        | "socket.request.max.bytes"
        | "socket.send.buffer.bytes"
        | "socket.receive.buffer.bytes"
        | "socket.listen.backlog.size"
        | "log.segment.bytes" => 3,
        _ => 5,
    }
}
