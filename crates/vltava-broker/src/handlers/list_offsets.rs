//! ListOffsets (2): earliest (-2), latest (-1), max timestamp (-3, KIP-734), earliest local
//! (-4, KIP-405: no tiered storage, so the log start), latest tiered (-5, KIP-1005: nothing is
//! tiered, so no offset), and by timestamp (the first record whose timestamp is at or after it).
//! A special timestamp the request's version does not carry, or a negative one Kafka does not
//! know, is UNSUPPORTED_VERSION, as in Kafka's `ReplicaManager.isListOffsetsTimestampUnsupported`.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{blocking, Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{self, ConnectionError};
use crate::replica::Partition;
use vltava_log::batch::BatchHeader;
use vltava_log::records;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
const EARLIEST_PENDING_UPLOAD: i64 = -6;

/// The first ListOffsets version that may carry each special timestamp (Kafka's
/// `ReplicaManager.timestampMinSupportedVersion`); `None` for a negative timestamp that is
/// none of them.
fn min_version_for(timestamp: i64) -> Option<i16> {
    match timestamp {
        LATEST | EARLIEST => Some(1),
        MAX_TIMESTAMP => Some(7),
        EARLIEST_LOCAL => Some(8),
        LATEST_TIERED => Some(9),
        EARLIEST_PENDING_UPLOAD => Some(11),
        _ => None,
    }
}

fn timestamp_supported(timestamp: i64, version: i16) -> bool {
    timestamp >= 0 || min_version_for(timestamp).is_some_and(|min| version >= min)
}

/// The answer for one partition: offset, its record's timestamp, its leader epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub offset: i64,
    pub timestamp: i64,
    pub leader_epoch: i32,
}

const NOT_FOUND: Found = Found {
    offset: -1,
    timestamp: -1,
    leader_epoch: -1,
};

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: ListOffsetsRequest,
) -> Result<Reply, ConnectionError> {
    let mut jobs = Vec::new();
    let mut response = ListOffsetsResponse::default();
    for (ti, topic) in request.topics.iter().enumerate() {
        let mut t = ListOffsetsTopicResponse::default().with_name(topic.name.clone());
        for (pi, p) in topic.partitions.iter().enumerate() {
            t.partitions.push(
                ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_timestamp(-1)
                    .with_offset(-1),
            );
            // Kafka checks the timestamp before it looks the partition up.
            let partition = if timestamp_supported(p.timestamp, ctx.api_version) {
                broker.replicas.get(&topic.name, p.partition_index).leader()
            } else {
                Err(error::UNSUPPORTED_VERSION)
            };
            jobs.push((ti, pi, partition, p.timestamp, p.current_leader_epoch));
        }
        response.topics.push(t);
    }
    // read_committed consumers see the end of the log at the last stable offset.
    let read_committed = request.isolation_level == 1;
    let results = blocking(move || {
        jobs.into_iter()
            .map(|(ti, pi, partition, timestamp, current_epoch)| {
                let found = partition.and_then(|p| {
                    if ctx_epoch_fenced(&p, current_epoch) {
                        return Err(error::FENCED_LEADER_EPOCH);
                    }
                    lookup(&p, timestamp).map(|mut found| {
                        if read_committed && timestamp == LATEST {
                            found.offset = p.last_stable_offset();
                        }
                        found
                    })
                });
                (ti, pi, found)
            })
            .collect::<Vec<_>>()
    })
    .await?;
    for (ti, pi, found) in results {
        let Some(p) = response
            .topics
            .get_mut(ti)
            .and_then(|t| t.partitions.get_mut(pi))
        else {
            continue;
        };
        match found {
            Ok(found) => {
                p.offset = found.offset;
                p.timestamp = found.timestamp;
                if ctx.api_version >= 4 {
                    p.leader_epoch = found.leader_epoch;
                }
            }
            Err(code) => p.error_code = code,
        }
    }
    ctx.reply(&response)
}

fn ctx_epoch_fenced(partition: &Partition, current_leader_epoch: i32) -> bool {
    current_leader_epoch >= 0 && current_leader_epoch < partition.leader_epoch()
}

