//! Which segments retention deletes: a plain function over plain data, so the rules are tested
//! without files. Like Kafka, only a prefix of the log is ever deleted and never the active
//! segment.

use crate::config::LogConfig;

/// What retention needs to know of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentFacts {
    pub base_offset: i64,
    pub size: u64,
    /// Largest batch timestamp; -1 when the segment is empty.
    pub max_timestamp: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `retention.ms` passed since the segment's newest record.
    Time,
    /// The log is larger than `retention.bytes` without it.
    Size,
    /// Every offset in it is below the log start offset (DeleteRecords).
    LogStartOffset,
}

/// How many of the oldest `segments` (oldest first, active last) to delete, and why.
pub fn segments_to_delete(
    segments: &[SegmentFacts],
    config: &LogConfig,
    now_ms: i64,
    log_start_offset: i64,
) -> Vec<Reason> {
    let mut reasons = Vec::new();
    let total: u64 = segments.iter().map(|s| s.size).sum();
    let mut remaining = total;
    for pair in segments.windows(2) {
        let [segment, next] = pair else { break };
        let reason = if next.base_offset <= log_start_offset {
            Some(Reason::LogStartOffset)
        } else if config.retention_ms >= 0
            && segment.max_timestamp >= 0
            && now_ms - segment.max_timestamp > config.retention_ms
        {
            Some(Reason::Time)
        } else if config.retention_bytes >= 0
            && remaining - segment.size >= config.retention_bytes as u64
        {
            Some(Reason::Size)
        } else {
            None
        };
        match reason {
            Some(r) => {
                reasons.push(r);
                remaining -= segment.size;
            }
            None => break,
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base_offset: i64, size: u64, max_timestamp: i64) -> SegmentFacts {
        SegmentFacts {
            base_offset,
            size,
            max_timestamp,
        }
    }

    #[test]
    fn time_retention_deletes_an_expired_prefix_but_never_the_active_segment() {
        let config = LogConfig {
            retention_ms: 100,
            ..LogConfig::default()
        };
        let segments = [
            seg(0, 10, 1_000),
            seg(10, 10, 1_050),
            seg(20, 10, 2_000),
            seg(30, 10, 1_000),
        ];
        assert_eq!(
            segments_to_delete(&segments, &config, 1_160, 0),
            vec![Reason::Time, Reason::Time]
        );
        // Everything expired: the active segment still stays.
        assert_eq!(segments_to_delete(&segments, &config, 10_000, 0).len(), 3);
    }

    #[test]
    fn size_retention_keeps_the_log_at_or_under_the_limit() {
        let config = LogConfig {
            retention_ms: -1,
            retention_bytes: 25,
            ..LogConfig::default()
        };
        let segments = [seg(0, 10, 1), seg(10, 10, 1), seg(20, 10, 1), seg(30, 5, 1)];
        // 35 bytes; deleting the first leaves 25 (== limit), the second would leave 15.
        assert_eq!(
            segments_to_delete(&segments, &config, 0, 0),
            vec![Reason::Size]
        );
    }

    #[test]
    fn segments_below_the_log_start_offset_go() {
        let config = LogConfig {
            retention_ms: -1,
            ..LogConfig::default()
        };
        let segments = [seg(0, 10, 1), seg(10, 10, 1), seg(20, 10, 1)];
        assert_eq!(
            segments_to_delete(&segments, &config, 0, 15),
            vec![Reason::LogStartOffset]
        );
        assert!(segments_to_delete(&segments, &config, 0, 9).is_empty());
    }
}
