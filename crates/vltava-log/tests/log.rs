//! The partition log's contract, through its public API on real files.

mod common;

use common::*;
use vltava_log::batch::{self, BatchHeader};
use vltava_log::{AppendInfo, AppendOrigin, LogConfig, LogError, TimestampType};

#[test]
fn appends_get_dense_offsets_and_read_back_byte_for_byte() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(root.path(), LogConfig::default());
    let mut expected = Vec::new();
    for i in 0..20 {
        let b = batch(1_000 + i, &format!("b{i}"), 3);
        let info = log.append(&b, 5, 0).expect("append");
        assert_eq!(info.base_offset, i * 3);
        assert_eq!(info.last_offset, i * 3 + 2);
        expected.push(as_stored(&b, &info, 5));
    }
    assert_eq!(log.log_end_offset(), 60);
    let read = read_all(&log, 0);
    assert_eq!(read.len(), 20);
    for ((header, bytes), want) in read.iter().zip(&expected) {
        assert_eq!(
            bytes, want,
            "stored bytes differ from the offset-assigned input"
        );
        assert_eq!(header.partition_leader_epoch, 5);
        batch::validate(bytes, 0).expect("CRC still valid on disk");
    }
}

#[test]
fn a_read_starts_at_the_batch_containing_the_offset() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(root.path(), small_segments());
    for i in 0..50 {
        log.append(&batch(i, "x", 4), 0, 0).expect("append");
    }
    for offset in [0, 1, 3, 4, 77, 150, 199] {
        let info = log.read(offset, 1 << 20, i64::MAX, true).expect("read");
        let bytes = info.range.expect("data").read_to_vec().expect("bytes");
        let header = BatchHeader::parse(&bytes).expect("header");
        assert!(
            header.base_offset <= offset && offset <= header.last_offset(),
            "offset {offset}"
        );
    }
}

#[test]
fn reads_stop_below_the_upper_bound_and_respect_max_bytes() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(root.path(), LogConfig::default());
    let one = batch(1, "x", 1).len() as u32;
    for _ in 0..10 {
        log.append(&batch(1, "x", 1), 0, 0).expect("append");
    }
    let info = log.read(0, 1 << 20, 4, false).expect("read");
    assert_eq!(
        info.range.expect("data").length,
        4 * one,
        "high watermark bound"
    );
    let info = log.read(4, 1 << 20, 4, false).expect("read");
    assert!(info.range.is_none(), "nothing at or above the bound");
    let info = log.read(0, one * 2 + 5, i64::MAX, false).expect("read");
    assert_eq!(
        info.range.expect("data").length,
        one * 2 + 5,
        "cut at max_bytes like Kafka"
    );
    let info = log.read(0, 3, i64::MAX, false).expect("read");
    assert!(
        info.range.is_none(),
        "an incomplete first batch is not returned"
    );
    let info = log.read(0, 3, i64::MAX, true).expect("read");
    assert_eq!(
        info.range.expect("data").length,
        one,
        "min_one_batch returns one whole batch"
    );
}

#[test]
fn offsets_outside_the_log_are_out_of_range() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(root.path(), LogConfig::default());
    log.append(&batch(1, "x", 2), 0, 0).expect("append");
    assert!(log
        .read(2, 100, i64::MAX, true)
        .expect("at end")
        .range
        .is_none());
    let err = log.read(3, 100, i64::MAX, true).expect_err("past end");
    assert!(matches!(
        err,
        LogError::OffsetOutOfRange {
            requested: 3,
            log_start_offset: 0,
            log_end_offset: 2
        }
    ));
    assert_eq!(err.kafka_error_code(), 1);
}

#[test]
fn invalid_appends_change_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(
        root.path(),
        LogConfig {
            max_message_bytes: 200,
            ..LogConfig::default()
        },
    );
    log.append(&batch(1, "ok", 1), 0, 0).expect("append");
    let mut bad_crc = batch(1, "x", 1);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    assert_eq!(
        log.append(&bad_crc, 0, 0)
            .expect_err("crc")
            .kafka_error_code(),
        2
    );
    let big = batch(1, &"y".repeat(300), 1);
    assert_eq!(
        log.append(&big, 0, 0)
            .expect_err("too large")
            .kafka_error_code(),
        10
    );
    let mut mixed = batch(1, "a", 1);
    mixed.extend(bad_crc);
    assert!(
        log.append(&mixed, 0, 0).is_err(),
        "one bad batch rejects the whole append"
    );
    assert!(log.append(&[], 0, 0).is_err(), "empty append");
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(read_all(&log, 0).len(), 1);
}

