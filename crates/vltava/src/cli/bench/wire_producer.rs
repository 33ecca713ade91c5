//! `vltava bench produce --client wire`: a producer that builds record batches and sends
//! Produce requests itself, through `kafka-protocol`, instead of through librdkafka.
//!
//! At 1 KiB records the librdkafka producer takes a whole core of a two-core box near 750
//! MiB/s (its per-message queue, partitioner and delivery reports), so it, not the broker,
//! sets an acks=all figure there. This one does what a producer must — a v2 batch per request
//! with its CRC, compressed if asked, up to `max.in.flight.requests.per.connection` requests
//! pipelined on one connection, every answer checked — and nothing per message. Batches go to
//! the partitions in turn. No retries and no idempotence: an error answer stops the run.
//!
//! At a target rate each record is due at its own time, as an application would hand it over;
//! a batch goes once its first record has waited `linger.ms` or it is full, and holds every
//! record due by then, so a run that cannot keep up sends bigger batches rather than falling
//! behind. Latencies count from each record's due time, as librdkafka's count from `send()`.

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

/// The `-X` keys this producer reads.
pub(super) const KEYS: &[&str] = &[
    "batch.num.messages",
    "batch.size",
    "linger.ms",
    "max.in.flight.requests.per.connection",
    "max.in.flight",
];

impl ProduceSettings {
    /// librdkafka's defaults with the `-X` pairs applied; keys in `others` are left to the
    /// consumer beside it (e2e), any other key is an error.
    pub fn from_client_configs(
        pairs: &[String],
        others: &[&str],
    ) -> anyhow::Result<ProduceSettings> {
        let mut settings = ProduceSettings {
            batch_records: 10_000,
            batch_bytes: 1_000_000,
            in_flight: 5,
            linger: Duration::from_millis(5),
        };
        for pair in pairs {
            let (key, value) = key_value(pair, "--client-config")?;
            if others.contains(&key.as_str()) {
                continue;
            }
            let whole = || {
                value
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| anyhow!("-X {key}={value}: expected a whole number"))
            };
            let number = || {
                Some(whole()?)
                    .filter(|v| *v > 0)
                    .ok_or_else(|| anyhow!("-X {key}={value}: expected a positive integer"))
            };
            match key.as_str() {
                "batch.num.messages" => settings.batch_records = number()?,
                "batch.size" => settings.batch_bytes = number()?,
                "max.in.flight.requests.per.connection" | "max.in.flight" => {
                    settings.in_flight = number()?
                }
                // 0: a batch goes as soon as a request slot is free, with what is due.
                "linger.ms" => settings.linger = Duration::from_millis(whole()? as u64),
                _ => bail!(
                    "--client wire reads only -X {}, not {key:?}",
                    [KEYS, others].concat().join(", ")
                ),
            }
        }
        Ok(settings)
    }

    /// The most records a batch holds: `batch.num.messages`, or what fits `batch.size`.
    fn records_per_batch(&self, record_size: usize) -> usize {
        let by_bytes = (self.batch_bytes.saturating_sub(BATCH_HEADER_BYTES)
            / (record_size + RECORD_OVERHEAD_BYTES))
            .max(1);
        self.batch_records.min(by_bytes)
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
    /// Stamp each record's due time into its first 8 bytes (e2e: nanoseconds since the epoch).
    pub stamp: bool,
}

/// When the records of a batch were due: the first at `first`, each next one `step` later
/// (all at once without a target rate).
#[derive(Clone, Copy)]
struct Due {
    first: Instant,
    step: Duration,
}

