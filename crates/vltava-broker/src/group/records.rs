//! Kafka's `__consumer_offsets` record schemas, by hand (kafka-protocol 0.18 does not generate
//! the coordinator's internal records): a key is an i16 record type followed by the key struct,
//! a value is an i16 version followed by the value struct (both non-flexible here, as Kafka
//! writes them for classic groups), and a tombstone is a record with a null value.
//!
//! Record types: 0 and 1 `OffsetCommitKey` (legacy and current), 2 `GroupMetadataKey`. Other
//! types (KIP-848 consumer groups, share groups) are skipped on replay.
#![deny(clippy::indexing_slicing)]

use bytes::{Buf, BufMut, Bytes};

/// What went wrong decoding or encoding a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record ends early")]
    Truncated,
    #[error("string of {0} bytes does not fit an i16 length")]
    TooLong(usize),
    #[error("invalid utf-8 in a string field")]
    Utf8,
    #[error("negative length {0}")]
    NegativeLength(i32),
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion { what: &'static str, version: i16 },
}

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    OffsetCommit {
        group: String,
        topic: String,
        partition: i32,
    },
    GroupMetadata {
        group: String,
    },
    /// A record type this broker does not use (skipped on replay).
    Other(i16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only in value version 1 (`retention_time_ms` of OffsetCommit v2–v4); -1 otherwise.
    pub expire_timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberMetadata>,
}

const OFFSET_COMMIT_KEY: i16 = 1;
const GROUP_METADATA_KEY: i16 = 2;
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
const GROUP_METADATA_VALUE_VERSION: i16 = 3;

pub fn encode_key(key: &RecordKey) -> Result<Vec<u8>, RecordError> {
    let mut buf = Vec::new();
    match key {
        RecordKey::OffsetCommit {
            group,
            topic,
            partition,
        } => {
            buf.put_i16(OFFSET_COMMIT_KEY);
            put_string(&mut buf, group)?;
            put_string(&mut buf, topic)?;
            buf.put_i32(*partition);
        }
        RecordKey::GroupMetadata { group } => {
            buf.put_i16(GROUP_METADATA_KEY);
            put_string(&mut buf, group)?;
        }
        RecordKey::Other(kind) => buf.put_i16(*kind),
    }
    Ok(buf)
}

pub fn decode_key(mut buf: &[u8]) -> Result<RecordKey, RecordError> {
    let kind = get_i16(&mut buf)?;
    match kind {
        0 | 1 => Ok(RecordKey::OffsetCommit {
            group: get_string(&mut buf)?,
            topic: get_string(&mut buf)?,
            partition: get_i32(&mut buf)?,
        }),
        GROUP_METADATA_KEY => Ok(RecordKey::GroupMetadata {
            group: get_string(&mut buf)?,
        }),
        other => Ok(RecordKey::Other(other)),
    }
}

pub fn encode_offset_value(value: &OffsetCommitValue) -> Result<Vec<u8>, RecordError> {
    let mut buf = Vec::with_capacity(32 + value.metadata.len());
    buf.put_i16(OFFSET_COMMIT_VALUE_VERSION);
    buf.put_i64(value.offset);
    buf.put_i32(value.leader_epoch);
    put_string(&mut buf, &value.metadata)?;
    buf.put_i64(value.commit_timestamp);
    Ok(buf)
}

pub fn decode_offset_value(mut buf: &[u8]) -> Result<OffsetCommitValue, RecordError> {
    let version = get_i16(&mut buf)?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnsupportedVersion {
            what: "OffsetCommitValue",
            version,
        });
    }
    let offset = get_i64(&mut buf)?;
    let leader_epoch = if version >= 3 { get_i32(&mut buf)? } else { -1 };
    let metadata = get_string(&mut buf)?;
    let commit_timestamp = get_i64(&mut buf)?;
    let expire_timestamp = if version == 1 { get_i64(&mut buf)? } else { -1 };
    Ok(OffsetCommitValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
        expire_timestamp,
    })
}

