//! Opening a partition log from its files, and recovering it after an unclean shutdown.
//!
//! Follows Kafka's `LogLoader`: leftovers of deletions and temp files are removed, orphan index
//! files are removed, missing or corrupt indexes are rebuilt. After an unclean shutdown every
//! segment from the one holding the recovery point on is scanned batch by batch (length, CRC,
//! offsets; the batches below the recovery point by their headers only); at the first invalid
//! batch the segment is cut there and every later segment is deleted, and each drop is logged
//! with its size and reason.

use std::collections::BTreeMap;
use std::path::Path;

use crate::checkpoint;
use crate::config::LogConfig;
use crate::epoch::LeaderEpochCache;
use crate::error::{LogError, Result};
use crate::fs::{self, FileCache};
use crate::log::{
    index_settings, preallocation, LogState, TopicPartition, LEADER_EPOCH_CHECKPOINT,
};
use crate::segment::Segment;

/// What the log dir knows about the last run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecoveryContext {
    /// The clean-shutdown marker was present.
    pub clean_shutdown: bool,
    /// From `recovery-point-offset-checkpoint`: everything below was flushed.
    pub recovery_point: Option<i64>,
    /// From `log-start-offset-checkpoint`.
    pub log_start_offset: Option<i64>,
    /// How many of the partition's segments an unclean start scans at once (the log dir's
    /// recovery threads; 0 counts as 1).
    pub scan_threads: usize,
}

/// What recovery did to one partition, for the startup log line and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments_scanned: u64,
    pub batches_scanned: u64,
    pub bytes_truncated: u64,
    pub segments_deleted: u64,
}

/// Extensions that belong to a segment.
const SEGMENT_EXTENSIONS: [&str; 4] = ["log", "index", "timeindex", "txnindex"];

pub(crate) fn load(
    dir: &Path,
    tp: &TopicPartition,
    config: LogConfig,
    cache: &FileCache,
    context: RecoveryContext,
) -> Result<(LogState, i64)> {
    let bases = clean_directory(dir)?;
    let index = index_settings(&config);
    let mut segments = BTreeMap::new();
    for base in &bases {
        let path = dir.join(crate::segment::file_name(*base, "log"));
        segments.insert(*base, Segment::existing(path, *base, index)?);
    }
    let mut dir_dirty = false;
    // A partition with no segment yet is new, not crashed: nothing to recover.
    let fresh = segments.is_empty();
    if fresh {
        let start = context.log_start_offset.unwrap_or(0).max(0);
        segments.insert(
            start,
            Segment::create(dir, start, index, preallocation(&config))?,
        );
        dir_dirty = true;
    }

    let recovery_point = context.recovery_point.unwrap_or(0);
    let mut epochs = LeaderEpochCache::from_entries(checkpoint::read_epoch_entries(
        &dir.join(LEADER_EPOCH_CHECKPOINT),
    )?);
    let mut report = RecoveryReport::default();
    let all: Vec<i64> = segments.keys().copied().collect();
    // A segment is trusted if the shutdown was clean or it lies wholly below the point up to
    // which everything was flushed: a prefix of the segments, since bases only grow.
    let trusted = all
        .iter()
        .enumerate()
        .take_while(|(i, _)| {
            fresh || context.clean_shutdown || all.get(i + 1).is_some_and(|n| *n <= recovery_point)
        })
        .count();
    for (i, base) in all.iter().enumerate().take(trusted) {
        let Some(segment) = segments.get_mut(base) else {
            continue;
        };
        match all.get(i + 1) {
            None => segment.open_trusted(cache)?,
            Some(next) => segment.open_inactive(cache, *next)?,
        }
    }
    let suspect: Vec<i64> = all.iter().skip(trusted).copied().collect();
    let recovered_any = !suspect.is_empty();
    let hand_back = config.page_cache_tail_bytes.is_some();
    // Scanned side by side (each segment is checked on its own); their outcomes are then taken
    // in offset order, so a bad batch still cuts its segment and drops every later one.
    let scanning: Vec<std::sync::Mutex<Segment>> = suspect
        .iter()
        .filter_map(|base| segments.remove(base))
        .map(std::sync::Mutex::new)
        .collect();
    let scans = crate::parallel::map(&scanning, context.scan_threads, |cell| {
        let mut segment = cell.lock().unwrap_or_else(|e| e.into_inner());
        // What lies below the recovery point was fsynced before the checkpoint named it.
        let outcome = segment.rebuild_from_scan(cache, Some(recovery_point), hand_back)?;
        let found = segment_epochs(&segment, cache)?;
        if outcome.stopped_because.is_none() {
            segment.persist_indexes(true)?;
            segment.sync(cache)?;
        }
        Ok::<_, LogError>((outcome, found))
    });
    let mut scanned = scanning
        .into_iter()
        .map(|cell| cell.into_inner().unwrap_or_else(|e| e.into_inner()))
        .zip(scans);
    while let Some((mut segment, scan)) = scanned.next() {
        let (outcome, found) = scan?;
        report.segments_scanned += 1;
        report.batches_scanned += outcome.batches;
        for (epoch, start) in found {
            epochs.assign(epoch, start);
        }
        if let Some(reason) = outcome.stopped_because {
            report.bytes_truncated += outcome.invalid_bytes;
            tracing::warn!(
                partition = %tp,
                segment = %segment.log_path().display(),
                valid_bytes = outcome.valid_bytes,
                dropped_bytes = outcome.invalid_bytes,
                "recovery truncated a torn or corrupt tail: {reason}"
            );
            segment.truncate_file_to_size(cache)?;
            segment.persist_indexes(true)?;
            segment.sync(cache)?;
            segments.insert(segment.base_offset, segment);
            for (doomed, _) in scanned.by_ref() {
                tracing::warn!(partition = %tp, segment = %doomed.log_path().display(),
                    bytes = doomed.size(), "recovery deleted a segment after the corrupt one");
                report.segments_deleted += 1;
                doomed.delete(cache)?;
                dir_dirty = true;
            }
            break;
        }
        segments.insert(segment.base_offset, segment);
    }

    // Offsets must increase across segments; a segment that overlaps its successor can only
    // come from corruption of the names, which we refuse to guess about.
    let mut previous_end = i64::MIN;
    for segment in segments.values() {
        if segment.base_offset < previous_end {
            return Err(LogError::corrupt(
                0,
                format!(
                    "segment {} starts at {} below the previous segment's end {previous_end}",
                    segment.log_path().display(),
                    segment.base_offset
                ),
            ));
        }
        previous_end = segment.next_offset();
    }

    let log_end = segments.values().next_back().map_or(0, |s| s.next_offset());
    let first_base = segments.keys().next().copied().unwrap_or(0);
    let log_start_offset = context
        .log_start_offset
        .unwrap_or(first_base)
        .max(first_base)
        .min(log_end);
    if epochs.truncate_from_end(log_end) || recovered_any {
        checkpoint::write_epoch_entries(&dir.join(LEADER_EPOCH_CHECKPOINT), epochs.entries())?;
    }
    if dir_dirty {
        fs::sync_dir(dir)?;
    }
    if recovered_any {
        tracing::info!(
            partition = %tp,
            segments = report.segments_scanned,
            batches = report.batches_scanned,
            truncated_bytes = report.bytes_truncated,
            deleted_segments = report.segments_deleted,
            log_end_offset = log_end,
            "partition recovered"
        );
    }
    // Everything up to the end is now verified and synced (or was flushed before a clean stop).
    let durable = log_end;
    // What came before the active segment is left to the kernel.
    let released = crate::page_cache::Released {
        base: segments
            .keys()
            .next_back()
            .copied()
            .unwrap_or(log_start_offset),
        position: 0,
    };
    Ok((
        LogState {
            config,
            segments,
            log_start_offset,
            epochs,
            dir_dirty: false,
            unflushed_messages: 0,
            oldest_unflushed_ms: None,
            producers: Default::default(),
            txn_index: Default::default(),
            verifications: Default::default(),
            released,
        },
        durable,
    ))
}

