//! Kafka's per-record rules for producer batches (`LogValidator.validateRecord`): a key on every
//! record of a compacted topic, timestamps within `message.timestamp.before.max.ms` /
//! `message.timestamp.after.max.ms` (KIP-937) on CreateTime topics, and no LogAppendTime set by
//! a producer.
//!
//! HOT PATH: every producer batch passes [`check`]. For an uncompressed batch on a topic that is
//! not compacted the header settles the common case: the records' timestamps are only read
//! (with [`records::for_each_record`]) when the batch's `baseTimestamp` or `maxTimestamp` falls
//! outside the bounds. That reading then decides exactly, record by record, as Kafka does; an
//! uncompressed batch whose header timestamps are in bounds is accepted without looking
//! further, even if one of its records (a timestamp below the base, which producers do not
//! write) would be out of bounds in Kafka. Batches for compacted topics are always read, keys
//! and timestamps checked per record.
//!
//! Compressed batches are always read too, as Kafka's `LogValidator` does: a batch whose CRC is
//! right but whose records do not decompress (or decompress past the cap, or to another count
//! than the header's) would otherwise be stored and break every consumer of the partition. It
//! costs a decompression per compressed batch (the batch is still stored as the producer
//! compressed it), which Kafka pays too.

use crate::batch::BatchHeader;
use crate::config::{LogConfig, TimestampType};
use crate::error::{LogError, Result};
use crate::records;

/// Kafka's `RecordBatch.NO_TIMESTAMP`: a record without a timestamp is never out of bounds.
const NO_TIMESTAMP: i64 = -1;

/// At most this many record errors are kept for the answer; the count of all is kept too.
/// (Kafka lists every one; a batch of millions of bad records must not cost that much memory.)
pub const MAX_RECORD_ERRORS: usize = 1000;

/// Why one record was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordRejection {
    /// A record without a key on a compacted topic (INVALID_RECORD).
    MissingKey,
    /// A CreateTime timestamp outside `[now - before.max.ms, now + after.max.ms]`
    /// (INVALID_TIMESTAMP).
    TimestampOutOfRange {
        timestamp: i64,
        offset_delta: i32,
        lower: i64,
        upper: i64,
    },
    /// The producer set the LogAppendTime attribute, which only the broker may (INVALID_TIMESTAMP).
    LogAppendTimeFromProducer,
}

impl RecordRejection {
    pub fn is_timestamp(&self) -> bool {
        matches!(
            self,
            RecordRejection::TimestampOutOfRange { .. }
                | RecordRejection::LogAppendTimeFromProducer
        )
    }

    /// The record error's message, in Kafka's words.
    pub fn message(&self) -> String {
        match *self {
            RecordRejection::TimestampOutOfRange {
                timestamp,
                offset_delta,
                lower,
                upper,
            } => format!(
                "Timestamp {timestamp} of message with offset {offset_delta} is out of range. \
                 The timestamp should be within [{lower}, {upper}]"
            ),
            RecordRejection::LogAppendTimeFromProducer => "Invalid timestamp type in message. \
                 Producer should not set timestamp type to LogAppendTime."
                .to_string(),
            RecordRejection::MissingKey => {
                "Compacted topic cannot accept message without key.".to_string()
            }
        }
    }
}

/// One refused record: its index in the batch and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordError {
    pub batch_index: i32,
    pub reason: RecordRejection,
}

/// The timestamp window of a CreateTime topic at `now_ms`.
#[derive(Debug, Clone, Copy)]
struct Window {
    now_ms: i64,
    before_max_ms: i64,
    after_max_ms: i64,
}

impl Window {
    /// Kafka's `recordHasInvalidTimestamp`, without its overflow for extreme values.
    fn excludes(&self, timestamp: i64) -> bool {
        let diff = i128::from(self.now_ms) - i128::from(timestamp);
        diff > i128::from(self.before_max_ms) || -diff > i128::from(self.after_max_ms)
    }

