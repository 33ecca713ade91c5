//! DeleteTopics (20): by name (v1–v5) or by name or id (v6+), through the controller.

use std::sync::Arc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::info;
use uuid::Uuid;
use vltava_meta::TopicRef;

use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{self, ConnectionError};

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DeleteTopicsRequest,
) -> Result<Reply, ConnectionError> {
    let refs: Vec<TopicRef> = if ctx.api_version >= 6 {
        request
            .topics
            .iter()
            .map(|t| match &t.name {
                Some(name) => TopicRef::Name(name.to_string()),
                None => TopicRef::Id(t.topic_id),
            })
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| TopicRef::Name(n.to_string()))
            .collect()
    };
    let mut response = DeleteTopicsResponse::default();
    if !broker.config.topics.delete_topic_enable {
        for r in &refs {
            response
                .responses
                .push(result(ctx, r, None, error::TOPIC_DELETION_DISABLED, None));
        }
        return ctx.reply(&response);
    }
    let results = broker.quorum.delete_topics(refs.clone()).await;
    for (r, outcome) in refs.iter().zip(results) {
        response.responses.push(match outcome {
            Ok((name, id)) => {
                info!("topic {name} deleted");
                result(ctx, r, Some((name, id)), error::NONE, None)
            }
            Err(e) => result(
                ctx,
                r,
                None,
                error::controller_error_code(&e),
                Some(e.message()),
            ),
        });
    }
    broker.sync_replicas().await;
    ctx.reply(&response)
}

fn result(
    ctx: &RequestContext,
    requested: &TopicRef,
    deleted: Option<(String, Uuid)>,
    error_code: i16,
    message: Option<String>,
) -> DeletableTopicResult {
    let (name, id) = match (deleted, requested) {
        (Some((name, id)), _) => (Some(name), id),
        (None, TopicRef::Name(name)) => (Some(name.clone()), Uuid::nil()),
        (None, TopicRef::Id(id)) => (None, *id),
    };
    let mut r = DeletableTopicResult::default()
        .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
        .with_error_code(error_code);
    if ctx.api_version >= 6 {
        r.topic_id = id;
        r.error_message = message.map(StrBytes::from_string);
    }
    r
}
