//! `vltava bench produce|consume|e2e`: load generators in the spirit of Kafka's
//! producer/consumer perf tests, through rdkafka, against any Kafka-compatible broker.
//!
//! - `produce`: N records (or for a duration) from parallel producers, at a target rate or as
//!   fast as the broker acknowledges; latency is send → acknowledgement.
//! - `consume`: parallel consumers read the topic from the beginning until they caught up (every
//!   partition at its end), N records were read, or the duration ran out.
//! - `e2e`: producers stamp the send time (8 bytes, nanoseconds since the Unix epoch) at the start
//!   of each record, consumers in the same process read from the end of the log and measure
//!   receive − stamp.
//!
//! `--client wire` swaps librdkafka for requests built here (`wire_producer`, `wire_consumer`),
//! so the figures are the broker's rather than the client library's.
//!
//! Latencies go into HDR histograms (microsecond resolution, 3 significant digits), one per
//! thread, merged at the end. A summary goes to stdout (or one JSON line with `--json`); live
//! progress goes to stderr: a progress bar on a terminal, a line every few seconds otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use super::client::{key_value, ClientArgs, Compression};
use super::topic;

mod wire_consumer;
mod wire_producer;

/// Largest latency the histograms hold, in microseconds (larger ones saturate): 10 minutes.
const MAX_LATENCY_US: u64 = 600_000_000;
/// Bytes of the send-time stamp at the start of an e2e record.
const STAMP: usize = 8;
/// How early a paced producer may send a record (`--throughput`): librdkafka's shortest wait.
const PACE_SLACK: Duration = Duration::from_millis(1);
/// Records sent between two polls for delivery reports.
const DELIVERY_POLL_EVERY: u64 = 16;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Producer throughput and send-to-acknowledgement latency.
    #[command(
        after_help = "Examples:\n  vltava bench produce --records 1000000 --record-size 1024 --acks all\n  \
        vltava bench produce --duration 30 --partitions 16 --producers 4 --throughput 50000"
    )]
    Produce(ProduceBench),
    /// Consumer throughput: read a topic from the beginning until caught up.
    #[command(
        after_help = "Examples:\n  vltava bench consume --topic vltava-bench\n  \
        vltava bench consume --records 1000000 --consumers 4"
    )]
    Consume(ConsumeBench),
    /// End-to-end latency: producers stamp the send time, consumers measure receive − send.
    #[command(
        after_help = "Examples:\n  vltava bench e2e --duration 30 --throughput 10000\n  \
        vltava bench e2e --records 100000 --record-size 1024 --acks all --partitions 16"
    )]
    E2e(E2eBench),
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Topic to use.
    #[arg(long, short = 't', default_value = "vltava-bench")]
    topic: String,
    /// Number of records in total (over all producers or consumers).
    #[arg(long, short = 'n', value_name = "N")]
    records: Option<u64>,
    /// Stop after this many seconds (whichever of --records and --duration comes first).
    #[arg(long, value_name = "SECONDS", value_parser = run_seconds)]
    duration: Option<f64>,
    /// Extra librdkafka client property, key=value; may be repeated (e.g. -X linger.ms=10).
    #[arg(long = "client-config", short = 'X', value_name = "KEY=VALUE")]
    client_configs: Vec<String>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args, Debug, Clone)]
struct ProducerOptions {
    /// Bytes in each record's value.
    #[arg(long, short = 's', default_value_t = 100, value_name = "BYTES")]
    record_size: usize,
    /// Partitions of the topic, created with this many if it does not exist.
    #[arg(long, short = 'p', default_value_t = 1)]
    partitions: i32,
    /// Replicas per partition when the topic is created.
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
    /// Acknowledgements to wait for: 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all", "-1"])]
    acks: String,
    /// Compression of record batches.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    compression: Compression,
    /// Idempotent producers (needs acks=all).
    #[arg(long)]
    idempotence: bool,
    /// Producers in parallel, each with its own connection.
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Target rate in records per second over all producers; a negative rate (Kafka's -1) or
    /// none: as fast as possible.
    #[arg(long, value_name = "RECORDS/S", value_parser = records_per_second, allow_negative_numbers = true)]
    throughput: Option<f64>,
}

#[derive(Args, Debug)]
struct ProduceBench {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    producer: ProducerOptions,
    /// Which producer sends: librdkafka, or batches built and sent directly (up to
    /// max.in.flight.requests.per.connection, default 5, pipelined; no retries, no idempotence).
    #[arg(long, value_enum, default_value_t = BenchClient::Rdkafka)]
    client: BenchClient,
}

#[derive(Args, Debug)]
struct ConsumeBench {
    #[command(flatten)]
    common: Common,
    /// Consumers in parallel; the partitions are shared out among them.
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Which consumer reads: librdkafka, or Fetch requests sent directly (every batch's CRC
    /// checked, every record decoded, no per-message hand-off to an application).
    #[arg(long, value_enum, default_value_t = BenchClient::Rdkafka)]
    client: BenchClient,
}

/// The client a bench drives the broker with.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq)]
enum BenchClient {
    /// librdkafka, through rdkafka: what most applications run.
    Rdkafka,
    /// Kafka requests built here with kafka-protocol: no per-message client cost, so the
    /// broker sets the pace.
    Wire,
}

#[derive(Args, Debug)]
struct E2eBench {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    producer: ProducerOptions,
    /// Consumers in parallel; the partitions are shared out among them.
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Which producers and consumers run: librdkafka, or requests sent directly (the wire
    /// producer stamps each record with the time it was due at --throughput, so batching
    /// delay counts; -X linger.ms=0 sends as soon as a request may go).
    #[arg(long, value_enum, default_value_t = BenchClient::Rdkafka)]
    client: BenchClient,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Produce(b) => produce(b),
        BenchCommand::Consume(b) => consume(b),
        BenchCommand::E2e(b) => e2e(b),
    }
}

/// Counters every thread adds to and the progress display reads.
#[derive(Default)]
struct Shared {
    sent: AtomicU64,
    acked: AtomicU64,
    acked_bytes: AtomicU64,
    failed: AtomicU64,
    consumed: AtomicU64,
    consumed_bytes: AtomicU64,
    /// Set once every producer has flushed (e2e consumers stop after reading all acked records).
    producers_done: AtomicBool,
    /// Wire consumers that know where they start reading (e2e producers wait for all of them).
    consumers_ready: std::sync::atomic::AtomicUsize,
    /// Set to stop every thread early (an error elsewhere).
    abort: AtomicBool,
    /// When the first record arrived at any consumer: read throughput is measured from here,
    /// so connecting, metadata and the offset lookup count as start-up, not as reading (as
    /// Kafka's ConsumerPerformance leaves the group join out of its fetch rate).
    first_record: std::sync::OnceLock<Instant>,
    /// Nanoseconds from `first_record` to the latest record read: the read ends there, not
    /// when the consumer learns it is at the end (an empty fetch the broker holds for
    /// `fetch.wait.max.ms`, 500 ms by default, on every broker).
    last_record_nanos: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    fn fail(&self, message: String) {
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(message);
    }