    fn rejection(&self, timestamp: i64, offset_delta: i32) -> RecordRejection {
        RecordRejection::TimestampOutOfRange {
            timestamp,
            offset_delta,
            lower: self.now_ms.saturating_sub(self.before_max_ms),
            upper: self.now_ms.saturating_add(self.after_max_ms),
        }
    }
}

/// Applies the per-record rules to one validated producer batch at `now_ms`.
pub fn check(batch: &[u8], header: &BatchHeader, config: &LogConfig, now_ms: i64) -> Result<()> {
    let window = (config.message_timestamp_type == TimestampType::CreateTime).then_some(Window {
        now_ms,
        before_max_ms: config.message_timestamp_before_max_ms,
        after_max_ms: config.message_timestamp_after_max_ms,
    });
    let log_append_time = header.is_log_append_time();
    // Kafka's validateTimestamp for one record's timestamp.
    let timestamp_rule = |timestamp: i64, offset_delta: i32| match window {
        Some(w) if timestamp != NO_TIMESTAMP => w
            .excludes(timestamp)
            .then(|| w.rejection(timestamp, offset_delta)),
        _ if log_append_time => Some(RecordRejection::LogAppendTimeFromProducer),
        _ => None,
    };
    // Every record of a LogAppendTime batch has the batch's maxTimestamp (DefaultRecordBatch).
    let timestamp_of = |delta: i64| {
        if log_append_time {
            header.max_timestamp
        } else {
            header.base_timestamp.saturating_add(delta)
        }
    };
    let mut errors = Errors::default();
    if !config.compact {
        if log_append_time {
            if let Some(reason) = timestamp_rule(header.max_timestamp, 0) {
                errors.push_all(header.records_count, reason);
            }
            return errors.into_result();
        }
        let header_in_bounds = [header.base_timestamp, header.max_timestamp]
            .iter()
            .all(|&ts| timestamp_rule(ts, 0).is_none());
        if header_in_bounds && header.compression() == 0 {
            return Ok(());
        }
    }
    records::for_each_record(batch, header, config.max_decompressed_bytes(), |record| {
        // Kafka reports a missing key before looking at the timestamp.
        let rejection = if config.compact && !record.has_key {
            Some(RecordRejection::MissingKey)
        } else {
            timestamp_rule(timestamp_of(record.timestamp_delta), record.offset_delta)
        };
        if let Some(reason) = rejection {
            errors.push(RecordError {
                batch_index: record.index,
                reason,
            });
        }
    })?;
    errors.into_result()
}

#[derive(Default)]
struct Errors {
    kept: Vec<RecordError>,
    total: usize,
    invalid_timestamp: bool,
}

impl Errors {
    fn push(&mut self, error: RecordError) {
        self.total += 1;
        self.invalid_timestamp |= error.reason.is_timestamp();
        if self.kept.len() < MAX_RECORD_ERRORS {
            self.kept.push(error);
        }
    }

    /// The same rejection for every record of a batch of `count`.
    fn push_all(&mut self, count: i32, reason: RecordRejection) {
        let count = usize::try_from(count).unwrap_or(0);
        let kept = count.min(MAX_RECORD_ERRORS);
        for batch_index in 0..kept {
            self.push(RecordError {
                batch_index: batch_index as i32,
                reason,
            });
        }
        self.total += count - kept;
    }

