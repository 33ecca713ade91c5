//! Replica placement: round robin over the registered brokers.
//!
//! Partition `p` of a stripe starting at `start` gets the brokers at positions
//! `start + p, start + p + 1, ...` (mod the broker count), so leaders (the first replica) spread
//! over the brokers and no partition has the same broker twice.

use crate::error::ControllerError;

/// Kafka's `StripedReplicaPlacer` refusal when there are too few brokers.
pub fn too_few_brokers_message(replication_factor: i16, brokers: usize) -> String {
    format!(
        "The target replication factor of {replication_factor} cannot be reached because only \
         {brokers} broker(s) are registered or some brokers have all their log directories \
         cordoned."
    )
}

/// Replicas for `num_partitions` partitions with `replication_factor` replicas each, over
/// `brokers` (sorted, unique broker ids). The error message is the placer's own, without the
/// "Unable to replicate" prefix CreateTopics adds.
pub fn place(
    brokers: &[i32],
    start: usize,
    num_partitions: i32,
    replication_factor: i16,
) -> Result<Vec<Vec<i32>>, ControllerError> {
    let rf = usize::try_from(replication_factor).unwrap_or(0);
    if rf == 0 {
        return Err(ControllerError::InvalidReplicationFactor(
            "Replication factor must be larger than 0, or -1 to use the default value.".into(),
        ));
    }
    if rf > brokers.len() {
        return Err(ControllerError::InvalidReplicationFactor(
            too_few_brokers_message(replication_factor, brokers.len()),
        ));
    }
    let n = brokers.len();
    let count = usize::try_from(num_partitions).unwrap_or(0);
    let mut out = Vec::with_capacity(count.min(1024));
    for p in 0..count {
        let first = (start + p) % n;
        let replicas = (0..rf)
            .filter_map(|j| brokers.get((first + j) % n).copied())
            .collect();
        out.push(replicas);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_spreads_leaders_and_never_repeats_a_broker() {
        let placed = place(&[1, 2, 3], 0, 6, 2).expect("enough brokers");
        let leaders: Vec<i32> = placed.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        for replicas in &placed {
            assert_eq!(replicas.len(), 2);
            assert_ne!(replicas[0], replicas[1]);
        }
        assert_eq!(placed[2], vec![3, 1]);
    }

    #[test]
    fn start_offset_rotates_the_stripe() {
        let placed = place(&[1, 2, 3], 1, 2, 1).expect("ok");
        assert_eq!(placed, vec![vec![2], vec![3]]);
    }

    #[test]
    fn too_few_brokers_is_invalid_replication_factor() {
        let err = place(&[1], 0, 1, 3).expect_err("one broker");
        assert_eq!(err.kafka_error_code(), 38);
        assert_eq!(
            err.message(),
            "The target replication factor of 3 cannot be reached because only 1 broker(s) are \
             registered or some brokers have all their log directories cordoned."
        );
        assert!(place(&[], 0, 1, 1).is_err());
    }
}
