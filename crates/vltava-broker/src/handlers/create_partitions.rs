//! CreatePartitions (37): grow a topic, through the controller.

use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use tracing::info;

use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{self, ConnectionError};

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: CreatePartitionsRequest,
) -> Result<Reply, ConnectionError> {
    let mut response = CreatePartitionsResponse::default();
    for topic in &request.topics {
        let mut result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        let outcome = if topic.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            // Manual assignment needs more than one broker to mean anything; refuse it plainly.
            Err((
                error::INVALID_REQUEST,
                "Manual partition assignment is not supported yet.".to_string(),
            ))
        } else {
            broker
                .quorum
                .create_partitions(topic.name.to_string(), topic.count, request.validate_only)
                .await
                .map_err(|e| (error::controller_error_code(&e), e.message()))
        };
        match outcome {
            Ok(()) => {
                if !request.validate_only {
                    info!(
                        "topic {} now has {} partitions",
                        topic.name.as_str(),
                        topic.count
                    );
                }
            }
            Err((code, message)) => {
                result.error_code = code;
                result.error_message = Some(StrBytes::from_string(message));
            }
        }
        response.results.push(result);
    }
    if !request.validate_only {
        broker.sync_replicas().await;
    }
    ctx.reply(&response)
}
