use super::*;

fn fresh() -> TxnMetadata {
    TxnMetadata::new("t".into(), 1000, 60_000, 0)
}

/// InitProducerId through to a completed Empty state.
fn init(m: &mut TxnMetadata, expected: Option<(i64, i16)>, now: i64) -> Transit {
    match m.prepare_init(60_000, expected, None, now).unwrap() {
        InitDecision::Write(t) => {
            assert!(m.complete(&t));
            t
        }
        other => panic!("expected a write, got {other:?}"),
    }
}

fn add(m: &mut TxnMetadata, parts: &[(&str, i32)], now: i64) -> Option<Transit> {
    let parts: Vec<(String, i32)> = parts.iter().map(|(t, p)| (t.to_string(), *p)).collect();
    let t = m
        .prepare_add_partitions(m.producer_id, m.producer_epoch, &parts, now)
        .unwrap();
    if let Some(t) = &t {
        assert!(m.complete(t));
    }
    t
}

fn end(m: &mut TxnMetadata, commit: bool, now: i64) {
    match m
        .prepare_end(m.producer_id, m.producer_epoch, commit, now)
        .unwrap()
    {
        EndDecision::Prepare(t) => assert!(m.complete(&t)),
        EndDecision::AlreadyDone => panic!("not done yet"),
    }
    let t = m.prepare_complete(now).unwrap();
    assert!(m.complete(&t));
}

#[test]
fn first_init_gives_epoch_zero_and_each_init_bumps_it() {
    let mut m = fresh();
    assert_eq!(init(&mut m, None, 1).producer_epoch, 0);
    assert_eq!(m.state, TxnState::Empty);
    assert_eq!(init(&mut m, None, 2).producer_epoch, 1);
    assert_eq!(m.last_producer_epoch, 0);
}

#[test]
fn a_transaction_goes_ongoing_prepare_complete_and_back() {
    let mut m = fresh();
    init(&mut m, None, 1);
    assert!(add(&mut m, &[("a", 0)], 10).is_some());
    assert_eq!(m.state, TxnState::Ongoing);
    assert_eq!(m.start_timestamp_ms, 10);
    // The same partition again writes nothing; a new one widens the set, same start.
    assert!(add(&mut m, &[("a", 0)], 11).is_none());
    assert!(add(&mut m, &[("b", 1)], 12).is_some());
    assert_eq!(m.start_timestamp_ms, 10);
    assert_eq!(m.partitions.len(), 2);
    let t = match m.prepare_end(1000, 0, true, 20).unwrap() {
        EndDecision::Prepare(t) => t,
        other => panic!("{other:?}"),
    };
    assert_eq!(t.state, TxnState::PrepareCommit);
    assert!(m.complete(&t));
    // While markers are written, the client's retry waits and a contrary request is invalid.
    assert_eq!(
        m.prepare_end(1000, 0, true, 21),
        Err(TxnError::ConcurrentTransactions)
    );
    assert_eq!(
        m.prepare_end(1000, 0, false, 21),
        Err(TxnError::InvalidTxnState)
    );
    let done = m.prepare_complete(30).unwrap();
    assert!(m.complete(&done));
    assert_eq!(m.state, TxnState::CompleteCommit);
    assert!(m.partitions.is_empty());
    assert_eq!(
        m.prepare_end(1000, 0, true, 31),
        Ok(EndDecision::AlreadyDone)
    );
    assert_eq!(
        m.prepare_end(1000, 0, false, 31),
        Err(TxnError::InvalidTxnState)
    );
    // The next transaction starts from CompleteCommit with a fresh start time.
    assert!(add(&mut m, &[("c", 0)], 40).is_some());
    assert_eq!(m.start_timestamp_ms, 40);
    assert_eq!(m.partitions.len(), 1);
    end(&mut m, false, 50);
    assert_eq!(m.state, TxnState::CompleteAbort);
    assert_eq!(
        m.prepare_end(1000, 0, false, 51),
        Ok(EndDecision::AlreadyDone)
    );
}

#[test]
fn end_txn_without_a_transaction_is_invalid() {
    let mut m = fresh();
    init(&mut m, None, 1);
    assert_eq!(
        m.prepare_end(1000, 0, true, 2),
        Err(TxnError::InvalidTxnState)
    );
}

