//! Helpers shared by the log's integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use vltava_log::batch::{assigned_header, build_test_batch, BatchHeader, HEADER_SIZE};
use vltava_log::{AppendInfo, Log, LogConfig, LogDir, LogDirOptions, TopicPartition};

pub fn tp() -> TopicPartition {
    TopicPartition::new("orders", 0)
}

pub fn open(root: &Path, config: LogConfig) -> (LogDir, Arc<Log>) {
    let dir = LogDir::open(root, LogDirOptions::default()).expect("open log dir");
    let log = dir.open_log(&tp(), config).expect("open log");
    (dir, log)
}

/// A batch whose values name their position in the test (`"<tag>-<i>"`).
pub fn batch(timestamp: i64, tag: &str, records: usize) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..records)
        .map(|i| format!("{tag}-{i}").into_bytes())
        .collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    build_test_batch(timestamp, &refs)
}

/// `batch` as the log stores it after the append that answered `info`: its header carries the
/// assigned base offset and `leader_epoch` (the caller's buffer is left as it was).
pub fn as_stored(batch: &[u8], info: &AppendInfo, leader_epoch: i32) -> Vec<u8> {
    let header = assigned_header(batch, info.base_offset, leader_epoch, None);
    [&header[..], &batch[HEADER_SIZE..]].concat()
}

/// Every batch readable from `offset` up to the log end, as (header, bytes).
pub fn read_all(log: &Log, from: i64) -> Vec<(BatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = from;
    let end = log.log_end_offset();
    while offset < end {
        let info = log.read(offset, 1 << 20, i64::MAX, true).expect("read");
        let Some(range) = info.range else { break };
        let bytes = range.read_to_vec().expect("bytes");
        for (header, batch) in whole_batches(&bytes) {
            offset = header.next_offset();
            out.push((header, batch));
        }
    }
    out
}

/// The whole batches at the start of a fetched range (its last one may be cut short).
pub fn whole_batches(bytes: &[u8]) -> Vec<(BatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut position = 0;
    while let Some(header) = BatchHeader::parse(&bytes[position..]) {
        if position + header.size() > bytes.len() {
            break;
        }
        out.push((header, bytes[position..position + header.size()].to_vec()));
        position += header.size();
    }
    out
}

pub fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// The `.log` files of a partition directory, in offset order (their names are the base offset
/// in 20 digits).
pub fn segment_files(partition_dir: &Path) -> Vec<std::path::PathBuf> {
    let mut logs: Vec<_> = std::fs::read_dir(partition_dir)
        .expect("list the partition directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs
}
