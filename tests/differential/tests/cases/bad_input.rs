//! Framing and request-header rows of shared/reference/kafka-bad-input.md §4.1.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::*;
use vltava_differential::{Conn, Ctx, Reply, Result};

use super::{case, s, Case};

pub static CASES: &[Case] = &[
    case!("bad_input/negative_size", negative_size),
    case!("bad_input/size_over_socket_request_max_bytes", oversized),
    case!("bad_input/unknown_api_key", unknown_api_key),
    case!("bad_input/unsupported_version", unsupported_version),
    case!("bad_input/api_versions_too_new", api_versions_too_new),
    case!("bad_input/undecodable_body", undecodable_body),
    case!("bad_input/array_length_beyond_frame", array_beyond_frame),
    case!("bad_input/string_length_beyond_frame", string_beyond_frame),
    case!(
        "bad_input/client_id_length_beyond_frame",
        client_id_beyond_frame
    ),
    case!("bad_input/negative_string_length", negative_string_length),
    case!(
        "bad_input/negative_nullable_array_length",
        negative_nullable_array_length
    ),
    case!("bad_input/varint_too_long", varint_too_long),
    case!("bad_input/pipelined_in_order", pipelined),
    case!("bad_input/sasl_handshake_on_plaintext", sasl_on_plaintext),
    case!(
        "bad_input/api_versions_empty_software_name",
        api_versions_empty_name
    ),
];

/// A request header (v1: key, version, correlation id, client id; v2 adds empty tags).
fn header(key: i16, version: i16, flexible: bool) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i16(key);
    b.put_i16(version);
    b.put_i32(7);
    let client = b"differential";
    b.put_i16(client.len() as i16);
    b.put_slice(client);
    if flexible {
        b.put_u8(0);
    }
    b
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

fn record_close(ctx: &mut Ctx, conn: &mut Conn) -> Result<()> {
    let closed = conn.closes_within(Duration::from_secs(2))?;
    ctx.record(
        "outcome",
        if closed {
            "connection closed"
        } else {
            "connection still open after 2 s"
        }
        .to_string(),
    );
    Ok(())
}

fn negative_size(ctx: &mut Ctx) -> Result<()> {
    let mut conn = ctx.conn()?;
    conn.send_raw(&(-1i32).to_be_bytes())?;
    conn.send_raw(&[0; 16])?;
    record_close(ctx, &mut conn)
}

fn oversized(ctx: &mut Ctx) -> Result<()> {
    let mut conn = ctx.conn()?;
    // 200 MiB declared, over socket.request.max.bytes (100 MiB); only a header follows.
    conn.send_raw(&(200i32 << 20).to_be_bytes())?;
    conn.send_raw(&header(ApiKey::Metadata as i16, 4, false))?;
    record_close(ctx, &mut conn)
}

fn unknown_api_key(ctx: &mut Ctx) -> Result<()> {
    let mut conn = ctx.conn()?;
    conn.send_raw(&framed(&header(32_000, 0, false)))?;
    record_close(ctx, &mut conn)
}

fn unsupported_version(ctx: &mut Ctx) -> Result<()> {
    let mut conn = ctx.conn()?;
    let mut body = header(ApiKey::Metadata as i16, 99, true);
    body.put_slice(&[0, 0, 0, 0]);
    conn.send_raw(&framed(&body))?;
    record_close(ctx, &mut conn)
}

fn api_versions_too_new(ctx: &mut Ctx) -> Result<()> {
    let mut conn = ctx.conn()?;
    let mut body = header(ApiKey::ApiVersions as i16, 99, true);
    // A v3-shaped body: compact client software name and version, empty tags.
    body.put_u8(5);
    body.put_slice(b"diff");
    body.put_u8(4);
    body.put_slice(b"0.1");
    body.put_u8(0);
    conn.send_raw(&framed(&body))?;
    // Answered in v0 format (KIP-511).
    // Ranges are compared by api_versions/ranges; here the error and which keys are listed.
    let outcome = match conn.recv::<ApiVersionsRequest>(0)? {
        Reply::Response(r) => format!(
            "error_code {}, keys {:?}",
            r.error_code,
            r.api_keys.iter().map(|k| k.api_key).collect::<Vec<_>>()
        ),
        Reply::Closed => "connection closed".to_string(),
    };
    ctx.record("response_v0", outcome);
    // And the connection stays usable for a retry at a supported version.
    let retry = conn.call(
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(s("diff"))
            .with_client_software_version(s("0.1")),
    )?;
    let ok = match retry {
        Reply::Response(r) => format!("error_code {}", r.error_code),
        Reply::Closed => "connection closed".to_string(),
    };
    ctx.record("retry_v3", ok);
    Ok(())
}

fn undecodable_body(ctx: &mut Ctx) -> Result<()> {
    let mut conn = ctx.conn()?;
    let v = ctx.v(ApiKey::CreateTopics);
    let mut body = header(ApiKey::CreateTopics as i16, v, v >= 5);
    // Too short for the topics array plus timeout_ms at any version.
    body.put_slice(&[0, 0, 0]);
    conn.send_raw(&framed(&body))?;
    record_close(ctx, &mut conn)
}