pub fn encode_group_value(value: &GroupMetadataValue) -> Result<Vec<u8>, RecordError> {
    let mut buf = Vec::new();
    buf.put_i16(GROUP_METADATA_VALUE_VERSION);
    put_string(&mut buf, &value.protocol_type)?;
    buf.put_i32(value.generation);
    put_nullable_string(&mut buf, value.protocol.as_deref())?;
    put_nullable_string(&mut buf, value.leader.as_deref())?;
    buf.put_i64(value.current_state_timestamp);
    buf.put_i32(len_i32(value.members.len())?);
    for m in &value.members {
        put_string(&mut buf, &m.member_id)?;
        put_nullable_string(&mut buf, m.group_instance_id.as_deref())?;
        put_string(&mut buf, &m.client_id)?;
        put_string(&mut buf, &m.client_host)?;
        buf.put_i32(m.rebalance_timeout);
        buf.put_i32(m.session_timeout);
        put_bytes(&mut buf, &m.subscription)?;
        put_bytes(&mut buf, &m.assignment)?;
    }
    Ok(buf)
}

pub fn decode_group_value(mut buf: &[u8]) -> Result<GroupMetadataValue, RecordError> {
    let version = get_i16(&mut buf)?;
    if !(0..=3).contains(&version) {
        return Err(RecordError::UnsupportedVersion {
            what: "GroupMetadataValue",
            version,
        });
    }
    let protocol_type = get_string(&mut buf)?;
    let generation = get_i32(&mut buf)?;
    let protocol = get_nullable_string(&mut buf)?;
    let leader = get_nullable_string(&mut buf)?;
    let current_state_timestamp = if version >= 2 { get_i64(&mut buf)? } else { -1 };
    let count = get_i32(&mut buf)?;
    if count < 0 {
        return Err(RecordError::NegativeLength(count));
    }
    // Each member takes at least 22 bytes: never trust the count beyond what is there.
    let mut members = Vec::with_capacity((count as usize).min(buf.len() / 22));
    for _ in 0..count {
        let member_id = get_string(&mut buf)?;
        let group_instance_id = if version >= 3 {
            get_nullable_string(&mut buf)?
        } else {
            None
        };
        let client_id = get_string(&mut buf)?;
        let client_host = get_string(&mut buf)?;
        let rebalance_timeout = if version >= 1 { get_i32(&mut buf)? } else { -1 };
        let session_timeout = get_i32(&mut buf)?;
        let subscription = get_bytes(&mut buf)?;
        let assignment = get_bytes(&mut buf)?;
        members.push(MemberMetadata {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout: if rebalance_timeout < 0 {
                session_timeout
            } else {
                rebalance_timeout
            },
            session_timeout,
            subscription,
            assignment,
        });
    }
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

/// Whether `s` fits a non-flexible (i16-length) string field of these records.
pub fn fits_string(s: &str) -> bool {
    s.len() <= i16::MAX as usize
}

fn len_i32(len: usize) -> Result<i32, RecordError> {
    i32::try_from(len).map_err(|_| RecordError::TooLong(len))
}

fn put_string(buf: &mut Vec<u8>, s: &str) -> Result<(), RecordError> {
    let len = i16::try_from(s.len()).map_err(|_| RecordError::TooLong(s.len()))?;
    buf.put_i16(len);
    buf.put_slice(s.as_bytes());
    Ok(())
}

fn put_nullable_string(buf: &mut Vec<u8>, s: Option<&str>) -> Result<(), RecordError> {
    match s {
        Some(s) => put_string(buf, s),
        None => {
            buf.put_i16(-1);
            Ok(())
        }
    }
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) -> Result<(), RecordError> {
    buf.put_i32(len_i32(b.len())?);
    buf.put_slice(b);
    Ok(())
}

fn get_i16(buf: &mut &[u8]) -> Result<i16, RecordError> {
    buf.try_get_i16().map_err(|_| RecordError::Truncated)
}

fn get_i32(buf: &mut &[u8]) -> Result<i32, RecordError> {
    buf.try_get_i32().map_err(|_| RecordError::Truncated)
}

fn get_i64(buf: &mut &[u8]) -> Result<i64, RecordError> {
    buf.try_get_i64().map_err(|_| RecordError::Truncated)
}

fn take<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8], RecordError> {
    if buf.len() < len {
        return Err(RecordError::Truncated);
    }
    let (head, tail) = buf.split_at(len);
    *buf = tail;
    Ok(head)
}

