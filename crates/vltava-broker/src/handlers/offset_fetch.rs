//! OffsetFetch (9): a group's committed offsets; v8+ asks for several groups at once. A
//! partition with nothing committed answers offset -1, no error.

use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};

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
        let mut response = OffsetFetchResponse::default();
        if version >= 8 {
            response.groups = results
                .into_iter()
                .map(|(group_id, r)| group_response(group_id, r))
                .collect();
        } else if let Some((_, r)) = results.pop() {
            match r {
                Ok(topics) => response.topics = topics.into_iter().map(topic_response).collect(),
                Err(e) => response.error_code = code(&e),
            }
        }
        response
    }))
}

fn topic_response((topic, partitions): TopicOffsets) -> OffsetFetchResponseTopic {
    OffsetFetchResponseTopic::default()
        .with_name(TopicName(text(topic)))
        .with_partitions(
            partitions
                .into_iter()
                .map(|(p, o)| {
                    let (offset, epoch, metadata) = o.map_or((-1, -1, String::new()), |o| {
                        (o.offset, o.leader_epoch, o.metadata)
                    });
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
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
) -> OffsetFetchResponseGroup {
    let group = OffsetFetchResponseGroup::default().with_group_id(text(group_id).into());
    match r {
        Err(e) => group.with_error_code(code(&e)),
        Ok(topics) => group.with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(text(topic)))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(p, o)| {
                                    let (offset, epoch, metadata) = o
                                        .map_or((-1, -1, String::new()), |o| {
                                            (o.offset, o.leader_epoch, o.metadata)
                                        });
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(p)
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
