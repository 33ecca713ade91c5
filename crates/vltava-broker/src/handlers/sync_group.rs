//! SyncGroup (14): the leader hands in the assignment; every member gets its own share.

use std::sync::Arc;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::group_common::{check_member_identity, code, later, opt_text};
use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::ConnectionError;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: SyncGroupRequest,
) -> Result<Reply, ConnectionError> {
    check_member_identity(
        ctx,
        &request.group_id,
        &request.member_id,
        request.group_instance_id.as_deref(),
    )?;
    let broker = broker.clone();
    Ok(later(ctx, async move {
        let assignments = request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect();
        let result = broker
            .groups
            .sync(
                &broker,
                &request.group_id,
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id,
                request.protocol_type.as_deref(),
                request.protocol_name.as_deref(),
                assignments,
            )
            .await;
        match result {
            Ok(r) => SyncGroupResponse::default()
                .with_protocol_type(opt_text(r.protocol_type))
                .with_protocol_name(opt_text(r.protocol_name))
                .with_assignment(r.assignment),
            Err(e) => SyncGroupResponse::default().with_error_code(code(&e)),
        }
    }))
}
