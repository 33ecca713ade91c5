//! Black-box tests of the broker in process: framing, ApiVersions, produce → fetch, long-poll.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::{batch, Client, TestBroker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// The correlation id an answer frame starts with.
fn correlation_id(frame: &[u8]) -> i32 {
    i32::from_be_bytes(frame[..4].try_into().unwrap())
}

async fn create_topic(client: &mut Client, topic: &str, partitions: i32) {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(10_000);
    let response = client.call(7, &request).await;
    assert_eq!(response.topics[0].error_code, 0, "{response:?}");
}

fn produce_request(topic: &str, acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

fn fetch_request(topic: &str, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])])
}

fn values(records: &Option<Bytes>) -> Vec<(i64, String)> {
    let mut bytes = records.clone().unwrap_or_default();
    RecordBatchDecoder::decode_all(&mut bytes)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn api_versions_advertises_the_handler_table() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let response = client.call(2, &ApiVersionsRequest::default()).await;
    assert_eq!(response.error_code, 0);
    let keys: Vec<i16> = response.api_keys.iter().map(|k| k.api_key).collect();
    for key in [0, 1, 2, 3, 18, 19, 20, 21, 23, 32, 37, 60] {
        assert!(keys.contains(&key), "api key {key} missing: {keys:?}");
    }
    // Consumer groups: FindCoordinator, JoinGroup … OffsetDelete.
    for key in [8, 9, 10, 11, 12, 13, 14, 15, 16, 42, 47] {
        assert!(keys.contains(&key), "group api key {key} missing: {keys:?}");
    }
}

#[tokio::test]
async fn too_new_api_versions_gets_v0_unsupported_version_with_our_range() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    // ApiVersions v99: header v2 (flexible), a body we must not parse.
    let mut body = BytesMut::new();
    body.put_i16(18);
    body.put_i16(99);
    body.put_i32(42);
    body.put_i16(-1);
    body.put_u8(0);
    body.put_slice(b"\x07future fields");
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.put_slice(&body);
    client.send_raw(&frame).await;
    let response = client.read_frame().await.expect("a response");
    let (correlation_id, body) = Client::decode_response::<ApiVersionsRequest>(0, response);
    assert_eq!(correlation_id, 42);
    assert_eq!(body.error_code, 35);
    assert_eq!(body.api_keys.len(), 1);
    assert_eq!(
        (body.api_keys[0].api_key, body.api_keys[0].max_version),
        (18, 4)
    );
}

#[tokio::test]
async fn bad_frames_close_only_their_own_connection() {
    let broker = TestBroker::start_with(&["socket.request.max.bytes=1000"]).await;
    let mut healthy = broker.client().await;

    for bad in [
        (-5i32).to_be_bytes().to_vec(), // negative size
        1001i32.to_be_bytes().to_vec(), // over socket.request.max.bytes
        [&6i32.to_be_bytes()[..], &[0x03, 0xe7, 0, 0, 0, 1]].concat(), // unknown api key 999
        [&8i32.to_be_bytes()[..], &[0, 0, 0, 9, 0, 0, 0, 1]].concat(), // Produce v9, truncated header
    ] {
        let mut client = broker.client().await;
        client.send_raw(&bad).await;
        assert!(
            client.is_closed().await,
            "connection left open after {bad:?}"
        );
    }
    // A valid header with a garbage body.
    let mut client = broker.client().await;
    let (_, frame) = client.frame(9, &MetadataRequest::default());
    let mut garbled = frame.to_vec();
    let len = garbled.len();
    garbled.truncate(len - 1);
    garbled.extend_from_slice(&[0xff; 9]);
    let size = (garbled.len() - 4) as i32;
    garbled[..4].copy_from_slice(&size.to_be_bytes());
    client.send_raw(&garbled).await;
    assert!(client.is_closed().await);

    let response = healthy.call(2, &ApiVersionsRequest::default()).await;
    assert_eq!(response.error_code, 0, "the broker still serves others");
}

#[tokio::test]
async fn produced_records_are_fetched_back_with_their_offsets() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "orders", 1).await;

    for (acks, values) in [(1, ["a", "b"]), (-1, ["c", "d"])] {
        let response = client
            .call(9, &produce_request("orders", acks, batch(1000, &values)))
            .await;
        let p = &response.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "{response:?}");
    }
    let response = client.call(12, &fetch_request("orders", 0, 0)).await;
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(p.high_watermark, 4);
    assert_eq!(
        values(&p.records),
        vec![
            (0, "a".to_string()),
            (1, "b".to_string()),
            (2, "c".to_string()),
            (3, "d".to_string())
        ]
    );
    // From the middle: whole batches come back; offsets still say where each record is.
    let response = client.call(4, &fetch_request("orders", 2, 0)).await;
    assert_eq!(values(&response.responses[0].partitions[0].records)[0].0, 2);
    // Past the end: OFFSET_OUT_OF_RANGE carries no offsets, as Kafka's replica manager answers.
    let response = client.call(12, &fetch_request("orders", 10, 0)).await;
    let p = &response.responses[0].partitions[0];
    assert_eq!(p.error_code, 1);
    assert_eq!(
        (p.high_watermark, p.last_stable_offset, p.log_start_offset),
        (-1, -1, -1)
    );
}

