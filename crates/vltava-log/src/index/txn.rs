//! The `.txnindex` file of a segment: one entry per aborted transaction whose ABORT marker is in
//! the segment, in Kafka's format (`AbortedTxn`, 34 bytes, big-endian):
//!
//! ```text
//! version i16 (0) | producerId i64 | firstOffset i64 | lastOffset i64 | lastStableOffset i64
//! ```
//!
//! `lastOffset` is the marker's offset; `lastStableOffset` is the LSO right after the marker,
//! which lets a fetch stop searching older segments (Kafka's `TransactionIndex`). The file is
//! appended to without fsync: recovery rebuilds the entries of every segment it scans.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{LogError, Result};

pub const TXN_INDEX_EXTENSION: &str = "txnindex";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    pub const SIZE: usize = 34;

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.first_offset.to_be_bytes());
        out.extend_from_slice(&self.last_offset.to_be_bytes());
        out.extend_from_slice(&self.last_stable_offset.to_be_bytes());
    }

    pub fn decode(bytes: &[u8]) -> Option<AbortedTxn> {
        let version = i16::from_be_bytes(bytes.get(0..2)?.try_into().ok()?);
        if version != 0 {
            return None;
        }
        let at = |i: usize| -> Option<i64> {
            Some(i64::from_be_bytes(bytes.get(i..i + 8)?.try_into().ok()?))
        };
        Some(AbortedTxn {
            producer_id: at(2)?,
            first_offset: at(10)?,
            last_offset: at(18)?,
            last_stable_offset: at(26)?,
        })
    }
}

/// Parses a whole `.txnindex` file; a torn last entry is dropped (recovery rewrites it).
pub fn decode_file(bytes: &[u8]) -> Vec<AbortedTxn> {
    bytes
        .chunks_exact(AbortedTxn::SIZE)
        .map_while(AbortedTxn::decode)
        .collect()
}

/// The aborted transactions of every segment of one log, kept in memory (aborts are rare;
/// 34 bytes each) and mirrored to one `.txnindex` file per segment.
#[derive(Debug, Default)]
pub struct TxnIndex {
    /// Segment base offset → entries in marker-offset order.
    by_segment: BTreeMap<i64, Vec<AbortedTxn>>,
}

pub fn path_for(dir: &Path, segment_base: i64) -> PathBuf {
    dir.join(crate::segment::file_name(segment_base, TXN_INDEX_EXTENSION))
}

impl TxnIndex {
    /// Reads the `.txnindex` files of the given segments.
    pub fn load(dir: &Path, segment_bases: impl Iterator<Item = i64>) -> Result<TxnIndex> {
        let mut by_segment = BTreeMap::new();
        for base in segment_bases {
            let path = path_for(dir, base);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let entries = decode_file(&bytes);
                    if !entries.is_empty() {
                        by_segment.insert(base, entries);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io("read txn index", &path, e)),
            }
        }
        Ok(TxnIndex { by_segment })
    }

    /// Records an aborted transaction in the segment starting at `segment_base`.
    pub fn append(&mut self, dir: &Path, segment_base: i64, entry: AbortedTxn) -> Result<()> {
        let path = path_for(dir, segment_base);
        let mut bytes = Vec::with_capacity(AbortedTxn::SIZE);
        entry.encode(&mut bytes);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| LogError::io("open txn index", &path, e))?;
        file.write_all(&bytes)
            .map_err(|e| LogError::io("append to txn index", &path, e))?;
        self.by_segment.entry(segment_base).or_default().push(entry);
        Ok(())
    }

    /// Drops every entry whose marker is at or above `offset` (replay or truncation rewrites
    /// them), rewriting the affected files.
    pub fn truncate_from(&mut self, dir: &Path, offset: i64) -> Result<()> {
        let bases: Vec<i64> = self.by_segment.keys().copied().collect();
        for base in bases {
            let Some(entries) = self.by_segment.get_mut(&base) else {
                continue;
            };
            let keep = entries
                .iter()
                .take_while(|e| e.last_offset < offset)
                .count();
            if keep == entries.len() {
                continue;
            }
            entries.truncate(keep);
            let path = path_for(dir, base);
            if keep == 0 {
                self.by_segment.remove(&base);
                remove_if_exists(&path)?;
            } else {
                let file = crate::fs::open_read_write(&path, true)?;
                file.set_len((keep * AbortedTxn::SIZE) as u64)
                    .map_err(|e| LogError::io("truncate txn index", &path, e))?;
            }
        }
        Ok(())
    }

    /// Forgets a deleted segment's entries (its file goes with the segment).
    pub fn remove_segment(&mut self, dir: &Path, segment_base: i64) -> Result<()> {
        self.by_segment.remove(&segment_base);
        remove_if_exists(&path_for(dir, segment_base))
    }

    /// Kafka's `collectAbortedTxns` over the segments from the one holding `from`: every
    /// aborted transaction that overlaps `[from, upper)`.
    pub fn overlapping(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        let first = self
            .by_segment
            .range(..=from)
            .next_back()
            .map_or(i64::MIN, |(b, _)| *b);
        let mut out = Vec::new();
        for entries in self.by_segment.range(first..).map(|(_, e)| e) {
            for entry in entries {
                if entry.last_offset >= from && entry.first_offset < upper {
                    out.push(*entry);
                }
                if entry.last_stable_offset >= upper {
                    return out;
                }
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.by_segment.is_empty()
    }
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io("remove txn index", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn entries_use_kafkas_34_byte_layout() {
        let mut bytes = Vec::new();
        entry(5, 10, 20, 21).encode(&mut bytes);
        assert_eq!(bytes.len(), AbortedTxn::SIZE);
        assert_eq!(&bytes[0..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &5i64.to_be_bytes());
        assert_eq!(&bytes[26..34], &21i64.to_be_bytes());
        assert_eq!(AbortedTxn::decode(&bytes), Some(entry(5, 10, 20, 21)));
    }

    #[test]
    fn files_survive_reload_and_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut index = TxnIndex::default();
        index
            .append(dir.path(), 0, entry(1, 0, 5, 6))
            .expect("append");
        index
            .append(dir.path(), 0, entry(2, 3, 9, 10))
            .expect("append");
        index
            .append(dir.path(), 100, entry(3, 100, 120, 121))
            .expect("append");
        let loaded = TxnIndex::load(dir.path(), [0, 100].into_iter()).expect("load");
        assert_eq!(loaded.overlapping(0, 1000).len(), 3);
        assert_eq!(loaded.overlapping(6, 1000).len(), 2);
        assert_eq!(loaded.overlapping(0, 3), vec![entry(1, 0, 5, 6)]);
        index.truncate_from(dir.path(), 9).expect("truncate");
        let loaded = TxnIndex::load(dir.path(), [0, 100].into_iter()).expect("load");
        assert_eq!(loaded.overlapping(0, 1000), vec![entry(1, 0, 5, 6)]);
        assert!(!path_for(dir.path(), 100).exists());
    }
}
