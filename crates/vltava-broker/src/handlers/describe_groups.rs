//! DescribeGroups (15): state, protocol and members (with metadata and assignment when Stable).
//! An unknown group is "Dead"; from v6 it also carries GROUP_ID_NOT_FOUND.

use std::sync::Arc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::group_common::{check_len, code, later, opt_text, text};
use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::ConnectionError;
use crate::group::GroupError;

/// READ, DELETE and DESCRIBE (AclOperation codes 3, 6, 8): what Kafka reports for a group
/// without an authorizer.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DescribeGroupsRequest,
) -> Result<Reply, ConnectionError> {
    for g in &request.groups {
        check_len(ctx, "groups", g)?;
    }
    let version = ctx.api_version;
    let operations = if request.include_authorized_operations {
        GROUP_OPERATIONS
    } else {
        i32::MIN
    };
    let broker = broker.clone();
    Ok(later(ctx, async move {
        let mut response = DescribeGroupsResponse::default();
        for group_id in request.groups {
            let result = if group_id.is_empty() {
                Err(GroupError::InvalidGroupId)
            } else {
                broker.groups.describe(&broker, &group_id).await
            };
            let described = DescribedGroup::default()
                .with_group_id(group_id.clone())
                .with_authorized_operations(operations);
            response.groups.push(match result {
                Ok(d) => described
                    .with_group_state(text(d.state.name()))
                    .with_protocol_type(text(d.protocol_type))
                    .with_protocol_data(text(d.protocol))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(text(m.member_id))
                                    .with_group_instance_id(opt_text(m.group_instance_id))
                                    .with_client_id(text(m.client_id))
                                    .with_client_host(text(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
                Err(GroupError::GroupIdNotFound) => {
                    let dead = described.with_group_state(text("Dead"));
                    if version >= 6 {
                        dead.with_error_code(code(&GroupError::GroupIdNotFound))
                            .with_error_message(Some(text(format!(
                                "Group {} not found.",
                                &*group_id
                            ))))
                    } else {
                        dead
                    }
                }
                Err(e) => described.with_error_code(code(&e)),
            });
        }
        response
    }))
}
