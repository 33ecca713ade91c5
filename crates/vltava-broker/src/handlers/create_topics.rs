//! CreateTopics (19): validated and carried out by the controller through the metadata quorum.

use std::sync::Arc;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use tracing::info;
use vltava_meta::CreateTopicRequest;

use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::config::topic::TOPIC_CONFIGS;
use crate::error::{self, ConnectionError};

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: CreateTopicsRequest,
) -> Result<Reply, ConnectionError> {
    let requests: Vec<CreateTopicRequest> = request
        .topics
        .iter()
        .map(|t| CreateTopicRequest {
            name: t.name.to_string(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t
                .assignments
                .iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.iter().map(|b| b.0).collect(),
                    )
                })
                .collect(),
            configs: t
                .configs
                .iter()
                .map(|c| {
                    let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
                    (c.name.to_string(), value)
                })
                .collect(),
        })
        .collect();
    let results = broker
        .quorum
        .create_topics(
            requests.clone(),
            request.validate_only,
            broker.topic_defaults(),
        )
        .await;

    let mut response = CreateTopicsResponse::default();
    for (req, result) in request.topics.iter().zip(results) {
        let mut topic = CreatableTopicResult::default().with_name(req.name.clone());
        match result {
            Ok(created) => {
                if !request.validate_only {
                    info!(
                        "topic {} created ({} partitions, replication factor {})",
                        req.name.as_str(),
                        created.num_partitions,
                        created.replication_factor
                    );
                }
                if ctx.api_version >= 5 {
                    topic.num_partitions = created.num_partitions;
                    topic.replication_factor = created.replication_factor;
                    topic.configs = Some(configs(broker, &created.configs));
                }
                if ctx.api_version >= 7 {
                    topic.topic_id = created.topic_id;
                }
            }
            Err(e) => {
                topic.error_code = error::controller_error_code(&e);
                if ctx.api_version >= 1 {
                    topic.error_message = Some(StrBytes::from_string(e.message()));
                }
            }
        }
        // A name given twice is answered once (INVALID_REQUEST), as Kafka does.
        if !response.topics.iter().any(|t| t.name == topic.name) {
            response.topics.push(topic);
        }
    }
    if !request.validate_only {
        broker.sync_replicas().await;
    }
    ctx.reply(&response)
}

/// The topic's effective configs (KIP-525): its own settings, then the broker defaults.
fn configs(broker: &Broker, set: &[(String, String)]) -> Vec<CreatableTopicConfigs> {
    TOPIC_CONFIGS
        .iter()
        .map(|key| {
            let own = set.iter().find(|(name, _)| name == key.name);
            let (value, source) = match own {
                Some((_, v)) => (v.clone(), 1),             // TOPIC_CONFIG
                None => ((key.default)(&broker.config), 5), // DEFAULT_CONFIG
            };
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(key.name))
                .with_value(Some(StrBytes::from_string(value)))
                .with_config_source(source)
        })
        .collect()
}
