//! One transactional id's state machine, without I/O: Kafka's `TransactionMetadata` and the
//! decisions of `TransactionCoordinator` (transaction version 1, the protocol librdkafka and
//! Java clients speak when the broker advertises no `transaction.version` feature).
//!
//! A change is made in two steps, as in Kafka: `prepare_*` checks the request and returns a
//! [`Transit`] (the metadata as it will be) and marks it pending; the caller writes the transit to
//! `__transaction_state` and then calls [`TxnMetadata::complete`] (or [`TxnMetadata::abandon`] if
//! the write failed). While a transit is pending every other request gets
//! CONCURRENT_TRANSACTIONS and retries.

use std::collections::BTreeSet;

use kafka_protocol::ResponseError;

/// `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// `RecordBatch.NO_PRODUCER_ID`.
pub const NO_PRODUCER_ID: i64 = -1;

/// Kafka's `TransactionState`, with its on-disk ids and its names in Describe/ListTransactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        Some(match id {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// `TransactionState.fromName` (ListTransactions' state filter), case-sensitive as Kafka's.
    pub fn from_name(name: &str) -> Option<TxnState> {
        [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::PrepareAbort,
            TxnState::CompleteCommit,
            TxnState::CompleteAbort,
            TxnState::Dead,
            TxnState::PrepareEpochFence,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    /// The states a transition into `self` may start from (`TransactionState.validPreviousStates`).
    fn valid_previous(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[Ongoing, PrepareEpochFence],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteAbort, CompleteCommit],
            PrepareEpochFence => &[Ongoing],
        }
    }
}

/// Why a transactional request failed; [`TxnError::code`] is Kafka's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("another change to this transaction is in progress")]
    ConcurrentTransactions,
    #[error("the producer was fenced by a newer epoch")]
    ProducerFenced,
    #[error("the producer id does not match the transactional id")]
    InvalidProducerIdMapping,
    #[error("the request is not valid in the transaction's state")]
    InvalidTxnState,
    #[error("transaction.timeout.ms is larger than transaction.max.timeout.ms")]
    InvalidTransactionTimeout,
    #[error("this broker does not coordinate the transactional id")]
    NotCoordinator,
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("the coordinator is loading")]
    CoordinatorLoadInProgress,
    #[error("invalid request")]
    InvalidRequest,
    #[error("unknown transactional id")]
    TransactionalIdNotFound,
}

impl TxnError {
    pub fn code(self) -> i16 {
        match self {
            TxnError::ConcurrentTransactions => ResponseError::ConcurrentTransactions.code(),
            TxnError::ProducerFenced => ResponseError::ProducerFenced.code(),
            TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping.code(),
            TxnError::InvalidTxnState => ResponseError::InvalidTxnState.code(),
            TxnError::InvalidTransactionTimeout => ResponseError::InvalidTransactionTimeout.code(),
            TxnError::NotCoordinator => ResponseError::NotCoordinator.code(),
            TxnError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable.code(),
            TxnError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress.code(),
            TxnError::InvalidRequest => ResponseError::InvalidRequest.code(),
            TxnError::TransactionalIdNotFound => ResponseError::TransactionalIdNotFound.code(),
        }
    }

    /// Clients before KIP-588 (InitProducerId < v4, AddPartitionsToTxn/AddOffsetsToTxn/EndTxn/
    /// TxnOffsetCommit < v2) do not know PRODUCER_FENCED: Kafka answers INVALID_PRODUCER_EPOCH.
    pub fn code_for(self, old_client: bool) -> i16 {
        if old_client && self == TxnError::ProducerFenced {
            ResponseError::InvalidProducerEpoch.code()
        } else {
            self.code()
        }
    }
}

/// The metadata a pending transition will leave behind; also what is written to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transit {
    pub producer_id: i64,
    pub previous_producer_id: i64,
    pub producer_epoch: i16,
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub start_timestamp_ms: i64,
    pub last_update_timestamp_ms: i64,
}

/// One transactional id (Kafka's `TransactionMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub previous_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump: a retried InitProducerId that carries it gets the current
    /// epoch back instead of being fenced (KIP-360).
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// Partitions in the transaction (data partitions and the group's `__consumer_offsets` one).
    pub partitions: BTreeSet<(String, i32)>,
    pub start_timestamp_ms: i64,
    pub last_update_timestamp_ms: i64,
    pub pending: Option<Transit>,
}

/// What InitProducerId decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitDecision {
    /// Write the transit, then answer with its producer id and epoch.
    Write(Transit),
    /// An open transaction: abort it with a bumped epoch (the transit, a PrepareAbort) and answer
    /// CONCURRENT_TRANSACTIONS; the client retries once the abort completed.
    FenceAndAbort(Transit),
    /// The epoch is exhausted: call again with a new producer id.
    NeedProducerId,
}

/// What EndTxn decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndDecision {
    /// Write the PrepareCommit/PrepareAbort transit, answer, then write the markers.
    Prepare(Transit),
    /// A retry of an EndTxn that already completed: answer success.
    AlreadyDone,
}

/// Whether an epoch has no successor (`TransactionMetadata.isEpochExhausted`).
pub fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

