//! The classic group state machine (Kafka's `ClassicGroup` and the classic half of
//! `GroupMetadataManager`), without I/O: requests and timer expiries go in with the current
//! time (monotonic milliseconds), responses owed to waiting members come out as [`Effect`]s.
//!
//! States: Empty → PreparingRebalance (members join; the first rebalance of an empty group waits
//! `group.initial.rebalance.delay.ms`, extended while members keep arriving) → CompletingRebalance
//! (every joined member got its JoinGroup response; the leader runs the assignor) → Stable (the
//! leader's SyncGroup delivered every assignment). Dead is a deleted group.
//! Error choice and order follow Kafka 4.x: see `validate_member`, `join`, `sync`, `heartbeat`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;

use super::member::{Member, Protocol};
use super::{GroupConfig, GroupError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka uses in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A JoinGroup request, checked and decoded.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    /// JoinGroup v4+ from a dynamic member: an empty member id gets MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
    /// The id a new member gets (`client.id-uuid`, or `group.instance.id-uuid`): chosen by the
    /// caller so this module stays deterministic.
    pub new_member_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: Option<GroupError>,
    pub member_id: String,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    /// Every member with its metadata for the chosen protocol; only the leader gets them.
    pub members: Vec<JoinMember>,
}

impl JoinResponse {
    pub fn error(error: GroupError, member_id: String) -> JoinResponse {
        JoinResponse {
            error: Some(error),
            member_id,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

pub type SyncResult = Result<SyncResponse, GroupError>;

/// Something the coordinator must do after a call: answer a waiting member, or write the
/// group's metadata (before it answers anyone from the same call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Join {
        member_id: String,
        response: JoinResponse,
    },
    Sync {
        member_id: String,
        result: SyncResult,
    },
    Persist,
}

/// How a JoinGroup call starts: answered now, or the caller waits for an [`Effect::Join`]
/// addressed to `member_id` (possibly among the effects of this very call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinStart {
    Reply(JoinResponse),
    Wait { member_id: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncStart {
    Reply(SyncResult),
    Wait,
}

/// The first rebalance of an empty group waits for more members (`InitialDelayedJoin`).
#[derive(Debug, Clone, Copy)]
struct InitialDelay {
    remaining_ms: u64,
    new_member_added: bool,
}

#[derive(Debug, Clone)]
pub struct ClassicGroup {
    group_id: String,
    config: GroupConfig,
    state: GroupState,
    previous_state: GroupState,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader_id: Option<String>,
    members: BTreeMap<String, Member>,
    /// group.instance.id → member id.
    static_members: HashMap<String, String>,
    /// KIP-394: ids handed out with MEMBER_ID_REQUIRED, and when they expire.
    pending_members: BTreeMap<String, u64>,
    /// Members that got their JoinGroup response but have not sent SyncGroup yet.
    pending_sync: BTreeSet<String>,
    join_deadline: Option<u64>,
    initial_delay: Option<InitialDelay>,
    sync_deadline: Option<u64>,
    /// Wall-clock time of the last state change (`currentStateTimestamp`), set by the caller.
    pub state_timestamp_ms: i64,
}

impl ClassicGroup {
    pub fn new(group_id: String, config: GroupConfig) -> ClassicGroup {
        ClassicGroup {
            group_id,
            config,
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            join_deadline: None,
            initial_delay: None,
            sync_deadline: None,
            state_timestamp_ms: -1,
        }
    }

    /// A group as it was written to `__consumer_offsets`: Stable with its members (who must
    /// heartbeat within their session timeouts), or Empty.
    #[allow(clippy::too_many_arguments)]
    pub fn loaded(
        group_id: String,
        config: GroupConfig,
        generation_id: i32,
        protocol_type: Option<String>,
        protocol_name: Option<String>,
        leader_id: Option<String>,
        members: Vec<Member>,
        state_timestamp_ms: i64,
        now: u64,
    ) -> ClassicGroup {
        let mut group = ClassicGroup::new(group_id, config);
        group.generation_id = generation_id;
        group.protocol_type = protocol_type;
        group.state_timestamp_ms = state_timestamp_ms;
        for mut member in members {
            member.awaiting_join = false;
            member.awaiting_sync = false;
            member.is_new = false;
            member.session_deadline = Some(now + timeout(member.session_timeout_ms));
            if let Some(instance) = &member.group_instance_id {
                group
                    .static_members
                    .insert(instance.clone(), member.member_id.clone());
            }
            group.members.insert(member.member_id.clone(), member);
        }
        if !group.members.is_empty() {
            group.state = GroupState::Stable;
            group.protocol_name = protocol_name;
            group.leader_id = leader_id
                .filter(|l| group.members.contains_key(l))
                .or_else(|| group.members.keys().next().cloned());
        }
        group
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }
    pub fn state(&self) -> GroupState {
        self.state
    }
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }
    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }
    pub fn leader_id(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }
    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.get(member_id)
    }
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
    pub fn static_member_id(&self, instance: &str) -> Option<&str> {
        self.static_members.get(instance).map(String::as_str)
    }

    /// Marks a deleted group (DeleteGroups, or all of its offsets gone while Empty).
    pub fn set_dead(&mut self) {
        self.transition(GroupState::Dead);
    }

    /// Approximate bytes held by members, for the coordinator's memory bound.
    pub fn footprint(&self) -> usize {
        self.group_id.len() + self.members.values().map(Member::footprint).sum::<usize>()
    }

    /// The earliest time at which [`ClassicGroup::on_timer`] has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        let members = self.members.values().filter_map(|m| m.session_deadline);
        let pending = self.pending_members.values().copied();
        members
            .chain(pending)
            .chain(self.join_deadline)
            .chain(self.sync_deadline)
            .min()
    }

    fn rebalance_timeout(&self) -> u64 {
        self.members
            .values()
            .map(|m| timeout(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    fn transition(&mut self, to: GroupState) {
        self.previous_state = self.state;
        self.state = to;
    }

    /// `ClassicGroup.validateMember`: a static member must be the current holder of its
    /// instance id (else FENCED_INSTANCE_ID), and the member must exist.
    pub fn validate_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if let Some(instance) = group_instance_id {
            match self.static_members.get(instance) {
                None => return Err(GroupError::UnknownMemberId),
                Some(existing) if existing != member_id => {
                    return Err(GroupError::FencedInstanceId)
                }
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        Ok(())
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.state == GroupState::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|p| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|q| q.name == p.name))
            })
    }

    /// The protocol every member supports that most members prefer (Kafka's vote).
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|q| q.name == *name))
            })
            .collect();
        let mut votes: Vec<(&str, usize)> = candidates.iter().map(|c| (*c, 0)).collect();
        for member in self.members.values() {
            if let Some(choice) = member.vote(&candidates) {
                if let Some(entry) = votes.iter_mut().find(|(name, _)| *name == choice) {
                    entry.1 += 1;
                }
            }
        }
        // Most votes wins; a tie goes to the first member's preference.
        let mut best: Option<(&str, usize)> = None;
        for (name, count) in votes {
            if best.is_none_or(|(_, c)| count > c) {
                best = Some((name, count));
            }
        }
        best.map(|(name, _)| name.to_string())
    }

    fn accept_joining_member(&self, member_id: &str) -> bool {
        let max = self.config.max_size;
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                self.members.get(member_id).is_some_and(|m| m.awaiting_join)
                    || self.members.values().filter(|m| m.awaiting_join).count() < max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < max
            }
        }
    }
}

