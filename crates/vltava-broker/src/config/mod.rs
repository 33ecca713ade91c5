//! Server configuration, parsed low then high (the ripgrep way): `raw` turns `server.properties`
//! and `--override` pairs into strings with origins; this module checks them once, at startup,
//! into a validated [`BrokerConfig`] made of one struct per concern. Key names, meanings and
//! defaults are Kafka's.

mod groups;
mod keys;
mod listeners;
pub mod raw;
pub mod topic;
mod transactions;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use listeners::{Endpoint, ListenerConfig};
pub use raw::{Origin, RawConfig};

/// A configuration problem; every variant names the key (and where it was set) or the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{}: {message}", path.display(), line.map_or("?".to_string(), |l| l.to_string()))]
    Syntax {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("--override {0:?}: expected key=value")]
    BadOverride(String),
    #[error("{origin}: unknown configuration key {key:?}")]
    UnknownKey { key: String, origin: Origin },
    #[error("{origin}: invalid value {value:?} for {key}: {reason}")]
    Invalid {
        key: String,
        value: String,
        origin: Origin,
        reason: String,
    },
    #[error("invalid configuration: {0}")]
    Inconsistent(String),
}

/// Identity of this node in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// `node.id` (alias `broker.id`).
    pub node_id: i32,
    /// `process.roles`; a node is always both broker and controller for now.
    pub process_roles: Vec<String>,
}

/// The Raft metadata quorum (KIP-595 names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumSettings {
    /// `controller.quorum.voters`: `id@host:port,...`; defaults to this node alone.
    pub voters: Vec<(i32, SocketAddr)>,
}

/// Where data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// `log.dirs` (or `log.dir`); one directory per node for now.
    pub log_dir: PathBuf,
    /// `num.recovery.threads.per.data.dir` (2, at least 1): how many partitions are opened and
    /// recovered at once at startup (and segments of one partition scanned at once), and
    /// flushed at once at shutdown.
    pub recovery_threads: usize,
}

impl StorageConfig {
    /// `<log.dirs>/__cluster_metadata-0`, where KRaft keeps its log too.
    pub fn metadata_dir(&self) -> PathBuf {
        self.log_dir.join("__cluster_metadata-0")
    }
}

