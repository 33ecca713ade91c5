//! Kafka's `__transaction_state` record schemas, by hand (kafka-protocol does not generate the
//! coordinator's internal records): `TransactionLogKey` is an i16 record type (0) and the
//! transactional id; `TransactionLogValue` is an i16 version and the metadata. Written as Kafka
//! writes it: value version 0 for transaction version 1 clients, version 1 (flexible, with the
//! tagged PreviousProducerId, NextProducerId and ClientTransactionVersion) for version 2 ones.
//! A removed id is a tombstone (a null value).
#![deny(clippy::indexing_slicing)]

use std::collections::BTreeSet;

use bytes::{Buf, BufMut};

use super::state::{Transit, TxnState};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record ends early")]
    Truncated,
    #[error("string of {0} bytes does not fit an i16 length")]
    TooLong(usize),
    #[error("invalid utf-8 in a string field")]
    Utf8,
    #[error("invalid length {0}")]
    BadLength(i64),
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion { what: &'static str, version: i16 },
    #[error("unknown transaction state {0}")]
    UnknownState(i8),
}

const KEY_TYPE: i16 = 0;
/// TransactionLogValue's tagged fields (version 1+).
const TAG_PREVIOUS_PRODUCER_ID: u64 = 0;
const TAG_NEXT_PRODUCER_ID: u64 = 1;
const TAG_CLIENT_TRANSACTION_VERSION: u64 = 2;

fn put_string(buf: &mut Vec<u8>, s: &str) -> Result<(), RecordError> {
    let len = i16::try_from(s.len()).map_err(|_| RecordError::TooLong(s.len()))?;
    buf.put_i16(len);
    buf.put_slice(s.as_bytes());
    Ok(())
}

pub fn encode_key(transactional_id: &str) -> Result<Vec<u8>, RecordError> {
    let mut buf = Vec::with_capacity(4 + transactional_id.len());
    buf.put_i16(KEY_TYPE);
    put_string(&mut buf, transactional_id)?;
    Ok(buf)
}

/// The transactional id of a key; `None` for a record type this broker does not know.
pub fn decode_key(mut buf: &[u8]) -> Result<Option<String>, RecordError> {
    let version = buf.try_get_i16().map_err(|_| RecordError::Truncated)?;
    if version != KEY_TYPE {
        return Ok(None);
    }
    read_string(&mut buf, false).map(Some)
}

fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// A string: i16 length (v0) or compact, unsigned varint length + 1 (v1).
fn put_string_at(buf: &mut Vec<u8>, s: &str, compact: bool) -> Result<(), RecordError> {
    if !compact {
        return put_string(buf, s);
    }
    i16::try_from(s.len()).map_err(|_| RecordError::TooLong(s.len()))?;
    put_uvarint(buf, s.len() as u64 + 1);
    buf.put_slice(s.as_bytes());
    Ok(())
}

fn put_len(buf: &mut Vec<u8>, len: usize, compact: bool) {
    if compact {
        put_uvarint(buf, len as u64 + 1);
    } else {
        buf.put_i32(len as i32);
    }
}

pub fn encode_value(t: &Transit) -> Result<Vec<u8>, RecordError> {
    let flexible = t.client_tv2;
    let mut buf = Vec::with_capacity(64);
    buf.put_i16(i16::from(flexible));
    buf.put_i64(t.producer_id);
    buf.put_i16(t.producer_epoch);
    buf.put_i32(t.timeout_ms);
    buf.put_i8(t.state.id());
    let mut by_topic: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in &t.partitions {
        match by_topic.last_mut() {
            Some((last, ids)) if *last == topic.as_str() => ids.push(*partition),
            _ => by_topic.push((topic.as_str(), vec![*partition])),
        }
    }
    put_len(&mut buf, by_topic.len(), flexible);
    for (topic, ids) in by_topic {
        put_string_at(&mut buf, topic, flexible)?;
        put_len(&mut buf, ids.len(), flexible);
        for id in ids {
            buf.put_i32(id);
        }
        if flexible {
            put_uvarint(&mut buf, 0); // no tagged fields per topic
        }
    }
    buf.put_i64(t.last_update_timestamp_ms);
    buf.put_i64(t.start_timestamp_ms);
    if flexible {
        // Tagged fields in tag order; defaults (-1) are left out, as Kafka's writer does.
        let mut tags: Vec<(u64, Vec<u8>)> = Vec::new();
        if t.previous_producer_id != -1 {
            tags.push((
                TAG_PREVIOUS_PRODUCER_ID,
                t.previous_producer_id.to_be_bytes().to_vec(),
            ));
        }
        if t.next_producer_id != -1 {
            tags.push((
                TAG_NEXT_PRODUCER_ID,
                t.next_producer_id.to_be_bytes().to_vec(),
            ));
        }
        tags.push((TAG_CLIENT_TRANSACTION_VERSION, 2i16.to_be_bytes().to_vec()));
        put_uvarint(&mut buf, tags.len() as u64);
        for (tag, data) in tags {
            put_uvarint(&mut buf, tag);
            put_uvarint(&mut buf, data.len() as u64);
            buf.put_slice(&data);
        }
    }
    Ok(buf)
}

