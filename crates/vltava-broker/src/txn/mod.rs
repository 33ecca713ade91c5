//! Exactly-once: the transaction coordinator ([`coordinator`]: transactional ids, their state in
//! `__transaction_state`, commits and aborts driven to completion).
//! Producer ids, transaction markers on partitions and the verification of transactional
//! produces (KIP-890) live beside it.

pub mod coordinator;
pub mod markers;
pub mod producer_ids;
pub mod verification;

pub use coordinator::TransactionCoordinator;
