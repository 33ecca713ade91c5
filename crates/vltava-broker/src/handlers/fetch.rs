// HOT PATH: consumers' reads. No per-record work: the log hands back file ranges of whole
// batches, which go out with sendfile (wire/fetch_zero_copy.rs).
//! Fetch (1): read from the partitions up to the high watermark (read_uncommitted) or the last
//! stable offset (read_committed, with the aborted transactions that overlap what is returned,
//! from the `.txnindex`), long-polling while there is
//! less than `min_bytes` and `max_wait_ms` has not passed. Waiting fetches are woken by appends
//! (one `Notify` per partition, see `replica::Partition`), never by polling.
//!
//! Sizes follow KIP-74: `partition_max_bytes` per partition, `max_bytes` for the response, and
//! the first batch of the first non-empty partition is returned even if it alone is larger, so
//! a consumer can always make progress. Fetch sessions (KIP-227) are not kept: session id 0
//! tells clients to send full fetch requests, which every client supports.

use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use tokio::time::Instant;
use uuid::Uuid;
use vltava_log::fs::Wait;
use vltava_log::FileRange;

use super::{blocking, Reply, RequestContext};
use crate::broker::Broker;
use crate::error::{self, ConnectionError};
use crate::replica::Partition;
use crate::wire::fetch_zero_copy::{self, FetchPartitionResult, FetchResult, FetchTopicResult};
use crate::wire::Outgoing;

/// One requested partition, resolved once per request.
struct Wanted {
    topic: usize,
    index: i32,
    partition: Result<Arc<Partition>, i16>,
    fetch_offset: i64,
    partition_max_bytes: u32,
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: FetchRequest,
) -> Result<Reply, ConnectionError> {
    let mut topics = Vec::with_capacity(request.topics.len());
    let mut wanted = Vec::new();
    for topic in &request.topics {
        let name = if ctx.api_version >= 13 {
            broker.replicas.topic_name(&topic.topic_id)
        } else {
            Some(topic.topic.to_string())
        };
        let topic_index = topics.len();
        topics.push((topic.topic.clone(), topic.topic_id));
        for p in &topic.partitions {
            let partition = match &name {
                None => Err(error::UNKNOWN_TOPIC_ID),
                Some(name) => broker
                    .replicas
                    .get(name, p.partition)
                    .leader()
                    .and_then(|part| check_epoch(&part, p.current_leader_epoch).map(|()| part)),
            };
            wanted.push(Wanted {
                topic: topic_index,
                index: p.partition,
                partition,
                fetch_offset: p.fetch_offset,
                partition_max_bytes: u32::try_from(p.partition_max_bytes).unwrap_or(0),
            });
        }
    }
    let plan = Plan {
        topics,
        wanted: Arc::new(wanted),
        max_bytes: u32::try_from(request.max_bytes).unwrap_or(0),
        read_committed: request.isolation_level == 1,
        min_bytes: i64::from(request.min_bytes),
        max_wait: Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0)),
    };
    let ctx = ctx.clone();
    let stopping = broker.stopping();
    Ok(Reply::Later(tokio::spawn(run(ctx, plan, stopping))))
}

/// KIP-320: a consumer that knows a newer epoch than ours must wait for our metadata; one that
/// knows an older one must refresh its own.
fn check_epoch(partition: &Partition, current_leader_epoch: i32) -> Result<(), i16> {
    let ours = partition.leader_epoch();
    match current_leader_epoch {
        -1 => Ok(()),
        e if e < ours => Err(error::FENCED_LEADER_EPOCH),
        e if e > ours => Err(error::UNKNOWN_LEADER_EPOCH),
        _ => Ok(()),
    }
}

struct Plan {
    topics: Vec<(TopicName, Uuid)>,
    wanted: Arc<Vec<Wanted>>,
    max_bytes: u32,
    /// isolation_level 1: read below the last stable offset only.
    read_committed: bool,
    min_bytes: i64,
    max_wait: Duration,
}

