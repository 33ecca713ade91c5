//! KIP-890 on the produce path: before a transactional batch may start a transaction in a
//! partition, the partition asks the transaction coordinator whether the partition is in the
//! producer's ongoing transaction (transaction version 1: AddPartitionsToTxn added it) or adds
//! it (transaction version 2, Produce v12+: partitions join implicitly). A zombie producer
//! whose epoch was bumped, or a retry arriving after the transaction ended, is refused here
//! instead of leaving a transaction no coordinator will end.

use std::sync::Arc;

use kafka_protocol::ResponseError;
use vltava_log::batch::BatchHeader;
use vltava_log::VerificationGuard;

use super::coordinator::state::TxnError;
use crate::broker::Broker;
use crate::error;
use crate::replica::Partition;

/// How a verified target is appended: `None` for a batch that is not transactional (no
/// checks), `Some(guard)` for a transactional one (the log checks the guard if the batch
/// starts a transaction).
pub type Verification = Option<Option<VerificationGuard>>;

/// Verifies (or with `implicit_add`, adds) `partition` in `transactional_id`'s transaction for
/// the batch in `records`; the error is the Produce answer's code.
pub async fn verify_produce(
    broker: &Arc<Broker>,
    transactional_id: &str,
    partition: &Partition,
    records: Option<&[u8]>,
    implicit_add: bool,
) -> Result<Verification, i16> {
    let Some(header) = records.and_then(BatchHeader::parse) else {
        return Ok(None); // the log reports what is wrong with the bytes
    };
    if !header.is_transactional() || header.producer_id < 0 {
        return Ok(None);
    }
    // Kafka skips verification when it is off, except for version 2 clients, whose partitions
    // join the transaction only this way.
    if !implicit_add && !broker.txns.config().partition_verification {
        return Ok(None);
    }
    let (pid, epoch) = (header.producer_id, header.producer_epoch);
    let Some(guard) = partition.log.start_txn_verification(pid, epoch) else {
        return Ok(Some(None));
    };
    let target = (partition.topic.clone(), partition.index);
    let outcome = if implicit_add {
        broker
            .txns
            .add_partitions(
                broker,
                transactional_id,
                pid,
                epoch,
                std::slice::from_ref(&target),
                true,
            )
            .await
    } else {
        broker
            .txns
            .verify_partition(broker, transactional_id, pid, epoch, &target)
            .await
    };
    match outcome {
        Ok(()) => Ok(Some(Some(guard))),
        Err(e) => {
            partition.log.abandon_txn_verification(pid, guard);
            Err(produce_code(e, implicit_add))
        }
    }
}

/// Kafka's translation of a verification failure into a Produce error
/// (`AddPartitionsToTxnManager`, `ReplicaManager.appendRecords`): producers expect
/// INVALID_PRODUCER_EPOCH for a fenced epoch; a coordinator that cannot answer now is the
/// retriable NOT_ENOUGH_REPLICAS; a partition missing from the transaction is
/// TRANSACTION_ABORTABLE for version 2 clients and INVALID_TXN_STATE for older ones.
fn produce_code(e: TxnError, version_2: bool) -> i16 {
    match e {
        TxnError::ProducerFenced => error::INVALID_PRODUCER_EPOCH,
        TxnError::TransactionAbortable if !version_2 => error::INVALID_TXN_STATE,
        TxnError::ConcurrentTransactions
        | TxnError::CoordinatorLoadInProgress
        | TxnError::CoordinatorNotAvailable
        | TxnError::NotCoordinator => ResponseError::NotEnoughReplicas.code(),
        other => other.code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_failures_become_the_codes_producers_expect() {
        assert_eq!(produce_code(TxnError::ProducerFenced, false), 47);
        assert_eq!(produce_code(TxnError::ProducerFenced, true), 47);
        assert_eq!(produce_code(TxnError::TransactionAbortable, false), 48);
        assert_eq!(produce_code(TxnError::TransactionAbortable, true), 120);
        assert_eq!(produce_code(TxnError::ConcurrentTransactions, true), 19);
        assert_eq!(produce_code(TxnError::InvalidProducerIdMapping, false), 49);
    }
}
