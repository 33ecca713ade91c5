//! A request frame body as the broker sees it: header, then the body of the named API.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use vltava_broker::handlers::{decode_only, supported};
use vltava_broker::wire::{check_frame, decode_request_header};

fuzz_target!(|data: &[u8]| {
    let _ = check_frame(data, 100 << 20);
    let mut body = Bytes::copy_from_slice(data);
    if let Ok(header) = decode_request_header(&mut body, supported) {
        if !header.api_versions_fallback {
            let _ = decode_only(header.api_key, header.api_version, body);
        }
    }
});
