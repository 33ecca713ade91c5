//! The metadata records: every change to cluster state is one of these, ordered by the Raft log.
//!
//! They mirror KRaft's record types (`RegisterBrokerRecord`, `TopicRecord`, `PartitionRecord`,
//! `RemoveTopicRecord`, `ConfigRecord`) but are encoded with serde, not Kafka's schema: the
//! `__cluster_metadata` log is private to Vltava.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Which entity a config record belongs to (Kafka's `ConfigResource` types TOPIC and BROKER).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(String),
    Broker(i32),
}

/// One change to the metadata image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// The cluster id, written once by the first leader; later copies are ignored.
    ClusterId { cluster_id: String },
    /// A broker (re-)registered its endpoint. A newer registration replaces the older one.
    RegisterBroker {
        node_id: i32,
        host: String,
        port: u16,
        rack: Option<String>,
    },
    /// A topic was created; its partitions follow as [`MetadataRecord::Partition`] records.
    Topic { name: String, topic_id: Uuid },
    /// A partition was created or its assignment, leader or ISR changed.
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// A topic and all its partitions and configs were deleted.
    RemoveTopic { topic_id: Uuid },
    /// A block of producer ids was handed to a broker (KRaft's `ProducerIdsRecord`): ids from
    /// `next_producer_id` on are free.
    ProducerIds {
        broker_id: i32,
        next_producer_id: i64,
    },
    /// A dynamic config was set (`Some`) or deleted (`None`).
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
}

/// The payload of one Raft entry: records that are applied all together or not at all, like a
/// KRaft atomic batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataBatch {
    pub records: Vec<MetadataRecord>,
}

impl std::fmt::Display for MetadataBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MetadataBatch({} records)", self.records.len())
    }
}
