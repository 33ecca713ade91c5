//! Group metadata and committed offsets as records in the `__consumer_offsets` partitions, written
//! and read through vltava-log like any partition: a write is one RecordBatch, appended and
//! fsynced before the caller acknowledges anything; replay reads a partition from its start.
//! Blocking: call from blocking threads. The topic itself is created through the metadata
//! quorum like any topic, so replication (a later issue) covers it too.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tracing::{info, warn};
use vltava_log::batch::BatchHeader;
use vltava_log::{Log, LogError};
use vltava_meta::{ControllerError, CreateTopicRequest};

use super::{GroupError, OFFSETS_TOPIC};
use crate::broker::Broker;
use crate::replica::{Lookup, Partition};

/// A record to write: a key and a value, or a key and no value (a tombstone).
pub type KeyValue = (Vec<u8>, Option<Vec<u8>>);

/// Largest read while replaying (whole batches are returned; the last may be cut short).
const REPLAY_READ_BYTES: u32 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding a record batch: {0}")]
    Encode(String),
}

impl From<StoreError> for GroupError {
    fn from(e: StoreError) -> GroupError {
        GroupError::Storage(e.to_string())
    }
}

/// Appends `records` as one batch and fsyncs it; returns the offset of the first. Blocking.
pub fn append(partition: &Partition, records: &[KeyValue], now_ms: i64) -> Result<i64, StoreError> {
    append_batch(partition, records, now_ms, None)
}

/// [`append`] as a transactional batch of `producer` (id, epoch): TxnOffsetCommit's offsets,
/// which become visible with the transaction's COMMIT marker (KIP-98). Written with the
/// coordinator's append rules, base sequence 0 as Kafka's group coordinator writes them.
pub fn append_transactional(
    partition: &Partition,
    records: &[KeyValue],
    now_ms: i64,
    producer: (i64, i16),
) -> Result<i64, StoreError> {
    append_batch(partition, records, now_ms, Some(producer))
}

fn append_batch(
    partition: &Partition,
    records: &[KeyValue],
    now_ms: i64,
    producer: Option<(i64, i16)>,
) -> Result<i64, StoreError> {
    if records.is_empty() {
        return Ok(-1);
    }
    let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset - sequence changes; this keeps
            // every record in one batch whose base sequence is -1 (no producer id) or 0.
            sequence: if producer.is_some() {
                i as i32
            } else {
                i as i32 - 1
            },
            timestamp: now_ms,
            key: Some(Bytes::copy_from_slice(key)),
            value: value.as_deref().map(Bytes::copy_from_slice),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| StoreError::Encode(format!("{e:#}")))?;
    let batch = &buf[..];
    let info = if producer.is_some() {
        let info = partition.log.append_from(
            vltava_log::AppendOrigin::Coordinator,
            batch,
            partition.leader_epoch(),
            now_ms,
        )?;
        partition.wake_fetches();
        info
    } else {
        partition.append(batch, now_ms)?
    };
    partition.log.flush(info.last_offset + 1)?;
    Ok(info.base_offset)
}

/// A replayed record: its offset, key, and value (None for a tombstone).
pub type Replayed = (i64, Bytes, Option<Bytes>);

/// Every record of a partition log, in offset order, leaving out transactional records that
/// were aborted or are still open. Blocking.
pub fn replay(log: &Log) -> Result<Vec<Replayed>, StoreError> {
    replay_with_pending(log).map(|(records, _)| records)
}

/// Records of transactions still open at the end of the log, by producer id.
pub type Pending = std::collections::HashMap<i64, (i16, Vec<Replayed>)>;

/// [`replay`], and the records of open transactions. A transaction's records are returned where
/// its COMMIT marker is (they take effect then), and dropped at an ABORT marker.
pub fn replay_with_pending(log: &Log) -> Result<(Vec<Replayed>, Pending), StoreError> {
    let mut out = Vec::new();
    let mut pending = Pending::new();
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    while offset < end {
        let info = log.read(offset, REPLAY_READ_BYTES, end, true)?;
        let Some(range) = info.range else { break };
        let bytes = Bytes::from(range.read_to_vec()?);
        let mut position = 0usize;
        let mut advanced = false;
        while let Some(header) = bytes.get(position..).and_then(BatchHeader::parse) {
            let size = header.size();
            let Some(batch) = bytes.get(position..position + size) else {
                break; // cut short by the read size; the next read starts here
            };
            let mut slice = bytes.slice_ref(batch);
            match RecordBatchDecoder::decode(&mut slice) {
                Ok(set) => {
                    for record in set.records {
                        if record.control {
                            // Key: version (i16), type (i16): 0 ABORT, 1 COMMIT.
                            let commit = record
                                .key
                                .as_ref()
                                .and_then(|k| k.get(2..4))
                                .is_some_and(|t| t == [0, 1]);
                            if let Some((_, records)) = pending.remove(&record.producer_id) {
                                if commit {
                                    out.extend(records);
                                }
                            }
                            continue;
                        }
                        let Some(key) = record.key else { continue };
                        if record.transactional {
                            let entry = pending
                                .entry(record.producer_id)
                                .or_insert_with(|| (record.producer_epoch, Vec::new()));
                            entry.0 = record.producer_epoch;
                            entry.1.push((record.offset, key, record.value));
                        } else {
                            out.push((record.offset, key, record.value));
                        }
                    }
                }
                Err(e) => warn!(
                    "skipping undecodable batch at offset {} of {}: {e:#}",
                    header.base_offset,
                    log.topic_partition()
                ),
            }
            offset = header.next_offset();
            position += size;
            advanced = true;
        }
        if !advanced {
            break;
        }
    }
    Ok((out, pending))
}

