//! DeleteRecords (21): advance a partition's log start offset (-1 means the high watermark).

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::{blocking, Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{self, ConnectionError};

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DeleteRecordsRequest,
) -> Result<Reply, ConnectionError> {
    let mut jobs = Vec::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            let partition = broker.replicas.get(&topic.name, p.partition_index).leader();
            jobs.push((topic.name.clone(), p.partition_index, partition, p.offset));
        }
    }
    let results = blocking(move || {
        jobs.into_iter()
            .map(|(name, index, partition, offset)| {
                let result = partition.and_then(|p| {
                    let high_watermark = p.high_watermark();
                    let target = if offset == -1 { high_watermark } else { offset };
                    if target < 0 || target > high_watermark {
                        return Err(error::OFFSET_OUT_OF_RANGE);
                    }
                    p.log
                        .advance_log_start_offset(target)
                        .map_err(|e| error::log_error_code(&e))?;
                    p.wake_fetches();
                    Ok(p.log_start_offset())
                });
                (name, index, result)
            })
            .collect::<Vec<_>>()
    })
    .await?;

    let mut response = DeleteRecordsResponse::default();
    for (name, index, result) in results {
        let entry = match response.topics.iter_mut().position(|t| t.name == name) {
            Some(i) => i,
            None => {
                response
                    .topics
                    .push(DeleteRecordsTopicResult::default().with_name(name));
                response.topics.len() - 1
            }
        };
        let (low_watermark, error_code) = match result {
            Ok(low) => (low, error::NONE),
            Err(code) => (-1, code),
        };
        if let Some(topic) = response.topics.get_mut(entry) {
            topic.partitions.push(
                DeleteRecordsPartitionResult::default()
                    .with_partition_index(index)
                    .with_low_watermark(low_watermark)
                    .with_error_code(error_code),
            );
        }
    }
    ctx.reply(&response)
}
