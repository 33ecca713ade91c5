//! RecordBatch v2 headers, read and patched in place.
//!
//! No records are decoded here: the 61-byte header and the CRC32C are validated, and
//! `baseOffset` and `partitionLeaderEpoch` (neither is covered by the CRC) rewritten. (The few
//! rules Kafka checks per record, for compacted topics and out-of-bounds timestamps, are in
//! `record_rules`.) Layout, from Kafka's `DefaultRecordBatch`:
//!
//! ```text
//! baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 | crc u32 |
//! attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
//! producerId i64 | producerEpoch i16 | baseSequence i32 | recordsCount i32 | records...
//! ```

use crate::error::{LogError, Result};

pub const HEADER_SIZE: usize = 61;
/// `baseOffset` + `batchLength`: the bytes in front of what `batchLength` counts.
pub const LOG_OVERHEAD: usize = 12;
pub const MAGIC_V2: i8 = 2;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// The decoded fixed header of one batch. Plain data; cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

// Callers check `bytes.len() >= HEADER_SIZE` and pass fixed field offsets below it.
#[allow(clippy::indexing_slicing)]
fn be_i64(bytes: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(b)
}
#[allow(clippy::indexing_slicing)]
fn be_i32(bytes: &[u8], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    i32::from_be_bytes(b)
}
#[allow(clippy::indexing_slicing)]
fn be_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([bytes[at], bytes[at + 1]])
}

impl BatchHeader {
    /// Reads the header from the first [`HEADER_SIZE`] bytes; `None` if there are fewer.
    #[allow(clippy::indexing_slicing)] // every index below is < HEADER_SIZE, checked first
    pub fn parse(bytes: &[u8]) -> Option<BatchHeader> {
        if bytes.len() < HEADER_SIZE {
            return None;
        }
        Some(BatchHeader {
            base_offset: be_i64(bytes, BASE_OFFSET),
            batch_length: be_i32(bytes, BATCH_LENGTH),
            partition_leader_epoch: be_i32(bytes, PARTITION_LEADER_EPOCH),
            magic: bytes[MAGIC] as i8,
            crc: be_i32(bytes, CRC) as u32,
            attributes: be_i16(bytes, ATTRIBUTES),
            last_offset_delta: be_i32(bytes, LAST_OFFSET_DELTA),
            base_timestamp: be_i64(bytes, BASE_TIMESTAMP),
            max_timestamp: be_i64(bytes, MAX_TIMESTAMP),
            producer_id: be_i64(bytes, PRODUCER_ID),
            producer_epoch: be_i16(bytes, PRODUCER_EPOCH),
            base_sequence: be_i32(bytes, BASE_SEQUENCE),
            records_count: be_i32(bytes, RECORDS_COUNT),
        })
    }

    /// Size of the whole batch on disk, header included.
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// The checks a header alone allows: magic, a length that covers the header, a sane offset
    /// range and record count. `position` is only for the error message.
    pub fn check_shape(&self, position: usize) -> Result<()> {
        check_magic(self.magic, position)?;
        if (self.batch_length as i64) < (HEADER_SIZE - LOG_OVERHEAD) as i64 {
            return Err(LogError::corrupt(
                position,
                format!(
                    "batch length {} is shorter than a v2 header",
                    self.batch_length
                ),
            ));
        }
        if self.last_offset_delta < 0 {
            return Err(LogError::invalid(
                position,
                format!("negative lastOffsetDelta {}", self.last_offset_delta),
            ));
        }
        if self.records_count < 0 {
            return Err(LogError::invalid(
                position,
                format!("negative record count {}", self.records_count),
            ));
        }
        Ok(())
    }
}

/// CRC32C over `attributes..end` of one complete batch.
#[allow(clippy::indexing_slicing)] // callers pass a complete batch, so len >= HEADER_SIZE
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES..])
}

