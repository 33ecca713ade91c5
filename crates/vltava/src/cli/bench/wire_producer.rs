//! `vltava bench produce --client wire`: a producer that builds record batches and sends
//! Produce requests itself, through `kafka-protocol`, instead of through librdkafka.
//!
//! At 1 KiB records the librdkafka producer takes a whole core of a two-core box near 750
//! MiB/s (its per-message queue, partitioner and delivery reports), so it, not the broker,
//! sets an acks=all figure there. This one does what a producer must — a v2 batch per request
//! with its CRC, compressed if asked, up to `max.in.flight.requests.per.connection` requests
//! pipelined on one connection, every answer checked — and nothing per message. Batches go to
//! the partitions in turn. No retries and no idempotence: an error answer stops the run.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::super::client::{encode_request, key_value, read_response, RawClient};
use super::{histogram, join_merged, micros, topic_name, Shared};

/// Produce versions this producer speaks: v3 (the first with v2 batches) to v12, the last that
/// names topics instead of their ids.
const PRODUCE_VERSIONS: (i16, i16) = (3, 12);
/// A v2 batch header, and the most a keyless record without headers adds to its value (length,
/// attributes, timestamp and offset deltas, key and value lengths, header count as varints):
/// `batch.size` bounds the whole batch, as librdkafka's does, so that the default stays under a
/// broker's default `message.max.bytes` (1 MiB).
const BATCH_HEADER_BYTES: usize = 61;
const RECORD_OVERHEAD_BYTES: usize = 16;

/// Batching and pipelining, librdkafka's names; defaults are librdkafka's batch limits and the
/// Java client's five requests in flight.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ProduceSettings {
    pub batch_records: usize,
    pub batch_bytes: usize,
    pub in_flight: usize,
    pub linger: Duration,
}

impl ProduceSettings {
    pub fn from_client_configs(pairs: &[String]) -> anyhow::Result<ProduceSettings> {
        let mut settings = ProduceSettings {
            batch_records: 10_000,
            batch_bytes: 1_000_000,
            in_flight: 5,
            linger: Duration::from_millis(5),
        };
        for pair in pairs {
            let (key, value) = key_value(pair, "--client-config")?;
            let number = || {
                value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| anyhow!("-X {key}={value}: expected a positive integer"))
            };
            match key.as_str() {
                "batch.num.messages" => settings.batch_records = number()?,
                "batch.size" => settings.batch_bytes = number()?,
                "max.in.flight.requests.per.connection" | "max.in.flight" => {
                    settings.in_flight = number()?
                }
                "linger.ms" => settings.linger = Duration::from_millis(number()? as u64),
                _ => bail!(
                    "--client wire reads only -X batch.num.messages, batch.size, linger.ms and \
                     max.in.flight.requests.per.connection, not {key:?}"
                ),
            }
        }
        Ok(settings)
    }

    /// Records per batch: as many as the limits allow, or at a target rate what arrives in one
    /// linger (so a paced run sends small batches often, as a lingering client does).
    fn records_per_batch(&self, record_size: usize, rate: Option<f64>) -> usize {
        let by_bytes = (self.batch_bytes.saturating_sub(BATCH_HEADER_BYTES)
            / (record_size + RECORD_OVERHEAD_BYTES))
            .max(1);
        let most = self.batch_records.min(by_bytes);
        match rate {
            Some(r) => ((r * self.linger.as_secs_f64()) as usize).clamp(1, most),
            None => most,
        }
    }
}

/// One producer's work.
pub(super) struct WirePlan {
    pub topic: String,
    /// Leader address → the partitions it leads.
    pub by_leader: BTreeMap<String, Vec<i32>>,
    pub acks: i16,
    pub compression: Compression,
    pub record_size: usize,
    pub records: Option<u64>,
    pub deadline: Option<Instant>,
    /// Records per second for this producer.
    pub rate: Option<f64>,
    pub settings: ProduceSettings,
    pub timeout: Duration,
}

/// What the answer reader needs of each request: when its records were made, and how many.
struct InFlight {
    made: Instant,
    records: u64,
}

/// One leader's pipelined connection: requests go out here, answers come back on a reader
/// thread that holds the other half of the socket.
struct Leader {
    stream: TcpStream,
    address: String,
    version: i16,
    partitions: Vec<i32>,
    next_partition: usize,
    /// Reused for every batch and every request frame: a fresh megabyte per request costs
    /// page faults (on this VM, more system time than the sending).
    batch: BytesMut,
    frame: BytesMut,
    /// Bounded: sending blocks once `in_flight` requests wait for answers.
    pending: Option<SyncSender<InFlight>>,
    reader: Option<std::thread::JoinHandle<Histogram<u64>>>,
}

