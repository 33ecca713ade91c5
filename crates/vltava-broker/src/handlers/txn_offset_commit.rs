//! TxnOffsetCommit (28): a transactional producer commits its consumer's offsets as part of the
//! transaction (`send_offsets_to_transaction`). Written to `__consumer_offsets` as the
//! producer's transactional batch; OffsetFetch sees them once the COMMIT marker is written.
//! Partitions of unknown topics are refused first, as in OffsetCommit. The group's offsets
//! partition must be in the transaction (KIP-890): verified for v0–v4 (AddOffsetsToTxn added
//! it), added implicitly from v5 on (transaction version 2 clients skip AddOffsetsToTxn).

use std::sync::Arc;

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use kafka_protocol::ResponseError;

use super::group_common::{check_len, check_member_identity, code, later};
use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{self, ConnectionError};
use crate::group::coordinator::OffsetToCommit;
use crate::group::GroupError;
use crate::txn::coordinator::state::TxnError;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: TxnOffsetCommitRequest,
) -> Result<Reply, ConnectionError> {
    check_len(ctx, "transactionalId", &request.transactional_id)?;
    check_member_identity(
        ctx,
        &request.group_id,
        &request.member_id,
        request.group_instance_id.as_deref(),
    )?;
    let image = broker.image();
    let mut response = TxnOffsetCommitResponse::default();
    let mut to_commit = Vec::new();
    let mut slots = Vec::new();
    for (t, topic) in request.topics.iter().enumerate() {
        check_len(ctx, "name", &topic.name)?;
        let known = image.topic(&topic.name);
        let mut topic_response =
            TxnOffsetCommitResponseTopic::default().with_name(topic.name.clone());
        for (p, partition) in topic.partitions.iter().enumerate() {
            if let Some(md) = &partition.committed_metadata {
                check_len(ctx, "committedMetadata", md)?;
            }
            let exists = known.is_some_and(|k| k.partition(partition.partition_index).is_some());
            let mut partition_response = TxnOffsetCommitResponsePartition::default()
                .with_partition_index(partition.partition_index);
            if exists {
                slots.push((t, p));
                to_commit.push(OffsetToCommit {
                    topic: topic.name.to_string(),
                    partition: partition.partition_index,
                    offset: partition.committed_offset,
                    leader_epoch: partition.committed_leader_epoch,
                    metadata: partition.committed_metadata.as_ref().map(|m| m.to_string()),
                });
            } else {
                partition_response.error_code = error::UNKNOWN_TOPIC_OR_PARTITION;
            }
            topic_response.partitions.push(partition_response);
        }
        response.topics.push(topic_response);
    }
    // KIP-588: clients from v3 on understand PRODUCER_FENCED; older ones get the epoch error.
    let fenced = if ctx.api_version >= 3 {
        ResponseError::ProducerFenced.code()
    } else {
        ResponseError::InvalidProducerEpoch.code()
    };
    let tv2 = ctx.api_version >= 5;
    let broker = broker.clone();
    Ok(later(ctx, async move {
        if to_commit.is_empty() {
            return response;
        }
        let (pid, epoch) = (request.producer_id.0, request.producer_epoch);
        let in_txn = if tv2 {
            broker
                .txns
                .add_offsets(
                    &broker,
                    &request.transactional_id,
                    pid,
                    epoch,
                    &request.group_id,
                    true,
                )
                .await
        } else {
            broker
                .txns
                .verify_offsets(
                    &broker,
                    &request.transactional_id,
                    pid,
                    epoch,
                    &request.group_id,
                )
                .await
        };
        if let Err(e) = in_txn {
            let code = verification_code(e, tv2, fenced);
            for t in &mut response.topics {
                for p in &mut t.partitions {
                    if p.error_code == error::NONE {
                        p.error_code = code;
                    }
                }
            }
            return response;
        }
        let results = broker
            .groups
            .txn_commit(
                &broker,
                &request.group_id,
                request.producer_id.0,
                request.producer_epoch,
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id,
                to_commit,
            )
            .await;
        let to_code = |e: &GroupError| match e {
            GroupError::Log(c) if *c == ResponseError::InvalidProducerEpoch.code() => fenced,
            GroupError::Log(c) if *c == ResponseError::ProducerFenced.code() => fenced,
            e => code(e),
        };
        for (i, (t, p)) in slots.into_iter().enumerate() {
            let code = match &results {
                Err(e) => to_code(e),
                Ok(results) => results.get(i).map_or(error::UNKNOWN_SERVER_ERROR, |r| {
                    r.as_ref().err().map_or(0, to_code)
                }),
            };
            if let Some(slot) = response
                .topics
                .get_mut(t)
                .and_then(|topic| topic.partitions.get_mut(p))
            {
                slot.error_code = code;
            }
        }
        response
    }))
}

/// A failed check that the offsets partition is in the transaction, as the Java client's
/// TxnOffsetCommit handler understands it: fenced epochs are fatal, a partition missing from the
/// transaction is abortable (INVALID_TXN_STATE before v5), and a coordinator busy with another
/// change of the transaction is retried (COORDINATOR_LOAD_IN_PROGRESS).
fn verification_code(e: TxnError, tv2: bool, fenced: i16) -> i16 {
    match e {
        TxnError::ProducerFenced => fenced,
        TxnError::TransactionAbortable if !tv2 => error::INVALID_TXN_STATE,
        TxnError::ConcurrentTransactions | TxnError::CoordinatorLoadInProgress => {
            ResponseError::CoordinatorLoadInProgress.code()
        }
        other => other.code(),
    }
}