fn read_string(buf: &mut &[u8], compact: bool) -> Result<String, RecordError> {
    let len = if compact {
        read_uvarint(buf)? as i64 - 1
    } else {
        i64::from(buf.try_get_i16().map_err(|_| RecordError::Truncated)?)
    };
    let len = usize::try_from(len).map_err(|_| RecordError::BadLength(len))?;
    let bytes = buf.get(..len).ok_or(RecordError::Truncated)?;
    let s = std::str::from_utf8(bytes)
        .map_err(|_| RecordError::Utf8)?
        .to_string();
    buf.advance(len);
    Ok(s)
}

fn read_uvarint(buf: &mut &[u8]) -> Result<u64, RecordError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = buf.try_get_u8().map_err(|_| RecordError::Truncated)?;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(RecordError::BadLength(-1))
}

/// Reads an array length: i32 (v0, -1 null) or unsigned varint + 1 (v1, 0 null).
fn read_len(buf: &mut &[u8], compact: bool) -> Result<Option<usize>, RecordError> {
    let len = if compact {
        read_uvarint(buf)? as i64 - 1
    } else {
        i64::from(buf.try_get_i32().map_err(|_| RecordError::Truncated)?)
    };
    if len < 0 {
        return Ok(None);
    }
    // Each element takes at least one byte: a longer count is corrupt, not an allocation.
    if len as usize > buf.len() {
        return Err(RecordError::BadLength(len));
    }
    Ok(Some(len as usize))
}

/// Skips a flexible struct's tagged fields (reading the ones v1 defines at the top level).
fn read_tags(buf: &mut &[u8], mut on_tag: impl FnMut(u64, &[u8])) -> Result<(), RecordError> {
    let count = read_uvarint(buf)?;
    for _ in 0..count {
        let tag = read_uvarint(buf)?;
        let size = usize::try_from(read_uvarint(buf)?).map_err(|_| RecordError::BadLength(-1))?;
        let data = buf.get(..size).ok_or(RecordError::Truncated)?;
        on_tag(tag, data);
        buf.advance(size);
    }
    Ok(())
}

fn truncated(_: bytes::TryGetError) -> RecordError {
    RecordError::Truncated
}