/// Sends batches until the count or the deadline; returns the send-to-ack latencies.
pub(super) fn run(plan: WirePlan, shared: Arc<Shared>) -> Histogram<u64> {
    match produce(&plan, &shared) {
        Ok(h) => h,
        Err(e) => {
            shared.fail(format!("producing: {e:#}"));
            shared.abort.store(true, Relaxed);
            histogram()
        }
    }
}

fn produce(plan: &WirePlan, shared: &Arc<Shared>) -> anyhow::Result<Histogram<u64>> {
    let mut leaders = Vec::new();
    for (address, partitions) in &plan.by_leader {
        leaders.push(connect(plan, address, partitions.clone(), shared)?);
    }
    if leaders.is_empty() {
        bail!("topic {:?} has no partition with a leader", plan.topic);
    }
    let per_batch = plan.settings.records_per_batch(plan.record_size, plan.rate);
    let value = Bytes::from(super::payload(plan.record_size));
    let options = RecordEncodeOptions {
        version: 2,
        compression: plan.compression,
    };
    let start = Instant::now();
    let mut sent = 0u64;
    let mut correlation_id = 0i32;
    let mut turn = 0usize;
    let result = loop {
        let now = Instant::now();
        if plan.records.is_some_and(|n| sent >= n)
            || plan.deadline.is_some_and(|d| now >= d)
            || shared.abort.load(Relaxed)
        {
            break Ok(());
        }
        let count = plan
            .records
            .map_or(per_batch, |n| per_batch.min((n - sent) as usize));
        if let Some(rate) = plan.rate {
            let due = start + Duration::from_secs_f64(sent as f64 / rate);
            std::thread::sleep(due.saturating_duration_since(now));
        }
        let at = turn % leaders.len();
        let leader = &mut leaders[at];
        turn += 1;
        correlation_id = correlation_id.wrapping_add(1);
        if let Err(e) = send_batch(leader, plan, &value, count, &options, correlation_id) {
            break Err(e);
        }
        sent += count as u64;
        shared.sent.fetch_add(count as u64, Relaxed);
        if plan.acks == 0 {
            shared.acked.fetch_add(count as u64, Relaxed);
            shared
                .acked_bytes
                .fetch_add((count * plan.record_size) as u64, Relaxed);
        }
    };
    // Closing each sender lets its reader finish the answers still on their way.
    for leader in &mut leaders {
        leader.pending = None;
    }
    let latency = join_merged(leaders.iter_mut().filter_map(|l| l.reader.take()))?;
    result.map(|()| latency)
}

fn connect(
    plan: &WirePlan,
    address: &str,
    partitions: Vec<i32>,
    shared: &Arc<Shared>,
) -> anyhow::Result<Leader> {
    let client = RawClient::connect(address, plan.timeout)?;
    let version = client.version_for::<ProduceRequest>(PRODUCE_VERSIONS)?;
    let stream = client.into_stream();
    stream.set_nodelay(true)?;
    let (pending, reader) = if plan.acks == 0 {
        // acks=0 has no answers: a request counts once written, as librdkafka counts it.
        (None, None)
    } else {
        let (tx, rx) = sync_channel(plan.settings.in_flight.saturating_sub(1));
        let answers = stream.try_clone().context("cloning the connection")?;
        let (address, shared) = (address.to_string(), Arc::clone(shared));
        let record_size = plan.record_size as u64;
        let reader = std::thread::Builder::new()
            .name("bench-wire-answers".into())
            .spawn(move || read_answers(answers, rx, version, &address, record_size, &shared))
            .context("starting an answer reader")?;
        (Some(tx), Some(reader))
    };
    Ok(Leader {
        stream,
        address: address.to_string(),
        version,
        partitions,
        next_partition: 0,
        batch: BytesMut::new(),
        frame: BytesMut::new(),
        pending,
        reader,
    })
}

fn send_batch(
    leader: &mut Leader,
    plan: &WirePlan,
    value: &Bytes,
    count: usize,
    options: &RecordEncodeOptions,
    correlation_id: i32,
) -> anyhow::Result<()> {
    let made = Instant::now();
    let partition = leader.partitions[leader.next_partition % leader.partitions.len()];
    leader.next_partition += 1;
    encode_batch(&mut leader.batch, value, count, options)?;
    let batch = leader.batch.split().freeze();
    let request = ProduceRequest::default()
        .with_acks(plan.acks)
        .with_timeout_ms(i32::try_from(plan.timeout.as_millis()).unwrap_or(i32::MAX))
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(&plan.topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    leader.frame.clear();
    encode_request(&mut leader.frame, &request, leader.version, correlation_id)?;
    // The frame holds a copy: with the request gone, `batch`'s buffer is ours again.
    drop(request);
    if let Some(pending) = &leader.pending {
        // Blocks while `in_flight` requests are unanswered; fails if the reader stopped.
        pending
            .send(InFlight {
                made,
                records: count as u64,
            })
            .map_err(|_| anyhow!("{}: the connection's answers stopped", leader.address))?;
    }
    leader
        .stream
        .write_all(&leader.frame)
        .map_err(|e| anyhow!("broker at {}: {e}", leader.address))?;
    Ok(())
}

/// Appends a v2 batch of `count` records, each with `value` and no key, stamped now.
fn encode_batch(
    out: &mut BytesMut,
    value: &Bytes,
    count: usize,
    options: &RecordEncodeOptions,
) -> anyhow::Result<()> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // No producer id, so the batch's base sequence is -1; the encoder starts a new
            // batch wherever offset − sequence changes, so the rest follow on from it.
            sequence: i as i32 - 1,
            timestamp: now_ms,
            key: None,
            value: Some(value.clone()),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    out.reserve(count * (value.len() + RECORD_OVERHEAD_BYTES) + BATCH_HEADER_BYTES);
    RecordBatchEncoder::encode(out, &records, options).map_err(|e| anyhow!("encoding a batch: {e}"))
}

