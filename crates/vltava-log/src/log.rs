// HOT PATH: append, read and flush of every partition. No per-record work, no info! logging
// except on lifecycle events (segment rolled, segments deleted), no fsync under the state lock.
//! A partition log: an ordered set of segments, the offsets that bound it, and its durability.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::batch::{self, BatchHeader};
use crate::checkpoint;
use crate::config::{LogConfig, TimestampType};
use crate::control::{self, TxnMarker};
use crate::durability::{Durable, GroupCommit};
use crate::epoch::LeaderEpochCache;
use crate::error::{LogError, Result};
use crate::fs::{self, FileCache, Wait};
use crate::index::txn::{AbortedTxn, TxnIndex};
use crate::page_cache::{self, Extent, Released};
use crate::producer_state::{self, PendingUpdate, ProducerEntry, ProducerStateManager};
use crate::record_rules;
use crate::recovery::{self, RecoveryContext};
use crate::retention::{self, SegmentFacts};
use crate::segment::{AssignedBatch, IndexSettings, Segment};
use crate::txn_verification::{VerificationGuard, Verifications};

pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// Kafka's directory name: `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses a directory name; topics may contain `-`, the partition follows the last one.
    pub fn from_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, partition) = name.rsplit_once('-')?;
        if topic.is_empty() {
            return None;
        }
        let partition: i32 = partition.parse().ok()?;
        (partition >= 0).then(|| TopicPartition::new(topic, partition))
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Who is appending: Kafka applies stricter rules to producers than to the broker's own
/// writers (`AppendOrigin` in Kafka's `LogValidator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A producer: exactly one batch, base offset 0, no control batches, a known codec.
    Client,
    /// The broker itself (group and transaction coordinators): well-formed batches.
    Coordinator,
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    /// The broker time stamped into the batches, or -1 for `CreateTime` topics.
    pub log_append_time_ms: i64,
    pub record_count: u64,
    /// The batch repeated one of the producer's last five: nothing was written and the
    /// offsets are the original batch's (Kafka answers NONE with them).
    pub duplicate: bool,
}

/// How far behind a catch-up read its pages are handed back: clear of the pages the socket may
/// still be sending from, which the kernel cannot drop (handing back right behind the reader,
/// with no lag, made catch-up swing between 532 and 1 725 MiB/s).
const HAND_BACK_LAG: u64 = 4 << 20;

/// A byte range of a segment file that holds whole batches (the last one possibly cut short by
/// the size limit, as Kafka allows), ready for `sendfile`.
#[derive(Debug, Clone)]
pub struct FileRange {
    pub file: Arc<File>,
    pub position: u64,
    pub length: u32,
    /// The range lies behind what the log keeps in the page cache (`log.page.cache.tail.bytes`):
    /// its pages go back to the kernel once sent ([`FileRange::hand_back`]).
    pub beyond_tail: bool,
    /// The range ends where its segment, which no longer grows, ends.
    pub ends_segment: bool,
}

impl FileRange {
    /// Lets the kernel drop the cached pages a catch-up read behind the tail has sent, so it
    /// does not grow the page cache: what the fetches before this one sent, up to
    /// `HAND_BACK_LAG` (4 MiB) behind this one, in whole page-cache folios (the kernel drops only
    /// those wholly inside the range); at the end of a segment, the rest of it. Read-ahead is
    /// the kernel's own, which keeps ahead of a sequential reader in large folios.
    ///
    /// Before, each fetch's own bytes were handed back as sent and the next MiB read ahead with
    /// `POSIX_FADV_WILLNEED`: that read in 4 KiB pages, the exact ranges cut through folios and
    /// left a fifth of a 1 GiB segment cached (fincore), and fadvise took 37 % of the broker's
    /// CPU (perf; 2 % now). Catch-up of 1 GiB from disk on the benchmark VM, 8 alternating runs:
    /// 1 MiB fetches 851-1 241 -> 1 732-2 105 MiB/s, librdkafka 752-1 011 -> 980-1 914,
    /// 16 MiB fetches unchanged (1 399-1 609 -> 1 315-1 682).
    pub fn hand_back(&self) {
        if !self.beyond_tail {
            return;
        }
        let folio = |at: u64| at - at % page_cache::LARGEST_FOLIO;
        let behind = self.position.saturating_sub(HAND_BACK_LAG);
        let from = folio(behind.saturating_sub(u64::from(self.length)));
        let to = (!self.ends_segment).then(|| folio(behind));
        page_cache::hand_back(&self.file, from, to);
    }

    pub fn read_to_vec(&self) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; self.length as usize];
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(buf)
    }
}

#[derive(Debug, Clone)]
pub struct ReadInfo {
    pub range: Option<FileRange>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

#[derive(Debug)]
pub(crate) struct LogState {
    pub config: LogConfig,
    /// By base offset; never empty: the last one is the active segment.
    pub segments: BTreeMap<i64, Segment>,
    pub log_start_offset: i64,
    pub epochs: LeaderEpochCache,
    /// A segment was created or deleted since the directory was last fsynced.
    pub dir_dirty: bool,
    pub unflushed_messages: u64,
    pub oldest_unflushed_ms: Option<i64>,
    /// Idempotent and transactional producers (see `producer_state`).
    pub producers: ProducerStateManager,
    /// Aborted transactions per segment (the `.txnindex` files).
    pub txn_index: TxnIndex,
    /// Transactions being verified with their coordinators (KIP-890); not persisted.
    pub verifications: Verifications,
    /// How far flushed bytes were handed back to the kernel (`page_cache`).
    pub released: Released,
}

impl LogState {
    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    pub(crate) fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }
}

