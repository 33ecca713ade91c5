use super::*;
use proptest::prelude::*;

fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        max_size: 5,
        ..GroupConfig::default()
    }
}

fn protocols(names: &[&str]) -> Vec<Protocol> {
    names
        .iter()
        .map(|n| Protocol {
            name: n.to_string(),
            metadata: Bytes::from(format!("meta-{n}")),
        })
        .collect()
}

fn request(member_id: &str, new_id: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: protocols(&["range", "roundrobin"]),
        require_known_member_id: false,
        new_member_id: new_id.to_string(),
    }
}

/// Joins on behalf of a member, running timers at `now` (the test's initial delay is 0).
fn join(g: &mut ClassicGroup, req: JoinRequest, now: u64, out: &mut Vec<Effect>) -> JoinStart {
    let start = g.join(req, now, out);
    g.on_timer(now, out);
    start
}

fn joins(out: &[Effect]) -> Vec<(String, JoinResponse)> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Join {
                member_id,
                response,
            } => Some((member_id.clone(), response.clone())),
            _ => None,
        })
        .collect()
}

/// Brings a group with the given members (ids a, b, c…) to Stable at generation 1.
fn stable_group(ids: &[&str]) -> ClassicGroup {
    let mut g = ClassicGroup::new("g".into(), config());
    let mut out = Vec::new();
    for id in ids {
        g.join(request("", id), 0, &mut out);
    }
    g.on_timer(0, &mut out);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    let leader = g.leader_id().unwrap().to_string();
    let gen = g.generation_id();
    for id in ids {
        if *id != leader {
            g.sync(id, None, gen, None, None, vec![], 0, &mut out);
        }
    }
    let assignments = ids
        .iter()
        .map(|id| (id.to_string(), Bytes::from(format!("assign-{id}"))))
        .collect();
    g.sync(&leader, None, gen, None, None, assignments, 0, &mut out);
    assert_eq!(g.state(), GroupState::Stable);
    g
}

#[test]
fn first_member_becomes_leader_and_gets_every_member() {
    let mut g = ClassicGroup::new("g".into(), config());
    let mut out = Vec::new();
    let start = join(&mut g, request("", "m1"), 0, &mut out);
    assert_eq!(
        start,
        JoinStart::Wait {
            member_id: "m1".into()
        }
    );
    let responses = joins(&out);
    assert_eq!(responses.len(), 1);
    let (_, r) = &responses[0];
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader, "m1");
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
}

#[test]
fn member_id_required_for_dynamic_members_from_v4() {
    let mut g = ClassicGroup::new("g".into(), config());
    let mut out = Vec::new();
    let mut req = request("", "m1");
    req.require_known_member_id = true;
    let JoinStart::Reply(r) = g.join(req, 0, &mut out) else {
        panic!("expected a reply")
    };
    assert_eq!(r.error, Some(GroupError::MemberIdRequired));
    assert_eq!(r.member_id, "m1");
    // The rejoin with the handed-out id is accepted.
    let start = join(&mut g, request("m1", "unused"), 0, &mut out);
    assert_eq!(
        start,
        JoinStart::Wait {
            member_id: "m1".into()
        }
    );
    assert_eq!(joins(&out)[0].1.generation_id, 1);
}

#[test]
fn pending_member_id_expires_after_the_session_timeout() {
    let mut g = ClassicGroup::new("g".into(), config());
    let mut out = Vec::new();
    let mut req = request("", "m1");
    req.require_known_member_id = true;
    g.join(req, 0, &mut out);
    assert_eq!(g.next_deadline(), Some(10_000));
    g.on_timer(10_000, &mut out);
    let JoinStart::Reply(r) = g.join(request("m1", ""), 10_001, &mut out) else {
        panic!("expected a reply")
    };
    assert_eq!(r.error, Some(GroupError::UnknownMemberId));
}

#[test]
fn session_timeout_bounds_are_checked() {
    let mut g = ClassicGroup::new("g".into(), config());
    let mut out = Vec::new();
    for bad in [5_999, 1_800_001] {
        let mut req = request("", "m1");
        req.session_timeout_ms = bad;
        let JoinStart::Reply(r) = g.join(req, 0, &mut out) else {
            panic!()
        };
        assert_eq!(r.error, Some(GroupError::InvalidSessionTimeout));
    }
}

