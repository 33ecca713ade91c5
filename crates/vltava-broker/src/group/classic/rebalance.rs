//! Joining and rebalancing: JoinGroup, the join phase, static member replacement (KIP-345),
//! and removing members. The group rebalances through PreparingRebalance (members rejoin) into
//! CompletingRebalance (everyone got a JoinGroup answer; the leader assigns).

use bytes::Bytes;

use super::{
    reply_error, timeout, ClassicGroup, Effect, GroupState, InitialDelay, JoinMember, JoinRequest,
    JoinResponse, JoinStart,
};
use crate::group::member::Member;
use crate::group::GroupError;

impl ClassicGroup {
    /// JoinGroup.
    pub fn join(&mut self, request: JoinRequest, now: u64, out: &mut Vec<Effect>) -> JoinStart {
        let session = request.session_timeout_ms;
        if session < self.config.min_session_timeout_ms
            || session > self.config.max_session_timeout_ms
        {
            return reply_error(GroupError::InvalidSessionTimeout, request.member_id);
        }
        if !self.accept_joining_member(&request.member_id) {
            return reply_error(GroupError::GroupMaxSizeReached, request.member_id);
        }
        if self.state == GroupState::Dead {
            return reply_error(GroupError::CoordinatorNotAvailable, request.member_id);
        }
        if !self.supports_protocols(&request.protocol_type, &request.protocols) {
            return reply_error(GroupError::InconsistentGroupProtocol, request.member_id);
        }
        if request.member_id.is_empty() {
            self.join_new_member(request, now, out)
        } else {
            self.join_existing_member(request, now, out)
        }
    }

    pub(super) fn join_new_member(
        &mut self,
        request: JoinRequest,
        now: u64,
        out: &mut Vec<Effect>,
    ) -> JoinStart {
        let new_id = request.new_member_id.clone();
        if let Some(instance) = &request.group_instance_id {
            if let Some(old_id) = self.static_members.get(instance).cloned() {
                return self.replace_static_member(old_id, new_id, request, now, out);
            }
            return self.add_member_and_rebalance(new_id, request, now, out);
        }
        if request.require_known_member_id {
            if self.pending_members.len() >= self.config.max_size {
                return reply_error(GroupError::GroupMaxSizeReached, String::new());
            }
            let expiry = now + timeout(request.session_timeout_ms);
            self.pending_members.insert(new_id.clone(), expiry);
            return reply_error(GroupError::MemberIdRequired, new_id);
        }
        self.add_member_and_rebalance(new_id, request, now, out)
    }

