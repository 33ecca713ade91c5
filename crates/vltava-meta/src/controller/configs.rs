//! Topic config validation and AlterConfigs.
//!
//! The key list and value rules are Kafka's `TopicConfig` / `LogConfig` definitions (Kafka 4.x:
//! the message-format and down-conversion keys removed by KIP-724 are gone). An unknown key or a
//! value that does not parse is `INVALID_CONFIG` with `ConfigDef`'s message.

use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::records::{ConfigResource, MetadataRecord};

use super::AlterOp;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Long {
        min: Option<i64>,
    },
    Int {
        min: Option<i64>,
    },
    Double {
        min: f64,
        max: f64,
    },
    Boolean,
    /// One of the listed strings.
    OneOf(&'static [&'static str]),
    /// A comma-separated list; each item one of the listed strings (empty = any).
    List(&'static [&'static str]),
}

const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

/// Kafka's topic configs, in `TopicConfig` order.
const TOPIC_CONFIGS: &[(&str, Kind)] = &[
    ("cleanup.policy", Kind::List(&["compact", "delete"])),
    ("compression.type", Kind::OneOf(COMPRESSION_TYPES)),
    ("compression.gzip.level", Kind::Int { min: None }),
    ("compression.lz4.level", Kind::Int { min: None }),
    ("compression.zstd.level", Kind::Int { min: None }),
    ("delete.retention.ms", Kind::Long { min: Some(0) }),
    ("file.delete.delay.ms", Kind::Long { min: Some(0) }),
    ("flush.messages", Kind::Long { min: Some(1) }),
    ("flush.ms", Kind::Long { min: Some(0) }),
    ("follower.replication.throttled.replicas", Kind::List(&[])),
    ("index.interval.bytes", Kind::Int { min: Some(0) }),
    ("leader.replication.throttled.replicas", Kind::List(&[])),
    ("local.retention.bytes", Kind::Long { min: Some(-2) }),
    ("local.retention.ms", Kind::Long { min: Some(-2) }),
    ("max.compaction.lag.ms", Kind::Long { min: Some(1) }),
    ("max.message.bytes", Kind::Int { min: Some(0) }),
    (
        "message.timestamp.after.max.ms",
        Kind::Long { min: Some(0) },
    ),
    (
        "message.timestamp.before.max.ms",
        Kind::Long { min: Some(0) },
    ),
    (
        "message.timestamp.type",
        Kind::OneOf(&["CreateTime", "LogAppendTime"]),
    ),
    (
        "min.cleanable.dirty.ratio",
        Kind::Double { min: 0.0, max: 1.0 },
    ),
    ("min.compaction.lag.ms", Kind::Long { min: Some(0) }),
    ("min.insync.replicas", Kind::Int { min: Some(1) }),
    ("preallocate", Kind::Boolean),
    ("remote.storage.enable", Kind::Boolean),
    ("remote.log.copy.disable", Kind::Boolean),
    ("remote.log.delete.on.disable", Kind::Boolean),
    ("retention.bytes", Kind::Long { min: None }),
    ("retention.ms", Kind::Long { min: Some(-1) }),
    (
        "segment.bytes",
        Kind::Int {
            min: Some(1024 * 1024),
        },
    ),
    ("segment.index.bytes", Kind::Int { min: Some(4) }),
    ("segment.jitter.ms", Kind::Long { min: Some(0) }),
    ("segment.ms", Kind::Long { min: Some(1) }),
    ("unclean.leader.election.enable", Kind::Boolean),
];

/// Is `name` a topic config Kafka knows?
pub fn is_topic_config(name: &str) -> bool {
    TOPIC_CONFIGS.iter().any(|(k, _)| *k == name)
}

fn invalid_value(name: &str, value: &str, why: &str) -> ControllerError {
    ControllerError::InvalidConfig(format!(
        "Invalid value {value} for configuration {name}: {why}"
    ))
}

fn check_min(name: &str, value: &str, n: i64, min: Option<i64>) -> Result<(), ControllerError> {
    match min {
        Some(min) if n < min => Err(invalid_value(
            name,
            value,
            &format!("Value must be at least {min}"),
        )),
        _ => Ok(()),
    }
}

