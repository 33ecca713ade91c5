//! Idempotent and transactional producers at the log: duplicates answered with their original
//! offsets, sequence and epoch errors, transaction markers, the last stable offset, the
//! `.txnindex`, and producer state across clean and unclean restarts.

mod common;

use common::*;
use vltava_log::batch::compute_crc;
use vltava_log::control::TxnMarker;
use vltava_log::{LogConfig, LogDir, LogDirOptions, LogError};

/// A batch of `records` records from producer `pid` with `epoch` and first sequence `seq`.
fn producer_batch(pid: i64, epoch: i16, seq: i32, records: usize, transactional: bool) -> Vec<u8> {
    let mut b = batch(1_000, &format!("p{pid}-{seq}"), records);
    if transactional {
        b[21..23].copy_from_slice(&0x10i16.to_be_bytes());
    }
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn code(e: LogError) -> i16 {
    e.kafka_error_code()
}

#[test]
fn a_retried_batch_is_answered_with_its_original_offsets_and_not_written_again() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(root.path(), LogConfig::default());
    log.append(&batch(1, "plain", 2), 0, 0).expect("plain");
    let first = log
        .append(&producer_batch(7, 0, 0, 3, false), 0, 0)
        .expect("first");
    let second = log
        .append(&producer_batch(7, 0, 3, 1, false), 0, 0)
        .expect("second");
    assert_eq!((first.base_offset, first.last_offset), (2, 4));
    let again = log
        .append(&producer_batch(7, 0, 0, 3, false), 0, 0)
        .expect("duplicate");
    assert!(again.duplicate);
    assert_eq!((again.base_offset, again.last_offset), (2, 4));
    assert_eq!(log.log_end_offset(), second.last_offset + 1);
    assert_eq!(read_all(&log, 0).len(), 3);
}

/// Kafka answers a deduplicated batch with the original batch's max timestamp in
/// log_append_time_ms, even on a CreateTime topic (UnifiedLog.append).
#[test]
fn a_duplicate_answer_carries_the_original_max_timestamp_as_append_time() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(root.path(), LogConfig::default());
    let first = log
        .append(&producer_batch(7, 0, 0, 2, false), 0, 5)
        .expect("first");
    assert_eq!(first.log_append_time_ms, -1, "CreateTime topic");
    let again = log
        .append(&producer_batch(7, 0, 0, 2, false), 0, 9)
        .expect("duplicate");
    assert!(again.duplicate);
    assert_eq!(again.log_append_time_ms, first.max_timestamp);
}

#[test]
fn gaps_and_old_epochs_are_refused_with_kafkas_codes() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(root.path(), LogConfig::default());
    log.append(&producer_batch(7, 1, 0, 2, false), 0, 0)
        .expect("first");
    let gap = log
        .append(&producer_batch(7, 1, 5, 1, false), 0, 0)
        .expect_err("gap");
    assert_eq!(code(gap), 45);
    let fenced = log
        .append(&producer_batch(7, 0, 2, 1, false), 0, 0)
        .expect_err("old epoch");
    assert_eq!(code(fenced), 47);
    assert_eq!(log.log_end_offset(), 2, "nothing refused was written");
}

#[test]
fn markers_bound_the_lso_and_aborts_go_to_the_txnindex() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(root.path(), LogConfig::default());
    log.append(&batch(1, "before", 1), 0, 0).expect("plain");
    log.append(&producer_batch(5, 0, 0, 2, true), 0, 0)
        .expect("txn a");
    log.append(&producer_batch(6, 0, 0, 1, true), 0, 0)
        .expect("txn b");
    assert_eq!(log.first_unstable_offset(), Some(1));
    assert_eq!(log.last_stable_offset(log.log_end_offset()), 1);
    let abort = TxnMarker {
        commit: false,
        coordinator_epoch: 0,
    };
    let marker = log.append_txn_marker(5, 0, abort, 0, 0).expect("abort a");
    assert_eq!(marker.base_offset, 4);
    // b is still open from offset 3.
    assert_eq!(log.last_stable_offset(i64::MAX), 3);
    let aborted = log.aborted_transactions(0, 10);
    assert_eq!(aborted.len(), 1);
    assert_eq!(
        (
            aborted[0].producer_id,
            aborted[0].first_offset,
            aborted[0].last_offset
        ),
        (5, 1, 4)
    );
    assert_eq!(aborted[0].last_stable_offset, 3);
    let commit = TxnMarker {
        commit: true,
        coordinator_epoch: 0,
    };
    log.append_txn_marker(6, 0, commit, 0, 0).expect("commit b");
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(log.last_stable_offset(log.log_end_offset()), 6);
    let bytes = std::fs::read(root.path().join("orders-0/00000000000000000000.txnindex"))
        .expect("txnindex file");
    assert_eq!(bytes.len(), 34);
}