    pub(super) fn join_existing_member(
        &mut self,
        request: JoinRequest,
        now: u64,
        out: &mut Vec<Effect>,
    ) -> JoinStart {
        let member_id = request.member_id.clone();
        if self.pending_members.remove(&member_id).is_some() {
            return self.add_member_and_rebalance(member_id, request, now, out);
        }
        if let Err(e) = self.validate_member(&member_id, request.group_instance_id.as_deref()) {
            return reply_error(e, member_id);
        }
        let (matches, is_leader) = match self.members.get(&member_id) {
            Some(m) => (
                m.matches(&request.protocols),
                self.leader_id.as_deref() == Some(&member_id),
            ),
            None => return reply_error(GroupError::UnknownMemberId, member_id),
        };
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(&member_id, request, now, out)
            }
            GroupState::CompletingRebalance if matches => {
                // A duplicate join (the response was lost): answer with this generation again.
                JoinStart::Reply(self.current_join_response(&member_id, is_leader, false))
            }
            GroupState::Stable if matches && !is_leader => {
                JoinStart::Reply(self.current_join_response(&member_id, false, false))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(&member_id, request, now, out)
            }
            GroupState::Empty | GroupState::Dead => {
                reply_error(GroupError::UnknownMemberId, member_id)
            }
        }
    }

    pub(super) fn current_join_response(
        &self,
        member_id: &str,
        with_members: bool,
        skip_assignment: bool,
    ) -> JoinResponse {
        JoinResponse {
            error: None,
            member_id: member_id.to_string(),
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            skip_assignment,
            members: if with_members {
                self.current_member_metadata()
            } else {
                Vec::new()
            },
        }
    }

    pub(super) fn current_member_metadata(&self) -> Vec<JoinMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(protocol).cloned().unwrap_or_default(),
            })
            .collect()
    }

    pub(super) fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        request: JoinRequest,
        now: u64,
        out: &mut Vec<Effect>,
    ) -> JoinStart {
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member_id.clone());
        }
        if let Some(instance) = &request.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: request.group_instance_id,
            client_id: request.client_id,
            client_host: request.client_host,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            session_timeout_ms: request.session_timeout_ms,
            protocols: request.protocols,
            assignment: Bytes::new(),
            awaiting_join: true,
            awaiting_sync: false,
            is_new: true,
            // A new member that never gets its response is dropped after this long.
            session_deadline: Some(now + self.config.new_member_join_timeout_ms),
        };
        self.members.insert(member_id.clone(), member);
        if self.state == GroupState::PreparingRebalance {
            if let Some(delay) = self.initial_delay.as_mut() {
                delay.new_member_added = true;
            }
        }
        self.maybe_prepare_rebalance_or_complete_join(now, out);
        JoinStart::Wait { member_id }
    }

    pub(super) fn update_member_and_rebalance(
        &mut self,
        member_id: &str,
        request: JoinRequest,
        now: u64,
        out: &mut Vec<Effect>,
    ) -> JoinStart {
        if let Some(m) = self.members.get_mut(member_id) {
            m.protocols = request.protocols;
            m.rebalance_timeout_ms = request.rebalance_timeout_ms;
            m.session_timeout_ms = request.session_timeout_ms;
            m.awaiting_join = true;
            if !m.is_new {
                m.session_deadline = None;
            }
        }
        self.maybe_prepare_rebalance_or_complete_join(now, out);
        JoinStart::Wait {
            member_id: member_id.to_string(),
        }
    }

    /// KIP-345: a static member rejoined with an empty member id. The new id takes over the old
    /// member (and its assignment); in Stable with unchanged protocols there is no rebalance.
    pub(super) fn replace_static_member(
        &mut self,
        old_id: String,
        new_id: String,
        request: JoinRequest,
        now: u64,
        out: &mut Vec<Effect>,
    ) -> JoinStart {
        let Some(mut member) = self.members.remove(&old_id) else {
            return reply_error(GroupError::UnknownMemberId, String::new());
        };
        if member.awaiting_join {
            out.push(Effect::Join {
                member_id: old_id.clone(),
                response: JoinResponse::error(GroupError::FencedInstanceId, old_id.clone()),
            });
        }
        if member.awaiting_sync {
            out.push(Effect::Sync {
                member_id: old_id.clone(),
                result: Err(GroupError::FencedInstanceId),
            });
        }
        if self.pending_sync.remove(&old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        if self.leader_id.as_deref() == Some(old_id.as_str()) {
            self.leader_id = Some(new_id.clone());
        }
        if let Some(instance) = &member.group_instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        member.member_id = new_id.clone();
        member.client_id = request.client_id;
        member.client_host = request.client_host;
        member.protocols = request.protocols;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.session_timeout_ms = request.session_timeout_ms;
        member.awaiting_join = true;
        member.awaiting_sync = false;
        member.session_deadline = None;
        self.members.insert(new_id.clone(), member);

        match self.state {
            GroupState::Stable => {
                if self.select_protocol() == self.protocol_name {
                    let is_leader = self.leader_id.as_deref() == Some(new_id.as_str());
                    let response = self.current_join_response(&new_id, is_leader, is_leader);
                    if let Some(m) = self.members.get_mut(&new_id) {
                        m.awaiting_join = false;
                        m.session_deadline = Some(now + timeout(m.session_timeout_ms));
                    }
                    out.push(Effect::Persist);
                    out.push(Effect::Join {
                        member_id: new_id.clone(),
                        response,
                    });
                } else {
                    self.prepare_rebalance(now, out);
                }
            }
            // The leader may be assigning to the old member id: rebalance to be safe.
            GroupState::CompletingRebalance => self.prepare_rebalance(now, out),
            GroupState::PreparingRebalance => self.maybe_complete_join(now, out),
            GroupState::Empty | GroupState::Dead => {}
        }
        JoinStart::Wait { member_id: new_id }
    }

    pub(super) fn maybe_prepare_rebalance_or_complete_join(
        &mut self,
        now: u64,
        out: &mut Vec<Effect>,
    ) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty => {
                self.prepare_rebalance(now, out)
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now, out),
            GroupState::Dead => {}
        }
    }

    pub(super) fn prepare_rebalance(&mut self, now: u64, out: &mut Vec<Effect>) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_assignments_with_error(GroupError::RebalanceInProgress, now, out);
        }
        self.sync_deadline = None;
        self.pending_sync.clear();
        let initial = self.state == GroupState::Empty;
        let rebalance_timeout = self.rebalance_timeout();
        if initial {
            let delay = timeout(self.config.initial_rebalance_delay_ms);
            self.initial_delay = Some(InitialDelay {
                remaining_ms: rebalance_timeout.saturating_sub(delay),
                new_member_added: false,
            });
            self.join_deadline = Some(now + delay);
        } else {
            self.initial_delay = None;
            self.join_deadline = Some(now + rebalance_timeout);
        }
        self.transition(GroupState::PreparingRebalance);
        if !initial {
            self.maybe_complete_join(now, out);
        }
    }

    pub(super) fn reset_assignments_with_error(
        &mut self,
        error: GroupError,
        now: u64,
        out: &mut Vec<Effect>,
    ) {
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
            if m.awaiting_sync {
                m.awaiting_sync = false;
                m.session_deadline = Some(now + timeout(m.session_timeout_ms));
                out.push(Effect::Sync {
                    member_id: m.member_id.clone(),
                    result: Err(error.clone()),
                });
            }
        }
    }

    pub(super) fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join)
    }

    pub(super) fn maybe_complete_join(&mut self, now: u64, out: &mut Vec<Effect>) {
        if self.state == GroupState::PreparingRebalance
            && self.previous_state != GroupState::Empty
            && self.all_members_joined()
        {
            self.complete_join(now, out);
        }
    }

    pub(super) fn complete_join(&mut self, now: u64, out: &mut Vec<Effect>) {
        if self.state == GroupState::Dead {
            return;
        }
        self.join_deadline = None;
        self.initial_delay = None;
        // Dynamic members that did not rejoin in time are out; static ones keep their place.
        let failed: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in failed {
            self.remove_member(&id, out);
        }
        if !self.maybe_elect_joined_leader() && !self.members.is_empty() {
            // Nobody rejoined: wait another rebalance timeout for session expiry to clean up.
            self.join_deadline = Some(now + self.rebalance_timeout());
            return;
        }
        self.generation_id = self.generation_id.wrapping_add(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(GroupState::Empty);
            out.push(Effect::Persist);
            return;
        }
        self.protocol_name = self.select_protocol();
        self.transition(GroupState::CompletingRebalance);
        let leader = self.leader_id.clone().unwrap_or_default();
        let leader_members = self.current_member_metadata();
        for m in self.members.values_mut() {
            self.pending_sync.insert(m.member_id.clone());
            if !m.awaiting_join {
                continue;
            }
            m.awaiting_join = false;
            m.is_new = false;
            m.session_deadline = Some(now + timeout(m.session_timeout_ms));
            let is_leader = m.member_id == leader;
            out.push(Effect::Join {
                member_id: m.member_id.clone(),
                response: JoinResponse {
                    error: None,
                    member_id: m.member_id.clone(),
                    generation_id: self.generation_id,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    leader: leader.clone(),
                    skip_assignment: false,
                    members: if is_leader {
                        leader_members.clone()
                    } else {
                        Vec::new()
                    },
                },
            });
        }
        self.sync_deadline = Some(now + self.rebalance_timeout());
    }

    /// Keeps the leader if it rejoined, else picks a member that did. False if none did.
    pub(super) fn maybe_elect_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader_id.clone() else {
            return false;
        };
        if self.members.get(&leader).is_some_and(|m| m.awaiting_join) {
            return true;
        }
        match self.members.values().find(|m| m.awaiting_join) {
            Some(m) => {
                self.leader_id = Some(m.member_id.clone());
                true
            }
            None => false,
        }
    }

    /// Removes a member, answering anything it waits for with UNKNOWN_MEMBER_ID.
    pub(super) fn remove_member(&mut self, member_id: &str, out: &mut Vec<Effect>) {
        let Some(m) = self.members.remove(member_id) else {
            return;
        };
        if m.awaiting_join {
            out.push(Effect::Join {
                member_id: m.member_id.clone(),
                response: JoinResponse::error(GroupError::UnknownMemberId, m.member_id.clone()),
            });
        }
        if m.awaiting_sync {
            out.push(Effect::Sync {
                member_id: m.member_id.clone(),
                result: Err(GroupError::UnknownMemberId),
            });
        }
        if let Some(instance) = &m.group_instance_id {
            if self.static_members.get(instance) == Some(&m.member_id) {
                self.static_members.remove(instance);
            }
        }
        self.pending_sync.remove(member_id);
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
    }

    pub(super) fn remove_member_and_update_group(
        &mut self,
        member_id: &str,
        now: u64,
        out: &mut Vec<Effect>,
    ) {
        self.remove_member(member_id, out);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, out)
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now, out),
            GroupState::Empty | GroupState::Dead => {}
        }
    }
}
