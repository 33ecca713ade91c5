//! Producer ids for InitProducerId: each broker takes blocks of 1000 ids from the controller
//! (through the metadata log, KIP-730) and hands them out one by one, so ids are unique across
//! the cluster and never reused after a restart (an unused rest of a block is skipped).

use std::sync::Arc;

use crate::broker::Broker;
use crate::error;

/// The block this broker is handing ids out of.
#[derive(Debug, Default)]
pub struct ProducerIdManager {
    /// `(next id, end of block)`; empty until the first request. An async mutex: the first
    /// caller fetches a new block while the others wait for it instead of fetching their own.
    block: tokio::sync::Mutex<Option<(i64, i64)>>,
}

impl ProducerIdManager {
    pub fn new() -> ProducerIdManager {
        ProducerIdManager::default()
    }
}

/// A fresh producer id, or the Kafka error code for why none can be had now
/// (COORDINATOR_LOAD_IN_PROGRESS-like retriable NOT_CONTROLLER situations map to
/// COORDINATOR_NOT_AVAILABLE, which producers retry).
pub async fn allocate_producer_id(broker: &Arc<Broker>) -> Result<i64, i16> {
    let mut block = broker.producer_ids.block.lock().await;
    if let Some((next, end)) = block.as_mut() {
        if *next < *end {
            let id = *next;
            *next += 1;
            return Ok(id);
        }
    }
    let claimed = broker
        .quorum
        .allocate_producer_ids(broker.node_id())
        .await
        .map_err(|e| {
            tracing::warn!("allocating a block of producer ids failed: {e}");
            error::COORDINATOR_NOT_AVAILABLE
        })?;
    let first = claimed.first_id;
    *block = Some((first + 1, first + i64::from(claimed.size)));
    tracing::info!(
        first_id = first,
        size = claimed.size,
        "claimed a block of producer ids"
    );
    Ok(first)
}
