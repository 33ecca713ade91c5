//! The group coordinator: owns this broker's groups (those whose `__consumer_offsets` partition
//! it leads), feeds requests and timer expiries to the [`ClassicGroup`] state machines, writes
//! what they decide through [`store`], and answers delayed JoinGroup/SyncGroup requests.
//!
//! Locking: one `std::sync::Mutex` over all groups, never held across `.await`; every write to
//! the log happens after it is released, and responses that depend on a write are sent only after
//! the write is fsynced. Timers: one task sleeps until the earliest group deadline (a `BTreeSet`
//! of deadlines) and is woken through a `Notify` when an earlier one appears; no polling.
//! Partitions of `__consumer_offsets` are replayed lazily, the first time a request needs one.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, Once, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};
use tracing::{debug, warn};

use super::classic::{Effect, JoinRequest, JoinResponse, JoinStart, SyncResult, SyncStart};
use super::offsets::GroupOffsets;
use super::records::{self, RecordKey};
use super::store::{self, KeyValue};
use super::{partition_for, ClassicGroup, GroupConfig, GroupError, GroupState};
use crate::broker::{now_ms, Broker};

mod admin;
mod commit;
mod load;
mod txn_offsets;

pub use admin::GroupListing;
pub use commit::TopicOffsets;

/// A group and its committed offsets.
#[derive(Debug)]
pub struct GroupEntry {
    pub group: ClassicGroup,
    pub offsets: GroupOffsets,
}

impl GroupEntry {
    fn new(group: ClassicGroup) -> GroupEntry {
        GroupEntry {
            group,
            offsets: GroupOffsets::default(),
        }
    }

    /// A group that never completed a rebalance and has nothing committed nor pending (a
    /// failed or abandoned first join): nothing was written for it, nothing to keep.
    fn is_disposable(&self) -> bool {
        self.group.state() == GroupState::Empty
            && self.group.generation_id() == 0
            && self.group.is_empty()
            && self.offsets.is_empty()
            && self.group.next_deadline().is_none()
    }
}

type WaiterKey = (String, String);

#[derive(Debug, Default)]
struct Inner {
    groups: HashMap<String, GroupEntry>,
    /// `__consumer_offsets` partitions replayed into `groups`.
    loaded: HashSet<i32>,
    timers: BTreeSet<(u64, String)>,
    scheduled: HashMap<String, u64>,
    join_waiters: HashMap<WaiterKey, oneshot::Sender<JoinResponse>>,
    sync_waiters: HashMap<WaiterKey, oneshot::Sender<SyncResult>>,
    /// Offsets of open transactions: producer id → group → offsets (TxnOffsetCommit).
    pending_txn: HashMap<i64, HashMap<String, txn_offsets::PendingOffsets>>,
}