/// A fetch whose first partition is read at its end and whose second from far back (more than
/// the in-memory read window, so on a thread that may block): both come back, under one
/// `max_bytes`.
#[tokio::test]
async fn a_fetch_reads_partitions_at_their_end_and_far_back_under_one_max_bytes() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "mixed", 2).await;
    let produce = |partition: i32, value: &str| {
        ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name("mixed"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch(1000, &[value])))])])
    };
    let big = "b".repeat(100_000);
    for _ in 0..40 {
        let response = client.call(9, &produce(0, &big)).await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    let small = "s".repeat(50_000);
    let response = client.call(9, &produce(1, &small)).await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);

    let request = |max_bytes: i32| {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name("mixed"))
                .with_partitions(
                    [1, 0]
                        .map(|p| {
                            FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(0)
                                .with_partition_max_bytes(1 << 20)
                        })
                        .to_vec(),
                )])
    };
    let max_bytes = 300_000;
    let response = client.call(12, &request(max_bytes)).await;
    let partitions = &response.responses[0].partitions;
    assert_eq!(partitions.len(), 2);
    assert_eq!(
        (partitions[0].partition_index, partitions[1].partition_index),
        (1, 0)
    );
    assert!(partitions.iter().all(|p| p.error_code == 0), "{response:?}");
    assert_eq!(values(&partitions[0].records), vec![(0, small.clone())]);
    let near = partitions[0].records.as_ref().unwrap().len();
    // The far read gets what the near one left of max_bytes (a partial last batch included,
    // as Kafka sends it), starting with the batch at offset 0.
    let far = partitions[1].records.as_ref().unwrap();
    assert_eq!(far.len(), max_bytes as usize - near);
    assert_eq!(i64::from_be_bytes(far[..8].try_into().unwrap()), 0);
    assert_eq!(partitions[1].high_watermark, 40);

    // Less left than the far partition's first batch: a batch was returned already, so that
    // one is not returned whole beyond max_bytes (KIP-74) and the far partition comes back
    // empty.
    let response = client.call(12, &request(near as i32 + 50_000)).await;
    let partitions = &response.responses[0].partitions;
    assert_eq!(values(&partitions[0].records), vec![(0, small)]);
    let far = partitions[1].records.as_ref().map_or(0, |r| r.len());
    assert_eq!(far, 0, "{:?}", partitions[1]);
}

#[tokio::test]
async fn waiting_fetch_is_woken_by_an_append() {
    let broker = TestBroker::start().await;
    let mut admin = broker.client().await;
    create_topic(&mut admin, "events", 1).await;

    let mut consumer = broker.client().await;
    let (_, frame) = consumer.frame(12, &fetch_request("events", 0, 30_000));
    let started = Instant::now();
    consumer.send_raw(&frame).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut producer = broker.client().await;
    producer
        .call(9, &produce_request("events", 1, batch(0, &["wake"])))
        .await;
    let response = consumer.read_frame().await.unwrap();
    let (_, response) = Client::decode_response::<FetchRequest>(12, response);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken, not timed out"
    );
    assert_eq!(
        values(&response.responses[0].partitions[0].records),
        vec![(0, "wake".to_string())]
    );
}

#[tokio::test]
async fn empty_fetch_waits_for_max_wait_ms() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "quiet", 1).await;
    let started = Instant::now();
    let response = client.call(12, &fetch_request("quiet", 0, 400)).await;
    assert!(started.elapsed() >= Duration::from_millis(350));
    assert_eq!(response.responses[0].partitions[0].error_code, 0);
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "pipe", 1).await;
    let mut all = Vec::new();
    let mut ids = Vec::new();
    // A long-polling fetch first: later requests must still be answered after it.
    let (id, f) = client.frame(12, &fetch_request("pipe", 0, 500));
    ids.push(id);
    all.extend_from_slice(&f);
    for _ in 0..3 {
        let (id, f) = client.frame(2, &ApiVersionsRequest::default());
        ids.push(id);
        all.extend_from_slice(&f);
    }
    client.send_raw(&all).await;
    let mut got = Vec::new();
    for _ in 0..ids.len() {
        let frame = client.read_frame().await.unwrap();
        got.push(correlation_id(&frame));
    }
    assert_eq!(got, ids);
}

