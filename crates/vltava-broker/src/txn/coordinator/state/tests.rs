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
        .prepare_add_partitions(m.producer_id, m.producer_epoch, &parts, false, now)
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
        other => panic!("not done yet: {other:?}"),
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
        m.prepare_add_partitions(999, 1, &parts, false, 3),
        Err(TxnError::InvalidProducerIdMapping)
    );
    assert_eq!(
        m.prepare_add_partitions(1000, 0, &parts, false, 3),
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
        .prepare_add_partitions(1000, 0, &parts, false, 2)
        .unwrap()
        .unwrap();
    assert_eq!(
        m.prepare_add_partitions(1000, 0, &parts, false, 2),
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
        m.prepare_add_partitions(1000, 0, &[("a".into(), 0)], false, 5000),
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

/// Transaction version 2: AddPartitions (implicit) then EndTxn v5 through to Complete*.
fn end_v2(m: &mut TxnMetadata, epoch: i16, commit: bool, now: i64) -> Transit {
    let t = match m
        .prepare_end_v2(m.producer_id, epoch, commit, None, now)
        .unwrap()
    {
        EndDecision::Prepare(t) => t,
        other => panic!("expected a prepare, got {other:?}"),
    };
    assert!(m.complete(&t));
    let done = m.prepare_complete(now).unwrap();
    assert!(m.complete(&done));
    t
}

fn add_v2(m: &mut TxnMetadata, parts: &[(&str, i32)], now: i64) {
    let parts: Vec<(String, i32)> = parts.iter().map(|(t, p)| (t.to_string(), *p)).collect();
    if let Some(t) = m
        .prepare_add_partitions(m.producer_id, m.producer_epoch, &parts, true, now)
        .unwrap()
    {
        assert!(m.complete(&t));
    }
}

#[test]
fn version_2_bumps_the_epoch_at_every_end_and_fences_the_old_one() {
    let mut m = fresh();
    init(&mut m, None, 1); // epoch 0
    add_v2(&mut m, &[("a", 0)], 2);
    let t = end_v2(&mut m, 0, true, 3);
    assert_eq!((t.producer_epoch, t.last_producer_epoch), (1, 0));
    assert_eq!(t.continuing_producer(), (1000, 1));
    assert_eq!(m.state, TxnState::CompleteCommit);
    assert!(m.client_tv2);
    // The client lost the answer and retries with the epoch it had: success, no second bump.
    assert_eq!(
        m.prepare_end_v2(1000, 0, true, None, 4),
        Ok(EndDecision::AlreadyDone)
    );
    assert_eq!(m.producer_epoch, 1);
    // The next transaction runs at epoch 1; the old epoch can neither add nor end it.
    add_v2(&mut m, &[("b", 0)], 5);
    assert_eq!(
        m.prepare_add_partitions(1000, 0, &[("c".into(), 0)], true, 6),
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(
        m.prepare_end_v2(1000, 0, false, None, 6),
        Err(TxnError::ProducerFenced)
    );
    let t = end_v2(&mut m, 1, false, 7);
    assert_eq!(t.producer_epoch, 2);
    assert_eq!(m.state, TxnState::CompleteAbort);
}

#[test]
fn version_2_aborts_without_partitions_but_refuses_such_a_commit() {
    let mut m = fresh();
    init(&mut m, None, 1);
    assert_eq!(
        m.prepare_end_v2(1000, 0, true, None, 2),
        Err(TxnError::InvalidTxnState)
    );
    let t = end_v2(&mut m, 0, false, 3);
    assert_eq!(t.state, TxnState::PrepareAbort);
    assert_eq!(t.start_timestamp_ms, 3);
    assert!(t.partitions.is_empty());
    // A retry of that abort is answered; a commit retry of it is not.
    assert_eq!(
        m.prepare_end_v2(1000, 0, false, None, 4),
        Ok(EndDecision::AlreadyDone)
    );
    assert_eq!(
        m.prepare_end_v2(1000, 0, true, None, 4),
        Err(TxnError::InvalidTxnState)
    );
    // While the markers are written the retry waits.
    add_v2(&mut m, &[("a", 0)], 5);
    let t = match m.prepare_end_v2(1000, 1, true, None, 6).unwrap() {
        EndDecision::Prepare(t) => t,
        other => panic!("{other:?}"),
    };
    assert!(m.complete(&t));
    assert_eq!(
        m.prepare_end_v2(1000, 1, true, None, 7),
        Err(TxnError::ConcurrentTransactions)
    );
}

#[test]
fn version_2_moves_to_a_new_producer_id_when_the_bump_exhausts_the_epoch() {
    let mut m = fresh();
    init(&mut m, None, 1);
    m.producer_epoch = i16::MAX - 1;
    add_v2(&mut m, &[("a", 0)], 2);
    assert_eq!(
        m.prepare_end_v2(1000, i16::MAX - 1, true, None, 3),
        Ok(EndDecision::NeedProducerId)
    );
    let t = match m
        .prepare_end_v2(1000, i16::MAX - 1, true, Some(2000), 3)
        .unwrap()
    {
        EndDecision::Prepare(t) => t,
        other => panic!("{other:?}"),
    };
    assert_eq!(t.continuing_producer(), (2000, 0));
    assert!(m.complete(&t));
    let done = m.prepare_complete(4).unwrap();
    assert!(m.complete(&done));
    assert_eq!((m.producer_id, m.producer_epoch), (2000, 0));
    assert_eq!(m.previous_producer_id, 1000);
    // A retry from the old id's last epoch is recognised.
    assert_eq!(
        m.prepare_end_v2(1000, i16::MAX - 1, true, None, 5),
        Ok(EndDecision::AlreadyDone)
    );
}

#[test]
fn verification_accepts_only_partitions_of_the_current_producers_open_transaction() {
    let mut m = fresh();
    init(&mut m, None, 1);
    init(&mut m, None, 2); // epoch 1
    let a = ("a".to_string(), 0);
    assert_eq!(
        m.verify_partition(1000, 1, &a),
        Err(TxnError::TransactionAbortable)
    );
    add(&mut m, &[("a", 0)], 3);
    assert_eq!(m.verify_partition(1000, 1, &a), Ok(()));
    assert_eq!(
        m.verify_partition(1000, 0, &a),
        Err(TxnError::ProducerFenced),
        "a zombie"
    );
    assert_eq!(
        m.verify_partition(7, 1, &a),
        Err(TxnError::InvalidProducerIdMapping)
    );
    assert_eq!(
        m.verify_partition(1000, 1, &("b".to_string(), 0)),
        Err(TxnError::TransactionAbortable)
    );
    let t = match m.prepare_end(1000, 1, true, 4).unwrap() {
        EndDecision::Prepare(t) => t,
        other => panic!("{other:?}"),
    };
    assert!(m.complete(&t));
    assert_eq!(
        m.verify_partition(1000, 1, &a),
        Err(TxnError::ConcurrentTransactions)
    );
}
