//! Produce and record-batch rows of shared/reference/kafka-bad-input.md §4.2, Produce error
//! paths, Fetch and ListOffsets.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::records::{Compression, TimestampType};
use uuid::Uuid;
use vltava_differential::{Ctx, Reply, Result};

use super::{batch, case, create_topic, encode, produce_ok, produce_req, records, recrc, tn, Case};

pub static CASES: &[Case] = &[
    case!("produce/invalid_acks", invalid_acks),
    case!("produce/unknown_topic_or_partition", unknown_partition),
    case!("produce/over_max_message_bytes", over_max_message_bytes),
    case!("produce/over_segment_bytes", over_segment_bytes),
    case!("produce/bad_crc", bad_crc),
    case!("produce/truncated_batch", truncated_batch),
    case!("produce/batch_length_beyond_data", batch_length_beyond_data),
    case!("produce/no_batches", no_batches),
    case!("produce/two_batches", two_batches),
    case!("produce/base_offset_not_zero", base_offset_not_zero),
    case!("produce/record_count_mismatch", record_count_mismatch),
    case!("produce/control_batch", control_batch),
    case!("produce/magic_1_message_set", magic_1),
    case!("produce/magic_3", magic_3),
    case!(
        "produce/negative_sequence_with_producer_id",
        negative_sequence
    ),
    case!("produce/compacted_topic_keyless_record", compacted_keyless),
    case!("produce/timestamp_out_of_bounds", timestamp_bounds),
    case!("produce/unknown_compression_codec", unknown_codec),
    case!("produce/corrupt_gzip_stream", corrupt_gzip),
    case!(
        "produce/compressed_record_count_mismatch",
        compressed_count_mismatch
    ),
    case!("produce/not_enough_replicas", not_enough_replicas),
    case!("produce/log_append_time", log_append_time),
    case!("fetch/out_of_range", fetch_out_of_range),
    case!("fetch/unknown_topic_id", fetch_unknown_topic_id),
    case!("fetch/isolation_levels", fetch_isolation_levels),
    case!("list_offsets/special_and_timestamps", list_offsets),
];

/// A fresh one-partition topic with `configs`; returns (name, id).
fn fresh(ctx: &Ctx, base: &str, configs: &[(&str, &str)]) -> Result<(String, Uuid)> {
    let name = ctx.topic(base);
    let id = create_topic(ctx, &name, 1, configs)?;
    Ok((name, id))
}

/// Produces `records` to partition 0 of a fresh topic (acks -1), records the answer, then
/// what a fetch from offset 0 returns (so an accepted batch is seen as stored).
fn produce_case(ctx: &mut Ctx, configs: &[(&str, &str)], records: Bytes) -> Result<()> {
    let (name, id) = fresh(ctx, "p", configs)?;
    let mut conn = ctx.conn()?;
    let reply = conn.call(
        ctx.v(ApiKey::Produce),
        &produce_req(&name, id, 0, records, -1),
    )?;
    // The error code on its own as well, so that a listed difference elsewhere in the
    // answer cannot hide a change of code.
    let code = match &reply {
        Reply::Response(r) => format!(
            "{:?}",
            r.responses
                .iter()
                .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))
                .collect::<Vec<_>>()
        ),
        Reply::Closed => "closed".to_string(),
    };
    ctx.record("error_code", code);
    ctx.record_reply("produce", reply);
    ctx.step(&mut conn, "fetch_after", &fetch_req(&name, id, 0, 0, 0))?;
    // The connection stays usable after a per-partition error.
    ctx.step(
        &mut conn,
        "metadata_after",
        &super::metadata_req(&[&name], false),
    )
}

fn invalid_acks(ctx: &mut Ctx) -> Result<()> {
    let (name, id) = fresh(ctx, "acks", &[])?;
    let mut conn = ctx.conn()?;
    for acks in [2, -2, 5] {
        let req = produce_req(&name, id, 0, batch(1000, &["a"])?, acks);
        ctx.step(&mut conn, &format!("acks_{acks}"), &req)?;
    }
    ctx.step(&mut conn, "fetch_after", &fetch_req(&name, id, 0, 0, 0))
}