/// Validates one complete batch (exactly its bytes): shape and CRC.
pub fn validate(batch: &[u8], position: usize) -> Result<BatchHeader> {
    let Some(header) = BatchHeader::parse(batch) else {
        // Kafka reads the magic first: a short legacy message set is INVALID_RECORD, a short v2
        // batch fails `DefaultRecordBatch.isValid` (CORRUPT_MESSAGE).
        check_magic(batch.get(MAGIC).map_or(-1, |&m| m as i8), position)?;
        return Err(LogError::corrupt(
            position,
            format!("{} bytes are shorter than a v2 batch header", batch.len()),
        ));
    };
    header.check_shape(position)?;
    if header.size() != batch.len() {
        return Err(LogError::corrupt(
            position,
            format!(
                "declared size {} but {} bytes present",
                header.size(),
                batch.len()
            ),
        ));
    }
    let actual = compute_crc(batch);
    if actual != header.crc {
        return Err(LogError::corrupt(
            position,
            format!(
                "CRC mismatch: stored {:#010x}, computed {:#010x}",
                header.crc, actual
            ),
        ));
    }
    Ok(header)
}

/// Kafka's `LegacyRecord.RECORD_OVERHEAD_V0`: the smallest `batchLength` of any message format.
/// Kafka's batch iterator (`ByteBufferLogInputStream.nextBatch`) calls a shorter length corrupt
/// before it looks at anything else.
const MIN_BATCH_LENGTH: i32 = 14;

/// Magic bytes Kafka's iterator knows (0, 1 and 2); anything else is corrupt framing.
const MAX_KNOWN_MAGIC: i8 = MAGIC_V2;

/// Kafka's classification of a magic byte: outside 0..=2 the bytes are not a batch of any format
/// (`ByteBufferLogInputStream`: CorruptRecordException, CORRUPT_MESSAGE); 0 and 1 are legacy
/// message sets, which Produce v3+ may not carry (`ProduceRequest.validateRecords`:
/// InvalidRecordException, INVALID_RECORD).
fn check_magic(magic: i8, position: usize) -> Result<()> {
    if !(0..=MAX_KNOWN_MAGIC).contains(&magic) {
        return Err(LogError::corrupt(
            position,
            format!("invalid magic {magic}"),
        ));
    }
    if magic != MAGIC_V2 {
        return Err(LogError::invalid(
            position,
            format!("unsupported magic {magic} (only v2 batches are accepted)"),
        ));
    }
    Ok(())
}

/// The next complete batch at the front of `rest` as Kafka's batch iterator frames it
/// (`ByteBufferLogInputStream.nextBatch`): `None` when `rest` holds no complete batch (fewer than
/// 12 bytes, or fewer than its `batchLength` declares: the iterator simply ends there), a
/// CORRUPT_MESSAGE when the length is below any format's minimum or the magic is unknown.
/// Nothing past the length and magic is checked here.
fn next_batch(rest: &[u8], position: usize) -> Result<Option<&[u8]>> {
    let Some(length) = rest.get(BATCH_LENGTH..LOG_OVERHEAD) else {
        return Ok(None);
    };
    let length = be_i32(length, 0);
    if length < MIN_BATCH_LENGTH {
        return Err(LogError::corrupt(
            position,
            format!(
                "batch length {length} is less than the minimum record overhead {MIN_BATCH_LENGTH}"
            ),
        ));
    }
    let Some(batch) = rest.get(..LOG_OVERHEAD + length as usize) else {
        return Ok(None);
    };
    // MIN_BATCH_LENGTH covers the magic byte.
    let magic = batch.get(MAGIC).map_or(-1, |&m| m as i8);
    if !(0..=MAX_KNOWN_MAGIC).contains(&magic) {
        return Err(LogError::corrupt(
            position,
            format!("invalid magic {magic}"),
        ));
    }
    Ok(Some(batch))
}

/// Kafka's `ProduceRequest.validateRecords` for Produce v3+, which the broker applies to each
/// partition's records before the log sees them: at least one complete batch, of magic 2, and no
/// second complete batch. Bytes after the first batch that do not form a complete batch are not
/// looked at here (Kafka's iterator ends there); the log rejects them.
pub fn check_produce_framing(bytes: &[u8]) -> Result<()> {
    let first = next_batch(bytes, 0)?.ok_or_else(|| {
        LogError::invalid(
            0,
            format!("{} bytes hold no complete record batch", bytes.len()),
        )
    })?;
    check_magic(first.get(MAGIC).map_or(-1, |&m| m as i8), 0)?;
    let rest = bytes.get(first.len()..).unwrap_or_default();
    if next_batch(rest, first.len())?.is_some() {
        return Err(LogError::invalid(
            first.len(),
            "a produce carries more than one batch for one partition; v2 allows one",
        ));
    }
    Ok(())
}

