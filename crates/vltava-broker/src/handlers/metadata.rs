//! Metadata (3): brokers, topics, partitions with leaders, replicas and ISR, from the image.
//! Missing topics are created when the request allows it and `auto.create.topics.enable` is on.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use vltava_meta::{MetadataImage, TopicImage};

use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{self, ConnectionError};
use crate::replica::is_internal_topic;

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: MetadataRequest,
) -> Result<Reply, ConnectionError> {
    let version = ctx.api_version;
    // v0: an empty list means every topic; v1+: null means every topic.
    let all_topics = match &request.topics {
        None => true,
        Some(topics) => version == 0 && topics.is_empty(),
    };
    let allow_auto_create = (version < 4 || request.allow_auto_topic_creation)
        && broker.config.topics.auto_create_topics_enable;

    let mut image = broker.image();
    if !all_topics && allow_auto_create {
        let missing: Vec<String> = request
            .topics
            .iter()
            .flatten()
            .filter_map(|t| t.name.as_ref())
            .filter(|name| image.topic(name).is_none() && !is_internal_topic(name))
            .map(|name| name.to_string())
            .collect();
        if !missing.is_empty() {
            broker.auto_create_topics(&missing).await;
            image = broker.image();
        }
    }

    let mut response = MetadataResponse::default();
    response.brokers = brokers(&image);
    response.cluster_id = image
        .cluster_id()
        .map(|id| StrBytes::from_string(id.to_string()));
    // KRaft brokers report a live broker as "controller": clients cannot reach controllers.
    response.controller_id = BrokerId(broker.node_id());
    response.topics = if all_topics {
        image.topics().map(|t| topic(&image, t, version)).collect()
    } else {
        request
            .topics
            .iter()
            .flatten()
            .map(|requested| match (&requested.name, requested.topic_id) {
                // An empty name beside a topic id asks by id (Kafka's reading).
                (Some(name), id) if !name.is_empty() || id.is_nil() => match image.topic(name) {
                    Some(t) => topic(&image, t, version),
                    None => missing_topic(Some(name.clone()), Uuid::nil(), name_error(name)),
                },
                (_, id) => match image.topic_by_id(&id) {
                    Some(t) => topic(&image, t, version),
                    None => missing_topic(None, id, error::UNKNOWN_TOPIC_ID),
                },
            })
            .collect()
    };
    ctx.reply(&response)
}

fn name_error(name: &str) -> i16 {
    if vltava_meta::controller::topics::validate_topic_name(name).is_err() {
        error::INVALID_TOPIC_EXCEPTION
    } else {
        error::UNKNOWN_TOPIC_OR_PARTITION
    }
}

fn brokers(image: &MetadataImage) -> Vec<MetadataResponseBroker> {
    image
        .brokers()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.node_id))
                .with_host(StrBytes::from_string(b.host.clone()))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.clone().map(StrBytes::from_string))
        })
        .collect()
}

fn missing_topic(name: Option<TopicName>, id: Uuid, error_code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error_code)
        .with_name(name)
        .with_topic_id(id)
}

fn topic(image: &MetadataImage, t: &TopicImage, version: i16) -> MetadataResponseTopic {
    let ids = |v: &[i32]| v.iter().map(|&id| BrokerId(id)).collect::<Vec<_>>();
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let error_code = if p.leader >= 0 && image.broker(p.leader).is_some() {
                error::NONE
            } else {
                error::LEADER_NOT_AVAILABLE
            };
            let mut partition = MetadataResponsePartition::default()
                .with_error_code(error_code)
                .with_partition_index(p.partition)
                .with_leader_id(BrokerId(p.leader))
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr));
            if version >= 7 {
                partition.leader_epoch = p.leader_epoch;
            }
            partition
        })
        .collect();
    let mut topic = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_is_internal(is_internal_topic(&t.name))
        .with_partitions(partitions);
    if version >= 10 {
        topic.topic_id = t.topic_id;
    }
    topic
}
