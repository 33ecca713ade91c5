//! SaslHandshake (17) on a PLAINTEXT listener: no mechanism is enabled, so Kafka answers
//! ILLEGAL_SASL_STATE (34) with an empty mechanism list and keeps the connection open
//! (shared/reference/kafka-bad-input.md §4.1; the differential case
//! `bad_input/sasl_handshake_on_plaintext` compares it with Kafka 4.4).

use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::ResponseError;

use super::{Reply, RequestContext};
use crate::error::ConnectionError;

pub fn handle(
    ctx: &RequestContext,
    _request: SaslHandshakeRequest,
) -> Result<Reply, ConnectionError> {
    ctx.reply(
        &SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code()),
    )
}