#[test]
fn protocols_must_overlap_and_the_vote_picks_the_common_favourite() {
    let mut g = stable_group(&["a", "b"]);
    let mut out = Vec::new();
    let mut req = request("", "c");
    req.protocols = protocols(&["sticky"]);
    let JoinStart::Reply(r) = g.join(req, 1, &mut out) else {
        panic!()
    };
    assert_eq!(r.error, Some(GroupError::InconsistentGroupProtocol));
    let mut req = request("", "c");
    req.protocol_type = "connect".into();
    let JoinStart::Reply(r) = g.join(req, 1, &mut out) else {
        panic!()
    };
    assert_eq!(r.error, Some(GroupError::InconsistentGroupProtocol));

    // Two members prefer roundrobin, one prefers range: roundrobin wins.
    let mut g = ClassicGroup::new("g".into(), config());
    for (id, prefs) in [
        ("a", ["range", "roundrobin"]),
        ("b", ["roundrobin", "range"]),
        ("c", ["roundrobin", "range"]),
    ] {
        let mut req = request("", id);
        req.protocols = protocols(&prefs);
        g.join(req, 0, &mut out);
    }
    g.on_timer(0, &mut out);
    assert_eq!(g.protocol_name(), Some("roundrobin"));
}

#[test]
fn rebalance_waits_for_every_member_then_bumps_the_generation() {
    let mut g = stable_group(&["a", "b"]);
    let mut out = Vec::new();
    // A third member joins: the group rebalances and waits for a and b.
    assert_eq!(
        g.join(request("", "c"), 100, &mut out),
        JoinStart::Wait {
            member_id: "c".into()
        }
    );
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    assert_eq!(
        g.heartbeat("a", None, 1, 100),
        Err(GroupError::RebalanceInProgress)
    );
    assert_eq!(
        g.sync("a", None, 1, None, None, vec![], 100, &mut out),
        SyncStart::Reply(Err(GroupError::RebalanceInProgress))
    );
    g.join(request("a", ""), 101, &mut out);
    assert!(joins(&out).is_empty());
    g.join(request("b", ""), 102, &mut out);
    let responses = joins(&out);
    assert_eq!(responses.len(), 3);
    assert!(responses.iter().all(|(_, r)| r.generation_id == 2));
    let with_members: Vec<_> = responses
        .iter()
        .filter(|(_, r)| !r.members.is_empty())
        .collect();
    assert_eq!(with_members.len(), 1, "only the leader gets the members");
    assert_eq!(with_members[0].1.members.len(), 3);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    // The old generation is fenced.
    assert_eq!(
        g.heartbeat("a", None, 1, 103),
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(
        g.validate_offset_commit("a", None, 2),
        Err(GroupError::RebalanceInProgress)
    );
}

#[test]
fn members_that_miss_the_rebalance_timeout_are_dropped() {
    let mut g = stable_group(&["a", "b"]);
    let mut out = Vec::new();
    g.join(request("a", ""), 1_000, &mut out); // a rejoins (it is the leader: rebalance)
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    for t in [9_000, 18_000, 27_000] {
        // b keeps heartbeating but never rejoins.
        assert_eq!(
            g.heartbeat("b", None, 1, t),
            Err(GroupError::RebalanceInProgress)
        );
        g.on_timer(t, &mut out);
    }
    g.on_timer(30_999, &mut out);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    g.on_timer(31_000, &mut out);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert!(g.member("b").is_none());
    assert_eq!(g.generation_id(), 2);
}

#[test]
fn followers_wait_for_the_leaders_assignment() {
    let mut g = ClassicGroup::new("g".into(), config());
    let mut out = Vec::new();
    g.join(request("", "a"), 0, &mut out);
    g.join(request("", "b"), 0, &mut out);
    g.on_timer(0, &mut out);
    out.clear();
    assert_eq!(
        g.sync("b", None, 1, None, None, vec![], 1, &mut out),
        SyncStart::Wait
    );
    assert!(out.is_empty());
    let assignments = vec![
        ("a".into(), Bytes::from("A")),
        ("b".into(), Bytes::from("B")),
    ];
    g.sync(
        "a",
        None,
        1,
        Some("consumer"),
        Some("range"),
        assignments,
        2,
        &mut out,
    );
    assert_eq!(out[0], Effect::Persist);
    let synced: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            Effect::Sync { member_id, result } => Some((member_id.as_str(), result.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(synced.len(), 2);
    for (id, result) in synced {
        let expected = if id == "a" { "A" } else { "B" };
        assert_eq!(result.unwrap().assignment, Bytes::from(expected));
    }
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(g.heartbeat("b", None, 1, 3), Ok(()));
}

#[test]
fn sync_and_heartbeat_errors_follow_kafkas_order() {
    let mut g = stable_group(&["a"]);
    let mut out = Vec::new();
    assert_eq!(
        g.sync("x", None, 1, None, None, vec![], 1, &mut out),
        SyncStart::Reply(Err(GroupError::UnknownMemberId))
    );
    assert_eq!(
        g.sync("a", None, 7, None, None, vec![], 1, &mut out),
        SyncStart::Reply(Err(GroupError::IllegalGeneration))
    );
    assert_eq!(
        g.sync("a", None, 1, Some("connect"), None, vec![], 1, &mut out),
        SyncStart::Reply(Err(GroupError::InconsistentGroupProtocol))
    );
    assert_eq!(
        g.heartbeat("x", None, 1, 1),
        Err(GroupError::UnknownMemberId)
    );
    // Unknown member wins over a bad generation.
    assert_eq!(
        g.heartbeat("x", None, 9, 1),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        g.heartbeat("a", None, 9, 1),
        Err(GroupError::IllegalGeneration)
    );
}

#[test]
fn a_silent_member_expires_after_its_session_timeout() {
    let mut g = stable_group(&["a", "b"]);
    let mut out = Vec::new();
    g.heartbeat("a", None, 1, 9_000).unwrap();
    g.on_timer(10_000, &mut out); // b's session (from t=0) is over; a's is not
    assert!(g.member("b").is_none());
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    g.join(request("a", ""), 10_001, &mut out);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(g.members().count(), 1);
}

#[test]
fn leaving_triggers_an_immediate_rebalance_and_the_last_leave_empties_the_group() {
    let mut g = stable_group(&["a", "b"]);
    let mut out = Vec::new();
    let results = g
        .leave(&[("b".into(), None), ("zz".into(), None)], 5, &mut out)
        .unwrap();
    assert_eq!(results, vec![Ok(()), Err(GroupError::UnknownMemberId)]);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
    g.leave(&[("a".into(), None)], 6, &mut out).unwrap();
    assert_eq!(g.state(), GroupState::Empty);
    assert_eq!(g.generation_id(), 2);
    assert!(out.contains(&Effect::Persist));
    // An empty group takes commits without a generation, and rejects them with one.
    assert_eq!(g.validate_offset_commit("", None, -1), Ok(()));
    assert_eq!(
        g.validate_offset_commit("a", None, 1),
        Err(GroupError::UnknownMemberId)
    );
}

fn static_request(instance: &str, member_id: &str, new_id: &str) -> JoinRequest {
    let mut req = request(member_id, new_id);
    req.group_instance_id = Some(instance.to_string());
    req.require_known_member_id = true; // static members never get MEMBER_ID_REQUIRED
    req
}

#[test]
fn a_restarted_static_member_gets_its_assignment_back_without_a_rebalance() {
    let mut g = ClassicGroup::new("g".into(), config());
    let mut out = Vec::new();
    g.join(static_request("i1", "", "i1-a"), 0, &mut out);
    g.join(static_request("i2", "", "i2-a"), 0, &mut out);
    g.on_timer(0, &mut out);
    let leader = g.leader_id().unwrap().to_string();
    let follower = if leader == "i1-a" { "i2-a" } else { "i1-a" };
    let follower_instance = &follower[..2];
    let assignments = vec![
        (leader.clone(), Bytes::from("L")),
        (follower.to_string(), Bytes::from("F")),
    ];
    g.sync(follower, None, 1, None, None, vec![], 0, &mut out);
    g.sync(&leader, None, 1, None, None, assignments, 0, &mut out);
    assert_eq!(g.state(), GroupState::Stable);
    out.clear();

    // The follower restarts: same instance id, new member id, same protocols.
    let start = g.join(
        static_request(follower_instance, "", "new-id"),
        100,
        &mut out,
    );
    assert_eq!(
        start,
        JoinStart::Wait {
            member_id: "new-id".into()
        }
    );
    assert_eq!(out[0], Effect::Persist);
    let (_, r) = &joins(&out)[0];
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, 1, "no rebalance");
    assert_eq!(g.state(), GroupState::Stable);
    let mut sync_out = Vec::new();
    assert_eq!(
        g.sync("new-id", None, 1, None, None, vec![], 101, &mut sync_out),
        SyncStart::Reply(Ok(SyncResponse {
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignment: Bytes::from("F"),
        }))
    );
    // The old member id is fenced.
    assert_eq!(
        g.heartbeat(follower, Some(follower_instance), 1, 102),
        Err(GroupError::FencedInstanceId)
    );
    assert_eq!(
        g.validate_offset_commit(follower, Some(follower_instance), 1),
        Err(GroupError::FencedInstanceId)
    );
    assert_eq!(
        g.heartbeat(follower, None, 1, 102),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        g.heartbeat("new-id", Some(follower_instance), 1, 102),
        Ok(())
    );
}

#[test]
fn a_static_member_with_new_protocols_triggers_a_rebalance() {
    let mut g = ClassicGroup::new("g".into(), config());
    let mut out = Vec::new();
    g.join(static_request("i1", "", "i1-a"), 0, &mut out);
    g.on_timer(0, &mut out);
    g.sync("i1-a", None, 1, None, None, vec![], 0, &mut out);
    assert_eq!(g.state(), GroupState::Stable);
    let mut req = static_request("i1", "", "i1-b");
    req.protocols = protocols(&["roundrobin"]);
    g.join(req, 5, &mut out);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(g.generation_id(), 2);
    assert_eq!(g.protocol_name(), Some("roundrobin"));
}

#[test]
fn group_max_size_rejects_new_members() {
    let mut g = stable_group(&["a", "b", "c", "d", "e"]);
    let mut out = Vec::new();
    let JoinStart::Reply(r) = g.join(request("", "f"), 1, &mut out) else {
        panic!()
    };
    assert_eq!(r.error, Some(GroupError::GroupMaxSizeReached));
    // Existing members still rejoin.
    assert!(matches!(
        g.join(request("a", ""), 1, &mut out),
        JoinStart::Wait { .. }
    ));
}

#[test]
fn initial_rebalance_delay_waits_and_extends_for_late_joiners() {
    let mut g = ClassicGroup::new(
        "g".into(),
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            ..config()
        },
    );
    let mut out = Vec::new();
    g.join(request("", "a"), 0, &mut out);
    assert_eq!(g.next_deadline(), Some(3000));
    g.join(request("", "b"), 2000, &mut out);
    g.on_timer(3000, &mut out);
    assert_eq!(g.state(), GroupState::PreparingRebalance, "extended");
    assert_eq!(g.next_deadline(), Some(6000));
    g.on_timer(6000, &mut out);
    assert_eq!(g.state(), GroupState::CompletingRebalance);
    assert_eq!(joins(&out).len(), 2);
}

#[test]
fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
    let mut g = ClassicGroup::new("g".into(), config());
    let mut out = Vec::new();
    g.join(request("", "a"), 0, &mut out);
    g.join(request("", "b"), 0, &mut out);
    g.on_timer(0, &mut out);
    let leader = g.leader_id().unwrap().to_string();
    let follower = if leader == "a" { "b" } else { "a" };
    g.sync(&leader, None, 1, None, None, vec![], 1, &mut out);
    assert_eq!(g.state(), GroupState::Stable);
    for t in [9_000, 18_000, 27_000] {
        g.heartbeat("a", None, 1, t).unwrap();
        g.heartbeat("b", None, 1, t).unwrap();
    }
    g.on_timer(30_000, &mut out);
    assert!(g.member(follower).is_none());
    assert_eq!(g.members().count(), 1);
    assert_eq!(g.state(), GroupState::PreparingRebalance);
}