/// A segment file's bytes to hand back: from, and up to (`None`: its end).
type FileRelease = (Arc<File>, u64, Option<u64>);

/// Segment bytes to hand back, and the mark once they are.
type ReleasePlan = (Vec<FileRelease>, Released);

/// How near the end of the active segment [`Log::try_read_in_memory`] starts reading: the
/// batch headers it reads there were appended a moment ago, so are most likely still in the
/// page cache.
pub(crate) const QUICK_READ_WINDOW: u64 = 1 << 20;

/// A [`Log::try_append_in_memory`] that appended.
#[derive(Debug)]
pub struct QuickAppend {
    pub info: AppendInfo,
    /// Writeback the append started: run it with [`PendingWriteback::run`] where blocking is
    /// fine (it waits for earlier bytes to reach the disk before handing their pages back).
    pub writeback: Option<PendingWriteback>,
}

/// Writeback an append left to its caller.
#[derive(Debug)]
pub struct PendingWriteback(Writeback);

impl PendingWriteback {
    pub fn run(self, log: &Log) {
        self.0.run(log);
    }
}

/// Appended bytes to start writing back, and what to hand back then; run outside the lock.
#[derive(Debug)]
struct Writeback {
    ranges: Vec<(Arc<File>, u64, u64)>,
    release: Option<ReleasePlan>,
}

impl Writeback {
    fn run(self, log: &Log) {
        for (file, from, to) in &self.ranges {
            page_cache::writeback::start(file, *from, *to);
        }
        if let Some(release) = self.release {
            log.release(release);
        }
    }
}

#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    topic_partition: TopicPartition,
    cache: Arc<FileCache>,
    state: Mutex<LogState>,
    commit: GroupCommit,
    /// Mirrors of the state for lock-free reads by the broker.
    log_end_offset: AtomicI64,
    log_start_offset: AtomicI64,
    /// First offset of the oldest open transaction, `i64::MAX` when none (bounds the LSO).
    first_unstable_offset: AtomicI64,
}

impl Log {
    /// Opens (creating if missing) the log in `dir`, recovering it if the context says the
    /// last shutdown was unclean.
    pub fn open(
        dir: &Path,
        topic_partition: TopicPartition,
        config: LogConfig,
        cache: Arc<FileCache>,
        context: RecoveryContext,
    ) -> Result<Log> {
        std::fs::create_dir_all(dir).map_err(|e| LogError::io("create partition dir", dir, e))?;
        let (mut state, recovery_point) =
            recovery::load(dir, &topic_partition, config, &cache, context)?;
        let trust = crate::producer_recovery::Trust {
            clean_shutdown: context.clean_shutdown,
            recovery_point: context.recovery_point,
        };
        crate::producer_recovery::rebuild(dir, &mut state, &cache, trust)?;
        let log_end = state.log_end_offset();
        let log_start = state.log_start_offset;
        let unstable = state.producers.first_unstable_offset().unwrap_or(i64::MAX);
        Ok(Log {
            dir: dir.to_path_buf(),
            topic_partition,
            cache,
            state: Mutex::new(state),
            commit: GroupCommit::new(recovery_point),
            log_end_offset: AtomicI64::new(log_end),
            log_start_offset: AtomicI64::new(log_start),
            first_unstable_offset: AtomicI64::new(unstable),
        })
    }

