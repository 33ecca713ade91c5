//! KIP-890 part 1: a transactional batch may start a transaction in this partition only after
//! the broker verified with the transaction coordinator that the partition is in the producer's
//! ongoing transaction (Kafka's `VerificationGuard` and `VerificationStateEntry`).
//!
//! Verification happens outside the log lock (it is a call to the coordinator), so the log
//! hands out a guard before it and checks the guard at the append: a marker written in between
//! (the transaction ended, or was aborted by a timeout) drops the guard, and the late batch is
//! refused instead of opening a transaction no coordinator will ever end.

use std::collections::HashMap;

use crate::batch::BatchHeader;
use crate::error::{LogError, Result};
use crate::producer_state::ProducerStateManager;

/// Proof that one verification of a producer's transaction was started here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerificationGuard(u64);

/// The verifications in flight, one per producer id.
#[derive(Debug, Default)]
pub struct Verifications {
    by_producer: HashMap<i64, (VerificationGuard, i16)>,
    next: u64,
}

impl Verifications {
    /// A guard for a verification of `producer_id` at `epoch`, or `None` when none is needed
    /// (the producer already has a transaction open here at that epoch). Concurrent requests of
    /// one producer and epoch share a guard, as in Kafka.
    pub fn start(
        &mut self,
        producers: &ProducerStateManager,
        producer_id: i64,
        epoch: i16,
    ) -> Option<VerificationGuard> {
        if producers.has_ongoing_txn(producer_id, epoch) {
            return None;
        }
        if let Some((guard, e)) = self.by_producer.get(&producer_id) {
            if *e == epoch {
                return Some(*guard);
            }
        }
        self.next += 1;
        let guard = VerificationGuard(self.next);
        self.by_producer.insert(producer_id, (guard, epoch));
        Some(guard)
    }

    /// The coordinator refused: forget the guard (unless a newer one replaced it).
    pub fn abandon(&mut self, producer_id: i64, guard: VerificationGuard) {
        if self.by_producer.get(&producer_id).map(|(g, _)| *g) == Some(guard) {
            self.by_producer.remove(&producer_id);
        }
    }

    /// Checks a client batch of a verified append: a transactional batch that would start a
    /// transaction needs the producer's current guard.
    pub fn check(
        &self,
        producers: &ProducerStateManager,
        header: &BatchHeader,
        guard: Option<VerificationGuard>,
    ) -> Result<()> {
        let pid = header.producer_id;
        if !header.is_transactional()
            || header.is_control()
            || producers.has_ongoing_txn(pid, header.producer_epoch)
        {
            return Ok(());
        }
        match (guard, self.by_producer.get(&pid)) {
            (Some(guard), Some((current, _))) if guard == *current => Ok(()),
            _ => Err(LogError::InvalidTxnState {
                producer_id: pid,
                reason: "the transaction was not verified with its coordinator, or ended since"
                    .into(),
            }),
        }
    }

    /// A batch of `producer_id` was appended: a transaction it started consumed the guard, and
    /// a marker ended whatever the guard was for.
    pub fn finish(&mut self, producer_id: i64) {
        self.by_producer.remove(&producer_id);
    }

    pub fn len(&self) -> usize {
        self.by_producer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_producer.is_empty()
    }
}
