//! Cluster metadata: the records, the in-memory image, the controller's decisions and the Raft
//! quorum that orders them.
//!
//! Owns: every change to cluster state (brokers, topics, partitions with their leaders and ISR,
//! topic and broker configs) as a [`records::MetadataRecord`] in a Raft log
//! (openraft) persisted under `<log.dirs>/__cluster_metadata-0`; applying that log to an
//! immutable [`image::MetadataImage`] that readers share through `Arc`; validating admin requests
//! against the image with Kafka's rules and messages ([`controller`]); the Raft RPCs between
//! controllers on `controller.quorum.voters`.
//!
//! Does not own: the Kafka wire protocol (the broker maps [`ControllerError`] to responses),
//! partition data (vltava-log), or replication of partition data (the broker).
//!
//! A single node is a one-voter quorum running the same code as three.
//!
//! Not yet: image snapshots on disk (the log is replayed from the start, and never purged),
//! broker heartbeats and fencing, leader/ISR changes (the `Partition` record already replaces a
//! partition), and adding or removing voters at runtime.

pub mod controller;
pub mod delta;
pub mod error;
pub mod image;
pub mod records;

pub use controller::{
    AlterOp, ConfigResource, CreateTopicRequest, CreatedTopic, TopicDefaults, TopicRef,
};
pub use error::{ControllerError, MetaError};
pub use image::{BrokerRegistration, MetadataImage, PartitionImage, TopicImage};
pub use uuid::Uuid;
pub mod quorum;

pub use quorum::{MetadataQuorum, QuorumConfig, QuorumStatus};