#[test]
fn segments_roll_by_size_and_keep_kafka_file_names() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(root.path(), small_segments());
    let size = batch(1, "roll", 5).len() as u64;
    for _ in 0..100 {
        log.append(&batch(1, "roll", 5), 0, 0).expect("append");
    }
    let per_segment = 4096 / size;
    assert_eq!(
        log.segment_count() as u64,
        100_u64.div_ceil(per_segment),
        "4 KiB segments must roll"
    );
    let names: Vec<String> = std::fs::read_dir(root.path().join("orders-0"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"00000000000000000000.log".to_string()));
    assert!(names
        .iter()
        .any(|n| n.ends_with(".log") && n != "00000000000000000000.log"));
    assert_eq!(
        read_all(&log, 0).len(),
        100,
        "reads cross segment boundaries"
    );
    for entry in std::fs::read_dir(root.path().join("orders-0")).expect("list") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "log") {
            assert!(std::fs::metadata(&path).expect("stat").len() <= 4096);
        }
    }
}

/// `preallocate`: a new segment holds `segment.bytes` of disk blocks while its length stays that
/// of its records (recovery reads the log's end from the length); a rolled one keeps only what
/// it holds. Needs a file system with `fallocate` (ext4, xfs, btrfs, tmpfs).
#[test]
fn preallocated_segments_reserve_blocks_and_give_back_the_rest_when_they_roll() {
    use std::os::unix::fs::MetadataExt;
    const SEGMENT: u64 = 1 << 20;
    let root = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: SEGMENT,
        preallocate: true,
        ..LogConfig::default()
    };
    let (_dir, log) = open(root.path(), config);
    let first = root
        .path()
        .join("orders-0")
        .join("00000000000000000000.log");
    let stat = |path: &std::path::Path| std::fs::metadata(path).expect("stat segment");
    assert_eq!(stat(&first).len(), 0);
    assert!(
        stat(&first).blocks() * 512 >= SEGMENT,
        "{} bytes reserved for a new segment",
        stat(&first).blocks() * 512
    );

    let big = batch(1, &"v".repeat(4000), 100);
    let per_segment = SEGMENT / big.len() as u64;
    for _ in 0..=per_segment {
        log.append(&big, 0, 0).expect("append");
    }
    assert_eq!(log.segment_count(), 2, "the segment must have rolled");
    let rolled = stat(&first);
    assert_eq!(rolled.len(), per_segment * big.len() as u64);
    assert!(
        rolled.blocks() * 512 < rolled.len() + 64 * 1024,
        "a rolled segment of {} bytes still holds {} bytes of blocks",
        rolled.len(),
        rolled.blocks() * 512
    );
    assert_eq!(read_all(&log, 0).len() as u64, per_segment + 1);
}

/// Kafka's segment.ms measures record time (KIP-32, LogSegment.shouldRoll): an append rolls
/// the segment when its max timestamp is more than segment.ms past the first batch's, whatever
/// the wall clock says.
#[test]
fn segments_roll_by_record_time() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(
        root.path(),
        LogConfig {
            segment_ms: 1_000,
            ..LogConfig::default()
        },
    );
    log.append(&batch(10_000, "a", 1), 0, 0).expect("append");
    log.append(&batch(11_000, "b", 1), 0, 999_999)
        .expect("append");
    assert_eq!(log.segment_count(), 1, "exactly segment.ms later stays");
    log.append(&batch(11_001, "c", 1), 0, 0).expect("append");
    assert_eq!(log.segment_count(), 2, "past segment.ms rolls");
    // An old-timestamped segment rolls as soon as current data arrives (why Kafka's Fetch
    // after a transaction on 1970 data returns the data without the marker: they are in two
    // segments, and a fetch reads from one).
    log.append(&batch(1_000_000, "now", 1), 0, 0)
        .expect("append");
    assert_eq!(log.segment_count(), 3);
}

