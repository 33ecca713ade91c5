//! Crash recovery: torn tails, flipped bits, lost or garbled index files. Each case damages real
//! files the way a crash or a bad disk would and checks that exactly the valid prefix survives.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use vltava_log::batch::BatchHeader;
use vltava_log::{LogConfig, LogDir, LogDirOptions, TopicPartition};

fn segment_path(root: &Path, base: i64) -> std::path::PathBuf {
    root.join("orders-0").join(format!("{base:020}.log"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("list") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Writes `batches` batches of 2 records and stops without a clean shutdown.
fn crashed_log(root: &Path, batches: usize, config: LogConfig) -> Vec<Vec<u8>> {
    let (_dir, log) = open(root, config);
    for i in 0..batches {
        log.append(&batch(i as i64, &format!("c{i}"), 2), 0, 0)
            .expect("append");
    }
    read_all(&log, 0)
        .into_iter()
        .map(|(_, bytes)| bytes)
        .collect()
}

#[test]
fn a_tail_cut_at_every_byte_of_the_last_batch_keeps_exactly_the_earlier_batches() {
    let template = tempfile::tempdir().expect("tempdir");
    let written = crashed_log(template.path(), 5, LogConfig::default());
    let total: usize = written.iter().map(Vec::len).sum();
    let last_start = total - written[4].len();
    for cut in last_start..=total {
        let root = tempfile::tempdir().expect("tempdir");
        copy_dir(template.path(), root.path());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(segment_path(root.path(), 0))
            .expect("open");
        file.set_len(cut as u64).expect("cut");
        let (_dir, log) = open(root.path(), LogConfig::default());
        let survivors: Vec<Vec<u8>> = read_all(&log, 0).into_iter().map(|(_, b)| b).collect();
        let expect = if cut == total { 5 } else { 4 };
        assert_eq!(survivors, written[..expect].to_vec(), "cut at byte {cut}");
        assert_eq!(log.log_end_offset(), expect as i64 * 2);
        let len = std::fs::metadata(segment_path(root.path(), 0))
            .expect("stat")
            .len();
        assert_eq!(
            len as usize,
            if cut == total { total } else { last_start },
            "torn bytes removed from the file"
        );
        // The log accepts appends right after the valid prefix.
        let info = log.append(&batch(1, "next", 1), 0, 0).expect("append");
        assert_eq!(info.base_offset, expect as i64 * 2);
    }
}

#[test]
fn a_flipped_bit_truncates_at_the_damaged_batch() {
    let template = tempfile::tempdir().expect("tempdir");
    let written = crashed_log(template.path(), 8, LogConfig::default());
    let starts: Vec<usize> = written
        .iter()
        .scan(0, |pos, b| {
            let s = *pos;
            *pos += b.len();
            Some(s)
        })
        .collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for victim in 0..8 {
        for _ in 0..6 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Anywhere from the batch length field on, except partitionLeaderEpoch (bytes
            // 12..16), which like baseOffset is outside the CRC in Kafka's format.
            let mut within = 8 + (seed as usize % (written[victim].len() - 8));
            if (12..16).contains(&within) {
                within += 4;
            }
            let byte = starts[victim] + within;
            let root = tempfile::tempdir().expect("tempdir");
            copy_dir(template.path(), root.path());
            let path = segment_path(root.path(), 0);
            let mut bytes = std::fs::read(&path).expect("read");
            bytes[byte] ^= 1 << (seed % 8);
            std::fs::write(&path, &bytes).expect("write");
            let (_dir, log) = open(root.path(), LogConfig::default());
            let survivors: Vec<Vec<u8>> = read_all(&log, 0).into_iter().map(|(_, b)| b).collect();
            assert_eq!(
                survivors,
                written[..victim].to_vec(),
                "bit flip at byte {byte} of batch {victim}"
            );
        }
    }
}

#[test]
fn corruption_in_an_early_segment_deletes_every_later_segment() {
    let root = tempfile::tempdir().expect("tempdir");
    let written = crashed_log(root.path(), 200, small_segments());
    let segments = segment_files(&root.path().join("orders-0"));
    assert!(segments.len() > 3);
    let second = segments[1].clone();
    let mut bytes = std::fs::read(&second).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff; // the last batch of the second segment
    std::fs::write(&second, &bytes).expect("write");
    let (_dir, log) = open(root.path(), small_segments());
    let survivors = read_all(&log, 0);
    assert!(survivors.len() < written.len());
    assert_eq!(
        survivors.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>(),
        written[..survivors.len()].to_vec()
    );
    assert_eq!(
        log.segment_count(),
        2,
        "segments after the corrupt one are deleted"
    );
}

/// Ten batches of 3 records fsynced and checkpointed as the recovery point, then ten more left
/// unflushed, and no clean shutdown; every batch written, in order.
fn flushed_then_unflushed(root: &Path) -> Vec<(BatchHeader, Vec<u8>)> {
    let (dir, log) = open(root, LogConfig::default());
    for i in 0..10 {
        log.append(&batch(i, "durable", 3), 0, 0).expect("append");
    }
    log.flush(30).expect("flush");
    dir.checkpoint().expect("checkpoint");
    for i in 10..20 {
        log.append(&batch(i, "volatile", 3), 0, 0).expect("append");
    }
    read_all(&log, 0)
}

#[test]
fn fsynced_batches_survive_a_torn_unflushed_tail() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut flushed = flushed_then_unflushed(root.path());
    flushed.truncate(10);
    // The crash tore the unflushed tail in the middle of a batch.
    let path = segment_path(root.path(), 0);
    let len = std::fs::metadata(&path).expect("stat").len();
    let flushed_bytes: usize = flushed.iter().map(|(_, b)| b.len()).sum();
    let cut = flushed_bytes as u64 + (len - flushed_bytes as u64) / 2 + 3;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(cut)
        .expect("cut");
    let (_dir, log) = open(root.path(), LogConfig::default());
    let survivors = read_all(&log, 0);
    assert!(survivors.len() >= 10);
    assert_eq!(&survivors[..10], &flushed[..]);
}

#[test]
fn below_the_recovery_point_only_headers_are_checked_and_damage_past_it_is_cut() {
    let root = tempfile::tempdir().expect("tempdir");
    let written = flushed_then_unflushed(root.path());
    // A flipped bit in a record of batch 2 (fsynced, below the recovery point) and of batch 14.
    let path = segment_path(root.path(), 0);
    let mut bytes = std::fs::read(&path).expect("read");
    let start_of = |n: usize| written[..n].iter().map(|(_, b)| b.len()).sum::<usize>();
    bytes[start_of(2) + written[2].1.len() - 2] ^= 0x01;
    bytes[start_of(14) + written[14].1.len() - 2] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write");

    let (_dir, log) = open(root.path(), LogConfig::default());
    let survivors: Vec<Vec<u8>> = read_all(&log, 0).into_iter().map(|(_, b)| b).collect();
    // The scan stopped at batch 14; batch 2 was trusted as flushed, so it is served as the disk
    // holds it (a consumer's CRC check sees the damage, as with Kafka's trusted segments).
    assert_eq!(survivors.len(), 14);
    assert_eq!(log.log_end_offset(), 14 * 3);
    assert_ne!(survivors[2], written[2].1);
    assert_eq!(
        &survivors[3..],
        &written[3..14]
            .iter()
            .map(|(_, b)| b.clone())
            .collect::<Vec<_>>()[..]
    );
    // The indexes rebuilt from the headers alone find batches by offset and by time.
    let from_middle = read_all(&log, 7 * 3);
    assert_eq!(from_middle[0].1, written[7].1);
    let by_time = log
        .find_batch_by_timestamp(5)
        .expect("lookup")
        .expect("found");
    assert_eq!(by_time, written[5].1);
}

#[test]
fn missing_and_garbled_index_files_are_rebuilt() {
    let root = tempfile::tempdir().expect("tempdir");
    let before = {
        let (dir, log) = open(root.path(), small_segments());
        for i in 0..150 {
            log.append(&batch(1_000 + i, "idx", 2), 0, 0)
                .expect("append");
        }
        dir.shutdown().expect("clean shutdown");
        read_all(&log, 0)
    };
    let partition = root.path().join("orders-0");
    let mut damaged = 0;
    for entry in std::fs::read_dir(&partition).expect("list") {
        let path = entry.expect("entry").path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("index") if damaged % 2 == 0 => {
                std::fs::remove_file(&path).expect("delete");
                damaged += 1;
            }
            Some("index") => {
                std::fs::write(&path, [0xAB; 13]).expect("garble");
                damaged += 1;
            }
            Some("timeindex") if damaged % 3 == 0 => std::fs::remove_file(&path).expect("delete"),
            _ => {}
        }
    }
    assert!(damaged > 2);
    let (_dir, log) = open(root.path(), small_segments());
    assert_eq!(read_all(&log, 0), before);
    for offset in [0, 55, 101, 299] {
        let bytes = log
            .read(offset, 1 << 16, i64::MAX, true)
            .expect("read")
            .range
            .expect("data")
            .read_to_vec()
            .expect("bytes");
        let header = vltava_log::batch::BatchHeader::parse(&bytes).expect("header");
        assert!(header.base_offset <= offset && offset <= header.last_offset());
    }
    let found = log
        .find_batch_by_timestamp(1_100)
        .expect("lookup")
        .expect("some");
    assert_eq!(
        vltava_log::batch::BatchHeader::parse(&found)
            .expect("header")
            .max_timestamp,
        1_100
    );
    // Every segment has its index files back.
    let count = |ext: &str| {
        std::fs::read_dir(&partition)
            .expect("list")
            .filter(|e| {
                e.as_ref()
                    .expect("entry")
                    .path()
                    .extension()
                    .is_some_and(|x| x == ext)
            })
            .count()
    };
    assert_eq!(count("index"), count("log"));
}

#[test]
fn orphan_index_files_and_deletion_leftovers_are_removed() {
    let root = tempfile::tempdir().expect("tempdir");
    {
        let (dir, log) = open(root.path(), LogConfig::default());
        log.append(&batch(1, "a", 1), 0, 0).expect("append");
        dir.shutdown().expect("shutdown");
    }
    let partition = root.path().join("orders-0");
    std::fs::write(partition.join("00000000000000000500.index"), [0u8; 8]).expect("orphan");
    std::fs::write(partition.join("00000000000000000500.timeindex"), [0u8; 12]).expect("orphan");
    std::fs::write(partition.join("00000000000000000400.log.deleted"), b"junk").expect("leftover");
    std::fs::create_dir_all(root.path().join("gone-3.abc-delete")).expect("leftover dir");
    let dir = LogDir::open(root.path(), LogDirOptions::default()).expect("open");
    assert!(!root.path().join("gone-3.abc-delete").exists());
    assert_eq!(dir.partitions_on_disk(), vec![tp()]);
    let log = dir.open_log(&tp(), LogConfig::default()).expect("open log");
    assert_eq!(log.log_end_offset(), 1);
    assert!(!partition.join("00000000000000000500.index").exists());
    assert!(!partition.join("00000000000000000500.timeindex").exists());
    assert!(!partition.join("00000000000000000400.log.deleted").exists());
}

#[test]
fn garbage_appended_to_a_segment_is_cut_off() {
    let root = tempfile::tempdir().expect("tempdir");
    let written = crashed_log(root.path(), 4, LogConfig::default());
    let path = segment_path(root.path(), 0);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes.extend(std::iter::repeat_n(0u8, 4096)); // preallocated zeros after a crash
    bytes.extend(b"\xff\xff\xff\x7f garbage with a huge length");
    std::fs::write(&path, &bytes).expect("write");
    let (_dir, log) = open(root.path(), LogConfig::default());
    let survivors: Vec<Vec<u8>> = read_all(&log, 0).into_iter().map(|(_, b)| b).collect();
    assert_eq!(survivors, written);
}

#[test]
fn a_new_partition_after_an_unclean_stop_needs_no_recovery() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = LogDir::open(root.path(), LogDirOptions::default()).expect("open");
    assert!(!dir.was_clean_shutdown());
    let log = dir.open_log(&tp(), LogConfig::default()).expect("new log");
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.flushed_offset(), 0);
    assert!(root
        .path()
        .join("orders-0/00000000000000000000.log")
        .exists());
}