fn unknown_partition(ctx: &mut Ctx) -> Result<()> {
    let (name, id) = fresh(ctx, "unknown-part", &[])?;
    let mut conn = ctx.conn()?;
    ctx.step(
        &mut conn,
        "partition_5",
        &produce_req(&name, id, 5, batch(1000, &["a"])?, -1),
    )?;
    ctx.step(
        &mut conn,
        "partition_minus_1",
        &produce_req(&name, id, -1, batch(1000, &["a"])?, -1),
    )?;
    let missing = ctx.topic("no-such-topic");
    let fake_id = Uuid::from_u128(0xabcdef);
    ctx.step(
        &mut conn,
        "unknown_topic",
        &produce_req(&missing, fake_id, 0, batch(1000, &["a"])?, -1),
    )?;
    ctx.step(
        &mut conn,
        "unknown_topic_acks_1",
        &produce_req(&missing, fake_id, 0, batch(1000, &["a"])?, 1),
    )
}

fn over_max_message_bytes(ctx: &mut Ctx) -> Result<()> {
    let big = "x".repeat(2000);
    produce_case(ctx, &[("max.message.bytes", "1000")], batch(1000, &[&big])?)
}

fn over_segment_bytes(ctx: &mut Ctx) -> Result<()> {
    let big = "x".repeat(1_200_000);
    produce_case(
        ctx,
        &[
            ("segment.bytes", "1048576"),
            ("max.message.bytes", "2000000"),
        ],
        batch(1000, &[&big])?,
    )
}

fn bad_crc(ctx: &mut Ctx) -> Result<()> {
    let mut b = BytesMut::from(&batch(1000, &["a", "b"])?[..]);
    b[17] ^= 0xff;
    produce_case(ctx, &[], b.freeze())
}

fn truncated_batch(ctx: &mut Ctx) -> Result<()> {
    let b = batch(1000, &["a", "b"])?;
    produce_case(ctx, &[], b.slice(..b.len() - 5))
}

fn batch_length_beyond_data(ctx: &mut Ctx) -> Result<()> {
    let mut b = BytesMut::from(&batch(1000, &["a", "b"])?[..]);
    let len = i32::from_be_bytes([b[8], b[9], b[10], b[11]]) + 100;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    produce_case(ctx, &[], b.freeze())
}

fn no_batches(ctx: &mut Ctx) -> Result<()> {
    produce_case(ctx, &[], Bytes::new())
}

fn two_batches(ctx: &mut Ctx) -> Result<()> {
    let mut b = BytesMut::from(&batch(1000, &["a"])?[..]);
    b.extend_from_slice(&batch(1001, &["b"])?);
    produce_case(ctx, &[], b.freeze())?;
    let mut g = BytesMut::from(&encode(&records(1000, &["a"]), 2, Compression::Gzip)?[..]);
    g.extend_from_slice(&encode(&records(1001, &["b"]), 2, Compression::Gzip)?);
    let (name, id) = fresh(ctx, "two-gzip", &[])?;
    let mut conn = ctx.conn()?;
    ctx.step(
        &mut conn,
        "gzip_produce",
        &produce_req(&name, id, 0, g.freeze(), -1),
    )
}

fn base_offset_not_zero(ctx: &mut Ctx) -> Result<()> {
    let mut b = BytesMut::from(&batch(1000, &["a", "b"])?[..]);
    b[0..8].copy_from_slice(&5i64.to_be_bytes());
    produce_case(ctx, &[], b.freeze())
}

fn record_count_mismatch(ctx: &mut Ctx) -> Result<()> {
    let mut b = BytesMut::from(&batch(1000, &["a", "b"])?[..]);
    b[57..61].copy_from_slice(&3i32.to_be_bytes());
    recrc(&mut b);
    produce_case(ctx, &[], b.freeze())
}

fn control_batch(ctx: &mut Ctx) -> Result<()> {
    let mut b = BytesMut::from(&batch(1000, &["a"])?[..]);
    b[22] |= 0x20;
    recrc(&mut b);
    produce_case(ctx, &[], b.freeze())
}