    fn into_result(self) -> Result<()> {
        if self.total == 0 {
            return Ok(());
        }
        Err(LogError::RecordsRejected {
            errors: self.kept,
            total: self.total,
            invalid_timestamp: self.invalid_timestamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{build_test_batch_of, validate, TestRecord};

    const HOUR: i64 = 3_600_000;
    const NOW: i64 = 1_700_000_000_000;

    fn bounded(before: i64, after: i64) -> LogConfig {
        LogConfig {
            message_timestamp_before_max_ms: before,
            message_timestamp_after_max_ms: after,
            ..LogConfig::default()
        }
    }

    fn records(deltas: &[i64]) -> Vec<TestRecord<'static>> {
        deltas
            .iter()
            .map(|&timestamp_delta| TestRecord {
                key: Some(b"k"),
                timestamp_delta,
                value: b"v",
            })
            .collect()
    }

    fn run(bytes: &[u8], config: &LogConfig) -> Result<()> {
        let header = validate(bytes, 0).expect("valid");
        check(bytes, &header, config, NOW)
    }

    fn rejected(result: Result<()>) -> (i16, Vec<i32>) {
        match result {
            Err(e @ LogError::RecordsRejected { .. }) => {
                let code = e.kafka_error_code();
                let LogError::RecordsRejected { errors, .. } = e else {
                    unreachable!()
                };
                (code, errors.iter().map(|e| e.batch_index).collect())
            }
            other => panic!("expected rejected records, got {other:?}"),
        }
    }

    #[test]
    fn timestamps_within_the_window_pass_without_reading_records() {
        let config = bounded(HOUR, HOUR);
        let bytes = build_test_batch_of(NOW - HOUR, &records(&[0, HOUR, 2 * HOUR]));
        assert!(run(&bytes, &config).is_ok());
    }

    #[test]
    fn too_old_and_too_new_records_are_invalid_timestamps_with_their_indexes() {
        let config = bounded(HOUR, HOUR);
        let old = build_test_batch_of(NOW - 2 * HOUR, &records(&[0, HOUR, 2 * HOUR]));
        assert_eq!(rejected(run(&old, &config)), (32, vec![0]));
        let new = build_test_batch_of(NOW, &records(&[0, 2 * HOUR, HOUR, 3 * HOUR]));
        assert_eq!(rejected(run(&new, &config)), (32, vec![1, 3]));
    }

    /// A header that looks out of bounds only decides that the records are read; the records
    /// decide, as in Kafka.
    #[test]
    fn the_records_decide_when_the_header_disagrees() {
        let config = bounded(HOUR, HOUR);
        let mut bytes = build_test_batch_of(NOW, &records(&[0, 10]));
        // maxTimestamp claims the far future; the records are at NOW and NOW + 10.
        bytes[35..43].copy_from_slice(&(NOW + 10 * HOUR).to_be_bytes());
        crate::batch::rewrite_crc(&mut bytes);
        assert!(run(&bytes, &config).is_ok());
    }

    #[test]
    fn defaults_take_any_past_and_one_hour_of_future() {
        let config = LogConfig::default();
        let ancient = build_test_batch_of(1_000, &records(&[0]));
        assert!(run(&ancient, &config).is_ok());
        let soon = build_test_batch_of(NOW + HOUR, &records(&[0]));
        assert!(run(&soon, &config).is_ok());
        let later = build_test_batch_of(NOW + HOUR + 1, &records(&[0]));
        assert_eq!(rejected(run(&later, &config)).0, 32);
    }

    #[test]
    fn log_append_time_topics_do_not_bound_timestamps() {
        let config = LogConfig {
            message_timestamp_type: TimestampType::LogAppendTime,
            ..bounded(0, 0)
        };
        let bytes = build_test_batch_of(1_000, &records(&[0]));
        assert!(run(&bytes, &config).is_ok());
    }

    #[test]
    fn a_producer_may_not_set_log_append_time() {
        let mut bytes = build_test_batch_of(NOW, &records(&[0, 1]));
        bytes[22] |= 0x08;
        crate::batch::rewrite_crc(&mut bytes);
        let lat_topic = LogConfig {
            message_timestamp_type: TimestampType::LogAppendTime,
            ..LogConfig::default()
        };
        assert_eq!(rejected(run(&bytes, &lat_topic)), (32, vec![0, 1]));
        // On a CreateTime topic the records carry maxTimestamp, which is in bounds: accepted,
        // as Kafka does.
        assert!(run(&bytes, &LogConfig::default()).is_ok());
    }

    fn keyed(keys: &[Option<&'static [u8]>]) -> Vec<TestRecord<'static>> {
        keys.iter()
            .map(|&key| TestRecord {
                key,
                timestamp_delta: 0,
                value: b"v",
            })
            .collect()
    }

    fn compacted() -> LogConfig {
        LogConfig {
            compact: true,
            ..LogConfig::default()
        }
    }

    #[test]
    fn a_compacted_topic_refuses_keyless_records_with_their_indexes() {
        let bytes = build_test_batch_of(NOW, &keyed(&[Some(b"a"), None, Some(b""), None]));
        assert_eq!(rejected(run(&bytes, &compacted())), (87, vec![1, 3]));
        let all_keyed = build_test_batch_of(NOW, &keyed(&[Some(b"a"), Some(b"")]));
        assert!(
            run(&all_keyed, &compacted()).is_ok(),
            "an empty key is a key"
        );
        let keyless = build_test_batch_of(NOW, &keyed(&[None]));
        assert!(
            run(&keyless, &LogConfig::default()).is_ok(),
            "not compacted"
        );
    }

    #[test]
    fn compressed_keyless_records_are_found_too() {
        use std::io::Write;
        let section = crate::batch::encode_test_records(&keyed(&[Some(b"a"), None]));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&section).unwrap();
        let gzip = crate::batch::wrap_test_records(NOW, NOW, 2, 1, &gz.finish().unwrap());
        assert_eq!(rejected(run(&gzip, &compacted())), (87, vec![1]));
        let zstd = zstd::encode_all(section.as_slice(), 3).unwrap();
        let zstd = crate::batch::wrap_test_records(NOW, NOW, 2, 4, &zstd);
        assert_eq!(rejected(run(&zstd, &compacted())), (87, vec![1]));
    }

    #[test]
    fn a_compressed_batch_on_any_topic_must_decompress_to_its_records() {
        use std::io::Write;
        let section = crate::batch::encode_test_records(&records(&[0, 1]));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&section).unwrap();
        let good = crate::batch::wrap_test_records(NOW, NOW + 1, 2, 1, &gz.finish().unwrap());
        assert!(run(&good, &LogConfig::default()).is_ok());
        // A valid CRC over bytes that are not a gzip stream: stored, it would break consumers.
        let garbage = crate::batch::wrap_test_records(NOW, NOW + 1, 2, 1, b"not gzip at all");
        let err = run(&garbage, &LogConfig::default()).expect_err("does not decompress");
        assert_eq!(err.kafka_error_code(), 87);
        // Fewer records than the header declares.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&section).unwrap();
        let short = crate::batch::wrap_test_records(NOW, NOW + 1, 3, 1, &gz.finish().unwrap());
        assert_eq!(
            run(&short, &LogConfig::default())
                .expect_err("count")
                .kafka_error_code(),
            87
        );
    }

    /// Kafka's processRecordErrors: any timestamp error makes the whole answer INVALID_TIMESTAMP.
    #[test]
    fn a_timestamp_error_among_missing_keys_makes_the_answer_invalid_timestamp() {
        let config = LogConfig {
            message_timestamp_after_max_ms: 0,
            ..compacted()
        };
        let records = [
            TestRecord {
                key: None,
                timestamp_delta: 0,
                value: b"v",
            },
            TestRecord {
                key: Some(b"k"),
                timestamp_delta: 5,
                value: b"v",
            },
        ];
        let bytes = build_test_batch_of(NOW, &records);
        assert_eq!(rejected(run(&bytes, &config)), (32, vec![0, 1]));
    }

    #[test]
    fn no_timestamp_is_never_out_of_bounds() {
        let bytes = build_test_batch_of(NO_TIMESTAMP, &records(&[0]));
        assert!(run(&bytes, &bounded(0, 0)).is_ok());
    }

    #[test]
    fn extreme_timestamps_and_bounds_do_not_overflow() {
        for (ts, before, after) in [
            (i64::MIN + 1, i64::MAX, 0),
            (i64::MAX, 0, i64::MAX),
            (i64::MIN + 1, 0, 0),
        ] {
            let bytes = build_test_batch_of(ts, &records(&[0]));
            let _ = run(&bytes, &bounded(before, after));
        }
    }
}
