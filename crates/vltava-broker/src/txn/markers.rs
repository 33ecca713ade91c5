//! Transaction markers on partitions: the COMMIT or ABORT control batch that ends a producer's
//! transaction in each partition it wrote to (Kafka's `WriteTxnMarkers`, KIP-98). The
//! transaction coordinator calls [`write_txn_markers`] for every partition of a transaction,
//! `__consumer_offsets` partitions included; the WriteTxnMarkers handler calls it for requests
//! from other brokers' coordinators.

use std::sync::Arc;

use vltava_log::control::TxnMarker as LogMarker;

use crate::broker::{now_ms, Broker};
use crate::error;
use crate::replica::Partition;

/// One marker to write: the producer's transaction ends (`commit` or abort) on `partitions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The coordinator's epoch (its `__transaction_state` partition's leader epoch): a marker
    /// from an older coordinator is fenced with TRANSACTION_COORDINATOR_FENCED.
    pub coordinator_epoch: i32,
    pub commit: bool,
    pub partitions: Vec<(String, i32)>,
}

/// Appends the marker to every partition and fsyncs it (markers are written with acks=all);
/// returns one Kafka error code per partition, in order: NONE, NOT_LEADER_OR_FOLLOWER,
/// UNKNOWN_TOPIC_OR_PARTITION, INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED,
/// KAFKA_STORAGE_ERROR.
pub async fn write_txn_markers(broker: &Arc<Broker>, marker: TxnMarker) -> Vec<(String, i32, i16)> {
    let targets: Vec<(String, i32, Result<Arc<Partition>, i16>)> = marker
        .partitions
        .iter()
        .map(|(topic, index)| {
            let partition = broker.replicas.get(topic, *index).leader();
            (topic.clone(), *index, partition)
        })
        .collect();
    let log_marker = LogMarker {
        commit: marker.commit,
        coordinator_epoch: marker.coordinator_epoch,
    };
    let (producer_id, producer_epoch) = (marker.producer_id, marker.producer_epoch);
    let now = now_ms();
    let fallback: Vec<(String, i32, i16)> = marker
        .partitions
        .iter()
        .map(|(t, p)| (t.clone(), *p, error::UNKNOWN_SERVER_ERROR))
        .collect();
    let written = tokio::task::spawn_blocking(move || {
        targets
            .into_iter()
            .map(|(topic, index, partition)| {
                let code = match partition {
                    Err(code) => code,
                    Ok(partition) => partition
                        .append_txn_marker(producer_id, producer_epoch, log_marker, now)
                        .and_then(|info| partition.log.flush(info.last_offset + 1))
                        .map_or_else(|e| error::log_error_code(&e), |()| error::NONE),
                };
                (topic, index, code)
            })
            .collect::<Vec<_>>()
    })
    .await;
    match written {
        Ok(results) => results,
        Err(e) => {
            tracing::error!("writing transaction markers panicked: {e}");
            fallback
        }
    }
}
