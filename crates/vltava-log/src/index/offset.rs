//! The `.index` file: relative offset (u32) → byte position (u32), one entry per
//! `index.interval.bytes` of log. Like Kafka, an entry names the *last* offset of the batch that
//! starts at its position, so the floor entry of any offset points at or before its batch.

use super::{be_u32, Entry, SparseIndex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

impl Entry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(OffsetEntry {
            relative_offset: be_u32(bytes, 0)?,
            position: be_u32(bytes, 4)?,
        })
    }
    fn key(&self) -> i64 {
        i64::from(self.relative_offset)
    }
}

pub type OffsetIndex = SparseIndex<OffsetEntry>;

impl OffsetIndex {
    /// Byte position to start scanning from to find `offset` in a segment at `base_offset`.
    pub fn position_for(&self, base_offset: i64, offset: i64) -> u32 {
        self.floor(offset - base_offset, false)
            .map_or(0, |e| e.position)
    }

    /// Sanity check against the segment it belongs to (Kafka's `OffsetIndex.sanityCheck`):
    /// positions must not point past the log and must increase with offsets.
    pub fn is_consistent_with(&self, log_size: u64) -> bool {
        let mut last_position = None;
        for e in self.entries() {
            if u64::from(e.position) >= log_size.max(1) {
                return false;
            }
            if last_position.is_some_and(|p| p > e.position) {
                return false;
            }
            last_position = Some(e.position);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(u32, u32)]) -> OffsetIndex {
        let mut idx = OffsetIndex::new(1024);
        for &(relative_offset, position) in entries {
            idx.push(OffsetEntry {
                relative_offset,
                position,
            });
        }
        idx
    }

    #[test]
    fn lookup_finds_the_floor_entry() {
        let idx = index(&[(9, 4100), (19, 8300), (29, 12400)]);
        assert_eq!(idx.position_for(100, 100), 0);
        assert_eq!(idx.position_for(100, 109), 4100);
        assert_eq!(idx.position_for(100, 118), 4100);
        assert_eq!(idx.position_for(100, 119), 8300);
        assert_eq!(idx.position_for(100, 1_000), 12400);
    }

    #[test]
    fn file_bytes_round_trip_in_kafka_layout() {
        let idx = index(&[(1, 2), (3, 400)]);
        let bytes = idx.to_file_bytes();
        assert_eq!(
            bytes,
            vec![0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 1, 144]
        );
        let back = OffsetIndex::from_file_bytes(&bytes, 1024).expect("parses");
        assert_eq!(back.entries(), idx.entries());
        assert!(!back.is_dirty());
    }

    #[test]
    fn only_a_written_index_that_matches_its_file_is_clean() {
        // A checkpoint skips clean indexes, so each of these must read as dirty or a file
        // would keep stale entries (or never be created).
        let mut idx = OffsetIndex::new(1024);
        assert!(idx.is_dirty(), "an index never written has no file yet");
        idx.mark_persisted();
        assert!(!idx.is_dirty());
        idx.push(OffsetEntry {
            relative_offset: 1,
            position: 2,
        });
        assert!(idx.is_dirty(), "a new entry");
        idx.mark_persisted();
        idx.truncate_where(|e| e.relative_offset < 1);
        assert!(idx.is_dirty(), "a truncation shortens the file");
        idx.mark_persisted();
        assert!(!idx.is_dirty());
        assert_eq!(idx.unpersisted(), (0, Vec::new()));
    }

    #[test]
    fn torn_or_unsorted_files_are_refused() {
        assert!(OffsetIndex::from_file_bytes(&[0; 7], 1024).is_none());
        let unsorted = index(&[(5, 10), (3, 20)]).to_file_bytes();
        assert!(OffsetIndex::from_file_bytes(&unsorted, 1024).is_none());
    }

    #[test]
    fn positions_past_the_log_are_inconsistent() {
        assert!(index(&[(1, 10)]).is_consistent_with(100));
        assert!(!index(&[(1, 100)]).is_consistent_with(100));
    }

    #[test]
    fn the_byte_budget_bounds_the_entries() {
        let mut idx = OffsetIndex::new(16);
        idx.push(OffsetEntry {
            relative_offset: 1,
            position: 1,
        });
        assert!(!idx.is_full());
        idx.push(OffsetEntry {
            relative_offset: 2,
            position: 2,
        });
        assert!(idx.is_full());
    }
}
