//! `vltava produce TOPIC`: one record per input line, through rdkafka's producer. A progress bar
//! on a terminal, a summary at the end, and a non-zero exit if any record was not acknowledged.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use super::client::{key_value, ClientArgs, Compression};

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  vltava produce orders < events.txt\n  \
    printf 'k1:v1\\nk2:v2\\n' | vltava produce orders --key-separator : --header source=cli --acks all")]
pub struct ProduceArgs {
    topic: String,
    /// Read records from this file instead of stdin.
    #[arg(long, short = 'f', value_name = "PATH")]
    file: Option<std::path::PathBuf>,
    /// Split each line at the first SEP into key and value.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// A header added to every record, key=value; may be repeated.
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Acknowledgements to wait for: 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all", "-1"])]
    acks: String,
    /// Compression of record batches.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    compression: Compression,
    /// Send every record to this partition (default: by key hash, or spread).
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    #[command(flatten)]
    client: ClientArgs,
}

/// Counts acknowledgements and keeps the first failure to report.
#[derive(Default)]
struct Deliveries {
    acked: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<KafkaError>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert_with(|| e.clone());
            }
        }
    }
}

pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let headers = args
        .headers
        .iter()
        .map(|h| key_value(h, "--header"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let input: Box<dyn BufRead> = match &args.file {
        Some(path) => Box::new(BufReader::new(
            File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    args.client.check_reachable()?;
    let acks = if args.acks == "-1" { "all" } else { &args.acks };
    let producer: BaseProducer<Deliveries> = args
        .client
        .rdkafka()
        .set("acks", acks)
        .set("compression.type", args.compression.name())
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            (args.client.timeout().as_millis() * 3).to_string(),
        )
        .create_with_context(Deliveries::default())
        .context("creating the producer")?;
    check_topic(&producer, &args.topic, args.client.timeout())?;

    let bar = progress_bar(args.file.as_deref());
    let started = Instant::now();
    let (mut sent, mut bytes) = (0u64, 0u64);
    for line in input.split(b'\n') {
        let mut line = line.context("reading input")?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let (key, value) = split_key(&line, args.key_separator.as_deref());
        let mut record = BaseRecord::to(&args.topic).payload(value);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(partition) = args.partition {
            record = record.partition(partition);
        }
        if !headers.is_empty() {
            let mut owned = OwnedHeaders::new_with_capacity(headers.len());
            for (k, v) in &headers {
                owned = owned.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
            record = record.headers(owned);
        }
        let mut record = record;
        loop {
            match producer.send(record) {
                Ok(()) => break,
                // The local queue is full: serve delivery reports, then try again.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => bail!("cannot produce to {:?}: {e}", args.topic),
            }
        }
        sent += 1;
        bytes += line.len() as u64;
        producer.poll(Duration::ZERO);
        if let Some(bar) = &bar {
            bar.set_position(sent);
        }
        if producer.context().failed.load(Ordering::Relaxed) > 0 {
            break; // stop early: the summary reports the first error
        }
    }
    let flushed = producer.flush(args.client.timeout() * 3);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-6);
    let deliveries = producer.context();
    let acked = deliveries.acked.load(Ordering::Relaxed);
    eprintln!(
        "produced {acked} of {sent} records ({bytes} bytes) to {} in {elapsed:.2}s ({:.0} records/s)",
        args.topic,
        acked as f64 / elapsed
    );
    if let Some(e) = deliveries
        .first_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        bail!(
            "{} records failed; first error: {}",
            sent - acked,
            describe(&args.topic, &e)
        );
    }
    if let Err(e) = flushed {
        bail!("{} records unacknowledged: {e}", sent - acked);
    }
    Ok(())
}

/// Asks for the topic's metadata the way the producer itself would (so a broker with
/// `auto.create.topics.enable` creates it): a missing topic is one line at once, not a delivery
/// timeout after every record has waited for it.
fn check_topic(
    producer: &BaseProducer<Deliveries>,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| anyhow::anyhow!("cannot produce to {topic:?}: {}", describe(topic, &e)))?;
    match metadata.topics().iter().find(|t| t.name() == topic) {
        Some(t) => match t.error().map(RDKafkaErrorCode::from) {
            // Just auto-created: the producer waits for its leader itself.
            None | Some(RDKafkaErrorCode::LeaderNotAvailable) => Ok(()),
            Some(code) => {
                let e = KafkaError::MetadataFetch(code);
                bail!("cannot produce to {topic:?}: {}", describe(topic, &e))
            }
        },
        None => bail!("unknown topic {topic:?}"),
    }
}

fn describe(topic: &str, e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            format!("unknown topic {topic:?}")
        }
        Some(RDKafkaErrorCode::UnknownPartition) => format!("unknown partition of {topic:?}"),
        _ => e.to_string(),
    }
}

/// A progress bar on stderr when it is a terminal: a bar with a total for a file, a counter for
/// stdin.
fn progress_bar(file: Option<&std::path::Path>) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match file.and_then(|f| std::fs::read(f).ok()) {
        Some(bytes) => {
            let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
            let bar = ProgressBar::new(lines);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} records ({per_sec}) {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {pos} records ({per_sec})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar
        }
    };
    Some(bar)
}

/// Splits a line at the first separator; without one (or without a separator in the line) the
/// whole line is the value and the key is null.
fn split_key<'a>(line: &'a [u8], separator: Option<&str>) -> (Option<&'a [u8]>, &'a [u8]) {
    let Some(sep) = separator.map(str::as_bytes).filter(|s| !s.is_empty()) else {
        return (None, line);
    };
    match line.windows(sep.len()).position(|w| w == sep) {
        Some(at) => (Some(&line[..at]), &line[at + sep.len()..]),
        None => (None, line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_separator_splits_at_the_first_occurrence() {
        assert_eq!(
            split_key(b"k:v:w", Some(":")),
            (Some(&b"k"[..]), &b"v:w"[..])
        );
        assert_eq!(split_key(b"novalue", Some(":")), (None, &b"novalue"[..]));
        assert_eq!(split_key(b"a::b", Some("::")), (Some(&b"a"[..]), &b"b"[..]));
        assert_eq!(split_key(b"a:b", None), (None, &b"a:b"[..]));
    }
}
