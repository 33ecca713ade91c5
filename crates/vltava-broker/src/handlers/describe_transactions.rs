//! DescribeTransactions (65): state, producer id and epoch, timeout, start time and partitions
//! of each transactional id this broker coordinates.

use std::sync::Arc;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};

use super::group_common::{check_len, later, text};
use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::ConnectionError;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DescribeTransactionsRequest,
) -> Result<Reply, ConnectionError> {
    let ids: Vec<String> = request
        .transactional_ids
        .iter()
        .map(|id| id.to_string())
        .collect();
    for id in &ids {
        check_len(ctx, "transactionalIds", id)?;
    }
    let broker = broker.clone();
    Ok(later(ctx, async move {
        let mut response = DescribeTransactionsResponse::default();
        for id in ids {
            let mut state = TransactionState::default()
                .with_transactional_id(text(id.clone()).into())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            match broker.txns.describe(&broker, &id).await {
                Ok(d) => {
                    state.transaction_state = text(d.state.name());
                    state.transaction_timeout_ms = d.timeout_ms;
                    state.transaction_start_time_ms = d.start_timestamp_ms;
                    state.producer_id = ProducerId(d.producer_id);
                    state.producer_epoch = d.producer_epoch;
                    let mut topics: Vec<TopicData> = Vec::new();
                    for (topic, partition) in d.partitions {
                        match topics.last_mut() {
                            Some(last) if *last.topic == *topic.as_str() => {
                                last.partitions.push(partition)
                            }
                            _ => topics.push(
                                TopicData::default()
                                    .with_topic(TopicName(text(topic)))
                                    .with_partitions(vec![partition]),
                            ),
                        }
                    }
                    state.topics = topics;
                }
                Err(e) => state.error_code = e.code(),
            }
            response.transaction_states.push(state);
        }
        response
    }))
}