/// Eight partitions, each with its own record count, every other one with a torn last batch.
fn crashed_partitions(root: &Path) -> Vec<(TopicPartition, Vec<Vec<u8>>)> {
    let dir = LogDir::open(root, LogDirOptions::default()).expect("open");
    let mut kept = Vec::new();
    for p in 0..8 {
        let tp = TopicPartition::new("orders", p);
        let log = dir.open_log(&tp, small_segments()).expect("open log");
        for i in 0..(20 + p as usize * 7) {
            log.append(&batch(i as i64, &format!("p{p}-{i}"), 3), 0, 0)
                .expect("append");
        }
        let mut written: Vec<Vec<u8>> = read_all(&log, 0).into_iter().map(|(_, b)| b).collect();
        if p % 2 == 1 {
            let last = written.pop().expect("a batch");
            let active = segment_files(&root.join(tp.dir_name()))
                .pop()
                .expect("a segment");
            let len = std::fs::metadata(&active).expect("stat").len();
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&active)
                .expect("open");
            file.set_len(len - last.len() as u64 / 2).expect("tear");
        }
        kept.push((tp, written));
    }
    kept
}

#[test]
fn partitions_recovered_together_each_keep_exactly_their_own_valid_prefix() {
    let root = tempfile::tempdir().expect("tempdir");
    let expected = crashed_partitions(root.path());
    let dir = LogDir::open(root.path(), options_with(3)).expect("reopen");
    assert!(!dir.was_clean_shutdown());
    let wanted: Vec<(TopicPartition, LogConfig)> = expected
        .iter()
        .map(|(tp, _)| (tp.clone(), small_segments()))
        .collect();
    let logs = dir.open_logs(&wanted).expect("recover");
    assert_eq!(logs.len(), expected.len());
    for (log, (tp, written)) in logs.iter().zip(&expected) {
        assert_eq!(log.topic_partition(), tp);
        let survivors: Vec<Vec<u8>> = read_all(log, 0).into_iter().map(|(_, b)| b).collect();
        assert_eq!(&survivors, written, "{tp}");
        assert_eq!(log.flushed_offset(), log.log_end_offset(), "{tp} verified");
        // The same log as a later single open finds.
        assert!(Arc::ptr_eq(
            log,
            &dir.open_log(tp, small_segments()).expect("open")
        ));
    }

    // Closed together, they open cleanly with the same records.
    dir.shutdown().expect("shutdown");
    drop(logs);
    drop(dir);
    let dir = LogDir::open(root.path(), options_with(3)).expect("reopen");
    assert!(dir.was_clean_shutdown());
    let logs = dir.open_logs(&wanted).expect("open");
    for (log, (tp, written)) in logs.iter().zip(&expected) {
        let survivors: Vec<Vec<u8>> = read_all(log, 0).into_iter().map(|(_, b)| b).collect();
        assert_eq!(&survivors, written, "{tp} after a clean stop");
    }
}

