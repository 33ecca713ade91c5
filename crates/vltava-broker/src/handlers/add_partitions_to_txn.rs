//! AddPartitionsToTxn (24), v0–v3: a transactional producer names the partitions it is about
//! to write. Partitions that do not exist fail the request (UNKNOWN_TOPIC_OR_PARTITION for
//! them, OPERATION_NOT_ATTEMPTED for the rest, as Kafka answers); otherwise the transaction
//! coordinator adds them all or none. v4+ (broker-to-broker verification, KIP-890) is not served.

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TopicName};
use kafka_protocol::ResponseError;

use super::group_common::{check_len, later, text};
use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{self, ConnectionError};

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: AddPartitionsToTxnRequest,
) -> Result<Reply, ConnectionError> {
    let transactional_id = request.v3_and_below_transactional_id.to_string();
    check_len(ctx, "transactionalId", &transactional_id)?;
    let producer_id = request.v3_and_below_producer_id.0;
    let producer_epoch = request.v3_and_below_producer_epoch;
    let topics: Vec<(String, Vec<i32>)> = request
        .v3_and_below_topics
        .into_iter()
        .map(|t| (t.name.to_string(), t.partitions))
        .collect();
    let old_client = ctx.api_version < 2;
    let broker = broker.clone();
    Ok(later(ctx, async move {
        let image = broker.image();
        let unknown =
            |topic: &str, p: i32| image.topic(topic).and_then(|t| t.partition(p)).is_none();
        let any_unknown = topics
            .iter()
            .any(|(t, ps)| ps.iter().any(|p| unknown(t, *p)));
        // The whole request's code, unless a partition is unknown (then per partition).
        let code = if any_unknown {
            ResponseError::OperationNotAttempted.code()
        } else {
            let partitions: Vec<(String, i32)> = topics
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
                .collect();
            match broker
                .txns
                .add_partitions(
                    &broker,
                    &transactional_id,
                    producer_id,
                    producer_epoch,
                    &partitions,
                    false,
                )
                .await
            {
                Ok(()) => error::NONE,
                Err(e) => e.code_for(old_client),
            }
        };
        let codes = |topic: &str, p: i32| {
            if any_unknown && unknown(topic, p) {
                error::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                code
            }
        };
        let mut response = AddPartitionsToTxnResponse::default();
        response.results_by_topic_v3_and_below = topics
            .iter()
            .map(|(topic, partitions)| {
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(text(topic.clone())))
                    .with_results_by_partition(
                        partitions
                            .iter()
                            .map(|p| {
                                AddPartitionsToTxnPartitionResult::default()
                                    .with_partition_index(*p)
                                    .with_partition_error_code(codes(topic, *p))
                            })
                            .collect(),
                    )
            })
            .collect();
        response
    }))
}
