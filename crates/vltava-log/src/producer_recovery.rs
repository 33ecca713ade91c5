//! Rebuilding producer state and the `.txnindex` entries when a log opens or is truncated
//! (Kafka's `UnifiedLog.rebuildProducerState`): load the newest usable `.snapshot`, then replay
//! the batch headers (and the markers of control batches) after it.

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::batch::{BatchHeader, HEADER_SIZE};
use crate::control;
use crate::error::{LogError, Result};
use crate::fs::FileCache;
use crate::index::txn::{AbortedTxn, TxnIndex};
use crate::log::LogState;
use crate::producer_state::{self, PendingUpdate, ProducerStateManager};

/// Where a rebuild may start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trust {
    /// The last stop was clean: a snapshot at the log end reflects everything.
    pub clean_shutdown: bool,
    /// After an unclean stop only snapshots at or below this offset are used.
    pub recovery_point: Option<i64>,
}

/// Replaces `state.producers` and `state.txn_index` with what the files and the log say.
pub(crate) fn rebuild(
    dir: &Path,
    state: &mut LogState,
    cache: &FileCache,
    trust: Trust,
) -> Result<()> {
    let log_end = state.log_end_offset();
    let first_base = state.segments.keys().next().copied().unwrap_or(0);
    producer_state::delete_snapshots(dir, |o| o > log_end)?;
    let limit = if trust.clean_shutdown {
        log_end
    } else {
        trust.recovery_point.unwrap_or(0).min(log_end)
    };
    let snapshots = producer_state::list_snapshots(dir)?;
    let mut loaded = None;
    for offset in snapshots
        .iter()
        .rev()
        .filter(|o| **o <= limit && **o >= first_base)
    {
        let path = producer_state::snapshot_path(dir, *offset);
        let bytes = std::fs::read(&path).map_err(|e| LogError::io("read snapshot", &path, e))?;
        match ProducerStateManager::decode_snapshot(&bytes) {
            Some(producers) => {
                loaded = Some((producers, *offset));
                break;
            }
            None => tracing::warn!(file = %path.display(), "ignoring a corrupt producer snapshot"),
        }
    }
    let (mut producers, from) = match loaded {
        Some(found) => found,
        // A log from before producer state was kept, stopped cleanly: nothing to rebuild
        // (Kafka does the same for logs of old message formats).
        None if trust.clean_shutdown && snapshots.is_empty() => {
            (ProducerStateManager::new(), log_end)
        }
        None => (ProducerStateManager::new(), first_base),
    };
    let mut txn_index = TxnIndex::load(dir, state.segments.keys().copied())?;
    txn_index.truncate_from(dir, from)?;
    if from < log_end {
        let start_segment = state
            .segments
            .range(..=from)
            .next_back()
            .map_or(first_base, |(b, _)| *b);
        for (base, segment) in state.segments.range(start_segment..) {
            let file = segment.file(cache)?;
            replay_segment(
                dir,
                &file,
                segment.size(),
                *base,
                from,
                &mut producers,
                &mut txn_index,
            )?;
        }
    }
    state.producers = producers;
    state.txn_index = txn_index;
    Ok(())
}

fn replay_segment(
    dir: &Path,
    file: &std::fs::File,
    size: u64,
    segment_base: i64,
    from: i64,
    producers: &mut ProducerStateManager,
    txn_index: &mut TxnIndex,
) -> Result<()> {
    let io = |e| LogError::io("replay producer state", dir, e);
    let mut reader = BufReader::with_capacity(1 << 16, file);
    reader.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut position = 0u64;
    let mut batch = Vec::new();
    while position + HEADER_SIZE as u64 <= size {
        let mut head = [0u8; HEADER_SIZE];
        reader.read_exact(&mut head).map_err(io)?;
        let Some(header) = BatchHeader::parse(&head) else {
            break;
        };
        let batch_size = header.size() as u64;
        if batch_size < HEADER_SIZE as u64 || position + batch_size > size {
            break;
        }
        let rest = batch_size - HEADER_SIZE as u64;
        let wanted = header.producer_id >= 0 && header.last_offset() >= from;
        let marker = if wanted && header.is_control() {
            batch.clear();
            batch.extend_from_slice(&head);
            batch.resize(batch_size as usize, 0);
            reader
                .read_exact(batch.get_mut(HEADER_SIZE..).unwrap_or_default())
                .map_err(io)?;
            control::parse_marker(&header, &batch).unwrap_or(None)
        } else {
            reader.seek_relative(rest as i64).map_err(io)?;
            None
        };
        position += batch_size;
        if !wanted {
            continue;
        }
        let mut pending = PendingUpdate::default();
        // The log already accepted these batches; replay applies them as Kafka's replication
        // origin does, without sequence checks. One that contradicts the state is skipped.
        if let Err(e) = producers.validate_batch(&mut pending, &header, marker, false) {
            tracing::warn!(
                offset = header.base_offset,
                "producer state replay skipped a batch: {e}"
            );
            continue;
        }
        for (txn, last_stable_offset) in producers.apply(pending) {
            if txn.aborted {
                txn_index.append(
                    dir,
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
    }
    Ok(())
}