/// One offset to commit, as the request gave it.
#[derive(Debug, Clone)]
pub struct OffsetToCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug)]
pub struct GroupCoordinator {
    config: GroupConfig,
    inner: Mutex<Inner>,
    wake: Notify,
    epoch: Instant,
    timers_started: Once,
    /// Serializes replays of `__consumer_offsets` partitions (held across the replay, which
    /// is why it is tokio's; no std lock is held meanwhile).
    loading: tokio::sync::Mutex<()>,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator {
            config,
            inner: Mutex::new(Inner::default()),
            wake: Notify::new(),
            epoch: Instant::now(),
            timers_started: Once::new(),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// The `__consumer_offsets` partition of a group.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.config.offsets_topic_partitions)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Monotonic milliseconds for the state machines.
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn start_timers(&self, broker: &Arc<Broker>) {
        self.timers_started.call_once(|| {
            let weak = Arc::downgrade(broker);
            tokio::spawn(run_timers(weak.clone()));
            tokio::spawn(run_retention(
                weak,
                Duration::from_millis(self.config.offsets_retention_check_interval_ms.max(1)),
            ));
        });
    }

    /// Puts the group's next deadline in the timer set (or removes it).
    fn reschedule(inner: &mut Inner, group_id: &str) {
        if let Some(old) = inner.scheduled.remove(group_id) {
            inner.timers.remove(&(old, group_id.to_string()));
        }
        let next = inner
            .groups
            .get(group_id)
            .and_then(|e| e.group.next_deadline());
        if let Some(deadline) = next {
            inner.scheduled.insert(group_id.to_string(), deadline);
            inner.timers.insert((deadline, group_id.to_string()));
        }
    }

    /// After a state-machine call: reschedules the group and, if the call asked for it, builds
    /// the group's metadata record to write before the effects are delivered.
    fn after_call(&self, inner: &mut Inner, group_id: &str, effects: &[Effect]) -> Vec<KeyValue> {
        Self::reschedule(inner, group_id);
        if let Some(entry) = inner.groups.get(group_id) {
            let g = &entry.group;
            for effect in effects {
                if let Effect::Join {
                    member_id,
                    response,
                } = effect
                {
                    debug!(
                        "group {group_id:?}: join answered for {member_id} (error {:?}, generation {})",
                        response.error, response.generation_id
                    );
                }
            }
            debug!(
                "group {group_id:?}: {} generation {} with {} members",
                g.state().name(),
                g.generation_id(),
                g.members().count()
            );
        }
        if !effects.contains(&Effect::Persist) {
            return Vec::new();
        }
        match inner.groups.get_mut(group_id) {
            Some(entry) => {
                // Every transition to Empty or Stable persists: that is when the state changed.
                entry.group.state_timestamp_ms = now_ms();
                group_metadata_record(&entry.group).into_iter().collect()
            }
            None => Vec::new(),
        }
    }

    /// Writes `records` (if any) to the group's partition, then answers the waiting members.
    async fn finish(
        &self,
        broker: &Arc<Broker>,
        group_id: &str,
        records: Vec<KeyValue>,
        mut effects: Vec<Effect>,
    ) {
        if !records.is_empty() {
            if let Err(e) = self.write(broker, group_id, records).await {
                warn!("writing group {group_id:?} metadata failed: {e}");
                for effect in &mut effects {
                    match effect {
                        Effect::Join { response, .. } => {
                            *response = JoinResponse::error(e.clone(), response.member_id.clone())
                        }
                        Effect::Sync { result, .. } => *result = Err(e.clone()),
                        Effect::Persist => {}
                    }
                }
            }
        }
        let mut inner = self.lock();
        for effect in effects {
            match effect {
                Effect::Join {
                    member_id,
                    response,
                } => {
                    let key = (group_id.to_string(), member_id);
                    if let Some(tx) = inner.join_waiters.remove(&key) {
                        let _ = tx.send(response);
                    }
                }
                Effect::Sync { member_id, result } => {
                    let key = (group_id.to_string(), member_id);
                    if let Some(tx) = inner.sync_waiters.remove(&key) {
                        let _ = tx.send(result);
                    }
                }
                Effect::Persist => {}
            }
        }
        if inner
            .groups
            .get(group_id)
            .is_some_and(GroupEntry::is_disposable)
        {
            inner.groups.remove(group_id);
            Self::reschedule(&mut inner, group_id);
        }
    }

    /// Appends and fsyncs records on the group's partition; returns the base offset.
    async fn write(
        &self,
        broker: &Arc<Broker>,
        group_id: &str,
        records: Vec<KeyValue>,
    ) -> Result<i64, GroupError> {
        let partition = store::partition(broker, self.partition_for(group_id))?;
        let now = now_ms();
        super::super::handlers::blocking(move || store::append(&partition, &records, now))
            .await
            .map_err(|e| GroupError::Storage(e.to_string()))?
            .map_err(GroupError::from)
    }

    /// JoinGroup; waits (as long as the rebalance takes) when the member must.
    pub async fn join(
        &self,
        broker: &Arc<Broker>,
        group_id: &str,
        mut request: JoinRequest,
    ) -> JoinResponse {
        if group_id.is_empty() {
            return JoinResponse::error(GroupError::InvalidGroupId, request.member_id);
        }
        if let Err(e) = self
            .ensure_loaded(broker, self.partition_for(group_id), true)
            .await
        {
            return JoinResponse::error(e, request.member_id);
        }
        let uuid = vltava_meta::Uuid::new_v4();
        request.new_member_id = match &request.group_instance_id {
            Some(instance) => format!("{instance}-{uuid}"),
            None => format!("{}-{uuid}", request.client_id),
        };
        let now = self.now();
        let (start, effects, records, waiter) = {
            let mut inner = self.lock();
            if !inner.groups.contains_key(group_id) {
                if !request.member_id.is_empty() {
                    return JoinResponse::error(GroupError::UnknownMemberId, request.member_id);
                }
                if inner.groups.len() >= self.config.max_groups {
                    return JoinResponse::error(GroupError::TooManyGroups, request.member_id);
                }
                let group = ClassicGroup::new(group_id.to_string(), self.config.clone());
                inner
                    .groups
                    .insert(group_id.to_string(), GroupEntry::new(group));
            }
            let Some(entry) = inner.groups.get_mut(group_id) else {
                return JoinResponse::error(GroupError::CoordinatorNotAvailable, String::new());
            };
            let mut effects = Vec::new();
            let start = entry.group.join(request, now, &mut effects);
            let waiter = match &start {
                JoinStart::Wait { member_id } => {
                    let (tx, rx) = oneshot::channel();
                    inner
                        .join_waiters
                        .insert((group_id.to_string(), member_id.clone()), tx);
                    Some((member_id.clone(), rx))
                }
                JoinStart::Reply(_) => None,
            };
            let records = self.after_call(&mut inner, group_id, &effects);
            (start, effects, records, waiter)
        };
        self.wake.notify_one();
        self.finish(broker, group_id, records, effects).await;
        match (start, waiter) {
            (JoinStart::Reply(response), _) => response,
            (JoinStart::Wait { .. }, Some((member_id, rx))) => {
                match until_shutdown(broker, rx).await {
                    Some(Ok(response)) => response,
                    // A newer JoinGroup from the same member replaced this one.
                    Some(Err(_)) => JoinResponse::error(GroupError::RebalanceInProgress, member_id),
                    None => JoinResponse::error(GroupError::NotCoordinator, member_id),
                }
            }
            (JoinStart::Wait { member_id }, None) => {
                JoinResponse::error(GroupError::CoordinatorNotAvailable, member_id)
            }
        }
    }

    /// SyncGroup; followers wait for the leader's assignment.
    #[allow(clippy::too_many_arguments)]
    pub async fn sync(
        &self,
        broker: &Arc<Broker>,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResult {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        self.ensure_loaded(broker, self.partition_for(group_id), true)
            .await?;
        let now = self.now();
        let (start, effects, records, waiter) = {
            let mut inner = self.lock();
            let Some(entry) = inner.groups.get_mut(group_id) else {
                return Err(GroupError::UnknownMemberId);
            };
            let mut effects = Vec::new();
            let start = entry.group.sync(
                member_id,
                group_instance_id,
                generation_id,
                protocol_type,
                protocol_name,
                assignments,
                now,
                &mut effects,
            );
            let waiter = match start {
                SyncStart::Wait => {
                    let (tx, rx) = oneshot::channel();
                    inner
                        .sync_waiters
                        .insert((group_id.to_string(), member_id.to_string()), tx);
                    Some(rx)
                }
                SyncStart::Reply(_) => None,
            };
            let records = self.after_call(&mut inner, group_id, &effects);
            (start, effects, records, waiter)
        };
        self.wake.notify_one();
        self.finish(broker, group_id, records, effects).await;
        match (start, waiter) {
            (SyncStart::Reply(result), _) => result,
            (SyncStart::Wait, Some(rx)) => match until_shutdown(broker, rx).await {
                Some(result) => result.unwrap_or(Err(GroupError::RebalanceInProgress)),
                None => Err(GroupError::NotCoordinator),
            },
            (SyncStart::Wait, None) => Err(GroupError::CoordinatorNotAvailable),
        }
    }

    pub async fn heartbeat(
        &self,
        broker: &Arc<Broker>,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        self.ensure_loaded(broker, self.partition_for(group_id), true)
            .await?;
        let now = self.now();
        let mut inner = self.lock();
        let Some(entry) = inner.groups.get_mut(group_id) else {
            return Err(GroupError::UnknownMemberId);
        };
        let result = entry
            .group
            .heartbeat(member_id, group_instance_id, generation_id, now);
        Self::reschedule(&mut inner, group_id);
        drop(inner);
        self.wake.notify_one();
        result
    }

    /// LeaveGroup: one result per leaving member, or an error for the whole request.
    pub async fn leave(
        &self,
        broker: &Arc<Broker>,
        group_id: &str,
        leaving: Vec<(String, Option<String>)>,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        self.ensure_loaded(broker, self.partition_for(group_id), true)
            .await?;
        let now = self.now();
        let (results, effects, records) = {
            let mut inner = self.lock();
            let Some(entry) = inner.groups.get_mut(group_id) else {
                return Err(GroupError::UnknownMemberId);
            };
            let mut effects = Vec::new();
            let results = entry.group.leave(&leaving, now, &mut effects)?;
            let records = self.after_call(&mut inner, group_id, &effects);
            (results, effects, records)
        };
        self.wake.notify_one();
        self.finish(broker, group_id, records, effects).await;
        Ok(results)
    }

    /// Runs every timer due now, for every group.
    async fn fire_timers(&self, broker: &Arc<Broker>) {
        let now = self.now();
        let mut due = Vec::new();
        {
            let mut inner = self.lock();
            while let Some((deadline, id)) = inner.timers.first().cloned() {
                if deadline > now {
                    break;
                }
                inner.timers.remove(&(deadline, id.clone()));
                inner.scheduled.remove(&id);
                let Some(entry) = inner.groups.get_mut(&id) else {
                    continue;
                };
                let mut effects = Vec::new();
                entry.group.on_timer(now, &mut effects);
                let records = self.after_call(&mut inner, &id, &effects);
                due.push((id, records, effects));
            }
        }
        for (id, records, effects) in due {
            self.finish(broker, &id, records, effects).await;
        }
    }

    fn next_deadline(&self) -> Option<u64> {
        self.lock().timers.first().map(|(d, _)| *d)
    }
}

/// The GroupMetadata record for a group's current state (a tombstone once it is Dead).
pub(super) fn group_metadata_record(group: &ClassicGroup) -> Option<KeyValue> {
    let key = records::encode_key(&RecordKey::GroupMetadata {
        group: group.group_id().to_string(),
    })
    .ok()?;
    if group.state() == GroupState::Dead {
        return Some((key, None));
    }
    let protocol = group.protocol_name().map(str::to_string);
    let value = records::GroupMetadataValue {
        protocol_type: group.protocol_type().unwrap_or_default().to_string(),
        generation: group.generation_id(),
        protocol: protocol.clone(),
        leader: group.leader_id().map(str::to_string),
        current_state_timestamp: group.state_timestamp_ms,
        members: group
            .members()
            .map(|m| records::MemberMetadata {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout: m.rebalance_timeout_ms,
                session_timeout: m.session_timeout_ms,
                subscription: protocol
                    .as_deref()
                    .and_then(|p| m.metadata(p).cloned())
                    .unwrap_or_default(),
                assignment: m.assignment.clone(),
            })
            .collect(),
    };
    match records::encode_group_value(&value) {
        Ok(value) => Some((key, Some(value))),
        Err(e) => {
            warn!("cannot encode group {:?}: {e}", group.group_id());
            None
        }
    }
}

/// Waits for a delayed answer, or `None` once the broker shuts down: a member waiting for a
/// rebalance must not hold the shutdown up (Kafka answers NOT_COORDINATOR when it resigns).
async fn until_shutdown<T>(
    broker: &Broker,
    rx: oneshot::Receiver<T>,
) -> Option<Result<T, oneshot::error::RecvError>> {
    let mut stopping = broker.stopping();
    tokio::select! {
        answer = rx => Some(answer),
        _ = stopping.wait_for(|stop| *stop) => None,
    }
}

/// Sleeps until the earliest group deadline (or a wake-up), then fires what is due.
async fn run_timers(broker: Weak<Broker>) {
    loop {
        let Some(strong) = broker.upgrade() else {
            return;
        };
        let groups = strong.groups.clone();
        drop(strong);
        let next = groups.next_deadline();
        let sleep = async {
            match next {
                Some(deadline) => {
                    tokio::time::sleep_until(
                        tokio::time::Instant::from_std(groups.epoch)
                            + Duration::from_millis(deadline),
                    )
                    .await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = groups.wake.notified() => {}
        }
        let Some(strong) = broker.upgrade() else {
            return;
        };
        groups.fire_timers(&strong).await;
    }
}

/// Every `offsets.retention.check.interval.ms`: expire offsets (Kafka's cleanup cycle).
async fn run_retention(broker: Weak<Broker>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(strong) = broker.upgrade() else {
            return;
        };
        let groups = strong.groups.clone();
        groups.expire_offsets(&strong).await;
    }
}