async fn run(
    ctx: RequestContext,
    plan: Plan,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<Outgoing, ConnectionError> {
    let mut deadline = Instant::now() + plan.max_wait;
    let waitable: Vec<Arc<Partition>> = plan
        .wanted
        .iter()
        .filter_map(|w| w.partition.as_ref().ok().cloned())
        .collect();
    loop {
        // Register for wake-ups before reading, so an append between the read and the wait
        // is not missed.
        let mut appended: Vec<_> = waitable.iter().map(|p| Box::pin(p.next_append())).collect();
        for notified in &mut appended {
            notified.as_mut().enable();
        }
        let mut reads = Reads::new(plan.max_bytes, plan.read_committed, plan.wanted.len());
        if !reads.read(&plan.wanted, Wait::Never) {
            // The rest on a thread that may block; the partitions read already stay read.
            let wanted = plan.wanted.clone();
            reads = blocking(move || {
                let all = reads.read(&wanted, Wait::Allowed);
                debug_assert!(all, "a read that may block never declines");
                reads
            })
            .await?;
        }
        let reads = reads.done;
        let bytes: i64 = reads.iter().map(|r| i64::from(r.bytes())).sum();
        let has_error = reads.iter().any(|r| r.error_code != error::NONE);
        let now = Instant::now();
        if bytes >= plan.min_bytes || has_error || now >= deadline || waitable.is_empty() {
            for (w, read) in plan.wanted.iter().zip(&reads) {
                if let Ok(partition) = &w.partition {
                    partition.count_bytes_out(read.bytes());
                }
            }
            let result = assemble(&plan, reads);
            return fetch_zero_copy::encode(ctx.api_version, ctx.correlation_id, &result);
        }
        let any_append = poll_fn(|cx| {
            for notified in &mut appended {
                if notified.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        });
        tokio::select! {
            _ = tokio::time::timeout_at(deadline, any_append) => {}
            _ = stopping.wait_for(|stopping| *stopping) => deadline = Instant::now(),
        }
    }
}

/// The outcome of reading one partition.
struct Read {
    error_code: i16,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    range: Option<FileRange>,
    /// `Some` for read_committed (Kafka sends an empty list then, null otherwise).
    aborted: Option<Vec<AbortedTransaction>>,
}

impl Read {
    fn bytes(&self) -> u32 {
        self.range.as_ref().map_or(0, |r| r.length)
    }
}

/// Reads every partition of a fetch in request order, under one `max_bytes` for them all.
struct Reads {
    remaining: u32,
    /// No bytes read yet: the next batch is returned even if larger than the limits (KIP-74).
    first: bool,
    read_committed: bool,
    done: Vec<Read>,
}

impl Reads {
    fn new(max_bytes: u32, read_committed: bool, partitions: usize) -> Reads {
        Reads {
            remaining: max_bytes,
            first: true,
            read_committed,
            done: Vec::with_capacity(partitions),
        }
    }

    /// Reads the partitions after those done. Blocking (index lookups may touch disk), unless
    /// [`Wait::Never`]: then only reads that [`Partition::try_read_up_to_in_memory`] takes, so that
    /// the fetch's own thread need not hand them to a blocking one, stopping at the first it
    /// declines (read_committed reads, which also look up aborted transactions, always are).
    /// Whether every partition was read.
    fn read(&mut self, wanted: &[Wanted], wait: Wait) -> bool {
        if wait == Wait::Never && self.read_committed {
            return false;
        }
        while let Some(w) = wanted.get(self.done.len()) {
            let Some(read) = self.read_one(w, wait) else {
                return false;
            };
            if read.bytes() > 0 {
                self.first = false;
                self.remaining = self.remaining.saturating_sub(read.bytes());
            }
            self.done.push(read);
        }
        true
    }

    /// One partition's read; `None` if it would wait and `wait` is [`Wait::Never`].
    fn read_one(&self, w: &Wanted, wait: Wait) -> Option<Read> {
        let (read_committed, first) = (self.read_committed, self.first);
        let partition = match &w.partition {
            Ok(p) => p,
            Err(code) => return Some(lookup_failed(*code)),
        };
        let limit = w.partition_max_bytes.min(self.remaining);
        let high_watermark = partition.high_watermark();
        let last_stable_offset = partition.last_stable_offset();
        let bound = if read_committed {
            last_stable_offset
        } else {
            high_watermark
        };
        let read = if wait == Wait::Never {
            partition.try_read_up_to_in_memory(w.fetch_offset, limit, bound, first)
        } else {
            partition
                .read_up_to(w.fetch_offset, limit, bound, first)
                .map(Some)
        };
        Some(match read.transpose()? {
            Ok(info) => {
                let range = info.range.filter(|r| r.length > 0);
                let aborted = read_committed.then(|| {
                    if range.is_none() {
                        return Vec::new();
                    }
                    partition
                        .log
                        .aborted_transactions(w.fetch_offset, bound)
                        .into_iter()
                        .map(|a| {
                            AbortedTransaction::default()
                                .with_producer_id(ProducerId(a.producer_id))
                                .with_first_offset(a.first_offset)
                        })
                        .collect()
                });
                Read {
                    error_code: error::NONE,
                    high_watermark,
                    last_stable_offset,
                    log_start_offset: info.log_start_offset,
                    range,
                    aborted,
                }
            }
            // Kafka's ReplicaManager answers a failed read (OFFSET_OUT_OF_RANGE included, for
            // consumers) with `createLogReadResult(e)`: no offsets at all and null
            // aborted transactions; the consumer resets its position with ListOffsets.
            Err(e) => Read {
                error_code: error::log_error_code(&e),
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                range: None,
                aborted: None,
            },
        })
    }
}

/// A partition that could not be looked up. Unknown topics and partitions are answered by
/// KafkaApis itself (`FetchResponse.partitionResponse`, whose aborted transactions keep the
/// schema default: an empty list); leadership and epoch errors come from the replica manager's
/// read (`createLogReadResult`, null aborted transactions). Neither carries offsets.
fn lookup_failed(code: i16) -> Read {
    let answered_by_kafka_apis = matches!(
        code,
        error::UNKNOWN_TOPIC_ID | error::UNKNOWN_TOPIC_OR_PARTITION
    );
    Read {
        error_code: code,
        high_watermark: -1,
        last_stable_offset: -1,
        log_start_offset: -1,
        range: None,
        aborted: answered_by_kafka_apis.then(Vec::new),
    }
}

fn assemble(plan: &Plan, reads: Vec<Read>) -> FetchResult {
    let mut topics: Vec<FetchTopicResult> = plan
        .topics
        .iter()
        .map(|(name, id)| FetchTopicResult {
            topic: name.clone(),
            topic_id: *id,
            partitions: Vec::new(),
        })
        .collect();
    for (w, read) in plan.wanted.iter().zip(reads) {
        let data = PartitionData::default()
            .with_partition_index(w.index)
            .with_error_code(read.error_code)
            .with_high_watermark(read.high_watermark)
            .with_last_stable_offset(read.last_stable_offset)
            .with_log_start_offset(read.log_start_offset)
            .with_aborted_transactions(read.aborted)
            .with_records(None);
        if let Some(topic) = topics.get_mut(w.topic) {
            topic.partitions.push(FetchPartitionResult {
                data,
                records: read.range,
            });
        }
    }
    FetchResult { topics }
}

/// The response as kafka-protocol would build it, with records read into memory: the buffered
/// path (TLS listeners later) and the reference the zero-copy encoder is tested against.
pub fn buffered_response(result: &FetchResult) -> std::io::Result<FetchResponse> {
    let mut response = FetchResponse::default();
    for topic in &result.topics {
        let mut t = FetchableTopicResponse::default()
            .with_topic(topic.topic.clone())
            .with_topic_id(topic.topic_id);
        for p in &topic.partitions {
            let mut data = p.data.clone();
            data.records = match &p.records {
                Some(range) => Some(range.read_to_vec()?.into()),
                None => Some(bytes::Bytes::new()),
            };
            t.partitions.push(data);
        }
        response.responses.push(t);
    }
    Ok(response)
}
