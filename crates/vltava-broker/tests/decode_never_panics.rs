//! Request decoding never panics and never allocates from a length it has not checked: the
//! frame check, the header and the body of every implemented API, fed arbitrary bytes and
//! mutations of valid requests. (The fuzz/ targets run the same path under libFuzzer.)
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use proptest::prelude::*;
use vltava_broker::handlers::{decode_only, supported, ROUTES};
use vltava_broker::wire::{check_frame, decode_request_header};

/// What the connection does with one frame body, minus the handler.
fn decode_frame(frame: &[u8]) {
    let mut body = Bytes::copy_from_slice(frame);
    if let Ok(header) = decode_request_header(&mut body, supported) {
        if !header.api_versions_fallback {
            let _ = decode_only(header.api_key, header.api_version, body);
        }
    }
}

fn frame_for(key: i16, version: i16, rest: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i16(key);
    b.put_i16(version);
    b.put_i32(1); // correlation id
    b.put_i16(-1); // null client id
    b.put_slice(rest);
    b.to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = check_frame(&bytes, 1 << 20);
        decode_frame(&bytes);
    }

    #[test]
    fn arbitrary_bodies_of_implemented_apis_never_panic(
        route in 0..ROUTES.len(),
        version_offset in 0i16..20,
        flexible_tag in any::<bool>(),
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let r = ROUTES[route];
        let span = r.max_version - r.min_version + 1;
        let version = r.min_version + version_offset % span;
        let mut rest = Vec::new();
        if flexible_tag {
            rest.push(0); // empty tagged fields, as a flexible header would have
        }
        rest.extend_from_slice(&body);
        decode_frame(&frame_for(r.api_key as i16, version, &rest));
    }

    #[test]
    fn huge_counts_are_rejected_not_allocated(
        route in 0..ROUTES.len(),
        count in prop_oneof![Just(i32::MAX), Just(0x3c0c00b6), 1_000_000i32..i32::MAX],
        prefix in prop::collection::vec(any::<u8>(), 0..24),
    ) {
        // A count-like i32 (and its varint form) anywhere near the start of the body.
        let r = ROUTES[route];
        for version in r.min_version..=r.max_version {
            let mut rest = prefix.clone();
            rest.extend_from_slice(&count.to_be_bytes());
            decode_frame(&frame_for(r.api_key as i16, version, &rest));
            let mut rest = prefix.clone();
            rest.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]);
            decode_frame(&frame_for(r.api_key as i16, version, &rest));
        }
    }
}

#[test]
fn metadata_with_i32_max_topics_is_a_decode_error() {
    // The 14-byte request that made the broker abort on a 150 GB allocation before the
    // vendored kafka-protocol patch.
    let frame = frame_for(ApiKey::Metadata as i16, 1, &i32::MAX.to_be_bytes());
    let mut body = Bytes::from(frame);
    let header = decode_request_header(&mut body, supported).unwrap();
    assert!(decode_only(header.api_key, header.api_version, body).is_err());
}

#[test]
fn every_route_has_a_decoder() {
    for r in ROUTES {
        let result = decode_only(r.api_key, r.max_version, Bytes::new());
        // Empty bodies are errors for most APIs, but never "unknown api key".
        if let Err(e) = result {
            assert!(
                !e.to_string().contains("unknown api key"),
                "{:?}: {e}",
                r.api_key
            );
        }
    }
}
