//! WriteTxnMarkers (27): a transaction coordinator asks the leaders of a transaction's
//! partitions to append its COMMIT or ABORT marker ([`crate::txn::markers`]). A marker on a
//! `__consumer_offsets` partition also completes the producer's pending transactional offset
//! commits there (Kafka's `GroupCoordinator.onTransactionCompleted`).

use std::sync::Arc;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{self, ConnectionError};
use crate::group::OFFSETS_TOPIC;
use crate::txn::markers::{write_txn_markers, TxnMarker};

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: WriteTxnMarkersRequest,
) -> Result<Reply, ConnectionError> {
    let mut response = WriteTxnMarkersResponse::default();
    for marker in request.markers {
        let partitions: Vec<(String, i32)> = marker
            .topics
            .iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(move |p| (t.name.to_string(), *p))
            })
            .collect();
        let results = write_txn_markers(
            broker,
            TxnMarker {
                producer_id: marker.producer_id.0,
                producer_epoch: marker.producer_epoch,
                coordinator_epoch: marker.coordinator_epoch,
                commit: marker.transaction_result,
                partitions,
            },
        )
        .await;
        let mut result = WritableTxnMarkerResult::default().with_producer_id(marker.producer_id);
        for (topic, partition, code) in results {
            if code == error::NONE && topic == OFFSETS_TOPIC {
                broker.groups.complete_txn_offsets(
                    marker.producer_id.0,
                    marker.transaction_result,
                    partition,
                );
            }
            let index = match result.topics.iter().position(|t| *t.name == *topic) {
                Some(i) => i,
                None => {
                    result.topics.push(
                        WritableTxnMarkerTopicResult::default()
                            .with_name(TopicName(StrBytes::from_string(topic))),
                    );
                    result.topics.len() - 1
                }
            };
            if let Some(t) = result.topics.get_mut(index) {
                t.partitions.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(partition)
                        .with_error_code(code),
                );
            }
        }
        response.markers.push(result);
    }
    ctx.reply(&response)
}
