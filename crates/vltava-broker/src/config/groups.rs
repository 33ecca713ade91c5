//! Group coordinator keys (Kafka's names and defaults; `group.max.count` is Vltava's own).

use super::{ConfigError, Reader};
use crate::group::GroupConfig;

/// The keys read here, for the known-key list.
pub const KEYS: &[&str] = &[
    "group.min.session.timeout.ms",
    "group.max.session.timeout.ms",
    "group.initial.rebalance.delay.ms",
    "group.max.size",
    "group.max.count",
    "offsets.topic.num.partitions",
    "offsets.retention.minutes",
    "offsets.retention.check.interval.ms",
    "offset.metadata.max.bytes",
];

pub(super) fn parse(r: &Reader<'_>) -> Result<GroupConfig, ConfigError> {
    let d = GroupConfig::default();
    let min_session =
        r.parse_at_least("group.min.session.timeout.ms", d.min_session_timeout_ms, 0)?;
    let max_session = r.parse_at_least(
        "group.max.session.timeout.ms",
        d.max_session_timeout_ms,
        min_session,
    )?;
    let retention_minutes: i64 = r.parse_at_least(
        "offsets.retention.minutes",
        d.offsets_retention_ms / 60_000,
        1,
    )?;
    Ok(GroupConfig {
        min_session_timeout_ms: min_session,
        max_session_timeout_ms: max_session,
        initial_rebalance_delay_ms: r.parse_at_least(
            "group.initial.rebalance.delay.ms",
            d.initial_rebalance_delay_ms,
            0,
        )?,
        max_size: r.parse_at_least("group.max.size", d.max_size, 1)?,
        max_groups: r.parse_at_least("group.max.count", d.max_groups, 1)?,
        offsets_topic_partitions: r.parse_at_least(
            "offsets.topic.num.partitions",
            d.offsets_topic_partitions,
            1,
        )?,
        offsets_retention_ms: retention_minutes.saturating_mul(60_000),
        offsets_retention_check_interval_ms: r.parse_at_least(
            "offsets.retention.check.interval.ms",
            d.offsets_retention_check_interval_ms,
            1,
        )?,
        offset_metadata_max_bytes: r.parse_at_least(
            "offset.metadata.max.bytes",
            d.offset_metadata_max_bytes,
            0,
        )?,
        ..d
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{BrokerConfig, RawConfig};

    fn load(text: &str) -> BrokerConfig {
        BrokerConfig::from_raw(
            &RawConfig::from_reader(text.as_bytes(), Path::new("s.properties")).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn group_defaults_are_kafkas() {
        let g = load("").groups;
        assert_eq!(g.initial_rebalance_delay_ms, 3000);
        assert_eq!(g.offsets_topic_partitions, 50);
        assert_eq!(g.offsets_retention_ms, 10080 * 60_000);
        assert_eq!(g.min_session_timeout_ms, 6000);
    }

    #[test]
    fn group_keys_are_honoured() {
        let g = load("group.initial.rebalance.delay.ms=0\noffsets.topic.num.partitions=3\n").groups;
        assert_eq!(g.initial_rebalance_delay_ms, 0);
        assert_eq!(g.offsets_topic_partitions, 3);
    }
}
