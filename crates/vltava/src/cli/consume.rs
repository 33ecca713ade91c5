//! `vltava consume TOPIC`: print records with a kcat-style template. With `--group` the consumer
//! joins the group and commits what it printed; Ctrl-C (or `--count`) stops it cleanly with those
//! offsets committed. Without a group it reads every partition directly and commits nothing.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::client::ClientArgs;
use super::output::{RecordFormat, RecordView};
use super::topic;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  vltava consume orders --group billing --from-beginning\n  \
    vltava consume orders --partition 0 --offset 100 --count 10 --format '%p/%o %k=%s\\n'\n\n\
    Format (kcat's -f): %t topic, %p partition, %o offset, %T timestamp (ms), %k key, %K key length,\n  \
    %s value, %S value length, %h headers (k=v,...), %% a percent sign, \\n newline, \\t tab."
)]
pub struct ConsumeArgs {
    topic: String,
    /// Consumer group: join it, and commit what was printed (at exit too).
    #[arg(long, short = 'g')]
    group: Option<String>,
    /// Start at the earliest offset when there is no committed offset.
    #[arg(long)]
    from_beginning: bool,
    /// Start at this offset (a number, earliest or latest) on every partition read.
    #[arg(long, short = 'o', value_name = "OFFSET")]
    offset: Option<String>,
    /// Read only this partition.
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    /// Exit after this many records.
    #[arg(long, short = 'n', value_name = "N")]
    count: Option<u64>,
    /// Output template (kcat's -f).
    #[arg(long, short = 'f', default_value = "%s\\n")]
    format: String,
    #[command(flatten)]
    client: ClientArgs,
}

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let format = RecordFormat::parse(&args.format)?;
    let start = match args.offset.as_deref() {
        None => None,
        Some("earliest" | "beginning") => Some(Offset::Beginning),
        Some("latest" | "end") => Some(Offset::End),
        Some(n) => match n.parse::<i64>() {
            Ok(n) if n >= 0 => Some(Offset::Offset(n)),
            _ => bail!("--offset {n:?}: expected a number >= 0, earliest or latest"),
        },
    };

    let metadata = topic::metadata(&args.client)?;
    let Some(described) = metadata.topics().iter().find(|t| t.name() == args.topic) else {
        bail!("unknown topic {:?}", args.topic);
    };
    let mut partitions: Vec<i32> = described.partitions().iter().map(|p| p.id()).collect();
    partitions.sort_unstable();
    if let Some(p) = args.partition {
        if !partitions.contains(&p) {
            bail!(
                "topic {:?} has no partition {p} (it has {})",
                args.topic,
                partitions.len()
            );
        }
        partitions = vec![p];
    }

    let mut config = args.client.rdkafka();
    config
        .set(
            "auto.offset.reset",
            if args.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        )
        // Offsets are stored after a record is printed, so a commit never skips unprinted ones.
        .set("enable.auto.offset.store", "false")
        .set("allow.auto.create.topics", "false");
    match &args.group {
        Some(group) => config
            .set("group.id", group)
            .set("enable.auto.commit", "true"),
        None => config
            .set("group.id", "vltava-cli")
            .set("enable.auto.commit", "false"),
    };
    let consumer: StreamConsumer = config.create().context("creating the consumer")?;

    // A group with no explicit partition or offset subscribes (the group assigns partitions);
    // otherwise partitions are assigned directly.
    if args.group.is_some() && args.partition.is_none() && start.is_none() {
        consumer.subscribe(&[&args.topic]).context("subscribing")?;
    } else {
        let default = if args.from_beginning {
            Offset::Beginning
        } else if args.group.is_some() {
            Offset::Stored
        } else {
            Offset::End
        };
        let mut assignment = TopicPartitionList::new();
        for p in &partitions {
            assignment
                .add_partition_offset(&args.topic, *p, start.unwrap_or(default))
                .context("building the assignment")?;
        }
        consumer
            .assign(&assignment)
            .context("assigning partitions")?;
    }

    let stdout = std::io::stdout();
    let interactive = stdout.is_terminal();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut buf = Vec::with_capacity(4096);
    let mut printed = 0u64;
    let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
    let result: anyhow::Result<()> = loop {
        if args.count.is_some_and(|n| printed >= n) {
            break Ok(());
        }
        let received = tokio::select! {
            _ = &mut interrupt => break Ok(()),
            r = tokio::time::timeout(Duration::from_millis(200), consumer.recv()) => r,
        };
        let message = match received {
            // Nothing for a while: let a reader of a pipe see what we have.
            Err(_) => {
                out.flush().context("writing to stdout")?;
                continue;
            }
            Ok(Ok(message)) => message,
            // Reaching the end of a partition is not an error for a tail.
            Ok(Err(KafkaError::PartitionEOF(_))) => continue,
            Ok(Err(e)) => break Err(describe(&args.topic, &e)),
        };
        let headers = message
            .headers()
            .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
            .unwrap_or_default();
        buf.clear();
        format.write(
            &RecordView {
                topic: message.topic(),
                partition: message.partition(),
                offset: message.offset(),
                timestamp: message.timestamp().to_millis(),
                key: message.key(),
                value: message.payload(),
                headers,
            },
            &mut buf,
        );
        if let Err(e) = out.write_all(&buf) {
            // A closed pipe (`| head`) ends the consumer normally.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break Ok(());
            }
            break Err(e).context("writing to stdout");
        }
        if interactive {
            out.flush().context("writing to stdout")?;
        }
        if args.group.is_some() {
            consumer
                .store_offset_from_message(&message)
                .context("storing the consumed offset")?;
        }
        printed += 1;
    };
    let _ = out.flush();
    drop(out);
    if args.group.is_some() {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {}
            // Nothing consumed since the last commit.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => eprintln!("warning: committing offsets failed: {e}"),
        }
    }
    eprintln!("consumed {printed} records");
    result
}

fn describe(topic: &str, e: &KafkaError) -> anyhow::Error {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
            anyhow::anyhow!("unknown topic {topic:?}")
        }
        _ => anyhow::anyhow!("consuming {topic:?}: {e}"),
    }
}
