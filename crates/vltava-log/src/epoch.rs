//! The leader epoch cache (`leader-epoch-checkpoint`): which leader epoch wrote the log from
//! which offset, so a follower can find where its log diverged (KIP-101, KIP-279).

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    /// `(epoch, start_offset)`, both strictly increasing.
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    pub fn from_entries(mut entries: Vec<(i32, i64)>) -> LeaderEpochCache {
        entries.sort();
        entries.dedup_by_key(|e| e.0);
        LeaderEpochCache { entries }
    }

    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.0)
    }

    /// Whether [`LeaderEpochCache::assign`] of `epoch` would change anything.
    pub fn would_assign(&self, epoch: i32) -> bool {
        epoch >= 0 && self.latest_epoch().is_none_or(|latest| epoch > latest)
    }

    /// Records that `epoch` starts at `start_offset`; returns whether anything changed.
    /// Epochs only grow: an older or equal epoch is ignored, as in Kafka.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if !self.would_assign(epoch) {
            return false;
        }
        // A newer epoch starting at or before an older one's start replaces it.
        self.entries.retain(|&(_, start)| start < start_offset);
        self.entries.push((epoch, start_offset));
        true
    }

    /// Drops entries that start at or after `end_offset` (after a truncation).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, start)| start < end_offset);
        before != self.entries.len()
    }

    /// Drops entries wholly before `start_offset`, keeping the one in force there.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let in_force = self.entries.partition_point(|&(_, s)| s <= start_offset);
        if in_force <= 1 {
            if let Some(first) = self.entries.first_mut() {
                if first.1 < start_offset && in_force == 1 {
                    first.1 = start_offset;
                    return true;
                }
            }
            return false;
        }
        self.entries.drain(..in_force - 1);
        if let Some(first) = self.entries.first_mut() {
            first.1 = start_offset;
        }
        true
    }

    /// Kafka's `endOffsetFor`: the largest epoch `<= requested` and the offset where it ended.
    /// `(-1, -1)` when the requested epoch is newer than every known one.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested < 0 {
            return (-1, -1);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let higher = self.entries.iter().find(|&&(e, _)| e > requested);
        let floor = self.entries.iter().rev().find(|&&(e, _)| e <= requested);
        match (floor, higher) {
            (_, None) => (-1, -1),
            (None, Some(&(_, start))) => (requested, start),
            (Some(&(epoch, _)), Some(&(_, start))) => (epoch, start),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offsets_follow_kafkas_rules() {
        let mut cache = LeaderEpochCache::default();
        assert!(cache.assign(1, 0));
        assert!(!cache.assign(1, 5));
        assert!(cache.assign(3, 10));
        assert!(cache.assign(4, 20));
        assert_eq!(cache.end_offset_for(4, 30), (4, 30));
        assert_eq!(cache.end_offset_for(3, 30), (3, 20));
        assert_eq!(cache.end_offset_for(2, 30), (1, 10));
        assert_eq!(cache.end_offset_for(0, 30), (0, 0));
        assert_eq!(cache.end_offset_for(9, 30), (-1, -1));
    }

    #[test]
    fn truncation_from_either_end() {
        let mut cache = LeaderEpochCache::from_entries(vec![(1, 0), (2, 10), (3, 20)]);
        cache.truncate_from_end(15);
        assert_eq!(cache.entries(), &[(1, 0), (2, 10)]);
        cache.truncate_from_start(12);
        assert_eq!(cache.entries(), &[(2, 12)]);
    }
}
