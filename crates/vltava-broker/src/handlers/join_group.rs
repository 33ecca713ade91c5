//! JoinGroup (11): join a classic group; the answer waits until the rebalance completes.

use std::sync::Arc;

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::group_common::{check_len, check_member_identity, code, later, opt_text, text};
use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::ConnectionError;
use crate::group::classic::JoinRequest;
use crate::group::member::Protocol;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    client_id: Option<StrBytes>,
    request: JoinGroupRequest,
) -> Result<Reply, ConnectionError> {
    check_member_identity(
        ctx,
        &request.group_id,
        &request.member_id,
        request.group_instance_id.as_deref(),
    )?;
    check_len(ctx, "protocolType", &request.protocol_type)?;
    for p in &request.protocols {
        check_len(ctx, "name", &p.name)?;
    }
    let group_id = request.group_id.to_string();
    let version = ctx.api_version;
    let join = JoinRequest {
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: client_id.map(|c| c.to_string()).unwrap_or_default(),
        client_host: String::new(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout is used (JoinGroupRequest v0).
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata,
            })
            .collect(),
        require_known_member_id: version >= 4 && request.group_instance_id.is_none(),
        new_member_id: String::new(),
    };
    let broker = broker.clone();
    Ok(later(ctx, async move {
        let r = broker.groups.join(&broker, &group_id, join).await;
        let mut response = JoinGroupResponse::default()
            .with_error_code(r.error.as_ref().map_or(0, code))
            .with_generation_id(r.generation_id)
            .with_protocol_type(opt_text(r.protocol_type))
            .with_protocol_name(opt_text(r.protocol_name))
            .with_leader(text(r.leader))
            // KIP-814 (v9+); an older static leader just runs its assignor again.
            .with_skip_assignment(r.skip_assignment && version >= 9)
            .with_member_id(text(r.member_id));
        if version < 7 && response.protocol_name.is_none() {
            // Before v7 the protocol name is not nullable.
            response.protocol_name = Some(StrBytes::default());
        }
        response.members = r
            .members
            .into_iter()
            .map(|m| {
                JoinGroupResponseMember::default()
                    .with_member_id(text(m.member_id))
                    .with_group_instance_id(opt_text(m.group_instance_id))
                    .with_metadata(m.metadata)
            })
            .collect();
        response
    }))
}