    fn error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How long after the first record of any consumer a record read at `at` came.
    fn since_first_record(&self, at: Instant) -> Duration {
        let first = *self.first_record.get_or_init(|| at);
        at.saturating_duration_since(first)
    }

    /// A consumer is done; `read_until` is `since_first_record` of its last record.
    fn reading_ended(&self, read_until: Duration) {
        self.last_record_nanos
            .fetch_max(read_until.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// Starts a bench thread named `name`, returning its latencies when joined.
fn bench_thread(
    name: String,
    work: impl FnOnce() -> Histogram<u64> + Send + 'static,
) -> anyhow::Result<JoinHandle<Histogram<u64>>> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(work)
        .with_context(|| format!("starting thread {name}"))
}

/// Joins `handles` and merges the latencies they return.
fn join_merged(
    handles: impl IntoIterator<Item = JoinHandle<Histogram<u64>>>,
) -> anyhow::Result<Histogram<u64>> {
    let mut merged = histogram();
    for handle in handles {
        let h = handle
            .join()
            .map_err(|_| anyhow!("a benchmark thread panicked"))?;
        merged
            .add(&h)
            .map_err(|e| anyhow!("merging histograms: {e}"))?;
    }
    Ok(merged)
}

/// The longest `--duration`: a year (pacing and deadlines are `Instant`s, which overflow on
/// absurd spans).
const MAX_RUN_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// The slowest `--throughput` (one record per 1 000 s), so a record's due time stays a
/// representable `Duration`.
const MIN_RECORDS_PER_SECOND: f64 = 0.001;

fn run_seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if seconds > 0.0 && seconds <= MAX_RUN_SECONDS {
        Ok(seconds)
    } else {
        Err(format!(
            "`{text}`: a run lasts more than 0 and at most {MAX_RUN_SECONDS} seconds"
        ))
    }
}

fn records_per_second(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of records per second"))?;
    if rate.is_finite() && !(0.0..MIN_RECORDS_PER_SECOND).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!(
            "`{text}`: a rate is at least {MIN_RECORDS_PER_SECOND} records/s, or -1 for no limit"
        ))
    }
}

/// `--throughput` shared out over `--producers`, if it is a rate at all.
fn rate_per_producer(opts: &ProducerOptions) -> Option<f64> {
    opts.throughput
        .filter(|r| *r > 0.0)
        .map(|r| r / opts.producers as f64)
}

fn histogram() -> Histogram<u64> {
    // Bounds 1 µs..10 min with 3 significant digits are always valid.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap_or_else(|_| unreachable!())
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_LATENCY_US)
}