/// Splits a buffer of concatenated batches into `(position, header)`, validating each
/// completely. Fails on the first bad batch; a buffer with no complete batch is invalid (Kafka:
/// "no batches"), and so are bytes after the last batch that do not form one (Kafka's iterator
/// would drop them; the log refuses to store what it cannot frame).
pub fn validate_all(bytes: &[u8]) -> Result<Vec<(usize, BatchHeader)>> {
    let mut out = Vec::new();
    let mut position = 0usize;
    while position < bytes.len() {
        let rest = bytes.get(position..).unwrap_or_default();
        let Some(batch) = next_batch(rest, position)? else {
            let reason = match BatchHeader::parse(rest) {
                Some(header) => format!(
                    "batch declares {} bytes but only {} remain",
                    header.size(),
                    rest.len()
                ),
                None => format!("{} trailing bytes are not a record batch", rest.len()),
            };
            return Err(LogError::invalid(position, reason));
        };
        let header = validate(batch, position)?;
        out.push((position, header));
        position += batch.len();
    }
    if out.is_empty() {
        return Err(LogError::invalid(0, "append contains no record batches"));
    }
    Ok(out)
}

/// Highest compression codec id Kafka knows (none, gzip, snappy, lz4, zstd).
pub const MAX_COMPRESSION_CODEC: i16 = 4;

/// Kafka's checks for batches written by a producer (`LogValidator` with `AppendOrigin.CLIENT`),
/// each an INVALID_RECORD: one batch per partition, base offset 0, at least one record, no
/// control batch, a known codec, and a sequence number when there is a producer id.
pub fn check_client_rules(batches: &[(usize, BatchHeader)]) -> Result<()> {
    if batches.len() > 1 {
        return Err(LogError::invalid(
            0,
            format!(
                "a produce carries {} batches for one partition; v2 allows one",
                batches.len()
            ),
        ));
    }
    for (position, header) in batches {
        let reason = if header.base_offset != 0 {
            format!(
                "client batch baseOffset must be 0, not {}",
                header.base_offset
            )
        } else if header.records_count <= 0 {
            format!("invalid record count {}", header.records_count)
        } else if header.is_control() {
            "clients are not allowed to write control records".to_string()
        } else if header.compression() > MAX_COMPRESSION_CODEC {
            format!("unknown compression codec id {}", header.compression())
        } else if header.producer_id >= 0 && header.base_sequence < 0 {
            format!(
                "invalid sequence number {} for producer {}",
                header.base_sequence, header.producer_id
            )
        } else {
            continue;
        };
        return Err(LogError::invalid(*position, reason));
    }
    Ok(())
}