    pub fn topic_partition(&self) -> &TopicPartition {
        &self.topic_partition
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    /// Everything below this offset is on stable storage.
    pub fn flushed_offset(&self) -> i64 {
        self.commit.durable_offset()
    }

    pub fn config(&self) -> LogConfig {
        self.lock().config.clone()
    }

    pub fn set_config(&self, config: LogConfig) {
        self.lock().config = config;
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        // State changes are completed before any call that could panic, so a poisoned lock
        // still guards consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`Log::lock`], or with `quick` `None` while another caller holds the log: a fast path
    /// never waits behind a slow holder (a roll, a retention delete, a 1 MiB append).
    fn lock_unless_busy(&self, quick: bool) -> Option<MutexGuard<'_, LogState>> {
        if !quick {
            return Some(self.lock());
        }
        match self.state.try_lock() {
            Ok(state) => Some(state),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    fn check_online(&self) -> Result<()> {
        if self.commit.is_poisoned() {
            return Err(self.offline_error());
        }
        Ok(())
    }

    /// The error every call answers once an fsync failed (the log is offline for good).
    pub fn offline_error(&self) -> LogError {
        LogError::Offline {
            path: self.dir.clone(),
        }
    }

    /// Validates `batches` (one or more RecordBatch v2), assigns them offsets (`baseOffset` and
    /// `partitionLeaderEpoch` in the headers it writes; `batches` itself is not changed), and
    /// appends them. Nothing is written unless every batch is valid. May fsync if
    /// `flush.messages` says so: call from a thread that may block.
    pub fn append(&self, batches: &[u8], leader_epoch: i32, now_ms: i64) -> Result<AppendInfo> {
        self.append_from(AppendOrigin::Client, batches, leader_epoch, now_ms)
    }

    /// [`Log::append`] with the rules of `origin`.
    pub fn append_from(
        &self,
        origin: AppendOrigin,
        batches: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        self.append_checked(origin, batches, leader_epoch, now_ms, None)
    }

    /// Starts verifying a transactional producer's write here (KIP-890): `None` when it needs
    /// none (its transaction is open here at that epoch), else the guard to append with after
    /// the coordinator said yes.
    pub fn start_txn_verification(
        &self,
        producer_id: i64,
        epoch: i16,
    ) -> Option<VerificationGuard> {
        let mut state = self.lock();
        let LogState {
            verifications,
            producers,
            ..
        } = &mut *state;
        verifications.start(producers, producer_id, epoch)
    }

    /// The coordinator refused the write the guard was for.
    pub fn abandon_txn_verification(&self, producer_id: i64, guard: VerificationGuard) {
        self.lock().verifications.abandon(producer_id, guard);
    }

    /// [`Log::append`] for a broker that verifies transactions: a transactional batch that
    /// starts a transaction here needs the guard of a verification still current (no marker
    /// since), else INVALID_TXN_STATE.
    pub fn append_verified(
        &self,
        batches: &[u8],
        leader_epoch: i32,
        now_ms: i64,
        guard: Option<VerificationGuard>,
    ) -> Result<AppendInfo> {
        self.append_checked(
            AppendOrigin::Client,
            batches,
            leader_epoch,
            now_ms,
            Some(guard),
        )
    }

    /// `verification`: `None` appends without KIP-890 checks, `Some(guard)` with them.
    fn append_checked(
        &self,
        origin: AppendOrigin,
        batches: &[u8],
        leader_epoch: i32,
        now_ms: i64,
        verification: Option<Option<VerificationGuard>>,
    ) -> Result<AppendInfo> {
        let appended =
            self.append_inner(origin, batches, leader_epoch, now_ms, verification, false)?;
        let Some((info, flush_due, writeback)) = appended else {
            unreachable!("only a quick append declines, and this one is not");
        };
        if let Some(writeback) = writeback {
            writeback.run(self);
        }
        if flush_due {
            self.flush(info.last_offset + 1)?;
        }
        Ok(info)
    }

    /// A client's append (no KIP-890 verification) if it needs nothing slow: the log is not
    /// held by another caller, no batch is compressed (checking one decompresses it), no
    /// segment rolls, no new leader epoch is written down, the active segment's indexes are in
    /// memory and no `flush.messages` policy can fsync. `None` if it would, with nothing
    /// changed: append with [`Log::append`] on a thread that may block then. The writeback the
    /// append starts, if any, comes back to run on such a thread.
    pub fn try_append_in_memory(
        &self,
        batches: &[u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<Option<QuickAppend>> {
        let appended = self.append_inner(
            AppendOrigin::Client,
            batches,
            leader_epoch,
            now_ms,
            None,
            true,
        )?;
        Ok(appended.map(|(info, _, writeback)| QuickAppend {
            info,
            writeback: writeback.map(PendingWriteback),
        }))
    }

    /// The append; with `quick`, `None` where [`Log::try_append_in_memory`] declines, else the
    /// outcome, whether a flush is due, and the writeback to run outside the lock.
    fn append_inner(
        &self,
        origin: AppendOrigin,
        batches: &[u8],
        leader_epoch: i32,
        now_ms: i64,
        verification: Option<Option<VerificationGuard>>,
        quick: bool,
    ) -> Result<Option<(AppendInfo, bool, Option<Writeback>)>> {
        self.check_online()?;
        let headers = batch::validate_all(batches)?;
        if origin == AppendOrigin::Client {
            batch::check_client_rules(&headers)?;
        }
        if quick && headers.iter().any(|(_, h)| h.compression() != 0) {
            return Ok(None);
        }
        let Some(mut state) = self.lock_unless_busy(quick) else {
            return Ok(None);
        };
        let config = state.config.clone();
        if quick
            && (config.flush_messages < i64::MAX as u64
                || !state.active().appends_in_memory()
                || state.epochs.would_assign(leader_epoch))
        {
            return Ok(None);
        }
        for (position, header) in &headers {
            if header.size() > config.max_message_bytes as usize {
                return Err(LogError::RecordTooLarge {
                    size: header.size(),
                    max: config.max_message_bytes,
                });
            }
            if header.records_count != header.last_offset_delta + 1 {
                return Err(LogError::invalid(
                    *position,
                    format!(
                        "record count {} does not match lastOffsetDelta {}",
                        header.records_count, header.last_offset_delta
                    ),
                ));
            }
        }
        if batches.len() as u64 > config.segment_bytes {
            return Err(LogError::RecordListTooLarge {
                size: batches.len(),
                max: config.segment_bytes,
            });
        }
        if origin == AppendOrigin::Client {
            // LogValidator's per-record rules come before the producer-state checks: a
            // retried batch that is now out of bounds is refused, not deduplicated.
            for (position, header) in &headers {
                let bytes = batches
                    .get(*position..*position + header.size())
                    .ok_or_else(|| LogError::corrupt(*position, "batch outside the buffer"))?;
                record_rules::check(bytes, header, &config, now_ms)?;
            }
            if let [(_, header)] = headers.as_slice() {
                if let Some(original) = state.producers.find_duplicate(header) {
                    let duplicate = AppendInfo {
                        base_offset: original.first_offset,
                        last_offset: original.last_offset,
                        max_timestamp: original.timestamp,
                        // Kafka's UnifiedLog.append answers a duplicate with the original
                        // batch's max timestamp as its log append time, whatever the
                        // topic's timestamp type (a quirk clients see in RecordMetadata).
                        log_append_time_ms: original.timestamp,
                        record_count: (original.last_offset - original.first_offset + 1) as u64,
                        duplicate: true,
                    };
                    return Ok(Some((duplicate, false, None)));
                }
            }
        }
        let base_offset = state.log_end_offset();
        let mut pending = PendingUpdate::default();
        let mut assigned = Vec::with_capacity(headers.len());
        let mut next = base_offset;
        let mut max_timestamp = -1;
        let log_append_time =
            (config.message_timestamp_type == TimestampType::LogAppendTime).then_some(now_ms);
        for (position, header) in &headers {
            let bytes = batches
                .get(*position..*position + header.size())
                .ok_or_else(|| LogError::corrupt(*position, "batch outside the buffer"))?;
            let written = batch::assigned_header(bytes, next, leader_epoch, log_append_time);
            let header = BatchHeader::parse(&written)
                .ok_or_else(|| LogError::corrupt(*position, "batch header vanished"))?;
            if header.producer_id >= 0 {
                if let Some(guard) = verification {
                    state
                        .verifications
                        .check(&state.producers, &header, guard)?;
                }
                // The marker is in the records, which the assigned header does not change.
                let marker = control::parse_marker(&header, bytes)?;
                state.producers.validate_batch(
                    &mut pending,
                    &header,
                    marker,
                    origin == AppendOrigin::Client,
                )?;
            }
            max_timestamp = max_timestamp.max(header.max_timestamp);
            next = header.next_offset();
            assigned.push(AssignedBatch {
                position: *position,
                header,
                written_header: written,
            });
        }
        let last_offset = next - 1;
        let incoming = Some(max_timestamp);
        let bytes = batches.len() as u64;
        // Nothing has changed yet: everything above wrote into `pending` only.
        if self.roll_due(&mut state, bytes, last_offset, now_ms, incoming)? {
            if quick {
                return Ok(None);
            }
            self.roll(&mut state)?;
        }
        state
            .active_mut()
            .append(&self.cache, batches, &assigned, now_ms)?;
        let writeback = self.plan_writeback(&mut state)?;
        if !pending.is_empty() {
            self.apply_producer_update(&mut state, pending)?;
        }
        for AssignedBatch { header, .. } in &assigned {
            if header.is_transactional() || header.is_control() {
                state.verifications.finish(header.producer_id);
            }
        }
        if state.epochs.assign(leader_epoch, base_offset) {
            self.write_epoch_checkpoint(&state)?;
        }
        let record_count = (next - base_offset) as u64;
        state.unflushed_messages += record_count;
        state.oldest_unflushed_ms.get_or_insert(now_ms);
        self.log_end_offset.store(next, Ordering::Release);
        let flush_due = state.unflushed_messages >= config.flush_messages;
        let info = AppendInfo {
            base_offset,
            last_offset,
            max_timestamp,
            log_append_time_ms: log_append_time.unwrap_or(-1),
            record_count,
            duplicate: false,
        };
        Ok(Some((info, flush_due, writeback)))
    }

    /// Rolls before an append of `bytes` ending at `last_offset` whose largest timestamp is
    /// `incoming_timestamp` (`None` from the maintenance timer). Kafka's `segment.ms` measures
    /// record time (KIP-32, `LogSegment.shouldRoll`): the incoming batch's max timestamp less the
    /// segment's first batch's, when that one has a timestamp; the wall clock since the segment
    /// began otherwise, and always for the timer (Vltava's: Kafka rolls only on append).
    fn maybe_roll(
        &self,
        state: &mut LogState,
        bytes: u64,
        last_offset: i64,
        now_ms: i64,
        incoming_timestamp: Option<i64>,
    ) -> Result<()> {
        if self.roll_due(state, bytes, last_offset, now_ms, incoming_timestamp)? {
            self.roll(state)?;
        }
        Ok(())
    }

    /// Whether [`Log::maybe_roll`] rolls.
    fn roll_due(
        &self,
        state: &mut LogState,
        bytes: u64,
        last_offset: i64,
        now_ms: i64,
        incoming_timestamp: Option<i64>,
    ) -> Result<bool> {
        let segment_ms = i64::try_from(state.config.segment_ms).unwrap_or(i64::MAX);
        let segment_bytes = state.config.segment_bytes;
        let cache = &self.cache;
        let active = state.active_mut();
        let waited = match (incoming_timestamp, active.first_batch_timestamp(cache)?) {
            (_, None) => None,
            (Some(incoming), Some(first)) if first >= 0 => Some(incoming.saturating_sub(first)),
            _ => active.first_append_ms.map(|t| now_ms.saturating_sub(t)),
        };
        let too_old = match incoming_timestamp {
            Some(_) => waited.is_some_and(|w| w > segment_ms),
            None => waited.is_some_and(|w| w >= segment_ms),
        };
        let full = !active.has_room_for(bytes, last_offset, segment_bytes);
        Ok(too_old || full)
    }

    /// Starts a new active segment at the log end offset.
    fn roll(&self, state: &mut LogState) -> Result<()> {
        let new_base = state.log_end_offset();
        let preallocated = state.config.preallocate;
        {
            let active = state.active_mut();
            if active.is_empty() {
                return Ok(());
            }
            active.seal(&self.cache)?;
            active.persist_indexes(false)?;
            if preallocated {
                active.truncate_file_to_size(&self.cache)?;
            }
        }
        let index = index_settings(&state.config);
        let segment = Segment::create(&self.dir, new_base, index, preallocation(&state.config))?;
        state.segments.insert(new_base, segment);
        state.dir_dirty = true;
        // Kafka snapshots producer state at every roll, so a restart replays one segment at
        // most. Not fsynced here (no fsync under the lock): a torn snapshot fails its CRC and
        // recovery falls back to an older one.
        producer_state::write_snapshot_unsynced(&self.dir, new_base, &state.producers)?;
        tracing::info!(partition = %self.topic_partition, base_offset = new_base, "segment rolled");
        Ok(())
    }

    /// Rolls now if the active segment is older than `segment.ms` (called by a timer, so an idle
    /// partition still rolls).
    pub fn roll_if_due(&self, now_ms: i64) -> Result<()> {
        let mut state = self.lock();
        let end = state.log_end_offset();
        self.maybe_roll(&mut state, 0, end, now_ms, None)
    }

    /// Reads from the batch containing `offset`, at most `max_bytes` (but the first batch whole
    /// if `min_one_batch`), never reaching `max_offset` (the high watermark).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: u32,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<ReadInfo> {
        self.read_inner(offset, max_bytes, max_offset, min_one_batch, Wait::Allowed)
    }

    /// [`Log::read`] if it needs nothing slow: the log is not held by another caller, and the
    /// read starts in the active segment, whose indexes are in memory and whose file is open,
    /// within 1 MiB (and the page-cache tail) of its end, where the batch headers it reads were
    /// written a moment ago. Those are read only if they are still in the page cache, and at
    /// most 128 of them. A read at the end (a tailing consumer's) touches no segment at all.
    /// `None` if the read would wait: read with [`Log::read`] on a thread that may block then.
    pub fn try_read_in_memory(
        &self,
        offset: i64,
        max_bytes: u32,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<Option<ReadInfo>> {
        match self.read_inner(offset, max_bytes, max_offset, min_one_batch, Wait::Never) {
            Ok(read) => Ok(Some(read)),
            Err(LogError::WouldBlock) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The read; with [`Wait::Never`], [`LogError::WouldBlock`] where
    /// [`Log::try_read_in_memory`] declines.
    fn read_inner(
        &self,
        offset: i64,
        max_bytes: u32,
        max_offset: i64,
        min_one_batch: bool,
        wait: Wait,
    ) -> Result<ReadInfo> {
        let quick = wait == Wait::Never;
        let mut state = self.lock_unless_busy(quick).ok_or(LogError::WouldBlock)?;
        let log_end_offset = state.log_end_offset();
        let log_start_offset = state.log_start_offset;
        let info = |range| ReadInfo {
            range,
            log_start_offset,
            log_end_offset,
        };
        if offset < log_start_offset || offset > log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start_offset,
                log_end_offset,
            });
        }
        let bound = max_offset.min(log_end_offset);
        if offset >= bound {
            return Ok(info(None));
        }
        if quick {
            let window = state
                .config
                .page_cache_tail_bytes
                .map_or(QUICK_READ_WINDOW, |tail| tail.min(QUICK_READ_WINDOW));
            if !state.active().reads_in_memory(offset, window) {
                return Err(LogError::WouldBlock);
            }
        }
        let first_base = state
            .segments
            .range(..=offset)
            .next_back()
            .map_or(offset, |(b, _)| *b);
        let bases: Vec<i64> = state
            .segments
            .range(first_base..)
            .map(|(b, _)| *b)
            .collect();
        for base in bases {
            let Some(segment) = state.segments.get_mut(&base) else {
                continue;
            };
            let file = segment.file_with(&self.cache, wait)?;
            let Some((position, header)) = segment.find_in(&self.cache, &file, offset, wait)?
            else {
                continue;
            };
            if header.base_offset >= bound {
                return Ok(info(None));
            }
            let end = segment.position_of_bound(&self.cache, &file, bound, wait)?;
            let mut limit = u64::from(max_bytes);
            if min_one_batch {
                limit = limit.max(header.size() as u64);
            } else if limit < header.size() as u64 {
                return Ok(info(None));
            }
            let length = (end - position).min(limit).min(u64::from(u32::MAX));
            let reaches_end = position + length == segment.size();
            // Behind the mark the bytes are flushed and were handed back once: a read of them
            // (from disk) hands them back again rather than growing the page cache.
            let beyond_tail = state.config.page_cache_tail_bytes.is_some()
                && Released {
                    base,
                    position: position + length,
                } <= state.released;
            let sealed = state.segments.range(base + 1..).next().is_some();
            let ends_segment = reaches_end && sealed;
            // Advice about the open file, not the log's state: no need to hold the lock.
            drop(state);
            if beyond_tail {
                page_cache::size_read_ahead(&file, length);
            }
            return Ok(info(Some(FileRange {
                file,
                position,
                length: length as u32,
                beyond_tail,
                ends_segment,
            })));
        }
        Ok(info(None))
    }

    /// Makes everything below `up_to` durable (group commit: concurrent callers share one
    /// fsync). Blocks; call from a thread that may block.
    pub fn flush(&self, up_to: i64) -> Result<()> {
        self.flush_then(up_to, || ())
    }

    /// [`Log::flush`], calling `durable` as soon as everything below `up_to` is on disk,
    /// before the page-cache hand-back that may follow (a few hundred µs): a caller that
    /// answers others tells them first.
    pub fn flush_then(&self, up_to: i64, durable: impl FnOnce()) -> Result<()> {
        let sync = || self.sync_unflushed();
        let (outcome, left) = self.commit.wait_durable(up_to, &sync)?;
        if matches!(outcome, Durable::Yes) {
            durable();
        }
        // The fsync this caller ran made those bytes clean: the kernel may drop them now, and
        // the callers it covered were answered before.
        if let Some(Some(release)) = left {
            self.release(release);
        }
        match outcome {
            Durable::Yes => Ok(()),
            Durable::Poisoned => Err(self.offline_error()),
        }
    }

    /// Flushes if `flush.ms` has passed since the oldest unflushed append, or if a segment
    /// that rolled still holds unflushed bytes. Kafka flushes a segment once it rolls (off the
    /// append path, `UnifiedLog.roll`), whatever the flush policy: the recovery point then
    /// passes it, so a crash rescans the active segment, not every segment written since the
    /// log was created.
    pub fn flush_if_due(&self, now_ms: i64) -> Result<bool> {
        let (timed, active_base) = {
            let state = self.lock();
            let timed = state.oldest_unflushed_ms.is_some_and(|t| {
                now_ms.saturating_sub(t) >= state.config.flush_ms.min(i64::MAX as u64) as i64
            });
            (timed, state.segments.keys().next_back().copied())
        };
        let rolled_unflushed = active_base
            .filter(|base| self.commit.durable_offset() < *base && !self.commit.is_poisoned());
        if timed {
            self.flush(self.log_end_offset())?;
        } else if let Some(base) = rolled_unflushed {
            self.flush(base)?;
        }
        Ok(timed || rolled_unflushed.is_some())
    }

    /// One fsync round: the directory if segments came or went, then every segment that may
    /// hold unflushed bytes. Returns the offset it covered, and what is clean now and beyond the
    /// page-cache tail.
    fn sync_unflushed(&self) -> Result<(i64, Option<ReleasePlan>)> {
        let durable = self.commit.durable_offset();
        let (target, files, dir_dirty, release) = {
            let mut state = self.lock();
            let target = state.log_end_offset();
            let first = state
                .segments
                .range(..=durable)
                .next_back()
                .map_or(durable, |(b, _)| *b);
            let mut files = Vec::new();
            for segment in state.segments.range(first..).map(|(_, s)| s) {
                files.push((segment.file(&self.cache)?, segment.log_path().to_path_buf()));
            }
            let release = self.plan_release(&state)?;
            let dir_dirty = std::mem::take(&mut state.dir_dirty);
            state.unflushed_messages = 0;
            state.oldest_unflushed_ms = None;
            (target, files, dir_dirty, release)
        };
        let started = std::time::Instant::now();
        if dir_dirty {
            fs::sync_dir(&self.dir)?;
        }
        for (file, path) in files {
            file.sync_data()
                .map_err(|e| LogError::io("fsync", path, e))?;
        }
        // One fsync round (group commit), whatever it covered; the binary exports it.
        metrics::histogram!("vltava_log_fsync_seconds").record(started.elapsed().as_secs_f64());
        // Only now are those bytes clean, so the kernel can drop them: the caller does, once
        // the waiters are told.
        Ok((target, release))
    }

    /// Hands `ranges` back once their bytes are on disk (the kernel keeps dirty pages whatever
    /// it is told), then moves the mark.
    fn release(&self, (ranges, mark): ReleasePlan) {
        for (file, from, to) in ranges {
            page_cache::writeback::wait(&file, from, to);
            page_cache::hand_back(&file, from, to);
        }
        let mut state = self.lock();
        state.released = state.released.max(mark);
    }

    /// With a page-cache tail, each MiB appended starts on its way to disk (and the rest of a
    /// segment once it rolls), and what is then further than the tail behind the end (written
    /// back a while ago) goes, flushed or not.
    fn plan_writeback(&self, state: &mut LogState) -> Result<Option<Writeback>> {
        if state.config.page_cache_tail_bytes.is_none() {
            return Ok(None);
        }
        let mut ranges = Vec::new();
        // The active segment and the one it replaced.
        for (newer, segment) in state.segments.values_mut().rev().take(2).enumerate() {
            let (chunk, lag) = (page_cache::WRITEBACK_CHUNK, page_cache::WRITEBACK_LAG);
            if let Some((from, to)) = segment.writeback_due(chunk, lag, newer > 0) {
                ranges.push((segment.file(&self.cache)?, from, to));
            }
        }
        if ranges.is_empty() {
            return Ok(None);
        }
        Ok(Some(Writeback {
            ranges,
            release: self.plan_release(state)?,
        }))
    }

    /// What to let go of: the bytes further than the page-cache tail behind the end (flushed by
    /// the fsync about to run, or written back), and the mark after them.
    fn plan_release(&self, state: &LogState) -> Result<Option<ReleasePlan>> {
        let Some(tail) = state.config.page_cache_tail_bytes else {
            return Ok(None);
        };
        // Segments before the mark were handed back already: not even looked at.
        let segments: Vec<&Segment> = state
            .segments
            .range(state.released.base..)
            .map(|(_, s)| s)
            .collect();
        let extents: Vec<Extent> = segments
            .iter()
            .map(|s| Extent {
                base: s.base_offset,
                size: s.size(),
            })
            .collect();
        let (ranges, mark) = page_cache::plan(&extents, state.released, tail);
        if ranges.is_empty() {
            return Ok(None);
        }
        let mut files = Vec::with_capacity(ranges.len());
        for r in ranges {
            if let Some(segment) = segments.get(r.index) {
                files.push((segment.file(&self.cache)?, r.from, r.to));
            }
        }
        Ok(Some((files, mark)))
    }

    /// Writes index entries that are only in memory (not fsynced: recovery rebuilds them).
    /// Segments with none are skipped, so a checkpoint of many idle partitions touches no files.
    pub fn persist_indexes(&self) -> Result<()> {
        let mut state = self.lock();
        for segment in state.segments.values_mut() {
            segment.persist_indexes(false)?;
        }
        Ok(())
    }

    /// Closes the cached handles of every segment, before the log's directory is deleted: an
    /// open handle keeps a deleted file's blocks, so without this a deleted topic's disk space
    /// came back only as the file cache evicted its handles (or at a restart).
    pub fn forget_files(&self) {
        let state = self.lock();
        for segment in state.segments.values() {
            segment.forget_file(&self.cache);
        }
    }

    /// Flush, seal and persist everything for a clean shutdown.
    pub fn close(&self) -> Result<()> {
        self.flush(self.log_end_offset())?;
        let mut state = self.lock();
        state.active_mut().seal(&self.cache)?;
        for segment in state.segments.values_mut() {
            segment.persist_indexes(true)?;
        }
        let end = state.log_end_offset();
        // A clean stop snapshots producer state at the log end (Kafka does too), so the next
        // start replays nothing. Only a non-empty state is worth two fsyncs per partition: a
        // lost empty snapshot costs a replay after a crash, never a wrong answer.
        if state.producers.is_empty() {
            producer_state::write_snapshot_unsynced(&self.dir, end, &state.producers)?;
        } else {
            producer_state::write_snapshot(&self.dir, end, &state.producers)?;
        }
        Ok(())
    }

    /// The raw bytes of the first batch whose max timestamp is `>= timestamp`.
    pub fn find_batch_by_timestamp(&self, timestamp: i64) -> Result<Option<Vec<u8>>> {
        let mut state = self.lock();
        let log_start = state.log_start_offset;
        let bases: Vec<i64> = state.segments.keys().copied().collect();
        for base in bases {
            let Some(segment) = state.segments.get_mut(&base) else {
                continue;
            };
            if segment.is_empty()
                || (segment.max_timestamp() >= 0 && segment.max_timestamp() < timestamp)
            {
                continue;
            }
            if let Some((position, header)) = segment.find_by_timestamp(&self.cache, timestamp)? {
                if header.last_offset() < log_start {
                    continue;
                }
                return segment.read_batch(&self.cache, position, &header).map(Some);
            }
        }
        Ok(None)
    }

    /// The raw bytes of the batch holding the largest timestamp (the earliest such batch).
    pub fn max_timestamp_batch(&self) -> Result<Option<Vec<u8>>> {
        let mut state = self.lock();
        let mut best: Option<(i64, i64, i64)> = None; // (timestamp, segment base, offset)
        for (base, segment) in &state.segments {
            if segment.max_timestamp() >= 0
                && best.is_none_or(|(t, _, _)| segment.max_timestamp() > t)
            {
                best = Some((
                    segment.max_timestamp(),
                    *base,
                    segment.offset_of_max_timestamp(),
                ));
            }
        }
        let Some((_, base, offset)) = best else {
            return Ok(None);
        };
        let Some(segment) = state.segments.get_mut(&base) else {
            return Ok(None);
        };
        match segment.find(&self.cache, offset)? {
            Some((position, header)) => {
                segment.read_batch(&self.cache, position, &header).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Removes every batch at or above `offset` (a batch containing it goes whole).
    pub fn truncate_to(&self, offset: i64) -> Result<()> {
        self.check_online()?;
        let mut state = self.lock();
        if offset >= state.log_end_offset() {
            return Ok(());
        }
        let target = offset.max(state.log_start_offset);
        // Whole segments at or above the target go, but one segment always stays.
        let first_base = state.segments.keys().next().copied().unwrap_or(target);
        let doomed: Vec<i64> = state
            .segments
            .range(target..)
            .map(|(b, _)| *b)
            .filter(|b| *b != first_base)
            .collect();
        for base in doomed {
            if let Some(segment) = state.segments.remove(&base) {
                segment.delete(&self.cache)?;
                state.dir_dirty = true;
            }
        }
        let new_end = state.active_mut().truncate_to(&self.cache, target)?;
        // Bytes written again below the mark must be handed back again.
        let active_base = state.segments.keys().next_back().copied().unwrap_or(target);
        state.released = state.released.min(Released {
            base: active_base,
            position: 0,
        });
        producer_state::delete_snapshots(&self.dir, |o| o > new_end)?;
        let trust = crate::producer_recovery::Trust {
            clean_shutdown: false,
            recovery_point: Some(new_end),
        };
        crate::producer_recovery::rebuild(&self.dir, &mut state, &self.cache, trust)?;
        self.publish_unstable(&state);
        state.epochs.truncate_from_end(new_end);
        self.write_epoch_checkpoint(&state)?;
        self.commit.truncate(new_end);
        self.log_end_offset.store(new_end, Ordering::Release);
        if state.log_start_offset > new_end {
            state.log_start_offset = new_end;
            self.log_start_offset.store(new_end, Ordering::Release);
        }
        tracing::info!(partition = %self.topic_partition, offset = new_end, "log truncated");
        Ok(())
    }

    /// Moves the log start offset up (DeleteRecords); whole segments below it are deleted.
    pub fn advance_log_start_offset(&self, offset: i64) -> Result<()> {
        self.check_online()?;
        {
            let mut state = self.lock();
            let end = state.log_end_offset();
            if offset > end {
                return Err(LogError::OffsetOutOfRange {
                    requested: offset,
                    log_start_offset: state.log_start_offset,
                    log_end_offset: end,
                });
            }
            if offset <= state.log_start_offset {
                return Ok(());
            }
            state.log_start_offset = offset;
            self.log_start_offset.store(offset, Ordering::Release);
            if state.epochs.truncate_from_start(offset) {
                self.write_epoch_checkpoint(&state)?;
            }
        }
        self.apply_retention(i64::MIN).map(|_| ())
    }

    /// Deletes the segments retention says to delete; returns how many.
    pub fn apply_retention(&self, now_ms: i64) -> Result<u64> {
        self.check_online()?;
        let mut state = self.lock();
        let facts: Vec<SegmentFacts> = state
            .segments
            .values()
            .map(|s| SegmentFacts {
                base_offset: s.base_offset,
                size: s.size(),
                max_timestamp: s.max_timestamp(),
            })
            .collect();
        let config = if now_ms == i64::MIN {
            // Only the log start offset rule: called from DeleteRecords.
            LogConfig {
                retention_ms: -1,
                retention_bytes: -1,
                ..state.config.clone()
            }
        } else {
            state.config.clone()
        };
        let reasons =
            retention::segments_to_delete(&facts, &config, now_ms, state.log_start_offset);
        for reason in &reasons {
            let Some((&base, _)) = state.segments.iter().next() else {
                break;
            };
            if let Some(segment) = state.segments.remove(&base) {
                let size = segment.size();
                segment.delete(&self.cache)?;
                state.txn_index.remove_segment(&self.dir, base)?;
                tracing::info!(partition = %self.topic_partition, base_offset = base, bytes = size, ?reason, "segment deleted by retention");
            }
        }
        if !reasons.is_empty() {
            state.dir_dirty = true;
            let first = state.segments.keys().next().copied().unwrap_or(0);
            producer_state::delete_snapshots(&self.dir, |o| o < first)?;
            if first > state.log_start_offset {
                state.log_start_offset = first;
                self.log_start_offset.store(first, Ordering::Release);
                if state.epochs.truncate_from_start(first) {
                    self.write_epoch_checkpoint(&state)?;
                }
            }
        }
        Ok(reasons.len() as u64)
    }

    pub fn latest_leader_epoch(&self) -> Option<i32> {
        self.lock().epochs.latest_epoch()
    }

    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let state = self.lock();
        match state.epochs.end_offset_for(epoch, state.log_end_offset()) {
            (-1, -1) => None,
            found => Some(found),
        }
    }

    pub fn size_bytes(&self) -> u64 {
        self.lock().segments.values().map(Segment::size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.lock().segments.len()
    }

    /// Bytes of index entries held in memory (for memory budgets and tests).
    pub fn index_memory_bytes(&self) -> usize {
        self.lock()
            .segments
            .values()
            .map(Segment::index_memory_bytes)
            .sum()
    }

    /// Appends a transaction marker (COMMIT or ABORT) for `producer_id` as the coordinator
    /// does (WriteTxnMarkers): completes the producer's transaction here, records an abort in
    /// the `.txnindex`, and moves the last stable offset. Blocking, like [`Log::append`].
    pub fn append_txn_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: TxnMarker,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        let batch = control::build_marker_batch(producer_id, producer_epoch, marker, now_ms);
        self.append_from(AppendOrigin::Coordinator, &batch, leader_epoch, now_ms)
    }

    /// First offset of the oldest open transaction, if any.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        match self.first_unstable_offset.load(Ordering::Acquire) {
            i64::MAX => None,
            offset => Some(offset),
        }
    }

    /// The last stable offset: below it every transaction is decided. `high_watermark` bounds
    /// it (Kafka: min(first unstable offset, high watermark)).
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.first_unstable_offset
            .load(Ordering::Acquire)
            .min(high_watermark)
    }

    /// Aborted transactions that overlap `[from, upper)`, for read_committed fetches.
    pub fn aborted_transactions(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        self.lock().txn_index.overlapping(from, upper)
    }

    /// The producers with state in this partition (DescribeProducers).
    pub fn producer_states(&self) -> Vec<ProducerEntry> {
        self.lock().producers.producers().cloned().collect()
    }

    /// Forgets producers idle for `expiration_ms` without an open transaction
    /// (`producer.id.expiration.ms`); returns how many.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.lock().producers.remove_expired(now_ms, expiration_ms)
    }

    fn apply_producer_update(&self, state: &mut LogState, pending: PendingUpdate) -> Result<()> {
        let segment_base = state.active().base_offset;
        for (txn, last_stable_offset) in state.producers.apply(pending) {
            if txn.aborted {
                state.txn_index.append(
                    &self.dir,
                    segment_base,
                    AbortedTxn {
                        producer_id: txn.producer_id,
                        first_offset: txn.first_offset,
                        last_offset: txn.last_offset,
                        last_stable_offset,
                    },
                )?;
            }
        }
        self.publish_unstable(state);
        Ok(())
    }

    fn publish_unstable(&self, state: &LogState) {
        let unstable = state.producers.first_unstable_offset().unwrap_or(i64::MAX);
        self.first_unstable_offset
            .store(unstable, Ordering::Release);
    }

    fn write_epoch_checkpoint(&self, state: &LogState) -> Result<()> {
        checkpoint::write_epoch_entries(
            &self.dir.join(LEADER_EPOCH_CHECKPOINT),
            state.epochs.entries(),
        )
    }
}

/// How much of a new segment to reserve on disk (`preallocate`): all it may grow to.
pub(crate) fn preallocation(config: &LogConfig) -> Option<u64> {
    config.preallocate.then_some(config.segment_bytes)
}

pub(crate) fn index_settings(config: &LogConfig) -> IndexSettings {
    IndexSettings {
        max_bytes: config.segment_index_bytes,
        interval_bytes: config.index_interval_bytes,
    }
}
