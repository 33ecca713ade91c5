//! Request headers: the api key and version decide the header version; unknown keys and
//! disabled versions close the connection, except ApiVersions, which any version may ask
//! (KIP-511: the broker answers in v0 with UNSUPPORTED_VERSION and its own ranges).
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;

/// A decoded header and what the broker concluded about it.
#[derive(Debug, Clone)]
pub struct ParsedHeader {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub header: RequestHeader,
    /// ApiVersions at a version newer than ours: answer v0 + UNSUPPORTED_VERSION, skip the body.
    pub api_versions_fallback: bool,
}

/// Why a header is refused; each closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("request too short for a header ({0} bytes)")]
    TooShort(usize),
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("{api_key:?} version {version} is not enabled")]
    UnsupportedVersion { api_key: ApiKey, version: i16 },
    #[error("undecodable request header: {0}")]
    Malformed(String),
}

/// Decodes the header at the front of `frame`, leaving the body in `frame`. `supported` gives
/// the broker's version range for a key, or `None` for keys it does not implement.
pub fn decode_request_header(
    frame: &mut Bytes,
    supported: impl Fn(ApiKey) -> Option<(i16, i16)>,
) -> Result<ParsedHeader, HeaderError> {
    if frame.len() < 4 {
        return Err(HeaderError::TooShort(frame.len()));
    }
    let mut peek = frame.slice(0..4);
    let key = peek.get_i16();
    let version = peek.get_i16();
    let api_key = ApiKey::try_from(key).map_err(|_| HeaderError::UnknownApiKey(key))?;
    let (min, max) = supported(api_key).ok_or(HeaderError::UnknownApiKey(key))?;
    let mut api_versions_fallback = false;
    if version < min || version > max {
        if api_key == ApiKey::ApiVersions && version > max {
            api_versions_fallback = true;
        } else {
            return Err(HeaderError::UnsupportedVersion { api_key, version });
        }
    }
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(frame, header_version)
        .map_err(|e| HeaderError::Malformed(e.to_string()))?;
    Ok(ParsedHeader {
        api_key,
        api_version: version,
        header,
        api_versions_fallback,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn only_metadata(key: ApiKey) -> Option<(i16, i16)> {
        match key {
            ApiKey::Metadata => Some((0, 12)),
            ApiKey::ApiVersions => Some((0, 4)),
            _ => None,
        }
    }

    fn header_bytes(key: i16, version: i16) -> Bytes {
        let mut b = bytes::BytesMut::new();
        b.put_i16(key);
        b.put_i16(version);
        b.put_i32(7);
        b.put_i16(-1); // null client id
        b.freeze()
    }

    #[test]
    fn unknown_and_unimplemented_keys_are_refused() {
        let mut f = header_bytes(999, 0);
        assert_eq!(
            decode_request_header(&mut f, only_metadata).unwrap_err(),
            HeaderError::UnknownApiKey(999)
        );
        let mut f = header_bytes(0, 9);
        assert!(decode_request_header(&mut f, only_metadata).is_err());
    }

    #[test]
    fn too_new_api_versions_falls_back() {
        let mut f = header_bytes(18, 0); // v0 header layout; version checked separately
        let h = decode_request_header(&mut f, only_metadata).unwrap();
        assert!(!h.api_versions_fallback);
        let mut b = bytes::BytesMut::new();
        b.put_i16(18);
        b.put_i16(99);
        b.put_i32(7);
        b.put_i16(-1);
        b.put_u8(0); // empty tagged fields (flexible header v2)
        let mut f = b.freeze();
        let h = decode_request_header(&mut f, only_metadata).unwrap();
        assert!(h.api_versions_fallback);
        assert_eq!(h.header.correlation_id, 7);
    }

    #[test]
    fn truncated_header_is_an_error_not_a_panic() {
        for len in 0..10 {
            let mut f = header_bytes(3, 9).slice(0..len.min(10));
            let _ = decode_request_header(&mut f, only_metadata);
        }
    }
}
