//! Transaction coordinator keys (Kafka's names and defaults).

use super::{ConfigError, Reader};
use crate::txn::coordinator::TxnConfig;

/// The keys read here, for the known-key list.
pub const KEYS: &[&str] = &[
    "transaction.max.timeout.ms",
    "transaction.state.log.num.partitions",
    "transaction.state.log.segment.bytes",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
    "transactional.id.expiration.ms",
    "transaction.remove.expired.transaction.cleanup.interval.ms",
    "transaction.partition.verification.enable",
];

pub(super) fn parse(r: &Reader<'_>) -> Result<TxnConfig, ConfigError> {
    let d = TxnConfig::default();
    Ok(TxnConfig {
        max_timeout_ms: r.parse_at_least("transaction.max.timeout.ms", d.max_timeout_ms, 1)?,
        state_log_partitions: r.parse_at_least(
            "transaction.state.log.num.partitions",
            d.state_log_partitions,
            1,
        )?,
        state_log_segment_bytes: r.parse_at_least(
            "transaction.state.log.segment.bytes",
            d.state_log_segment_bytes,
            1024,
        )?,
        abort_check_interval_ms: r.parse_at_least(
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            d.abort_check_interval_ms,
            1,
        )?,
        id_expiration_ms: r.parse_at_least(
            "transactional.id.expiration.ms",
            d.id_expiration_ms,
            1,
        )?,
        remove_expired_interval_ms: r.parse_at_least(
            "transaction.remove.expired.transaction.cleanup.interval.ms",
            d.remove_expired_interval_ms,
            1,
        )?,
        partition_verification: r
            .parse("transaction.partition.verification.enable")?
            .unwrap_or(d.partition_verification),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{BrokerConfig, RawConfig};

    fn load(text: &str) -> BrokerConfig {
        BrokerConfig::from_raw(
            &RawConfig::from_reader(text.as_bytes(), Path::new("s.properties")).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn transaction_defaults_are_kafkas_and_keys_are_read() {
        let t = load("").transactions;
        assert_eq!(t.max_timeout_ms, 900_000);
        assert_eq!(t.state_log_partitions, 50);
        assert_eq!(t.abort_check_interval_ms, 10_000);
        assert_eq!(t.id_expiration_ms, 604_800_000);
        assert!(t.partition_verification);
        assert!(
            !load("transaction.partition.verification.enable=false\n")
                .transactions
                .partition_verification
        );
        let t = load(
            "transaction.max.timeout.ms=5000\n\
             transaction.abort.timed.out.transaction.cleanup.interval.ms=1000\n\
             transactional.id.expiration.ms=60000\n",
        )
        .transactions;
        assert_eq!(t.max_timeout_ms, 5000);
        assert_eq!(t.abort_check_interval_ms, 1000);
        assert_eq!(t.id_expiration_ms, 60_000);
    }

    #[test]
    fn a_zero_max_timeout_is_refused_naming_the_key() {
        let raw = RawConfig::from_reader(
            &b"transaction.max.timeout.ms=0\n"[..],
            Path::new("s.properties"),
        )
        .unwrap();
        let e = BrokerConfig::from_raw(&raw).unwrap_err().to_string();
        assert!(e.contains("transaction.max.timeout.ms"), "{e}");
    }
}
