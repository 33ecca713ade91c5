//! `vltava bench consume --client wire`: a consumer that speaks Fetch itself, through
//! `kafka-protocol`, instead of through librdkafka.
//!
//! At 1 KiB records librdkafka stops near a million records per second (its per-message queue
//! and callback), so a catch-up read through it measures the client, not the broker. This loop
//! does what any consumer must — every batch's CRC checked, compressed batches inflated, every
//! record decoded and its value counted — and nothing an application adds. One fetch at a time
//! per connection, as a consumer knows its next offset only from the last response; the
//! checking runs on a second thread while the next answer is received (librdkafka too receives
//! on its broker threads and hands records on), so one core's copy-and-check speed does not
//! stand in for the broker's.
//!
//! For `e2e` it starts at the end of each partition and measures, for every record, the time
//! from the due time its producer stamped into it to when the fetch answer holding it was read.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::{Buf, Bytes};
use hdrhistogram::Histogram;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest};
use kafka_protocol::records::RecordBatchDecoder;

use super::super::client::{key_value, RawClient, MAX_RESPONSE};
use super::{histogram, micros, stamped_latency, topic_name, unix_nanos, Shared};

/// Fetch versions this loop speaks: v4 (the oldest Kafka 4 serves) to v12, the last that names
/// topics instead of their ids.
const FETCH_VERSIONS: (i16, i16) = (4, 12);
/// ListOffsets versions with a single offset per partition.
const LIST_OFFSETS_VERSIONS: (i16, i16) = (1, 8);
/// ListOffsets' "latest" and "earliest" timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
/// Bytes before a batch's length field ends: base offset (8) and length (4).
const BATCH_PREFIX: usize = 12;
/// Where a v2 batch keeps its last offset delta and attributes, from the batch's start.
const LAST_OFFSET_DELTA_AT: usize = 23;
const ATTRIBUTES_AT: usize = 21;
/// The attributes bit of a control batch (transaction markers: no application records).
const CONTROL_BIT: i16 = 1 << 5;
/// The most a fetch may ask for: its answer (plus headers) must fit what the client reads.
const MAX_FETCH_BYTES: i32 = (MAX_RESPONSE - (1 << 20)) as i32;

/// The `-X` keys this consumer reads.
pub(super) const KEYS: &[&str] = &[
    "fetch.wait.max.ms",
    "fetch.min.bytes",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
];

/// Fetch settings, librdkafka's names and defaults so `-X` means the same on both clients.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct FetchSettings {
    pub max_wait_ms: i32,
    pub min_bytes: i32,
    pub max_bytes: i32,
    pub partition_max_bytes: i32,
}

impl FetchSettings {
    /// librdkafka's defaults, with `-X` pairs for the four fetch keys applied; keys in `others`
    /// are left to the producer beside it (e2e), any other key is an error, since this client
    /// has no other settings to apply it to.
    pub fn from_client_configs(pairs: &[String], others: &[&str]) -> anyhow::Result<FetchSettings> {
        let mut settings = FetchSettings {
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 52_428_800,
            partition_max_bytes: 1_048_576,
        };
        for pair in pairs {
            let (key, value) = key_value(pair, "--client-config")?;
            if others.contains(&key.as_str()) {
                continue;
            }
            let slot = match key.as_str() {
                "fetch.wait.max.ms" => &mut settings.max_wait_ms,
                "fetch.min.bytes" => &mut settings.min_bytes,
                "fetch.max.bytes" => &mut settings.max_bytes,
                "max.partition.fetch.bytes" => &mut settings.partition_max_bytes,
                _ => bail!(
                    "--client wire reads only -X {}, not {key:?}",
                    [KEYS, others].concat().join(", ")
                ),
            };
            *slot = value
                .trim()
                .parse()
                .ok()
                .filter(|v: &i32| *v >= 0)
                .ok_or_else(|| anyhow!("-X {key}={value}: expected a non-negative integer"))?;
        }
        for (key, value) in [
            ("fetch.max.bytes", settings.max_bytes),
            ("max.partition.fetch.bytes", settings.partition_max_bytes),
        ] {
            if value > MAX_FETCH_BYTES {
                bail!("-X {key}={value}: --client wire fetches at most {MAX_FETCH_BYTES} bytes");
            }
        }
        Ok(settings)
    }
}