#[test]
fn wrong_producer_id_or_epoch_is_refused() {
    let mut m = fresh();
    init(&mut m, None, 1);
    init(&mut m, None, 2); // epoch 1
    let parts = vec![("a".to_string(), 0)];
    assert_eq!(
        m.prepare_add_partitions(999, 1, &parts, 3),
        Err(TxnError::InvalidProducerIdMapping)
    );
    assert_eq!(
        m.prepare_add_partitions(1000, 0, &parts, 3),
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(
        m.prepare_end(1000, 0, true, 3),
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(TxnError::ProducerFenced.code_for(true), 47);
    assert_eq!(TxnError::ProducerFenced.code_for(false), 90);
}

#[test]
fn a_pending_write_makes_everything_else_wait() {
    let mut m = fresh();
    init(&mut m, None, 1);
    let parts = vec![("a".to_string(), 0)];
    let t = m
        .prepare_add_partitions(1000, 0, &parts, 2)
        .unwrap()
        .unwrap();
    assert_eq!(
        m.prepare_add_partitions(1000, 0, &parts, 2),
        Err(TxnError::ConcurrentTransactions)
    );
    assert_eq!(
        m.prepare_init(60_000, None, None, 2),
        Err(TxnError::ConcurrentTransactions)
    );
    // A failed write leaves the state as it was.
    m.abandon();
    assert_eq!(m.state, TxnState::Empty);
    assert!(!m.complete(&t), "a stale completion is ignored");
    assert_eq!(m.state, TxnState::Empty);
}

#[test]
fn init_during_an_open_transaction_fences_and_aborts_it() {
    let mut m = fresh();
    init(&mut m, None, 1);
    add(&mut m, &[("a", 0)], 2);
    let t = match m.prepare_init(60_000, None, None, 3).unwrap() {
        InitDecision::FenceAndAbort(t) => t,
        other => panic!("{other:?}"),
    };
    assert_eq!(m.state, TxnState::PrepareEpochFence);
    assert_eq!(t.state, TxnState::PrepareAbort);
    assert_eq!(t.producer_epoch, 1);
    assert!(m.complete(&t));
    // The zombie (epoch 0) is fenced from now on.
    assert_eq!(
        m.prepare_end(1000, 0, true, 4),
        Err(TxnError::ProducerFenced)
    );
    // The newcomer retries while the abort's markers are written.
    assert_eq!(
        m.prepare_init(60_000, None, None, 4),
        Err(TxnError::ConcurrentTransactions)
    );
    let done = m.prepare_complete(5).unwrap();
    assert!(m.complete(&done));
    assert_eq!(m.state, TxnState::CompleteAbort);
    assert_eq!(init(&mut m, None, 6).producer_epoch, 2);
}

#[test]
fn kip_360_init_with_the_current_epoch_bumps_a_retry_gets_it_back_and_others_are_fenced() {
    let mut m = fresh();
    init(&mut m, None, 1); // epoch 0
    assert_eq!(init(&mut m, Some((1000, 0)), 2).producer_epoch, 1);
    // The response was lost; the retry carries epoch 0 again.
    assert_eq!(init(&mut m, Some((1000, 0)), 3).producer_epoch, 1);
    assert_eq!(
        m.prepare_init(60_000, Some((1000, 5)), None, 4),
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(
        m.prepare_init(60_000, Some((77, 1)), None, 4),
        Err(TxnError::ProducerFenced)
    );
}

#[test]
fn a_new_id_asked_for_with_a_stale_producer_id_starts_at_epoch_zero() {
    // KIP-360: a producer whose transactional id expired still sends its old id and epoch.
    let mut m = fresh();
    let t = init(&mut m, Some((77, 12)), 1);
    assert_eq!((t.producer_id, t.producer_epoch), (1000, 0));
}

#[test]
fn an_exhausted_epoch_rolls_over_to_a_new_producer_id() {
    let mut m = fresh();
    init(&mut m, None, 1);
    m.producer_epoch = i16::MAX - 1;
    assert_eq!(
        m.prepare_init(60_000, None, None, 2),
        Ok(InitDecision::NeedProducerId)
    );
    let t = match m.prepare_init(60_000, None, Some(2000), 2).unwrap() {
        InitDecision::Write(t) => t,
        other => panic!("{other:?}"),
    };
    assert_eq!((t.producer_id, t.producer_epoch), (2000, 0));
    assert_eq!(t.previous_producer_id, 1000);
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_with_a_bumped_epoch() {
    let mut m = fresh();
    m.timeout_ms = 100;
    init(&mut m, None, 0);
    m.timeout_ms = 100;
    add(&mut m, &[("a", 0)], 1000);
    assert!(!m.timed_out(1100));
    assert!(m.timed_out(1101));
    let t = m.prepare_timeout_abort(1101).unwrap();
    assert_eq!(t.state, TxnState::PrepareAbort);
    assert_eq!(t.producer_epoch, 1);
    assert!(!m.timed_out(5000), "pending: not twice");
    assert!(m.complete(&t));
    assert!(!m.timed_out(5000));
    assert_eq!(
        m.prepare_add_partitions(1000, 0, &[("a".into(), 0)], 5000),
        Err(TxnError::ProducerFenced)
    );
    let done = m.prepare_complete(5001).unwrap();
    assert!(m.complete(&done));
    assert_eq!(m.state, TxnState::CompleteAbort);
}

#[test]
fn idle_ids_expire_but_open_transactions_do_not() {
    let mut m = fresh();
    init(&mut m, None, 0);
    assert!(!m.expired(999, 1000));
    assert!(m.expired(1000, 1000));
    add(&mut m, &[("a", 0)], 10);
    assert!(!m.expired(1_000_000, 1000));
    end(&mut m, true, 20);
    let t = m.prepare_dead(2000).unwrap();
    assert!(m.complete(&t));
    assert_eq!(m.state, TxnState::Dead);
}

#[test]
fn invalid_transitions_are_refused() {
    let mut m = fresh();
    init(&mut m, None, 0);
    assert_eq!(m.prepare_complete(1), Err(TxnError::InvalidTxnState));
    assert_eq!(m.prepare_timeout_abort(1), Err(TxnError::InvalidTxnState));
    add(&mut m, &[("a", 0)], 1);
    assert_eq!(m.prepare_dead(2), Err(TxnError::InvalidTxnState));
    assert_eq!(m.state, TxnState::Ongoing);
}

#[test]
fn state_ids_and_names_round_trip() {
    for id in 0..8 {
        let s = TxnState::from_id(id).unwrap();
        assert_eq!(s.id(), id);
        assert_eq!(TxnState::from_name(s.name()), Some(s));
    }
    assert_eq!(TxnState::from_id(8), None);
    assert_eq!(TxnState::from_name("ongoing"), None);
}
