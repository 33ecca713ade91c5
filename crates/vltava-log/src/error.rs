//! The log's errors. Each variant says what went wrong with enough context to log it, and maps to
//! exactly one Kafka error code (`LogError::kafka_error_code`) so the broker never guesses.

use std::io;
use std::path::PathBuf;

use crate::record_rules::RecordError;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The bytes are not a valid RecordBatch v2: bad length, CRC mismatch, truncated header.
    #[error("corrupt record batch at byte {position}: {reason}")]
    Corrupt { position: usize, reason: String },

    /// The batch is well formed but breaks a rule of the log (magic, offset range, record count).
    #[error("invalid record batch at byte {position}: {reason}")]
    InvalidRecord { position: usize, reason: String },

    /// Records refused one by one (Kafka's `RecordValidationException` from `LogValidator`):
    /// INVALID_TIMESTAMP when a timestamp is at fault, else INVALID_RECORD. At most
    /// [`MAX_RECORD_ERRORS`](crate::record_rules::MAX_RECORD_ERRORS) are kept of `total`.
    #[error("{total} record(s) rejected; first: {}", errors.first().map(|e| e.reason.message()).unwrap_or_default())]
    RecordsRejected {
        errors: Vec<RecordError>,
        total: usize,
        invalid_timestamp: bool,
    },

    /// One batch is larger than `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    RecordTooLarge { size: usize, max: u32 },

    /// The whole append is larger than a segment can ever hold (`segment.bytes`).
    #[error("append of {size} bytes exceeds segment.bytes {max}")]
    RecordListTooLarge { size: usize, max: u64 },

    #[error("offset {requested} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        requested: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },

    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A write or fsync failed earlier; the log refuses all further I/O rather than risk
    /// acknowledging data that the kernel may have dropped (see fsyncgate).
    #[error("log {path} is offline after an earlier I/O failure")]
    Offline { path: PathBuf },

    /// A producer's batch does not follow its last sequence (Kafka's `ProducerAppendInfo`).
    #[error("out of order sequence {sequence} for producer {producer_id} (last {last_sequence})")]
    OutOfOrderSequence {
        producer_id: i64,
        sequence: i32,
        last_sequence: i32,
    },

    /// A batch or marker from an older epoch than the producer's current one.
    #[error(
        "producer {producer_id} epoch {epoch} is older than the current epoch {current_epoch}"
    )]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },

    /// A write that contradicts the producer's transaction state.
    #[error("invalid transaction state for producer {producer_id}: {reason}")]
    InvalidTxnState { producer_id: i64, reason: String },

    /// A marker from a transaction coordinator older than the last one seen for the producer.
    #[error("marker for producer {producer_id} from coordinator epoch {coordinator_epoch}, but {current} was seen")]
    TransactionCoordinatorFenced {
        producer_id: i64,
        coordinator_epoch: i32,
        current: i32,
    },

    #[error("malformed checkpoint file {path} line {line}: {reason}")]
    Checkpoint {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    /// A read that may not wait ([`Wait::Never`](crate::fs::Wait)) would have: its file is not
    /// open, or its bytes are not in the page cache. It does not leave the crate:
    /// [`Log::try_read_in_memory`](crate::Log::try_read_in_memory) answers `None` instead.
    #[error("the read would wait for the disk")]
    WouldBlock,
}

impl LogError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> LogError {
        LogError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(position: usize, reason: impl Into<String>) -> LogError {
        LogError::Corrupt {
            position,
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(position: usize, reason: impl Into<String>) -> LogError {
        LogError::InvalidRecord {
            position,
            reason: reason.into(),
        }
    }

    /// Kafka's error code for this error (see `Errors.java`).
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            LogError::Corrupt { .. } => 2,        // CORRUPT_MESSAGE
            LogError::InvalidRecord { .. } => 87, // INVALID_RECORD
            LogError::RecordsRejected {
                invalid_timestamp: true,
                ..
            } => 32, // INVALID_TIMESTAMP
            LogError::RecordsRejected { .. } => 87,
            LogError::RecordTooLarge { .. } => 10, // MESSAGE_TOO_LARGE
            LogError::RecordListTooLarge { .. } => 18, // RECORD_LIST_TOO_LARGE
            LogError::OffsetOutOfRange { .. } => 1, // OFFSET_OUT_OF_RANGE
            LogError::OutOfOrderSequence { .. } => 45, // OUT_OF_ORDER_SEQUENCE_NUMBER
            LogError::InvalidProducerEpoch { .. } => 47, // INVALID_PRODUCER_EPOCH
            LogError::InvalidTxnState { .. } => 48, // INVALID_TXN_STATE
            LogError::TransactionCoordinatorFenced { .. } => 52, // TRANSACTION_COORDINATOR_FENCED
            LogError::Io { .. } | LogError::Offline { .. } | LogError::Checkpoint { .. } => 56, // KAFKA_STORAGE_ERROR
            LogError::WouldBlock => -1, // UNKNOWN_SERVER_ERROR; never reaches a client
        }
    }
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;