/// Defaults for topics created without explicit settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDefaults {
    /// `num.partitions` (1).
    pub num_partitions: i32,
    /// `default.replication.factor` (1).
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable` (true).
    pub auto_create_topics_enable: bool,
    /// `delete.topic.enable` (true).
    pub delete_topic_enable: bool,
}

/// Broker-wide defaults for per-topic log settings (`log.*` keys; topic configs override them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDefaults {
    pub segment_bytes: u64,
    pub segment_ms: u64,
    pub segment_index_bytes: u64,
    pub index_interval_bytes: u64,
    pub flush_messages: u64,
    pub flush_ms: u64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub retention_check_interval_ms: u64,
    /// `log.flush.offset.checkpoint.interval.ms` (60000): how often recovery points (and the
    /// indexes they vouch for) are written; 0 checks every maintenance tick (a second).
    pub checkpoint_interval_ms: u64,
    /// `message.max.bytes` (1048588): the largest record batch a producer may send.
    pub max_message_bytes: u32,
    /// `log.message.timestamp.type`: `CreateTime` or `LogAppendTime`.
    pub log_append_time: bool,
    /// `log.message.timestamp.before.max.ms` (Long.MAX_VALUE, KIP-937): how old a CreateTime
    /// record's timestamp may be.
    pub message_timestamp_before_max_ms: i64,
    /// `log.message.timestamp.after.max.ms` (1 hour since Kafka 4.0, KIP-1030): how far in the
    /// future.
    pub message_timestamp_after_max_ms: i64,
    /// `producer.id.expiration.ms` (1 day): forget an idle idempotent producer's state.
    pub producer_id_expiration_ms: i64,
    /// `log.page.cache.tail.bytes` (Vltava's; 64 MiB, -1 off): how much of each partition's end
    /// stays in the page cache once flushed.
    pub page_cache_tail_bytes: Option<u64>,
    /// `log.preallocate` (false): reserve each new segment's disk blocks when it is created.
    pub preallocate: bool,
}

/// Socket server limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketConfig {
    /// `socket.request.max.bytes` (100 MiB): larger frames close the connection before allocation.
    pub request_max_bytes: usize,
    /// `max.connections` (unlimited in Kafka; capped by a semaphore here).
    pub max_connections: usize,
    /// `connections.max.idle.ms` (10 minutes): close connections that complete no request.
    pub connections_max_idle: std::time::Duration,
    /// `queued.max.request.bytes` (Kafka's -1: no budget): request bytes all connections may
    /// hold from reading a frame's size until its handler is done; a full budget stops reading.
    pub queued_max_request_bytes: Option<usize>,
    /// `socket.send.buffer.bytes` (Kafka's 100 KiB; -1: the OS's autotuning): SO_SNDBUF of
    /// each client connection. A fetch sent with sendfile into a buffer this size reaches a
    /// consumer half as fast again as into the up-to-4-MiB autotuned one (docs/benchmarks.md).
    pub send_buffer_bytes: Option<usize>,
    /// `socket.receive.buffer.bytes` (-1 here, Kafka's is 100 KiB): SO_RCVBUF of the listening
    /// socket, which connections inherit. Kafka's 100 KiB cost a quarter of acks=all produce
    /// throughput in the benchmarks, so the OS autotunes unless it is set.
    pub receive_buffer_bytes: Option<usize>,
    /// `socket.listen.backlog.size` (50, as in Kafka): connections the kernel queues on the
    /// client listener before they are accepted; the kernel caps it at `net.core.somaxconn`.
    pub listen_backlog: u32,
}

/// Kafka's `socket.send.buffer.bytes` default.
pub const DEFAULT_SEND_BUFFER_BYTES: usize = 100 * 1024;

/// The validated configuration of one `vltava server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    pub node: NodeConfig,
    pub listeners: ListenerConfig,
    pub quorum: QuorumSettings,
    pub storage: StorageConfig,
    pub topics: TopicDefaults,
    pub log: LogDefaults,
    pub socket: SocketConfig,
    /// The group coordinator (`group.*`, `offsets.*`).
    pub groups: crate::group::GroupConfig,
    /// The transaction coordinator (`transaction.*`, `transactional.id.expiration.ms`).
    pub transactions: crate::txn::coordinator::TxnConfig,
    /// `metrics.listener` (Vltava's own, default 127.0.0.1:9644): the Prometheus endpoint the
    /// binary serves; `None` when set empty.
    pub metrics_listener: Option<SocketAddr>,
    /// Known keys that were set but have no effect; the binary warns about each.
    pub ignored_keys: Vec<(String, Origin)>,
}

const HOUR_MS: i64 = 60 * 60 * 1000;

impl BrokerConfig {
    /// Reads the optional properties file, applies overrides, validates.
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<BrokerConfig, ConfigError> {
        let mut raw = match file {
            Some(path) => RawConfig::from_file(path)?,
            None => RawConfig::default(),
        };
        for pair in overrides {
            raw.apply_override(pair)?;
        }
        BrokerConfig::from_raw(&raw)
    }