/// The leader epochs that start within a segment, read from its batch headers.
fn segment_epochs(segment: &Segment, cache: &FileCache) -> Result<Vec<(i32, i64)>> {
    let file = segment.file(cache)?;
    let mut out: Vec<(i32, i64)> = Vec::new();
    let mut position = 0u64;
    while let Some(header) = segment.header_at(&file, position)? {
        if out
            .last()
            .is_none_or(|&(e, _)| header.partition_leader_epoch > e)
        {
            out.push((header.partition_leader_epoch, header.base_offset));
        }
        position += header.size() as u64;
    }
    Ok(out)
}

/// Removes leftovers (`.deleted`, `.tmp`, `.cleaned`, `.swap`) and orphan index files; returns
/// the base offsets of the segments present.
fn clean_directory(dir: &Path) -> Result<Vec<i64>> {
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("list", dir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let leftover = [".deleted", ".tmp", ".cleaned", ".swap"]
            .iter()
            .any(|suffix| name.ends_with(suffix));
        if leftover {
            tracing::info!(file = %path.display(), "removing leftover file");
            std::fs::remove_file(&path).map_err(|e| LogError::io("remove leftover", &path, e))?;
            continue;
        }
        let Some((stem, extension)) = name.split_once('.') else {
            continue;
        };
        if stem.len() != 20 || !SEGMENT_EXTENSIONS.contains(&extension) {
            continue;
        }
        let Ok(base) = stem.parse::<i64>() else {
            continue;
        };
        if extension == "log" {
            logs.push(base);
        } else {
            indexes.push((base, path));
        }
    }
    for (base, path) in indexes {
        if !logs.contains(&base) {
            tracing::warn!(file = %path.display(), "removing orphan index file");
            std::fs::remove_file(&path).map_err(|e| LogError::io("remove orphan", &path, e))?;
        }
    }
    logs.sort_unstable();
    Ok(logs)
}
