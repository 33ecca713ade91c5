//! The transaction coordinator in a real broker (logs on disk, restarts), driven directly:
//! what clients cannot easily provoke — a crash between PrepareCommit and CompleteCommit, a
//! timeout, an expired transactional id.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::TestBroker;
use vltava_broker::replica::Lookup;
use vltava_broker::txn::coordinator::state::{Transit, TxnError, TxnState};
use vltava_broker::txn::coordinator::{records, TRANSACTION_STATE_TOPIC};

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn log_end(broker: &TestBroker, topic: &str, partition: i32) -> i64 {
    match broker.broker.replicas.get(topic, partition) {
        Lookup::Leader(p) => p.log.log_end_offset(),
        _ => panic!("{topic}-{partition} is not led here"),
    }
}

#[tokio::test]
async fn a_transaction_caught_between_prepare_commit_and_complete_is_completed_after_a_restart() {
    let broker = TestBroker::start().await;
    let b = broker.broker.clone();
    b.auto_create_topics(&["data".to_string()]).await;
    let (producer_id, epoch) = b
        .txns
        .init_producer_id(&b, "half-done", 60_000, None)
        .await
        .unwrap();
    let partitions = vec![("data".to_string(), 0)];
    b.txns
        .add_partitions(&b, "half-done", producer_id, epoch, &partitions, false)
        .await
        .unwrap();
    // What a crash right after writing PrepareCommit leaves: the record, no markers.
    let state_partition = b.txns.partition_for("half-done");
    let Lookup::Leader(p) = b.replicas.get(TRANSACTION_STATE_TOPIC, state_partition) else {
        panic!("no {TRANSACTION_STATE_TOPIC} partition");
    };
    let prepare = Transit {
        producer_id,
        previous_producer_id: -1,
        producer_epoch: epoch,
        last_producer_epoch: -1,
        timeout_ms: 60_000,
        state: TxnState::PrepareCommit,
        partitions: partitions.iter().cloned().collect(),
        start_timestamp_ms: 1,
        last_update_timestamp_ms: 2,
        next_producer_id: -1,
        client_tv2: false,
    };
    let record = (
        records::encode_key("half-done").unwrap(),
        Some(records::encode_value(&prepare).unwrap()),
    );
    vltava_broker::group::store::append(&p, &[record], 3).unwrap();
    assert_eq!(log_end(&broker, "data", 0), 0);
    drop(p);
    drop(b);

    let broker = TestBroker::start_in(broker.stop().await, &[]).await;
    let b = broker.broker.clone();
    let done = eventually("CompleteCommit", async || {
        let d = b.txns.describe(&b, "half-done").await.ok()?;
        (d.state == TxnState::CompleteCommit).then_some(d)
    })
    .await;
    assert_eq!(done.producer_id, producer_id);
    assert!(done.partitions.is_empty());
    // The COMMIT marker is the partition's one batch.
    assert_eq!(log_end(&broker, "data", 0), 1);
    // And a retry of the client's EndTxn is answered as done.
    b.txns
        .end_txn(&b, "half-done", producer_id, epoch, true, false)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_open_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let broker = TestBroker::start_with(&[
        "transaction.abort.timed.out.transaction.cleanup.interval.ms=100",
    ])
    .await;
    let b = broker.broker.clone();
    b.auto_create_topics(&["hung".to_string()]).await;
    let (producer_id, epoch) = b
        .txns
        .init_producer_id(&b, "hung-id", 300, None)
        .await
        .unwrap();
    b.txns
        .add_partitions(
            &b,
            "hung-id",
            producer_id,
            epoch,
            &[("hung".to_string(), 0)],
            false,
        )
        .await
        .unwrap();
    let aborted = eventually("the timeout abort", async || {
        let d = b.txns.describe(&b, "hung-id").await.ok()?;
        (d.state == TxnState::CompleteAbort).then_some(d)
    })
    .await;
    assert_eq!(
        aborted.producer_epoch,
        epoch + 1,
        "the abort bumps the epoch"
    );
    assert_eq!(log_end(&broker, "hung", 0), 1, "an ABORT marker");
    assert_eq!(
        b.txns
            .end_txn(&b, "hung-id", producer_id, epoch, true, false)
            .await,
        Err(TxnError::ProducerFenced)
    );
    // A new InitProducerId picks the id up again with the next epoch.
    let (again, next) = b
        .txns
        .init_producer_id(&b, "hung-id", 300, None)
        .await
        .unwrap();
    assert_eq!((again, next), (producer_id, epoch + 2));
}

#[tokio::test]
async fn an_idle_transactional_id_expires_and_stays_gone_after_a_restart() {
    let overrides = [
        "transactional.id.expiration.ms=200",
        "transaction.remove.expired.transaction.cleanup.interval.ms=100",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms=100",
    ];
    let broker = TestBroker::start_with(&overrides).await;
    let b = broker.broker.clone();
    b.txns
        .init_producer_id(&b, "short-lived", 60_000, None)
        .await
        .unwrap();
    eventually("the expiry", async || {
        matches!(
            b.txns.describe(&b, "short-lived").await,
            Err(TxnError::TransactionalIdNotFound)
        )
        .then_some(())
    })
    .await;
    drop(b);
    let broker = TestBroker::start_in(broker.stop().await, &overrides).await;
    let b = broker.broker.clone();
    assert!(matches!(
        b.txns.describe(&b, "short-lived").await,
        Err(TxnError::TransactionalIdNotFound)
    ));
}

#[tokio::test]
async fn transaction_timeouts_above_the_maximum_are_refused() {
    let broker = TestBroker::start_with(&["transaction.max.timeout.ms=1000"]).await;
    let b = broker.broker.clone();
    assert_eq!(
        b.txns.init_producer_id(&b, "t", 1001, None).await,
        Err(TxnError::InvalidTransactionTimeout)
    );
    assert_eq!(
        b.txns.init_producer_id(&b, "t", 0, None).await,
        Err(TxnError::InvalidTransactionTimeout)
    );
    assert!(b.txns.init_producer_id(&b, "t", 1000, None).await.is_ok());
}
