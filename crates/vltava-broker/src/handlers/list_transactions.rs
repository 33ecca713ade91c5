//! ListTransactions (66), v0–v1: the transactional ids this broker coordinates, filtered by
//! state, producer id and (v1, KIP-994) minimum running time. v2's id pattern is not served.

use std::sync::Arc;

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse, ProducerId};

use super::group_common::{later, text};
use super::{Reply, RequestContext};
use crate::broker::Broker;
use crate::error::ConnectionError;
use crate::txn::coordinator::state::TxnState;

pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: ListTransactionsRequest,
) -> Result<Reply, ConnectionError> {
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for name in &request.state_filters {
        match TxnState::from_name(name) {
            Some(s) => states.push(s),
            None => unknown.push(name.clone()),
        }
    }
    let producer_ids: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let duration = if ctx.api_version >= 1 {
        request.duration_filter
    } else {
        -1
    };
    let broker = broker.clone();
    Ok(later(ctx, async move {
        let mut response = ListTransactionsResponse::default().with_unknown_state_filters(unknown);
        // Only known states filter; a request naming nothing but unknown states lists nothing.
        if states.is_empty() && !request.state_filters.is_empty() {
            return response;
        }
        response.transaction_states = broker
            .txns
            .list(&broker, &states, &producer_ids, duration)
            .await
            .into_iter()
            .map(|d| {
                TransactionState::default()
                    .with_transactional_id(text(d.transactional_id).into())
                    .with_producer_id(ProducerId(d.producer_id))
                    .with_transaction_state(text(d.state.name()))
            })
            .collect();
        response
    }))
}
