//! Topic-level configs (Kafka's names): their broker-wide defaults and how a topic's overrides
//! become the `LogConfig` of each of its partitions. DescribeConfigs lists [`TOPIC_CONFIGS`].

use std::collections::BTreeMap;

use vltava_log::{LogConfig, TimestampType};

use super::BrokerConfig;

/// One topic config: its name, the broker key that sets its default, and that default.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigKey {
    pub name: &'static str,
    pub broker_key: Option<&'static str>,
    pub default: fn(&BrokerConfig) -> String,
}

macro_rules! key {
    ($name:literal, $broker:expr, $default:expr) => {
        TopicConfigKey {
            name: $name,
            broker_key: $broker,
            default: $default,
        }
    };
}

pub const TOPIC_CONFIGS: &[TopicConfigKey] = &[
    key!("cleanup.policy", Some("log.cleanup.policy"), |_| "delete"
        .into()),
    key!("compression.type", Some("compression.type"), |_| "producer"
        .into()),
    key!("flush.messages", Some("log.flush.interval.messages"), |c| {
        clamp(c.log.flush_messages)
    }),
    key!("flush.ms", Some("log.flush.interval.ms"), |c| clamp(
        c.log.flush_ms
    )),
    key!(
        "index.interval.bytes",
        Some("log.index.interval.bytes"),
        |c| c.log.index_interval_bytes.to_string()
    ),
    key!("max.message.bytes", Some("message.max.bytes"), |c| c
        .log
        .max_message_bytes
        .to_string()),
    key!(
        "message.timestamp.after.max.ms",
        Some("log.message.timestamp.after.max.ms"),
        |c| c.log.message_timestamp_after_max_ms.to_string()
    ),
    key!(
        "message.timestamp.before.max.ms",
        Some("log.message.timestamp.before.max.ms"),
        |c| c.log.message_timestamp_before_max_ms.to_string()
    ),
    key!(
        "message.timestamp.type",
        Some("log.message.timestamp.type"),
        |c| {
            if c.log.log_append_time {
                "LogAppendTime"
            } else {
                "CreateTime"
            }
            .into()
        }
    ),
    key!("min.insync.replicas", Some("min.insync.replicas"), |_| "1"
        .into()),
    key!("preallocate", Some("log.preallocate"), |c| c
        .log
        .preallocate
        .to_string()),
    key!("retention.bytes", Some("log.retention.bytes"), |c| c
        .log
        .retention_bytes
        .to_string()),
    key!("retention.ms", Some("log.retention.ms"), |c| c
        .log
        .retention_ms
        .to_string()),
    key!("segment.bytes", Some("log.segment.bytes"), |c| c
        .log
        .segment_bytes
        .to_string()),
    key!(
        "segment.index.bytes",
        Some("log.index.size.max.bytes"),
        |c| c.log.segment_index_bytes.to_string()
    ),
    key!("segment.ms", Some("log.roll.ms"), |c| c
        .log
        .segment_ms
        .to_string()),
    key!(
        "unclean.leader.election.enable",
        Some("unclean.leader.election.enable"),
        |_| "false".into()
    ),
];

/// Kafka prints "never" values as Long.MAX_VALUE.
fn clamp(v: u64) -> String {
    v.min(i64::MAX as u64).to_string()
}

pub fn topic_config_key(name: &str) -> Option<&'static TopicConfigKey> {
    TOPIC_CONFIGS.iter().find(|k| k.name == name)
}

