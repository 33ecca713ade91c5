//! Steps every group API shares: answer later from a spawned task (a JoinGroup may wait for a
//! whole rebalance; the connection keeps reading meanwhile), refuse oversized strings the way
//! Kafka's decoders do, and turn group errors into codes.

use std::future::Future;

use kafka_protocol::protocol::{Encodable, StrBytes};

use super::{Reply, RequestContext};
use crate::error::{self, ConnectionError};
use crate::group::GroupError;

/// Runs `body` on its own task and answers with what it returns.
pub(super) fn later<F, R>(ctx: &RequestContext, body: F) -> Reply
where
    F: Future<Output = R> + Send + 'static,
    R: Encodable + Send + 'static,
{
    let ctx = ctx.clone();
    Reply::Later(tokio::spawn(async move {
        let response = body.await;
        ctx.respond(&response)
    }))
}

/// Kafka's generated decoders refuse any string longer than `i16::MAX` bytes, even in the
/// compact (varint-length) encoding, and close the connection ("string field … had invalid
/// length"). A 100 KB group id gets the same here.
/// The member identity every group request carries, checked as Kafka's decoders do.
pub(super) fn check_member_identity(
    ctx: &RequestContext,
    group_id: &str,
    member_id: &str,
    group_instance_id: Option<&str>,
) -> Result<(), ConnectionError> {
    check_len(ctx, "groupId", group_id)?;
    check_len(ctx, "memberId", member_id)?;
    if let Some(instance) = group_instance_id {
        check_len(ctx, "groupInstanceId", instance)?;
    }
    Ok(())
}

pub(super) fn check_len(
    ctx: &RequestContext,
    field: &str,
    value: &str,
) -> Result<(), ConnectionError> {
    if value.len() > i16::MAX as usize {
        return Err(ConnectionError::Decode {
            api_key: ctx.api_key,
            version: ctx.api_version,
            message: format!("string field {field} had invalid length {}", value.len()),
        });
    }
    Ok(())
}

pub(super) fn code(e: &GroupError) -> i16 {
    error::group_error_code(e)
}

pub(super) fn code_of<T>(r: &Result<T, GroupError>) -> i16 {
    r.as_ref().err().map_or(error::NONE, code)
}

pub(super) fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub(super) fn opt_text(s: Option<impl Into<String>>) -> Option<StrBytes> {
    s.map(text)
}
