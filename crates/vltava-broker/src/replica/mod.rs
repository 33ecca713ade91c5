//! Replicas on this broker: which partitions it leads, their logs, and their high watermarks.

pub mod flusher;
pub mod manager;
pub mod partition;

pub use manager::{Lookup, ReplicaManager};
pub use partition::Partition;

/// Kafka's internal topics (`Topic.isInternal`): written only by the broker itself. Clients get
/// INVALID_TOPIC_EXCEPTION when they produce to them, and they are never auto-created for a
/// client's Metadata or Produce request.
pub const INTERNAL_TOPICS: &[&str] = &[
    "__consumer_offsets",
    "__transaction_state",
    "__share_group_state",
];

pub fn is_internal_topic(name: &str) -> bool {
    INTERNAL_TOPICS.contains(&name)
}