// A random sequence of client actions and clock ticks never breaks the group's invariants.
#[derive(Debug, Clone)]
enum Action {
    Join(usize),
    Rejoin(usize),
    Sync(usize),
    Heartbeat(usize),
    Leave(usize),
    Tick(u64),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (0..6usize).prop_map(Action::Join),
        (0..6usize).prop_map(Action::Rejoin),
        (0..6usize).prop_map(Action::Sync),
        (0..6usize).prop_map(Action::Heartbeat),
        (0..6usize).prop_map(Action::Leave),
        (0..40_000u64).prop_map(Action::Tick),
    ]
}

proptest! {
    #[test]
    fn invariants_hold_under_any_sequence(actions in proptest::collection::vec(action(), 1..80)) {
        let mut g = ClassicGroup::new("g".into(), config());
        let mut now = 0u64;
        let mut ids: Vec<Option<String>> = vec![None; 6];
        let mut waiting_join: BTreeSet<String> = BTreeSet::new();
        let mut generation = 0;
        for (step, a) in actions.into_iter().enumerate() {
            let mut out = Vec::new();
            match a {
                Action::Join(i) | Action::Rejoin(i) => {
                    let known = if matches!(a, Action::Rejoin(_)) { ids[i].clone() } else { None };
                    let req = request(known.as_deref().unwrap_or(""), &format!("m{i}-{step}"));
                    match g.join(req, now, &mut out) {
                        JoinStart::Wait { member_id } => {
                            ids[i] = Some(member_id.clone());
                            waiting_join.insert(member_id);
                        }
                        JoinStart::Reply(r) => {
                            if r.error.is_none() { ids[i] = Some(r.member_id.clone()); }
                        }
                    }
                }
                Action::Sync(i) => if let Some(id) = ids[i].clone() {
                    let assignments = vec![(id.clone(), Bytes::from("x"))];
                    let generation_id = g.generation_id();
                    g.sync(&id, None, generation_id, None, None, assignments, now, &mut out);
                },
                Action::Heartbeat(i) => if let Some(id) = ids[i].clone() {
                    let generation_id = g.generation_id();
                    let _ = g.heartbeat(&id, None, generation_id, now);
                },
                Action::Leave(i) => if let Some(id) = ids[i].take() {
                    let _ = g.leave(&[(id, None)], now, &mut out);
                },
                Action::Tick(ms) => { now += ms; }
            }
            g.on_timer(now, &mut out);
            for e in &out {
                if let Effect::Join { member_id, response } = e {
                    prop_assert!(waiting_join.remove(member_id), "join answered twice: {member_id}");
                    if response.error.is_none() {
                        prop_assert_eq!(response.generation_id, g.generation_id());
                    }
                }
            }
            // Generations only grow.
            prop_assert!(g.generation_id() >= generation);
            generation = g.generation_id();
            // A leader exists exactly when members do, and is one of them.
            match g.leader_id() {
                Some(l) => prop_assert!(g.member(l).is_some()),
                None => prop_assert!(g.is_empty() || g.state() == GroupState::Empty),
            }
            prop_assert_eq!(g.is_empty(), g.state() == GroupState::Empty && g.is_empty());
            if g.state() == GroupState::Empty { prop_assert!(g.is_empty()); }
            if g.state() == GroupState::Stable {
                prop_assert!(g.members().all(|m| !m.awaiting_join && !m.awaiting_sync));
            }
            // Members waiting for a JoinGroup response are exactly those the state says.
            let awaiting: BTreeSet<String> =
                g.members().filter(|m| m.awaiting_join).map(|m| m.member_id.clone()).collect();
            prop_assert_eq!(&awaiting, &waiting_join);
            // Someone always wakes the group up while it is rebalancing.
            if g.state() == GroupState::PreparingRebalance {
                prop_assert!(g.next_deadline().is_some());
            }
            // After a rebalance a group has at most group.max.size members.
            if matches!(g.state(), GroupState::CompletingRebalance | GroupState::Stable) {
                prop_assert!(g.members().count() <= 5);
            }
        }
    }
}