/// One consumer's share: partitions on each leader, where it stops, and how it fetches.
pub(super) struct WirePlan {
    pub topic: String,
    /// Leader address → partitions this consumer reads there.
    pub by_leader: BTreeMap<String, Vec<i32>>,
    pub until_caught_up: bool,
    pub records: Option<u64>,
    pub deadline: Option<Instant>,
    pub settings: FetchSettings,
    pub timeout: Duration,
    /// e2e: start at the end of each partition, measure every record's stamp, and stop once
    /// the producers are done and every record they got acknowledged was read.
    pub stamped: bool,
}

/// One partition's read position.
struct Position {
    partition: i32,
    offset: i64,
    caught_up: bool,
}

/// Reads until every partition reached its high watermark (or the count or deadline), adding
/// to `shared`; the first error stops every consumer. Returns the e2e latencies (none
/// without `stamped`).
pub(super) fn run(plan: WirePlan, shared: &Shared) -> Histogram<u64> {
    let mut latency = histogram();
    if let Err(e) = read(&plan, shared, &mut latency) {
        shared.fail(format!("consuming: {e:#}"));
        shared
            .abort
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    latency
}

fn read(plan: &WirePlan, shared: &Shared, latency: &mut Histogram<u64>) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let mut leaders = Vec::new();
    let start_at = if plan.stamped { LATEST } else { EARLIEST };
    for (address, partitions) in &plan.by_leader {
        let mut client = RawClient::connect(address, plan.timeout)?;
        let version = client.version_for::<FetchRequest>(FETCH_VERSIONS)?;
        let positions = offsets_at(&mut client, &plan.topic, partitions, start_at)?;
        let mut leader = Leader {
            client,
            version,
            positions,
            waiting: false,
        };
        leader.send_fetch(plan)?;
        leaders.push(leader);
    }
    // e2e producers start once every consumer knows where the partitions end.
    shared.consumers_ready.fetch_add(1, Relaxed);
    let (answers, to_check) = mpsc::sync_channel(CHECK_QUEUE);
    std::thread::scope(|scope| {
        let checker = std::thread::Builder::new()
            .name("bench-wire-check".into())
            .spawn_scoped(scope, || check(plan, shared, to_check, latency))
            .context("starting the checking thread")?;
        let received = receive(plan, shared, &mut leaders, answers);
        let checked = checker
            .join()
            .map_err(|_| anyhow!("the checking thread panicked"))?;
        received.and(checked)
    })
}

/// One fetch answer's batches, still to be checked, and when it was read (e2e).
struct Answer {
    partitions: Vec<(i32, i64, Vec<Bytes>)>,
    received_nanos: u64,
}

/// Answers received ahead of the checking thread. One keeps both threads busy; in memory are at
/// most three answers (queued, being checked, waiting to be queued), each up to
/// `fetch.max.bytes`. The stop conditions read counts the checker has made, so a run may fetch
/// up to three answers past `--records` or the e2e end (the last may wait a long poll).
const CHECK_QUEUE: usize = 1;

