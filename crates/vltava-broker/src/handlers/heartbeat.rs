//! Heartbeat (12): a member is alive; REBALANCE_IN_PROGRESS tells it to rejoin.

use std::sync::Arc;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::group_common::{check_member_identity, code_of, later};
use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::ConnectionError;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: HeartbeatRequest,
) -> Result<Reply, ConnectionError> {
    check_member_identity(
        ctx,
        &request.group_id,
        &request.member_id,
        request.group_instance_id.as_deref(),
    )?;
    let broker = broker.clone();
    Ok(later(ctx, async move {
        let result = broker
            .groups
            .heartbeat(
                &broker,
                &request.group_id,
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id,
            )
            .await;
        HeartbeatResponse::default().with_error_code(code_of(&result))
    }))
}
