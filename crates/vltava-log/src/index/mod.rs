//! Sparse indexes of a segment, in Kafka's file formats.
//!
//! Entries live in memory (a `Vec`, 8 or 12 bytes each) and are written to the index file in
//! Kafka's big-endian layout when the segment is flushed or closed. Index files are never trusted
//! blindly: a file that fails the sanity check is rebuilt from the log (see `recovery`).

pub mod offset;
pub mod time;
pub mod txn;

pub use offset::{OffsetEntry, OffsetIndex};
pub use time::{TimeEntry, TimeIndex};

/// One fixed-size index entry; `key` is what lookups search by and must not decrease.
pub trait Entry: Copy + std::fmt::Debug {
    const SIZE: usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(bytes: &[u8]) -> Option<Self>;
    fn key(&self) -> i64;
}

/// A sorted, append-only list of entries with a byte budget (`segment.index.bytes`).
#[derive(Debug, Clone)]
pub struct SparseIndex<E: Entry> {
    entries: Vec<E>,
    /// How many leading entries are already in the file.
    persisted: usize,
    /// The file's length as last written (`None`: no file written yet), so that a truncation
    /// or a first, empty write is not skipped as clean.
    file_len_written: Option<u64>,
    max_entries: usize,
}

impl<E: Entry> SparseIndex<E> {
    pub fn new(max_bytes: u64) -> Self {
        SparseIndex {
            entries: Vec::new(),
            persisted: 0,
            file_len_written: None,
            max_entries: (max_bytes as usize / E::SIZE).max(1),
        }
    }

    /// Parses an index file's bytes. `None` if the length is not a whole number of entries or
    /// the keys decrease: the caller rebuilds the index then.
    pub fn from_file_bytes(bytes: &[u8], max_bytes: u64) -> Option<Self> {
        if !bytes.len().is_multiple_of(E::SIZE) {
            return None;
        }
        let mut entries: Vec<E> = Vec::with_capacity(bytes.len() / E::SIZE);
        for chunk in bytes.chunks_exact(E::SIZE) {
            let entry = E::decode(chunk)?;
            if entries.last().is_some_and(|last| last.key() > entry.key()) {
                return None;
            }
            entries.push(entry);
        }
        let persisted = entries.len();
        let max_entries = (max_bytes as usize / E::SIZE).max(entries.len()).max(1);
        Some(SparseIndex {
            entries,
            persisted,
            file_len_written: Some(bytes.len() as u64),
            max_entries,
        })
    }

    pub fn entries(&self) -> &[E] {
        &self.entries
    }

    pub fn last(&self) -> Option<&E> {
        self.entries.last()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    /// How many more entries fit.
    pub fn room(&self) -> usize {
        self.max_entries.saturating_sub(self.entries.len())
    }

    pub fn push(&mut self, entry: E) {
        self.entries.push(entry);
    }

    /// The last entry whose key is `<= key` (`strictly_less`: `< key`).
    pub fn floor(&self, key: i64, strictly_less: bool) -> Option<&E> {
        let n = self.entries.partition_point(|e| {
            if strictly_less {
                e.key() < key
            } else {
                e.key() <= key
            }
        });
        n.checked_sub(1).and_then(|i| self.entries.get(i))
    }

    /// Drops every entry for which `keep` is false from the first such entry on.
    pub fn truncate_where(&mut self, keep: impl Fn(&E) -> bool) {
        let n = self.entries.partition_point(keep);
        self.entries.truncate(n);
        self.persisted = self.persisted.min(n);
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.persisted = 0;
    }

    /// Whether the file is behind the memory copy (entries or length).
    pub fn is_dirty(&self) -> bool {
        self.persisted != self.entries.len() || self.file_len_written != Some(self.file_len())
    }

    /// The whole index in file format.
    pub fn to_file_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * E::SIZE);
        for e in &self.entries {
            e.encode(&mut out);
        }
        out
    }

    /// `(file position, bytes)` of the entries not yet written.
    pub fn unpersisted(&self) -> (u64, Vec<u8>) {
        let mut out = Vec::new();
        for e in self.entries.get(self.persisted..).unwrap_or_default() {
            e.encode(&mut out);
        }
        ((self.persisted * E::SIZE) as u64, out)
    }

    pub fn mark_persisted(&mut self) {
        self.persisted = self.entries.len();
        self.file_len_written = Some(self.file_len());
    }

    /// Length the file should have.
    pub fn file_len(&self) -> u64 {
        (self.entries.len() * E::SIZE) as u64
    }
}

pub(crate) fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

pub(crate) fn be_i64(bytes: &[u8], at: usize) -> Option<i64> {
    let b: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(i64::from_be_bytes(b))
}