fn options_with(recovery_threads: usize) -> LogDirOptions {
    LogDirOptions {
        recovery_threads,
        ..LogDirOptions::default()
    }
}

#[test]
fn segments_scanned_side_by_side_are_still_cut_at_the_first_bad_batch() {
    let root = tempfile::tempdir().expect("tempdir");
    let written = crashed_log(root.path(), 300, small_segments());
    let segments = segment_files(&root.path().join("orders-0"));
    assert!(segments.len() > 6, "{} segments", segments.len());
    // The third segment's last batch and the fifth's first byte are damaged: only the first
    // damage counts, whichever scan finishes first.
    for (segment, at_end) in [(&segments[2], true), (&segments[4], false)] {
        let mut bytes = std::fs::read(segment).expect("read");
        let at = if at_end { bytes.len() - 1 } else { 0 };
        bytes[at] ^= 0xff;
        std::fs::write(segment, &bytes).expect("write");
    }
    let before_third: usize = segments[..2]
        .iter()
        .map(|s| std::fs::metadata(s).expect("stat").len() as usize)
        .sum();
    let dir = LogDir::open(root.path(), options_with(8)).expect("reopen");
    let log = dir.open_log(&tp(), small_segments()).expect("recover");
    let survivors: Vec<Vec<u8>> = read_all(&log, 0).into_iter().map(|(_, b)| b).collect();
    assert_eq!(survivors, written[..survivors.len()].to_vec());
    let kept: usize = survivors.iter().map(Vec::len).sum();
    assert!(
        kept > before_third,
        "the third segment's valid batches stay"
    );
    assert_eq!(log.segment_count(), 3);
    for later in &segments[3..] {
        assert!(!later.exists(), "{} deleted", later.display());
    }
}
