//! Exactly-once: InitProducerId, idempotent sequence checks (duplicate, gap), fenced epochs.

use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::*;
use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};
use vltava_differential::{wait_for, Conn, Ctx, Result};

use super::records::fetch_req;
use super::{case, create_topic, produce_req, produce_step, records, s, tn, Case};

pub static CASES: &[Case] = &[
    case!("eos/init_producer_id", init_producer_id),
    case!("eos/idempotent_sequences", idempotent_sequences),
    case!("eos/fenced_epoch", fenced_epoch),
];

fn init_req(txn: Option<&str>, timeout_ms: i32) -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(txn.map(|t| TransactionalId(s(t))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// (producer id, epoch) from an InitProducerId that must succeed.
fn init(ctx: &Ctx, conn: &mut Conn, txn: Option<&str>) -> Result<(i64, i16)> {
    let r = conn.must(ctx.v(ApiKey::InitProducerId), &init_req(txn, 60_000))?;
    if r.error_code != 0 {
        return Err(format!("InitProducerId: error {}", r.error_code));
    }
    Ok((r.producer_id.0, r.producer_epoch))
}

/// Waits until the transaction coordinator answers (Kafka creates __transaction_state first).
fn txn_coordinator_ready(ctx: &Ctx, conn: &mut Conn, txn: &str) -> Result<()> {
    let v = ctx.v(ApiKey::InitProducerId);
    wait_for(Duration::from_secs(60), || {
        let r = conn.must(v, &init_req(Some(&format!("{txn}-probe")), 60_000))?;
        Ok((r.error_code == 0).then_some(()))
    })
}

/// A batch from producer `pid`/`epoch` starting at sequence `seq`.
fn producer_batch(
    pid: i64,
    epoch: i16,
    seq: i32,
    transactional: bool,
    values: &[&str],
) -> Result<bytes::Bytes> {
    let mut recs = records(1000, values);
    for (i, r) in recs.iter_mut().enumerate() {
        r.producer_id = pid;
        r.producer_epoch = epoch;
        r.sequence = seq + i as i32;
        r.transactional = transactional;
    }
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &recs,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| format!("encode: {e}"))?;
    Ok(buf.freeze())
}

fn init_producer_id(ctx: &mut Ctx) -> Result<()> {
    let txn = ctx.topic("txn");
    let mut conn = ctx.conn()?;
    txn_coordinator_ready(ctx, &mut conn, &txn)?;
    ctx.step(&mut conn, "idempotent", &init_req(None, 60_000))?;
    ctx.step(&mut conn, "transactional", &init_req(Some(&txn), 60_000))?;
    ctx.step(
        &mut conn,
        "transactional_again",
        &init_req(Some(&txn), 60_000),
    )?;
    ctx.step(
        &mut conn,
        "timeout_over_max",
        &init_req(Some(&ctx.topic("txn-long")), 1_000_000_000),
    )?;
    ctx.step(
        &mut conn,
        "empty_transactional_id",
        &init_req(Some(""), 60_000),
    )
}

fn idempotent_sequences(ctx: &mut Ctx) -> Result<()> {
    let name = ctx.topic("idem");
    let id = create_topic(ctx, &name, 1, &[])?;
    let mut conn = ctx.conn()?;
    let (pid, epoch) = init(ctx, &mut conn, None)?;
    let produce = |seq: i32, epoch: i16, values: &[&str]| -> Result<ProduceRequest> {
        Ok(produce_req(
            &name,
            id,
            0,
            producer_batch(pid, epoch, seq, false, values)?,
            -1,
        ))
    };
    produce_step(ctx, &mut conn, "seq_0", &produce(0, epoch, &["a", "b"])?)?;
    produce_step(
        ctx,
        &mut conn,
        "duplicate_seq_0",
        &produce(0, epoch, &["a", "b"])?,
    )?;
    produce_step(ctx, &mut conn, "gap_seq_5", &produce(5, epoch, &["x"])?)?;
    produce_step(ctx, &mut conn, "seq_2", &produce(2, epoch, &["c"])?)?;
    produce_step(ctx, &mut conn, "older_seq_1", &produce(1, epoch, &["b"])?)?;
    produce_step(
        ctx,
        &mut conn,
        "future_epoch",
        &produce(0, epoch + 5, &["e"])?,
    )?;
    produce_step(
        ctx,
        &mut conn,
        "future_epoch_seq_7",
        &produce(7, epoch + 7, &["f"])?,
    )?;
    ctx.step(&mut conn, "fetch", &fetch_req(&name, id, 0, 0, 0))
}

fn fenced_epoch(ctx: &mut Ctx) -> Result<()> {
    let name = ctx.topic("fenced");
    let id = create_topic(ctx, &name, 1, &[])?;
    let txn = ctx.topic("txn");
    let mut conn = ctx.conn()?;
    txn_coordinator_ready(ctx, &mut conn, &txn)?;
    let (pid, old) = init(ctx, &mut conn, Some(&txn))?;
    let (pid2, new) = init(ctx, &mut conn, Some(&txn))?;
    ctx.record(
        "same_id_new_epoch",
        format!("{} {}", pid == pid2, new - old),
    );
    let add = |epoch: i16| {
        AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s(&txn)))
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(tn(&name))
                .with_partitions(vec![0])])
    };
    let v = ctx.v(ApiKey::AddPartitionsToTxn).min(3);
    ctx.step_at(&mut conn, "add_partitions_old_epoch", v, &add(old))?;
    ctx.step_at(&mut conn, "add_partitions", v, &add(new))?;
    let txn_produce = |epoch: i16, seq: i32| -> Result<ProduceRequest> {
        Ok(produce_req(
            &name,
            id,
            0,
            producer_batch(pid, epoch, seq, true, &["t"])?,
            -1,
        )
        .with_transactional_id(Some(TransactionalId(s(&txn)))))
    };
    // A zombie (the old epoch) writing to another partition of the same producer.
    let zombie = ctx.topic("zombie");
    let zid = create_topic(ctx, &zombie, 1, &[])?;
    let zombie_req = produce_req(
        &zombie,
        zid,
        0,
        producer_batch(pid, old, 0, true, &["z"])?,
        -1,
    )
    .with_transactional_id(Some(TransactionalId(s(&txn))));
    produce_step(ctx, &mut conn, "produce_old_epoch", &zombie_req)?;
    ctx.step(&mut conn, "produce", &txn_produce(new, 0)?)?;
    let end = |epoch: i16, committed: bool| {
        EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(&txn)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(committed)
    };
    ctx.step(&mut conn, "end_txn_old_epoch", &end(old, true))?;
    ctx.step(&mut conn, "end_txn_commit", &end(new, true))?;
    // The commit marker lands asynchronously: wait until read_committed sees the record.
    let v = ctx.v(ApiKey::Fetch);
    wait_for(Duration::from_secs(20), || {
        let r = conn.must(v, &fetch_req(&name, id, 0, 1, 0))?;
        let lso = r
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .map(|p| p.last_stable_offset)
            .unwrap_or(-1);
        Ok((lso >= 2).then_some(()))
    })?;
    ctx.step(
        &mut conn,
        "fetch_read_committed",
        &fetch_req(&name, id, 0, 1, 0),
    )?;
    ctx.step(
        &mut conn,
        "fetch_read_uncommitted",
        &fetch_req(&name, id, 0, 0, 0),
    )
}
