//! The cases, and the helpers they share (setup steps whose answers are not compared).

mod bad_input;
mod eos;
mod groups;
pub mod records;
mod topics;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use uuid::Uuid;
use vltava_differential::{wait_for, Conn, Ctx, Result, Target};

pub struct Case {
    pub name: &'static str,
    pub run: fn(&mut Ctx) -> Result<()>,
    /// Some(reason) when the case cannot run against these brokers.
    pub skip: fn(&Target, &Target) -> Option<String>,
}

pub fn always(_: &Target, _: &Target) -> Option<String> {
    None
}

macro_rules! case {
    ($name:expr, $f:path) => {
        crate::cases::Case {
            name: $name,
            run: $f,
            skip: crate::cases::always,
        }
    };
    ($name:expr, $f:path, $skip:path) => {
        crate::cases::Case {
            name: $name,
            run: $f,
            skip: $skip,
        }
    };
}
pub(crate) use case;

pub static CASES: &[&[Case]] = &[
    bad_input::CASES,
    topics::CASES,
    records::CASES,
    groups::CASES,
    eos::CASES,
    topics::LAST,
];

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn tn(v: &str) -> TopicName {
    TopicName(s(v))
}

/// Creates `name` (replication factor 1) with topic `configs` and waits until every partition
/// has a leader; returns its topic id.
pub fn create_topic(
    ctx: &Ctx,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<Uuid> {
    let mut conn = ctx.conn()?;
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(tn(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            )]);
    let resp = conn.must(ctx.v(ApiKey::CreateTopics), &req)?;
    let code = resp.topics.first().map(|t| t.error_code).unwrap_or(-100);
    if code != 0 {
        return Err(format!("create topic {name}: error {code}"));
    }
    wait_until_ready(ctx, &mut conn, name, partitions)
}

/// Waits until a just-created topic `name` has a leader for each of its `partitions` that
/// answers ListOffsets; returns its topic id.
pub fn wait_until_ready(ctx: &Ctx, conn: &mut Conn, name: &str, partitions: i32) -> Result<Uuid> {
    let id = wait_for(Duration::from_secs(30), || {
        let md = conn.must(ctx.v(ApiKey::Metadata), &metadata_req(&[name], false))?;
        Ok(md.topics.first().and_then(|t| {
            let ready = t.error_code == 0
                && t.partitions.len() == partitions as usize
                && t.partitions.iter().all(|p| p.leader_id.0 >= 0);
            ready.then_some(t.topic_id)
        }))
    })?;
    // Kafka's metadata can name the leader a moment before its replica manager leads: wait
    // until every partition answers ListOffsets.
    let list = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(tn(name))
            .with_partitions(
                (0..partitions)
                    .map(|p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p)
                            .with_timestamp(-1)
                    })
                    .collect(),
            )]);
    wait_for(Duration::from_secs(30), || {
        let r = conn.must(ctx.v(ApiKey::ListOffsets), &list)?;
        let ok = r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .all(|p| p.error_code == 0);
        Ok(ok.then_some(()))
    })?;
    Ok(id)
}

pub fn metadata_req(topics: &[&str], auto_create: bool) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(
            topics
                .iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(tn(t))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(auto_create)
}

/// Records with the given values (no keys), timestamps `ts`, `ts+1`, ...
pub fn records(ts: i64, values: &[&str]) -> Vec<Record> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol starts a new batch when offset - sequence changes: keep it fixed.
            sequence: i as i32,
            timestamp: ts + i as i64,
            key: None,
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: IndexMap::new(),
        })
        .collect()
}

pub fn encode(records: &[Record], version: i8, compression: Compression) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version,
            compression,
        },
    )
    .map_err(|e| format!("encode records: {e}"))?;
    Ok(buf.freeze())
}

/// One uncompressed v2 batch of `values`.
pub fn batch(ts: i64, values: &[&str]) -> Result<Bytes> {
    encode(&records(ts, values), 2, Compression::None)
}

/// Recomputes a v2 batch's CRC (over attributes to the end) after editing it.
pub fn recrc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

pub fn produce_req(
    topic: &str,
    id: Uuid,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(tn(topic))
            .with_topic_id(id)
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

/// Produces `values` to partition 0 of `topic` (acks=-1) and checks it worked.
pub fn produce_ok(
    ctx: &Ctx,
    conn: &mut Conn,
    topic: &str,
    id: Uuid,
    ts: i64,
    values: &[&str],
) -> Result<()> {
    let resp = conn.must(
        ctx.v(ApiKey::Produce),
        &produce_req(topic, id, 0, batch(ts, values)?, -1),
    )?;
    let code = resp
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .map(|p| p.error_code)
        .unwrap_or(-100);
    if code != 0 {
        return Err(format!("produce to {topic}: error {code}"));
    }
    Ok(())
}

/// A Produce step recorded twice: its error codes alone (`step:error_code`), then the whole
/// answer, so that a listed difference in the answer cannot hide a change of code.
pub fn produce_step(
    ctx: &mut Ctx,
    conn: &mut Conn,
    step: &str,
    req: &ProduceRequest,
) -> Result<()> {
    let reply = conn.call(ctx.v(ApiKey::Produce), req)?;
    let code = match &reply {
        vltava_differential::Reply::Response(r) => format!(
            "{:?}",
            r.responses
                .iter()
                .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))
                .collect::<Vec<_>>()
        ),
        vltava_differential::Reply::Closed => "closed".to_string(),
    };
    ctx.record(&format!("{step}:error_code"), code);
    ctx.record_reply(step, reply);
    Ok(())
}
