//! The metadata image: an immutable view of cluster state at one point of the metadata log.
//!
//! Readers hold an `Arc<MetadataImage>` and never see it change; [`crate::delta`] builds the next
//! image from the previous one. Topics are kept behind `Arc` so that a new image shares every
//! topic the change did not touch.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A registered broker's endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

/// One partition's assignment and leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// A topic: its id, its partitions (index = partition id, dense from 0) and its dynamic configs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: Vec<PartitionImage>,
    pub configs: BTreeMap<String, String>,
}

impl TopicImage {
    pub fn partition(&self, partition: i32) -> Option<&PartitionImage> {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.partitions.get(p))
    }

    /// The replication factor of the topic: the replica count of partition 0.
    pub fn replication_factor(&self) -> i16 {
        self.partitions
            .first()
            .map(|p| i16::try_from(p.replicas.len()).unwrap_or(i16::MAX))
            .unwrap_or(0)
    }
}

/// Cluster metadata at one offset of the metadata log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub(crate) cluster_id: Option<String>,
    pub(crate) brokers: BTreeMap<i32, BrokerRegistration>,
    pub(crate) topics: BTreeMap<Uuid, Arc<TopicImage>>,
    pub(crate) topic_ids_by_name: BTreeMap<String, Uuid>,
    pub(crate) broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
    /// The first producer id not yet handed out (KRaft's `ProducerIdsImage`).
    #[serde(default)]
    pub(crate) next_producer_id: i64,
    /// Index of the last Raft log entry applied to this image (0 before any).
    pub(crate) applied_index: u64,
}

impl MetadataImage {
    pub fn empty() -> Self {
        Self::default()
    }

    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    pub fn broker(&self, node_id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&node_id)
    }

    /// Registered brokers in node id order.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }

    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topic_ids_by_name
            .get(name)
            .and_then(|id| self.topics.get(id))
    }

    pub fn topic_by_id(&self, topic_id: &Uuid) -> Option<&Arc<TopicImage>> {
        self.topics.get(topic_id)
    }

    /// Topics in name order.
    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicImage>> {
        self.topic_ids_by_name
            .values()
            .filter_map(|id| self.topics.get(id))
    }

    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// The first producer id no broker has been given yet.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// Dynamic configs set for a broker (empty if none).
    pub fn broker_configs(&self, node_id: i32) -> Option<&BTreeMap<String, String>> {
        self.broker_configs.get(&node_id)
    }
}