    /// The high level: every key known, every value typed and checked.
    pub fn from_raw(raw: &RawConfig) -> Result<BrokerConfig, ConfigError> {
        let mut ignored_keys = Vec::new();
        for (key, value) in raw.iter() {
            if keys::is_unsupported(key) {
                ignored_keys.push((key.clone(), value.origin.clone()));
            } else if !keys::is_supported(key) {
                return Err(ConfigError::UnknownKey {
                    key: key.clone(),
                    origin: value.origin.clone(),
                });
            }
        }
        let r = Reader(raw);

        let node_id = match r.parse::<i32>("node.id")? {
            Some(id) => id,
            None => r.parse::<i32>("broker.id")?.unwrap_or(1),
        };
        if node_id < 0 {
            return Err(r.invalid("node.id", "must be >= 0"));
        }
        let process_roles: Vec<String> = r
            .get("process.roles")
            .map(|v| split_list(&v.value))
            .unwrap_or_else(|| vec!["broker".into(), "controller".into()]);
        for role in &process_roles {
            if role != "broker" && role != "controller" {
                return Err(r.invalid("process.roles", "roles are broker and controller"));
            }
        }
        let node = NodeConfig {
            node_id,
            process_roles,
        };

        let listeners = listeners::parse(&r)?;

        let voters = match r.get("controller.quorum.voters") {
            Some(v) => listeners::parse_voters(&v.value)
                .map_err(|reason| r.invalid("controller.quorum.voters", &reason))?,
            None => vec![(node_id, listeners.controller)],
        };
        if !voters.iter().any(|(id, _)| *id == node_id) {
            return Err(r.invalid(
                "controller.quorum.voters",
                &format!("node.id {node_id} is not among the voters"),
            ));
        }

        let log_dir = r
            .get("log.dirs")
            .or_else(|| r.get("log.dir"))
            .map(|v| split_list(&v.value))
            .unwrap_or_else(|| vec!["./vltava-data".to_string()]);
        let log_dir = match log_dir.as_slice() {
            [one] => PathBuf::from(one),
            [] => return Err(r.invalid("log.dirs", "empty")),
            _ => return Err(r.invalid("log.dirs", "only one log directory is supported")),
        };

        let topics = TopicDefaults {
            num_partitions: r.parse_at_least("num.partitions", 1, 1)?,
            default_replication_factor: r.parse_at_least("default.replication.factor", 1, 1)?,
            auto_create_topics_enable: r.parse("auto.create.topics.enable")?.unwrap_or(true),
            delete_topic_enable: r.parse("delete.topic.enable")?.unwrap_or(true),
        };

        let retention_ms = if let Some(ms) = r.parse::<i64>("log.retention.ms")? {
            ms
        } else if let Some(min) = r.parse::<i64>("log.retention.minutes")? {
            min.saturating_mul(60_000)
        } else {
            r.parse::<i64>("log.retention.hours")?
                .unwrap_or(168)
                .saturating_mul(HOUR_MS)
        };
        if retention_ms < -1 {
            return Err(r.invalid("log.retention.ms", "must be -1 (forever) or >= 0"));
        }
        let segment_ms = match r.parse::<u64>("log.roll.ms")? {
            Some(ms) => ms,
            None => r
                .parse::<u64>("log.roll.hours")?
                .unwrap_or(168)
                .saturating_mul(HOUR_MS as u64),
        };
        let log_append_time = match r.get("log.message.timestamp.type") {
            None => false,
            Some(v) if v.value == "CreateTime" => false,
            Some(v) if v.value == "LogAppendTime" => true,
            Some(_) => {
                return Err(r.invalid(
                    "log.message.timestamp.type",
                    "expected CreateTime or LogAppendTime",
                ))
            }
        };
        let log = LogDefaults {
            segment_bytes: r.parse_at_least("log.segment.bytes", 1 << 30, 14)?,
            segment_ms: segment_ms.max(1),
            segment_index_bytes: r.parse_at_least("log.index.size.max.bytes", 10 << 20, 4)?,
            index_interval_bytes: r.parse_at_least("log.index.interval.bytes", 4096, 0)?,
            flush_messages: r
                .parse_at_least("log.flush.interval.messages", i64::MAX, 1)?
                .unsigned_abs(),
            flush_ms: match r.parse::<i64>("log.flush.interval.ms")? {
                Some(ms) if ms >= 0 => ms.unsigned_abs(),
                Some(_) => return Err(r.invalid("log.flush.interval.ms", "must be >= 0")),
                None => u64::MAX,
            },
            retention_ms,
            retention_bytes: r.parse("log.retention.bytes")?.unwrap_or(-1),
            retention_check_interval_ms: r.parse_at_least(
                "log.retention.check.interval.ms",
                300_000,
                1,
            )?,
            checkpoint_interval_ms: r.parse_at_least(
                "log.flush.offset.checkpoint.interval.ms",
                60_000,
                0,
            )?,
            max_message_bytes: r.parse_at_least("message.max.bytes", 1_048_588, 0)?,
            log_append_time,
            message_timestamp_before_max_ms: r.parse_at_least(
                "log.message.timestamp.before.max.ms",
                i64::MAX,
                0,
            )?,
            message_timestamp_after_max_ms: r.parse_at_least(
                "log.message.timestamp.after.max.ms",
                3_600_000,
                0,
            )?,
            producer_id_expiration_ms: r.parse_at_least(
                "producer.id.expiration.ms",
                86_400_000,
                1,
            )?,
            page_cache_tail_bytes: match r.parse::<i64>("log.page.cache.tail.bytes")? {
                None => Some(vltava_log::config::DEFAULT_PAGE_CACHE_TAIL_BYTES),
                Some(-1) => None,
                Some(n) if n >= 0 => Some(n.unsigned_abs()),
                Some(_) => return Err(r.invalid("log.page.cache.tail.bytes", "must be -1 or >= 0")),
            },
            preallocate: r.parse("log.preallocate")?.unwrap_or(false),
        };

        let socket = SocketConfig {
            request_max_bytes: r.parse_at_least("socket.request.max.bytes", 100 << 20, 1)?,
            max_connections: r.parse_at_least("max.connections", i32::MAX as usize, 1)?,
            connections_max_idle: std::time::Duration::from_millis(r.parse_at_least(
                "connections.max.idle.ms",
                600_000,
                1,
            )?),
            // A LONG in Kafka; the socket buffers are INTs, as the kernel takes them.
            queued_max_request_bytes: r.parse_positive_or_off(
                "queued.max.request.bytes",
                None,
                i64::MAX,
            )?,
            send_buffer_bytes: r.parse_positive_or_off(
                "socket.send.buffer.bytes",
                Some(DEFAULT_SEND_BUFFER_BYTES),
                i32::MAX.into(),
            )?,
            receive_buffer_bytes: r.parse_positive_or_off(
                "socket.receive.buffer.bytes",
                None,
                i32::MAX.into(),
            )?,
            listen_backlog: r
                .parse_at_least::<i32>("socket.listen.backlog.size", 50, 1)?
                .unsigned_abs(),
        };

        let metrics_listener = match r.get("metrics.listener") {
            None => Some(SocketAddr::from(([127, 0, 0, 1], 9644))),
            Some(v) if v.value.trim().is_empty() => None,
            Some(v) => {
                let addr = v.value.trim();
                let addr = addr.strip_prefix("http://").unwrap_or(addr);
                let addr = addr.strip_suffix("/metrics").unwrap_or(addr);
                Some(addr.parse::<SocketAddr>().map_err(|e| {
                    r.invalid("metrics.listener", &format!("expected ip:port ({e})"))
                })?)
            }
        };

        Ok(BrokerConfig {
            metrics_listener,
            node,
            listeners,
            quorum: QuorumSettings { voters },
            storage: StorageConfig {
                log_dir,
                recovery_threads: r.parse_at_least("num.recovery.threads.per.data.dir", 2, 1)?,
            },
            topics,
            log,
            socket,
            groups: groups::parse(&r)?,
            transactions: transactions::parse(&r)?,
            ignored_keys,
        })
    }
}