/// A legacy (magic 1) message set of one message; kafka-protocol encodes only v2.
fn magic_1(ctx: &mut Ctx) -> Result<()> {
    let mut msg = vec![1u8, 0]; // magic, attributes
    msg.extend_from_slice(&1000i64.to_be_bytes());
    msg.extend_from_slice(&(-1i32).to_be_bytes()); // null key
    msg.extend_from_slice(&1i32.to_be_bytes());
    msg.push(b'a');
    let mut set = 0i64.to_be_bytes().to_vec();
    set.extend_from_slice(&((msg.len() + 4) as i32).to_be_bytes());
    set.extend_from_slice(&crc32_ieee(&msg).to_be_bytes());
    set.extend_from_slice(&msg);
    produce_case(ctx, &[], Bytes::from(set))
}

fn crc32_ieee(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn magic_3(ctx: &mut Ctx) -> Result<()> {
    let mut b = BytesMut::from(&batch(1000, &["a"])?[..]);
    b[16] = 3;
    produce_case(ctx, &[], b.freeze())
}

fn negative_sequence(ctx: &mut Ctx) -> Result<()> {
    let mut b = BytesMut::from(&batch(1000, &["a"])?[..]);
    b[43..51].copy_from_slice(&4242i64.to_be_bytes()); // producer id
    b[51..53].copy_from_slice(&0i16.to_be_bytes()); // producer epoch
    b[53..57].copy_from_slice(&(-5i32).to_be_bytes()); // base sequence
    recrc(&mut b);
    produce_case(ctx, &[], b.freeze())
}

fn compacted_keyless(ctx: &mut Ctx) -> Result<()> {
    produce_case(ctx, &[("cleanup.policy", "compact")], batch(1000, &["a"])?)
}

fn timestamp_bounds(ctx: &mut Ctx) -> Result<()> {
    let cfg = [
        ("message.timestamp.before.max.ms", "3600000"),
        ("message.timestamp.after.max.ms", "3600000"),
    ];
    produce_case(ctx, &cfg, batch(1000, &["too old"])?)?;
    let (name, id) = fresh(ctx, "ts-future", &cfg)?;
    let mut conn = ctx.conn()?;
    let future = 4_000_000_000_000; // year 2096
    ctx.step(
        &mut conn,
        "future",
        &produce_req(&name, id, 0, batch(future, &["too new"])?, -1),
    )
}

fn unknown_codec(ctx: &mut Ctx) -> Result<()> {
    let mut b = BytesMut::from(&batch(1000, &["a"])?[..]);
    b[22] = (b[22] & !0x07) | 5;
    recrc(&mut b);
    produce_case(ctx, &[], b.freeze())
}

fn corrupt_gzip(ctx: &mut Ctx) -> Result<()> {
    let mut b = BytesMut::from(&batch(1000, &["garbage that is not gzip"])?[..]);
    b[22] = (b[22] & !0x07) | 1;
    recrc(&mut b);
    produce_case(ctx, &[], b.freeze())
}

fn compressed_count_mismatch(ctx: &mut Ctx) -> Result<()> {
    let mut b = BytesMut::from(&encode(&records(1000, &["a", "b"]), 2, Compression::Gzip)?[..]);
    b[57..61].copy_from_slice(&3i32.to_be_bytes());
    recrc(&mut b);
    produce_case(ctx, &[], b.freeze())
}

fn not_enough_replicas(ctx: &mut Ctx) -> Result<()> {
    let (name, id) = fresh(ctx, "min-isr", &[("min.insync.replicas", "2")])?;
    let mut conn = ctx.conn()?;
    for acks in [-1, 1] {
        let req = produce_req(&name, id, 0, batch(1000, &["a"])?, acks);
        ctx.step(&mut conn, &format!("acks_{acks}"), &req)?;
    }
    Ok(())
}

fn log_append_time(ctx: &mut Ctx) -> Result<()> {
    let (name, id) = fresh(ctx, "lat", &[("message.timestamp.type", "LogAppendTime")])?;
    let mut conn = ctx.conn()?;
    let req = produce_req(&name, id, 0, batch(1000, &["a", "b"])?, -1);
    ctx.step(&mut conn, "produce", &req)?;
    // Fetched records carry the append time: only its type and that it is not ours matter.
    let resp = conn.must(ctx.v(ApiKey::Fetch), &fetch_req(&name, id, 0, 0, 0))?;
    let mut out = Vec::new();
    for t in &resp.responses {
        for p in &t.partitions {
            let mut buf = p.records.clone().unwrap_or_default();
            let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf)
                .map_err(|e| format!("decode: {e}"))?;
            for r in sets.iter().flat_map(|s| s.records.iter()) {
                out.push(format!(
                    "offset={} type={:?} client_ts={}",
                    r.offset,
                    r.timestamp_type,
                    r.timestamp == 1000 + r.offset
                ));
                let _ = TimestampType::LogAppend;
            }
        }
    }
    ctx.record("fetched", out.join("\n"));
    Ok(())
}