#[test]
fn producer_state_survives_a_clean_restart_through_the_snapshot() {
    let root = tempfile::tempdir().expect("tempdir");
    {
        let (dir, log) = open(root.path(), LogConfig::default());
        log.append(&producer_batch(7, 0, 0, 2, false), 0, 0)
            .expect("a");
        log.append(&producer_batch(8, 0, 0, 1, true), 0, 0)
            .expect("open txn");
        dir.shutdown().expect("clean shutdown");
    }
    assert!(root
        .path()
        .join("orders-0/00000000000000000003.snapshot")
        .exists());
    let (_dir, log) = open(root.path(), LogConfig::default());
    let dup = log
        .append(&producer_batch(7, 0, 0, 2, false), 0, 0)
        .expect("duplicate after restart");
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 0);
    let gap = log
        .append(&producer_batch(7, 0, 9, 1, false), 0, 0)
        .expect_err("gap after restart");
    assert_eq!(code(gap), 45);
    assert_eq!(log.first_unstable_offset(), Some(2));
}

#[test]
fn an_unclean_stop_rebuilds_producer_state_and_txnindex_from_the_log() {
    let root = tempfile::tempdir().expect("tempdir");
    {
        let (_dir, log) = open(root.path(), small_segments());
        for seq in 0..100 {
            log.append(&producer_batch(7, 0, seq * 2, 2, false), 0, 0)
                .expect("append");
        }
        log.append(&producer_batch(9, 0, 0, 1, true), 0, 0)
            .expect("txn");
        let abort = TxnMarker {
            commit: false,
            coordinator_epoch: 1,
        };
        log.append_txn_marker(9, 0, abort, 0, 0).expect("abort");
        log.append(&producer_batch(10, 0, 0, 1, true), 0, 0)
            .expect("open txn");
        assert!(log.segment_count() > 2, "the test needs rolled segments");
        // Dropped without shutdown: no clean marker, no final snapshot.
    }
    // Every snapshot goes too: the state must come from the log alone.
    for entry in std::fs::read_dir(root.path().join("orders-0")).expect("list") {
        let path = entry.expect("entry").path();
        let name = path.to_string_lossy().into_owned();
        if name.ends_with(".snapshot") || name.ends_with(".txnindex") {
            std::fs::remove_file(&path).expect("remove");
        }
    }
    let dir = LogDir::open(root.path(), LogDirOptions::default()).expect("reopen");
    let log = dir.open_log(&tp(), small_segments()).expect("recover");
    let dup = log
        .append(&producer_batch(7, 0, 198, 2, false), 0, 0)
        .expect("last batch is a duplicate");
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 198);
    let aborted = log.aborted_transactions(0, i64::MAX);
    assert_eq!(aborted.len(), 1);
    assert_eq!(
        (aborted[0].first_offset, aborted[0].last_offset),
        (200, 201)
    );
    assert_eq!(log.first_unstable_offset(), Some(202));
}

#[test]
fn truncation_forgets_the_batches_it_removes() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(root.path(), LogConfig::default());
    log.append(&producer_batch(7, 0, 0, 2, false), 0, 0)
        .expect("a");
    log.append(&producer_batch(7, 0, 2, 2, false), 0, 0)
        .expect("b");
    log.truncate_to(2).expect("truncate");
    // The second batch is gone, so a retry of it is new again, at offset 2.
    let retried = log
        .append(&producer_batch(7, 0, 2, 2, false), 0, 0)
        .expect("retry");
    assert!(!retried.duplicate);
    assert_eq!(retried.base_offset, 2);
}

#[test]
fn a_torn_tail_after_an_unclean_stop_is_not_remembered_as_written() {
    let root = tempfile::tempdir().expect("tempdir");
    let last_seq;
    {
        let (dir, log) = open(root.path(), small_segments());
        let mut seq = 0;
        for _ in 0..150 {
            log.append(&producer_batch(7, 0, seq, 2, false), 0, 0)
                .expect("append");
            seq += 2;
        }
        // A recovery point past the rolled segments, so recovery starts from a roll snapshot.
        log.flush(log.log_end_offset()).expect("flush");
        dir.checkpoint().expect("checkpoint");
        for _ in 0..5 {
            log.append(&producer_batch(7, 0, seq, 2, false), 0, 0)
                .expect("append");
            seq += 2;
        }
        last_seq = seq - 2;
        assert!(log.segment_count() > 2, "the test needs rolled segments");
    }
    // Tear the last batch in half, as a crash in the middle of its write would.
    let logs = segment_files(&root.path().join("orders-0"));
    let active = logs.last().expect("a segment").clone();
    let len = std::fs::metadata(&active).expect("stat").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .expect("open");
    file.set_len(len - 10).expect("cut");
    let dir = LogDir::open(root.path(), LogDirOptions::default()).expect("reopen");
    let log = dir.open_log(&tp(), small_segments()).expect("recover");
    let end = log.log_end_offset();
    assert_eq!(end, i64::from(last_seq), "the torn batch is gone");
    let earlier = log
        .append(&producer_batch(7, 0, last_seq - 2, 2, false), 0, 0)
        .expect("retry of a surviving batch");
    assert!(earlier.duplicate);
    let retried = log
        .append(&producer_batch(7, 0, last_seq, 2, false), 0, 0)
        .expect("retry of the torn batch");
    assert!(!retried.duplicate, "the torn batch must be written again");
    assert_eq!(retried.base_offset, end);
}

