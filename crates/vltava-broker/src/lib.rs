//! The Kafka broker: listeners, the wire protocol, one handler per Kafka API, and the replica
//! manager that maps partitions to logs.
//!
//! Owns: connections and framing (`server`, `connection`, `wire`), the api key → handler table
//! (`handlers`), which partitions this node serves and their high watermarks (`replica`),
//! server configuration (`config`), and the mapping of errors to Kafka codes (`error`).
//! Does not own: bytes on disk (vltava-log), cluster metadata (vltava-meta's image and quorum).

pub mod broker;
pub mod config;
pub mod connection;
pub mod error;
pub mod group;
pub mod handlers;
pub mod metrics;
pub mod replica;
pub mod server;
pub mod txn;
pub mod wire;

pub use broker::Broker;
