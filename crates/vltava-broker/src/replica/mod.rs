//! Replicas on this broker: which partitions it leads, their logs, and their high watermarks.

pub mod manager;
pub mod partition;

pub use manager::{Lookup, ReplicaManager};
pub use partition::Partition;
