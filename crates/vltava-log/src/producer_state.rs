//! Per-partition producer state for idempotence and transactions (Kafka's
//! `ProducerStateManager`, `ProducerAppendInfo`, `ProducerStateEntry`).
//!
//! For every producer id that wrote to the partition: its epoch, the metadata of its last five
//! batches (to answer a retried batch with its original offsets), the coordinator epoch of its
//! last transaction marker, and the first offset of its ongoing transaction. The log consults it
//! under its append lock, so the check and the append are one step.
//!
//! Rules, as Kafka 4 applies them to a client batch:
//! - a batch equal (epoch, first and last sequence) to one of the last five is a duplicate:
//!   answered with the original offsets, not written again;
//! - an epoch lower than the producer's → INVALID_PRODUCER_EPOCH;
//! - a new (higher) epoch must start at sequence 0 unless the producer is unknown;
//! - same epoch: the first sequence must follow the last one (wrapping at `i32::MAX`), else
//!   OUT_OF_ORDER_SEQUENCE_NUMBER; an unknown producer may start anywhere (KIP-360: its state
//!   may have been removed by retention or expiration);
//! - a non-transactional batch while the producer has an open transaction → INVALID_TXN_STATE.
//!
//! State survives restarts through `.snapshot` files in Kafka's `ProducerSnapshot` v1 format
//! (named after the offset they were taken at) plus a replay of the log after the snapshot.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use crate::batch::BatchHeader;
use crate::control::TxnMarker;
use crate::error::{LogError, Result};

pub const SNAPSHOT_EXTENSION: &str = "snapshot";
/// Kafka keeps this many batches per producer for duplicate detection
/// (`ProducerStateEntry.NUM_BATCHES_TO_RETAIN`, the producer's max in-flight requests).
pub const NUM_BATCHES_TO_RETAIN: usize = 5;
pub const NO_PRODUCER_EPOCH: i16 = -1;
pub const NO_SEQUENCE: i32 = -1;

/// One appended batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

/// What the partition knows about one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub producer_id: i64,
    pub epoch: i16,
    /// The last batches, oldest first, at most [`NUM_BATCHES_TO_RETAIN`].
    pub batches: VecDeque<BatchMetadata>,
    pub coordinator_epoch: i32,
    /// First offset of the producer's ongoing transaction here.
    pub current_txn_first_offset: Option<i64>,
    /// Max timestamp of its last batch (for `producer.id.expiration.ms`).
    pub last_timestamp: i64,
}

impl ProducerEntry {
    fn empty(producer_id: i64) -> ProducerEntry {
        ProducerEntry {
            producer_id,
            epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::new(),
            coordinator_epoch: -1,
            current_txn_first_offset: None,
            last_timestamp: -1,
        }
    }

    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    fn find_duplicate(&self, epoch: i16, first_seq: i32, last_seq: i32) -> Option<BatchMetadata> {
        if epoch != self.epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            .copied()
    }

    fn push_batch(&mut self, batch: BatchMetadata) {
        if self.batches.len() == NUM_BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
    }
}

/// A transaction ended by a marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub aborted: bool,
}

/// `baseSequence + delta`, wrapping at `i32::MAX` as Kafka's `DefaultRecordBatch.incrementSequence`.
pub fn increment_sequence(sequence: i32, delta: i32) -> i32 {
    if sequence > i32::MAX - delta {
        delta - (i32::MAX - sequence) - 1
    } else {
        sequence + delta
    }
}

fn decrement_sequence(sequence: i32, delta: i32) -> i32 {
    if sequence < delta {
        i32::MAX - (delta - sequence) + 1
    } else {
        sequence - delta
    }
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    i64::from(next_seq) == i64::from(last_seq) + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

/// Last sequence of a batch (its first sequence plus its last offset delta, wrapping).
pub fn last_sequence(header: &BatchHeader) -> i32 {
    if header.base_sequence < 0 {
        return NO_SEQUENCE;
    }
    increment_sequence(header.base_sequence, header.last_offset_delta)
}

/// The producers of one partition.
#[derive(Debug, Default, Clone)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    /// First offset of every ongoing transaction → its producer id.
    ongoing: BTreeMap<i64, i64>,
}

/// The changes one append makes, validated batch by batch and applied only once the bytes are
/// in the segment.
#[derive(Debug, Default)]
pub struct PendingUpdate {
    entries: Vec<ProducerEntry>,
    completed: Vec<CompletedTxn>,
}

