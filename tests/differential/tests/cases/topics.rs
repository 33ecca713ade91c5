//! CreateTopics validation, Metadata for unknown topics (by name and by id, auto-create on and
//! off), DescribeConfigs of a new topic.

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use uuid::Uuid;
use vltava_differential::{Ctx, Result, Target};

use super::{case, create_topic, metadata_req, s, tn, wait_until_ready, Case};

/// Last in the run: the broker it needs starts in the background meanwhile.
pub static LAST: &[Case] = &[case!(
    "metadata/unknown_topic_broker_auto_create_off",
    broker_auto_create_off,
    needs_no_auto_create
)];

pub static CASES: &[Case] = &[
    case!("create_topics/invalid_names", invalid_names),
    case!(
        "create_topics/partitions_and_replication",
        partitions_and_rf
    ),
    case!("create_topics/duplicate_in_one_request", duplicate),
    case!("create_topics/validate_only", validate_only),
    case!("create_topics/configs", configs),
    case!("create_topics/already_exists", already_exists),
    case!(
        "metadata/unknown_topic_no_auto_create_requested",
        unknown_no_auto
    ),
    case!("metadata/unknown_topic_auto_create", unknown_auto_create),
    case!("metadata/by_topic_id", by_topic_id),
    case!("describe_configs/new_topic_defaults", describe_new_topic),
];

fn topic(name: &str, partitions: i32, rf: i16) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(tn(name))
        .with_num_partitions(partitions)
        .with_replication_factor(rf)
}

fn create(
    ctx: &mut Ctx,
    step: &str,
    topics: Vec<CreatableTopic>,
    validate_only: bool,
) -> Result<()> {
    let mut conn = ctx.conn()?;
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_validate_only(validate_only)
        .with_topics(topics);
    ctx.step(&mut conn, step, &req)
}

fn invalid_names(ctx: &mut Ctx) -> Result<()> {
    let long = "a".repeat(250);
    for (step, name) in [
        ("dot", "."),
        ("dotdot", ".."),
        ("250_chars", long.as_str()),
        ("slash", "bad/name"),
        ("space", "bad name"),
        ("empty", ""),
        ("unicode", "tópico"),
    ] {
        create(ctx, step, vec![topic(name, 1, 1)], false)?;
    }
    // Names that collide once '.' and '_' are treated alike.
    let a = ctx.topic("collide.a");
    let b = ctx.topic("collide_a");
    create(ctx, "dot_underscore_first", vec![topic(&a, 1, 1)], false)?;
    create(
        ctx,
        "dot_underscore_collision",
        vec![topic(&b, 1, 1)],
        false,
    )
}

fn partitions_and_rf(ctx: &mut Ctx) -> Result<()> {
    for (step, p, rf) in [
        ("partitions_0", 0, 1),
        ("partitions_minus_2", -2, 1),
        ("rf_0", 1, 0),
        ("rf_minus_2", 1, -2),
        ("rf_above_brokers", 1, 2),
        ("defaults_minus_1", -1, -1),
    ] {
        let name = ctx.topic(&format!("prf-{step}"));
        create(ctx, step, vec![topic(&name, p, rf)], false)?;
    }
    Ok(())
}

fn duplicate(ctx: &mut Ctx) -> Result<()> {
    let name = ctx.topic("dup");
    let other = ctx.topic("dup-other");
    create(
        ctx,
        "duplicate",
        vec![topic(&name, 1, 1), topic(&name, 2, 1), topic(&other, 1, 1)],
        false,
    )?;
    let mut conn = ctx.conn()?;
    ctx.step(
        &mut conn,
        "metadata_after",
        &metadata_req(&[&name, &other], false),
    )
}

fn validate_only(ctx: &mut Ctx) -> Result<()> {
    let name = ctx.topic("validate-only");
    create(ctx, "valid", vec![topic(&name, 3, 1)], true)?;
    create(ctx, "invalid", vec![topic(&name, 0, 1)], true)?;
    let mut conn = ctx.conn()?;
    ctx.step(&mut conn, "not_created", &metadata_req(&[&name], false))
}

fn with_config(name: &str, k: &str, v: Option<&str>) -> CreatableTopic {
    topic(name, 1, 1).with_configs(vec![CreatableTopicConfig::default()
        .with_name(s(k))
        .with_value(v.map(s))])
}

fn configs(ctx: &mut Ctx) -> Result<()> {
    for (step, k, v) in [
        ("unknown_key", "no.such.config", Some("1")),
        ("bad_value", "retention.ms", Some("abc")),
        ("null_value", "retention.ms", None),
        ("below_minimum", "segment.bytes", Some("10")),
        ("bad_enum", "cleanup.policy", Some("shred")),
        ("valid", "retention.ms", Some("60000")),
    ] {
        let name = ctx.topic(&format!("cfg-{step}"));
        create(ctx, step, vec![with_config(&name, k, v)], true)?;
    }
    Ok(())
}

fn already_exists(ctx: &mut Ctx) -> Result<()> {
    let name = ctx.topic("exists");
    create_topic(ctx, &name, 1, &[])?;
    create(ctx, "again", vec![topic(&name, 1, 1)], false)
}

fn unknown_no_auto(ctx: &mut Ctx) -> Result<()> {
    let name = ctx.topic("unknown-no-auto");
    let mut conn = ctx.conn()?;
    ctx.step(&mut conn, "metadata", &metadata_req(&[&name], false))?;
    ctx.step(&mut conn, "still_unknown", &metadata_req(&[&name], false))
}

