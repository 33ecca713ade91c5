// HOT PATH: every fetch response is framed here.
//! The Fetch response without copying records: everything up to each partition's `records`
//! field is built in memory, the records follow as a file range sent with `sendfile`.
//!
//! kafka-protocol encodes `PartitionData` for us (records set to null); since `records` is the
//! last field before the partition's tagged fields, we cut the null marker off, write the real
//! length, and point at the file. The outer levels (response, topics) are short and written by
//! hand following the Fetch schema (v4–v17). The property test at the bottom checks the result
//! byte for byte against the crate's encoder of the same response with the records in memory.
#![deny(clippy::unwrap_used, clippy::indexing_slicing)]

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, ResponseHeader, TopicName};
use kafka_protocol::protocol::Encodable;
use uuid::Uuid;
use vltava_log::FileRange;

use super::response::EncodeError;
use super::{Outgoing, Part};

/// One partition's answer: its fields (records ignored) and the records as a file range.
#[derive(Debug, Clone)]
pub struct FetchPartitionResult {
    pub data: PartitionData,
    pub records: Option<FileRange>,
}

#[derive(Debug, Clone)]
pub struct FetchTopicResult {
    pub topic: TopicName,
    pub topic_id: Uuid,
    pub partitions: Vec<FetchPartitionResult>,
}

/// A whole Fetch response before framing.
#[derive(Debug, Clone, Default)]
pub struct FetchResult {
    pub topics: Vec<FetchTopicResult>,
}

/// Encodes the response frame: size, header, body with file ranges for the records.
pub fn encode(
    version: i16,
    correlation_id: i32,
    result: &FetchResult,
) -> Result<Outgoing, crate::error::ConnectionError> {
    encode_parts(version, correlation_id, result).map_err(|message| {
        crate::error::ConnectionError::Encode(EncodeError {
            api_key: ApiKey::Fetch,
            version,
            message,
        })
    })
}

struct Writer {
    parts: Vec<Part>,
    current: BytesMut,
}

impl Writer {
    fn file(&mut self, range: &FileRange) {
        let bytes = std::mem::take(&mut self.current).freeze();
        self.parts.push(Part::Bytes(bytes));
        self.parts.push(Part::File(range.clone()));
    }

    fn array_len(&mut self, flexible: bool, len: usize) -> Result<(), String> {
        if flexible {
            put_uvarint(&mut self.current, len as u64 + 1);
        } else {
            self.current
                .put_i32(i32::try_from(len).map_err(|_| "array too long".to_string())?);
        }
        Ok(())
    }
}