#[tokio::test]
async fn an_answer_goes_out_while_a_later_request_still_waits() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "held", 1).await;
    // ApiVersions, then a fetch that long-polls the empty partition for a minute: the first
    // answer must not wait in the broker for the second (read_frame gives up after 20 s).
    let (first, versions) = client.frame(2, &ApiVersionsRequest::default());
    let (poll, fetch) = client.frame(12, &fetch_request("held", 0, 60_000));
    client.send_raw(&[versions, fetch].concat()).await;
    let frame = client.read_frame().await.unwrap();
    assert_eq!(correlation_id(&frame), first);
    // A record ends the poll.
    let mut producer = broker.client().await;
    let r = producer
        .call(9, &produce_request("held", 1, batch(0, &["x"])))
        .await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    let frame = client.read_frame().await.unwrap();
    assert_eq!(correlation_id(&frame), poll);
}

#[tokio::test]
async fn requests_sent_before_the_client_closes_its_side_are_all_answered() {
    let broker = TestBroker::start().await;
    let mut setup = broker.client().await;
    create_topic(&mut setup, "last", 1).await;
    // Whole requests, then the end of the stream (or half a request and the end).
    for tail in [&b""[..], &[0, 0, 0, 40, 0, 18][..]] {
        let mut client = broker.client().await;
        let (produced, produce) =
            client.frame(9, &produce_request("last", 1, batch(0, &["a", "b"])));
        let mut sent = produce.to_vec();
        let mut ids = vec![produced];
        for _ in 0..2 {
            let (id, frame) = client.frame(2, &ApiVersionsRequest::default());
            ids.push(id);
            sent.extend_from_slice(&frame);
        }
        sent.extend_from_slice(tail); // nothing, or the start of a frame that never ends
        client.send_raw(&sent).await;
        client.close_sending().await;
        for id in ids {
            let frame = client.read_frame().await.expect("an answer");
            assert_eq!(correlation_id(&frame), id);
        }
        assert!(client.is_closed().await, "connection left open");
    }
}

#[tokio::test]
async fn produce_errors_use_kafka_codes() {
    let broker =
        TestBroker::start_with(&["auto.create.topics.enable=false", "message.max.bytes=200"]).await;
    let mut client = broker.client().await;
    create_topic(&mut client, "strict", 1).await;

    let code = |r: &ProduceResponse| r.responses[0].partition_responses[0].error_code;
    let r = client
        .call(9, &produce_request("missing", 1, batch(0, &["x"])))
        .await;
    assert_eq!(code(&r), 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let r = client
        .call(9, &produce_request("strict", 2, batch(0, &["x"])))
        .await;
    assert_eq!(code(&r), 21, "INVALID_REQUIRED_ACKS");
    let mut corrupt = batch(0, &["x"]).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let r = client
        .call(9, &produce_request("strict", 1, Bytes::from(corrupt)))
        .await;
    assert_eq!(code(&r), 2, "CORRUPT_MESSAGE");
    let big = "x".repeat(300);
    let r = client
        .call(9, &produce_request("strict", 1, batch(0, &[big.as_str()])))
        .await;
    assert_eq!(code(&r), 10, "MESSAGE_TOO_LARGE");

    let r = client
        .call(
            9,
            &produce_request("__consumer_offsets", 1, batch(0, &["x"])),
        )
        .await;
    assert_eq!(
        code(&r),
        17,
        "INVALID_TOPIC_EXCEPTION: clients cannot write internal topics"
    );

    // acks=0 with an error: no response, the connection is closed.
    let (_, frame) = client.frame(9, &produce_request("missing", 0, batch(0, &["x"])));
    client.send_raw(&frame).await;
    assert!(client.is_closed().await);
}

/// Kafka's answer to records refused one by one (RecordValidationException): the code, one
/// record error per refused record, and the partition's log start offset.
#[tokio::test]
async fn refused_records_come_back_as_record_errors() {
    use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    for (topic, key, value) in [
        ("compacted", "cleanup.policy", "compact"),
        ("no-future", "message.timestamp.after.max.ms", "0"),
    ] {
        let request = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(vec![CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str(key))
                    .with_value(Some(StrBytes::from_static_str(value)))])])
            .with_timeout_ms(10_000);
        let response = client.call(7, &request).await;
        assert_eq!(response.topics[0].error_code, 0, "{response:?}");
    }
    let r = client
        .call(9, &produce_request("compacted", 1, batch(0, &["a", "b"])))
        .await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 87, "INVALID_RECORD: {p:?}");
    let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(indexes, vec![0, 1]);
    assert_eq!((p.base_offset, p.log_start_offset), (-1, 0));
    assert!(p.error_message.is_some());

    let far_future = 4_000_000_000_000;
    let r = client
        .call(
            9,
            &produce_request("no-future", 1, batch(far_future, &["a"])),
        )
        .await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 32, "INVALID_TIMESTAMP: {p:?}");
    assert_eq!(p.record_errors.len(), 1);
    let r = client
        .call(
            9,
            &produce_request("no-future", 1, batch(0, &["old is fine"])),
        )
        .await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
}

