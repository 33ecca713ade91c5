//! Vltava's partition log: Kafka's on-disk format and the rules that keep it valid.
//!
//! Owns: segment files (`.log`, `.index`, `.timeindex`), offset assignment on append (by
//! rewriting batch headers in place — records are decoded only where Kafka's per-record rules
//! need them, see `record_rules`), reads as file ranges for
//! `sendfile`, group-commit durability, crash recovery, truncation, retention, and the
//! checkpoint files of a log directory.
//!
//! Does not own: networking, the Kafka protocol, replication or high watermarks (the broker's),
//! or any async runtime — every call here is synchronous and may block on disk, so async
//! callers run it on blocking threads. The exceptions say so in their names:
//! `Log::try_append_in_memory` and `Log::try_read_in_memory` do only what needs no wait and
//! decline the rest, for the caller to redo on a blocking thread.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::indexing_slicing))]

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod control;
pub mod dir;
pub mod durability;
pub mod epoch;
pub mod error;
pub mod fs;
pub mod index;
pub mod log;
mod page_cache;
mod parallel;
mod producer_recovery;
pub mod producer_state;
pub mod record_rules;
pub mod records;
pub mod recovery;
pub mod retention;
pub mod segment;
pub mod txn_verification;

pub use config::{LogConfig, TimestampType};
pub use dir::{LogDir, LogDirOptions};
pub use error::LogError;
pub use log::{
    AppendInfo, AppendOrigin, FileRange, Log, PendingWriteback, QuickAppend, ReadInfo,
    TopicPartition,
};
pub use recovery::RecoveryContext;
pub use txn_verification::VerificationGuard;
