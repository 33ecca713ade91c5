//! TEMPORARY stand-ins for eos's `txn::producer_ids` and `txn::markers`, until they land.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::broker::Broker;

#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub commit: bool,
    pub partitions: Vec<(String, i32)>,
}

static NEXT: AtomicI64 = AtomicI64::new(1000);

pub async fn allocate_producer_id(_broker: &Arc<Broker>) -> Result<i64, i16> {
    Ok(NEXT.fetch_add(1, Ordering::Relaxed))
}

pub async fn write_txn_markers(
    _broker: &Arc<Broker>,
    marker: TxnMarker,
) -> Vec<(String, i32, i16)> {
    marker
        .partitions
        .into_iter()
        .map(|(t, p)| (t, p, 0))
        .collect()
}
