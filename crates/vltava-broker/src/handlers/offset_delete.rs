//! OffsetDelete (47): drop committed offsets of topics the group no longer consumes.

use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::group_common::{check_len, code, code_of, later};
use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{self, ConnectionError};

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: OffsetDeleteRequest,
) -> Result<Reply, ConnectionError> {
    check_len(ctx, "groupId", &request.group_id)?;
    let image = broker.image();
    let mut unknown = Vec::new();
    let mut wanted = Vec::new();
    for topic in &request.topics {
        check_len(ctx, "name", &topic.name)?;
        let known = image.topic(&topic.name);
        let mut partitions = Vec::new();
        for p in &topic.partitions {
            if known.is_some_and(|k| k.partition(p.partition_index).is_some()) {
                partitions.push(p.partition_index);
            } else {
                unknown.push((topic.name.clone(), p.partition_index));
            }
        }
        wanted.push((topic.name.to_string(), partitions));
    }
    let broker = broker.clone();
    let group_id = request.group_id.to_string();
    Ok(later(ctx, async move {
        let mut response = OffsetDeleteResponse::default();
        let results = match broker
            .groups
            .delete_offsets(&broker, &group_id, wanted)
            .await
        {
            Ok(results) => results,
            Err(e) => return response.with_error_code(code(&e)),
        };
        for topic in request.topics {
            let mut t = OffsetDeleteResponseTopic::default().with_name(topic.name.clone());
            for p in topic.partitions {
                let index = p.partition_index;
                let error_code = if unknown.iter().any(|(n, i)| *n == topic.name && *i == index) {
                    error::UNKNOWN_TOPIC_OR_PARTITION
                } else {
                    results
                        .iter()
                        .find(|(n, i, _)| n.as_str() == &**topic.name && *i == index)
                        .map_or(error::NONE, |(_, _, r)| code_of(r))
                };
                t.partitions.push(
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(error_code),
                );
            }
            response.topics.push(t);
        }
        response
    }))
}
