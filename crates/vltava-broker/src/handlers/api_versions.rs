//! ApiVersions (18): our ranges, straight from [`super::ROUTES`].

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

use super::{Reply, RequestContext, ROUTES};
use crate::error::{ConnectionError, UNSUPPORTED_VERSION};

pub fn handle(
    ctx: &RequestContext,
    _request: ApiVersionsRequest,
) -> Result<Reply, ConnectionError> {
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
    response.finalized_features_epoch = -1;
    ctx.reply(&response)
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
