//! One transactional id's state machine, without I/O: Kafka's `TransactionMetadata` and the
//! decisions of `TransactionCoordinator`. Both transaction versions are served, chosen per
//! request as Kafka does: version 1 (librdkafka, older clients: partitions added by
//! AddPartitionsToTxn, the epoch stays across transactions) and version 2 (KIP-890 part 2, the
//! Java client when `transaction.version` is finalized at 2: EndTxn v5+ bumps the epoch at the
//! end of every transaction, partitions join implicitly through Produce v12+ and TxnOffsetCommit
//! v5+). Version 2's EndTxn rules are in the `epoch_bump` module.
//!
//! A change is made in two steps, as in Kafka: `prepare_*` checks the request and returns a
//! [`Transit`] (the metadata as it will be) and marks it pending; the caller writes the transit to
//! `__transaction_state` and then calls [`TxnMetadata::complete`] (or [`TxnMetadata::abandon`] if
//! the write failed). While a transit is pending every other request gets
//! CONCURRENT_TRANSACTIONS and retries.

use std::collections::BTreeSet;

use kafka_protocol::ResponseError;

mod epoch_bump;

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
            // Transaction version 2 may abort with no partitions added (KIP-890).
            PrepareAbort => &[
                Ongoing,
                PrepareEpochFence,
                Empty,
                CompleteCommit,
                CompleteAbort,
            ],
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
    /// A partition written to is not in the transaction (KIP-890 verification): the client
    /// must abort.
    #[error("the partition is not part of the transaction")]
    TransactionAbortable,
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
            TxnError::TransactionAbortable => ResponseError::TransactionAbortable.code(),
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
    /// The producer id the client continues with after a version 2 transaction whose end
    /// exhausted the epoch (-1 otherwise).
    pub next_producer_id: i64,
    /// The client speaks transaction version 2 (Kafka's `clientTransactionVersion`).
    pub client_tv2: bool,
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
    pub next_producer_id: i64,
    pub client_tv2: bool,
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
    /// Version 2: the epoch bump would exhaust the epoch; call again with a new producer id.
    NeedProducerId,
}

impl Transit {
    /// The producer id and epoch the client goes on with once this transit is written (what
    /// EndTxn v5+ answers): a version 2 end bumps the epoch, or moves to the next producer id.
    pub fn continuing_producer(&self) -> (i64, i16) {
        if self.client_tv2 && self.next_producer_id >= 0 {
            (self.next_producer_id, 0)
        } else {
            (self.producer_id, self.producer_epoch)
        }
    }
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
            next_producer_id: NO_PRODUCER_ID,
            client_tv2: false,
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
            next_producer_id: self.next_producer_id,
            client_tv2: self.client_tv2,
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
        self.next_producer_id = t.next_producer_id;
        self.client_tv2 = t.client_tv2;
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

    /// AddPartitionsToTxn / AddOffsetsToTxn, and the implicit adds of transaction version 2
    /// (`tv2`): `None` when every partition is already in the ongoing transaction (nothing to
    /// write).
    pub fn prepare_add_partitions(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
        tv2: bool,
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
        t.client_tv2 = tv2;
        self.begin(t).map(Some)
    }

    /// KIP-890 verification of a partition a transactional Produce writes to
    /// (`handleVerifyPartitionsInTransaction`): the producer must be the current one and the
    /// partition in its ongoing transaction (else TRANSACTION_ABORTABLE). A pending transit is
    /// not checked, as in Kafka: the log's verification guard catches a marker in between.
    pub fn verify_partition(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        partition: &(String, i32),
    ) -> Result<(), TxnError> {
        self.check_producer(producer_id, producer_epoch)?;
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                Err(TxnError::ConcurrentTransactions)
            }
            _ if self.partitions.contains(partition) => Ok(()),
            _ => Err(TxnError::TransactionAbortable),
        }
    }

    /// EndTxn from a transaction version 1 client (`endTransactionWithTV1`).
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
    /// A version 2 end that exhausted the epoch moves to its next producer id here.
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
        if t.client_tv2 && t.next_producer_id >= 0 {
            t.previous_producer_id = t.producer_id;
            t.producer_id = t.next_producer_id;
            t.producer_epoch = 0;
            t.next_producer_id = NO_PRODUCER_ID;
        }
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
mod tests;