/// Checks one topic config, as `LogConfig.validate` would.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), ControllerError> {
    let Some((_, kind)) = TOPIC_CONFIGS.iter().find(|(k, _)| *k == name) else {
        return Err(ControllerError::InvalidConfig(format!(
            "Unknown topic config name: {name}"
        )));
    };
    // ConfigDef trims before parsing.
    let trimmed = value.trim();
    match *kind {
        Kind::Long { min } => {
            let n: i64 = trimmed
                .parse()
                .map_err(|_| invalid_value(name, value, "Not a number of type LONG"))?;
            check_min(name, value, n, min)
        }
        Kind::Int { min } => {
            let n: i32 = trimmed
                .parse()
                .map_err(|_| invalid_value(name, value, "Not a number of type INT"))?;
            check_min(name, value, i64::from(n), min)
        }
        Kind::Double { min, max } => {
            let n: f64 = trimmed
                .parse()
                .map_err(|_| invalid_value(name, value, "Not a number of type DOUBLE"))?;
            if n < min {
                return Err(invalid_value(
                    name,
                    value,
                    &format!("Value must be at least {min}"),
                ));
            }
            if n > max {
                return Err(invalid_value(
                    name,
                    value,
                    &format!("Value must be no more than {max}"),
                ));
            }
            Ok(())
        }
        Kind::Boolean => {
            if trimmed.eq_ignore_ascii_case("true") || trimmed.eq_ignore_ascii_case("false") {
                Ok(())
            } else {
                Err(invalid_value(
                    name,
                    value,
                    "Expected value to be either true or false",
                ))
            }
        }
        Kind::OneOf(allowed) => {
            if allowed.contains(&trimmed) {
                Ok(())
            } else {
                Err(invalid_value(
                    name,
                    value,
                    &format!("String must be one of: {}", allowed.join(", ")),
                ))
            }
        }
        Kind::List(allowed) => {
            if allowed.is_empty() {
                return Ok(());
            }
            for item in trimmed.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if !allowed.contains(&item) {
                    return Err(invalid_value(
                        name,
                        value,
                        &format!("String must be one of: {}", allowed.join(", ")),
                    ));
                }
            }
            Ok(())
        }
    }
}

/// Records for an AlterConfigs / IncrementalAlterConfigs request on one resource.
pub fn alter_configs(
    image: &MetadataImage,
    resource: &ConfigResource,
    ops: &[(String, AlterOp)],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    match resource {
        ConfigResource::Topic(topic) => {
            if image.topic(topic).is_none() {
                return Err(ControllerError::UnknownTopic(topic.clone()));
            }
            for (name, op) in ops {
                match op {
                    AlterOp::Set(value) => validate_topic_config(name, value)?,
                    AlterOp::Delete => {
                        if !is_topic_config(name) {
                            return Err(ControllerError::InvalidConfig(format!(
                                "Unknown topic config name: {name}"
                            )));
                        }
                    }
                }
            }
        }
        ConfigResource::Broker(node_id) => {
            if *node_id < 0 {
                return Err(ControllerError::InvalidRequest(format!(
                    "Invalid broker id {node_id}"
                )));
            }
            for (name, _) in ops {
                if name.is_empty() {
                    return Err(ControllerError::InvalidConfig(
                        "Empty broker config name".to_string(),
                    ));
                }
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (name, _) in ops {
        if !seen.insert(name.as_str()) {
            return Err(ControllerError::InvalidRequest(format!(
                "Duplicate alter config name: {name}"
            )));
        }
    }
    Ok(ops
        .iter()
        .map(|(name, op)| MetadataRecord::Config {
            resource: resource.clone(),
            name: name.clone(),
            value: match op {
                AlterOp::Set(v) => Some(v.clone()),
                AlterOp::Delete => None,
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_topic_config_is_invalid_config() {
        let err = validate_topic_config("retention.mss", "1").expect_err("unknown");
        assert_eq!(err.kafka_error_code(), 40);
        assert_eq!(err.message(), "Unknown topic config name: retention.mss");
    }

    #[test]
    fn values_are_checked_like_config_def() {
        assert!(validate_topic_config("retention.ms", "-1").is_ok());
        assert!(validate_topic_config("retention.ms", " 1000 ").is_ok());
        assert_eq!(
            validate_topic_config("retention.ms", "abc")
                .expect_err("nan")
                .message(),
            "Invalid value abc for configuration retention.ms: Not a number of type LONG"
        );
        assert_eq!(
            validate_topic_config("segment.bytes", "100")
                .expect_err("small")
                .message(),
            "Invalid value 100 for configuration segment.bytes: Value must be at least 1048576"
        );
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "shred").is_err());
        assert!(validate_topic_config("compression.type", "zstd").is_ok());
        assert!(validate_topic_config("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate_topic_config("preallocate", "TRUE").is_ok());
        assert!(validate_topic_config("preallocate", "yes").is_err());
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate_topic_config("max.message.bytes", "99999999999").is_err());
    }

    #[test]
    fn alter_unknown_topic_is_unknown_topic() {
        let err = alter_configs(
            &MetadataImage::empty(),
            &ConfigResource::Topic("nope".into()),
            &[("retention.ms".into(), AlterOp::Set("1".into()))],
        )
        .expect_err("no topic");
        assert_eq!(err.kafka_error_code(), 3);
    }
}
