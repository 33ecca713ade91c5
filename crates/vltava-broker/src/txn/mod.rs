//! Exactly-once: the transaction coordinator ([`coordinator`]: transactional ids, their state in
//! `__transaction_state`, commits and aborts driven to completion).
//! Producer ids and transaction markers on partitions live beside it.

pub mod coordinator;
pub mod markers;
pub mod producer_ids;

pub use coordinator::TransactionCoordinator;