#[tokio::test]
async fn list_offsets_finds_earliest_latest_and_by_timestamp() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "times", 1).await;
    client
        .call(
            9,
            &produce_request("times", 1, batch(1000, &["a", "b", "c"])),
        )
        .await;
    client
        .call(9, &produce_request("times", 1, batch(2000, &["d", "e"])))
        .await;
    let query = |ts: i64| {
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name("times"))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(ts)])])
    };
    let mut at = Vec::new();
    for ts in [-2, -1, -3, 1001, 1500, 2001, 9999] {
        let r = client.call(8, &query(ts)).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        at.push((p.offset, p.timestamp));
    }
    assert_eq!(
        at,
        vec![
            (0, -1),
            (5, -1),
            (4, 2001),
            (1, 1001),
            (3, 2000),
            (4, 2001),
            (-1, -1)
        ]
    );
}

#[tokio::test]
async fn restart_replays_metadata_and_reopens_logs() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "durable", 2).await;
    client
        .call(9, &produce_request("durable", -1, batch(0, &["kept"])))
        .await;
    drop(client);
    let dir = broker.stop().await;
    assert!(
        dir.path().join(".kafka_cleanshutdown").exists(),
        "clean shutdown leaves Kafka's marker"
    );

    let broker = TestBroker::start_in(dir, &[]).await;
    let mut client = broker.client().await;
    let response = client.call(12, &fetch_request("durable", 0, 0)).await;
    assert_eq!(
        values(&response.responses[0].partitions[0].records),
        vec![(0, "kept".to_string())]
    );
    let metadata = client
        .call(12, &MetadataRequest::default().with_topics(None))
        .await;
    assert_eq!(metadata.topics.len(), 1);
    assert_eq!(metadata.topics[0].partitions.len(), 2);
}

#[tokio::test]
async fn shutdown_answers_waiting_fetches_instead_of_waiting_them_out() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    create_topic(&mut client, "idle", 1).await;
    let (id, frame) = client.frame(12, &fetch_request("idle", 0, 60_000));
    client.send_raw(&frame).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let stopping = tokio::spawn(broker.stop());
    let response = client
        .read_frame()
        .await
        .expect("the in-flight fetch is answered");
    assert_eq!(i32::from_be_bytes(response[..4].try_into().unwrap()), id);
    stopping.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(client.is_closed().await, "then the connection closes");
}

#[tokio::test]
async fn idle_and_half_sent_requests_are_closed_after_connections_max_idle_ms() {
    let broker = TestBroker::start_with(&["connections.max.idle.ms=300"]).await;
    let mut idle = broker.client().await;
    let mut trickle = broker.client().await;
    // Promises 1000 bytes, sends 6.
    trickle.send_raw(&[0, 0, 3, 232, 0, 18, 0, 0, 0, 1]).await;
    assert!(idle.is_closed().await);
    assert!(trickle.is_closed().await);
    let mut active = broker.client().await;
    let response = active.call(2, &ApiVersionsRequest::default()).await;
    assert_eq!(response.error_code, 0);
}

#[tokio::test]
async fn queued_max_request_bytes_stops_reading_until_budget_frees() {
    let broker = TestBroker::start_with(&["queued.max.request.bytes=64"]).await;
    // A frame that declares 100 bytes and sends 10: its size is reserved (all of the budget,
    // as it is larger) before its body arrives, and stays reserved while the body trickles.
    let mut stalled = broker.client().await;
    let mut partial = 100i32.to_be_bytes().to_vec();
    partial.extend_from_slice(&[0u8; 10]);
    stalled.send_raw(&partial).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut other = broker.client().await;
    let (_, frame) = other.frame(2, &ApiVersionsRequest::default());
    other.send_raw(&frame).await;
    let blocked = tokio::time::timeout(Duration::from_millis(500), other.read_frame()).await;
    assert!(blocked.is_err(), "answered while the budget was taken");

    // The stalled client goes away: its reservation is returned and the waiting request is read.
    drop(stalled);
    let answered = tokio::time::timeout(Duration::from_secs(10), other.read_frame()).await;
    assert!(matches!(answered, Ok(Some(_))), "{answered:?}");

    // Without a budget the same partial frame holds nothing back.
    let unbounded = TestBroker::start().await;
    let mut stalled = unbounded.client().await;
    stalled.send_raw(&partial).await;
    let mut other = unbounded.client().await;
    other.call(2, &ApiVersionsRequest::default()).await;
}