pub fn decode_value(mut buf: &[u8]) -> Result<Transit, RecordError> {
    let buf = &mut buf;
    let version = buf.try_get_i16().map_err(|_| RecordError::Truncated)?;
    if !(0..=1).contains(&version) {
        return Err(RecordError::UnsupportedVersion {
            what: "TransactionLogValue",
            version,
        });
    }
    let flexible = version >= 1;
    let producer_id = buf.try_get_i64().map_err(truncated)?;
    let producer_epoch = buf.try_get_i16().map_err(truncated)?;
    let timeout_ms = buf.try_get_i32().map_err(truncated)?;
    let state_id = buf.try_get_i8().map_err(truncated)?;
    let state = TxnState::from_id(state_id).ok_or(RecordError::UnknownState(state_id))?;
    let mut partitions = BTreeSet::new();
    if let Some(topics) = read_len(buf, flexible)? {
        for _ in 0..topics {
            let topic = read_string(buf, flexible)?;
            let ids = read_len(buf, flexible)?.unwrap_or(0);
            for _ in 0..ids {
                partitions.insert((topic.clone(), buf.try_get_i32().map_err(truncated)?));
            }
            if flexible {
                read_tags(buf, |_, _| {})?;
            }
        }
    }
    let last_update_timestamp_ms = buf.try_get_i64().map_err(truncated)?;
    let start_timestamp_ms = buf.try_get_i64().map_err(truncated)?;
    let (mut previous_producer_id, mut next_producer_id, mut client_version) = (-1, -1, 0);
    if flexible {
        read_tags(buf, |tag, mut data| match tag {
            TAG_PREVIOUS_PRODUCER_ID => previous_producer_id = data.try_get_i64().unwrap_or(-1),
            TAG_NEXT_PRODUCER_ID => next_producer_id = data.try_get_i64().unwrap_or(-1),
            TAG_CLIENT_TRANSACTION_VERSION => client_version = data.try_get_i16().unwrap_or(0),
            _ => {}
        })?;
    }
    Ok(Transit {
        producer_id,
        previous_producer_id,
        producer_epoch,
        last_producer_epoch: -1,
        timeout_ms,
        state,
        partitions,
        start_timestamp_ms,
        last_update_timestamp_ms,
        next_producer_id,
        client_tv2: client_version >= 2,
    })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn transit() -> Transit {
        Transit {
            producer_id: 4242,
            previous_producer_id: -1,
            producer_epoch: 7,
            last_producer_epoch: -1,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: [("a".to_string(), 0), ("a".to_string(), 2), ("b".into(), 1)]
                .into_iter()
                .collect(),
            start_timestamp_ms: 1_700_000_000_000,
            last_update_timestamp_ms: 1_700_000_000_123,
            next_producer_id: -1,
            client_tv2: false,
        }
    }

    #[test]
    fn key_and_value_round_trip() {
        let key = encode_key("my-txn").unwrap();
        assert_eq!(key, b"\x00\x00\x00\x06my-txn");
        assert_eq!(decode_key(&key).unwrap(), Some("my-txn".to_string()));
        let value = encode_value(&transit()).unwrap();
        assert_eq!(decode_value(&value).unwrap(), transit());
    }

    #[test]
    fn value_v0_matches_kafkas_layout() {
        let mut t = transit();
        t.partitions = [("t".to_string(), 3)].into_iter().collect();
        let v = encode_value(&t).unwrap();
        let mut want = vec![0, 0];
        want.extend(4242i64.to_be_bytes());
        want.extend(7i16.to_be_bytes());
        want.extend(60_000i32.to_be_bytes());
        want.push(1);
        want.extend(1i32.to_be_bytes());
        want.extend([0, 1, b't']);
        want.extend(1i32.to_be_bytes());
        want.extend(3i32.to_be_bytes());
        want.extend(1_700_000_000_123i64.to_be_bytes());
        want.extend(1_700_000_000_000i64.to_be_bytes());
        assert_eq!(v, want);
    }

    #[test]
    fn value_v1_with_tagged_fields_is_read() {
        let mut v = vec![0, 1];
        v.extend(5i64.to_be_bytes());
        v.extend(2i16.to_be_bytes());
        v.extend(1000i32.to_be_bytes());
        v.push(4); // CompleteCommit
        v.push(2); // one topic
        v.extend([2, b'x']); // compact string "x"
        v.extend([2]); // one partition
        v.extend(9i32.to_be_bytes());
        v.push(0); // topic's tagged fields
        v.extend(11i64.to_be_bytes());
        v.extend(10i64.to_be_bytes());
        v.push(2); // two tags
        v.extend([0, 8]);
        v.extend(3i64.to_be_bytes()); // PreviousProducerId
        v.extend([2, 2, 0, 2]); // ClientTransactionVersion
        let t = decode_value(&v).unwrap();
        assert_eq!(t.producer_id, 5);
        assert_eq!(t.previous_producer_id, 3);
        assert_eq!(t.state, TxnState::CompleteCommit);
        assert!(t.partitions.contains(&("x".to_string(), 9)));
        assert_eq!((t.last_update_timestamp_ms, t.start_timestamp_ms), (11, 10));
    }

    #[test]
    fn a_version_2_value_is_written_flexible_and_read_back() {
        let mut t = transit();
        t.client_tv2 = true;
        t.previous_producer_id = 3;
        t.next_producer_id = 9;
        let v = encode_value(&t).unwrap();
        assert_eq!(&v[..2], &[0, 1], "value version 1");
        assert_eq!(decode_value(&v).unwrap(), t);
        t.previous_producer_id = -1;
        t.next_producer_id = -1;
        assert_eq!(decode_value(&encode_value(&t).unwrap()).unwrap(), t);
    }

    #[test]
    fn corrupt_values_are_errors_not_panics() {
        let value = encode_value(&transit()).unwrap();
        for cut in 0..value.len() {
            assert!(decode_value(&value[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge = value[..17].to_vec();
        huge.extend(i32::MAX.to_be_bytes());
        assert!(decode_value(&huge).is_err());
    }
}
