//! The records inside a RecordBatch v2, read one at a time without materialising them.
//!
//! The produce path never comes here for an ordinary topic: it is for the few checks Kafka's
//! `LogValidator` makes per record (a key on compacted topics, timestamps out of bounds), which
//! need each record's key length and timestamp delta. Records are parsed from a stream: a
//! compressed batch is decompressed as it is read and keys, values and headers are skipped,
//! never buffered, so memory stays at the codec's own state whatever the batch declares.
//!
//! Two bounds keep a hostile batch (a decompression bomb) cheap: the decompressed bytes may not
//! exceed a cap the caller chooses, and zstd frames may not ask for a window above
//! [`ZSTD_WINDOW_LOG_MAX`]. Kafka itself reads with `DefaultRecordBatch.streamingIterator`,
//! which allocates each record, and bounds nothing by default.
//!
//! Record layout (Kafka's `DefaultRecord`): `length varint | attributes i8 | timestampDelta
//! varlong | offsetDelta varint | keyLength varint | key | valueLength varint | value |
//! headerCount varint | (headerKeyLength varint | headerKey | headerValueLength varint |
//! headerValue)*`, every varint zig-zag encoded.

use std::io::{self, Read};

use crate::batch::{BatchHeader, HEADER_SIZE};
use crate::error::{LogError, Result};

/// The largest zstd window accepted (2^24 = 16 MiB): every standard compression level (1–19)
/// stays below it; only `--ultra` levels 20–22 ask for more, and a frame may declare up to
/// 2^31 to make the decoder allocate that much.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// What a per-record check needs of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInfo {
    /// Position in the batch, from 0 (Kafka's `batchIndex` in record errors).
    pub index: i32,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    /// A key of length >= 0 (an empty key counts: Kafka's `Record.hasKey`).
    pub has_key: bool,
}

/// Reads every record of one complete, CRC-checked batch and hands each to `visit`, in order.
/// `max_decompressed_bytes` bounds what a compressed batch may expand to. A batch whose
/// records do not parse, whose count differs from its header's, or that does not decompress is
/// an INVALID_RECORD, as Kafka's record iterator reports them (`InvalidRecordException`).
pub fn for_each_record(
    batch: &[u8],
    header: &BatchHeader,
    max_decompressed_bytes: u64,
    mut visit: impl FnMut(RecordInfo),
) -> Result<()> {
    let body = batch.get(HEADER_SIZE..).unwrap_or_default();
    let invalid = |reason: String| LogError::invalid(0, reason);
    let stream = Stream::open(header.compression(), body, max_decompressed_bytes)
        .map_err(|e| invalid(format!("cannot decompress the records: {e}")))?;
    // Varints are read a byte at a time: buffer what the decoder hands out.
    let mut stream = io::BufReader::with_capacity(8 << 10, stream);
    for index in 0..header.records_count.max(0) {
        let record = read_record(&mut stream, index).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => invalid(format!(
                "incorrect declared batch size: {} records declared, the data ends in record {index}",
                header.records_count
            )),
            _ => invalid(format!("record {index}: {e}")),
        })?;
        visit(record);
    }
    let mut one = [0u8; 1];
    match stream.read(&mut one) {
        Ok(0) => Ok(()),
        Ok(_) => Err(invalid(format!(
            "incorrect declared batch size: data remains after {} records",
            header.records_count
        ))),
        Err(e) => Err(invalid(format!("after the last record: {e}"))),
    }
}

/// The records section as a byte stream: the slice itself, or a decoder over it that fails once
/// more than the cap has come out.
struct Stream<'a> {
    inner: Box<dyn Read + 'a>,
    /// Bytes the decoder may still produce; `None` for uncompressed data (already in memory).
    remaining: Option<u64>,
    cap: u64,
}

impl<'a> Stream<'a> {
    fn open(codec: i16, body: &'a [u8], cap: u64) -> io::Result<Stream<'a>> {
        let inner: Box<dyn Read + 'a> = match codec {
            0 => {
                return Ok(Stream {
                    inner: Box::new(body),
                    remaining: None,
                    cap,
                })
            }
            // Java's GZIPInputStream reads concatenated members; so does MultiGzDecoder.
            1 => Box::new(flate2::bufread::MultiGzDecoder::new(body)),
            2 => Box::new(Snappy::new(body, cap)),
            3 => Box::new(lz4::Decoder::new(body)?),
            4 => {
                let mut decoder = zstd::stream::read::Decoder::with_buffer(body)?;
                decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
                Box::new(decoder)
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unknown compression codec id {other}"),
                ))
            }
        };
        Ok(Stream {
            inner,
            remaining: Some(cap),
            cap,
        })
    }
}

