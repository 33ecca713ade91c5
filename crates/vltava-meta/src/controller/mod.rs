//! The controller's decisions: validate a request against the current image and produce the
//! records that carry it out. Plain functions over plain data, no I/O; the quorum proposes the
//! records and the image changes only when they are applied.
//!
//! Validation order and messages follow Kafka's KRaft controller
//! (`ReplicationControlManager`, `ConfigurationControlManager`, `ControllerApis`) so that
//! differential tests against Apache Kafka see the same error codes and messages.

pub mod brokers;
pub mod configs;
pub mod placement;
pub mod producer_ids;
pub mod topics;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::records::ConfigResource;

/// One topic of a CreateTopics request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTopicRequest {
    pub name: String,
    /// -1 = the broker default (`num.partitions`).
    pub num_partitions: i32,
    /// -1 = the broker default (`default.replication.factor`).
    pub replication_factor: i16,
    /// Manual assignment: (partition index, replica broker ids). When not empty,
    /// `num_partitions` and `replication_factor` must both be -1.
    pub assignments: Vec<(i32, Vec<i32>)>,
    pub configs: Vec<(String, String)>,
}

/// Broker defaults applied when a CreateTopics request says -1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicDefaults {
    pub num_partitions: i32,
    pub replication_factor: i16,
}

impl Default for TopicDefaults {
    /// Kafka's defaults: `num.partitions=1`, `default.replication.factor=1`.
    fn default() -> Self {
        Self {
            num_partitions: 1,
            replication_factor: 1,
        }
    }
}

/// The result of creating (or validating the creation of) one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedTopic {
    pub topic_id: Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
    /// The configs set on the topic by the request (not the broker defaults).
    pub configs: Vec<(String, String)>,
}

/// A topic named in a DeleteTopics request: by name (v0–v5) or by id (v6+).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TopicRef {
    Name(String),
    Id(Uuid),
}

/// One operation of an (incremental) AlterConfigs request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlterOp {
    Set(String),
    Delete,
}