/// Recomputes and stores the CRC of a complete batch whose covered bytes were edited.
#[allow(clippy::indexing_slicing)] // callers pass a complete batch (len >= HEADER_SIZE)
pub fn rewrite_crc(batch: &mut [u8]) {
    let crc = compute_crc(batch);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// The header the log writes in front of a producer's batch: `batch`'s first
/// [`HEADER_SIZE`] bytes with `baseOffset` and `partitionLeaderEpoch` assigned (neither is
/// covered by the CRC) and, for a `LogAppendTime` topic, the timestamp-type bit and
/// `maxTimestamp` set to `log_append_time` with the CRC recomputed over the new header and the
/// batch's unchanged records (Kafka's `LogValidator` does the same). The records themselves are
/// never copied: the log writes this header and `batch[HEADER_SIZE..]` in one vectored write.
#[allow(clippy::indexing_slicing)] // callers pass a validated batch (len >= HEADER_SIZE)
pub fn assigned_header(
    batch: &[u8],
    base_offset: i64,
    leader_epoch: i32,
    log_append_time: Option<i64>,
) -> [u8; HEADER_SIZE] {
    let mut header = [0u8; HEADER_SIZE];
    header.copy_from_slice(&batch[..HEADER_SIZE]);
    header[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    header[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4]
        .copy_from_slice(&leader_epoch.to_be_bytes());
    if let Some(now_ms) = log_append_time {
        let attributes = be_i16(&header, ATTRIBUTES) | TIMESTAMP_TYPE_BIT;
        header[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        header[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
        let crc =
            crc32c::crc32c_append(crc32c::crc32c(&header[ATTRIBUTES..]), &batch[HEADER_SIZE..]);
        header[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
    header
}

/// Builds an uncompressed batch of `values` (no keys, no headers) for tests and benches.
/// Records use Kafka's v2 record encoding with zig-zag varints.
pub fn build_test_batch(base_timestamp: i64, values: &[&[u8]]) -> Vec<u8> {
    let records: Vec<TestRecord<'_>> = values
        .iter()
        .map(|value| TestRecord {
            key: None,
            timestamp_delta: 0,
            value,
        })
        .collect();
    build_test_batch_of(base_timestamp, &records)
}

/// One record for [`build_test_batch_of`].
#[derive(Debug, Clone, Copy)]
pub struct TestRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub timestamp_delta: i64,
    pub value: &'a [u8],
}

/// Builds an uncompressed batch of `records` (keys optional, no headers) for tests and benches;
/// `maxTimestamp` is the largest record timestamp.
pub fn build_test_batch_of(base_timestamp: i64, records: &[TestRecord<'_>]) -> Vec<u8> {
    let max_delta = records.iter().map(|r| r.timestamp_delta).max().unwrap_or(0);
    wrap_test_records(
        base_timestamp,
        base_timestamp + max_delta,
        records.len() as i32,
        0,
        &encode_test_records(records),
    )
}

/// The records section of a batch (what follows the header, before compression).
pub fn encode_test_records(records: &[TestRecord<'_>]) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, value: i64) {
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
    let mut out = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let mut body = vec![0u8]; // attributes
        varint(&mut body, record.timestamp_delta);
        varint(&mut body, i as i64); // offset delta
        match record.key {
            Some(key) => {
                varint(&mut body, key.len() as i64);
                body.extend_from_slice(key);
            }
            None => varint(&mut body, -1),
        }
        varint(&mut body, record.value.len() as i64);
        body.extend_from_slice(record.value);
        varint(&mut body, 0); // no headers
        varint(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
    }
    out
}

/// A v2 batch around an (already compressed, if `attributes` says so) records section.
#[allow(clippy::indexing_slicing)] // the buffer is built here, longer than the header
pub fn wrap_test_records(
    base_timestamp: i64,
    max_timestamp: i64,
    count: i32,
    attributes: i16,
    records: &[u8],
) -> Vec<u8> {
    let mut batch = Vec::with_capacity(HEADER_SIZE + records.len());
    batch.extend_from_slice(&0i64.to_be_bytes());
    batch.extend_from_slice(&((HEADER_SIZE - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes());
    batch.push(MAGIC_V2 as u8);
    batch.extend_from_slice(&0u32.to_be_bytes());
    batch.extend_from_slice(&attributes.to_be_bytes());
    batch.extend_from_slice(&(count - 1).max(0).to_be_bytes());
    batch.extend_from_slice(&base_timestamp.to_be_bytes());
    batch.extend_from_slice(&max_timestamp.to_be_bytes());
    batch.extend_from_slice(&(-1i64).to_be_bytes());
    batch.extend_from_slice(&(-1i16).to_be_bytes());
    batch.extend_from_slice(&(-1i32).to_be_bytes());
    batch.extend_from_slice(&count.to_be_bytes());
    batch.extend_from_slice(records);
    let crc = compute_crc(&batch);
    batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_batch_validates_and_reports_its_shape() {
        let batch = build_test_batch(1_000, &[b"a", b"bc", b"def"]);
        let header = validate(&batch, 0).expect("valid");
        assert_eq!(header.records_count, 3);
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(header.size(), batch.len());
        assert_eq!(header.max_timestamp, 1_000);
    }

    /// The batch as the log writes it: the assigned header, then the producer's records.
    fn with_header(batch: &[u8], header: [u8; HEADER_SIZE]) -> Vec<u8> {
        [&header[..], &batch[HEADER_SIZE..]].concat()
    }

    #[test]
    fn assigning_offsets_keeps_the_crc_valid() {
        let batch = build_test_batch(5, &[b"x"]);
        let written = with_header(&batch, assigned_header(&batch, 42, 7, None));
        let header = validate(&written, 0).expect("still valid");
        assert_eq!(header.base_offset, 42);
        assert_eq!(header.partition_leader_epoch, 7);
        assert_eq!(
            header.max_timestamp,
            BatchHeader::parse(&batch).unwrap().max_timestamp
        );
        assert_eq!(written[HEADER_SIZE..], batch[HEADER_SIZE..]);
    }

    #[test]
    fn log_append_time_rewrites_max_timestamp_and_crc() {
        let batch = build_test_batch(5, &[b"hello", b"world"]);
        let written = with_header(&batch, assigned_header(&batch, 42, 7, Some(99)));
        let header = validate(&written, 0).expect("crc recomputed");
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp, 99);
        assert_eq!(header.base_offset, 42);
    }

    #[test]
    fn any_flipped_bit_after_the_crc_field_is_detected() {
        let batch = build_test_batch(5, &[b"hello", b"world"]);
        for byte in ATTRIBUTES..batch.len() {
            let mut bad = batch.clone();
            bad[byte] ^= 0x10;
            assert!(
                validate(&bad, 0).is_err(),
                "flip at byte {byte} went unnoticed"
            );
        }
    }

    #[test]
    fn truncated_and_empty_buffers_are_rejected() {
        let batch = build_test_batch(5, &[b"hello"]);
        for cut in 0..batch.len() {
            let err = validate_all(&batch[..cut]).expect_err("must fail");
            assert!(matches!(
                err,
                LogError::Corrupt { .. } | LogError::InvalidRecord { .. }
            ));
        }
    }

    /// The code both the log's validation and the produce framing check answer for `magic`.
    fn codes_for_magic(magic: u8) -> (i16, i16) {
        let mut batch = build_test_batch(5, &[b"hello"]);
        batch[MAGIC] = magic;
        let validated = validate_all(&batch).expect_err("magic").kafka_error_code();
        let framed = check_produce_framing(&batch)
            .expect_err("magic")
            .kafka_error_code();
        (validated, framed)
    }

    #[test]
    fn legacy_magic_is_an_invalid_record() {
        assert_eq!(codes_for_magic(1), (87, 87));
    }

    #[test]
    fn unknown_magic_is_corrupt_as_kafkas_batch_iterator_says() {
        for magic in [3u8, 0x80] {
            assert_eq!(codes_for_magic(magic), (2, 2));
        }
    }

    /// A magic-1 message set of one message is shorter than a v2 header: still the magic
    /// decides (INVALID_RECORD), as in Kafka, not the length.
    #[test]
    fn a_short_legacy_message_set_is_an_invalid_record() {
        let mut set = 0i64.to_be_bytes().to_vec();
        set.extend_from_slice(&23i32.to_be_bytes());
        set.extend_from_slice(&[0; 4]); // crc
        set.push(1); // magic
        set.extend_from_slice(&[0; 18]);
        assert_eq!(
            check_produce_framing(&set)
                .expect_err("v1")
                .kafka_error_code(),
            87
        );
        assert_eq!(validate_all(&set).expect_err("v1").kafka_error_code(), 87);
    }

    #[test]
    fn a_batch_cut_short_or_overlong_holds_no_batch_and_is_an_invalid_record() {
        let batch = build_test_batch(5, &[b"hello", b"world"]);
        let cut = &batch[..batch.len() - 5];
        assert_eq!(
            check_produce_framing(cut)
                .expect_err("cut")
                .kafka_error_code(),
            87
        );
        assert_eq!(validate_all(cut).expect_err("cut").kafka_error_code(), 87);
        let mut long = batch.clone();
        let declared = i32::from_be_bytes(long[8..12].try_into().expect("4 bytes")) + 100;
        long[8..12].copy_from_slice(&declared.to_be_bytes());
        assert_eq!(
            check_produce_framing(&long)
                .expect_err("long")
                .kafka_error_code(),
            87
        );
        assert_eq!(
            validate_all(&long).expect_err("long").kafka_error_code(),
            87
        );
    }

    #[test]
    fn a_length_below_any_format_minimum_is_corrupt() {
        let mut batch = build_test_batch(5, &[b"hello"]);
        batch[8..12].copy_from_slice(&13i32.to_be_bytes());
        assert_eq!(
            check_produce_framing(&batch)
                .expect_err("short")
                .kafka_error_code(),
            2
        );
        assert_eq!(
            validate_all(&batch).expect_err("short").kafka_error_code(),
            2
        );
    }

    /// A complete v2 batch shorter than its 61-byte header fails Kafka's
    /// `DefaultRecordBatch.isValid`: CORRUPT_MESSAGE.
    #[test]
    fn a_v2_batch_shorter_than_its_header_is_corrupt() {
        let mut batch = build_test_batch(5, &[b"hello"]);
        batch.truncate(40);
        batch[8..12].copy_from_slice(&28i32.to_be_bytes());
        assert!(check_produce_framing(&batch).is_ok());
        assert_eq!(
            validate_all(&batch)
                .expect_err("short v2")
                .kafka_error_code(),
            2
        );
    }

    #[test]
    fn produce_framing_allows_one_batch_only() {
        let one = build_test_batch(1, &[b"a"]);
        assert!(check_produce_framing(&one).is_ok());
        let mut two = one.clone();
        two.extend_from_slice(&one);
        assert_eq!(
            check_produce_framing(&two)
                .expect_err("two")
                .kafka_error_code(),
            87
        );
        // What follows the batch without forming one is the log's business, not framing's.
        let mut tail = one.clone();
        tail.extend_from_slice(&[0; 5]);
        assert!(check_produce_framing(&tail).is_ok());
        assert_eq!(
            validate_all(&tail).expect_err("tail").kafka_error_code(),
            87
        );
        assert!(check_produce_framing(&[]).is_err());
    }

    #[test]
    fn client_rules_follow_kafkas_log_validator() {
        let ok = build_test_batch(1, &[b"a"]);
        let rules = |bytes: &[u8]| check_client_rules(&validate_all(bytes).expect("well formed"));
        assert!(rules(&ok).is_ok());
        let mut two = ok.clone();
        two.extend_from_slice(&ok);
        assert_eq!(rules(&two).expect_err("two batches").kafka_error_code(), 87);
        let mut control = ok.clone();
        set_attributes(&mut control, CONTROL_BIT);
        assert_eq!(rules(&control).expect_err("control").kafka_error_code(), 87);
        let mut codec = ok.clone();
        set_attributes(&mut codec, 7);
        assert_eq!(rules(&codec).expect_err("codec 7").kafka_error_code(), 87);
        let offset = with_header(&ok, assigned_header(&ok, 5, 0, None));
        assert_eq!(
            rules(&offset).expect_err("base offset").kafka_error_code(),
            87
        );
    }

    fn set_attributes(batch: &mut [u8], attributes: i16) {
        batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        let crc = compute_crc(batch);
        batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn several_concatenated_batches_are_split() {
        let mut bytes = build_test_batch(1, &[b"a"]);
        bytes.extend(build_test_batch(2, &[b"b", b"c"]));
        let batches = validate_all(&bytes).expect("valid");
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[1].1.records_count, 2);
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a client sends, validation answers with a typed error or the batches;
        /// it never panics and never accepts bytes whose CRC does not match.
        #[test]
        fn validation_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(batches) = validate_all(&bytes) {
                for (position, header) in batches {
                    let batch = &bytes[position..position + header.size()];
                    prop_assert_eq!(compute_crc(batch), header.crc);
                }
            }
        }

        /// Mutating a valid batch anywhere is either detected or leaves a batch whose CRC
        /// still matches (only the fields outside the CRC can change undetected).
        #[test]
        fn mutations_of_a_valid_batch_are_caught(at in 0usize..100, xor in 1u8..=255) {
            let mut bytes = build_test_batch(7, &[b"key-less", b"values"]);
            let at = at % bytes.len();
            bytes[at] ^= xor;
            let outside_crc = at < 17 && at != 16 && !(8..12).contains(&at);
            prop_assert_eq!(validate_all(&bytes).is_ok(), outside_crc, "byte {}", at);
        }
    }
}
