//! Version ranges: what the codec (kafka-protocol, Kafka 4.1 schemas) can decode, against what
//! the broker serves (`handlers::ROUTES`). A served range must lie inside the codec's.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use kafka_protocol::messages::ApiKey;

/// Whether kafka-protocol can decode and encode every version in `min..=max` of `api_key`.
pub fn codec_supports(api_key: ApiKey, min: i16, max: i16) -> bool {
    let codec = api_key.valid_versions();
    min <= max && codec.min <= min && max <= codec.max
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::ROUTES;

    #[test]
    fn every_served_version_is_within_the_codec() {
        for r in ROUTES {
            assert!(
                codec_supports(r.api_key, r.min_version, r.max_version),
                "{:?} {}..={} vs codec {}",
                r.api_key,
                r.min_version,
                r.max_version,
                r.api_key.valid_versions()
            );
        }
    }

    #[test]
    fn each_api_is_served_once() {
        for (i, r) in ROUTES.iter().enumerate() {
            assert!(ROUTES.iter().skip(i + 1).all(|o| o.api_key != r.api_key));
        }
    }
}