fn unknown_auto_create(ctx: &mut Ctx) -> Result<()> {
    let name = ctx.topic("auto-created");
    let mut conn = ctx.conn()?;
    // The first answer (LEADER_NOT_AVAILABLE while the topic is created, or the topic).
    let v = ctx.v(ApiKey::Metadata);
    let first = conn.must(v, &metadata_req(&[&name], true))?;
    let code = first.topics.first().map(|t| t.error_code).unwrap_or(-100);
    ctx.record("first_error_code", format!("{code}"));
    // Once created it looks like any topic with the broker defaults.
    let topic = vltava_differential::wait_for(std::time::Duration::from_secs(20), || {
        let md = conn.must(v, &metadata_req(&[&name], false))?;
        Ok(md
            .topics
            .into_iter()
            .next()
            .filter(|t| t.error_code == 0 && t.partitions.iter().all(|p| p.leader_id.0 >= 0)))
    })?;
    let _ = topic;
    ctx.step(&mut conn, "created", &metadata_req(&[&name], false))
}

fn needs_no_auto_create(kafka: &Target, vltava: &Target) -> Option<String> {
    if kafka.no_auto_create.is_none() || vltava.no_auto_create.is_none() {
        return Some(
            "needs a reference broker with auto.create.topics.enable=false \
             (REFERENCE_KAFKA_NO_AUTO_CREATE_BOOTSTRAP)"
                .to_string(),
        );
    }
    None
}

fn broker_auto_create_off(ctx: &mut Ctx) -> Result<()> {
    let addr = ctx
        .target
        .no_auto_create
        .clone()
        .ok_or("no broker with auto-create off")?;
    let name = ctx.topic("auto-off");
    let mut conn = vltava_differential::Conn::connect(&addr)?;
    ctx.step(&mut conn, "allow_true", &metadata_req(&[&name], true))?;
    ctx.step(&mut conn, "still_unknown", &metadata_req(&[&name], false))
}

fn by_topic_id(ctx: &mut Ctx) -> Result<()> {
    let name = ctx.topic("by-id");
    let id = create_topic(ctx, &name, 2, &[])?;
    let mut conn = ctx.conn()?;
    let unknown = Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
    let by_id = |id: Uuid| {
        MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
            .with_topic_id(id)
            .with_name(None)]))
    };
    ctx.step(&mut conn, "unknown_id", &by_id(unknown))?;
    ctx.step(
        &mut conn,
        "unknown_id_auto_create",
        &by_id(unknown).with_allow_auto_topic_creation(true),
    )?;
    ctx.step(&mut conn, "known_id", &by_id(id))?;
    let both = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
        .with_topic_id(id)
        .with_name(Some(tn(&name)))]));
    ctx.step(&mut conn, "id_and_name", &both)?;
    let empty_name =
        MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
            .with_topic_id(id)
            .with_name(Some(tn("")))]));
    ctx.step(&mut conn, "id_and_empty_name", &empty_name)
}

/// One step per config: `prefix/name` → value, source, flags (and synonyms when asked).
fn config_steps(ctx: &mut Ctx, prefix: &str, resp: &DescribeConfigsResponse) {
    for r in &resp.results {
        ctx.record(
            &format!("{prefix}:result"),
            format!(
                "error_code {} message {} resource {} {}",
                r.error_code,
                r.error_message.as_ref().is_some_and(|m| !m.is_empty()),
                r.resource_type,
                r.resource_name.as_str()
            ),
        );
        for c in &r.configs {
            let synonyms: Vec<String> = c
                .synonyms
                .iter()
                .map(|s| format!("{}={:?}@{}", s.name.as_str(), s.value.as_deref(), s.source))
                .collect();
            ctx.record(
                &format!("{prefix}/{}", c.name.as_str()),
                format!(
                    "value={:?} source={} read_only={} sensitive={} type={} synonyms={synonyms:?}",
                    c.value.as_deref(),
                    c.config_source,
                    c.read_only,
                    c.is_sensitive,
                    c.config_type
                ),
            );
        }
    }
}

fn describe_new_topic(ctx: &mut Ctx) -> Result<()> {
    let name = ctx.topic("describe");
    let mut conn = ctx.conn()?;
    let created = conn.must(
        ctx.v(ApiKey::CreateTopics),
        &CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![with_config(&name, "retention.ms", Some("123456"))]),
    )?;
    // Kafka answers DescribeConfigs with UNKNOWN_TOPIC_OR_PARTITION until the new topic has
    // reached its broker's metadata.
    wait_until_ready(ctx, &mut conn, &name, 1)?;
    for t in &created.topics {
        ctx.record("create_response:error", format!("{}", t.error_code));
        for c in t.configs.iter().flatten() {
            ctx.record(
                &format!("create_response/{}", c.name.as_str()),
                format!(
                    "value={:?} source={} read_only={} sensitive={}",
                    c.value.as_deref(),
                    c.config_source,
                    c.read_only,
                    c.is_sensitive
                ),
            );
        }
    }
    let v = ctx.v(ApiKey::DescribeConfigs);
    let resource = |keys: Option<Vec<&str>>| {
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(&name))
            .with_configuration_keys(keys.map(|k| k.into_iter().map(s).collect()))
    };
    let all = conn.must(
        v,
        &DescribeConfigsRequest::default().with_resources(vec![resource(None)]),
    )?;
    config_steps(ctx, "all", &all);
    let named = conn.must(
        v,
        &DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_resources(vec![resource(Some(vec![
                "retention.ms",
                "cleanup.policy",
                "no.such.config",
            ]))]),
    )?;
    config_steps(ctx, "named_with_synonyms", &named);
    let unknown =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(&ctx.topic("no-such-topic")))
            .with_configuration_keys(None)]);
    ctx.step(&mut conn, "unknown_topic", &unknown)
}
