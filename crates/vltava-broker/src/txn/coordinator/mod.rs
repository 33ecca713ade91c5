//! The transaction coordinator: owns the transactional ids whose `__transaction_state` partition
//! this broker leads, feeds requests to their [`state::TxnMetadata`] machines, writes each
//! transition to the log before answering, and drives commits and aborts to completion: the
//! markers go to every partition of the transaction (eos's [`crate::txn::markers`]), the group
//! coordinator makes transactional offsets visible (or drops them), and the Complete state is
//! written.
//!
//! Locking: one `std::sync::Mutex` over all ids, never held across `.await`; a transition being
//! written is marked pending in the metadata, so concurrent requests answer
//! CONCURRENT_TRANSACTIONS (the clients retry) instead of waiting on a lock. Partitions of
//! `__transaction_state` are replayed the first time a request needs one, and by the background
//! task, so transactions open at a restart time out and those caught between Prepare and
//! Complete get their markers again without a client asking.

pub mod records;
pub mod state;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Once, Weak};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use tracing::{info, warn};
use vltava_meta::{ControllerError, CreateTopicRequest};

use self::state::{EndDecision, InitDecision, Transit, TxnError, TxnMetadata, TxnState};
use crate::broker::{now_ms, Broker};
use crate::group::store::{self as log_store, KeyValue};
use crate::group::{partition_for, OFFSETS_TOPIC};
use crate::replica::Lookup;
use crate::txn::markers::{write_txn_markers, TxnMarker};

/// The internal topic that holds transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// How long EndTxn waits for the markers before answering anyway (the transaction's outcome is
/// already durable; the markers then complete in the background).
const END_TXN_COMPLETION_WAIT: Duration = Duration::from_secs(2);

/// How long an implicit add (transaction version 2) waits for a concurrent change of the same
/// transaction before answering CONCURRENT_TRANSACTIONS: `IMPLICIT_ADD_WAITS` × `IMPLICIT_ADD_WAIT`.
const IMPLICIT_ADD_WAIT: Duration = Duration::from_millis(2);
const IMPLICIT_ADD_WAITS: u32 = 100;

/// Transaction coordinator settings: Kafka's keys and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms` (900000).
    pub max_timeout_ms: i32,
    /// `transaction.state.log.num.partitions` (50).
    pub state_log_partitions: i32,
    /// `transaction.state.log.segment.bytes` (104857600).
    pub state_log_segment_bytes: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms` (10000).
    pub abort_check_interval_ms: u64,
    /// `transactional.id.expiration.ms` (604800000, 7 days).
    pub id_expiration_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms` (3600000).
    pub remove_expired_interval_ms: u64,
    /// `transaction.partition.verification.enable` (true): KIP-890 part 1 verification of
    /// transactional produces from transaction version 1 clients (version 2 ones always add
    /// their partitions through the coordinator).
    pub partition_verification: bool,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            state_log_partitions: 50,
            state_log_segment_bytes: 104_857_600,
            abort_check_interval_ms: 10_000,
            id_expiration_ms: 604_800_000,
            remove_expired_interval_ms: 3_600_000,
            partition_verification: true,
        }
    }
}

/// A transactional id as Describe/ListTransactions show it.
#[derive(Debug, Clone)]
pub struct TxnDescription {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub state: TxnState,
    pub timeout_ms: i32,
    pub start_timestamp_ms: i64,
    pub partitions: BTreeSet<(String, i32)>,
}

#[derive(Debug, Default)]
struct Inner {
    txns: HashMap<String, TxnMetadata>,
    /// `__transaction_state` partitions replayed into `txns`.
    loaded: HashSet<i32>,
}

#[derive(Debug)]
pub struct TransactionCoordinator {
    config: TxnConfig,
    inner: Mutex<Inner>,
    /// Serializes replays (held across one, hence tokio's).
    loading: tokio::sync::Mutex<()>,
    tasks_started: Once,
}