impl Read for Stream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(remaining) = self.remaining else {
            return self.inner.read(buf);
        };
        // Ask for one byte more than allowed, so that reaching the cap exactly is fine and
        // going past it is seen.
        let want = buf
            .len()
            .min(usize::try_from(remaining.saturating_add(1)).unwrap_or(usize::MAX));
        let n = self.inner.read(buf.get_mut(..want).unwrap_or_default())?;
        if n as u64 > remaining {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("records decompress to more than {} bytes", self.cap),
            ));
        }
        self.remaining = Some(remaining - n as u64);
        Ok(n)
    }
}

/// The snappy framing Kafka's Java client writes (snappy-java's `SnappyOutputStream`: a 16-byte
/// header starting `\x82SNAPPY\0`, then blocks of `u32 compressed length | raw snappy`), or raw
/// snappy without the header, which snappy-java's reader also accepts. One block is decompressed
/// at a time, after its declared length has been checked against what the cap still allows.
struct Snappy<'a> {
    input: &'a [u8],
    /// Decided by the first bytes: `Some(true)` for snappy-java framing, `Some(false)` raw.
    framed: Option<bool>,
    block: Vec<u8>,
    at: usize,
    /// Decompressed bytes the cap still allows.
    allowance: u64,
}

const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\0";
const XERIAL_HEADER_LEN: usize = 16;

impl<'a> Snappy<'a> {
    fn new(input: &'a [u8], cap: u64) -> Snappy<'a> {
        Snappy {
            input,
            framed: None,
            block: Vec::new(),
            at: 0,
            allowance: cap,
        }
    }

    /// The next compressed block, `None` at the end.
    fn next_compressed(&mut self) -> io::Result<Option<&'a [u8]>> {
        let framed = *self
            .framed
            .get_or_insert_with(|| self.input.starts_with(XERIAL_MAGIC));
        if !framed {
            // Raw snappy: the whole input is one block.
            let all = std::mem::take(&mut self.input);
            return Ok((!all.is_empty()).then_some(all));
        }
        // snappy-java also reads streams concatenated header and all.
        while self.input.starts_with(XERIAL_MAGIC) {
            self.input = self.input.get(XERIAL_HEADER_LEN..).unwrap_or_default();
        }
        if self.input.is_empty() {
            return Ok(None);
        }
        let (len, rest) = self
            .input
            .split_first_chunk::<4>()
            .ok_or_else(|| bad("snappy block length cut short"))?;
        let len = u32::from_be_bytes(*len) as usize;
        let block = rest
            .get(..len)
            .ok_or_else(|| bad("snappy block shorter than its length"))?;
        self.input = rest.get(len..).unwrap_or_default();
        Ok(Some(block))
    }

    fn next_block(&mut self) -> io::Result<bool> {
        let Some(compressed) = self.next_compressed()? else {
            return Ok(false);
        };
        let size = snap::raw::decompress_len(compressed).map_err(|e| bad(&e.to_string()))?;
        if size as u64 > self.allowance {
            return Err(bad("snappy block decompresses past the cap"));
        }
        self.allowance -= size as u64;
        self.block.clear();
        self.block.resize(size, 0);
        snap::raw::Decoder::new()
            .decompress(compressed, &mut self.block)
            .map_err(|e| bad(&e.to_string()))?;
        self.at = 0;
        Ok(true)
    }
}

fn bad(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

impl Read for Snappy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at >= self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let available = self.block.get(self.at..).unwrap_or_default();
        let n = available.len().min(buf.len());
        buf.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(available.get(..n).unwrap_or_default());
        self.at += n;
        Ok(n)
    }
}

/// One record, its body bounded by its declared length.
fn read_record(stream: &mut impl Read, index: i32) -> io::Result<RecordInfo> {
    let length = read_varint(stream)?;
    let mut body = Body {
        stream,
        left: u64::try_from(length).map_err(|_| bad("negative record length"))?,
    };
    let mut attributes = [0u8; 1];
    body.read_exact(&mut attributes)?;
    let timestamp_delta = read_varlong(&mut body)?;
    let offset_delta = read_varint(&mut body)?;
    let key_length = read_varint(&mut body)?;
    body.skip_field(key_length)?;
    let value_length = read_varint(&mut body)?;
    body.skip_field(value_length)?;
    let headers = read_varint(&mut body)?;
    if headers < 0 {
        return Err(bad("negative number of record headers"));
    }
    for _ in 0..headers {
        let key = read_varint(&mut body)?;
        if key < 0 {
            return Err(bad("negative header key length"));
        }
        body.skip_field(key)?;
        let value = read_varint(&mut body)?;
        body.skip_field(value)?;
    }
    if body.left != 0 {
        return Err(bad(&format!(
            "record declares {length} bytes, {} of them unread",
            body.left
        )));
    }
    Ok(RecordInfo {
        index,
        timestamp_delta,
        offset_delta,
        has_key: key_length >= 0,
    })
}

