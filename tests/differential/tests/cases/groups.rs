//! Classic consumer groups: FindCoordinator, JoinGroup/SyncGroup/Heartbeat/LeaveGroup and
//! OffsetCommit/OffsetFetch, with their error paths (unknown member, stale generation,
//! rebalance in progress).

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use vltava_differential::{wait_for, Conn, Ctx, Reply, Result};

use super::{case, create_topic, s, tn, Case};

pub static CASES: &[Case] = &[
    case!("groups/find_coordinator", find_coordinator),
    case!("groups/classic_error_paths", classic_error_paths),
    case!(
        "groups/offsets_without_membership",
        offsets_without_membership
    ),
];

fn gid(g: &str) -> GroupId {
    GroupId(s(g))
}

/// Versions at which FindCoordinator batches keys (v4+) and OffsetFetch batches groups (v8+).
static VERSIONS: std::sync::OnceLock<(i16, i16)> = std::sync::OnceLock::new();

fn find_req(key: &str, key_type: i8) -> FindCoordinatorRequest {
    let r = FindCoordinatorRequest::default().with_key_type(key_type);
    if VERSIONS.get().is_some_and(|v| v.0 >= 4) {
        r.with_coordinator_keys(vec![s(key)])
    } else {
        r.with_key(s(key))
    }
}

fn versions(ctx: &Ctx) {
    let _ = VERSIONS.set((ctx.v(ApiKey::FindCoordinator), ctx.v(ApiKey::OffsetFetch)));
}

/// Waits until the coordinator of `key` answers (Kafka creates __consumer_offsets and
/// __transaction_state on first use and answers COORDINATOR_NOT_AVAILABLE meanwhile; whether
/// another case created them first depends on the order cases run in).
fn coordinator_ready(ctx: &Ctx, conn: &mut Conn, key: &str, key_type: i8) -> Result<()> {
    let v = ctx.v(ApiKey::FindCoordinator);
    wait_for(Duration::from_secs(60), || {
        let r = conn.must(v, &find_req(key, key_type))?;
        let code = r
            .coordinators
            .first()
            .map(|c| c.error_code)
            .unwrap_or(r.error_code);
        Ok((code == 0).then_some(()))
    })
}

fn find_coordinator(ctx: &mut Ctx) -> Result<()> {
    let group = ctx.topic("g");
    versions(ctx);
    let mut conn = ctx.conn()?;
    coordinator_ready(ctx, &mut conn, &group, 0)?;
    ctx.step(&mut conn, "group", &find_req(&group, 0))?;
    let txn = ctx.topic("txn");
    coordinator_ready(ctx, &mut conn, &txn, 1)?;
    ctx.step(&mut conn, "transaction", &find_req(&txn, 1))?;
    ctx.step(&mut conn, "unknown_key_type", &find_req(&group, 9))?;
    ctx.step(&mut conn, "empty_group_id", &find_req("", 0))
}

fn join_req(group: &str, member: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(3_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"subscription"))])
}

fn sync_req(group: &str, generation: i32, member: &str, assign: bool) -> SyncGroupRequest {
    let assignments = if assign {
        vec![SyncGroupRequestAssignment::default()
            .with_member_id(s(member))
            .with_assignment(Bytes::from_static(b"assignment"))]
    } else {
        vec![]
    };
    SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(assignments)
}

fn heartbeat_req(group: &str, generation: i32, member: &str) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(s(member))
}

fn commit_req(
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    partition: i32,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_retention_time_ms(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(tn(topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(5)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(s("meta")))])])
}

fn fetch_offsets_req(group: &str, topic: &str) -> OffsetFetchRequest {
    if VERSIONS.get().is_some_and(|v| v.1 < 8) {
        return OffsetFetchRequest::default()
            .with_group_id(gid(group))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(tn(topic))
                .with_partition_indexes(vec![0, 1])]));
    }
    OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(gid(group))
        .with_member_epoch(-1)
        .with_topics(Some(vec![OffsetFetchRequestTopics::default()
            .with_name(tn(topic))
            .with_partition_indexes(vec![0, 1])]))])
}

fn member_of(r: &Reply<JoinGroupResponse>) -> Result<(String, i32)> {
    match r {
        Reply::Response(r) => Ok((r.member_id.to_string(), r.generation_id)),
        Reply::Closed => Err("join: connection closed".into()),
    }
}

