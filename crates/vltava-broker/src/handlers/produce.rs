// HOT PATH: the batches are not copied out of the request (the log writes its assigned headers
// and the request's own bytes in one vectored write), nothing is allocated per record, and
// records are not decoded here (the log's record_rules decodes compressed and compacted
// batches, and out-of-bounds timestamps).
//! Produce (0): append producer batches, answer per partition with Kafka's error codes.
//!
//! Idempotent producers: the log checks each batch's producer id, epoch and sequence under its
//! append lock; a retried batch (one of the producer's last five) is answered with its original
//! offsets and not written again, as Kafka does.
//!
//! Transactional batches are verified with the transaction coordinator before they may start
//! a transaction in a partition (KIP-890, [`crate::txn::verification`]); from Produce v12 on
//! (transaction version 2) that adds the partition to the transaction.
//!
//! acks=0 answers nothing (and closes the connection on any error, as Kafka does); acks=1
//! answers after the append; acks=-1 (all) answers after the appended offsets are fsynced. The
//! fsync is a group commit in the log (concurrent producers share one fsync), run by the
//! partition's flusher on a blocking thread while this connection goes on reading requests.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::{blocking, Reply, RequestContext};
use crate::broker::{now_ms, Broker};
use crate::error::{self, ConnectionError};
use crate::replica::{is_internal_topic, Lookup, Partition};
use crate::txn::verification::{verify_produce, Verification};
use vltava_log::record_rules::RecordError;
use vltava_log::{AppendInfo, LogError};

/// Requests up to this size may be appended on the connection's own thread.
const IN_MEMORY_APPEND_BYTES: usize = 64 * 1024;

/// One partition of the request, resolved.
struct Target {
    topic: usize,
    partition: Arc<Partition>,
    records: Option<Bytes>,
    response: usize,
    verification: Verification,
}