fn array_beyond_frame(ctx: &mut Ctx) -> Result<()> {
    let mut conn = ctx.conn()?;
    let v = ctx.v(ApiKey::Metadata);
    let mut body = header(ApiKey::Metadata as i16, v, v >= 9);
    if v >= 9 {
        // Compact array of 1,000,000 topics (varint n+1), then nothing.
        let mut n: u32 = 1_000_001;
        while n >= 0x80 {
            body.put_u8((n as u8) | 0x80);
            n >>= 7;
        }
        body.put_u8(n as u8);
    } else {
        body.put_i32(1_000_000);
    }
    conn.send_raw(&framed(&body))?;
    record_close(ctx, &mut conn)
}

/// A Metadata v4 (non-flexible) request whose one topic name declares more bytes than follow.
fn string_beyond_frame(ctx: &mut Ctx) -> Result<()> {
    let mut conn = ctx.conn()?;
    let mut body = header(ApiKey::Metadata as i16, 4, false);
    body.put_i32(1); // one topic
    body.put_i16(30_000); // name length
    body.put_slice(b"short");
    conn.send_raw(&framed(&body))?;
    record_close(ctx, &mut conn)
}

/// The request header's client id declares more bytes than the frame holds.
fn client_id_beyond_frame(ctx: &mut Ctx) -> Result<()> {
    let mut conn = ctx.conn()?;
    let mut body = BytesMut::new();
    body.put_i16(ApiKey::Metadata as i16);
    body.put_i16(4);
    body.put_i32(7);
    body.put_i16(1_000);
    body.put_slice(b"abc");
    conn.send_raw(&framed(&body))?;
    record_close(ctx, &mut conn)
}

/// A non-nullable string (CreateTopics v4 topic name) with a negative length other than -1.
fn negative_string_length(ctx: &mut Ctx) -> Result<()> {
    let mut conn = ctx.conn()?;
    let mut body = header(ApiKey::CreateTopics as i16, 4, false);
    body.put_i32(1); // one topic
    body.put_i16(-3); // name length
    body.put_i32(1); // partitions
    body.put_i16(1); // replication factor
    body.put_i32(0); // assignments
    body.put_i32(0); // configs
    body.put_i32(1000); // timeout
    body.put_u8(0); // validate_only
    conn.send_raw(&framed(&body))?;
    record_close(ctx, &mut conn)
}

/// Metadata v4's topics array is nullable (-1: all topics); -5 is neither null nor a length.
fn negative_nullable_array_length(ctx: &mut Ctx) -> Result<()> {
    let mut conn = ctx.conn()?;
    let mut body = header(ApiKey::Metadata as i16, 4, false);
    body.put_i32(-5);
    body.put_u8(0); // allow_auto_topic_creation
    conn.send_raw(&framed(&body))?;
    let outcome = match conn.recv::<MetadataRequest>(4)? {
        Reply::Response(r) => format!(
            "answered: error-free brokers {}, topics listed {}",
            !r.brokers.is_empty(),
            r.topics.iter().all(|t| t.error_code == 0)
        ),
        Reply::Closed => "connection closed".to_string(),
    };
    ctx.record("outcome", outcome);
    Ok(())
}

/// A flexible request (Metadata v12) whose compact array length is a six-byte varint.
fn varint_too_long(ctx: &mut Ctx) -> Result<()> {
    let mut conn = ctx.conn()?;
    let v = ctx.v(ApiKey::Metadata);
    if v < 9 {
        ctx.record("outcome", "no flexible Metadata version".to_string());
        return Ok(());
    }
    let mut body = header(ApiKey::Metadata as i16, v, true);
    body.put_slice(&[0x81, 0x80, 0x80, 0x80, 0x80, 0x00]);
    body.put_slice(&[0, 0, 0]);
    conn.send_raw(&framed(&body))?;
    record_close(ctx, &mut conn)
}

fn pipelined(ctx: &mut Ctx) -> Result<()> {
    let mut conn = ctx.conn()?;
    let mut all = Vec::new();
    all.extend_from_slice(&conn.frame(3, &ApiVersionsRequest::default())?);
    all.extend_from_slice(&conn.frame(ctx.v(ApiKey::Metadata), &MetadataRequest::default())?);
    all.extend_from_slice(&conn.frame(0, &ApiVersionsRequest::default())?);
    all.extend_from_slice(&conn.frame(ctx.v(ApiKey::Metadata), &MetadataRequest::default())?);
    conn.send_raw(&all)?;
    let mut order = Vec::new();
    for _ in 0..4 {
        match conn.read_frame()? {
            Some(f) if f.len() >= 4 => order.push(i32::from_be_bytes([f[0], f[1], f[2], f[3]])),
            Some(_) => order.push(-1),
            None => break,
        }
    }
    ctx.record("correlation_ids", format!("{order:?}"));
    Ok(())
}

fn sasl_on_plaintext(ctx: &mut Ctx) -> Result<()> {
    for mechanism in ["PLAIN", "NO-SUCH-MECHANISM"] {
        let mut conn = ctx.conn()?;
        let req = SaslHandshakeRequest::default().with_mechanism(s(mechanism));
        ctx.step_at(&mut conn, mechanism, 1, &req)?;
        // Whether the connection stays open afterwards.
        record_close(ctx, &mut conn)?;
    }
    Ok(())
}

/// ApiVersions v3+ requires a client software name and version (KIP-511 validation).
fn api_versions_empty_name(ctx: &mut Ctx) -> Result<()> {
    let mut conn = ctx.conn()?;
    let reply = conn.call(3, &ApiVersionsRequest::default())?;
    let outcome = match reply {
        Reply::Response(r) => format!("error_code {}", r.error_code),
        Reply::Closed => "connection closed".to_string(),
    };
    ctx.record("empty_name", outcome);
    Ok(())
}
