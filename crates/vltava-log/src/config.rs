//! Per-partition log settings, with Kafka's topic-level names and defaults.

/// How the broker stamps `maxTimestamp` of appended batches (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// Keep the producer's timestamps.
    #[default]
    CreateTime,
    /// Overwrite `maxTimestamp` with the broker's clock and set the timestamp-type attribute bit.
    LogAppendTime,
}

/// The default of `log.page.cache.tail.bytes`: 64 MiB per partition.
pub const DEFAULT_PAGE_CACHE_TAIL_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment before it would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll a non-empty active segment older than this.
    pub segment_ms: u64,
    /// `segment.index.bytes`: the most an offset or time index file may hold.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`: bytes of log between two offset index entries.
    pub index_interval_bytes: u64,
    /// `flush.messages`: fsync after this many unflushed records.
    pub flush_messages: u64,
    /// `flush.ms`: fsync when the oldest unflushed append is this old.
    pub flush_ms: u64,
    /// `retention.ms`: delete segments whose newest record is older; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete the oldest segments while the log is larger; -1 is unlimited.
    pub retention_bytes: i64,
    /// `max.message.bytes`: the largest batch one append may carry.
    pub max_message_bytes: u32,
    /// `message.timestamp.type`.
    pub message_timestamp_type: TimestampType,
    /// `cleanup.policy` contains `compact`: every record a producer writes needs a key (Kafka's
    /// `LogValidator.validateKey`).
    pub compact: bool,
    /// `message.timestamp.before.max.ms` (KIP-937; Long.MAX_VALUE): how far in the past a
    /// CreateTime record's timestamp may lie.
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms` (KIP-937; one hour since Kafka 4.0, KIP-1030): how far
    /// in the future.
    pub message_timestamp_after_max_ms: i64,
    /// `log.page.cache.tail.bytes` (Vltava's, broker-wide): how much of the partition's end stays
    /// in the page cache; older bytes are handed back to the kernel once on disk, unflushed ones
    /// written back as they come (`page_cache`). `None` leaves the page cache and writeback to
    /// the kernel, as Kafka does.
    pub page_cache_tail_bytes: Option<u64>,
    /// `preallocate` (false, as in Kafka): reserve `segment.bytes` of disk blocks when a segment
    /// is created, so appends and fsyncs find the blocks allocated; what the segment did not use
    /// is given back when it rolls.
    pub preallocate: bool,
}

impl LogConfig {
    /// The most a compressed producer batch may expand to when its records must be read: 64
    /// times `max.message.bytes` (at least 1 MiB of it), 64 MiB by default. Kafka reads without
    /// a bound; real batches compress well under 64:1, a decompression bomb does not stop there.
    pub fn max_decompressed_bytes(&self) -> u64 {
        u64::from(self.max_message_bytes.max(1 << 20)) * 64
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            flush_messages: u64::MAX,
            flush_ms: u64::MAX,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            max_message_bytes: 1_048_588,
            message_timestamp_type: TimestampType::CreateTime,
            compact: false,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: 3_600_000,
            page_cache_tail_bytes: Some(DEFAULT_PAGE_CACHE_TAIL_BYTES),
            preallocate: false,
        }
    }
}