/// The latency of an e2e record received at `received` (nanoseconds since the epoch) whose
/// value starts with its send-time stamp. A stamp after the receipt is an error: the record
/// was not stamped by this run's producers (another writer on the topic).
fn stamped_latency(value: &[u8], received: u64) -> Result<Duration, String> {
    let Some(stamp) = value.get(..STAMP) else {
        return Err(format!(
            "a {}-byte record, too short for a send-time stamp",
            value.len()
        ));
    };
    let mut bytes = [0u8; STAMP];
    bytes.copy_from_slice(stamp);
    let sent = u64::from_be_bytes(bytes);
    if sent > received {
        return Err(format!(
            "a record stamped {} ms after it was read: not written by this run's producers",
            (sent - received) / 1_000_000
        ));
    }
    Ok(Duration::from_nanos(received - sent))
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn base_config(common: &Common) -> anyhow::Result<ClientConfig> {
    let mut config = common.client.rdkafka();
    config.set("client.id", "vltava-bench");
    for pair in &common.client_configs {
        let (k, v) = key_value(pair, "--client-config")?;
        config.set(k, v);
    }
    Ok(config)
}

/// The topic's partition ids, creating the topic with `partitions` partitions if it is missing.
fn ensure_topic(common: &Common, partitions: i32, replication: i32) -> anyhow::Result<Vec<i32>> {
    if let Some(found) = topic_partitions(common)? {
        if found.len() as i32 != partitions {
            eprintln!(
                "note: topic {:?} exists with {} partitions (asked for {partitions})",
                common.topic,
                found.len()
            );
        }
        return Ok(found);
    }
    let admin = topic::admin(&common.client)?;
    let new = NewTopic::new(
        &common.topic,
        partitions,
        TopicReplication::Fixed(replication),
    );
    let results = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(admin.create_topics([&new], &topic::options(&common.client)))
        .context("creating the topic")?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => bail!("cannot create topic {:?}: {code}", common.topic),
        }
    }
    // Wait until the metadata shows every partition with a leader.
    let deadline = Instant::now() + common.client.timeout();
    loop {
        if let Some(found) = topic_partitions(common)? {
            if found.len() as i32 >= partitions {
                return Ok(found);
            }
        }
        if Instant::now() > deadline {
            bail!(
                "topic {:?} was created but has no leaders yet",
                common.topic
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The topic's partitions that have a leader, or None when the topic does not exist.
fn topic_partitions(common: &Common) -> anyhow::Result<Option<Vec<i32>>> {
    let metadata = topic::metadata(&common.client)?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == common.topic) else {
        return Ok(None);
    };
    if found.error().is_some() {
        return Ok(None);
    }
    let mut ids: Vec<i32> = found
        .partitions()
        .iter()
        .filter(|p| p.leader() >= 0)
        .map(|p| p.id())
        .collect();
    ids.sort_unstable();
    Ok(Some(ids))
}

/// Records for worker `index` of `workers` when `total` are shared out.
fn share(total: Option<u64>, index: usize, workers: usize) -> Option<u64> {
    total.map(|n| {
        let (w, i) = (workers as u64, index as u64);
        n / w + u64::from(i < n % w)
    })
}

/// When a run of `duration` seconds (checked by [`run_seconds`]) started now ends.
fn deadline(duration: Option<f64>) -> Option<Instant> {
    duration.map(|d| Instant::now() + Duration::from_secs_f64(d))
}

// ---------------------------------------------------------------------------------------------
// Producers

/// Per-producer delivery context: counts into `Shared`, latencies into its own histogram. The
/// delivery opaque is the send time in nanoseconds since `start`.
struct Deliveries {
    shared: Arc<Shared>,
    start: Instant,
    record_size: u64,
    latency: Mutex<Histogram<u64>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at: usize) {
        match result {
            Ok(_) => {
                let now = self.start.elapsed();
                let sent = Duration::from_nanos(sent_at as u64);
                let mut h = self.latency.lock().unwrap_or_else(|e| e.into_inner());
                h.saturating_record(micros(now.saturating_sub(sent)));
                self.shared.acked.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .acked_bytes
                    .fetch_add(self.record_size, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.shared.failed.fetch_add(1, Ordering::Relaxed);
                self.shared.fail(format!("delivery failed: {e}"));
            }
        }
    }
}

struct ProducerPlan {
    config: ClientConfig,
    topic: String,
    records: Option<u64>,
    deadline: Option<Instant>,
    /// Records per second for this producer.
    rate: Option<f64>,
    record_size: usize,
    /// Stamp the send time into the first 8 bytes (e2e).
    stamp: bool,
    flush_timeout: Duration,
}

fn producer_config(common: &Common, opts: &ProducerOptions) -> anyhow::Result<ClientConfig> {
    let acks = if opts.acks == "-1" { "all" } else { &opts.acks };
    if opts.idempotence && acks != "all" {
        bail!("--idempotence needs --acks all");
    }
    let mut config = base_config(common)?;
    config
        .set("acks", acks)
        .set("compression.type", opts.compression.name())
        .set("enable.idempotence", opts.idempotence.to_string())
        .set(
            "message.timeout.ms",
            (common.client.timeout().as_millis() * 6).to_string(),
        );
    // User overrides win over the settings above.
    for pair in &common.client_configs {
        let (k, v) = key_value(pair, "--client-config")?;
        config.set(k, v);
    }
    Ok(config)
}

/// A pseudo-random payload of upper-case letters (like Kafka's ProducerPerformance): compressible
/// about as much as text, not trivially as zeros.
fn payload(size: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b'A' + (state % 26) as u8
        })
        .collect()
}

fn spawn_producers(
    common: &Common,
    opts: &ProducerOptions,
    records: Option<u64>,
    deadline: Option<Instant>,
    stamp: bool,
    shared: &Arc<Shared>,
) -> anyhow::Result<Vec<JoinHandle<Histogram<u64>>>> {
    if opts.producers == 0 {
        bail!("--producers must be at least 1");
    }
    if stamp && opts.record_size < STAMP {
        bail!("--record-size must be at least {STAMP} for e2e (the send-time stamp)");
    }
    let config = producer_config(common, opts)?;
    let rate = rate_per_producer(opts);
    let mut handles = Vec::new();
    for i in 0..opts.producers {
        let plan = ProducerPlan {
            config: config.clone(),
            topic: common.topic.clone(),
            records: share(records, i, opts.producers),
            deadline,
            rate,
            record_size: opts.record_size,
            stamp,
            flush_timeout: common.client.timeout() * 6,
        };
        let shared = Arc::clone(shared);
        handles.push(bench_thread(format!("bench-producer-{i}"), move || {
            run_producer(plan, shared)
        })?);
    }
    Ok(handles)
}