fn put_uvarint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn encode_parts(
    version: i16,
    correlation_id: i32,
    result: &FetchResult,
) -> Result<Outgoing, String> {
    if !(4..=17).contains(&version) {
        return Err(format!("unsupported version {version}"));
    }
    let flexible = version >= 12;
    let mut w = Writer {
        parts: Vec::new(),
        current: BytesMut::with_capacity(256),
    };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(
            &mut w.current,
            ApiKey::Fetch.response_header_version(version),
        )
        .map_err(|e| e.to_string())?;
    if version >= 1 {
        w.current.put_i32(0); // throttle_time_ms
    }
    if version >= 7 {
        w.current.put_i16(0); // error_code
        w.current.put_i32(0); // session_id: no fetch sessions
    }
    w.array_len(flexible, result.topics.len())?;
    // The null-records marker and the empty tagged-field section that end a PartitionData.
    let null_marker: &[u8] = if flexible {
        &[0]
    } else {
        &[0xff, 0xff, 0xff, 0xff]
    };
    let tail: &[u8] = if flexible { &[0] } else { &[] };
    let mut partition_buf = BytesMut::new();
    for topic in &result.topics {
        if version <= 12 {
            let name = topic.topic.as_bytes();
            if flexible {
                put_uvarint(&mut w.current, name.len() as u64 + 1);
            } else {
                w.current
                    .put_i16(i16::try_from(name.len()).map_err(|_| "topic name too long")?);
            }
            w.current.put_slice(name);
        }
        if version >= 13 {
            w.current.put_slice(topic.topic_id.as_bytes());
        }
        w.array_len(flexible, topic.partitions.len())?;
        for p in &topic.partitions {
            let mut data = p.data.clone();
            data.records = None;
            partition_buf.clear();
            data.encode(&mut partition_buf, version)
                .map_err(|e| e.to_string())?;
            let suffix_len = null_marker.len() + tail.len();
            let prefix_len = partition_buf
                .len()
                .checked_sub(suffix_len)
                .ok_or("partition encoding too short")?;
            let (prefix, suffix) = partition_buf.split_at(prefix_len);
            if suffix.get(..null_marker.len()) != Some(null_marker)
                || suffix.get(null_marker.len()..) != Some(tail)
            {
                return Err("partition has tagged fields after records; cannot splice".into());
            }
            w.current.put_slice(prefix);
            let length = p.records.as_ref().map_or(0, |r| r.length);
            if flexible {
                put_uvarint(&mut w.current, u64::from(length) + 1);
            } else {
                w.current
                    .put_i32(i32::try_from(length).map_err(|_| "records too large")?);
            }
            if let Some(range) = p.records.as_ref().filter(|r| r.length > 0) {
                w.file(range);
            }
            w.current.put_slice(tail);
        }
        if flexible {
            w.current.put_u8(0); // topic tagged fields
        }
    }
    if flexible {
        w.current.put_u8(0); // response tagged fields (no node endpoints)
    }
    let last = std::mem::take(&mut w.current).freeze();
    w.parts.push(Part::Bytes(last));
    let mut out = Outgoing { parts: w.parts };
    let size = i32::try_from(out.len()).map_err(|_| "response too large")?;
    out.parts
        .insert(0, Part::Bytes(Bytes::copy_from_slice(&size.to_be_bytes())));
    out.parts
        .retain(|p| !matches!(p, Part::Bytes(b) if b.is_empty()));
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;

    use kafka_protocol::messages::fetch_response::AbortedTransaction;
    use kafka_protocol::messages::ProducerId;
    use kafka_protocol::protocol::StrBytes;
    use proptest::prelude::*;

    use super::*;
    use crate::handlers::buffered_fetch_response;
    use crate::wire::encode_response;

    fn materialize(out: &Outgoing) -> Vec<u8> {
        let mut v = Vec::new();
        for part in &out.parts {
            match part {
                Part::Bytes(b) => v.extend_from_slice(b),
                Part::File(range) => v.extend_from_slice(&range.read_to_vec().unwrap()),
            }
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn zero_copy_fetch_matches_kafka_protocol_encoder(
            version in 4i16..=17,
            correlation_id in any::<i32>(),
            topics in prop::collection::vec(
                ("[a-z]{1,12}", prop::collection::vec(
                    (0i32..100, prop_oneof![Just(0i16), Just(1i16), Just(3i16)], any::<i64>(),
                     prop::option::of((0u64..4000, 0u32..3000)),
                     // null, empty (errors answered by KafkaApis) or some aborted transactions
                     prop::option::of(prop::collection::vec((any::<i64>(), any::<i64>()), 0..3))),
                    0..4)),
                0..4),
            file_bytes in prop::collection::vec(any::<u8>(), 7000),
        ) {
            let mut tmp = tempfile::tempfile().unwrap();
            tmp.write_all(&file_bytes).unwrap();
            let file = Arc::new(tmp);
            let result = FetchResult {
                topics: topics.iter().map(|(name, parts)| FetchTopicResult {
                    topic: TopicName(StrBytes::from_string(name.clone())),
                    topic_id: Uuid::from_u128(name.len() as u128 * 7919),
                    partitions: parts.iter().map(|(index, code, hw, range, aborted)| FetchPartitionResult {
                        data: PartitionData::default()
                            .with_partition_index(*index)
                            .with_error_code(*code)
                            .with_high_watermark(*hw)
                            .with_last_stable_offset(*hw)
                            .with_log_start_offset(0)
                            .with_aborted_transactions(aborted.as_ref().map(|list| {
                                list.iter()
                                    .map(|&(producer_id, first_offset)| {
                                        AbortedTransaction::default()
                                            .with_producer_id(ProducerId(producer_id))
                                            .with_first_offset(first_offset)
                                    })
                                    .collect()
                            })),
                        records: range.map(|(position, length)| FileRange {
                            file: file.clone(),
                            position,
                            length,
                            beyond_tail: false,
                            ends_segment: false,
                        }),
                    }).collect(),
                }).collect(),
            };
            let zero_copy = materialize(&encode(version, correlation_id, &result).unwrap());
            let reference = buffered_fetch_response(&result).unwrap();
            let expected = encode_response(ApiKey::Fetch, version, correlation_id, &reference).unwrap();
            prop_assert_eq!(zero_copy, expected.to_vec());
        }
    }
}
