//! ListGroups (16): the groups this broker coordinates; v4 filters by state, v5 by type.

use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{ListGroupsRequest, ListGroupsResponse};

use super::group_common::{code, later, text};
use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::ConnectionError;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: ListGroupsRequest,
) -> Result<Reply, ConnectionError> {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_string())
        .collect();
    let types: Vec<String> = request.types_filter.iter().map(|s| s.to_string()).collect();
    let broker = broker.clone();
    Ok(later(ctx, async move {
        match broker.groups.list_groups(&broker, &states, &types).await {
            Err(e) => ListGroupsResponse::default().with_error_code(code(&e)),
            Ok(groups) => ListGroupsResponse::default().with_groups(
                groups
                    .into_iter()
                    .map(|g| {
                        ListedGroup::default()
                            .with_group_id(text(g.group_id).into())
                            .with_protocol_type(text(g.protocol_type))
                            .with_group_state(text(g.state.name()))
                            .with_group_type(text("classic"))
                    })
                    .collect(),
            ),
        }
    }))
}