fn run_producer(plan: ProducerPlan, shared: Arc<Shared>) -> Histogram<u64> {
    let start = Instant::now();
    let context = Deliveries {
        shared: Arc::clone(&shared),
        start,
        record_size: plan.record_size as u64,
        latency: Mutex::new(histogram()),
    };
    let producer: BaseProducer<Deliveries> = match plan.config.create_with_context(context) {
        Ok(p) => p,
        Err(e) => {
            shared.fail(format!("creating a producer: {e}"));
            shared.abort.store(true, Ordering::Relaxed);
            return histogram();
        }
    };
    let mut value = payload(plan.record_size);
    let mut sent = 0u64;
    'records: loop {
        // One clock read per record serves the deadline and the send time: on a shared
        // two-core box the load generator's own clock reads are CPU the broker needs.
        let mut now = Instant::now();
        if plan.records.is_some_and(|n| sent >= n)
            || plan.deadline.is_some_and(|d| now >= d)
            || shared.abort.load(Ordering::Relaxed)
        {
            break;
        }
        if let Some(rate) = plan.rate {
            // librdkafka waits in whole milliseconds, so a shorter wait would spin a core
            // the broker under test needs: a record due within PACE_SLACK is sent now.
            let due = start + Duration::from_secs_f64(sent as f64 / rate);
            loop {
                let ahead = due.saturating_duration_since(now);
                if ahead < PACE_SLACK {
                    break;
                }
                producer.poll(ahead);
                now = Instant::now();
            }
        }
        if plan.stamp {
            value[..STAMP].copy_from_slice(&unix_nanos().to_be_bytes());
        }
        let sent_at = now.saturating_duration_since(start).as_nanos() as usize;
        let mut record =
            BaseRecord::<(), [u8], usize>::with_opaque_to(&plan.topic, sent_at).payload(&value[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                // The local queue is full: serve delivery reports, then try again.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(5));
                    if shared.abort.load(Ordering::Relaxed) {
                        break 'records;
                    }
                }
                Err((e, _)) => {
                    shared.fail(format!("cannot produce to {:?}: {e}", plan.topic));
                    shared.abort.store(true, Ordering::Relaxed);
                    break 'records;
                }
            }
        }
        sent += 1;
        shared.sent.fetch_add(1, Ordering::Relaxed);
        // Delivery reports arrive a whole produce response at a time, so serving them every
        // few records saves a queue lock per record and delays a report by at most those
        // few records' send time (a paced producer also serves them while it waits).
        if sent.is_multiple_of(DELIVERY_POLL_EVERY) {
            producer.poll(Duration::ZERO);
        }
        if shared.failed.load(Ordering::Relaxed) > 0 {
            shared.abort.store(true, Ordering::Relaxed);
            break;
        }
    }
    if let Err(e) = producer.flush(plan.flush_timeout) {
        shared.fail(format!("flushing: {e}"));
    }
    let h = producer
        .context()
        .latency
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    h
}

// ---------------------------------------------------------------------------------------------
// Consumers

struct ConsumerPlan {
    consumer: BaseConsumer,
    partitions: usize,
    /// Stop when every partition reported its end (consume without --records).
    until_caught_up: bool,
    records: Option<u64>,
    deadline: Option<Instant>,
    /// Measure receive − stamp (e2e).
    stamped: bool,
    idle_timeout: Duration,
}

fn spawn_consumers(
    common: &Common,
    consumers: usize,
    partitions: &[i32],
    starts: &[Offset],
    plan: impl Fn() -> (bool, Option<u64>, Option<Instant>, bool),
    shared: &Arc<Shared>,
) -> anyhow::Result<Vec<JoinHandle<Histogram<u64>>>> {
    if consumers == 0 {
        bail!("--consumers must be at least 1");
    }
    let mut config = base_config(common)?;
    config
        .set("group.id", "vltava-bench")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("allow.auto.create.topics", "false");
    for pair in &common.client_configs {
        let (k, v) = key_value(pair, "--client-config")?;
        config.set(k, v);
    }
    let workers = consumers.min(partitions.len()).max(1);
    let mut handles = Vec::new();
    for i in 0..workers {
        let consumer: BaseConsumer = config.create().context("creating a consumer")?;
        let mut assignment = TopicPartitionList::new();
        let mut mine = 0;
        for (k, (p, start)) in partitions.iter().zip(starts).enumerate() {
            if k % workers == i {
                assignment
                    .add_partition_offset(&common.topic, *p, *start)
                    .context("building the assignment")?;
                mine += 1;
            }
        }
        consumer
            .assign(&assignment)
            .context("assigning partitions")?;
        let (until_caught_up, records, deadline, stamped) = plan();
        let plan = ConsumerPlan {
            consumer,
            partitions: mine,
            until_caught_up,
            records,
            deadline,
            stamped,
            idle_timeout: common.client.timeout(),
        };
        let shared = Arc::clone(shared);
        handles.push(bench_thread(format!("bench-consumer-{i}"), move || {
            run_consumer(plan, &shared)
        })?);
    }
    Ok(handles)
}

