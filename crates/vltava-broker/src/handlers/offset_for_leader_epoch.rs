//! OffsetForLeaderEpoch (23): the end offset of a leader epoch (KIP-101, KIP-279), which
//! consumers use to detect log truncation after a leader change (KIP-320).

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{self, ConnectionError};

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: OffsetForLeaderEpochRequest,
) -> Result<Reply, ConnectionError> {
    let mut response = OffsetForLeaderEpochResponse::default();
    for topic in &request.topics {
        let mut t = OffsetForLeaderTopicResult::default().with_topic(topic.topic.clone());
        for p in &topic.partitions {
            let mut out = EpochEndOffset::default()
                .with_partition(p.partition)
                .with_leader_epoch(-1)
                .with_end_offset(-1);
            match broker.replicas.get(&topic.topic, p.partition).leader() {
                Err(code) => out.error_code = code,
                Ok(partition) => {
                    let ours = partition.leader_epoch();
                    if p.current_leader_epoch >= 0 && p.current_leader_epoch < ours {
                        out.error_code = error::FENCED_LEADER_EPOCH;
                    } else if p.current_leader_epoch > ours {
                        out.error_code = error::UNKNOWN_LEADER_EPOCH;
                    } else if let Some((epoch, end_offset)) =
                        partition.log.end_offset_for_epoch(p.leader_epoch)
                    {
                        // The log's cache answers from appended batches; the current epoch
                        // ends at the log end offset.
                        out.leader_epoch = epoch;
                        out.end_offset = end_offset;
                    } else if p.leader_epoch == ours {
                        out.leader_epoch = ours;
                        out.end_offset = partition.high_watermark();
                    }
                }
            }
            t.partitions.push(out);
        }
        response.topics.push(t);
    }
    ctx.reply(&response)
}