impl BrokerConfig {
    /// The broker's settings under Kafka's key names, for DescribeConfigs.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        let l = &self.listeners;
        vec![
            ("node.id", self.node.node_id.to_string()),
            ("process.roles", self.node.process_roles.join(",")),
            (
                "listeners",
                format!(
                    "{}://{},CONTROLLER://{}",
                    l.broker_name, l.broker, l.controller
                ),
            ),
            (
                "advertised.listeners",
                format!("{}://{}", l.broker_name, l.advertised),
            ),
            (
                "controller.quorum.voters",
                self.quorum
                    .voters
                    .iter()
                    .map(|(id, addr)| format!("{id}@{addr}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("log.dirs", self.storage.log_dir.display().to_string()),
            ("num.partitions", self.topics.num_partitions.to_string()),
            (
                "default.replication.factor",
                self.topics.default_replication_factor.to_string(),
            ),
            (
                "auto.create.topics.enable",
                self.topics.auto_create_topics_enable.to_string(),
            ),
            (
                "delete.topic.enable",
                self.topics.delete_topic_enable.to_string(),
            ),
            ("log.retention.ms", self.log.retention_ms.to_string()),
            ("log.retention.bytes", self.log.retention_bytes.to_string()),
            ("log.segment.bytes", self.log.segment_bytes.to_string()),
            ("log.roll.ms", self.log.segment_ms.to_string()),
            ("message.max.bytes", self.log.max_message_bytes.to_string()),
            ("log.preallocate", self.log.preallocate.to_string()),
            (
                "log.page.cache.tail.bytes",
                off_as_minus_one(self.log.page_cache_tail_bytes),
            ),
            (
                "socket.request.max.bytes",
                self.socket.request_max_bytes.to_string(),
            ),
            (
                "queued.max.request.bytes",
                off_as_minus_one(self.socket.queued_max_request_bytes),
            ),
            (
                "socket.send.buffer.bytes",
                off_as_minus_one(self.socket.send_buffer_bytes),
            ),
            (
                "socket.receive.buffer.bytes",
                off_as_minus_one(self.socket.receive_buffer_bytes),
            ),
            (
                "socket.listen.backlog.size",
                self.socket.listen_backlog.to_string(),
            ),
        ]
    }
}

/// Kafka's spelling of "not set": -1.
fn off_as_minus_one(value: Option<impl std::fmt::Display>) -> String {
    value.map_or("-1".to_string(), |n| n.to_string())
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Typed access to a [`RawConfig`] with errors that name the key and its origin.
struct Reader<'a>(&'a RawConfig);

impl Reader<'_> {
    fn get(&self, key: &str) -> Option<&raw::RawValue> {
        self.0.get(key)
    }

    fn invalid(&self, key: &str, reason: &str) -> ConfigError {
        let (value, origin) = match self.0.get(key) {
            Some(v) => (v.value.clone(), v.origin.clone()),
            None => (String::new(), Origin::Override),
        };
        ConfigError::Invalid {
            key: key.to_string(),
            value,
            origin,
            reason: reason.to_string(),
        }
    }

    fn parse<T: FromStr>(&self, key: &str) -> Result<Option<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.0.get(key) {
            None => Ok(None),
            Some(v) => v
                .value
                .parse::<T>()
                .map(Some)
                .map_err(|e| self.invalid(key, &e.to_string())),
        }
    }

