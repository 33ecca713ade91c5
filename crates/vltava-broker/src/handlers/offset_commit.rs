//! OffsetCommit (8): store a group's consumed positions in `__consumer_offsets`; answered once
//! they are fsynced. Partitions of unknown topics are refused first (Kafka checks the metadata
//! before the group), then the group decides for the rest.

use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::group_common::{check_len, check_member_identity, code, later};
use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{self, ConnectionError};
use crate::group::coordinator::OffsetToCommit;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: OffsetCommitRequest,
) -> Result<Reply, ConnectionError> {
    check_member_identity(
        ctx,
        &request.group_id,
        &request.member_id,
        request.group_instance_id.as_deref(),
    )?;
    let image = broker.image();
    // (topic index, partition index, error) for every partition, in request order.
    let mut response = OffsetCommitResponse::default();
    let mut to_commit = Vec::new();
    let mut slots = Vec::new();
    for (t, topic) in request.topics.iter().enumerate() {
        check_len(ctx, "name", &topic.name)?;
        let known = image.topic(&topic.name);
        let mut topic_response = OffsetCommitResponseTopic::default().with_name(topic.name.clone());
        for (p, partition) in topic.partitions.iter().enumerate() {
            if let Some(md) = &partition.committed_metadata {
                check_len(ctx, "committedMetadata", md)?;
            }
            let exists = known.is_some_and(|k| k.partition(partition.partition_index).is_some());
            let mut partition_response = OffsetCommitResponsePartition::default()
                .with_partition_index(partition.partition_index);
            if exists {
                slots.push((t, p));
                to_commit.push(OffsetToCommit {
                    topic: topic.name.to_string(),
                    partition: partition.partition_index,
                    offset: partition.committed_offset,
                    leader_epoch: partition.committed_leader_epoch,
                    metadata: partition.committed_metadata.as_ref().map(|m| m.to_string()),
                });
            } else {
                partition_response.error_code = error::UNKNOWN_TOPIC_OR_PARTITION;
            }
            topic_response.partitions.push(partition_response);
        }
        response.topics.push(topic_response);
    }
    let retention_ms = if (2..=4).contains(&ctx.api_version) {
        request.retention_time_ms
    } else {
        -1
    };
    let version = ctx.api_version;
    let broker = broker.clone();
    Ok(later(ctx, async move {
        if to_commit.is_empty() {
            return response;
        }
        let results = broker
            .groups
            .commit(
                &broker,
                &request.group_id,
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id_or_member_epoch,
                version,
                retention_ms,
                to_commit,
            )
            .await;
        for (i, (t, p)) in slots.into_iter().enumerate() {
            let code = match &results {
                Err(e) => code(e),
                Ok(results) => results.get(i).map_or(error::UNKNOWN_SERVER_ERROR, |r| {
                    r.as_ref().err().map_or(0, code)
                }),
            };
            if let Some(slot) = response
                .topics
                .get_mut(t)
                .and_then(|topic| topic.partitions.get_mut(p))
            {
                slot.error_code = code;
            }
        }
        response
    }))
}