impl ClassicGroup {
    /// SyncGroup. `protocol_type`/`protocol_name` are checked when the client sent them (v5+).
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: u64,
        out: &mut Vec<Effect>,
    ) -> SyncStart {
        if self.state == GroupState::Dead {
            return SyncStart::Reply(Err(GroupError::CoordinatorNotAvailable));
        }
        if let Err(e) = self.validate_member(member_id, group_instance_id) {
            return SyncStart::Reply(Err(e));
        }
        if generation_id != self.generation_id {
            return SyncStart::Reply(Err(GroupError::IllegalGeneration));
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol_name.as_deref())
        {
            return SyncStart::Reply(Err(GroupError::InconsistentGroupProtocol));
        }
        match self.state {
            GroupState::PreparingRebalance => {
                SyncStart::Reply(Err(GroupError::RebalanceInProgress))
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.awaiting_sync = true;
                    m.session_deadline = None;
                }
                self.pending_sync.remove(member_id);
                if self.leader_id.as_deref() == Some(member_id) {
                    let mut assigned: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = assigned.remove(&m.member_id).unwrap_or_default();
                    }
                    self.transition(GroupState::Stable);
                    out.push(Effect::Persist);
                    for m in self.members.values_mut() {
                        if m.awaiting_sync {
                            m.awaiting_sync = false;
                            m.session_deadline = Some(now + timeout(m.session_timeout_ms));
                            out.push(Effect::Sync {
                                member_id: m.member_id.clone(),
                                result: Ok(SyncResponse {
                                    protocol_type: self.protocol_type.clone(),
                                    protocol_name: self.protocol_name.clone(),
                                    assignment: m.assignment.clone(),
                                }),
                            });
                        }
                    }
                }
                SyncStart::Wait
            }
            GroupState::Stable => {
                self.pending_sync.remove(member_id);
                let assignment = self
                    .members
                    .get(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                SyncStart::Reply(Ok(SyncResponse {
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment,
                }))
            }
            GroupState::Empty | GroupState::Dead => {
                SyncStart::Reply(Err(GroupError::UnknownMemberId))
            }
        }
    }

    /// Heartbeat: keeps the member alive; REBALANCE_IN_PROGRESS tells it to rejoin.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        now: u64,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        self.validate_member(member_id, group_instance_id)?;
        if generation_id != self.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        if self.state == GroupState::Empty {
            return Err(GroupError::UnknownMemberId);
        }
        if let Some(m) = self.members.get_mut(member_id) {
            if !m.awaiting_join && !m.awaiting_sync {
                m.session_deadline = Some(now + timeout(m.session_timeout_ms));
            }
        }
        if self.state == GroupState::PreparingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// LeaveGroup for each `(member_id, group_instance_id)`; a static member may leave by
    /// instance id alone (member id empty).
    pub fn leave(
        &mut self,
        leaving: &[(String, Option<String>)],
        now: u64,
        out: &mut Vec<Effect>,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let mut results = Vec::with_capacity(leaving.len());
        for (member_id, instance) in leaving {
            let id = match (member_id.is_empty(), instance) {
                (true, Some(instance)) => match self.static_members.get(instance) {
                    Some(id) => id.clone(),
                    None => {
                        results.push(Err(GroupError::UnknownMemberId));
                        continue;
                    }
                },
                _ => member_id.clone(),
            };
            if self.pending_members.remove(&id).is_some() {
                self.maybe_complete_join(now, out);
                results.push(Ok(()));
                continue;
            }
            if let Err(e) = self.validate_member(&id, instance.as_deref()) {
                results.push(Err(e));
                continue;
            }
            self.remove_member_and_update_group(&id, now, out);
            results.push(Ok(()));
        }
        Ok(results)
    }

    /// OffsetCommit checks (`ClassicGroup.validateOffsetCommit`).
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            return Ok(()); // an admin client or a consumer without group management
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            self.validate_member(member_id, group_instance_id)?;
            if generation_id != self.generation_id {
                return Err(GroupError::IllegalGeneration);
            }
        } else if self.state != GroupState::Empty {
            return Err(GroupError::UnknownMemberId);
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// Runs every timer due at `now`: expired sessions and KIP-394 pending members, the end of
    /// the join phase (rebalance timeout or initial delay), members that never synced.
    pub fn on_timer(&mut self, now: u64, out: &mut Vec<Effect>) {
        let expired: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        if !expired.is_empty() {
            for id in &expired {
                self.pending_members.remove(id);
            }
            self.maybe_complete_join(now, out);
        }

        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline.is_some_and(|d| d <= now))
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            let keep = self
                .members
                .get(&id)
                .is_none_or(|m| (m.awaiting_join && !m.is_new) || m.awaiting_sync);
            if keep {
                if let Some(m) = self.members.get_mut(&id) {
                    m.session_deadline = None;
                }
            } else {
                self.remove_member_and_update_group(&id, now, out);
            }
        }

        // Twice: an initial delay that is extended to `now` (a zero delay) completes at once.
        for _ in 0..2 {
            if self.state != GroupState::PreparingRebalance
                || self.join_deadline.is_none_or(|d| d > now)
            {
                break;
            }
            match self.initial_delay {
                Some(delay) if delay.new_member_added && delay.remaining_ms > 0 => {
                    let step = timeout(self.config.initial_rebalance_delay_ms);
                    self.initial_delay = Some(InitialDelay {
                        remaining_ms: delay.remaining_ms.saturating_sub(step),
                        new_member_added: false,
                    });
                    self.join_deadline = Some(now + step.min(delay.remaining_ms));
                }
                _ => self.complete_join(now, out),
            }
        }

        if matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) && self.sync_deadline.is_some_and(|d| d <= now)
        {
            self.sync_deadline = None;
            let missing: Vec<String> = std::mem::take(&mut self.pending_sync).into_iter().collect();
            if !missing.is_empty() {
                for id in &missing {
                    self.remove_member(id, out);
                }
                self.prepare_rebalance(now, out);
            }
        } else if !matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) {
            self.sync_deadline = None;
        }
    }
}

fn reply_error(error: GroupError, member_id: String) -> JoinStart {
    JoinStart::Reply(JoinResponse::error(error, member_id))
}

/// A timeout from the wire (i32 ms; negative treated as zero).
fn timeout(ms: i32) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

mod rebalance;

#[cfg(test)]
#[path = "classic_tests.rs"]
mod tests;