/// Fetches until done, handing each answer to the checking thread; the next fetch goes out
/// before an answer is handed on, so the broker sends while this side checks.
fn receive(
    plan: &WirePlan,
    shared: &Shared,
    leaders: &mut [Leader],
    answers: mpsc::SyncSender<Answer>,
) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let mut last_data = Instant::now();
    loop {
        if shared.abort.load(Relaxed) || plan.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if plan
            .records
            .is_some_and(|n| shared.consumed.load(Relaxed) >= n)
        {
            break;
        }
        if leaders.iter().all(|l| !l.waiting) {
            break;
        }
        if plan.stamped
            && shared.producers_done.load(Relaxed)
            && shared.consumed.load(Relaxed) >= shared.acked.load(Relaxed)
        {
            break;
        }
        let mut got_any = false;
        for leader in leaders.iter_mut().filter(|l| l.waiting) {
            let partitions = leader.receive(plan)?;
            let received_nanos = if plan.stamped { unix_nanos() } else { 0 };
            leader.send_fetch(plan)?;
            if partitions.iter().any(|(_, _, batches)| !batches.is_empty()) {
                got_any = true;
                last_data = Instant::now();
            }
            let answer = Answer {
                partitions,
                received_nanos,
            };
            if answers.send(answer).is_err() {
                // The checking thread stopped on an error, which it reports.
                return Ok(());
            }
        }
        // Waiting on producers (e2e) is not idleness; a stalled read is.
        let waiting = plan.stamped && !shared.producers_done.load(Relaxed);
        if !got_any && !waiting && last_data.elapsed() > plan.timeout {
            bail!("no record for {}s", plan.timeout.as_secs_f64());
        }
    }
    Ok(())
}

/// Checks and counts every answer `receive` hands on; the first bad one stops both threads.
fn check(
    plan: &WirePlan,
    shared: &Shared,
    answers: mpsc::Receiver<Answer>,
    latency: &mut Histogram<u64>,
) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let mut read_until = Duration::ZERO;
    let checked = answers.iter().try_for_each(|answer| {
        for (partition, from, batches) in answer.partitions {
            let mut stamp_error = None;
            let measure = |value: &Bytes| {
                if plan.stamped && stamp_error.is_none() {
                    match stamped_latency(value, answer.received_nanos) {
                        Ok(waited) => latency.saturating_record(micros(waited)),
                        Err(e) => stamp_error = Some(e),
                    }
                }
            };
            let (records, bytes) = decode_batches(&batches, from, measure).with_context(|| {
                format!("records of {}-{partition} from offset {from}", plan.topic)
            })?;
            if let Some(e) = stamp_error {
                bail!("e2e, {}-{partition}: {e}", plan.topic);
            }
            if records > 0 {
                read_until = shared.since_first_record(Instant::now());
                shared.consumed.fetch_add(records, Relaxed);
                shared.consumed_bytes.fetch_add(bytes, Relaxed);
            }
        }
        Ok(())
    });
    if checked.is_err() {
        shared.abort.store(true, Relaxed);
    }
    shared.reading_ended(read_until);
    checked
}

/// One leader's connection and the read positions of the partitions it leads.
struct Leader {
    client: RawClient,
    version: i16,
    positions: Vec<Position>,
    /// A fetch was sent and its answer not yet read.
    waiting: bool,
}