#[test]
fn a_transaction_starts_only_with_a_current_verification_guard() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(root.path(), LogConfig::default());
    // Unverified: refused, nothing written.
    let unverified = log
        .append_verified(&producer_batch(5, 0, 0, 1, true), 0, 0, None)
        .expect_err("no guard");
    assert_eq!(code(unverified), 48);
    assert_eq!(log.log_end_offset(), 0);

    // Verified: the first batch opens the transaction; later ones need no new guard.
    let guard = log.start_txn_verification(5, 0).expect("a guard is needed");
    assert_eq!(
        log.start_txn_verification(5, 0),
        Some(guard),
        "shared by concurrent requests"
    );
    log.append_verified(&producer_batch(5, 0, 0, 1, true), 0, 0, Some(guard))
        .expect("verified");
    assert_eq!(
        log.start_txn_verification(5, 0),
        None,
        "the transaction is open here"
    );
    log.append_verified(&producer_batch(5, 0, 1, 1, true), 0, 0, None)
        .expect("same transaction");

    // A marker between the verification and the append (the transaction ended, or a timeout
    // aborted it) leaves the late batch without a transaction to join: refused, not a hanging
    // transaction.
    let late = log
        .start_txn_verification(5, 1)
        .expect("a new epoch needs a guard");
    let abort = TxnMarker {
        commit: false,
        coordinator_epoch: 0,
    };
    log.append_txn_marker(5, 1, abort, 0, 0).expect("abort");
    let refused = log
        .append_verified(&producer_batch(5, 1, 0, 1, true), 0, 0, Some(late))
        .expect_err("stale guard");
    assert_eq!(code(refused), 48);
    assert_eq!(log.first_unstable_offset(), None);

    // A refused verification is forgotten.
    let g = log.start_txn_verification(9, 0).expect("guard");
    log.abandon_txn_verification(9, g);
    let again = log.start_txn_verification(9, 0).expect("guard");
    assert_ne!(again, g);
}

/// Kafka's LogValidator runs before the producer-state checks: a retry that has become too old
/// for message.timestamp.before.max.ms is refused with INVALID_TIMESTAMP, not deduplicated.
#[test]
fn timestamp_bounds_are_checked_before_deduplication() {
    let root = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        message_timestamp_before_max_ms: 10_000,
        ..LogConfig::default()
    };
    let (_dir, log) = open(root.path(), config);
    log.append(&producer_batch(7, 0, 0, 2, false), 0, 5_000)
        .expect("in bounds");
    let err = log
        .append(&producer_batch(7, 0, 0, 2, false), 0, 20_000)
        .expect_err("retried too late");
    assert_eq!(code(err), 32);
    assert_eq!(log.log_end_offset(), 2);
}

/// An in-memory append declines before any producer state changes, so the normal append that
/// follows a decline sees the sequences as they were; taken, it deduplicates as usual.
#[test]
fn in_memory_appends_keep_producer_sequences_whether_taken_or_declined() {
    let root = tempfile::tempdir().expect("tempdir");
    let (_dir, log) = open(root.path(), LogConfig::default());
    log.append(&batch(1, "plain", 1), 0, 0).expect("plain");
    let quick = |b: &[u8], epoch: i32| log.try_append_in_memory(b, epoch, 0).expect("try");

    let first = quick(&producer_batch(7, 0, 0, 3, false), 0).expect("taken");
    assert_eq!((first.info.base_offset, first.info.last_offset), (1, 3));
    let again = quick(&producer_batch(7, 0, 0, 3, false), 0).expect("taken");
    assert!(again.info.duplicate);
    assert_eq!((again.info.base_offset, again.info.last_offset), (1, 3));

    // Declined for a new leader epoch, then appended as usual.
    assert!(quick(&producer_batch(7, 0, 3, 1, false), 1).is_none());
    let next = log
        .append(&producer_batch(7, 0, 3, 1, false), 0, 0)
        .expect("the next sequence");
    assert_eq!(next.base_offset, 4);

    // Declined at the roll, after the sequence was checked: nothing of that check stays.
    log.set_config(LogConfig {
        segment_bytes: log.size_bytes() + 100,
        ..LogConfig::default()
    });
    let rolling = producer_batch(7, 0, 4, 20, false);
    assert!(quick(&rolling, 0).is_none());
    let rolled = log.append(&rolling, 0, 0).expect("after the declined roll");
    assert_eq!(rolled.base_offset, 5);

    log.set_config(LogConfig::default());
    let out_of_order = log
        .try_append_in_memory(&producer_batch(7, 0, 999, 1, false), 0, 0)
        .expect_err("a gap in the sequence");
    assert_eq!(code(out_of_order), 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    assert_eq!(read_all(&log, 0).len(), 4);
}
