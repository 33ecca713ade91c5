//! LeaveGroup (13): members leave at once (v3+: several per request, static ones by instance id).

use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::group_common::{check_len, code, code_of, later, opt_text, text};
use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::ConnectionError;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: LeaveGroupRequest,
) -> Result<Reply, ConnectionError> {
    check_len(ctx, "groupId", &request.group_id)?;
    let batched = ctx.api_version >= 3;
    let leaving: Vec<(String, Option<String>)> = if batched {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    for (member_id, instance) in &leaving {
        check_len(ctx, "memberId", member_id)?;
        check_len(
            ctx,
            "groupInstanceId",
            instance.as_deref().unwrap_or_default(),
        )?;
    }
    let broker = broker.clone();
    let group_id = request.group_id.to_string();
    Ok(later(ctx, async move {
        let result = broker
            .groups
            .leave(&broker, &group_id, leaving.clone())
            .await;
        match result {
            Err(e) => LeaveGroupResponse::default().with_error_code(code(&e)),
            Ok(results) if batched => {
                let mut response = LeaveGroupResponse::default();
                response.members = leaving
                    .into_iter()
                    .zip(&results)
                    .map(|((member_id, instance), r)| {
                        MemberResponse::default()
                            .with_member_id(text(member_id))
                            .with_group_instance_id(opt_text(instance))
                            .with_error_code(code_of(r))
                    })
                    .collect();
                response
            }
            Ok(results) => {
                LeaveGroupResponse::default().with_error_code(results.first().map_or(0, code_of))
            }
        }
    }))
}