impl PendingUpdate {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl ProducerStateManager {
    pub fn new() -> ProducerStateManager {
        ProducerStateManager::default()
    }

    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub fn producers(&self) -> impl Iterator<Item = &ProducerEntry> {
        self.producers.values()
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Whether the producer has a transaction open here at `epoch` (Kafka's
    /// `hasOngoingTransaction`): its batches need no new verification.
    pub fn has_ongoing_txn(&self, producer_id: i64, epoch: i16) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|e| e.current_txn_first_offset.is_some() && e.epoch == epoch)
    }

    /// The first offset of the oldest ongoing transaction, if any (bounds the LSO).
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// A client batch identical to one of the producer's last five: the original batch.
    pub fn find_duplicate(&self, header: &BatchHeader) -> Option<BatchMetadata> {
        if header.producer_id < 0 || header.base_sequence < 0 {
            return None;
        }
        self.producers.get(&header.producer_id)?.find_duplicate(
            header.producer_epoch,
            header.base_sequence,
            last_sequence(header),
        )
    }

    /// Validates one batch (its offsets already assigned) against the state plus the earlier
    /// batches of the same append, and records its effect in `pending`. `check_sequence` is
    /// false for the broker's own writes (Kafka checks sequences only for clients).
    pub fn validate_batch(
        &self,
        pending: &mut PendingUpdate,
        header: &BatchHeader,
        marker: Option<TxnMarker>,
        check_sequence: bool,
    ) -> Result<()> {
        let pid = header.producer_id;
        if pid < 0 {
            return Ok(());
        }
        let index = match pending.entries.iter().position(|e| e.producer_id == pid) {
            Some(i) => i,
            None => {
                let current = self
                    .producers
                    .get(&pid)
                    .cloned()
                    .unwrap_or_else(|| ProducerEntry::empty(pid));
                pending.entries.push(current);
                pending.entries.len() - 1
            }
        };
        let Some(entry) = pending.entries.get_mut(index) else {
            return Ok(());
        };
        let epoch = header.producer_epoch;
        if epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch {
                producer_id: pid,
                epoch,
                current_epoch: entry.epoch,
            });
        }
        if header.is_control() {
            let Some(marker) = marker else {
                return Ok(());
            };
            if entry.coordinator_epoch > marker.coordinator_epoch {
                return Err(LogError::TransactionCoordinatorFenced {
                    producer_id: pid,
                    coordinator_epoch: marker.coordinator_epoch,
                    current: entry.coordinator_epoch,
                });
            }
            let first_offset = entry.current_txn_first_offset.unwrap_or(header.base_offset);
            pending.completed.push(CompletedTxn {
                producer_id: pid,
                first_offset,
                last_offset: header.base_offset,
                aborted: !marker.commit,
            });
            if epoch != entry.epoch {
                entry.batches.clear();
            }
            entry.epoch = epoch;
            entry.coordinator_epoch = marker.coordinator_epoch;
            entry.current_txn_first_offset = None;
            entry.last_timestamp = header.max_timestamp;
            return Ok(());
        }
        if check_sequence {
            check_sequence_of(entry, header)?;
        }
        if header.is_transactional() {
            entry
                .current_txn_first_offset
                .get_or_insert(header.base_offset);
        } else if entry.current_txn_first_offset.is_some() {
            return Err(LogError::InvalidTxnState {
                producer_id: pid,
                reason: "a non-transactional batch while a transaction is open".into(),
            });
        }
        if epoch != entry.epoch {
            entry.batches.clear();
            entry.epoch = epoch;
        }
        entry.push_batch(BatchMetadata {
            first_seq: header.base_sequence,
            last_seq: last_sequence(header),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
            timestamp: header.max_timestamp,
        });
        entry.last_timestamp = header.max_timestamp;
        Ok(())
    }

    /// Applies a validated append. Returns the transactions its markers completed, each with
    /// the last stable offset right after it (for the `.txnindex`).
    pub fn apply(&mut self, pending: PendingUpdate) -> Vec<(CompletedTxn, i64)> {
        for entry in pending.entries {
            if let Some(old) = self.producers.get(&entry.producer_id) {
                if let Some(first) = old.current_txn_first_offset {
                    if entry.current_txn_first_offset != Some(first) {
                        self.ongoing.remove(&first);
                    }
                }
            }
            if let Some(first) = entry.current_txn_first_offset {
                self.ongoing.insert(first, entry.producer_id);
            }
            self.producers.insert(entry.producer_id, entry);
        }
        pending
            .completed
            .into_iter()
            .map(|txn| {
                // Kafka's `lastStableOffset(completedTxn)`: the first offset of the oldest
                // other open transaction, else the offset after the marker.
                let lso = self
                    .ongoing
                    .iter()
                    .find(|(_, pid)| **pid != txn.producer_id)
                    .map_or(txn.last_offset + 1, |(first, _)| *first);
                (txn, lso)
            })
            .collect()
    }

    /// Removes producers idle for `expiration_ms` that have no open transaction
    /// (`producer.id.expiration.ms`). Returns how many went.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// Drops state of batches at or above `offset` is not possible in place; truncation reloads
    /// from a snapshot instead. This clears everything.
    pub fn clear(&mut self) {
        self.producers.clear();
        self.ongoing.clear();
    }

    /// Kafka's `ProducerSnapshot` v1: version i16, CRC32C u32 of the rest, then an array
    /// (i32 count) of producerId i64, epoch i16, lastSequence i32, lastOffset i64,
    /// offsetDelta i32, timestamp i64, coordinatorEpoch i32, currentTxnFirstOffset i64.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut entries: Vec<&ProducerEntry> = self.producers.values().collect();
        entries.sort_by_key(|e| e.producer_id);
        let mut body = Vec::with_capacity(4 + entries.len() * 46);
        body.extend_from_slice(&(entries.len() as i32).to_be_bytes());
        for e in entries {
            let last = e.batches.back();
            body.extend_from_slice(&e.producer_id.to_be_bytes());
            body.extend_from_slice(&e.epoch.to_be_bytes());
            body.extend_from_slice(&last.map_or(NO_SEQUENCE, |b| b.last_seq).to_be_bytes());
            body.extend_from_slice(&last.map_or(-1i64, |b| b.last_offset).to_be_bytes());
            let delta = last.map_or(0, |b| (b.last_offset - b.first_offset) as i32);
            body.extend_from_slice(&delta.to_be_bytes());
            body.extend_from_slice(&e.last_timestamp.to_be_bytes());
            body.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            body.extend_from_slice(&e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
        }
        let mut out = Vec::with_capacity(6 + body.len());
        out.extend_from_slice(&1i16.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Parses a snapshot file's bytes; `None` if the version, CRC or length is wrong.
    pub fn decode_snapshot(bytes: &[u8]) -> Option<ProducerStateManager> {
        let version = i16::from_be_bytes(bytes.get(0..2)?.try_into().ok()?);
        if version != 1 {
            return None;
        }
        let crc = u32::from_be_bytes(bytes.get(2..6)?.try_into().ok()?);
        let body = bytes.get(6..)?;
        if crc32c::crc32c(body) != crc {
            return None;
        }
        let count = i32::from_be_bytes(body.get(0..4)?.try_into().ok()?);
        let count = usize::try_from(count).ok()?;
        const ENTRY: usize = 46;
        if body.len() != 4 + count.checked_mul(ENTRY)? {
            return None;
        }
        let mut state = ProducerStateManager::new();
        for chunk in body.get(4..)?.chunks_exact(ENTRY) {
            let i64_at = |i: usize| -> Option<i64> {
                Some(i64::from_be_bytes(chunk.get(i..i + 8)?.try_into().ok()?))
            };
            let i32_at = |i: usize| -> Option<i32> {
                Some(i32::from_be_bytes(chunk.get(i..i + 4)?.try_into().ok()?))
            };
            let producer_id = i64_at(0)?;
            let epoch = i16::from_be_bytes(chunk.get(8..10)?.try_into().ok()?);
            let last_seq = i32_at(10)?;
            let last_offset = i64_at(14)?;
            let delta = i32_at(22)?;
            let timestamp = i64_at(26)?;
            let coordinator_epoch = i32_at(34)?;
            let txn_first = i64_at(38)?;
            let mut entry = ProducerEntry::empty(producer_id);
            entry.epoch = epoch;
            entry.coordinator_epoch = coordinator_epoch;
            entry.last_timestamp = timestamp;
            if last_offset >= 0 {
                entry.batches.push_back(BatchMetadata {
                    first_seq: if last_seq < 0 {
                        NO_SEQUENCE
                    } else {
                        decrement_sequence(last_seq, delta)
                    },
                    last_seq,
                    first_offset: last_offset - i64::from(delta),
                    last_offset,
                    timestamp,
                });
            }
            if txn_first >= 0 {
                entry.current_txn_first_offset = Some(txn_first);
                state.ongoing.insert(txn_first, producer_id);
            }
            state.producers.insert(producer_id, entry);
        }
        Some(state)
    }
}

fn check_sequence_of(entry: &ProducerEntry, header: &BatchHeader) -> Result<()> {
    let first_seq = header.base_sequence;
    if header.producer_epoch != entry.epoch {
        // A new epoch starts at 0, unless we know nothing of the producer (KIP-360).
        if first_seq != 0 && entry.epoch != NO_PRODUCER_EPOCH {
            return Err(LogError::OutOfOrderSequence {
                producer_id: header.producer_id,
                sequence: first_seq,
                last_sequence: entry.last_seq(),
            });
        }
        return Ok(());
    }
    let last_seq = entry.last_seq();
    // No batch kept for this epoch (only a marker, or state restored without batches): accept.
    if last_seq == NO_SEQUENCE || in_sequence(last_seq, first_seq) {
        return Ok(());
    }
    Err(LogError::OutOfOrderSequence {
        producer_id: header.producer_id,
        sequence: first_seq,
        last_sequence: last_seq,
    })
}

/// `<dir>/<20-digit offset>.snapshot`.
pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(crate::segment::file_name(offset, SNAPSHOT_EXTENSION))
}