    /// A size Kafka turns off with -1: `None` for -1, `default` when unset, else 1..=`max`.
    fn parse_positive_or_off(
        &self,
        key: &str,
        default: Option<usize>,
        max: i64,
    ) -> Result<Option<usize>, ConfigError> {
        match self.parse::<i64>(key)? {
            None => Ok(default),
            Some(-1) => Ok(None),
            Some(n) if n > 0 && n <= max => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
            Some(n) if n > max => Err(self.invalid(key, &format!("must be at most {max}"))),
            Some(_) => Err(self.invalid(key, "must be -1 or > 0")),
        }
    }

    fn parse_at_least<T>(&self, key: &str, default: T, min: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        let value = self.parse::<T>(key)?.unwrap_or(default);
        if value < min {
            return Err(self.invalid(key, &format!("must be at least {min}")));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::from_raw(&RawConfig::from_reader(
            text.as_bytes(),
            Path::new("s.properties"),
        )?)
    }

    #[test]
    fn zero_config_matches_the_documented_defaults() {
        let c = load("").unwrap();
        assert_eq!(c.node.node_id, 1);
        assert_eq!(c.listeners.broker.to_string(), "127.0.0.1:9092");
        assert_eq!(c.listeners.controller.to_string(), "127.0.0.1:9093");
        assert_eq!(c.storage.log_dir, PathBuf::from("./vltava-data"));
        assert_eq!(
            c.quorum.voters,
            vec![(1, "127.0.0.1:9093".parse().unwrap())]
        );
        assert_eq!(c.log.retention_ms, 168 * HOUR_MS);
        assert_eq!(c.log.max_message_bytes, 1_048_588);
        assert_eq!(c.socket.request_max_bytes, 100 << 20);
        assert!(c.topics.auto_create_topics_enable);
    }

    #[test]
    fn unknown_key_names_the_key_and_line() {
        let err = load("node.id=1\nlog.retention.hourz=3\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "s.properties:2: unknown configuration key \"log.retention.hourz\""
        );
    }

    #[test]
    fn known_unsupported_key_is_collected_for_a_warning() {
        let c = load("num.network.threads=3\n").unwrap();
        assert_eq!(c.ignored_keys.len(), 1);
    }

    #[test]
    fn metrics_listener_defaults_to_loopback_9644_and_can_be_disabled() {
        let c = load("").unwrap();
        assert_eq!(c.metrics_listener, Some("127.0.0.1:9644".parse().unwrap()));
        let c = load("metrics.listener=http://0.0.0.0:9100/metrics\n").unwrap();
        assert_eq!(c.metrics_listener, Some("0.0.0.0:9100".parse().unwrap()));
        assert_eq!(load("metrics.listener=\n").unwrap().metrics_listener, None);
        let err = load("metrics.listener=nowhere\n").unwrap_err().to_string();
        assert!(err.contains("metrics.listener"), "{err}");
    }

    #[test]
    fn recovery_points_are_checkpointed_every_minute_unless_configured() {
        assert_eq!(load("").unwrap().log.checkpoint_interval_ms, 60_000);
        let c = load("log.flush.offset.checkpoint.interval.ms=5000\n").unwrap();
        assert_eq!(c.log.checkpoint_interval_ms, 5_000);
        let err = load("log.flush.offset.checkpoint.interval.ms=-1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("log.flush.offset.checkpoint.interval.ms"),
            "{err}"
        );
    }

    #[test]
    fn partitions_recover_two_at_a_time_as_in_kafka_4_unless_configured() {
        assert_eq!(load("").unwrap().storage.recovery_threads, 2);
        let c = load("num.recovery.threads.per.data.dir=4\n").unwrap();
        assert_eq!(c.storage.recovery_threads, 4);
        assert!(c.ignored_keys.is_empty());
        for bad in ["0", "-1", "two"] {
            let err = load(&format!("num.recovery.threads.per.data.dir={bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("num.recovery.threads.per.data.dir"), "{err}");
        }
    }

    #[test]
    fn preallocate_is_off_as_in_kafka_and_names_a_bad_value() {
        assert!(!load("").unwrap().log.preallocate);
        assert!(load("log.preallocate=true\n").unwrap().log.preallocate);
        let err = load("log.preallocate=yes\n").unwrap_err().to_string();
        assert!(err.contains("log.preallocate"), "{err}");
    }

    #[test]
    fn page_cache_tail_defaults_to_64_mib_and_can_be_turned_off() {
        assert_eq!(load("").unwrap().log.page_cache_tail_bytes, Some(64 << 20));
        let off = load("log.page.cache.tail.bytes=-1\n").unwrap();
        assert_eq!(off.log.page_cache_tail_bytes, None);
        let zero = load("log.page.cache.tail.bytes=0\n").unwrap();
        assert_eq!(zero.log.page_cache_tail_bytes, Some(0));
        let err = load("log.page.cache.tail.bytes=-2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("log.page.cache.tail.bytes"), "{err}");
    }

    #[test]
    fn socket_buffers_send_kafkas_100_kib_receive_the_os_default_and_take_minus_one() {
        let c = load("").unwrap();
        assert_eq!(c.socket.send_buffer_bytes, Some(100 * 1024));
        assert_eq!(c.socket.receive_buffer_bytes, None);
        let c = load("socket.send.buffer.bytes=-1\nsocket.receive.buffer.bytes=65536\n").unwrap();
        assert_eq!(c.socket.send_buffer_bytes, None);
        assert_eq!(c.socket.receive_buffer_bytes, Some(65536));
        assert!(c.ignored_keys.is_empty());
        for key in ["socket.send.buffer.bytes", "socket.receive.buffer.bytes"] {
            for bad in ["0", "-2", "big", "2147483648"] {
                let err = load(&format!("{key}={bad}\n")).unwrap_err().to_string();
                assert!(err.contains(key), "{err}");
            }
        }
    }

    #[test]
    fn listen_backlog_is_kafkas_50_and_an_int_of_at_least_one() {
        assert_eq!(load("").unwrap().socket.listen_backlog, 50);
        let c = load("socket.listen.backlog.size=1024\n").unwrap();
        assert_eq!(c.socket.listen_backlog, 1024);
        assert!(c.ignored_keys.is_empty());
        for bad in ["0", "-1", "many", "2147483648"] {
            let err = load(&format!("socket.listen.backlog.size={bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("socket.listen.backlog.size"), "{err}");
        }
    }

    #[test]
    fn retention_ms_wins_over_hours() {
        let c = load("log.retention.hours=1\nlog.retention.ms=500\n").unwrap();
        assert_eq!(c.log.retention_ms, 500);
        let c = load("log.retention.hours=2\n").unwrap();
        assert_eq!(c.log.retention_ms, 2 * HOUR_MS);
    }

    #[test]
    fn kafka_kraft_example_parses() {
        let text = "process.roles=broker,controller\nnode.id=1\n\
            controller.quorum.voters=1@127.0.0.1:19093\n\
            listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093\n\
            inter.broker.listener.name=PLAINTEXT\n\
            advertised.listeners=PLAINTEXT://localhost:19092\n\
            controller.listener.names=CONTROLLER\n\
            listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
            num.network.threads=3\nlog.dirs=/tmp/x\nnum.partitions=3\n";
        let c = load(text).unwrap();
        assert_eq!(c.listeners.broker.port(), 19092);
        assert_eq!(c.listeners.advertised.host, "localhost");
        assert_eq!(c.topics.num_partitions, 3);
        assert_eq!(c.storage.log_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn bad_values_name_key_and_origin() {
        let err = load("num.partitions=0\n").unwrap_err().to_string();
        assert!(
            err.contains("s.properties:1") && err.contains("num.partitions"),
            "{err}"
        );
        let err = load("node.id=x\n").unwrap_err().to_string();
        assert!(err.contains("node.id"), "{err}");
        assert!(load("controller.quorum.voters=2@127.0.0.1:9093\n").is_err());
    }
}
