//! `log.page.cache.tail.bytes`: flushed bytes behind the tail leave the page cache, reads of them
//! still return them, and without a tail the page cache keeps everything (as under Kafka).
//! Residency is read with util-linux's `fincore` (mincore(2) on each segment file).

mod common;

use std::path::Path;
use std::process::Command;

use common::{as_stored, open, read_all, segment_files, whole_batches};
use vltava_log::batch::build_test_batch;
use vltava_log::{Log, LogConfig};

const MIB: u64 = 1 << 20;

/// Bytes of the partition's segment files in the page cache.
fn resident_bytes(dir: &Path) -> u64 {
    let logs = segment_files(dir);
    assert!(!logs.is_empty(), "no segment files in {}", dir.display());
    logs.iter().map(|log| resident_in(log)).sum()
}

/// Bytes of one file in the page cache.
fn resident_in(file: &Path) -> u64 {
    let out = Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(file)
        .output()
        .expect("run fincore (util-linux)");
    assert!(out.status.success(), "fincore failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("fincore prints bytes")
}

/// Writes about 8 MiB in 64 KiB batches over 4 MiB segments, fsyncing after each batch as an
/// acks=all produce does; returns the batches as stored.
fn write_flushed(log: &Log) -> Vec<Vec<u8>> {
    write(log, 128, true)
}

/// `batches` of those, fsynced after each if `flush` (not: an acks=1 produce with no flush
/// policy).
fn write(log: &Log, batches: i64, flush: bool) -> Vec<Vec<u8>> {
    let mut written = Vec::new();
    for b in 0..batches {
        let values: Vec<Vec<u8>> = (0..64)
            .map(|i| format!("{b}-{i}-{}", "x".repeat(1000)).into_bytes())
            .collect();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let batch = build_test_batch(1_000 + b, &refs);
        let info = log.append(&batch, 0, 1_000 + b).expect("append");
        if flush {
            log.flush(log.log_end_offset()).expect("flush");
        }
        written.push(as_stored(&batch, &info, 0));
    }
    written
}

fn config(tail: Option<u64>) -> LogConfig {
    LogConfig {
        segment_bytes: 4 * MIB,
        page_cache_tail_bytes: tail,
        ..LogConfig::default()
    }
}

fn batches_read(log: &Log) -> Vec<Vec<u8>> {
    read_all(log, 0)
        .into_iter()
        .map(|(_, bytes)| bytes)
        .collect()
}

fn scratch() -> tempfile::TempDir {
    // Not /tmp: a tmpfs keeps its pages whatever we advise.
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir")
}

#[test]
fn flushed_bytes_behind_the_tail_leave_the_page_cache() {
    let root = scratch();
    let (_dir, log) = open(root.path(), config(Some(MIB)));
    let written = write_flushed(&log);
    assert!(
        log.size_bytes() > 7 * MIB,
        "wrote {} bytes",
        log.size_bytes()
    );
    let resident = resident_bytes(log.dir());
    assert!(
        resident <= 2 * MIB,
        "{resident} bytes of the log still cached with a 1 MiB tail"
    );

    // A fetch of the oldest bytes reads them from disk, whole.
    let first = log.read(0, 4 * MIB as u32, i64::MAX, true).expect("read");
    let first = first.range.expect("a range");
    assert!(first.beyond_tail, "the oldest bytes are behind the tail");
    assert_eq!(
        first.read_to_vec().expect("read")[..written[0].len()],
        written[0][..]
    );
    // The tail itself is served as usual.
    let last = log
        .read(log.log_end_offset() - 1, MIB as u32, i64::MAX, true)
        .expect("read");
    assert!(!last.range.expect("a range").beyond_tail);
    assert_eq!(batches_read(&log), written);
}

#[test]
fn a_catch_up_read_behind_the_tail_hands_back_what_it_has_sent() {
    let root = scratch();
    let config = LogConfig {
        segment_bytes: 16 * MIB,
        ..config(Some(MIB))
    };
    let (_dir, log) = open(root.path(), config);
    // About 24 MiB: a sealed 16 MiB segment and the active one.
    let written = write(&log, 384, true);
    let segments = segment_files(log.dir());
    assert_eq!(segments.len(), 2, "{segments:?}");

    // A consumer's 1 MiB fetches, each read from disk and handed back once "sent".
    let mut read = Vec::new();
    let mut cached_near_end = None;
    let mut past_the_sealed_end = false;
    let mut offset = 0;
    while offset < log.log_end_offset() {
        let info = log.read(offset, MIB as u32, i64::MAX, true).expect("read");
        let range = info.range.expect("a range below the end");
        if !range.beyond_tail {
            break;
        }
        let bytes = range.read_to_vec().expect("read");
        range.hand_back();
        if !past_the_sealed_end && !range.ends_segment {
            cached_near_end = Some(resident_in(&segments[0]));
        }
        past_the_sealed_end |= range.ends_segment;
        for (header, batch) in whole_batches(&bytes) {
            offset = header.next_offset();
            read.push(batch);
        }
    }
    assert!(
        past_the_sealed_end,
        "the catch-up stopped at offset {offset}"
    );
    assert_eq!(read[..], written[..read.len()]);
    // The fetch before the one that ends the segment starts about 2 MiB before its end: behind
    // it at most the hand-back's lag (4 MiB) and a folio stay cached. The kernel's read-ahead
    // may cache what is ahead, but no further than the end, so the bound holds whatever its
    // window. Without the hand-back all 16 MiB would be.
    let cached_near_end = cached_near_end.expect("fetches inside the sealed segment");
    assert!(
        cached_near_end <= 9 * MIB,
        "{cached_near_end} bytes of the 16 MiB segment cached 2 MiB before its end"
    );
    // Past the sealed segment's end, none of it.
    let left = resident_in(&segments[0]);
    assert!(
        left < MIB,
        "{left} bytes of the sealed segment still cached after reading past it"
    );
}

#[test]
fn unflushed_bytes_behind_the_tail_are_written_back_and_leave_the_page_cache() {
    let root = scratch();
    let config = LogConfig {
        segment_bytes: 8 * MIB,
        ..config(Some(MIB))
    };
    let (_dir, log) = open(root.path(), config);
    // About 24 MiB over three segments.
    let written = write(&log, 384, false);
    assert_eq!(log.flushed_offset(), 0, "nothing was fsynced");
    // The kernel keeps dirty pages whatever it is advised, so only bytes written back first
    // can have left; without the writeback all 24 MiB would still be cached. What stays: the
    // tail, and the active segment's last few MiB whose writeback has not started yet.
    let resident = resident_bytes(log.dir());
    assert!(
        resident <= 8 * MIB,
        "{resident} bytes of an unflushed log still cached with a 1 MiB tail"
    );
    let first = log.read(0, MIB as u32, i64::MAX, true).expect("read");
    assert!(first.range.expect("a range").beyond_tail);
    assert_eq!(batches_read(&log), written);
}

#[test]
fn without_a_tail_the_page_cache_keeps_the_log() {
    let root = scratch();
    let (_dir, log) = open(root.path(), config(None));
    let written = write_flushed(&log);
    let resident = resident_bytes(log.dir());
    assert!(
        resident >= log.size_bytes() - MIB,
        "only {resident} of {} bytes cached without a tail",
        log.size_bytes()
    );
    let first = log.read(0, MIB as u32, i64::MAX, true).expect("read");
    assert!(!first.range.expect("a range").beyond_tail);
    assert_eq!(batches_read(&log), written);
}

#[test]
fn a_read_in_memory_is_the_read_near_the_end_and_declines_further_back() {
    let root = scratch();
    let (_dir, log) = open(
        root.path(),
        LogConfig {
            segment_bytes: 3 * MIB,
            ..config(Some(64 * MIB))
        },
    );
    // 80 batches of 64 records and ~64 KiB: a sealed 3 MiB segment and ~2 MiB active.
    write(&log, 80, false);
    let end = log.log_end_offset();
    assert_eq!(end, 80 * 64);
    let quick = |log: &Log, offset| log.try_read_in_memory(offset, MIB as u32, end, true);

    let last = 79 * 64;
    let taken = quick(&log, last)
        .expect("read")
        .expect("the last batch is read in memory");
    let read = log.read(last, MIB as u32, end, true).expect("read");
    let (taken, read) = (taken.range.expect("range"), read.range.expect("range"));
    assert_eq!((taken.position, taken.length), (read.position, read.length));
    assert!(taken.length > 0);

    let at_end = quick(&log, end).expect("read").expect("nothing to read");
    assert!(at_end.range.is_none());
    assert!(
        quick(&log, end + 1).is_err(),
        "past the end is out of range"
    );

    // The active segment's first batch (~2 MiB from its end) and the sealed segment.
    let files = segment_files(log.dir());
    assert_eq!(files.len(), 2, "{files:?}");
    let active_base: i64 = files[1]
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("a segment file is named by its base offset");
    assert!(quick(&log, active_base).expect("read").is_none());
    assert!(quick(&log, 0).expect("read").is_none());

    // No page-cache tail left to read from: declined even at the end.
    log.set_config(LogConfig {
        segment_bytes: 3 * MIB,
        ..config(Some(0))
    });
    assert!(quick(&log, last).expect("read").is_none());
}

#[test]
fn a_read_in_memory_declines_headers_the_kernel_dropped() {
    let root = scratch();
    let (_dir, log) = open(root.path(), config(Some(64 * MIB)));
    write(&log, 8, true);
    let end = log.log_end_offset();
    let last = 7 * 64;
    let quick = |log: &Log| log.try_read_in_memory(last, MIB as u32, end, true);
    assert!(
        quick(&log).expect("read").is_some(),
        "just written (the file system must take RWF_NOWAIT for buffered reads: ext4, xfs, btrfs)"
    );

    // Flushed pages are clean, so the kernel drops them when advised to.
    let files = segment_files(log.dir());
    let active = std::fs::File::open(files.last().expect("a segment")).expect("open segment");
    rustix::fs::fadvise(&active, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
    assert_eq!(
        resident_bytes(log.dir()),
        0,
        "the segment left the page cache"
    );
    assert!(
        quick(&log).expect("read").is_none(),
        "a header not in the page cache is read by a thread that may wait"
    );

    // The blocking read brings the header back; the quick one takes it from memory again.
    let read = log.read(last, MIB as u32, end, true).expect("read");
    let taken = quick(&log).expect("read").expect("cached again");
    let (read, taken) = (read.range.expect("range"), taken.range.expect("range"));
    assert_eq!((taken.position, taken.length), (read.position, read.length));
}

#[test]
fn a_read_in_memory_declines_a_long_scan_of_a_sparse_index() {
    let root = scratch();
    let sparse = LogConfig {
        index_interval_bytes: 64 * MIB,
        ..config(Some(64 * MIB))
    };
    let (_dir, log) = open(root.path(), sparse);
    // Single-record batches of a few dozen bytes: with one index entry for the whole segment,
    // finding the last batch reads every header before it.
    for b in 0..200 {
        let batch = build_test_batch(1_000 + b, &[b"v".as_slice()]);
        log.append(&batch, 0, 1_000 + b).expect("append");
    }
    let end = log.log_end_offset();
    let quick = |log: &Log, offset| log.try_read_in_memory(offset, MIB as u32, end, true);
    assert!(
        quick(&log, end - 1).expect("read").is_none(),
        "200 headers to scan"
    );
    assert!(
        quick(&log, 10).expect("read").is_some(),
        "a dozen headers to scan"
    );
    let read = log.read(end - 1, MIB as u32, end, true).expect("read");
    assert!(read.range.expect("the blocking read finds it").length > 0);
}