fn get_nullable_string(buf: &mut &[u8]) -> Result<Option<String>, RecordError> {
    let len = get_i16(buf)?;
    if len < 0 {
        return Ok(None);
    }
    let bytes = take(buf, len as usize)?;
    String::from_utf8(bytes.to_vec())
        .map(Some)
        .map_err(|_| RecordError::Utf8)
}

fn get_string(buf: &mut &[u8]) -> Result<String, RecordError> {
    get_nullable_string(buf).map(Option::unwrap_or_default)
}

fn get_bytes(buf: &mut &[u8]) -> Result<Bytes, RecordError> {
    let len = get_i32(buf)?;
    if len < 0 {
        return Ok(Bytes::new());
    }
    Ok(Bytes::copy_from_slice(take(buf, len as usize)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offset_commit_key_matches_kafkas_bytes() {
        let key = RecordKey::OffsetCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        let bytes = encode_key(&key).unwrap();
        assert_eq!(bytes, [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
        assert_eq!(decode_key(&bytes).unwrap(), key);
    }

    #[test]
    fn old_value_versions_decode() {
        // OffsetCommitValue v1: offset, metadata, commit and expire timestamps.
        let mut v1 = Vec::new();
        v1.put_i16(1);
        v1.put_i64(42);
        v1.put_i16(2);
        v1.put_slice(b"md");
        v1.put_i64(1000);
        v1.put_i64(2000);
        let value = decode_offset_value(&v1).unwrap();
        assert_eq!(value.offset, 42);
        assert_eq!(value.leader_epoch, -1);
        assert_eq!(value.metadata, "md");
        assert_eq!(value.expire_timestamp, 2000);
    }

    #[test]
    fn oversized_strings_are_refused_not_truncated() {
        let key = RecordKey::GroupMetadata {
            group: "x".repeat(100 * 1024),
        };
        assert_eq!(encode_key(&key), Err(RecordError::TooLong(100 * 1024)));
    }

    #[test]
    fn flexible_versions_are_reported_not_misread() {
        assert!(matches!(
            decode_group_value(&[0, 4, 0]),
            Err(RecordError::UnsupportedVersion { .. })
        ));
    }

    fn text() -> impl Strategy<Value = String> {
        "\\PC{0,20}"
    }

    fn member() -> impl Strategy<Value = MemberMetadata> {
        (
            text(),
            proptest::option::of(text()),
            text(),
            text(),
            any::<i32>(),
            any::<i32>(),
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(
                |(id, instance, client, host, rt, st, sub, asg)| MemberMetadata {
                    member_id: id,
                    group_instance_id: instance,
                    client_id: client,
                    client_host: host,
                    rebalance_timeout: rt.max(0),
                    session_timeout: st,
                    subscription: Bytes::from(sub),
                    assignment: Bytes::from(asg),
                },
            )
    }

    proptest! {
        #[test]
        fn offset_values_round_trip(offset in any::<i64>(), epoch in any::<i32>(), md in text(), ts in any::<i64>()) {
            let value = OffsetCommitValue { offset, leader_epoch: epoch, metadata: md, commit_timestamp: ts, expire_timestamp: -1 };
            prop_assert_eq!(decode_offset_value(&encode_offset_value(&value).unwrap()).unwrap(), value);
        }

        #[test]
        fn group_values_round_trip(
            ptype in text(), generation in any::<i32>(), protocol in proptest::option::of(text()),
            leader in proptest::option::of(text()), ts in any::<i64>(),
            members in proptest::collection::vec(member(), 0..5),
        ) {
            let value = GroupMetadataValue { protocol_type: ptype, generation, protocol, leader, current_state_timestamp: ts, members };
            prop_assert_eq!(decode_group_value(&encode_group_value(&value).unwrap()).unwrap(), value);
        }

        #[test]
        fn keys_round_trip(group in text(), topic in text(), partition in any::<i32>()) {
            for key in [RecordKey::OffsetCommit { group: group.clone(), topic: topic.clone(), partition }, RecordKey::GroupMetadata { group: group.clone() }] {
                prop_assert_eq!(decode_key(&encode_key(&key).unwrap()).unwrap(), key);
            }
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_key(&bytes);
            let _ = decode_offset_value(&bytes);
            let _ = decode_group_value(&bytes);
        }
    }
}
