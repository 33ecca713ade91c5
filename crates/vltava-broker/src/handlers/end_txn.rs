//! EndTxn (26): commit or abort. Answered once PrepareCommit/PrepareAbort is in
//! `__transaction_state`; the markers and the Complete state follow. v5+ is transaction
//! version 2 (KIP-890 part 2, as Kafka's `EndTxnRequest.isTransactionV2Enabled`): the epoch is
//! bumped and the answer carries the producer id and epoch for the next transaction.

use std::sync::Arc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use super::group_common::{check_len, later};
use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::ConnectionError;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: EndTxnRequest,
) -> Result<Reply, ConnectionError> {
    let transactional_id = request.transactional_id.to_string();
    check_len(ctx, "transactionalId", &transactional_id)?;
    let old_client = ctx.api_version < 2;
    let tv2 = ctx.api_version >= 5;
    let broker = broker.clone();
    Ok(later(ctx, async move {
        let result = broker
            .txns
            .end_txn(
                &broker,
                &transactional_id,
                request.producer_id.0,
                request.producer_epoch,
                request.committed,
                tv2,
            )
            .await;
        match result {
            Ok((producer_id, producer_epoch)) if tv2 => EndTxnResponse::default()
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(producer_epoch),
            Ok(_) => EndTxnResponse::default(),
            Err(e) => EndTxnResponse::default().with_error_code(e.code_for(old_client)),
        }
    }))
}