pub async fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    request: ProduceRequest,
) -> Result<Reply, ConnectionError> {
    let acks = request.acks;
    let transactional_id = request.transactional_id.as_ref().map(|t| t.to_string());
    let mut response = ProduceResponse::default();
    let mut targets = Vec::new();
    let valid_acks = matches!(acks, -1..=1);
    // KafkaApis.handleProduceRequest: transactional batches need the producer's transactional
    // id (Kafka authorizes WRITE on it), else the whole request fails with
    // TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
    let unauthorized_txn = request.transactional_id.is_none()
        && request.topic_data.iter().any(|t| {
            t.partition_data
                .iter()
                .any(|p| p.records.as_deref().is_some_and(is_transactional))
        });

    if valid_acks && broker.config.topics.auto_create_topics_enable {
        let missing: Vec<String> = request
            .topic_data
            .iter()
            .filter(|t| !t.name.is_empty() && !is_internal_topic(&t.name))
            .filter(|t| matches!(broker.replicas.get(&t.name, 0), Lookup::Unknown))
            .filter(|t| broker.image().topic(&t.name).is_none())
            .map(|t| t.name.to_string())
            .collect();
        if !missing.is_empty() {
            broker.auto_create_topics(&missing).await;
        }
    }

    for topic in request.topic_data {
        let name: Option<String> = if ctx.api_version >= 13 {
            broker.replicas.topic_name(&topic.topic_id)
        } else {
            Some(topic.name.to_string())
        };
        let mut topic_response = TopicProduceResponse::default()
            .with_name(topic.name.clone())
            .with_topic_id(topic.topic_id);
        let topic_index = response.responses.len();
        for data in topic.partition_data {
            let lookup = match &name {
                // "Cannot append to internal topic": only the broker writes there.
                Some(name) if is_internal_topic(name) => Err(error::INVALID_TOPIC_EXCEPTION),
                Some(name) => broker.replicas.get(name, data.index).leader(),
                None => Err(error::UNKNOWN_TOPIC_ID),
            };
            let resolved = if unauthorized_txn {
                Err(error::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
            } else if valid_acks {
                lookup
            } else {
                Err(error::INVALID_REQUIRED_ACKS)
            };
            let mut partition_response = PartitionProduceResponse::default()
                .with_index(data.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            // KafkaApis checks the framing (ProduceRequest.validateRecords) of partitions that
            // exist, before the replica manager: such an answer carries no log start offset.
            let framed = resolved.and_then(|partition| {
                let records = data.records.as_deref().unwrap_or_default();
                match vltava_log::batch::check_produce_framing(records) {
                    Ok(()) => Ok(partition),
                    Err(e) => Err(error::log_error_code(&e)),
                }
            });
            match framed {
                Ok(partition) => targets.push(Target {
                    topic: topic_index,
                    partition,
                    records: data.records,
                    response: topic_response.partition_responses.len(),
                    verification: None,
                }),
                Err(code) => partition_response.error_code = code,
            }
            topic_response.partition_responses.push(partition_response);
        }
        response.responses.push(topic_response);
    }

    if let Some(transactional_id) = &transactional_id {
        let mut verified = Vec::with_capacity(targets.len());
        for mut target in targets {
            match verify_produce(
                broker,
                transactional_id,
                &target.partition,
                target.records.as_deref(),
                ctx.api_version >= 12,
            )
            .await
            {
                Ok(verification) => {
                    target.verification = verification;
                    verified.push(target);
                }
                Err(code) => {
                    if let Some(p) = response
                        .responses
                        .get_mut(target.topic)
                        .and_then(|t| t.partition_responses.get_mut(target.response))
                    {
                        p.error_code = code;
                    }
                }
            }
        }
        targets = verified;
    }

    // Append everything in request order: a small request here as far as its appends need
    // nothing slow, the rest in one blocking thread hop.
    let now = now_ms();
    let mut outcomes = append_in_memory(&targets, now);
    let done = outcomes.len();
    if done < targets.len() {
        let (back, rest) = blocking(move || {
            let rest: Vec<_> = targets[done..]
                .iter()
                .map(|t| append(&t.partition, t.records.as_ref(), t.verification, now))
                .collect();
            (targets, rest)
        })
        .await?;
        targets = back;
        outcomes.extend(rest);
    }

    let mut first_error = None;
    let mut to_flush = Vec::new();
    for (target, outcome) in targets.iter().zip(&outcomes) {
        let Some(p) = response
            .responses
            .get_mut(target.topic)
            .and_then(|t| t.partition_responses.get_mut(target.response))
        else {
            continue;
        };
        match outcome {
            Ok(info) => {
                p.base_offset = info.base_offset;
                p.log_append_time_ms = info.log_append_time_ms;
                if ctx.api_version >= 5 {
                    p.log_start_offset = target.partition.log_start_offset();
                }
                to_flush.push((
                    target.topic,
                    target.response,
                    target.partition.clone(),
                    info.last_offset + 1,
                ));
            }
            Err(e) => {
                let code = error::log_error_code(e);
                p.error_code = code;
                if ctx.api_version >= 5 && answers_with_log_start_offset(e) {
                    p.log_start_offset = target.partition.log_start_offset();
                }
                if ctx.api_version >= 8 {
                    if let LogError::RecordsRejected { errors, total, .. } = e {
                        set_record_errors(p, errors, *total);
                    } else {
                        let message = error_message(code);
                        if !message.is_empty() {
                            p.error_message = Some(StrBytes::from_static_str(message));
                        }
                    }
                }
            }
        }
    }
    for t in &response.responses {
        for p in &t.partition_responses {
            if p.error_code != error::NONE && first_error.is_none() {
                first_error = Some(p.error_code);
            }
        }
    }

    match acks {
        0 => match first_error {
            Some(code) => Err(ConnectionError::AcksZeroProduceFailed(code)),
            None => Ok(Reply::Nothing),
        },
        -1 if !to_flush.is_empty() => {
            let ctx = ctx.clone();
            let waits: Vec<_> = to_flush
                .into_iter()
                .map(|(topic, index, partition, up_to)| (topic, index, partition.durable(up_to)))
                .collect();
            Ok(Reply::Later(tokio::spawn(async move {
                for (topic, index, durable) in waits {
                    if let Err(e) = durable.await {
                        if let Some(p) = response
                            .responses
                            .get_mut(topic)
                            .and_then(|t| t.partition_responses.get_mut(index))
                        {
                            p.error_code = error::log_error_code(&e);
                            p.base_offset = -1;
                            p.log_append_time_ms = -1;
                            p.log_start_offset = -1;
                        }
                    }
                }
                ctx.respond(&response)
            })))
        }
        _ => ctx.reply(&response),
    }
}

/// The appends of the request's first targets that need nothing slow, in order, up to the
/// first that would (or all of them); none for a large request or one with a transactional
/// batch to verify. The hop to a blocking thread and back is two thread wake-ups, a write of a
/// few KiB into the page cache microseconds.
fn append_in_memory(targets: &[Target], now_ms: i64) -> Vec<Result<AppendInfo, LogError>> {
    let bytes: usize = targets
        .iter()
        .map(|t| t.records.as_ref().map_or(0, Bytes::len))
        .sum();
    let mut outcomes = Vec::new();
    if bytes > IN_MEMORY_APPEND_BYTES || targets.iter().any(|t| t.verification.is_some()) {
        return outcomes;
    }
    for target in targets {
        let batches = target.records.as_ref().map(|r| &r[..]).unwrap_or_default();
        match target.partition.try_append_in_memory(batches, now_ms) {
            Ok(Some(appended)) => {
                if let Some(writeback) = appended.writeback {
                    let log = Arc::clone(&target.partition.log);
                    tokio::task::spawn_blocking(move || writeback.run(&log));
                }
                outcomes.push(Ok(appended.info));
            }
            Ok(None) => break,
            Err(e) => outcomes.push(Err(e)),
        }
    }
    outcomes
}

fn append(
    partition: &Partition,
    records: Option<&Bytes>,
    verification: Verification,
    now_ms: i64,
) -> Result<vltava_log::AppendInfo, LogError> {
    let batches = records.map(|r| &r[..]).unwrap_or_default();
    match verification {
        None => partition.append(batches, now_ms),
        Some(guard) => partition.append_verified(batches, now_ms, guard),
    }
}

/// Kafka's answer to a `RecordValidationException` (Produce v8+): each refused record's index
/// and message, and a message for the whole batch in `LogValidator.processRecordErrors`' words.
fn set_record_errors(p: &mut PartitionProduceResponse, errors: &[RecordError], total: usize) {
    p.record_errors = errors
        .iter()
        .map(|e| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(e.batch_index)
                .with_batch_index_error_message(Some(StrBytes::from_string(e.reason.message())))
        })
        .collect();
    let message = if errors.iter().any(|e| e.reason.is_timestamp()) {
        "One or more records have been rejected due to invalid timestamp".to_string()
    } else {
        let first: Vec<String> = errors.iter().take(3).map(|e| e.reason.message()).collect();
        format!(
            "One or more records have been rejected due to {total} record errors in total, \
             and only showing the first three errors at most: {first:?}"
        )
    };
    p.error_message = Some(StrBytes::from_string(message));
}

/// Whether Kafka fills in the partition's log start offset in an errored answer. Its
/// `ReplicaManager.appendToLocalLog` answers corrupt, too-large and storage errors with
/// `LogAppendInfo.UNKNOWN_LOG_APPEND_INFO` (log start offset -1), and every other append error
/// (invalid records, sequence and epoch errors) with the partition's log start offset.
fn answers_with_log_start_offset(e: &LogError) -> bool {
    !matches!(
        e,
        LogError::Corrupt { .. }
            | LogError::RecordTooLarge { .. }
            | LogError::RecordListTooLarge { .. }
            | LogError::Io { .. }
            | LogError::Offline { .. }
            | LogError::Checkpoint { .. }
    )
}

/// The transactional bit of the first batch's attributes (byte 21 of a RecordBatch v2).
fn is_transactional(records: &[u8]) -> bool {
    records
        .get(21..23)
        .is_some_and(|a| i16::from_be_bytes([a[0], a[1]]) & 0x10 != 0)
}

fn error_message(code: i16) -> &'static str {
    match code {
        error::CORRUPT_MESSAGE => {
            "This message has failed its CRC checksum, exceeds the valid size, has a null key for a compacted topic, or is otherwise corrupt."
        }
        error::MESSAGE_TOO_LARGE => {
            "The request included a message larger than the max message size the server will accept."
        }
        error::INVALID_RECORD => {
            "This record has failed the validation on broker and hence will be rejected."
        }
        error::UNKNOWN_TOPIC_OR_PARTITION => "This server does not host this topic-partition.",
        error::NOT_LEADER_OR_FOLLOWER => "This server is not the leader for that topic-partition.",
        error::INVALID_REQUIRED_ACKS => {
            "Produce request specified an invalid value for required acks."
        }
        error::OUT_OF_ORDER_SEQUENCE_NUMBER => {
            "The broker received an out of order sequence number."
        }
        error::INVALID_PRODUCER_EPOCH => "Producer attempted to produce with an old epoch.",
        error::INVALID_TXN_STATE => {
            "The producer attempted a transactional operation in an invalid state."
        }
        _ => "",
    }
}
