//! A group's committed offsets, and which of them `offsets.retention.minutes` expires.

use std::collections::HashMap;

/// One committed offset (Kafka's `OffsetAndMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    /// The client's metadata string; null is stored as "" (Kafka's `NO_METADATA`).
    pub metadata: String,
    pub commit_timestamp: i64,
    /// An explicit expiry from OffsetCommit v2–v4 `retention_time_ms`, or -1.
    pub expire_timestamp: i64,
    /// Where the record is in `__consumer_offsets` (-1 unknown): concurrent commits of one
    /// partition land in memory in log order.
    pub record_offset: i64,
}

/// Committed offsets of one group by (topic, partition). A flat hash map: most groups hold a
/// handful of offsets, and a B-tree node per topic would cost more than the offsets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupOffsets {
    offsets: HashMap<(String, i32), CommittedOffset>,
}

impl GroupOffsets {
    pub fn get(&self, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.offsets.get(&(topic.to_string(), partition))
    }

    /// Stores `offset` unless a record later in the log is already applied.
    pub fn put(&mut self, topic: &str, partition: i32, offset: CommittedOffset) {
        let key = (topic.to_string(), partition);
        if let Some(current) = self.offsets.get(&key) {
            if current.record_offset > offset.record_offset && offset.record_offset >= 0 {
                return;
            }
        }
        self.offsets.insert(key, offset);
    }

    pub fn remove(&mut self, topic: &str, partition: i32) -> Option<CommittedOffset> {
        let removed = self.offsets.remove(&(topic.to_string(), partition));
        if self.offsets.is_empty() {
            self.offsets = HashMap::new(); // give the table back
        }
        removed
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Every committed offset, by topic then partition.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i32, &CommittedOffset)> {
        let mut all: Vec<_> = self
            .offsets
            .iter()
            .map(|((t, p), o)| (t.as_str(), *p, o))
            .collect();
        all.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        all.into_iter()
    }

    /// The offsets that have expired at `now_ms` (`OffsetExpirationCondition`): for an empty
    /// group with a protocol type, `retention_ms` after the group became empty (or after the
    /// commit when that time is unknown); for a group without one (simple consumers) after the
    /// commit; an explicit expire timestamp wins. Groups with members keep their offsets.
    pub fn expired(
        &self,
        now_ms: i64,
        retention_ms: i64,
        group_is_empty: bool,
        has_protocol_type: bool,
        empty_since_ms: i64,
    ) -> Vec<(String, i32)> {
        if !group_is_empty {
            return Vec::new();
        }
        self.iter()
            .filter(|(_, _, o)| {
                if o.expire_timestamp >= 0 {
                    return now_ms >= o.expire_timestamp;
                }
                let base = if has_protocol_type && empty_since_ms >= 0 {
                    empty_since_ms
                } else {
                    o.commit_timestamp
                };
                now_ms.saturating_sub(base) >= retention_ms
            })
            .map(|(t, p, _)| (t.to_string(), p))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(offset: i64, at: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: at,
            expire_timestamp: -1,
            record_offset: -1,
        }
    }

    #[test]
    fn offsets_of_an_empty_group_expire_after_retention_from_when_it_emptied() {
        let mut o = GroupOffsets::default();
        o.put("t", 0, committed(5, 100));
        o.put("t", 1, committed(6, 900));
        assert!(
            o.expired(10_000, 1000, false, true, 500).is_empty(),
            "members keep them"
        );
        assert!(o.expired(1_499, 1000, true, true, 500).is_empty());
        assert_eq!(o.expired(1_500, 1000, true, true, 500).len(), 2);
        // Simple consumers (no protocol type): from each commit.
        assert_eq!(
            o.expired(1_100, 1000, true, false, -1),
            vec![("t".into(), 0)]
        );
    }

    #[test]
    fn remove_drops_empty_topics() {
        let mut o = GroupOffsets::default();
        o.put("t", 0, committed(1, 0));
        assert_eq!(o.len(), 1);
        assert!(o.remove("t", 0).is_some());
        assert!(o.is_empty());
        assert!(o.remove("t", 0).is_none());
    }
}
