//! AddOffsetsToTxn (25): the group's `__consumer_offsets` partition joins the transaction, so
//! the commit or abort marker reaches the offsets TxnOffsetCommit writes there.

use std::sync::Arc;

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::group_common::{check_len, later};
use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{self, ConnectionError};

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: AddOffsetsToTxnRequest,
) -> Result<Reply, ConnectionError> {
    let transactional_id = request.transactional_id.to_string();
    let group_id = request.group_id.to_string();
    check_len(ctx, "transactionalId", &transactional_id)?;
    check_len(ctx, "groupId", &group_id)?;
    let old_client = ctx.api_version < 2;
    let broker = broker.clone();
    Ok(later(ctx, async move {
        let result = broker
            .txns
            .add_offsets(
                &broker,
                &transactional_id,
                request.producer_id.0,
                request.producer_epoch,
                &group_id,
                false,
            )
            .await;
        AddOffsetsToTxnResponse::default().with_error_code(match result {
            Ok(()) => error::NONE,
            Err(e) => e.code_for(old_client),
        })
    }))
}