/// A first batch without timestamps (-1): the segment ages by the wall clock instead.
#[test]
fn segments_without_timestamps_roll_by_wall_clock() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(
        root.path(),
        LogConfig {
            segment_ms: 1_000,
            ..LogConfig::default()
        },
    );
    log.append(&batch(-1, "a", 1), 0, 10_000).expect("append");
    log.append(&batch(-1, "b", 1), 0, 11_000).expect("append");
    assert_eq!(log.segment_count(), 1);
    log.append(&batch(-1, "c", 1), 0, 11_001).expect("append");
    assert_eq!(log.segment_count(), 2);
    // And the maintenance timer rolls an idle segment by the wall clock.
    log.roll_if_due(20_000).expect("timer");
    assert_eq!(log.segment_count(), 3);
}

#[test]
fn timestamp_lookup_finds_the_first_batch_at_or_after() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(root.path(), small_segments());
    for i in 0..60 {
        log.append(&batch(1_000 + i * 10, "t", 2), 0, 0)
            .expect("append");
    }
    let found = log
        .find_batch_by_timestamp(1_205)
        .expect("lookup")
        .expect("some");
    let header = BatchHeader::parse(&found).expect("header");
    assert_eq!(header.max_timestamp, 1_210);
    assert_eq!(header.base_offset, 42);
    assert!(log
        .find_batch_by_timestamp(99_999)
        .expect("lookup")
        .is_none());
    let first = log
        .find_batch_by_timestamp(0)
        .expect("lookup")
        .expect("some");
    assert_eq!(BatchHeader::parse(&first).expect("header").base_offset, 0);
    let max = log.max_timestamp_batch().expect("max").expect("some");
    assert_eq!(
        BatchHeader::parse(&max).expect("header").max_timestamp,
        1_590
    );
}

#[test]
fn log_append_time_stamps_the_broker_clock() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let (_dir, log) = open(root.path(), config);
    let info = log.append(&batch(5, "x", 1), 0, 777).expect("append");
    assert_eq!(info.log_append_time_ms, 777);
    let (header, bytes) = read_all(&log, 0).remove(0);
    assert_eq!(header.max_timestamp, 777);
    assert!(header.is_log_append_time());
    batch::validate(&bytes, 0).expect("CRC recomputed");
}

#[test]
fn truncation_removes_whole_batches_and_later_segments() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(root.path(), small_segments());
    for i in 0..100 {
        log.append(&batch(i, "t", 2), i as i32 / 10, 0)
            .expect("append");
    }
    log.truncate_to(101).expect("truncate mid-batch");
    assert_eq!(
        log.log_end_offset(),
        100,
        "the batch holding 101 goes whole"
    );
    log.truncate_to(37).expect("truncate");
    assert_eq!(log.log_end_offset(), 36);
    assert_eq!(read_all(&log, 0).len(), 18);
    assert_eq!(log.latest_leader_epoch(), Some(1));
    let info = log
        .append(&batch(1, "after", 1), 9, 0)
        .expect("append after truncation");
    assert_eq!(info.base_offset, 36);
    log.truncate_to(0).expect("truncate all");
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn offset_for_leader_epoch_follows_the_epoch_cache() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(root.path(), LogConfig::default());
    for (epoch, count) in [(0, 3), (2, 4), (5, 1)] {
        for _ in 0..count {
            log.append(&batch(1, "e", 1), epoch, 0).expect("append");
        }
    }
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 3)));
    assert_eq!(log.end_offset_for_epoch(1), Some((0, 3)));
    assert_eq!(log.end_offset_for_epoch(2), Some((2, 7)));
    assert_eq!(log.end_offset_for_epoch(5), Some((5, 8)));
    assert_eq!(log.end_offset_for_epoch(6), None);
    let text = std::fs::read_to_string(root.path().join("orders-0/leader-epoch-checkpoint"))
        .expect("file");
    assert_eq!(text, "0\n3\n0 0\n2 3\n5 7\n");
}

#[test]
fn retention_deletes_old_segments_and_moves_the_log_start() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        retention_ms: 1_000,
        ..small_segments()
    };
    let (_dir, log) = open(root.path(), config);
    for i in 0..100 {
        log.append(&batch(i * 100, "r", 2), 0, 0).expect("append");
    }
    let segments = log.segment_count();
    let deleted = log.apply_retention(9_000).expect("retention");
    assert!(deleted > 0 && (deleted as usize) < segments);
    let start = log.log_start_offset();
    assert!(start > 0);
    assert!(matches!(
        log.read(0, 100, i64::MAX, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let first = read_all(&log, start);
    assert_eq!(first[0].0.base_offset, start);
    let leftovers = std::fs::read_dir(root.path().join("orders-0"))
        .expect("list")
        .filter(|e| {
            e.as_ref()
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .ends_with(".deleted")
        })
        .count();
    assert_eq!(leftovers, 0);
    // Everything expired: the active segment stays.
    log.apply_retention(i64::MAX / 2).expect("retention");
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), 200);
}

