//! The `.timeindex` file: max timestamp so far (i64) → relative offset (u32). An entry is only
//! added when the timestamp grows, so keys never decrease even if producers' clocks do.

use super::{be_i64, be_u32, Entry, SparseIndex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl Entry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(TimeEntry {
            timestamp: be_i64(bytes, 0)?,
            relative_offset: be_u32(bytes, 8)?,
        })
    }
    fn key(&self) -> i64 {
        self.timestamp
    }
}

pub type TimeIndex = SparseIndex<TimeEntry>;

impl TimeIndex {
    /// Appends unless the timestamp does not exceed the last entry's (Kafka's `maybeAppend`).
    pub fn maybe_push(&mut self, timestamp: i64, relative_offset: u32) {
        if self.last().is_none_or(|last| timestamp > last.timestamp) {
            self.push(TimeEntry {
                timestamp,
                relative_offset,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_growing_timestamps_are_indexed() {
        let mut idx = TimeIndex::new(1200);
        idx.maybe_push(10, 0);
        idx.maybe_push(5, 3);
        idx.maybe_push(10, 4);
        idx.maybe_push(20, 7);
        let keys: Vec<i64> = idx.entries().iter().map(|e| e.timestamp).collect();
        assert_eq!(keys, vec![10, 20]);
        assert_eq!(idx.floor(20, true).map(|e| e.relative_offset), Some(0));
        assert_eq!(idx.floor(10, true), None);
    }

    #[test]
    fn file_bytes_round_trip() {
        let mut idx = TimeIndex::new(1200);
        idx.maybe_push(1_700_000_000_000, 42);
        let back = TimeIndex::from_file_bytes(&idx.to_file_bytes(), 1200).expect("parses");
        assert_eq!(back.entries(), idx.entries());
    }
}