impl TxnMetadata {
    /// A new transactional id, as InitProducerId creates it before its first transition.
    pub fn new(transactional_id: String, producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        TxnMetadata {
            transactional_id,
            producer_id,
            previous_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_timestamp_ms: -1,
            last_update_timestamp_ms: now_ms,
            pending: None,
        }
    }

    /// Metadata as loaded from the log (no pending transition).
    pub fn loaded(transactional_id: String, t: Transit) -> Self {
        let mut m = TxnMetadata::new(transactional_id, t.producer_id, t.timeout_ms, 0);
        m.apply(t);
        m
    }

    fn current(&self) -> Transit {
        Transit {
            producer_id: self.producer_id,
            previous_producer_id: self.previous_producer_id,
            producer_epoch: self.producer_epoch,
            last_producer_epoch: self.last_producer_epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions: self.partitions.clone(),
            start_timestamp_ms: self.start_timestamp_ms,
            last_update_timestamp_ms: self.last_update_timestamp_ms,
        }
    }

    fn apply(&mut self, t: Transit) {
        self.producer_id = t.producer_id;
        self.previous_producer_id = t.previous_producer_id;
        self.producer_epoch = t.producer_epoch;
        self.last_producer_epoch = t.last_producer_epoch;
        self.timeout_ms = t.timeout_ms;
        self.state = t.state;
        self.partitions = t.partitions;
        self.start_timestamp_ms = t.start_timestamp_ms;
        self.last_update_timestamp_ms = t.last_update_timestamp_ms;
    }

    /// Marks `t` pending after checking the state change is one Kafka allows.
    fn begin(&mut self, t: Transit) -> Result<Transit, TxnError> {
        if self.pending.is_some() {
            return Err(TxnError::ConcurrentTransactions);
        }
        if !t.state.valid_previous().contains(&self.state) {
            return Err(TxnError::InvalidTxnState);
        }
        self.pending = Some(t.clone());
        Ok(t)
    }

    /// The pending transit was written: it becomes the state. Returns false if `t` is not the
    /// pending one (a stale completion, ignored).
    pub fn complete(&mut self, t: &Transit) -> bool {
        if self.pending.as_ref() != Some(t) {
            return false;
        }
        self.pending = None;
        self.apply(t.clone());
        true
    }