/// The log settings of a topic: broker defaults, then the topic's own overrides. Values were
/// validated by the controller when set; one that still fails to parse keeps the default.
pub fn log_config(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> LogConfig {
    let d = &broker.log;
    let mut c = LogConfig {
        segment_bytes: d.segment_bytes,
        segment_ms: d.segment_ms,
        segment_index_bytes: d.segment_index_bytes,
        index_interval_bytes: d.index_interval_bytes,
        flush_messages: d.flush_messages,
        flush_ms: d.flush_ms,
        retention_ms: d.retention_ms,
        retention_bytes: d.retention_bytes,
        max_message_bytes: d.max_message_bytes,
        message_timestamp_type: if d.log_append_time {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        // `log.cleanup.policy` is accepted but not read: the broker default stays `delete`.
        compact: false,
        message_timestamp_before_max_ms: d.message_timestamp_before_max_ms,
        message_timestamp_after_max_ms: d.message_timestamp_after_max_ms,
        page_cache_tail_bytes: d.page_cache_tail_bytes,
        preallocate: d.preallocate,
    };
    for (key, value) in overrides {
        let value = value.as_str();
        match key.as_str() {
            "segment.bytes" => set(&mut c.segment_bytes, value),
            "segment.ms" => set(&mut c.segment_ms, value),
            "segment.index.bytes" => set(&mut c.segment_index_bytes, value),
            "index.interval.bytes" => set(&mut c.index_interval_bytes, value),
            "flush.messages" => set(&mut c.flush_messages, value),
            "flush.ms" => set(&mut c.flush_ms, value),
            "retention.ms" => set(&mut c.retention_ms, value),
            "retention.bytes" => set(&mut c.retention_bytes, value),
            "max.message.bytes" => set(&mut c.max_message_bytes, value),
            // Kafka reads booleans case-insensitively; the controller accepted only true/false.
            "preallocate" => c.preallocate = value.eq_ignore_ascii_case("true"),
            "cleanup.policy" => {
                c.compact = value.split(',').any(|policy| policy.trim() == "compact");
            }
            "message.timestamp.before.max.ms" => set(&mut c.message_timestamp_before_max_ms, value),
            "message.timestamp.after.max.ms" => set(&mut c.message_timestamp_after_max_ms, value),
            "message.timestamp.type" => match value {
                "CreateTime" => c.message_timestamp_type = TimestampType::CreateTime,
                "LogAppendTime" => c.message_timestamp_type = TimestampType::LogAppendTime,
                _ => {}
            },
            _ => {}
        }
    }
    c
}

fn set<T: std::str::FromStr>(field: &mut T, value: &str) {
    if let Ok(v) = value.parse() {
        *field = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preallocate_follows_the_broker_default_and_a_topic_override_in_any_case() {
        let mut raw = crate::config::RawConfig::default();
        raw.apply_override("log.preallocate=true").unwrap();
        let broker = BrokerConfig::from_raw(&raw).unwrap();
        assert!(log_config(&broker, &BTreeMap::new()).preallocate);
        let mut overrides = BTreeMap::new();
        overrides.insert("preallocate".to_string(), "FALSE".to_string());
        assert!(!log_config(&broker, &overrides).preallocate);
        let broker = BrokerConfig::from_raw(&Default::default()).unwrap();
        overrides.insert("preallocate".to_string(), "True".to_string());
        assert!(log_config(&broker, &overrides).preallocate);
    }

    #[test]
    fn topic_overrides_beat_broker_defaults() {
        let broker = BrokerConfig::from_raw(&Default::default()).unwrap();
        let mut overrides = BTreeMap::new();
        overrides.insert("retention.ms".to_string(), "1000".to_string());
        overrides.insert(
            "message.timestamp.type".to_string(),
            "LogAppendTime".to_string(),
        );
        let c = log_config(&broker, &overrides);
        assert_eq!(c.retention_ms, 1000);
        assert_eq!(c.message_timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(c.max_message_bytes, 1_048_588);
    }

    #[test]
    fn timestamp_bounds_default_to_kafka_4_and_follow_broker_and_topic_settings() {
        let broker = BrokerConfig::from_raw(&Default::default()).unwrap();
        let c = log_config(&broker, &BTreeMap::new());
        assert_eq!(c.message_timestamp_before_max_ms, i64::MAX);
        assert_eq!(c.message_timestamp_after_max_ms, 3_600_000);
        let mut raw = crate::config::RawConfig::default();
        raw.apply_override("log.message.timestamp.after.max.ms=5000")
            .unwrap();
        let broker = BrokerConfig::from_raw(&raw).unwrap();
        let mut overrides = BTreeMap::new();
        overrides.insert(
            "message.timestamp.before.max.ms".to_string(),
            "60000".to_string(),
        );
        let c = log_config(&broker, &overrides);
        assert_eq!(c.message_timestamp_after_max_ms, 5000);
        assert_eq!(c.message_timestamp_before_max_ms, 60_000);
    }

    #[test]
    fn a_cleanup_policy_naming_compact_makes_the_log_compacted() {
        let broker = BrokerConfig::from_raw(&Default::default()).unwrap();
        assert!(!log_config(&broker, &BTreeMap::new()).compact);
        for (policy, compact) in [
            ("compact", true),
            ("delete,compact", true),
            ("compact, delete", true),
            ("delete", false),
        ] {
            let overrides = BTreeMap::from([("cleanup.policy".to_string(), policy.to_string())]);
            assert_eq!(log_config(&broker, &overrides).compact, compact, "{policy}");
        }
    }
}