#[test]
fn size_retention_keeps_the_log_under_retention_bytes() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        retention_ms: -1,
        retention_bytes: 10_000,
        ..small_segments()
    };
    let (_dir, log) = open(root.path(), config);
    for i in 0..200 {
        log.append(&batch(i, "s", 2), 0, 0).expect("append");
    }
    log.apply_retention(0).expect("retention");
    assert!(
        log.size_bytes() <= 10_000 + 4096,
        "size {}",
        log.size_bytes()
    );
    assert!(log.size_bytes() > 10_000 - 4096);
}

#[test]
fn delete_records_advances_the_log_start_offset() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(root.path(), small_segments());
    for i in 0..100 {
        log.append(&batch(i, "d", 2), 0, 0).expect("append");
    }
    log.advance_log_start_offset(150).expect("advance");
    assert_eq!(log.log_start_offset(), 150);
    assert!(matches!(
        log.read(149, 100, i64::MAX, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(log
        .read(150, 100, i64::MAX, true)
        .expect("read")
        .range
        .is_some());
    assert!(log.advance_log_start_offset(201).is_err());
}

#[test]
fn a_clean_restart_keeps_everything() {
    let root = tempfile::tempdir().expect("tempdir");
    let before = {
        let (dir, log) = open(root.path(), small_segments());
        for i in 0..80 {
            log.append(&batch(i, "r", 3), 2, 0).expect("append");
        }
        log.advance_log_start_offset(0).expect("noop");
        dir.shutdown().expect("shutdown");
        read_all(&log, 0)
    };
    assert!(root.path().join(".kafka_cleanshutdown").exists());
    let (dir, log) = open(root.path(), small_segments());
    assert!(dir.was_clean_shutdown());
    assert!(
        !root.path().join(".kafka_cleanshutdown").exists(),
        "marker removed on open"
    );
    assert_eq!(log.log_end_offset(), 240);
    assert_eq!(read_all(&log, 0), before);
    assert_eq!(log.latest_leader_epoch(), Some(2));
    let info = log.append(&batch(1, "more", 1), 2, 0).expect("append");
    assert_eq!(info.base_offset, 240);
}

#[test]
fn flush_makes_offsets_durable_and_advances_the_recovery_point() {
    let root = tempfile::tempdir().expect("tempdir");
    let (dir, log) = open(root.path(), LogConfig::default());
    let info = log.append(&batch(1, "f", 10), 0, 0).expect("append");
    assert_eq!(log.flushed_offset(), 0);
    log.flush(info.last_offset + 1).expect("flush");
    assert_eq!(log.flushed_offset(), 10);
    dir.checkpoint().expect("checkpoint");
    let text = std::fs::read_to_string(root.path().join("recovery-point-offset-checkpoint"))
        .expect("read");
    assert_eq!(text, "0\n1\norders 0 10\n");
}

#[test]
fn flush_messages_policy_fsyncs_during_append() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(
        root.path(),
        LogConfig {
            flush_messages: 5,
            ..LogConfig::default()
        },
    );
    log.append(&batch(1, "a", 3), 0, 0).expect("append");
    assert_eq!(log.flushed_offset(), 0);
    log.append(&batch(1, "b", 3), 0, 0).expect("append");
    assert_eq!(log.flushed_offset(), 6);
}

#[test]
fn flush_ms_policy_flushes_old_appends() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(
        root.path(),
        LogConfig {
            flush_ms: 100,
            ..LogConfig::default()
        },
    );
    log.append(&batch(1, "a", 3), 0, 1_000).expect("append");
    assert!(!log.flush_if_due(1_050).expect("not yet"));
    assert!(log.flush_if_due(1_100).expect("due"));
    assert_eq!(log.flushed_offset(), 3);
}

