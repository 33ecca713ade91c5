//! The Kafka wire format: size-prefixed frames, request headers, response encoding, and the
//! zero-copy fetch response. Everything here reads bytes from the network, so nothing here
//! indexes or unwraps: every length is checked against what is really there.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

pub mod fetch_zero_copy;
pub mod frame;
pub mod header;
pub mod response;
pub mod versions;

pub use frame::{check_frame, FrameError};
pub use header::{decode_request_header, HeaderError, ParsedHeader};
pub use response::{encode_response, Outgoing, Part};
