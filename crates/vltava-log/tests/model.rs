//! Random sequences of log operations checked against a plain in-memory model (a Vec of
//! batches). Every read the log answers must be the model's batch that holds that offset.

mod common;

use common::*;
use proptest::prelude::*;
use vltava_log::{LogConfig, LogDir, LogDirOptions};

#[derive(Debug, Clone)]
enum Op {
    Append { records: usize, timestamp: i64 },
    Read { at: f64 },
    Truncate { at: f64 },
    DeleteRecords { at: f64 },
    Flush,
    CleanRestart,
    CrashRestart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..6, 0i64..1_000_000).prop_map(|(records, timestamp)| Op::Append { records, timestamp }),
        3 => (0.0f64..1.0).prop_map(|at| Op::Read { at }),
        1 => (0.0f64..1.0).prop_map(|at| Op::Truncate { at }),
        1 => (0.0f64..1.0).prop_map(|at| Op::DeleteRecords { at }),
        1 => Just(Op::Flush),
        1 => Just(Op::CleanRestart),
        1 => Just(Op::CrashRestart),
    ]
}

/// The model: batches in order, each with its base offset and bytes as stored.
#[derive(Default)]
struct Model {
    batches: Vec<(i64, i64, Vec<u8>)>, // (base, last, bytes)
    log_start: i64,
    log_end: i64,
}

impl Model {
    fn containing(&self, offset: i64) -> Option<&Vec<u8>> {
        self.batches
            .iter()
            .find(|(base, last, _)| *base <= offset && offset <= *last)
            .map(|(_, _, b)| b)
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_log_behaves_like_a_vec_of_batches(ops in proptest::collection::vec(op(), 1..60)) {
        let root = tempfile::tempdir().expect("tempdir");
        let mut dir = LogDir::open(root.path(), LogDirOptions::default()).expect("open");
        let mut log = dir.open_log(&tp(), config()).expect("log");
        let mut model = Model::default();
        for (step, op) in ops.iter().enumerate() {
            match op {
                Op::Append { records, timestamp } => {
                    let b = batch(*timestamp, &format!("s{step}"), *records);
                    let info = log.append(&b, 0, 0).expect("append");
                    prop_assert_eq!(info.base_offset, model.log_end);
                    let stored = as_stored(&b, &info, 0);
                    model.batches.push((info.base_offset, info.last_offset, stored));
                    model.log_end = info.last_offset + 1;
                }
                Op::Read { at } => {
                    let span = (model.log_end - model.log_start) as f64;
                    let offset = model.log_start + (span * at) as i64;
                    let info = log.read(offset, 1 << 20, i64::MAX, true).expect("read");
                    match model.containing(offset) {
                        Some(expected) if offset < model.log_end => {
                            let bytes = info.range.expect("data").read_to_vec().expect("bytes");
                            prop_assert_eq!(&bytes[..expected.len()], &expected[..], "read at {}", offset);
                        }
                        _ => prop_assert!(info.range.is_none()),
                    }
                }
                Op::Truncate { at } => {
                    let span = (model.log_end - model.log_start) as f64;
                    let offset = model.log_start + (span * at) as i64;
                    log.truncate_to(offset).expect("truncate");
                    // The batch holding the offset goes whole, and everything after it.
                    if let Some(&(base, _, _)) = model.batches.iter().find(|(_, last, _)| *last >= offset) {
                        model.batches.retain(|(_, last, _)| *last < offset);
                        model.log_end = base;
                        model.log_start = model.log_start.min(base);
                    }
                    prop_assert_eq!(log.log_end_offset(), model.log_end);
                }
                Op::DeleteRecords { at } => {
                    let span = (model.log_end - model.log_start) as f64;
                    let offset = model.log_start + (span * at) as i64;
                    log.advance_log_start_offset(offset).expect("advance");
                    model.log_start = model.log_start.max(offset);
                }
                Op::Flush => log.flush(model.log_end).expect("flush"),
                Op::CleanRestart | Op::CrashRestart => {
                    if matches!(op, Op::CleanRestart) {
                        dir.shutdown().expect("shutdown");
                    } else {
                        dir.checkpoint().expect("periodic checkpoint");
                    }
                    drop(log);
                    drop(dir);
                    dir = LogDir::open(root.path(), LogDirOptions::default()).expect("reopen");
                    log = dir.open_log(&tp(), config()).expect("log");
                }
            }
            prop_assert_eq!(log.log_end_offset(), model.log_end, "after {:?}", op);
            prop_assert_eq!(log.log_start_offset(), model.log_start, "after {:?}", op);
        }
        // Finally, every offset reads back as the model says.
        for offset in model.log_start..model.log_end {
            let info = log.read(offset, 1 << 20, i64::MAX, true).expect("read");
            let expected = model.containing(offset).expect("model has it");
            let bytes = info.range.expect("data").read_to_vec().expect("bytes");
            prop_assert_eq!(&bytes[..expected.len()], &expected[..]);
        }
    }
}
