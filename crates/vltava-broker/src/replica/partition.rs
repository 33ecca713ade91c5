// HOT PATH: produce and fetch go through `Partition::append` and `Partition::read_up_to` (or
// their in-memory variants).
//! One partition led by this broker: its log, its leader epoch, and the signal that wakes
//! fetches waiting for data.
//!
//! High watermark: with one replica the ISR is this broker alone, so the high watermark is the
//! log end offset as soon as an append returns (Kafka's rule for a single-replica ISR). We do not
//! hold it back to the flushed offset: acks=all producers still wait for fsync, but consumers may
//! read data that is in the page cache and not yet on disk, exactly as Kafka allows. Replication
//! (a later issue) will track follower offsets here and take the minimum over the ISR.

use std::future::Future;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use uuid::Uuid;
use vltava_log::{AppendInfo, Log, LogError, ReadInfo};

use super::flusher::Flusher;

#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    pub log: Arc<Log>,
    leader_epoch: AtomicI32,
    /// Notified after every append (and truncation), waking long-polling fetches.
    appended: Notify,
    /// Runs the fsyncs acks=all answers wait for.
    flusher: Flusher,
    /// Bytes appended and read, registered once here so the hot path only adds.
    bytes_in: metrics::Counter,
    bytes_out: metrics::Counter,
}

impl Partition {
    pub fn new(
        topic: String,
        topic_id: Uuid,
        index: i32,
        log: Arc<Log>,
        leader_epoch: i32,
    ) -> Self {
        Partition {
            topic_id,
            index,
            flusher: Flusher::new(Arc::clone(&log)),
            log,
            leader_epoch: AtomicI32::new(leader_epoch),
            appended: Notify::new(),
            bytes_in: metrics::counter!(crate::metrics::BYTES_IN, "topic" => topic.clone()),
            bytes_out: metrics::counter!(crate::metrics::BYTES_OUT, "topic" => topic.clone()),
            topic,
        }
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn set_leader_epoch(&self, epoch: i32) {
        self.leader_epoch.store(epoch, Ordering::Release);
    }

    /// Appends producer batches (validated and offset-assigned by the log). Blocking file I/O.
    pub fn append(&self, batches: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let info = self.log.append(batches, self.leader_epoch(), now_ms)?;
        self.bytes_in.increment(batches.len() as u64);
        self.appended.notify_waiters();
        Ok(info)
    }

    /// [`Partition::append`] if it needs nothing slow (see [`vltava_log::Log::try_append_in_memory`]);
    /// `None` with nothing appended otherwise.
    pub fn try_append_in_memory(
        &self,
        batches: &[u8],
        now_ms: i64,
    ) -> Result<Option<vltava_log::QuickAppend>, LogError> {
        let appended = self
            .log
            .try_append_in_memory(batches, self.leader_epoch(), now_ms)?;
        if appended.is_some() {
            self.bytes_in.increment(batches.len() as u64);
            self.appended.notify_waiters();
        }
        Ok(appended)
    }

    /// [`Partition::append`] of a transactional producer's batch after KIP-890 verification
    /// (`guard`: see [`vltava_log::Log::append_verified`]).
    pub fn append_verified(
        &self,
        batches: &[u8],
        now_ms: i64,
        guard: Option<vltava_log::VerificationGuard>,
    ) -> Result<AppendInfo, LogError> {
        let info = self
            .log
            .append_verified(batches, self.leader_epoch(), now_ms, guard)?;
        self.bytes_in.increment(batches.len() as u64);
        self.appended.notify_waiters();
        Ok(info)
    }

    /// Reads from `offset` below `max_offset` and the high watermark (the last stable offset
    /// for read_committed fetches), not counted: a long poll may read again before it
    /// answers (see [`Partition::count_bytes_out`]).
    pub fn read_up_to(
        &self,
        offset: i64,
        max_bytes: u32,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<ReadInfo, LogError> {
        let bound = max_offset.min(self.high_watermark());
        self.log.read(offset, max_bytes, bound, min_one_batch)
    }

    /// [`Partition::read_up_to`] where [`Log::try_read_in_memory`] reads without waiting or
    /// touching the disk; `None` where it declines.
    pub fn try_read_up_to_in_memory(
        &self,
        offset: i64,
        max_bytes: u32,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<Option<ReadInfo>, LogError> {
        let bound = max_offset.min(self.high_watermark());
        self.log
            .try_read_in_memory(offset, max_bytes, bound, min_one_batch)
    }

    /// Counts bytes a fetch answer sends from this partition's log.
    pub fn count_bytes_out(&self, bytes: u32) {
        self.bytes_out.increment(u64::from(bytes));
    }

    /// Completes once everything below `up_to` is on disk (acks=all); the fsync is asked for
    /// at the call. See [`Flusher::durable`].
    pub fn durable(&self, up_to: i64) -> impl Future<Output = Result<(), LogError>> + Send {
        self.flusher.durable(up_to)
    }

    pub fn high_watermark(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// Last stable offset: read_committed consumers read below it (min of the first offset of
    /// an open transaction and the high watermark).
    pub fn last_stable_offset(&self) -> i64 {
        self.log.last_stable_offset(self.high_watermark())
    }

    /// Appends a COMMIT/ABORT marker for a producer's transaction (WriteTxnMarkers) and wakes
    /// fetches (the last stable offset may have moved). Blocking file I/O.
    pub fn append_txn_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: vltava_log::control::TxnMarker,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let info = self.log.append_txn_marker(
            producer_id,
            producer_epoch,
            marker,
            self.leader_epoch(),
            now_ms,
        )?;
        self.appended.notify_waiters();
        Ok(info)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    /// Wakes waiting fetches (after truncation or deletion changes what they would read).
    pub fn wake_fetches(&self) {
        self.appended.notify_waiters();
    }

    /// A future that completes at the next append. Call `enable()` on it (pinned) before
    /// re-checking the condition, so an append in between is not missed.
    pub fn next_append(&self) -> Notified<'_> {
        self.appended.notified()
    }
}