fn classic_error_paths(ctx: &mut Ctx) -> Result<()> {
    let group = ctx.topic("g");
    let topic = ctx.topic("t");
    create_topic(ctx, &topic, 2, &[])?;
    versions(ctx);
    let mut conn = ctx.conn()?;
    coordinator_ready(ctx, &mut conn, &group, 0)?;
    let vj = ctx.v(ApiKey::JoinGroup);

    ctx.step(
        &mut conn,
        "heartbeat_unknown_group",
        &heartbeat_req(&group, 1, "nobody"),
    )?;
    ctx.step(
        &mut conn,
        "join_unknown_member_id",
        &join_req(&group, "nobody-1"),
    )?;
    // v4+: the first join without a member id is answered MEMBER_ID_REQUIRED with one.
    let first = conn.call(vj, &join_req(&group, ""))?;
    let (member, _) = member_of(&first)?;
    ctx.record_reply("join_without_member_id", first);
    let joined = conn.call(vj, &join_req(&group, &member))?;
    let (_, generation) = member_of(&joined)?;
    ctx.record_reply("join_with_member_id", joined);

    ctx.step(
        &mut conn,
        "sync_wrong_generation",
        &sync_req(&group, generation + 1, &member, true),
    )?;
    ctx.step(
        &mut conn,
        "sync_unknown_member",
        &sync_req(&group, generation, "nobody", true),
    )?;
    ctx.step(
        &mut conn,
        "sync",
        &sync_req(&group, generation, &member, true),
    )?;
    ctx.step(
        &mut conn,
        "heartbeat",
        &heartbeat_req(&group, generation, &member),
    )?;
    ctx.step(
        &mut conn,
        "heartbeat_stale_generation",
        &heartbeat_req(&group, generation - 1, &member),
    )?;
    ctx.step(
        &mut conn,
        "heartbeat_unknown_member",
        &heartbeat_req(&group, generation, "nobody"),
    )?;

    ctx.step(
        &mut conn,
        "commit",
        &commit_req(&group, generation, &member, &topic, 0),
    )?;
    ctx.step(
        &mut conn,
        "commit_stale_generation",
        &commit_req(&group, generation - 1, &member, &topic, 0),
    )?;
    ctx.step(
        &mut conn,
        "commit_unknown_member",
        &commit_req(&group, generation, "nobody", &topic, 0),
    )?;
    ctx.step(
        &mut conn,
        "commit_unknown_partition",
        &commit_req(&group, generation, &member, &topic, 9),
    )?;
    ctx.step(
        &mut conn,
        "offset_fetch",
        &fetch_offsets_req(&group, &topic),
    )?;

    // A second member joins: the group prepares a rebalance while the first is still in it.
    let mut other = ctx.conn()?;
    let second = other.call(vj, &join_req(&group, ""))?;
    let (member2, _) = member_of(&second)?;
    let pending = other.frame(vj, &join_req(&group, &member2))?;
    other.send_raw(&pending)?;
    std::thread::sleep(Duration::from_millis(500));
    ctx.step(
        &mut conn,
        "heartbeat_during_rebalance",
        &heartbeat_req(&group, generation, &member),
    )?;
    ctx.step(
        &mut conn,
        "commit_during_rebalance",
        &commit_req(&group, generation, &member, &topic, 0),
    )?;
    // The first member rejoins: both joins complete in a new generation.
    let rejoin = conn.call(vj, &join_req(&group, &member))?;
    let (_, generation2) = member_of(&rejoin)?;
    ctx.record_reply("rejoin_leader", rejoin);
    let reply = other.recv::<JoinGroupRequest>(vj)?;
    ctx.record_reply("join_second_member", reply);
    ctx.record(
        "generation_advanced",
        format!("{}", generation2 > generation),
    );
    ctx.step(
        &mut conn,
        "commit_old_generation",
        &commit_req(&group, generation, &member, &topic, 0),
    )?;
    ctx.step(
        &mut conn,
        "sync_follower_first",
        &sync_req(&group, generation2, &member2, false),
    )?;

    let leave = |members: Vec<&str>| {
        LeaveGroupRequest::default()
            .with_group_id(gid(&group))
            .with_members(
                members
                    .iter()
                    .map(|m| {
                        MemberIdentity::default()
                            .with_member_id(StrBytes::from_string(m.to_string()))
                    })
                    .collect(),
            )
    };
    ctx.step(&mut conn, "leave_unknown_member", &leave(vec!["nobody"]))?;
    ctx.step(&mut conn, "leave", &leave(vec![&member, &member2]))?;
    ctx.step(
        &mut conn,
        "heartbeat_after_leave",
        &heartbeat_req(&group, generation2, &member),
    )
}

fn offsets_without_membership(ctx: &mut Ctx) -> Result<()> {
    let group = ctx.topic("standalone");
    let topic = ctx.topic("t");
    create_topic(ctx, &topic, 2, &[])?;
    versions(ctx);
    let mut conn = ctx.conn()?;
    coordinator_ready(ctx, &mut conn, &group, 0)?;
    ctx.step(
        &mut conn,
        "fetch_unknown_group",
        &fetch_offsets_req(&group, &topic),
    )?;
    // generation -1 and no member id: a commit from outside any generation (simple consumer).
    ctx.step(
        &mut conn,
        "commit_standalone",
        &commit_req(&group, -1, "", &topic, 1),
    )?;
    ctx.step(
        &mut conn,
        "commit_standalone_with_member",
        &commit_req(&group, -1, "someone", &topic, 1),
    )?;
    ctx.step(&mut conn, "fetch", &fetch_offsets_req(&group, &topic))?;
    let missing = ctx.topic("missing");
    ctx.step(
        &mut conn,
        "commit_unknown_topic",
        &commit_req(&group, -1, "", &missing, 0),
    )
}