/// Creates `__consumer_offsets` if it does not exist yet (the first time a group needs it).
pub async fn ensure_topic(broker: &Arc<Broker>) -> Result<(), GroupError> {
    if broker.image().topic(OFFSETS_TOPIC).is_some() {
        return Ok(());
    }
    let partitions = broker.config.groups.offsets_topic_partitions;
    let request = CreateTopicRequest {
        name: OFFSETS_TOPIC.to_string(),
        num_partitions: partitions,
        replication_factor: -1,
        assignments: Vec::new(),
        // No compaction yet (vltava-log has no cleaner): keep every record rather than let
        // time or size retention drop committed offsets. Kafka's offsets.topic.segment.bytes.
        configs: vec![
            ("cleanup.policy".into(), "compact".into()),
            ("retention.ms".into(), "-1".into()),
            ("retention.bytes".into(), "-1".into()),
            ("segment.bytes".into(), "104857600".into()),
        ],
    };
    let mut results = broker
        .quorum
        .create_topics(vec![request], false, broker.topic_defaults())
        .await;
    match results.pop() {
        Some(Ok(_)) => info!("created {OFFSETS_TOPIC} with {partitions} partitions"),
        Some(Err(ControllerError::TopicAlreadyExists(_))) => {}
        Some(Err(e)) => {
            warn!("creating {OFFSETS_TOPIC} failed: {e}");
            return Err(GroupError::CoordinatorNotAvailable);
        }
        None => return Err(GroupError::CoordinatorNotAvailable),
    }
    broker.sync_replicas().await;
    Ok(())
}

/// The local leader of a `__consumer_offsets` partition, or why this broker cannot coordinate it.
pub fn partition(broker: &Broker, index: i32) -> Result<Arc<Partition>, GroupError> {
    match broker.replicas.get(OFFSETS_TOPIC, index) {
        Lookup::Leader(p) => Ok(p),
        // Another broker leads it: the client finds the coordinator again.
        Lookup::NotLeader => Err(GroupError::NotCoordinator),
        Lookup::Unknown => Err(GroupError::CoordinatorNotAvailable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vltava_log::{LogConfig, LogDir, LogDirOptions, TopicPartition};

    fn partition(dir: &std::path::Path) -> (LogDir, Partition) {
        let logs = LogDir::open(dir, LogDirOptions::default()).unwrap();
        let tp = TopicPartition::new(OFFSETS_TOPIC, 0);
        let log = logs.open_log(&tp, LogConfig::default()).unwrap();
        let p = Partition::new(OFFSETS_TOPIC.into(), Default::default(), 0, log, 0);
        (logs, p)
    }

    #[test]
    fn many_records_go_in_one_batch_the_log_accepts_and_replay_returns_them() {
        let dir = tempfile::tempdir().unwrap();
        let (_logs, p) = partition(dir.path());
        let records: Vec<KeyValue> = (0..3u8)
            .map(|i| (vec![i], (i != 1).then(|| vec![i, i])))
            .collect();
        assert_eq!(append(&p, &records, 1000).unwrap(), 0);
        assert_eq!(append(&p, &records[..1], 1001).unwrap(), 3);
        let replayed = replay(&p.log).unwrap();
        let got: Vec<(i64, Vec<u8>, Option<Vec<u8>>)> = replayed
            .into_iter()
            .map(|(o, k, v)| (o, k.to_vec(), v.map(|v| v.to_vec())))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, vec![0], Some(vec![0, 0])),
                (1, vec![1], None),
                (2, vec![2], Some(vec![2, 2])),
                (3, vec![0], Some(vec![0, 0])),
            ]
        );
    }
}