/// Resolves one timestamp query against a partition. Blocking (reads segment files).
pub fn lookup(partition: &Partition, timestamp: i64) -> Result<Found, i16> {
    let log = &partition.log;
    let epoch = log
        .latest_leader_epoch()
        .unwrap_or(partition.leader_epoch());
    match timestamp {
        LATEST => Ok(Found {
            offset: partition.high_watermark(),
            timestamp: -1,
            leader_epoch: epoch,
        }),
        EARLIEST | EARLIEST_LOCAL => Ok(Found {
            offset: partition.log_start_offset(),
            timestamp: -1,
            leader_epoch: epoch,
        }),
        // Without tiered storage nothing has been uploaded and nothing waits for upload:
        // Kafka answers offset -1 and epoch -1 (UnifiedLog.fetchOffsetByTimestamp).
        LATEST_TIERED | EARLIEST_PENDING_UPLOAD => Ok(NOT_FOUND),
        MAX_TIMESTAMP => {
            let batch = log
                .max_timestamp_batch()
                .map_err(|e| error::log_error_code(&e))?;
            match batch {
                None => Ok(NOT_FOUND),
                Some(batch) => {
                    let max = max_record(&batch, log.config().max_decompressed_bytes())?;
                    Ok(max.unwrap_or(NOT_FOUND))
                }
            }
        }
        ts if ts >= 0 => {
            let batch = log
                .find_batch_by_timestamp(ts)
                .map_err(|e| error::log_error_code(&e))?;
            match batch {
                None => Ok(NOT_FOUND),
                Some(batch) => Ok(first_record_at_or_after(
                    &batch,
                    ts,
                    log.config().max_decompressed_bytes(),
                )?
                .unwrap_or(NOT_FOUND)),
            }
        }
        _ => Err(error::INVALID_REQUEST),
    }
}

/// Calls `visit` with each data record of one stored batch (none for a control batch), reading
/// them as a stream with decompression bounded as on the produce path, so a lookup allocates
/// nothing per record.
fn for_each_data_record(
    batch: &[u8],
    max_decompressed_bytes: u64,
    mut visit: impl FnMut(Found),
) -> Result<(), i16> {
    let header = BatchHeader::parse(batch).ok_or(error::CORRUPT_MESSAGE)?;
    if header.is_control() {
        return Ok(());
    }
    records::for_each_record(batch, &header, max_decompressed_bytes, |r| {
        visit(Found {
            offset: header.base_offset + i64::from(r.offset_delta),
            timestamp: header.base_timestamp + r.timestamp_delta,
            leader_epoch: header.partition_leader_epoch,
        })
    })
    .map_err(|_| error::CORRUPT_MESSAGE)
}

/// The first record of `batch` with timestamp >= `ts`.
pub fn first_record_at_or_after(
    batch: &[u8],
    ts: i64,
    max_decompressed_bytes: u64,
) -> Result<Option<Found>, i16> {
    let mut first = None;
    for_each_data_record(batch, max_decompressed_bytes, |r| {
        if first.is_none() && r.timestamp >= ts {
            first = Some(r);
        }
    })?;
    Ok(first)
}

/// The (first) record with the largest timestamp in `batch`.
pub fn max_record(batch: &[u8], max_decompressed_bytes: u64) -> Result<Option<Found>, i16> {
    let mut best: Option<Found> = None;
    for_each_data_record(batch, max_decompressed_bytes, |r| {
        if best.is_none_or(|b| r.timestamp > b.timestamp) {
            best = Some(r);
        }
    })?;
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// One gzip batch at base offset 10, leader epoch 3, records stamped as given.
    fn batch(timestamps: &[i64]) -> Vec<u8> {
        let records: Vec<Record> = timestamps
            .iter()
            .enumerate()
            .map(|(i, &timestamp)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 3,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: 10 + i as i64,
                // The encoder starts a new batch whenever offset - sequence changes.
                sequence: i as i32 - 1,
                timestamp,
                key: None,
                value: Some(Bytes::from_static(b"v")),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::Gzip,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode");
        buf.to_vec()
    }

    #[test]
    fn timestamp_lookups_read_the_records_of_a_compressed_batch() {
        let b = batch(&[100, 300, 200, 300]);
        let at = |offset, timestamp| Found {
            offset,
            timestamp,
            leader_epoch: 3,
        };
        let cap = 1 << 20;
        assert_eq!(
            first_record_at_or_after(&b, 150, cap),
            Ok(Some(at(11, 300)))
        );
        assert_eq!(
            first_record_at_or_after(&b, 100, cap),
            Ok(Some(at(10, 100)))
        );
        assert_eq!(first_record_at_or_after(&b, 301, cap), Ok(None));
        // The first of two records with the largest timestamp, as Kafka answers.
        assert_eq!(max_record(&b, cap), Ok(Some(at(11, 300))));
        // Past the decompression cap, or not a batch: CORRUPT_MESSAGE.
        assert_eq!(max_record(&b, 4), Err(error::CORRUPT_MESSAGE));
        assert_eq!(max_record(&b[..20], cap), Err(error::CORRUPT_MESSAGE));
    }

    #[test]
    fn special_timestamps_need_the_version_that_introduced_them() {
        assert!(timestamp_supported(-1, 1) && timestamp_supported(-2, 1));
        assert!(!timestamp_supported(-3, 6) && timestamp_supported(-3, 7));
        assert!(!timestamp_supported(-4, 7) && timestamp_supported(-4, 8));
        assert!(!timestamp_supported(-5, 8) && timestamp_supported(-5, 9));
        assert!(!timestamp_supported(-6, 10) && timestamp_supported(-6, 11));
        assert!(!timestamp_supported(-7, 11));
        assert!(timestamp_supported(0, 1) && timestamp_supported(i64::MAX, 1));
    }
}