    /// The pending transit could not be written: forget it.
    pub fn abandon(&mut self) {
        self.pending = None;
        if self.state == TxnState::PrepareEpochFence {
            self.state = TxnState::Ongoing; // the fencing abort never started
        }
    }

    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// InitProducerId for a transactional id (`handleInitProducerId`, transaction version 1).
    /// `expected` is the producer id and epoch the client already has (KIP-360), if any;
    /// `new_producer_id` a fresh id to use when this epoch is exhausted.
    pub fn prepare_init(
        &mut self,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        new_producer_id: Option<i64>,
        now_ms: i64,
    ) -> Result<InitDecision, TxnError> {
        if self.pending.is_some() {
            return Err(TxnError::ConcurrentTransactions);
        }
        if let Some((pid, epoch)) = expected {
            // Fence unless the metadata is new, the id matches (epoch checked below), or this
            // is a retry from a producer whose previous id's epoch ran out.
            let valid = self.producer_epoch == NO_PRODUCER_EPOCH
                || pid == self.producer_id
                || (pid == self.previous_producer_id && epoch_exhausted(epoch));
            if !valid {
                return Err(TxnError::ProducerFenced);
            }
        }
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                Err(TxnError::ConcurrentTransactions)
            }
            TxnState::Ongoing => {
                // Another producer took over the id: fence the old one and abort its transaction.
                let mut t = self.current();
                if !epoch_exhausted(self.producer_epoch) {
                    t.last_producer_epoch = self.producer_epoch;
                    t.producer_epoch = self.producer_epoch + 1;
                }
                t.state = TxnState::PrepareAbort;
                t.last_update_timestamp_ms = now_ms;
                // PrepareEpochFence is where the abort starts from (Kafka keeps it in memory).
                self.state = TxnState::PrepareEpochFence;
                match self.begin(t) {
                    Ok(t) => Ok(InitDecision::FenceAndAbort(t)),
                    Err(e) => {
                        self.state = TxnState::Ongoing;
                        Err(e)
                    }
                }
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let mut t = self.current();
                t.timeout_ms = timeout_ms;
                t.state = TxnState::Empty;
                t.partitions.clear();
                t.start_timestamp_ms = -1;
                t.last_update_timestamp_ms = now_ms;
                let retry = matches!(expected, Some((pid, epoch))
                    if pid == self.producer_id
                        && epoch != NO_PRODUCER_EPOCH
                        && epoch == self.last_producer_epoch
                        && epoch != self.producer_epoch);
                let bump = match expected {
                    // A new id (or one that expired): the client's old id and epoch are moot.
                    _ if self.producer_epoch == NO_PRODUCER_EPOCH => true,
                    None => true,
                    Some((_, NO_PRODUCER_EPOCH)) => true,
                    Some((pid, epoch)) if pid == self.producer_id => {
                        if epoch == self.producer_epoch {
                            true
                        } else if retry {
                            false
                        } else {
                            return Err(TxnError::ProducerFenced);
                        }
                    }
                    // The previous id with an exhausted epoch: a retry after the id rolled over.
                    Some(_) => false,
                };
                if bump {
                    if epoch_exhausted(self.producer_epoch) {
                        let Some(pid) = new_producer_id else {
                            return Ok(InitDecision::NeedProducerId);
                        };
                        t.previous_producer_id = self.producer_id;
                        t.producer_id = pid;
                        t.producer_epoch = 0;
                        t.last_producer_epoch = NO_PRODUCER_EPOCH;
                    } else {
                        t.last_producer_epoch = self.producer_epoch;
                        t.producer_epoch = self.producer_epoch + 1;
                    }
                }
                self.begin(t).map(InitDecision::Write)
            }
            TxnState::Dead | TxnState::PrepareEpochFence => Err(TxnError::ConcurrentTransactions),
        }
    }

    /// Checks a request's producer id and epoch against the metadata.
    fn check_producer(&self, producer_id: i64, producer_epoch: i16) -> Result<(), TxnError> {
        if producer_id != self.producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if producer_epoch != self.producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
        Ok(())
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: `None` when every partition is already in the
    /// ongoing transaction (nothing to write).
    pub fn prepare_add_partitions(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> Result<Option<Transit>, TxnError> {
        self.check_producer(producer_id, producer_epoch)?;
        if self.pending.is_some() {
            return Err(TxnError::ConcurrentTransactions);
        }
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return Err(TxnError::ConcurrentTransactions)
            }
            TxnState::Dead => return Err(TxnError::InvalidTxnState),
            TxnState::Ongoing if partitions.iter().all(|p| self.partitions.contains(p)) => {
                return Ok(None)
            }
            _ => {}
        }
        let mut t = self.current();
        if self.state != TxnState::Ongoing {
            t.start_timestamp_ms = now_ms;
            t.partitions.clear();
        }
        t.partitions.extend(partitions.iter().cloned());
        t.state = TxnState::Ongoing;
        t.last_update_timestamp_ms = now_ms;
        self.begin(t).map(Some)
    }

    /// EndTxn from the client (`handleEndTransaction`, transaction version 1).
    pub fn prepare_end(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<EndDecision, TxnError> {
        self.check_producer(producer_id, producer_epoch)?;
        if self.pending.is_some() {
            return Err(TxnError::ConcurrentTransactions);
        }
        match (self.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut t = self.current();
                t.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                t.last_update_timestamp_ms = now_ms;
                self.begin(t).map(EndDecision::Prepare)
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                Ok(EndDecision::AlreadyDone)
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(TxnError::ConcurrentTransactions)
            }
            _ => Err(TxnError::InvalidTxnState),
        }
    }

    /// Whether the open transaction has outlived its `transaction.timeout.ms`.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing
            && self.pending.is_none()
            && self.start_timestamp_ms >= 0
            && now_ms
                > self
                    .start_timestamp_ms
                    .saturating_add(i64::from(self.timeout_ms))
    }

    /// Aborts a timed-out transaction with a bumped epoch so the hung producer is fenced
    /// (`abortTimedOutTransactions` → `prepareFenceProducerEpoch`).
    pub fn prepare_timeout_abort(&mut self, now_ms: i64) -> Result<Transit, TxnError> {
        if self.state != TxnState::Ongoing {
            return Err(TxnError::InvalidTxnState);
        }
        let mut t = self.current();
        if !epoch_exhausted(self.producer_epoch) {
            t.last_producer_epoch = self.producer_epoch;
            t.producer_epoch = self.producer_epoch + 1;
        }
        t.state = TxnState::PrepareAbort;
        t.last_update_timestamp_ms = now_ms;
        self.state = TxnState::PrepareEpochFence;
        self.begin(t)
            .inspect_err(|_| self.state = TxnState::Ongoing)
    }

    /// After the markers of a PrepareCommit/PrepareAbort are written: CompleteCommit/Abort.
    pub fn prepare_complete(&mut self, now_ms: i64) -> Result<Transit, TxnError> {
        let state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return Err(TxnError::InvalidTxnState),
        };
        let mut t = self.current();
        t.state = state;
        t.partitions.clear();
        t.last_update_timestamp_ms = now_ms;
        self.begin(t)
    }

    /// Whether `transactional.id.expiration.ms` has passed since the last change of an id with
    /// no open transaction (`TransactionStateManager.enableTransactionalIdExpiration`).
    pub fn expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        matches!(
            self.state,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        ) && self.pending.is_none()
            && now_ms.saturating_sub(self.last_update_timestamp_ms) >= expiration_ms
    }

    /// Starts removing an expired id: a Dead transit whose record is a tombstone.
    pub fn prepare_dead(&mut self, now_ms: i64) -> Result<Transit, TxnError> {
        let mut t = self.current();
        t.state = TxnState::Dead;
        t.partitions.clear();
        t.last_update_timestamp_ms = now_ms;
        self.begin(t)
    }
}

#[cfg(test)]
mod tests {
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
}
