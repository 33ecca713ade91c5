//! Control batches: the COMMIT and ABORT markers a transaction coordinator writes to every
//! partition of a transaction (Kafka's `EndTransactionMarker`, `ControlRecordType`).
//!
//! A marker is a RecordBatch v2 with the transactional and control attribute bits, the
//! producer's id and epoch, no sequence, and exactly one record whose key is
//! `version i16 | type i16` (0 = ABORT, 1 = COMMIT) and whose value is
//! `version i16 | coordinatorEpoch i32`.

use crate::batch::{self, BatchHeader, HEADER_SIZE, LOG_OVERHEAD, MAGIC_V2};
use crate::error::{LogError, Result};

/// Attribute bits of a marker batch: transactional (0x10) | control (0x20).
const MARKER_ATTRIBUTES: i16 = 0x30;
const CONTROL_TYPE_ABORT: i16 = 0;
const CONTROL_TYPE_COMMIT: i16 = 1;

/// What one marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// Builds the marker batch Kafka's `MemoryRecords.withEndTransactionMarker` builds (base offset
/// 0; the log assigns the real one).
pub fn build_marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    marker: TxnMarker,
    timestamp: i64,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    let kind = if marker.commit {
        CONTROL_TYPE_COMMIT
    } else {
        CONTROL_TYPE_ABORT
    };
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());

    let mut body = Vec::with_capacity(24);
    body.push(0u8); // record attributes
    put_varint(&mut body, 0); // timestamp delta
    put_varint(&mut body, 0); // offset delta
    put_varint(&mut body, key.len() as i64);
    body.extend_from_slice(&key);
    put_varint(&mut body, value.len() as i64);
    body.extend_from_slice(&value);
    put_varint(&mut body, 0); // headers
    let mut records = Vec::with_capacity(body.len() + 2);
    put_varint(&mut records, body.len() as i64);
    records.extend_from_slice(&body);

    let mut out = Vec::with_capacity(HEADER_SIZE + records.len());
    out.extend_from_slice(&0i64.to_be_bytes()); // base offset
    out.extend_from_slice(&((HEADER_SIZE - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&0u32.to_be_bytes()); // crc, below
    out.extend_from_slice(&MARKER_ATTRIBUTES.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&producer_id.to_be_bytes());
    out.extend_from_slice(&producer_epoch.to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    out.extend_from_slice(&1i32.to_be_bytes()); // records count
    out.extend_from_slice(&records);
    let crc = batch::compute_crc(&out);
    if let Some(field) = out.get_mut(17..21) {
        field.copy_from_slice(&crc.to_be_bytes());
    }
    out
}

/// Reads the marker out of a control batch (`bytes` is the whole batch). A control batch that
/// is not a transaction marker (Kafka has others, e.g. for KRaft) yields `None`.
pub fn parse_marker(header: &BatchHeader, bytes: &[u8]) -> Result<Option<TxnMarker>> {
    if !header.is_control() {
        return Ok(None);
    }
    let corrupt = || LogError::corrupt(0, "malformed control record");
    let mut rest = bytes.get(HEADER_SIZE..).ok_or_else(corrupt)?;
    let _length = get_varint(&mut rest).ok_or_else(corrupt)?;
    let _attributes = take(&mut rest, 1).ok_or_else(corrupt)?;
    let _timestamp_delta = get_varint(&mut rest).ok_or_else(corrupt)?;
    let _offset_delta = get_varint(&mut rest).ok_or_else(corrupt)?;
    let key_len = get_varint(&mut rest).ok_or_else(corrupt)?;
    let key =
        take(&mut rest, usize::try_from(key_len).map_err(|_| corrupt())?).ok_or_else(corrupt)?;
    let kind = key
        .get(2..4)
        .and_then(|b| b.try_into().ok())
        .map(i16::from_be_bytes)
        .ok_or_else(corrupt)?;
    let commit = match kind {
        CONTROL_TYPE_ABORT => false,
        CONTROL_TYPE_COMMIT => true,
        _ => return Ok(None),
    };
    let value_len = get_varint(&mut rest).ok_or_else(corrupt)?;
    let value = take(
        &mut rest,
        usize::try_from(value_len).map_err(|_| corrupt())?,
    )
    .ok_or_else(corrupt)?;
    let coordinator_epoch = value
        .get(2..6)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_be_bytes)
        .ok_or_else(corrupt)?;
    Ok(Some(TxnMarker {
        commit,
        coordinator_epoch,
    }))
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let head = rest.get(..n)?;
    *rest = rest.get(n..)?;
    Some(head)
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    loop {
        if v < 0x80 {
            out.push(v as u8);
            return;
        }
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
}

fn get_varint(rest: &mut &[u8]) -> Option<i64> {
    let mut raw: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, tail) = rest.split_first()?;
        *rest = tail;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_batch_is_valid_and_round_trips() {
        for commit in [true, false] {
            let marker = TxnMarker {
                commit,
                coordinator_epoch: 7,
            };
            let bytes = build_marker_batch(42, 3, marker, 1_000);
            let header = batch::validate(&bytes, 0).expect("valid batch");
            assert!(header.is_control() && header.is_transactional());
            assert_eq!(header.producer_id, 42);
            assert_eq!(header.producer_epoch, 3);
            assert_eq!(header.records_count, 1);
            assert_eq!(parse_marker(&header, &bytes).expect("parse"), Some(marker));
        }
    }

    #[test]
    fn a_cut_control_record_is_an_error_not_a_panic() {
        let bytes = build_marker_batch(
            1,
            0,
            TxnMarker {
                commit: true,
                coordinator_epoch: 0,
            },
            5,
        );
        let header = BatchHeader::parse(&bytes).expect("header");
        // The last byte (the header count) is not needed to read the marker.
        for cut in HEADER_SIZE..bytes.len() - 1 {
            assert!(
                parse_marker(&header, &bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
}
