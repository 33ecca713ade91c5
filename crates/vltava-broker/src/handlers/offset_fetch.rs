//! OffsetFetch (9): a group's committed offsets; v8+ asks for several groups at once. A
//! partition with nothing committed answers offset -1, no error.

use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};

use std::collections::HashSet;

use kafka_protocol::ResponseError;

use super::group_common::{check_len, code, later, text};
use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::ConnectionError;
use crate::group::coordinator::TopicOffsets;
use crate::group::GroupError;

type Wanted = Option<Vec<(String, Vec<i32>)>>;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: OffsetFetchRequest,
) -> Result<Reply, ConnectionError> {
    let version = ctx.api_version;
    let groups: Vec<(String, Wanted)> = if version >= 8 {
        request
            .groups
            .into_iter()
            .map(|g| {
                let topics = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                });
                (g.group_id.to_string(), topics)
            })
            .collect()
    } else {
        let topics = request.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.to_string(), t.partition_indexes))
                .collect()
        });
        vec![(request.group_id.to_string(), topics)]
    };
    for (group_id, _) in &groups {
        check_len(ctx, "groupId", group_id)?;
    }
    // KIP-447 (v7+): offsets an open transaction is committing are not answered yet; the client
    // retries on UNSTABLE_OFFSET_COMMIT until the transaction ends.
    let require_stable = version >= 7 && request.require_stable;
    let broker = broker.clone();
    Ok(later(ctx, async move {
        let mut results = Vec::with_capacity(groups.len());
        for (group_id, wanted) in groups {
            let r = broker
                .groups
                .fetch_offsets(&broker, &group_id, wanted)
                .await;
            results.push((group_id, r));
        }
        let mut unstable = Unstable::new();
        if require_stable {
            for (group_id, r) in &results {
                for (topic, partitions) in r.iter().flatten() {
                    for (p, _) in partitions {
                        if broker.groups.has_pending_txn_offset(group_id, topic, *p) {
                            unstable.insert((group_id.clone(), topic.clone(), *p));
                        }
                    }
                }
            }
        }
        let mut response = OffsetFetchResponse::default();
        if version >= 8 {
            response.groups = results
                .into_iter()
                .map(|(group_id, r)| group_response(group_id, r, &unstable))
                .collect();
        } else if let Some((group_id, r)) = results.pop() {
            match r {
                Ok(topics) => {
                    response.topics = topics
                        .into_iter()
                        .map(|t| topic_response(&group_id, t, &unstable))
                        .collect()
                }
                Err(e) => response.error_code = code(&e),
            }
        }
        response
    }))
}

/// (group, topic, partition) with a pending transactional commit.
type Unstable = HashSet<(String, String, i32)>;

/// (offset, leader epoch, metadata, error code) of one partition's answer.
fn partition_answer(
    group_id: &str,
    topic: &str,
    partition: i32,
    o: Option<crate::group::offsets::CommittedOffset>,
    unstable: &Unstable,
) -> (i64, i32, String, i16) {
    if unstable.contains(&(group_id.to_string(), topic.to_string(), partition)) {
        return (
            -1,
            -1,
            String::new(),
            ResponseError::UnstableOffsetCommit.code(),
        );
    }
    o.map_or((-1, -1, String::new(), 0), |o| {
        (o.offset, o.leader_epoch, o.metadata, 0)
    })
}

fn topic_response(
    group_id: &str,
    (topic, partitions): TopicOffsets,
    unstable: &Unstable,
) -> OffsetFetchResponseTopic {
    OffsetFetchResponseTopic::default()
        .with_name(TopicName(text(topic.clone())))
        .with_partitions(
            partitions
                .into_iter()
                .map(|(p, o)| {
                    let (offset, epoch, metadata, error_code) =
                        partition_answer(group_id, &topic, p, o, unstable);
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_error_code(error_code)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(text(metadata)))
                })
                .collect(),
        )
}

fn group_response(
    group_id: String,
    r: Result<Vec<TopicOffsets>, GroupError>,
    unstable: &Unstable,
) -> OffsetFetchResponseGroup {
    let group = OffsetFetchResponseGroup::default().with_group_id(text(group_id.clone()).into());
    match r {
        Err(e) => group.with_error_code(code(&e)),
        Ok(topics) => group.with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(text(topic.clone())))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(p, o)| {
                                    let (offset, epoch, metadata, error_code) =
                                        partition_answer(&group_id, &topic, p, o, unstable);
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(p)
                                        .with_error_code(error_code)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(Some(text(metadata)))
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}