impl TransactionCoordinator {
    pub fn new(config: TxnConfig) -> Self {
        TransactionCoordinator {
            config,
            inner: Mutex::new(Inner::default()),
            loading: tokio::sync::Mutex::new(()),
            tasks_started: Once::new(),
        }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// The `__transaction_state` partition of a transactional id (same hash as groups use).
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        partition_for(transactional_id, self.config.state_log_partitions)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the background task (timeouts, expiration, loading after a restart) once.
    pub fn start(&self, broker: &Arc<Broker>) {
        self.tasks_started.call_once(|| {
            tokio::spawn(run_background(Arc::downgrade(broker)));
        });
    }

    /// FindCoordinator for a transactional id: the node id, host and port of the leader of its
    /// `__transaction_state` partition; creates the topic on first use, as Kafka does.
    pub async fn locate(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
    ) -> Result<(i32, String, i32), TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        self.ensure_topic(broker).await?;
        let image = broker.image();
        let leader = image
            .topic(TRANSACTION_STATE_TOPIC)
            .and_then(|t| t.partition(self.partition_for(transactional_id)))
            .map(|p| p.leader)
            .filter(|leader| *leader >= 0)
            .ok_or(TxnError::CoordinatorNotAvailable)?;
        let registration = image
            .broker(leader)
            .ok_or(TxnError::CoordinatorNotAvailable)?;
        Ok((
            leader,
            registration.host.clone(),
            i32::from(registration.port),
        ))
    }