#[test]
fn a_rolled_segment_is_flushed_at_the_next_check_whatever_the_flush_policy() {
    let root = tempfile::tempdir().expect("tempdir");
    let (dir, log) = open(root.path(), small_segments());
    let mut info = None;
    while log.segment_count() < 4 {
        info = Some(log.append(&batch(1, "a", 20), 0, 0).expect("append"));
    }
    let end = log.log_end_offset();
    assert_eq!(
        log.flushed_offset(),
        0,
        "no flush policy: nothing flushed on append"
    );
    let active_base = info.expect("appended").base_offset;
    assert!(log.flush_if_due(0).expect("rolled segments are due"));
    assert!(
        log.flushed_offset() >= active_base,
        "{} < {active_base}",
        log.flushed_offset()
    );
    // The recovery point written next vouches for every rolled segment.
    dir.checkpoint().expect("checkpoint");
    let points = vltava_log::checkpoint::read_partition_offsets(
        &root.path().join(vltava_log::dir::RECOVERY_POINT_CHECKPOINT),
    )
    .expect("read checkpoint");
    assert_eq!(
        points,
        vec![("orders".to_string(), 0, log.flushed_offset())]
    );
    assert!(log.flushed_offset() <= end);

    // Nothing rolled since: no flush (flush.ms is unset).
    log.append(&batch(1, "b", 1), 0, 0).expect("append");
    assert_eq!(log.segment_count(), 4);
    assert!(!log.flush_if_due(0).expect("not due"));
}

#[test]
fn deleting_a_partition_removes_its_directory() {
    let root = tempfile::tempdir().expect("tempdir");
    let (dir, log) = open(root.path(), LogConfig::default());
    log.append(&batch(1, "a", 1), 0, 0).expect("append");
    assert!(open_files_under(root.path()) > 0, "the segment is open");
    dir.delete_log(&tp()).expect("delete");
    assert!(!root.path().join("orders-0").exists());
    assert!(dir.get(&tp()).is_none());
    // An open handle would keep the deleted files' blocks: the disk space must come back now.
    assert_eq!(open_files_under(root.path()), 0);
}

/// This process's open file descriptors on files under `path` (deleted ones included).
fn open_files_under(path: &std::path::Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
        .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.starts_with(path)))
        .count()
}

#[test]
fn open_files_stay_within_the_budget_across_many_partitions() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = vltava_log::LogDir::open(
        root.path(),
        vltava_log::LogDirOptions {
            max_open_files: 64,
            ..vltava_log::LogDirOptions::default()
        },
    )
    .expect("open");
    for p in 0..500 {
        let log = dir
            .open_log(
                &vltava_log::TopicPartition::new("many", p),
                LogConfig::default(),
            )
            .expect("open");
        log.append(&batch(1, "m", 1), 0, 0).expect("append");
        assert!(dir.open_file_count() <= 64);
    }
    for p in 0..500 {
        let log = dir
            .get(&vltava_log::TopicPartition::new("many", p))
            .expect("open");
        assert_eq!(read_all(&log, 0).len(), 1, "evicted files reopen on demand");
    }
    assert!(dir.open_file_count() <= 64);
}

#[test]
fn an_idle_partition_loads_no_indexes_after_a_clean_restart() {
    let root = tempfile::tempdir().expect("tempdir");
    {
        let (dir, log) = open(root.path(), small_segments());
        for i in 0..300 {
            log.append(&batch(1_000 + i, "idle", 2), 0, 0)
                .expect("append");
        }
        dir.shutdown().expect("shutdown");
    }
    let (_dir, log) = open(root.path(), small_segments());
    assert!(log.segment_count() > 5);
    // Only the active segment's (small) indexes are in memory.
    assert!(
        log.index_memory_bytes() < 1024,
        "{} bytes of index in memory",
        log.index_memory_bytes()
    );
    // Retention and timestamp lookups still see the sealed max timestamps.
    let max = log.max_timestamp_batch().expect("max").expect("some");
    assert_eq!(
        vltava_log::batch::BatchHeader::parse(&max)
            .expect("header")
            .max_timestamp,
        1_299
    );
    let found = log
        .find_batch_by_timestamp(1_150)
        .expect("lookup")
        .expect("some");
    assert_eq!(
        vltava_log::batch::BatchHeader::parse(&found)
            .expect("header")
            .base_offset,
        300
    );
}