/// Reads the answers of one connection in order, counting acknowledged records into `shared`
/// and their latency (records made → answer read) into the histogram it returns.
fn read_answers(
    mut stream: TcpStream,
    pending: Receiver<InFlight>,
    version: i16,
    address: &str,
    record_size: u64,
    shared: &Shared,
) -> Histogram<u64> {
    let mut latency = histogram();
    while let Ok(request) = pending.recv() {
        let response = match read_response::<ProduceRequest>(&mut stream, version, address) {
            Ok(r) => r,
            Err(e) => {
                shared.failed.fetch_add(request.records, Relaxed);
                shared.fail(format!("{e:#}"));
                shared.abort.store(true, Relaxed);
                break;
            }
        };
        match answer_error(&response) {
            None => {
                let us = micros(request.made.elapsed());
                latency.saturating_record_n(us, request.records);
                shared.acked.fetch_add(request.records, Relaxed);
                shared
                    .acked_bytes
                    .fetch_add(request.records * record_size, Relaxed);
            }
            Some(e) => {
                shared.failed.fetch_add(request.records, Relaxed);
                shared.fail(format!("{address}: produce failed: {e}"));
                shared.abort.store(true, Relaxed);
            }
        }
    }
    latency
}

/// The first partition error in a Produce answer, with the broker's message if it sent one.
fn answer_error(response: &ProduceResponse) -> Option<String> {
    let failed = response
        .responses
        .iter()
        .flat_map(|t| &t.partition_responses)
        .find(|p| p.error_code != 0)?;
    let error = ResponseError::try_from_code(failed.error_code)?;
    Some(match &failed.error_message {
        Some(message) => format!("{error} ({message})"),
        None => error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn a_batch_holds_the_records_asked_for_and_decodes_with_its_crc() {
        let value = Bytes::from_static(b"0123456789");
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let options = RecordEncodeOptions {
                version: 2,
                compression,
            };
            let mut out = BytesMut::new();
            encode_batch(&mut out, &value, 7, &options).unwrap_or_else(|e| panic!("{e}"));
            let mut batch = out.freeze();
            assert_eq!(
                RecordBatchDecoder::decode_batch_info(&mut batch.clone())
                    .map(|batches| batches.len())
                    .unwrap_or_else(|e| panic!("{e}")),
                1,
                "one batch, as a v2 Produce allows per partition"
            );
            let set = RecordBatchDecoder::decode(&mut batch).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(set.records.len(), 7);
            let offsets: Vec<i64> = set.records.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, (0..7).collect::<Vec<_>>());
            assert!(set.records.iter().all(|r| r.value.as_ref() == Some(&value)));
        }
    }

    #[test]
    fn batches_fill_to_the_byte_limit_or_one_linger_of_the_rate() {
        let s = ProduceSettings::from_client_configs(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.records_per_batch(1024, None), 961);
        assert_eq!(s.records_per_batch(100, None), 8620);
        assert_eq!(s.records_per_batch(10, None), 10_000);
        assert_eq!(s.records_per_batch(2_000_000, None), 1);
        assert_eq!(s.records_per_batch(1024, Some(50_000.0)), 250);
        assert_eq!(s.records_per_batch(1024, Some(10.0)), 1);
    }

    #[test]
    fn produce_keys_take_librdkafka_names_and_others_are_refused() {
        let s = ProduceSettings::from_client_configs(&[
            "batch.size=65536".into(),
            "max.in.flight.requests.per.connection=1".into(),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.batch_bytes, s.in_flight), (65536, 1));
        let err = ProduceSettings::from_client_configs(&["fetch.min.bytes=1".into()]).unwrap_err();
        assert!(format!("{err}").contains("fetch.min.bytes"), "{err}");
        let err = ProduceSettings::from_client_configs(&["batch.size=0".into()]).unwrap_err();
        assert!(format!("{err}").contains("positive"), "{err}");
    }
}
