//! FindCoordinator (10): which broker coordinates a group (the leader of its
//! `__consumer_offsets` partition) or a transactional id (the leader of its
//! `__transaction_state` partition). v4+ asks for many keys at once. Share groups are not
//! supported: INVALID_REQUEST, Kafka's answer to a key type it does not serve.

use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};

use super::group_common::{check_len, code, later, text};
use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{self, ConnectionError};
use crate::group::{store, GroupError, OFFSETS_TOPIC};

const GROUP_KEY_TYPE: i8 = 0;
const TRANSACTION_KEY_TYPE: i8 = 1;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: FindCoordinatorRequest,
) -> Result<Reply, ConnectionError> {
    let keys: Vec<String> = if ctx.api_version >= 4 {
        request
            .coordinator_keys
            .iter()
            .map(|k| k.to_string())
            .collect()
    } else {
        vec![request.key.to_string()]
    };
    for key in &keys {
        check_len(ctx, "key", key)?;
    }
    let key_type = request.key_type;
    let version = ctx.api_version;
    let broker = broker.clone();
    Ok(later(ctx, async move {
        let mut coordinators = Vec::with_capacity(keys.len());
        for key in keys {
            let found = if key_type == GROUP_KEY_TYPE {
                locate(&broker, &key).await.map_err(|e| code(&e))
            } else if key_type == TRANSACTION_KEY_TYPE {
                broker
                    .txns
                    .locate(&broker, &key)
                    .await
                    .map_err(|e| e.code())
            } else {
                Err(error::INVALID_REQUEST)
            };
            let mut c = Coordinator::default().with_key(text(key.clone()));
            match found {
                Ok((node, host, port)) => {
                    c.node_id = node.into();
                    c.host = text(host);
                    c.port = port;
                }
                Err(code) => {
                    c.node_id = (-1).into();
                    c.port = -1;
                    c.error_code = code;
                    if code == error::INVALID_REQUEST {
                        c.error_message = Some(text(format!(
                            "Unsupported key type {key_type} for key {key}"
                        )));
                    }
                }
            }
            coordinators.push(c);
        }
        let mut response = FindCoordinatorResponse::default();
        if version >= 4 {
            response.coordinators = coordinators;
        } else if let Some(c) = coordinators.pop() {
            response.error_code = c.error_code;
            response.error_message = c.error_message;
            response.node_id = c.node_id;
            response.host = c.host;
            response.port = c.port;
        }
        response
    }))
}

/// The coordinator's node id, host and port; creates `__consumer_offsets` on first use.
async fn locate(broker: &Arc<Broker>, group_id: &str) -> Result<(i32, String, i32), GroupError> {
    store::ensure_topic(broker).await?;
    let partition = broker.groups.partition_for(group_id);
    let image = broker.image();
    let leader = image
        .topic(OFFSETS_TOPIC)
        .and_then(|t| t.partition(partition))
        .map(|p| p.leader)
        .filter(|leader| *leader >= 0)
        .ok_or(GroupError::CoordinatorNotAvailable)?;
    let registration = image
        .broker(leader)
        .ok_or(GroupError::CoordinatorNotAvailable)?;
    Ok((
        leader,
        registration.host.clone(),
        i32::from(registration.port),
    ))
}
