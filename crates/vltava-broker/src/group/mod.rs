//! Consumer groups (Kafka's classic protocol) and their committed offsets.
//!
//! The deciding parts are sans-IO, plain data in and out, tested without sockets or files:
//! [`classic`] (the group state machine: join, sync, heartbeat, leave, timers), [`offsets`]
//! (committed offsets and their expiry), [`records`] (Kafka's `__consumer_offsets` key/value
//! schemas). The parts that do I/O are thin around them: [`store`] writes and replays records in
//! the `__consumer_offsets` partitions through vltava-log, and [`coordinator`] owns the groups,
//! runs their timers on tokio and answers delayed JoinGroup/SyncGroup requests.

pub mod classic;
pub mod coordinator;
pub mod member;
pub mod offsets;
pub mod records;
pub mod store;

pub use classic::{ClassicGroup, GroupState};
pub use coordinator::GroupCoordinator;

/// The internal topic that holds group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Why a group operation failed; [`crate::error::group_error_code`] maps each to Kafka's code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("this broker does not coordinate the group")]
    NotCoordinator,
    #[error("the coordinator is loading")]
    CoordinatorLoadInProgress,
    #[error("unknown member id")]
    UnknownMemberId,
    #[error("illegal generation")]
    IllegalGeneration,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("the static member was replaced by a newer instance with the same group.instance.id")]
    FencedInstanceId,
    #[error("a member id is required (KIP-394)")]
    MemberIdRequired,
    #[error("the protocol type or protocols do not match the group's")]
    InconsistentGroupProtocol,
    #[error("session timeout outside group.min/max.session.timeout.ms")]
    InvalidSessionTimeout,
    #[error("the group has reached group.max.size members")]
    GroupMaxSizeReached,
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("group not found")]
    GroupIdNotFound,
    #[error("the group has members")]
    NonEmptyGroup,
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("offset metadata larger than offset.metadata.max.bytes")]
    OffsetMetadataTooLarge,
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("too many groups on this coordinator")]
    TooManyGroups,
    #[error("writing to __consumer_offsets failed: {0}")]
    Storage(String),
    /// The log refused a transactional offset commit (a fenced producer epoch, say): its code.
    #[error("the log refused the transactional offsets with error code {0}")]
    Log(i16),
}

/// Group limits and timeouts: Kafka's keys and defaults, except where noted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms` (6000).
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (1800000).
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms` (3000).
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size` (Kafka: unlimited; here 1000 so a group's memory is bounded).
    pub max_size: usize,
    /// Groups one broker keeps (Vltava's `group.max.count`, 100000; no Kafka equivalent).
    pub max_groups: usize,
    /// `offsets.topic.num.partitions` (50).
    pub offsets_topic_partitions: i32,
    /// `offsets.retention.minutes` (10080) in ms.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms` (600000).
    pub offsets_retention_check_interval_ms: u64,
    /// `offset.metadata.max.bytes` (4096).
    pub offset_metadata_max_bytes: usize,
    /// `group.classic.new.member.join.timeout` (300000, not configurable in Kafka either).
    pub new_member_join_timeout_ms: u64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3000,
            max_size: 1000,
            max_groups: 100_000,
            offsets_topic_partitions: 50,
            offsets_retention_ms: 10080 * 60_000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            new_member_join_timeout_ms: 300_000,
        }
    }
}

/// Java's `String.hashCode` (over UTF-16 code units, wrapping), which Kafka uses to place a
/// group on a `__consumer_offsets` partition.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition that coordinates `group_id`:
/// `Utils.abs(groupId.hashCode) % offsets.topic.num.partitions` (`Utils.abs` maps MIN_VALUE to 0).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let hash = java_string_hash(group_id);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_known_values() {
        // Values from java.lang.String#hashCode.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("console-consumer-12345"), 158_455_506);
        // Non-BMP characters hash as two UTF-16 units.
        assert_eq!(java_string_hash("\u{1F600}"), 0xD83D * 31 + 0xDE00);
    }

    #[test]
    fn partition_is_never_negative() {
        for id in ["", "a", "billing", "console-consumer-12345", "\u{1F600}"] {
            let p = partition_for(id, 50);
            assert!((0..50).contains(&p), "{id}: {p}");
        }
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
    }
}