/// What the answer reader needs of each request: when its records were due, and how many.
struct InFlight {
    due: Due,
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
    let per_batch = plan.settings.records_per_batch(plan.record_size);
    let value = Bytes::from(super::payload(plan.record_size));
    let options = RecordEncodeOptions {
        version: 2,
        compression: plan.compression,
    };
    let start = Instant::now();
    let clock = Clock::new(start);
    let mut sent = 0u64;
    let mut correlation_id = 0i32;
    let mut turn = 0usize;
    let result = loop {
        if plan.records.is_some_and(|n| sent >= n)
            || plan.deadline.is_some_and(|d| Instant::now() >= d)
            || shared.abort.load(Relaxed)
        {
            break Ok(());
        }
        let most = plan
            .records
            .map_or(per_batch, |n| per_batch.min((n - sent) as usize));
        let (count, due) = match plan.rate {
            None => (
                most,
                Due {
                    first: Instant::now(),
                    step: Duration::ZERO,
                },
            ),
            Some(rate) => match next_paced_batch(start, sent, most, rate, plan) {
                Some(batch) => batch,
                None => break Ok(()),
            },
        };
        let values = Values::new(&value, count, plan.stamp.then_some((&clock, due)));
        let at = turn % leaders.len();
        let leader = &mut leaders[at];
        turn += 1;
        correlation_id = correlation_id.wrapping_add(1);
        let sent_batch = send_batch(leader, plan, &values, count, due, &options, correlation_id);
        if let Err(e) = sent_batch {
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

/// At `rate` records/s from `start`, waits until the batch starting at record `sent` is due to
/// go (its first record has waited `linger.ms`, or its `most`-th record is due) and returns
/// how many records are due by then, with their due times; `None` if the deadline comes first.
fn next_paced_batch(
    start: Instant,
    sent: u64,
    most: usize,
    rate: f64,
    plan: &WirePlan,
) -> Option<(usize, Due)> {
    let due = |k: u64| start + Duration::from_secs_f64(k as f64 / rate);
    let first = due(sent);
    let go = (first + plan.settings.linger).min(due(sent + most as u64 - 1));
    if plan.deadline.is_some_and(|d| go > d) {
        std::thread::sleep(plan.deadline?.saturating_duration_since(Instant::now()));
        return None;
    }
    std::thread::sleep(go.saturating_duration_since(Instant::now()));
    // Sending may have blocked on the in-flight limit: everything due by now goes.
    let due_by_now = (Instant::now()
        .saturating_duration_since(start)
        .as_secs_f64()
        * rate) as u64;
    let count = (due_by_now + 1).saturating_sub(sent).clamp(1, most as u64) as usize;
    Some((
        count,
        Due {
            first,
            step: Duration::from_secs_f64(1.0 / rate),
        },
    ))
}

/// `Instant`s as nanoseconds since the Unix epoch, the clock e2e consumers read.
struct Clock {
    start: Instant,
    start_unix_nanos: u64,
}

impl Clock {
    fn new(start: Instant) -> Clock {
        Clock {
            start,
            start_unix_nanos: super::unix_nanos(),
        }
    }

    fn unix_nanos(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.start).as_nanos();
        self.start_unix_nanos
            .saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }
}

/// The values of one batch: the payload shared by every record, or (e2e) a copy per record
/// with its due time in the first 8 bytes.
enum Values {
    Same(Bytes),
    Stamped { all: Bytes, size: usize },
}

impl Values {
    fn new(value: &Bytes, count: usize, stamp: Option<(&Clock, Due)>) -> Values {
        let Some((clock, due)) = stamp else {
            return Values::Same(value.clone());
        };
        let size = value.len();
        let mut all = BytesMut::with_capacity(count * size);
        for i in 0..count {
            all.extend_from_slice(value);
            let at = clock.unix_nanos(due.first + due.step * i as u32);
            let stamp_at = i * size;
            all[stamp_at..stamp_at + super::STAMP].copy_from_slice(&at.to_be_bytes());
        }
        Values::Stamped {
            all: all.freeze(),
            size,
        }
    }

    fn size(&self) -> usize {
        match self {
            Values::Same(value) => value.len(),
            Values::Stamped { size, .. } => *size,
        }
    }

    fn get(&self, i: usize) -> Bytes {
        match self {
            Values::Same(value) => value.clone(),
            Values::Stamped { all, size } => all.slice(i * size..(i + 1) * size),
        }
    }
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
    values: &Values,
    count: usize,
    due: Due,
    options: &RecordEncodeOptions,
    correlation_id: i32,
) -> anyhow::Result<()> {
    let partition = leader.partitions[leader.next_partition % leader.partitions.len()];
    leader.next_partition += 1;
    encode_batch(&mut leader.batch, values, count, options)?;
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
                due,
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

/// Appends a v2 batch of `count` records with `values` and no key, timestamped now.
fn encode_batch(
    out: &mut BytesMut,
    values: &Values,
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
            value: Some(values.get(i)),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    out.reserve(count * (values.size() + RECORD_OVERHEAD_BYTES) + BATCH_HEADER_BYTES);
    RecordBatchEncoder::encode(out, &records, options).map_err(|e| anyhow!("encoding a batch: {e}"))
}

/// Reads the answers of one connection in order, counting acknowledged records into `shared`
/// and their latency (each record's due time → answer read) into the histogram it returns.
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
                record_latencies(&mut latency, request.due, request.records, Instant::now());
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

/// Adds the latency of `records` records due as `due` says, answered at `answered`.
fn record_latencies(latency: &mut Histogram<u64>, due: Due, records: u64, answered: Instant) {
    if due.step.is_zero() {
        latency.saturating_record_n(
            micros(answered.saturating_duration_since(due.first)),
            records,
        );
        return;
    }
    let mut at = due.first;
    for _ in 0..records {
        latency.saturating_record(micros(answered.saturating_duration_since(at)));
        at += due.step;
    }
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
            encode_batch(&mut out, &Values::Same(value.clone()), 7, &options)
                .unwrap_or_else(|e| panic!("{e}"));
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
    fn batches_fill_to_the_byte_or_the_record_limit() {
        let s = ProduceSettings::from_client_configs(&[], &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.records_per_batch(1024), 961);
        assert_eq!(s.records_per_batch(100), 8620);
        assert_eq!(s.records_per_batch(10), 10_000);
        assert_eq!(s.records_per_batch(2_000_000), 1);
    }

    #[test]
    fn stamped_values_carry_each_records_due_time_and_keep_the_payload() {
        let start = Instant::now();
        let clock = Clock::new(start);
        let due = Due {
            first: start + Duration::from_millis(3),
            step: Duration::from_micros(20),
        };
        let payload = Bytes::from_static(b"0123456789ABCDEF");
        let values = Values::new(&payload, 3, Some((&clock, due)));
        assert_eq!(values.size(), 16);
        for i in 0..3 {
            let value = values.get(i);
            assert_eq!(&value[8..], b"89ABCDEF", "the payload after the stamp");
            let stamp = u64::from_be_bytes(value[..8].try_into().unwrap_or_default());
            let expected = clock.start_unix_nanos + 3_000_000 + 20_000 * i as u64;
            assert_eq!(stamp, expected, "record {i}");
        }
        let same = Values::new(&payload, 3, None);
        assert_eq!(same.get(2), payload);
    }

    #[test]
    fn each_paced_record_counts_from_its_own_due_time() {
        let first = Instant::now();
        let step = Duration::from_millis(1);
        let mut latency = histogram();
        record_latencies(
            &mut latency,
            Due { first, step },
            4,
            first + Duration::from_millis(10),
        );
        // Three significant digits: 10 ms and 7 ms, the oldest record and the newest.
        assert_eq!(latency.len(), 4);
        assert_eq!((latency.max() / 100, latency.min() / 100), (100, 70));
        let mut at_once = histogram();
        let due = Due {
            first,
            step: Duration::ZERO,
        };
        record_latencies(&mut at_once, due, 5, first + Duration::from_millis(2));
        assert_eq!((at_once.len(), at_once.max() / 100), (5, 20));
    }

    #[test]
    fn linger_may_be_zero_and_other_counts_may_not() {
        let s = ProduceSettings::from_client_configs(&["linger.ms=0".into()], &[])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.linger, Duration::ZERO);
        let err = ProduceSettings::from_client_configs(&["linger.ms=-1".into()], &[]).unwrap_err();
        assert!(format!("{err}").contains("whole number"), "{err}");
    }

    #[test]
    fn produce_keys_take_librdkafka_names_and_others_are_refused() {
        let s = ProduceSettings::from_client_configs(
            &[
                "batch.size=65536".into(),
                "max.in.flight.requests.per.connection=1".into(),
                "fetch.min.bytes=1".into(),
            ],
            super::super::wire_consumer::KEYS,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.batch_bytes, s.in_flight), (65536, 1));
        let err =
            ProduceSettings::from_client_configs(&["fetch.min.bytes=1".into()], &[]).unwrap_err();
        assert!(format!("{err}").contains("fetch.min.bytes"), "{err}");
        let err = ProduceSettings::from_client_configs(&["batch.size=0".into()], &[]).unwrap_err();
        assert!(format!("{err}").contains("positive"), "{err}");
    }
}
