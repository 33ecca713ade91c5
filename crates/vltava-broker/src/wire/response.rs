//! Response frames: size, response header (v0 or flexible v1, by api and version), body.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Encodable;
use vltava_log::FileRange;

/// One piece of a response on the wire: bytes we built, or a range of a segment file that is
/// sent with `sendfile` (plaintext) without passing through user space.
#[derive(Debug, Clone)]
pub enum Part {
    Bytes(Bytes),
    File(FileRange),
}

/// A whole response frame as a sequence of parts (usually one).
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    pub parts: Vec<Part>,
}

impl Outgoing {
    pub fn bytes(b: Bytes) -> Outgoing {
        Outgoing {
            parts: vec![Part::Bytes(b)],
        }
    }

    /// Total bytes on the wire, size prefix included.
    pub fn len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Bytes(b) => b.len(),
                Part::File(range) => range.length as usize,
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Encoding a response failed: a bug in what we built (a field not valid at this version),
/// never the client's fault. The connection is closed and the error logged.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {api_key:?} v{version} response: {message}")]
pub struct EncodeError {
    pub api_key: ApiKey,
    pub version: i16,
    pub message: String,
}

/// Encodes `size + header + body` for `api_key` at `version`.
pub fn encode_response<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<Bytes, EncodeError> {
    let err = |e: String| EncodeError {
        api_key,
        version,
        message: e,
    };
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_size = header
        .compute_size(header_version)
        .map_err(|e| err(e.to_string()))?;
    let body_size = body.compute_size(version).map_err(|e| err(e.to_string()))?;
    let total = header_size + body_size;
    let size = i32::try_from(total).map_err(|_| err(format!("{total} bytes is too large")))?;
    let mut buf = BytesMut::with_capacity(4 + total);
    buf.put_i32(size);
    header
        .encode(&mut buf, header_version)
        .map_err(|e| err(e.to_string()))?;
    body.encode(&mut buf, version)
        .map_err(|e| err(e.to_string()))?;
    Ok(buf.freeze())
}