/// Each partition of the topic with its leader's host:port, in partition order.
fn partition_leaders(common: &Common) -> anyhow::Result<Vec<(i32, String)>> {
    let metadata = topic::metadata(&common.client)?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == common.topic) else {
        bail!("unknown topic {:?}", common.topic);
    };
    let mut leaders = Vec::new();
    for p in found.partitions() {
        let Some(broker) = metadata.brokers().iter().find(|b| b.id() == p.leader()) else {
            bail!("partition {} of {:?} has no leader", p.id(), common.topic);
        };
        leaders.push((p.id(), format!("{}:{}", broker.host(), broker.port())));
    }
    leaders.sort_unstable();
    Ok(leaders)
}

/// `topic` as the wire clients' requests name it.
fn topic_name(topic: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_string(
        topic.to_string(),
    ))
}

/// Partitions grouped by leader address.
fn by_leader<'a>(
    leaders: impl Iterator<Item = &'a (i32, String)>,
) -> std::collections::BTreeMap<String, Vec<i32>> {
    let mut grouped: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
    for (partition, address) in leaders {
        grouped.entry(address.clone()).or_default().push(*partition);
    }
    grouped
}

/// `--client wire`: `--producers` threads, each sending batches to every partition in turn.
fn spawn_wire_producers(
    common: &Common,
    opts: &ProducerOptions,
    records: Option<u64>,
    deadline: Option<Instant>,
    stamp: bool,
    shared: &Arc<Shared>,
) -> anyhow::Result<Vec<JoinHandle<Histogram<u64>>>> {
    if opts.producers == 0 {
        bail!("--producers must be at least 1");
    }
    if stamp && opts.record_size < STAMP {
        bail!("--record-size must be at least {STAMP} for e2e (the send-time stamp)");
    }
    if opts.idempotence {
        bail!("--client wire has no idempotent producer; use the default --client rdkafka");
    }
    // e2e: the consumers beside these read the fetch keys.
    let others = if stamp { wire_consumer::KEYS } else { &[] };
    let settings =
        wire_producer::ProduceSettings::from_client_configs(&common.client_configs, others)?;
    let leaders = partition_leaders(common)?;
    let acks = match opts.acks.as_str() {
        "0" => 0,
        "1" => 1,
        _ => -1,
    };
    let rate = rate_per_producer(opts);
    // Every producer writes to every partition.
    let all = by_leader(leaders.iter());
    let mut handles = Vec::new();
    for i in 0..opts.producers {
        let plan = wire_producer::WirePlan {
            topic: common.topic.clone(),
            by_leader: all.clone(),
            acks,
            compression: opts.compression.wire(),
            record_size: opts.record_size,
            records: share(records, i, opts.producers),
            deadline,
            rate,
            settings: settings.clone(),
            timeout: common.client.timeout(),
            stamp,
        };
        let shared = Arc::clone(shared);
        handles.push(bench_thread(
            format!("bench-wire-producer-{i}"),
            move || wire_producer::run(plan, shared),
        )?);
    }
    Ok(handles)
}

/// `--client wire`: the topic's partitions shared out among `consumers` threads, each with a
/// connection to every leader it reads from; `stamped` for e2e (from the end, measuring).
fn spawn_wire_consumers(
    common: &Common,
    consumers: usize,
    deadline: Option<Instant>,
    stamped: bool,
    shared: &Arc<Shared>,
) -> anyhow::Result<Vec<JoinHandle<Histogram<u64>>>> {
    if consumers == 0 {
        bail!("--consumers must be at least 1");
    }
    let others = if stamped { wire_producer::KEYS } else { &[] };
    let settings =
        wire_consumer::FetchSettings::from_client_configs(&common.client_configs, others)?;
    let leaders = partition_leaders(common)?;
    let workers = consumers.min(leaders.len()).max(1);
    let mut handles = Vec::new();
    for i in 0..workers {
        let by_leader = by_leader(leaders.iter().skip(i).step_by(workers));
        let plan = wire_consumer::WirePlan {
            topic: common.topic.clone(),
            by_leader,
            until_caught_up: !stamped && common.records.is_none(),
            records: if stamped { None } else { common.records },
            deadline,
            settings: settings.clone(),
            timeout: common.client.timeout(),
            stamped,
        };
        let shared = Arc::clone(shared);
        handles.push(bench_thread(
            format!("bench-wire-consumer-{i}"),
            move || wire_consumer::run(plan, &shared),
        )?);
    }
    Ok(handles)
}

