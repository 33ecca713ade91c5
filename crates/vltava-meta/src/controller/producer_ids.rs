//! Producer id blocks (KRaft's `ProducerIdControlManager`, KIP-730): each broker claims a block
//! of ids through the metadata log, so ids are unique across the cluster and never reissued
//! after a restart.

use serde::{Deserialize, Serialize};

use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::records::MetadataRecord;

/// Ids per block, as Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`.
pub const PRODUCER_ID_BLOCK_SIZE: i32 = 1000;

/// A block of producer ids owned by one broker: `first_id .. first_id + size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdBlock {
    pub first_id: i64,
    pub size: i32,
}

/// The next block for `broker_id` and the record that claims it.
pub fn allocate_producer_ids(
    image: &MetadataImage,
    broker_id: i32,
) -> Result<(ProducerIdBlock, MetadataRecord), ControllerError> {
    let first_id = image.next_producer_id().max(0);
    let next = first_id
        .checked_add(i64::from(PRODUCER_ID_BLOCK_SIZE))
        .ok_or_else(|| ControllerError::Storage("exhausted all producer ids".into()))?;
    Ok((
        ProducerIdBlock {
            first_id,
            size: PRODUCER_ID_BLOCK_SIZE,
        },
        MetadataRecord::ProducerIds {
            broker_id,
            next_producer_id: next,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::apply_batch;

    #[test]
    fn blocks_follow_each_other_and_survive_replay() {
        let image = MetadataImage::empty();
        let (a, record_a) = allocate_producer_ids(&image, 1).expect("a");
        let image = apply_batch(&image, std::slice::from_ref(&record_a)).expect("apply");
        let (b, record_b) = allocate_producer_ids(&image, 2).expect("b");
        assert_eq!(a.first_id, 0);
        assert_eq!(b.first_id, 1000);
        // A replayed older record does not move the counter back.
        let image = apply_batch(&image, &[record_b, record_a]).expect("apply");
        assert_eq!(image.next_producer_id(), 2000);
    }
}