/// The offsets of the snapshot files in `dir`, ascending.
pub fn list_snapshots(dir: &Path) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".snapshot") {
            if stem.len() == 20 {
                if let Ok(offset) = stem.parse::<i64>() {
                    out.push(offset);
                }
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Writes a snapshot of `state` taken at `offset` (everything below it is reflected).
pub fn write_snapshot(dir: &Path, offset: i64, state: &ProducerStateManager) -> Result<()> {
    crate::fs::write_atomically(&snapshot_path(dir, offset), &state.encode_snapshot())
}

/// [`write_snapshot`] without fsync (at segment roll, under the log's lock): a crash may leave
/// it torn, which its CRC reveals, and recovery then uses an older one or replays the log.
pub fn write_snapshot_unsynced(
    dir: &Path,
    offset: i64,
    state: &ProducerStateManager,
) -> Result<()> {
    let path = snapshot_path(dir, offset);
    let tmp = path.with_extension("snapshot.tmp");
    std::fs::write(&tmp, state.encode_snapshot())
        .map_err(|e| LogError::io("write snapshot", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| LogError::io("rename snapshot", &path, e))
}

/// Removes the snapshot files whose offset `drop` says to drop.
pub fn delete_snapshots(dir: &Path, drop: impl Fn(i64) -> bool) -> Result<()> {
    for offset in list_snapshots(dir)? {
        if drop(offset) {
            let path = snapshot_path(dir, offset);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io("remove snapshot", &path, e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32, offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset: offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 1_000,
            max_timestamp: 1_000,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    fn append(state: &mut ProducerStateManager, h: &BatchHeader) -> Result<()> {
        let mut pending = PendingUpdate::default();
        state.validate_batch(&mut pending, h, None, true)?;
        state.apply(pending);
        Ok(())
    }

    #[test]
    fn sequences_must_follow_and_duplicates_are_found() {
        let mut s = ProducerStateManager::new();
        append(&mut s, &header(1, 0, 0, 3, 0)).expect("first");
        append(&mut s, &header(1, 0, 3, 2, 3)).expect("next");
        let dup = s
            .find_duplicate(&header(1, 0, 0, 3, 99))
            .expect("duplicate");
        assert_eq!((dup.first_offset, dup.last_offset), (0, 2));
        let gap = append(&mut s, &header(1, 0, 7, 1, 5)).expect_err("gap");
        assert_eq!(gap.kafka_error_code(), 45);
        let old = append(&mut s, &header(1, 0, 2, 1, 5)).expect_err("behind");
        assert_eq!(old.kafka_error_code(), 45);
    }

    #[test]
    fn only_the_last_five_batches_are_kept_for_duplicates() {
        let mut s = ProducerStateManager::new();
        for i in 0..7 {
            append(&mut s, &header(1, 0, i, 1, i64::from(i))).expect("append");
        }
        assert!(s.find_duplicate(&header(1, 0, 1, 1, 0)).is_none());
        assert!(s.find_duplicate(&header(1, 0, 2, 1, 0)).is_some());
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let mut s = ProducerStateManager::new();
        append(&mut s, &header(1, 2, 0, 1, 0)).expect("epoch 2");
        let fenced = append(&mut s, &header(1, 1, 1, 1, 1)).expect_err("older epoch");
        assert_eq!(fenced.kafka_error_code(), 47);
        let bad = append(&mut s, &header(1, 3, 5, 1, 1)).expect_err("new epoch not at 0");
        assert_eq!(bad.kafka_error_code(), 45);
        append(&mut s, &header(1, 3, 0, 1, 1)).expect("new epoch at 0");
    }

    #[test]
    fn an_unknown_producer_may_start_at_any_sequence() {
        let mut s = ProducerStateManager::new();
        append(&mut s, &header(9, 0, 42, 1, 0)).expect("KIP-360");
        append(&mut s, &header(9, 0, 43, 1, 1)).expect("next");
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut s = ProducerStateManager::new();
        append(&mut s, &header(1, 0, i32::MAX - 1, 2, 0)).expect("to max");
        assert_eq!(s.entry(1).expect("entry").last_seq(), i32::MAX);
        append(&mut s, &header(1, 0, 0, 1, 2)).expect("wraps to 0");
        let h = header(1, 0, i32::MAX, 3, 0);
        assert_eq!(last_sequence(&h), 1);
    }

    #[test]
    fn transactions_bound_the_lso_and_markers_complete_them() {
        let mut s = ProducerStateManager::new();
        let mut txn = header(1, 0, 0, 2, 10);
        txn.attributes = 0x10;
        append(&mut s, &txn).expect("txn data");
        let mut other = header(2, 0, 0, 1, 12);
        other.attributes = 0x10;
        append(&mut s, &other).expect("other txn");
        assert_eq!(s.first_unstable_offset(), Some(10));
        let plain = append(&mut s, &header(1, 0, 2, 1, 13)).expect_err("non-txn in txn");
        assert_eq!(plain.kafka_error_code(), 48);
        let mut marker = header(1, 0, -1, 1, 13);
        marker.attributes = 0x30;
        let mut pending = PendingUpdate::default();
        let abort = TxnMarker {
            commit: false,
            coordinator_epoch: 4,
        };
        s.validate_batch(&mut pending, &marker, Some(abort), false)
            .expect("marker");
        let done = s.apply(pending);
        assert_eq!(
            done,
            vec![(
                CompletedTxn {
                    producer_id: 1,
                    first_offset: 10,
                    last_offset: 13,
                    aborted: true
                },
                12
            )]
        );
        assert_eq!(s.first_unstable_offset(), Some(12));
        // A marker from an older coordinator epoch is fenced.
        let mut pending = PendingUpdate::default();
        let stale = TxnMarker {
            commit: true,
            coordinator_epoch: 3,
        };
        let err = s
            .validate_batch(&mut pending, &marker, Some(stale), false)
            .expect_err("fenced");
        assert_eq!(err.kafka_error_code(), 52);
    }

    #[test]
    fn snapshots_round_trip_and_reject_corruption() {
        let mut s = ProducerStateManager::new();
        append(&mut s, &header(1, 0, 0, 3, 0)).expect("a");
        append(&mut s, &header(1, 0, 3, 2, 3)).expect("b");
        let mut txn = header(7, 4, 10, 1, 5);
        txn.attributes = 0x10;
        append(&mut s, &txn).expect("txn");
        let bytes = s.encode_snapshot();
        assert_eq!(bytes.len(), 6 + 4 + 2 * 46);
        let loaded = ProducerStateManager::decode_snapshot(&bytes).expect("decode");
        let e = loaded.entry(1).expect("producer 1");
        assert_eq!(e.last_seq(), 4);
        assert_eq!(
            e.batches.back().map(|b| (b.first_seq, b.first_offset)),
            Some((3, 3))
        );
        assert_eq!(loaded.first_unstable_offset(), Some(5));
        assert!(loaded.find_duplicate(&header(1, 0, 3, 2, 0)).is_some());
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            assert!(
                ProducerStateManager::decode_snapshot(&bad).is_none(),
                "flip at {at}"
            );
        }
    }

    #[test]
    fn idle_producers_expire_but_open_transactions_stay() {
        let mut s = ProducerStateManager::new();
        append(&mut s, &header(1, 0, 0, 1, 0)).expect("a");
        let mut txn = header(2, 0, 0, 1, 1);
        txn.attributes = 0x10;
        append(&mut s, &txn).expect("txn");
        assert_eq!(s.remove_expired(1_000 + 500, 1_000), 0);
        assert_eq!(s.remove_expired(1_000 + 1_000, 1_000), 1);
        assert!(s.entry(1).is_none() && s.entry(2).is_some());
    }
}