    /// InitProducerId with a transactional id: the producer id and the (bumped) epoch.
    pub async fn init_producer_id(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout);
        }
        self.ensure_loaded(broker, self.partition_for(transactional_id), true)
            .await?;
        let known = self.lock().txns.contains_key(transactional_id);
        if !known {
            let producer_id = allocate(broker).await?;
            let mut inner = self.lock();
            inner
                .txns
                .entry(transactional_id.to_string())
                .or_insert_with(|| {
                    TxnMetadata::new(
                        transactional_id.to_string(),
                        producer_id,
                        timeout_ms,
                        now_ms(),
                    )
                });
        }
        let mut new_producer_id = None;
        loop {
            let decision = {
                let mut inner = self.lock();
                let meta = inner
                    .txns
                    .get_mut(transactional_id)
                    .ok_or(TxnError::ConcurrentTransactions)?;
                meta.prepare_init(timeout_ms, expected, new_producer_id, now_ms())?
            };
            match decision {
                InitDecision::NeedProducerId => {
                    new_producer_id = Some(allocate(broker).await?);
                }
                InitDecision::Write(t) => {
                    self.write(broker, transactional_id, &t).await?;
                    return Ok((t.producer_id, t.producer_epoch));
                }
                InitDecision::FenceAndAbort(t) => {
                    info!(
                        "transactional id {transactional_id:?}: a new producer fences epoch {} and aborts its transaction",
                        t.last_producer_epoch
                    );
                    self.write(broker, transactional_id, &t).await?;
                    self.spawn_completion(broker, transactional_id.to_string());
                    return Err(TxnError::ConcurrentTransactions);
                }
            }
        }
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn with the group's offsets partition); with `tv2`,
    /// the implicit add of a transaction version 2 Produce or TxnOffsetCommit.
    pub async fn add_partitions(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
        tv2: bool,
    ) -> Result<(), TxnError> {
        self.ensure_loaded(broker, self.partition_for(transactional_id), false)
            .await?;
        let mut waited = 0;
        loop {
            let transit = {
                let mut inner = self.lock();
                let meta = inner
                    .txns
                    .get_mut(transactional_id)
                    .ok_or(TxnError::InvalidProducerIdMapping)?;
                meta.prepare_add_partitions(producer_id, producer_epoch, partitions, tv2, now_ms())
            };
            match transit {
                Ok(Some(t)) => return self.write(broker, transactional_id, &t).await,
                Ok(None) => return Ok(()),
                // Implicit adds race each other (a version 2 producer's Produce requests and
                // its TxnOffsetCommit in flight together): wait out the other add's write (one
                // fsync) here rather than make the client back off and retry.
                Err(TxnError::ConcurrentTransactions) if tv2 && waited < IMPLICIT_ADD_WAITS => {
                    waited += 1;
                    tokio::time::sleep(IMPLICIT_ADD_WAIT).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// KIP-890 part 1: is `partition` in the producer's ongoing transaction? Asked by a
    /// partition before it lets a transactional batch start a transaction there, so a zombie
    /// (fenced epoch) or a late retry after the transaction ended cannot leave a hanging one.
    pub async fn verify_partition(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partition: &(String, i32),
    ) -> Result<(), TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        self.ensure_loaded(broker, self.partition_for(transactional_id), false)
            .await?;
        let inner = self.lock();
        inner
            .txns
            .get(transactional_id)
            .ok_or(TxnError::InvalidProducerIdMapping)?
            .verify_partition(producer_id, producer_epoch, partition)
    }

    /// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction.
    pub async fn add_offsets(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group_id: &str,
        tv2: bool,
    ) -> Result<(), TxnError> {
        crate::group::store::ensure_topic(broker)
            .await
            .map_err(|_| TxnError::CoordinatorNotAvailable)?;
        let partition = broker.groups.partition_for(group_id);
        self.add_partitions(
            broker,
            transactional_id,
            producer_id,
            producer_epoch,
            &[(OFFSETS_TOPIC.to_string(), partition)],
            tv2,
        )
        .await
    }

    /// Verifies that the group's `__consumer_offsets` partition is in the transaction (a
    /// TxnOffsetCommit from a transaction version 1 client, after its AddOffsetsToTxn).
    pub async fn verify_offsets(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group_id: &str,
    ) -> Result<(), TxnError> {
        let partition = (
            OFFSETS_TOPIC.to_string(),
            broker.groups.partition_for(group_id),
        );
        self.verify_partition(
            broker,
            transactional_id,
            producer_id,
            producer_epoch,
            &partition,
        )
        .await
    }

    /// EndTxn: writes PrepareCommit/PrepareAbort and answers; the markers and the Complete
    /// state follow in the background. `tv2` (EndTxn v5+) bumps the epoch. Returns the producer
    /// id and epoch the client continues with (EndTxn v5+ answers them).
    pub async fn end_txn(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        tv2: bool,
    ) -> Result<(i64, i16), TxnError> {
        self.ensure_loaded(broker, self.partition_for(transactional_id), false)
            .await?;
        let mut new_producer_id = None;
        loop {
            let decision = {
                let mut inner = self.lock();
                let meta = inner
                    .txns
                    .get_mut(transactional_id)
                    .ok_or(TxnError::InvalidProducerIdMapping)?;
                let decision = if tv2 {
                    meta.prepare_end_v2(
                        producer_id,
                        producer_epoch,
                        commit,
                        new_producer_id,
                        now_ms(),
                    )?
                } else {
                    meta.prepare_end(producer_id, producer_epoch, commit, now_ms())?
                };
                (decision, (meta.producer_id, meta.producer_epoch))
            };
            match decision {
                (EndDecision::NeedProducerId, _) => {
                    new_producer_id = Some(allocate(broker).await?);
                }
                (EndDecision::AlreadyDone, current) => return Ok(current),
                (EndDecision::Prepare(t), _) => {
                    self.write(broker, transactional_id, &t).await?;
                    let completion = self.spawn_completion(broker, transactional_id.to_string());
                    // The outcome is durable now; Kafka answers here. Waiting (bounded) for the
                    // markers too spares the client's next transaction a CONCURRENT_TRANSACTIONS
                    // retry (librdkafka backs off 20 ms or more), which costs more than the wait.
                    let _ = tokio::time::timeout(END_TXN_COMPLETION_WAIT, completion).await;
                    return Ok(t.continuing_producer());
                }
            }
        }
    }

    /// DescribeTransactions: each id, or the error for it.
    pub async fn describe(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
    ) -> Result<TxnDescription, TxnError> {
        match self
            .ensure_loaded(broker, self.partition_for(transactional_id), false)
            .await
        {
            // No `__transaction_state` yet: no transactional id exists.
            Err(TxnError::InvalidProducerIdMapping) => {
                return Err(TxnError::TransactionalIdNotFound)
            }
            other => other?,
        }
        let inner = self.lock();
        let meta = inner
            .txns
            .get(transactional_id)
            .filter(|m| m.state != TxnState::Dead)
            .ok_or(TxnError::TransactionalIdNotFound)?;
        Ok(describe(meta))
    }

    /// ListTransactions: every loaded id, filtered as the request asks.
    pub async fn list(
        &self,
        broker: &Arc<Broker>,
        states: &[TxnState],
        producer_ids: &[i64],
        min_duration_ms: i64,
    ) -> Vec<TxnDescription> {
        self.load_all(broker).await;
        let now = now_ms();
        let inner = self.lock();
        let mut out: Vec<TxnDescription> = inner
            .txns
            .values()
            .filter(|m| m.state != TxnState::Dead)
            .filter(|m| states.is_empty() || states.contains(&m.state))
            .filter(|m| producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
            .filter(|m| {
                min_duration_ms < 0
                    || (m.state == TxnState::Ongoing
                        && m.start_timestamp_ms >= 0
                        && now - m.start_timestamp_ms >= min_duration_ms)
            })
            .map(describe)
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }

    /// Writes a transition and applies it; on failure the metadata stays as it was.
    async fn write(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
        t: &Transit,
    ) -> Result<(), TxnError> {
        let result = self.append(broker, transactional_id, t).await;
        let mut inner = self.lock();
        let Some(meta) = inner.txns.get_mut(transactional_id) else {
            return Err(TxnError::CoordinatorNotAvailable);
        };
        match result {
            Ok(()) => {
                meta.complete(t);
                if meta.state == TxnState::Dead {
                    inner.txns.remove(transactional_id);
                }
                Ok(())
            }
            Err(e) => {
                meta.abandon();
                Err(e)
            }
        }
    }

    async fn append(
        &self,
        broker: &Arc<Broker>,
        transactional_id: &str,
        t: &Transit,
    ) -> Result<(), TxnError> {
        let key = records::encode_key(transactional_id).map_err(|_| TxnError::InvalidRequest)?;
        let value = if t.state == TxnState::Dead {
            None
        } else {
            Some(records::encode_value(t).map_err(|_| TxnError::InvalidRequest)?)
        };
        let partition = state_partition(broker, self.partition_for(transactional_id))?;
        let record: Vec<KeyValue> = vec![(key, value)];
        let now = now_ms();
        match crate::handlers::blocking(move || log_store::append(&partition, &record, now)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                warn!("writing {TRANSACTION_STATE_TOPIC} for {transactional_id:?} failed: {e}");
                Err(TxnError::CoordinatorNotAvailable)
            }
            Err(_) => Err(TxnError::CoordinatorNotAvailable),
        }
    }

    /// Sends the markers of a PrepareCommit/PrepareAbort transaction and writes its Complete
    /// state, retrying until it is done or the broker stops.
    fn spawn_completion(
        &self,
        broker: &Arc<Broker>,
        transactional_id: String,
    ) -> tokio::task::JoinHandle<()> {
        let broker = broker.clone();
        tokio::spawn(async move {
            let coordinator = broker.txns.clone();
            coordinator.complete(&broker, &transactional_id).await;
        })
    }

    async fn complete(&self, broker: &Arc<Broker>, transactional_id: &str) {
        let mut stopping = broker.stopping();
        let mut backoff = Duration::from_millis(20);
        let Some((marker, mut remaining)) = self.marker_for(broker, transactional_id) else {
            return;
        };
        for (topic, partition) in &remaining {
            if topic == OFFSETS_TOPIC {
                if let Err(e) = broker.groups.load_for_txn_markers(broker, *partition).await {
                    warn!("transaction {transactional_id:?}: loading {topic}-{partition}: {e}");
                }
            }
        }
        loop {
            let mut attempt = marker.clone();
            attempt.partitions = remaining.clone();
            let results = write_txn_markers(&broker.clone(), attempt).await;
            let mut retry = Vec::new();
            for (topic, partition, code) in results {
                if code == 0 {
                    if topic == OFFSETS_TOPIC {
                        broker.groups.complete_txn_offsets(
                            marker.producer_id,
                            marker.commit,
                            partition,
                        );
                    }
                    continue;
                }
                // A deleted topic or partition will never take the marker (Kafka drops it too).
                if code == crate::error::UNKNOWN_TOPIC_OR_PARTITION {
                    warn!("transaction {transactional_id:?}: {topic}-{partition} is gone, its marker is dropped");
                    continue;
                }
                // The partition has seen a newer epoch of this producer or a newer coordinator:
                // retrying cannot succeed (Kafka stops sending these too).
                if code == ResponseError::InvalidProducerEpoch.code()
                    || code == ResponseError::TransactionCoordinatorFenced.code()
                {
                    warn!("transaction {transactional_id:?}: {topic}-{partition} refused the marker (error {code}); not retried");
                    continue;
                }
                retry.push((topic, partition));
            }
            if retry.is_empty() {
                break;
            }
            remaining = retry;
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        loop {
            let transit = {
                let mut inner = self.lock();
                let Some(meta) = inner.txns.get_mut(transactional_id) else {
                    return;
                };
                match meta.prepare_complete(now_ms()) {
                    Ok(t) => t,
                    Err(_) => return, // already completed (a concurrent completion)
                }
            };
            if self.write(broker, transactional_id, &transit).await.is_ok() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// The marker a PrepareCommit/PrepareAbort transaction needs, and its partitions.
    fn marker_for(
        &self,
        broker: &Broker,
        transactional_id: &str,
    ) -> Option<(TxnMarker, Vec<(String, i32)>)> {
        let coordinator_epoch = match broker.replicas.get(
            TRANSACTION_STATE_TOPIC,
            self.partition_for(transactional_id),
        ) {
            Lookup::Leader(p) => p.leader_epoch(),
            _ => 0,
        };
        let inner = self.lock();
        let meta = inner.txns.get(transactional_id)?;
        let commit = match meta.state {
            TxnState::PrepareCommit => true,
            TxnState::PrepareAbort => false,
            _ => return None,
        };
        let partitions: Vec<(String, i32)> = meta.partitions.iter().cloned().collect();
        Some((
            TxnMarker {
                producer_id: meta.producer_id,
                producer_epoch: meta.producer_epoch,
                coordinator_epoch,
                commit,
                partitions: partitions.clone(),
            },
            partitions,
        ))
    }

    /// Aborts every open transaction past its timeout, with an epoch bump that fences the
    /// producer if it comes back.
    async fn abort_timed_out(&self, broker: &Arc<Broker>) {
        let now = now_ms();
        let mut aborted = Vec::new();
        {
            let mut inner = self.lock();
            for (id, meta) in inner.txns.iter_mut() {
                if meta.timed_out(now) {
                    if let Ok(t) = meta.prepare_timeout_abort(now) {
                        aborted.push((id.clone(), t));
                    }
                }
            }
        }
        for (id, t) in aborted {
            info!(
                "transactional id {id:?}: transaction timed out after {} ms, aborting it (epoch {} fenced)",
                t.timeout_ms, t.last_producer_epoch
            );
            if self.write(broker, &id, &t).await.is_ok() {
                self.spawn_completion(broker, id);
            }
        }
    }

    /// Removes ids idle for `transactional.id.expiration.ms` (a tombstone each).
    async fn expire_ids(&self, broker: &Arc<Broker>) {
        let now = now_ms();
        let mut dead = Vec::new();
        {
            let mut inner = self.lock();
            for (id, meta) in inner.txns.iter_mut() {
                if meta.expired(now, self.config.id_expiration_ms) {
                    if let Ok(t) = meta.prepare_dead(now) {
                        dead.push((id.clone(), t));
                    }
                }
            }
        }
        for (id, t) in dead {
            if self.write(broker, &id, &t).await.is_ok() {
                info!("transactional id {id:?} expired (transactional.id.expiration.ms)");
            }
        }
    }

    /// Loads every `__transaction_state` partition this broker leads.
    async fn load_all(&self, broker: &Arc<Broker>) {
        if broker.image().topic(TRANSACTION_STATE_TOPIC).is_none() {
            return;
        }
        for partition in 0..self.config.state_log_partitions {
            if let Err(e) = self.ensure_loaded(broker, partition, false).await {
                if e != TxnError::NotCoordinator {
                    warn!("loading {TRANSACTION_STATE_TOPIC}-{partition} failed: {e}");
                }
            }
        }
    }

    /// Replays a partition of `__transaction_state` if it is not loaded yet. With `create`,
    /// creates the topic first (a write is coming).
    async fn ensure_loaded(
        &self,
        broker: &Arc<Broker>,
        partition: i32,
        create: bool,
    ) -> Result<(), TxnError> {
        self.start(broker);
        if self.lock().loaded.contains(&partition) {
            return Ok(());
        }
        if broker.image().topic(TRANSACTION_STATE_TOPIC).is_none() {
            if !create {
                return Err(TxnError::InvalidProducerIdMapping);
            }
            self.ensure_topic(broker).await?;
        }
        let _serial = self.loading.lock().await;
        if self.lock().loaded.contains(&partition) {
            return Ok(());
        }
        let log = state_partition(broker, partition)?.log.clone();
        let started = Instant::now();
        let replayed = crate::handlers::blocking(move || log_store::replay(&log))
            .await
            .map_err(|_| TxnError::CoordinatorNotAvailable)?
            .map_err(|e| {
                warn!("replaying {TRANSACTION_STATE_TOPIC}-{partition} failed: {e}");
                TxnError::CoordinatorNotAvailable
            })?;
        let count = replayed.len();
        let mut latest: HashMap<String, Option<Transit>> = HashMap::new();
        for (offset, key, value) in replayed {
            let id = match records::decode_key(&key) {
                Ok(Some(id)) => id,
                Ok(None) => continue,
                Err(e) => {
                    warn!("skipping undecodable {TRANSACTION_STATE_TOPIC} key at {offset}: {e}");
                    continue;
                }
            };
            match value.map(|v| records::decode_value(&v)) {
                None => {
                    latest.insert(id, None);
                }
                Some(Ok(t)) => {
                    latest.insert(id, Some(t));
                }
                Some(Err(e)) => {
                    warn!("skipping undecodable {TRANSACTION_STATE_TOPIC} value at {offset}: {e}")
                }
            }
        }
        let mut unfinished = Vec::new();
        let mut ids = 0usize;
        {
            let mut inner = self.lock();
            for (id, t) in latest {
                let Some(t) = t else { continue };
                if t.state == TxnState::Dead {
                    continue;
                }
                if matches!(t.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
                    unfinished.push(id.clone());
                }
                ids += 1;
                inner.txns.insert(id.clone(), TxnMetadata::loaded(id, t));
            }
            inner.loaded.insert(partition);
        }
        if count > 0 {
            info!(
                "loaded {ids} transactional ids from {count} records of {TRANSACTION_STATE_TOPIC}-{partition} in {:?} ({} to complete)",
                started.elapsed(),
                unfinished.len()
            );
        }
        for id in unfinished {
            self.spawn_completion(broker, id);
        }
        Ok(())
    }

    /// Creates `__transaction_state` if it does not exist yet.
    async fn ensure_topic(&self, broker: &Arc<Broker>) -> Result<(), TxnError> {
        if broker.image().topic(TRANSACTION_STATE_TOPIC).is_some() {
            return Ok(());
        }
        let partitions = self.config.state_log_partitions;
        let request = CreateTopicRequest {
            name: TRANSACTION_STATE_TOPIC.to_string(),
            num_partitions: partitions,
            replication_factor: -1,
            assignments: Vec::new(),
            // As for __consumer_offsets: compacted in Kafka; no time or size retention here
            // (vltava-log has no cleaner yet), so no state is ever lost.
            configs: vec![
                ("cleanup.policy".into(), "compact".into()),
                ("retention.ms".into(), "-1".into()),
                ("retention.bytes".into(), "-1".into()),
                (
                    "segment.bytes".into(),
                    self.config.state_log_segment_bytes.to_string(),
                ),
            ],
        };
        let mut results = broker
            .quorum
            .create_topics(vec![request], false, broker.topic_defaults())
            .await;
        match results.pop() {
            Some(Ok(_)) => info!("created {TRANSACTION_STATE_TOPIC} with {partitions} partitions"),
            Some(Err(ControllerError::TopicAlreadyExists(_))) => {}
            Some(Err(e)) => {
                warn!("creating {TRANSACTION_STATE_TOPIC} failed: {e}");
                return Err(TxnError::CoordinatorNotAvailable);
            }
            None => return Err(TxnError::CoordinatorNotAvailable),
        }
        broker.sync_replicas().await;
        Ok(())
    }
}

/// InitProducerId for a non-null transactional id (called by the InitProducerId handler):
/// the producer id and epoch, or Kafka's error code (PRODUCER_FENCED for a stale epoch; the
/// handler answers INVALID_PRODUCER_EPOCH instead to clients before v4, KIP-588).
pub async fn init_producer_id(
    broker: &Arc<Broker>,
    transactional_id: &str,
    transaction_timeout_ms: i32,
    expected: Option<(i64, i16)>,
) -> Result<(i64, i16), i16> {
    broker
        .txns
        .init_producer_id(broker, transactional_id, transaction_timeout_ms, expected)
        .await
        .map_err(TxnError::code)
}

fn describe(meta: &TxnMetadata) -> TxnDescription {
    TxnDescription {
        transactional_id: meta.transactional_id.clone(),
        producer_id: meta.producer_id,
        producer_epoch: meta.producer_epoch,
        state: meta.state,
        timeout_ms: meta.timeout_ms,
        start_timestamp_ms: meta.start_timestamp_ms,
        partitions: meta.partitions.clone(),
    }
}

async fn allocate(broker: &Arc<Broker>) -> Result<i64, TxnError> {
    crate::txn::producer_ids::allocate_producer_id(broker)
        .await
        .map_err(|code| {
            warn!("allocating a producer id failed with error code {code}");
            TxnError::CoordinatorNotAvailable
        })
}

/// The local leader of a `__transaction_state` partition, or why this broker cannot coordinate.
fn state_partition(
    broker: &Broker,
    index: i32,
) -> Result<Arc<crate::replica::Partition>, TxnError> {
    match broker.replicas.get(TRANSACTION_STATE_TOPIC, index) {
        Lookup::Leader(p) => Ok(p),
        Lookup::NotLeader => Err(TxnError::NotCoordinator),
        Lookup::Unknown => Err(TxnError::CoordinatorNotAvailable),
    }
}

/// Every `transaction.abort.timed.out.transaction.cleanup.interval.ms`: load what this broker
/// leads (after a restart), abort timed-out transactions; every
/// `transaction.remove.expired.transaction.cleanup.interval.ms`: expire idle ids.
async fn run_background(broker: Weak<Broker>) {
    let Some(strong) = broker.upgrade() else {
        return;
    };
    let config = strong.txns.config().clone();
    let mut stopping = strong.stopping();
    drop(strong);
    let mut tick =
        tokio::time::interval(Duration::from_millis(config.abort_check_interval_ms.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let expire_every = Duration::from_millis(config.remove_expired_interval_ms.max(1));
    let mut last_expiry = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        let Some(broker) = broker.upgrade() else {
            return;
        };
        let txns = broker.txns.clone();
        txns.load_all(&broker).await;
        txns.abort_timed_out(&broker).await;
        if last_expiry.elapsed() >= expire_every {
            last_expiry = Instant::now();
            txns.expire_ids(&broker).await;
        }
    }
}