impl Leader {
    /// Sends one Fetch for the partitions still to read (none: nothing is sent).
    fn send_fetch(&mut self, plan: &WirePlan) -> anyhow::Result<()> {
        let wanted: Vec<FetchPartition> = self
            .positions
            .iter()
            .filter(|p| !(plan.until_caught_up && p.caught_up))
            .map(|p| {
                FetchPartition::default()
                    .with_partition(p.partition)
                    .with_fetch_offset(p.offset)
                    .with_partition_max_bytes(plan.settings.partition_max_bytes)
            })
            .collect();
        if wanted.is_empty() {
            self.waiting = false;
            return Ok(());
        }
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(plan.settings.max_wait_ms)
            .with_min_bytes(plan.settings.min_bytes)
            .with_max_bytes(plan.settings.max_bytes)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(&plan.topic))
                .with_partitions(wanted)]);
        self.client.write_request(&request, self.version)?;
        self.waiting = true;
        Ok(())
    }

    /// Reads the answer to the fetch sent and moves each partition past its whole batches;
    /// returns them, with the offset each partition was read from, still to be decoded.
    fn receive(&mut self, plan: &WirePlan) -> anyhow::Result<Vec<(i32, i64, Vec<Bytes>)>> {
        let response: FetchResponse = self.client.read::<FetchRequest>(self.version)?;
        self.waiting = false;
        let address = &self.client.address;
        if let Some(e) = ResponseError::try_from_code(response.error_code) {
            bail!("{address}: Fetch: {e}");
        }
        let mut out = Vec::new();
        for answer in response.responses.into_iter().flat_map(|t| t.partitions) {
            let Some(position) = self
                .positions
                .iter_mut()
                .find(|p| p.partition == answer.partition_index)
            else {
                bail!(
                    "{address}: Fetch answered partition {} it was not asked for",
                    answer.partition_index
                );
            };
            let from = position.offset;
            if let Some(e) = ResponseError::try_from_code(answer.error_code) {
                bail!(
                    "{address}: Fetch of {}-{} at offset {from}: {e}",
                    plan.topic,
                    position.partition
                );
            }
            let batches = whole_batches(answer.records.unwrap_or_default()).with_context(|| {
                format!(
                    "records of {}-{} from offset {from}",
                    plan.topic, position.partition
                )
            })?;
            position.offset = next_offset(&batches, from);
            position.caught_up = position.offset >= answer.high_watermark;
            out.push((position.partition, from, batches));
        }
        Ok(out)
    }
}

/// The offset of each partition at `timestamp` (EARLIEST: the log start; LATEST: the end).
fn offsets_at(
    client: &mut RawClient,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
) -> anyhow::Result<Vec<Position>> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    let response = client.send(request, LIST_OFFSETS_VERSIONS)?;
    let mut positions = Vec::new();
    for answer in response.topics.iter().flat_map(|t| &t.partitions) {
        if let Some(e) = ResponseError::try_from_code(answer.error_code) {
            bail!(
                "{}: ListOffsets of {topic}-{}: {e}",
                client.address,
                answer.partition_index
            );
        }
        positions.push(Position {
            partition: answer.partition_index,
            offset: answer.offset,
            caught_up: false,
        });
    }
    if positions.len() != partitions.len() {
        bail!(
            "{}: ListOffsets answered {} of {} partitions",
            client.address,
            positions.len(),
            partitions.len()
        );
    }
    Ok(positions)
}

/// The whole batches at the start of `data`: a fetch may end in part of one, which the next
/// fetch asks for again. Records that hold no whole batch are an error (a broker returns at
/// least one whole batch, KIP-74), as the read would never move on.
fn whole_batches(mut data: Bytes) -> anyhow::Result<Vec<Bytes>> {
    let had_data = !data.is_empty();
    let mut batches = Vec::new();
    while data.len() >= BATCH_PREFIX {
        let length = i32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let Ok(length) = usize::try_from(length) else {
            bail!("a batch with length {length}");
        };
        let whole = BATCH_PREFIX + length;
        if data.len() < whole {
            break;
        }
        if whole < LAST_OFFSET_DELTA_AT + 4 {
            bail!("a {whole}-byte batch, shorter than a batch header");
        }
        batches.push(data.split_to(whole));
    }
    if had_data && batches.is_empty() {
        bail!("no whole batch in {} bytes", data.len());
    }
    Ok(batches)
}

/// The offset after the last of `batches` (from their headers), or `from` if there are none.
fn next_offset(batches: &[Bytes], from: i64) -> i64 {
    batches.last().map_or(from, |batch| {
        let base = (&batch[..8]).get_i64();
        let last_delta = (&batch[LAST_OFFSET_DELTA_AT..]).get_i32();
        from.max(base + i64::from(last_delta) + 1)
    })
}