fn run_consumer(plan: ConsumerPlan, shared: &Shared) -> Histogram<u64> {
    let mut latency = histogram();
    let mut at_end = std::collections::HashSet::new();
    let mut last_record = Instant::now();
    // Since the first record of any consumer, when this one read its last.
    let mut read_until = Duration::ZERO;
    loop {
        if shared.abort.load(Ordering::Relaxed)
            || plan.deadline.is_some_and(|d| Instant::now() >= d)
        {
            break;
        }
        let consumed = shared.consumed.load(Ordering::Relaxed);
        if plan.records.is_some_and(|n| consumed >= n) {
            break;
        }
        // e2e: done once producers finished and everything they got acknowledged was read.
        if plan.stamped
            && shared.producers_done.load(Ordering::Relaxed)
            && consumed >= shared.acked.load(Ordering::Relaxed)
        {
            break;
        }
        match plan.consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                let received = if plan.stamped { unix_nanos() } else { 0 };
                last_record = Instant::now();
                read_until = shared.since_first_record(last_record);
                let value = message.payload().unwrap_or_default();
                if !at_end.is_empty() {
                    at_end.remove(&message.partition());
                }
                if plan.stamped {
                    match stamped_latency(value, received) {
                        Ok(waited) => latency.saturating_record(micros(waited)),
                        Err(e) => {
                            shared.fail(format!("e2e: {e}"));
                            shared.abort.store(true, Ordering::Relaxed);
                            break;
                        }
                    }
                }
                shared.consumed.fetch_add(1, Ordering::Relaxed);
                shared
                    .consumed_bytes
                    .fetch_add(value.len() as u64, Ordering::Relaxed);
                continue;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
                if plan.until_caught_up && at_end.len() >= plan.partitions {
                    break;
                }
                continue;
            }
            Some(Err(e)) => {
                shared.fail(format!("consuming: {e}"));
                shared.abort.store(true, Ordering::Relaxed);
                break;
            }
        }
        // Waiting on producers (e2e) is not idleness; a stalled read is.
        let waiting = plan.stamped && !shared.producers_done.load(Ordering::Relaxed);
        if !waiting && last_record.elapsed() > plan.idle_timeout {
            shared.fail(format!(
                "no record for {}s",
                plan.idle_timeout.as_secs_f64()
            ));
            break;
        }
    }
    shared.reading_ended(read_until);
    latency
}

// ---------------------------------------------------------------------------------------------
// Progress and summary

enum Progress {
    Bar(ProgressBar),
    Lines { last: Instant, every: Duration },
}

