//! InitProducerId (22): a producer id and epoch for an idempotent or transactional producer.
//!
//! Without a transactional id (idempotent producers) Kafka "blindly accepts" the request and
//! hands out a new producer id at epoch 0, also when the client names its current id and epoch
//! to bump (KIP-360): a fresh id serves the same purpose. A transactional id goes to the
//! transaction coordinator ([`crate::txn::coordinator::init_producer_id`]).

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{self, ConnectionError};
use crate::txn::producer_ids::allocate_producer_id;

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: InitProducerIdRequest,
) -> Result<Reply, ConnectionError> {
    let result = init(broker, ctx, &request).await;
    let (producer_id, producer_epoch, error_code) = match result {
        Ok((id, epoch)) => (id, epoch, error::NONE),
        Err(code) => (-1, -1, code),
    };
    let response = InitProducerIdResponse::default()
        .with_error_code(error_code)
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch)
        .with_ongoing_txn_producer_id(ProducerId(-1))
        .with_ongoing_txn_producer_epoch(-1);
    ctx.reply(&response)
}

async fn init(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: &InitProducerIdRequest,
) -> Result<(i64, i16), i16> {
    // KafkaApis.handleInitProducerIdRequest: an id without an epoch (or the reverse) is invalid.
    let expected = match (request.producer_id.0, request.producer_epoch) {
        (-1, -1) => None,
        (-1, _) | (_, -1) => return Err(error::INVALID_REQUEST),
        (id, epoch) => Some((id, epoch)),
    };
    match request.transactional_id.as_deref() {
        None => allocate_producer_id(broker).await.map(|id| (id, 0)),
        Some(transactional_id) => {
            let result = crate::txn::coordinator::init_producer_id(
                broker,
                transactional_id,
                request.transaction_timeout_ms,
                expected,
            )
            .await;
            // KIP-588: PRODUCER_FENCED is new in v4; older clients know INVALID_PRODUCER_EPOCH.
            match result {
                Err(error::PRODUCER_FENCED) if ctx.api_version < 4 => {
                    Err(error::INVALID_PRODUCER_EPOCH)
                }
                other => other,
            }
        }
    }
}