/// Checks and decodes `batches` (CRC, compression, every record), returning the records at or
/// after `from` (a batch may start before the offset fetched) and their value bytes, each
/// value also handed to `on_value`; control batches hold no application records.
fn decode_batches(
    batches: &[Bytes],
    from: i64,
    mut on_value: impl FnMut(&Bytes),
) -> anyhow::Result<(u64, u64)> {
    let (mut records, mut value_bytes) = (0, 0);
    for batch in batches {
        let control = (&batch[ATTRIBUTES_AT..]).get_i16() & CONTROL_BIT != 0;
        let set = RecordBatchDecoder::decode(&mut batch.clone()).map_err(|e| anyhow!("{e}"))?;
        if !control {
            for record in set.records.iter().filter(|r| r.offset >= from) {
                records += 1;
                if let Some(value) = &record.value {
                    value_bytes += value.len() as u64;
                    on_value(value);
                }
            }
        }
    }
    Ok((records, value_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn batch(base: i64, values: &[&[u8]], compression: Compression) -> Bytes {
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: base + i as i64,
                sequence: -1,
                timestamp: 0,
                key: None,
                value: Some(Bytes::copy_from_slice(v)),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut out = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut out, &records, &options).unwrap_or_else(|e| panic!("{e}"));
        out.freeze()
    }

    /// Splits, moves past and decodes `data` as a fetch of `from` does.
    fn read(data: Bytes, from: i64) -> anyhow::Result<(u64, u64, i64)> {
        let batches = whole_batches(data)?;
        let (records, bytes) = decode_batches(&batches, from, |_| {})?;
        Ok((records, bytes, next_offset(&batches, from)))
    }

    #[test]
    fn whole_batches_are_counted_and_a_cut_one_is_left_for_the_next_fetch() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch(0, &[b"ab", b"cde"], Compression::None));
        data.extend_from_slice(&batch(2, &[b"fghi"], Compression::Lz4));
        let third = batch(3, &[b"j"], Compression::None);
        data.extend_from_slice(&third[..third.len() - 1]);
        let read = read(data.freeze(), 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read, (3, 9, 3));
    }

    #[test]
    fn records_before_the_fetched_offset_are_not_counted() {
        let data = batch(10, &[b"a", b"b", b"c"], Compression::Gzip);
        assert_eq!(read(data, 11).unwrap_or_else(|e| panic!("{e}")), (2, 2, 13));
    }

    #[test]
    fn an_empty_fetch_stays_where_it_was() {
        assert_eq!(
            read(Bytes::new(), 7).unwrap_or_else(|e| panic!("{e}")),
            (0, 0, 7)
        );
    }

    #[test]
    fn a_damaged_batch_is_an_error_not_a_count() {
        let mut data = BytesMut::from(&batch(0, &[b"hello"], Compression::None)[..]);
        let last = data.len() - 1;
        data[last] ^= 0xff;
        let err = read(data.freeze(), 0).map(|_| ()).unwrap_err();
        assert!(
            format!("{err}").contains("Cyclic redundancy check"),
            "{err}"
        );
    }

    #[test]
    fn a_fetch_with_only_part_of_a_batch_is_an_error() {
        let data = batch(0, &[b"hello"], Compression::None);
        let err = read(data.slice(..data.len() - 1), 0)
            .map(|_| ())
            .unwrap_err();
        assert!(format!("{err}").contains("no whole batch"), "{err}");
    }

    #[test]
    fn fetch_keys_take_librdkafka_names_and_others_are_refused() {
        let s =
            FetchSettings::from_client_configs(&["max.partition.fetch.bytes=16777216".into()], &[])
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.partition_max_bytes, 16 << 20);
        assert_eq!(s.max_wait_ms, 500);
        let err = FetchSettings::from_client_configs(&["linger.ms=5".into()], &[]).unwrap_err();
        assert!(format!("{err}").contains("linger.ms"), "{err}");
        let err =
            FetchSettings::from_client_configs(&["fetch.min.bytes=-1".into()], &[]).unwrap_err();
        assert!(format!("{err}").contains("non-negative"), "{err}");
        let err = FetchSettings::from_client_configs(&["fetch.max.bytes=100000000".into()], &[])
            .unwrap_err();
        assert!(format!("{err}").contains("at most"), "{err}");
    }
}
