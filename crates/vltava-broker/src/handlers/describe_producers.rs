//! DescribeProducers (61): the idempotent and transactional producers a partition knows
//! (KIP-664), from the log's producer state.

use std::sync::Arc;

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{self, ConnectionError};

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: DescribeProducersRequest,
) -> Result<Reply, ConnectionError> {
    let mut response = DescribeProducersResponse::default();
    for topic in &request.topics {
        let mut t = TopicResponse::default().with_name(topic.name.clone());
        for &index in &topic.partition_indexes {
            let mut p = PartitionResponse::default().with_partition_index(index);
            match broker.replicas.get(&topic.name, index).leader() {
                Err(code) => p.error_code = code,
                Ok(partition) => {
                    let mut producers = partition.log.producer_states();
                    producers.sort_by_key(|e| e.producer_id);
                    p.error_code = error::NONE;
                    p.active_producers = producers
                        .into_iter()
                        .map(|e| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(e.producer_id))
                                .with_producer_epoch(i32::from(e.epoch))
                                .with_last_sequence(e.last_seq())
                                .with_last_timestamp(e.last_timestamp)
                                .with_coordinator_epoch(e.coordinator_epoch)
                                .with_current_txn_start_offset(
                                    e.current_txn_first_offset.unwrap_or(-1),
                                )
                        })
                        .collect();
                }
            }
            t.partitions.push(p);
        }
        response.topics.push(t);
    }
    ctx.reply(&response)
}