impl Progress {
    fn new(total: Option<u64>) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = match total {
                Some(n) => {
                    let bar = ProgressBar::new(n);
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{bar:40} {pos}/{len} records ({per_sec}) {msg} {eta}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    bar
                }
                None => {
                    let bar = ProgressBar::new_spinner();
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} {pos} records ({per_sec}) {msg} {elapsed}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar
                }
            };
            Progress::Bar(bar)
        } else {
            Progress::Lines {
                last: Instant::now(),
                every: Duration::from_secs(5),
            }
        }
    }

    fn update(&mut self, count: u64, bytes: u64, started: Instant) {
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        match self {
            Progress::Bar(bar) => {
                bar.set_position(count);
                bar.set_message(format!("{:.1} MiB/s", mib(bytes) / secs));
            }
            Progress::Lines { last, every } => {
                if last.elapsed() >= *every {
                    *last = Instant::now();
                    eprintln!(
                        "bench: {count} records in {secs:.0}s ({:.0} records/s, {:.1} MiB/s)",
                        count as f64 / secs,
                        mib(bytes) / secs
                    );
                }
            }
        }
    }

    fn finish(self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Shows progress until every thread ended, then joins them and merges their histograms.
fn watch(
    handles: Vec<JoinHandle<Histogram<u64>>>,
    progress: &mut Progress,
    started: Instant,
    counters: impl Fn() -> (u64, u64),
) -> anyhow::Result<Histogram<u64>> {
    while !handles.iter().all(JoinHandle::is_finished) {
        let (count, bytes) = counters();
        progress.update(count, bytes, started);
        std::thread::sleep(Duration::from_millis(100));
    }
    join_merged(handles)
}

struct Summary {
    what: &'static str,
    records: u64,
    bytes: u64,
    seconds: f64,
    latency: Option<(&'static str, Histogram<u64>)>,
    /// Time from the start to the first record (consumers), not part of `seconds`.
    startup_ms: Option<f64>,
}

impl Summary {
    fn records_per_s(&self) -> f64 {
        self.records as f64 / self.seconds.max(1e-6)
    }

    fn mib_per_s(&self) -> f64 {
        mib(self.bytes) / self.seconds.max(1e-6)
    }

    fn text(&self) -> String {
        let mut out = format!(
            "{} {} records ({} bytes) in {:.2}s: {:.0} records/s, {:.2} MiB/s\n",
            self.what,
            self.records,
            self.bytes,
            self.seconds,
            self.records_per_s(),
            self.mib_per_s()
        );
        if let Some(startup) = self.startup_ms {
            out.push_str(&format!(
                "first record after {startup:.0} ms (connect, metadata, offsets; not in the rate)\n"
            ));
        }
        if let Some((label, h)) = &self.latency {
            if h.is_empty() {
                out.push_str(&format!("{label} latency: no samples\n"));
            } else {
                out.push_str(&format!(
                    "{label} latency ms: p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}\n",
                    ms(h.value_at_quantile(0.5)),
                    ms(h.value_at_quantile(0.99)),
                    ms(h.value_at_quantile(0.999)),
                    ms(h.max())
                ));
            }
        }
        out
    }

    fn json(&self) -> String {
        let latency = match &self.latency {
            Some((_, h)) if !h.is_empty() => format!(
                "{{\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"max_ms\":{:.3}}}",
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99)),
                ms(h.value_at_quantile(0.999)),
                ms(h.max())
            ),
            _ => "null".to_string(),
        };
        let startup = self
            .startup_ms
            .map_or("null".to_string(), |ms| format!("{ms:.1}"));
        format!(
            "\"{}\":{{\"records\":{},\"bytes\":{},\"seconds\":{:.3},\"records_per_s\":{:.1},\"mib_per_s\":{:.3},\"startup_ms\":{startup},\"latency\":{latency}}}",
            self.what,
            self.records,
            self.bytes,
            self.seconds,
            self.records_per_s(),
            self.mib_per_s()
        )
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn report(common: &Common, summaries: &[Summary], shared: &Shared) -> anyhow::Result<()> {
    if common.json {
        let body: Vec<String> = summaries.iter().map(Summary::json).collect();
        println!("{{{}}}", body.join(","));
    } else {
        for s in summaries {
            print!("{}", s.text());
        }
    }
    let failed = shared.failed.load(Ordering::Relaxed);
    if let Some(e) = shared.error() {
        if failed > 0 {
            bail!("{failed} records failed; first error: {e}");
        }
        bail!("{e}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The three commands

fn produce(b: ProduceBench) -> anyhow::Result<()> {
    let common = &b.common;
    common.client.check_reachable()?;
    ensure_topic(common, b.producer.partitions, b.producer.replication_factor)?;
    let records = match (common.records, common.duration) {
        (None, None) => Some(1_000_000),
        (r, _) => r,
    };
    let shared = Arc::new(Shared::default());
    let mut progress = Progress::new(records);
    let started = Instant::now();
    let handles = match b.client {
        BenchClient::Rdkafka => spawn_producers(
            common,
            &b.producer,
            records,
            deadline(common.duration),
            false,
            &shared,
        )?,
        BenchClient::Wire => spawn_wire_producers(
            common,
            &b.producer,
            records,
            deadline(common.duration),
            false,
            &shared,
        )?,
    };
    let latency = watch(handles, &mut progress, started, || {
        (
            shared.acked.load(Ordering::Relaxed),
            shared.acked_bytes.load(Ordering::Relaxed),
        )
    })?;
    let seconds = started.elapsed().as_secs_f64();
    progress.finish();
    let summary = Summary {
        what: "produced",
        records: shared.acked.load(Ordering::Relaxed),
        bytes: shared.acked_bytes.load(Ordering::Relaxed),
        seconds,
        latency: Some(("send-to-ack", latency)),
        startup_ms: None,
    };
    report(common, &[summary], &shared)
}

fn consume(b: ConsumeBench) -> anyhow::Result<()> {
    let common = &b.common;
    common.client.check_reachable()?;
    let Some(partitions) = topic_partitions(common)? else {
        bail!("unknown topic {:?}", common.topic);
    };
    if partitions.is_empty() {
        bail!("topic {:?} has no partition with a leader", common.topic);
    }
    let starts = vec![Offset::Beginning; partitions.len()];
    let shared = Arc::new(Shared::default());
    let mut progress = Progress::new(common.records);
    let started = Instant::now();
    let until_caught_up = common.records.is_none();
    let (records, end) = (common.records, deadline(common.duration));
    let handles = match b.client {
        BenchClient::Rdkafka => spawn_consumers(
            common,
            b.consumers,
            &partitions,
            &starts,
            || (until_caught_up, records, end, false),
            &shared,
        )?,
        BenchClient::Wire => spawn_wire_consumers(common, b.consumers, end, false, &shared)?,
    };
    watch(handles, &mut progress, started, || {
        (
            shared.consumed.load(Ordering::Relaxed),
            shared.consumed_bytes.load(Ordering::Relaxed),
        )
    })?;
    let ended = Instant::now();
    progress.finish();
    let consumed = shared.consumed.load(Ordering::Relaxed);
    let first = shared.first_record.get().copied();
    let summary = Summary {
        what: "consumed",
        records: consumed,
        bytes: shared.consumed_bytes.load(Ordering::Relaxed),
        seconds: match first {
            Some(_) => {
                Duration::from_nanos(shared.last_record_nanos.load(Ordering::Relaxed)).as_secs_f64()
            }
            None => (ended - started).as_secs_f64(),
        },
        latency: None,
        startup_ms: first.map(|f| (f - started).as_secs_f64() * 1e3),
    };
    if let Some(n) = records {
        if consumed < n && shared.error().is_none() {
            shared.fail(format!(
                "read {consumed} of {n} records before the deadline"
            ));
        }
    }
    report(common, &[summary], &shared)
}

fn e2e(b: E2eBench) -> anyhow::Result<()> {
    let common = &b.common;
    common.client.check_reachable()?;
    let partitions = ensure_topic(common, b.producer.partitions, b.producer.replication_factor)?;
    let (records, duration) = match (common.records, common.duration) {
        (None, None) => (None, Some(10.0)),
        other => other,
    };
    let mut opts = b.producer.clone();
    if opts.throughput.is_none() {
        opts.throughput = Some(1000.0);
    }
    let shared = Arc::new(Shared::default());
    let consumers = match b.client {
        BenchClient::Rdkafka => spawn_rdkafka_e2e_consumers(common, &b, &partitions, &shared)?,
        BenchClient::Wire => {
            let consumers = spawn_wire_consumers(common, b.consumers, None, true, &shared)?;
            wait_for_consumers(&shared, consumers.len(), common.client.timeout())?;
            consumers
        }
    };
    let mut progress = Progress::new(records);
    let started = Instant::now();
    let end = deadline(duration);
    let producers = match b.client {
        BenchClient::Rdkafka => spawn_producers(common, &opts, records, end, true, &shared)?,
        BenchClient::Wire => spawn_wire_producers(common, &opts, records, end, true, &shared)?,
    };
    let counters = || {
        (
            shared.consumed.load(Ordering::Relaxed),
            shared.consumed_bytes.load(Ordering::Relaxed),
        )
    };
    let ack_latency = watch(producers, &mut progress, started, counters)?;
    let produce_seconds = started.elapsed().as_secs_f64();
    shared.producers_done.store(true, Ordering::Relaxed);
    let e2e_latency = watch(consumers, &mut progress, started, counters)?;
    let seconds = started.elapsed().as_secs_f64();
    progress.finish();
    let acked = shared.acked.load(Ordering::Relaxed);
    let consumed = shared.consumed.load(Ordering::Relaxed);
    if consumed < acked && shared.error().is_none() {
        shared.fail(format!("read {consumed} of {acked} acknowledged records"));
    }
    let summaries = [
        Summary {
            what: "produced",
            records: acked,
            bytes: shared.acked_bytes.load(Ordering::Relaxed),
            seconds: produce_seconds,
            latency: Some(("send-to-ack", ack_latency)),
            startup_ms: None,
        },
        Summary {
            what: "consumed",
            records: consumed,
            bytes: shared.consumed_bytes.load(Ordering::Relaxed),
            seconds,
            latency: Some(("end-to-end", e2e_latency)),
            startup_ms: None,
        },
    ];
    report(common, &summaries, &shared)
}

/// librdkafka e2e consumers, starting at the current end of every partition (read before
/// producing starts).
fn spawn_rdkafka_e2e_consumers(
    common: &Common,
    b: &E2eBench,
    partitions: &[i32],
    shared: &Arc<Shared>,
) -> anyhow::Result<Vec<JoinHandle<Histogram<u64>>>> {
    let watermarks: BaseConsumer = base_config(common)?
        .set("group.id", "vltava-bench")
        .create()
        .context("creating a consumer")?;
    let mut starts = Vec::new();
    for p in partitions {
        let (_, high) = watermarks
            .fetch_watermarks(&common.topic, *p, common.client.timeout())
            .with_context(|| format!("reading the end offset of partition {p}"))?;
        starts.push(Offset::Offset(high));
    }
    drop(watermarks);
    spawn_consumers(
        common,
        b.consumers,
        partitions,
        &starts,
        || (false, None, None, true),
        shared,
    )
}

/// Waits until `count` wire consumers know their start offsets, so no record is produced
/// before they look.
fn wait_for_consumers(shared: &Shared, count: usize, timeout: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + timeout;
    while shared.consumers_ready.load(Ordering::Relaxed) < count {
        if let Some(e) = shared.error() {
            bail!("{e}");
        }
        if Instant::now() >= until {
            bail!("consumers not ready after {}s", timeout.as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_or_rate_that_pacing_cannot_represent_is_refused() {
        assert_eq!(run_seconds("2.5"), Ok(2.5));
        for bad in ["0", "-3", "NaN", "inf", "1e30", "ten"] {
            assert!(run_seconds(bad).is_err(), "--duration {bad}");
        }
        assert_eq!(records_per_second("50000"), Ok(50_000.0));
        assert_eq!(records_per_second("-1"), Ok(-1.0));
        for bad in ["0", "1e-300", "NaN", "inf", "-inf", "fast"] {
            assert!(records_per_second(bad).is_err(), "--throughput {bad}");
        }
    }

    #[test]
    fn a_stamp_gives_the_wait_and_a_stamp_from_the_future_is_refused() {
        let mut value = 1_000_000_000u64.to_be_bytes().to_vec();
        value.extend_from_slice(b"payload");
        assert_eq!(
            stamped_latency(&value, 1_002_500_000),
            Ok(Duration::from_micros(2_500))
        );
        let err = stamped_latency(&value, 999_000_000).unwrap_err();
        assert!(err.contains("1 ms after"), "{err}");
        assert!(stamped_latency(b"short", 1).is_err());
    }

    #[test]
    fn records_are_shared_out_to_the_last_one() {
        let parts: Vec<u64> = (0..3).filter_map(|i| share(Some(10), i, 3)).collect();
        assert_eq!(parts, vec![4, 3, 3]);
        assert_eq!(share(None, 0, 3), None);
    }

    #[test]
    fn payload_is_letters_of_the_asked_size() {
        let p = payload(1024);
        assert_eq!(p.len(), 1024);
        assert!(p.iter().all(u8::is_ascii_uppercase));
        assert!(p.iter().collect::<std::collections::HashSet<_>>().len() > 20);
    }

    #[test]
    fn latencies_saturate_instead_of_failing() {
        let mut h = histogram();
        h.saturating_record(micros(Duration::from_secs(3600)));
        h.saturating_record(micros(Duration::ZERO));
        assert_eq!(h.len(), 2);
        assert!(h.max() >= MAX_LATENCY_US * 999 / 1000);
    }
}
