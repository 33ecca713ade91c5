//! Exactly-once: InitProducerId, idempotent sequence checks (duplicate, gap), fenced epochs, and
//! transaction version 2 (KIP-890: implicit partitions, an epoch bump at every EndTxn v5).

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
    case!("eos/transaction_version_2", transaction_version_2),
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

/// Waits until the transaction coordinator answers. Kafka creates __transaction_state when a
/// FindCoordinator asks for a transactional id (not on InitProducerId), so ask first, as
/// clients do; otherwise this case would depend on another having run before it.
fn txn_coordinator_ready(ctx: &Ctx, conn: &mut Conn, txn: &str) -> Result<()> {
    let find = FindCoordinatorRequest::default().with_key_type(1);
    let find = if ctx.v(ApiKey::FindCoordinator) >= 4 {
        find.with_coordinator_keys(vec![s(txn)])
    } else {
        find.with_key(s(txn))
    };
    conn.must(ctx.v(ApiKey::FindCoordinator), &find)?;
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
    // kafka-bad-input.md §4.2: an epoch older than the producer's current one.
    produce_step(ctx, &mut conn, "old_epoch", &produce(3, epoch, &["g"])?)?;
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

/// Transaction version 2 as the Java client speaks it: no AddPartitionsToTxn (Produce v12+
/// adds the partition), no AddOffsetsToTxn (TxnOffsetCommit v5 adds the offsets partition),
/// and EndTxn v5 answers with the bumped epoch the next transaction runs at; the epoch of the
/// transaction just ended is fenced, an EndTxn retry with it is answered as done.
fn transaction_version_2(ctx: &mut Ctx) -> Result<()> {
    if ctx.v(ApiKey::EndTxn) < 5 || ctx.v(ApiKey::Produce) < 12 {
        return Err("EndTxn v5 and Produce v12 are needed on both brokers".into());
    }
    let name = ctx.topic("tv2");
    let id = create_topic(ctx, &name, 1, &[])?;
    let txn = ctx.topic("txn");
    let group = ctx.topic("group");
    let mut conn = ctx.conn()?;
    txn_coordinator_ready(ctx, &mut conn, &txn)?;
    group_coordinator_ready(ctx, &mut conn, &group)?;
    let (pid, e0) = init(ctx, &mut conn, Some(&txn))?;
    let produce = |epoch: i16, seq: i32, value: &str| -> Result<ProduceRequest> {
        Ok(produce_req(
            &name,
            id,
            0,
            producer_batch(pid, epoch, seq, true, &[value])?,
            -1,
        )
        .with_transactional_id(Some(TransactionalId(s(&txn)))))
    };
    let end = |epoch: i16, committed: bool| {
        EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(&txn)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(committed)
    };
    produce_step(ctx, &mut conn, "implicit_add", &produce(e0, 0, "a")?)?;
    let offsets = |epoch: i16| {
        use kafka_protocol::messages::txn_offset_commit_request::{
            TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
        };
        TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s(&txn)))
            .with_group_id(GroupId(s(&group)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_generation_id(-1)
            .with_member_id(s(""))
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(tn(&name))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(7)
                    .with_committed_leader_epoch(-1)])])
    };
    ctx.step(&mut conn, "txn_offset_commit_implicit", &offsets(e0))?;
    ctx.step(&mut conn, "commit", &end(e0, true))?;
    // Kafka answers EndTxn before its markers are written; until they are, a retry is
    // CONCURRENT_TRANSACTIONS there. Compare once the marker is in (LSO past it).
    markers_written(ctx, &mut conn, &name, id, 2)?;
    transaction_completed(ctx, &mut conn, &txn)?;
    // The transaction's epoch is fenced now, wherever its marker went.
    produce_step(ctx, &mut conn, "zombie_after_commit", &produce(e0, 1, "z")?)?;
    ctx.step(&mut conn, "commit_retry", &end(e0, true))?;
    ctx.step(&mut conn, "abort_with_old_epoch", &end(e0, false))?;
    let e1 = e0 + 1;
    produce_step(ctx, &mut conn, "next_transaction", &produce(e1, 0, "b")?)?;
    ctx.step(&mut conn, "abort", &end(e1, false))?;
    markers_written(ctx, &mut conn, &name, id, 4)?;
    // Kafka's coordinator writes CompleteAbort after the marker is in: a retry before that
    // is CONCURRENT_TRANSACTIONS there.
    transaction_completed(ctx, &mut conn, &txn)?;
    ctx.step(&mut conn, "abort_retry", &end(e1, false))?;
    // An abort with nothing in the transaction still bumps the epoch; a commit is refused.
    ctx.step(&mut conn, "empty_commit", &end(e1 + 1, true))?;
    ctx.step(&mut conn, "empty_abort", &end(e1 + 1, false))?;
    // read_committed from the aborted "b" lists its transaction as aborted. (Not from offset 0:
    // the records are stamped 1970, so segment.ms rolls a segment at the first marker and a
    // fetch from 0 ends with the first segment, before the abort, on both brokers.)
    let r = conn.must(ctx.v(ApiKey::Fetch), &fetch_req(&name, id, 2, 1, 0))?;
    let aborted = r
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .and_then(|p| p.aborted_transactions.as_ref())
        .map_or(0, Vec::len);
    ctx.record("read_committed_aborted_transactions", aborted.to_string());
    Ok(())
}

/// Waits until the partition's last stable offset reaches `lso` (the markers are written).
fn markers_written(
    ctx: &Ctx,
    conn: &mut Conn,
    topic: &str,
    id: uuid::Uuid,
    lso: i64,
) -> Result<()> {
    let v = ctx.v(ApiKey::Fetch);
    wait_for(Duration::from_secs(20), || {
        let r = conn.must(v, &fetch_req(topic, id, 0, 1, 0))?;
        let stable = r
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .map(|p| p.last_stable_offset)
            .unwrap_or(-1);
        Ok((stable >= lso).then_some(()))
    })
}

/// Waits until the coordinator has written the transaction's CompleteCommit or CompleteAbort.
fn transaction_completed(ctx: &Ctx, conn: &mut Conn, transactional_id: &str) -> Result<()> {
    let v = ctx.v(ApiKey::DescribeTransactions);
    let describe = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(s(transactional_id))]);
    wait_for(Duration::from_secs(20), || {
        let r = conn.must(v, &describe)?;
        let done = r.transaction_states.first().is_some_and(|t| {
            matches!(
                t.transaction_state.as_str(),
                "CompleteCommit" | "CompleteAbort"
            )
        });
        Ok(done.then_some(()))
    })
}

/// Waits until the group's coordinator answers (Kafka creates __consumer_offsets on the first
/// FindCoordinator for a group).
fn group_coordinator_ready(ctx: &Ctx, conn: &mut Conn, group: &str) -> Result<()> {
    let v = ctx.v(ApiKey::FindCoordinator);
    let find = FindCoordinatorRequest::default().with_key_type(0);
    let find = if v >= 4 {
        find.with_coordinator_keys(vec![s(group)])
    } else {
        find.with_key(s(group))
    };
    wait_for(Duration::from_secs(60), || {
        let r = conn.must(v, &find)?;
        let code = r
            .coordinators
            .first()
            .map(|c| c.error_code)
            .unwrap_or(r.error_code);
        Ok((code == 0).then_some(()))
    })
}