pub fn fetch_req(name: &str, id: Uuid, offset: i64, isolation: i8, max_wait: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_isolation_level(isolation)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(tn(name))
            .with_topic_id(id)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(10 << 20)])])
}

fn fetch_out_of_range(ctx: &mut Ctx) -> Result<()> {
    let (name, id) = fresh(ctx, "fetch-oor", &[])?;
    let mut conn = ctx.conn()?;
    produce_ok(ctx, &mut conn, &name, id, 1000, &["a", "b"])?;
    ctx.step(&mut conn, "offset_100", &fetch_req(&name, id, 100, 0, 0))?;
    ctx.step(&mut conn, "offset_minus_1", &fetch_req(&name, id, -1, 0, 0))?;
    ctx.step(&mut conn, "offset_at_end", &fetch_req(&name, id, 2, 0, 0))?;
    ctx.step(&mut conn, "offset_1", &fetch_req(&name, id, 1, 0, 0))
}

fn fetch_unknown_topic_id(ctx: &mut Ctx) -> Result<()> {
    let mut conn = ctx.conn()?;
    let missing = ctx.topic("fetch-missing");
    let req = fetch_req(&missing, Uuid::from_u128(0x5555), 0, 0, 0);
    ctx.step(&mut conn, "unknown", &req)
}

fn fetch_isolation_levels(ctx: &mut Ctx) -> Result<()> {
    let (name, id) = fresh(ctx, "fetch-iso", &[])?;
    let mut conn = ctx.conn()?;
    produce_ok(ctx, &mut conn, &name, id, 1000, &["a", "b"])?;
    produce_ok(ctx, &mut conn, &name, id, 2000, &["c"])?;
    ctx.step(
        &mut conn,
        "read_uncommitted",
        &fetch_req(&name, id, 0, 0, 0),
    )?;
    ctx.step(&mut conn, "read_committed", &fetch_req(&name, id, 0, 1, 0))?;
    ctx.step(
        &mut conn,
        "bad_isolation_level",
        &fetch_req(&name, id, 0, 7, 0),
    )
}

fn list_offsets(ctx: &mut Ctx) -> Result<()> {
    let (name, id) = fresh(ctx, "list-offsets", &[])?;
    let mut conn = ctx.conn()?;
    let v = ctx.v(ApiKey::ListOffsets);
    let query = |ts: i64, isolation: i8| {
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(isolation)
            .with_timeout_ms(10_000)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(tn(&name))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(ts)])])
    };
    ctx.step(&mut conn, "empty_latest", &query(-1, 0))?;
    ctx.step(&mut conn, "empty_max_timestamp", &query(-3, 0))?;
    produce_ok(ctx, &mut conn, &name, id, 1000, &["a", "b"])?;
    // Timestamps need not rise: the max is in the middle.
    produce_ok(ctx, &mut conn, &name, id, 5000, &["c"])?;
    produce_ok(ctx, &mut conn, &name, id, 3000, &["d"])?;
    for (step, ts) in [
        ("earliest", -2),
        ("latest", -1),
        ("max_timestamp", -3),
        ("earliest_local", -4),
        ("latest_tiered", -5),           // KIP-1005, v9+
        ("earliest_pending_upload", -6), // KIP-1023, v11+
        ("ts_0", 0),
        ("ts_1001", 1001),
        ("ts_1500", 1500),
        ("ts_3000", 3000),
        ("ts_9999", 9999),
        ("ts_minus_7", -7),
    ] {
        ctx.step_at(&mut conn, step, v, &query(ts, 0))?;
    }
    ctx.step_at(&mut conn, "latest_read_committed", v, &query(-1, 1))?;
    let unknown = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(tn(&ctx.topic("lo-missing")))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    ctx.step(&mut conn, "unknown_topic", &unknown)?;
    let bad_partition = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(tn(&name))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(9)
                .with_timestamp(-1)])]);
    ctx.step(&mut conn, "unknown_partition", &bad_partition)
}
