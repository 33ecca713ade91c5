//! IncrementalAlterConfigs (44): set or delete topic configs through the controller (KIP-339).
//!
//! SET and DELETE are supported; APPEND and SUBTRACT (for list-valued configs) and broker
//! resources are answered with Kafka's INVALID_REQUEST rather than half-applied.

use std::sync::Arc;

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use tracing::info;
use vltava_meta::{AlterOp, ConfigResource};

use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{self, ConnectionError};

const TOPIC: i8 = 2;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: IncrementalAlterConfigsRequest,
) -> Result<Reply, ConnectionError> {
    let mut response = IncrementalAlterConfigsResponse::default();
    let mut changed = false;
    for resource in &request.resources {
        let mut result = AlterConfigsResourceResponse::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let outcome = match operations(resource) {
            Err(message) => Err((error::INVALID_REQUEST, message)),
            Ok(_) if resource.resource_type != TOPIC => Err((
                error::INVALID_REQUEST,
                "Altering broker configs is not supported yet.".to_string(),
            )),
            Ok(ops) => broker
                .quorum
                .alter_configs(
                    ConfigResource::Topic(resource.resource_name.to_string()),
                    ops,
                    request.validate_only,
                )
                .await
                .map_err(|e| (error::controller_error_code(&e), e.message())),
        };
        match outcome {
            Ok(()) if !request.validate_only => {
                changed = true;
                info!(
                    "configs of topic {} altered",
                    resource.resource_name.as_str()
                );
            }
            Ok(()) => {}
            Err((code, message)) => {
                result.error_code = code;
                result.error_message = Some(StrBytes::from_string(message));
            }
        }
        response.responses.push(result);
    }
    if changed {
        broker.sync_replicas().await;
    }
    ctx.reply(&response)
}

type Ops = Vec<(String, AlterOp)>;

fn operations(
    resource: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
) -> Result<Ops, String> {
    let mut ops = Vec::with_capacity(resource.configs.len().min(1024));
    for config in &resource.configs {
        let name = config.name.to_string();
        let op = match config.config_operation {
            OP_SET => AlterOp::Set(
                config
                    .value
                    .as_ref()
                    .map(|v| v.to_string())
                    .ok_or_else(|| format!("Null value not supported for: {name}"))?,
            ),
            OP_DELETE => AlterOp::Delete,
            other => {
                return Err(format!(
                    "Config operation {other} on {name} is not supported (only SET and DELETE)"
                ));
            }
        };
        ops.push((name, op));
    }
    Ok(ops)
}