/// The rest of one record: reads past its declared length fail.
struct Body<'s, S: Read> {
    stream: &'s mut S,
    left: u64,
}

impl<S: Read> Body<'_, S> {
    /// Skips a length-prefixed field (-1 is null: nothing follows).
    fn skip_field(&mut self, length: i32) -> io::Result<()> {
        let Ok(mut n) = u64::try_from(length) else {
            return Ok(());
        };
        if n > self.left {
            return Err(bad("field longer than its record"));
        }
        let mut scratch = [0u8; 512];
        while n > 0 {
            let chunk = scratch
                .get_mut(..usize::try_from(n).unwrap_or(usize::MAX).min(512))
                .unwrap_or_default();
            self.read_exact(chunk)?;
            n -= chunk.len() as u64;
        }
        Ok(())
    }
}

impl<S: Read> Read for Body<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 && !buf.is_empty() {
            return Err(bad("record fields run past its declared length"));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.stream.read(buf.get_mut(..want).unwrap_or_default())?;
        self.left -= n as u64;
        Ok(n)
    }
}

fn read_byte(stream: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    stream.read_exact(&mut b)?;
    Ok(b[0])
}

/// An unsigned LEB128 of at most `max_bytes` bytes (Kafka's `ByteUtils`: 5 for an int, 10 for a
/// long; longer is "Varint is too long").
fn read_unsigned(stream: &mut impl Read, max_bytes: u32) -> io::Result<u64> {
    let mut value = 0u64;
    for i in 0..max_bytes {
        let byte = read_byte(stream)?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(bad("varint is too long"))
}

fn read_varint(stream: &mut impl Read) -> io::Result<i32> {
    let raw = read_unsigned(stream, 5)? as u32;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

fn read_varlong(stream: &mut impl Read) -> io::Result<i64> {
    let raw = read_unsigned(stream, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::batch::{encode_test_records, validate, wrap_test_records, TestRecord};

    const CAP: u64 = 1 << 20;

    fn sample() -> Vec<TestRecord<'static>> {
        vec![
            TestRecord {
                key: Some(b"k0"),
                timestamp_delta: 0,
                value: b"first",
            },
            TestRecord {
                key: None,
                timestamp_delta: -7,
                value: b"keyless",
            },
            TestRecord {
                key: Some(b""),
                timestamp_delta: 300_000,
                value: &[b'x'; 2000],
            },
        ]
    }

    fn compress(codec: i16, data: &[u8]) -> Vec<u8> {
        match codec {
            0 => data.to_vec(),
            1 => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            2 => xerial(data, 1000),
            3 => {
                let mut e = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
                e.write_all(data).unwrap();
                let (out, result) = e.finish();
                result.unwrap();
                out
            }
            4 => zstd::encode_all(data, 3).unwrap(),
            _ => unreachable!(),
        }
    }

    /// snappy-java's framing, in blocks of `block` bytes.
    fn xerial(data: &[u8], block: usize) -> Vec<u8> {
        let mut out = b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01".to_vec();
        for chunk in data.chunks(block) {
            let compressed = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
            out.extend_from_slice(&compressed);
        }
        out
    }

    fn batch(codec: i16, records: &[TestRecord<'_>]) -> Vec<u8> {
        let section = compress(codec, &encode_test_records(records));
        wrap_test_records(1_000, 301_000, records.len() as i32, codec, &section)
    }

    fn walk(bytes: &[u8], cap: u64) -> Result<Vec<RecordInfo>> {
        let header = validate(bytes, 0).expect("a valid batch");
        let mut seen = Vec::new();
        for_each_record(bytes, &header, cap, |r| seen.push(r))?;
        Ok(seen)
    }

    #[test]
    fn every_codec_yields_each_records_key_presence_and_timestamp() {
        let expected: Vec<(i32, i64, bool)> =
            vec![(0, 0, true), (1, -7, false), (2, 300_000, true)];
        for codec in 0..=4 {
            let seen =
                walk(&batch(codec, &sample()), CAP).unwrap_or_else(|e| panic!("{codec}: {e}"));
            let got: Vec<_> = seen
                .iter()
                .map(|r| (r.index, r.timestamp_delta, r.has_key))
                .collect();
            assert_eq!(got, expected, "codec {codec}");
        }
    }

    #[test]
    fn raw_snappy_without_snappy_java_framing_is_read_too() {
        let section = snap::raw::Encoder::new()
            .compress_vec(&encode_test_records(&sample()))
            .unwrap();
        let bytes = wrap_test_records(1_000, 1_000, 3, 2, &section);
        assert_eq!(walk(&bytes, CAP).expect("raw snappy").len(), 3);
    }

    #[test]
    fn a_record_count_the_data_does_not_hold_is_an_invalid_record() {
        let section = encode_test_records(&sample());
        for (codec, count) in [(0, 4), (0, 2), (1, 4), (1, 2)] {
            let bytes = wrap_test_records(1_000, 1_000, count, codec, &compress(codec, &section));
            let err = walk(&bytes, CAP).expect_err("count");
            assert_eq!(
                err.kafka_error_code(),
                87,
                "codec {codec} count {count}: {err}"
            );
        }
    }

    #[test]
    fn a_stream_that_does_not_decompress_is_an_invalid_record() {
        for codec in 1..=4 {
            let bytes = wrap_test_records(1_000, 1_000, 1, codec, b"certainly not compressed");
            let err = walk(&bytes, CAP).expect_err("garbage");
            assert_eq!(err.kafka_error_code(), 87, "codec {codec}: {err}");
        }
    }

    /// A small batch that expands past the cap fails as soon as the cap is passed, with memory
    /// at the codec's state, never the expanded size.
    #[test]
    fn a_decompression_bomb_stops_at_the_cap() {
        let huge = TestRecord {
            key: Some(b"k"),
            timestamp_delta: 0,
            value: &[0u8; 4 << 20],
        };
        for codec in 1..=4 {
            let bytes = batch(codec, &[huge]);
            assert!(bytes.len() < 1 << 20, "codec {codec} compresses well");
            let err = walk(&bytes, 1 << 20).expect_err("bomb");
            assert_eq!(err.kafka_error_code(), 87, "codec {codec}: {err}");
            assert!(
                walk(&bytes, 8 << 20).is_ok(),
                "codec {codec} under a larger cap"
            );
        }
    }

    #[test]
    fn a_raw_snappy_length_past_the_cap_is_refused_before_allocating() {
        // varint 0xffffffff: a 4 GiB raw snappy block, then nothing.
        let bytes = wrap_test_records(1_000, 1_000, 1, 2, &[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(
            walk(&bytes, CAP).expect_err("length").kafka_error_code(),
            87
        );
    }

    #[test]
    fn a_zstd_frame_asking_for_a_window_above_the_limit_is_refused() {
        let data = encode_test_records(&sample());
        let with_window = |log: u32| {
            let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            encoder
                .set_parameter(zstd::zstd_safe::CParameter::WindowLog(log))
                .unwrap();
            encoder.write_all(&data).unwrap();
            wrap_test_records(1_000, 1_000, 3, 4, &encoder.finish().unwrap())
        };
        assert!(walk(&with_window(ZSTD_WINDOW_LOG_MAX), CAP).is_ok());
        let err = walk(&with_window(ZSTD_WINDOW_LOG_MAX + 3), CAP).expect_err("window");
        assert_eq!(err.kafka_error_code(), 87);
    }

    #[test]
    fn a_record_whose_fields_overrun_its_length_is_an_invalid_record() {
        let mut section = encode_test_records(&sample()[..1]);
        section[0] -= 2; // length varint of the first record: two bytes short
        let bytes = wrap_test_records(1_000, 1_000, 1, 0, &section);
        assert_eq!(
            walk(&bytes, CAP).expect_err("overrun").kafka_error_code(),
            87
        );
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::super::*;
        use crate::batch::{validate, wrap_test_records};

        proptest! {
            /// Whatever the records section holds, under any codec, reading it ends in records
            /// or an error, never a panic.
            #[test]
            fn reading_arbitrary_records_never_panics(
                codec in 0i16..=4,
                count in 0i32..5,
                section in proptest::collection::vec(any::<u8>(), 0..300),
            ) {
                let bytes = wrap_test_records(1_000, 1_000, count, codec, &section);
                let header = validate(&bytes, 0).expect("valid header and crc");
                let _ = for_each_record(&bytes, &header, 1 << 16, |_| {});
            }
        }
    }
}
