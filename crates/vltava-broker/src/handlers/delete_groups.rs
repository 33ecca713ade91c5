//! DeleteGroups (42): delete empty groups and their committed offsets.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::group_common::{check_len, code_of, later};
use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::ConnectionError;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DeleteGroupsRequest,
) -> Result<Reply, ConnectionError> {
    for g in &request.groups_names {
        check_len(ctx, "groupsNames", g)?;
    }
    let names: Vec<String> = request.groups_names.iter().map(|g| g.to_string()).collect();
    let broker = broker.clone();
    Ok(later(ctx, async move {
        let results = broker.groups.delete_groups(&broker, &names).await;
        let mut response = DeleteGroupsResponse::default();
        response.results = request
            .groups_names
            .into_iter()
            .zip(&results)
            .map(|(group_id, r)| {
                DeletableGroupResult::default()
                    .with_group_id(group_id)
                    .with_error_code(code_of(r))
            })
            .collect();
        response
    }))
}