#[test]
fn records_outside_the_timestamp_bounds_are_refused_and_nothing_is_written() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        message_timestamp_before_max_ms: 1_000,
        message_timestamp_after_max_ms: 1_000,
        ..LogConfig::default()
    };
    let (_dir, log) = open(root.path(), config);
    let now = 1_000_000;
    log.append(&batch(now - 1_000, "edge", 2), 0, now)
        .expect("exactly at the bound is in");
    for ts in [now - 1_001, now + 1_001] {
        let err = log
            .append(&batch(ts, "out", 3), 0, now)
            .expect_err("out of bounds");
        assert_eq!(err.kafka_error_code(), 32);
        let LogError::RecordsRejected { errors, total, .. } = err else {
            panic!("record errors expected");
        };
        assert_eq!(total, 3);
        let indexes: Vec<i32> = errors.iter().map(|e| e.batch_index).collect();
        assert_eq!(indexes, vec![0, 1, 2]);
    }
    assert_eq!(log.log_end_offset(), 2);
}

/// The broker's own appends may carry many batches in one call; they are written with vectored
/// writes of at most IOV_MAX slices (two per batch), so 1 500 batches take several writes.
#[test]
fn an_append_of_more_batches_than_one_vectored_write_takes_lands_whole_and_in_order() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(root.path(), LogConfig::default());
    log.append(&batch(1, "first", 2), 3, 0)
        .expect("first append");
    let batches: Vec<Vec<u8>> = (0..1_500).map(|i| batch(i, &format!("m{i}"), 1)).collect();
    let info = log
        .append_from(AppendOrigin::Coordinator, &batches.concat(), 3, 0)
        .expect("append 1 500 batches");
    assert_eq!((info.base_offset, info.last_offset), (2, 1_501));
    let read = read_all(&log, 2);
    assert_eq!(read.len(), 1_500);
    for (i, ((header, bytes), sent)) in read.iter().zip(&batches).enumerate() {
        assert_eq!(header.base_offset, 2 + i as i64);
        let assigned = AppendInfo {
            base_offset: header.base_offset,
            ..info
        };
        assert_eq!(bytes, &as_stored(sent, &assigned, 3), "batch {i}");
    }
}

#[test]
fn an_append_that_needs_nothing_slow_is_taken_in_memory_and_slow_ones_declined() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(
        root.path(),
        LogConfig {
            segment_bytes: 1024,
            ..LogConfig::default()
        },
    );
    let declined = |batch: &[u8], epoch: i32| {
        let end = log.log_end_offset();
        let quick = log.try_append_in_memory(batch, epoch, 0).expect("try");
        assert!(quick.is_none(), "taken in memory: {quick:?}");
        assert_eq!(
            log.log_end_offset(),
            end,
            "a declined append changed the log"
        );
    };
    // The first append writes leader epoch 0 down (a checkpoint file, fsynced).
    let first = batch(1, "a", 3);
    declined(&first, 0);
    let first_info = log.append(&first, 0, 0).expect("append");

    let plain = batch(1, "b", 2);
    let quick = log
        .try_append_in_memory(&plain, 0, 0)
        .expect("try")
        .expect("a plain append in the same epoch is taken");
    assert_eq!((quick.info.base_offset, quick.info.last_offset), (3, 4));

    // A new leader epoch, a batch that rolls the 1 KiB segment, a compressed batch.
    declined(&batch(1, "c", 1), 1);
    let value = [b'x'; 900];
    declined(&batch::build_test_batch(1, &[&value[..]]), 0);
    let records = batch::encode_test_records(&[batch::TestRecord {
        key: None,
        timestamp_delta: 0,
        value: b"z",
    }]);
    let zstd = zstd::encode_all(records.as_slice(), 3).expect("zstd");
    declined(&batch::wrap_test_records(1, 1, 1, 4, &zstd), 0);
    // A flush.messages policy could fsync in the append.
    log.set_config(LogConfig {
        segment_bytes: 1024,
        flush_messages: 100,
        ..LogConfig::default()
    });
    declined(&batch(1, "d", 1), 0);

    let read: Vec<Vec<u8>> = read_all(&log, 0).into_iter().map(|(_, b)| b).collect();
    assert_eq!(
        read,
        vec![
            as_stored(&first, &first_info, 0),
            as_stored(&plain, &quick.info, 0)
        ]
    );
}
