//! ApiVersions (18): our ranges, straight from [`super::ROUTES`], and the features (v3+).
//!
//! Features: `transaction.version` is supported up to 2 and finalized at 2, as on a new Kafka
//! 4 cluster, so Java clients use transaction version 2 (KIP-890 part 2: EndTxn v5 bumps the
//! epoch of every transaction). Clients that do not read features (librdkafka) keep version 1;
//! the coordinator serves both, by request version.

use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{Reply, RequestContext, ROUTES};
use crate::error::{ConnectionError, INVALID_REQUEST, UNSUPPORTED_VERSION};

pub fn handle(ctx: &RequestContext, request: ApiVersionsRequest) -> Result<Reply, ConnectionError> {
    // v3+ names the client: an empty or malformed name or version is INVALID_REQUEST with no
    // keys (Kafka's ApiVersionsRequest.isValid).
    if ctx.api_version >= 3
        && !(valid_software_field(&request.client_software_name)
            && valid_software_field(&request.client_software_version))
    {
        return ctx.reply(&ApiVersionsResponse::default().with_error_code(INVALID_REQUEST));
    }
    let mut response = ApiVersionsResponse::default();
    response.api_keys = ROUTES
        .iter()
        .map(|r| {
            ApiVersion::default()
                .with_api_key(r.api_key as i16)
                .with_min_version(r.min_version)
                .with_max_version(r.max_version)
        })
        .collect();
    if ctx.api_version >= 3 {
        let name = StrBytes::from_static_str(TRANSACTION_VERSION);
        response.supported_features = vec![SupportedFeatureKey::default()
            .with_name(name.clone())
            .with_min_version(0)
            .with_max_version(TRANSACTION_VERSION_LEVEL)];
        response.finalized_features = vec![FinalizedFeatureKey::default()
            .with_name(name)
            .with_min_version_level(TRANSACTION_VERSION_LEVEL)
            .with_max_version_level(TRANSACTION_VERSION_LEVEL)];
        // The finalized features never change, so their epoch does not either (clients take
        // features only from an epoch above the last one they saw, which starts at -1).
        response.finalized_features_epoch = 0;
    } else {
        response.finalized_features_epoch = -1;
    }
    ctx.reply(&response)
}

/// The feature that selects the transaction protocol (KIP-890), and the level we finalize.
const TRANSACTION_VERSION: &str = "transaction.version";
const TRANSACTION_VERSION_LEVEL: i16 = 2;

/// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`, Kafka's pattern for client software fields.
fn valid_software_field(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.')
}

/// KIP-511: a client asked with a newer ApiVersions than ours. Kafka answers in v0 with
/// UNSUPPORTED_VERSION and its ApiVersions range so the client retries at a version we know
/// (`ApiVersionsRequest.getErrorResponse`).
pub fn unsupported_version(ctx: &RequestContext) -> Result<Reply, ConnectionError> {
    let (min, max) = super::supported(ApiKey::ApiVersions).unwrap_or((0, 0));
    let mut response = ApiVersionsResponse::default().with_error_code(UNSUPPORTED_VERSION);
    response.api_keys = vec![ApiVersion::default()
        .with_api_key(ApiKey::ApiVersions as i16)
        .with_min_version(min)
        .with_max_version(max)];
    let v0 = RequestContext {
        api_version: 0,
        ..ctx.clone()
    };
    v0.reply(&response)
}
