//! EndTxn (26), v0–v4: commit or abort. Answered once PrepareCommit/PrepareAbort is in
//! `__transaction_state`; the markers and the Complete state follow (transaction version 1).

use std::sync::Arc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::group_common::{check_len, later};
use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{self, ConnectionError};

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: EndTxnRequest,
) -> Result<Reply, ConnectionError> {
    let transactional_id = request.transactional_id.to_string();
    check_len(ctx, "transactionalId", &transactional_id)?;
    let old_client = ctx.api_version < 2;
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
            )
            .await;
        EndTxnResponse::default().with_error_code(match result {
            Ok(()) => error::NONE,
            Err(e) => e.code_for(old_client),
        })
    }))
}
