//! The metadata log's file format: an append-only file of checksummed, length-framed records.
//!
//! ```text
//! frame := length: u32 LE | crc32c(length LE ++ payload): u32 LE | payload: [u8; length]
//! ```
//!
//! The checksum covers the length, and a length of 0 is never written, so a zero-filled tail
//! (which some file systems leave after a crash) never reads as a frame.
//!
//! Appends are fsynced before they are acknowledged. On open, the file is read from the start and
//! cut back to the end of the last whole frame whose checksum matches: a crash mid-append leaves
//! a torn tail, and a torn tail was never acknowledged. A failed write or fsync poisons the file
//! (no retry: after a failed fsync the page cache state is unknown).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Frame header: length and checksum.
const HEADER_LEN: usize = 8;

/// Frames larger than this are treated as corruption (a metadata record is a few KiB at most;
/// a whole snapshot-sized entry stays far below).
pub(crate) const MAX_FRAME_LEN: usize = 64 * 1024 * 1024;

/// Appends one frame holding `payload` to `out`.
fn checksum(len: u32, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len.to_le_bytes()), payload)
}

pub(crate) fn encode_frame(payload: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    if payload.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty metadata record",
        ));
    }
    if payload.len() > MAX_FRAME_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("metadata record of {} bytes is too large", payload.len()),
        ));
    }
    let len = u32::try_from(payload.len()).map_err(io::Error::other)?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(len, payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Splits `buf` into the payloads of its valid frames, stopping at the first frame that is
/// incomplete or fails its checksum. Returns the payloads and the length of the valid prefix.
pub(crate) fn decode_frames(buf: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut frames = Vec::new();
    let mut pos = 0usize;
    while let Some(header) = buf.get(pos..pos + HEADER_LEN) {
        let mut len_bytes = [0u8; 4];
        let mut crc_bytes = [0u8; 4];
        len_bytes.copy_from_slice(&header[..4]);
        crc_bytes.copy_from_slice(&header[4..]);
        let len32 = u32::from_le_bytes(len_bytes);
        let len = len32 as usize;
        if len == 0 || len > MAX_FRAME_LEN {
            break;
        }
        let start = pos + HEADER_LEN;
        let Some(payload) = buf.get(start..start + len) else {
            break;
        };
        if checksum(len32, payload) != u32::from_le_bytes(crc_bytes) {
            break;
        }
        frames.push(payload);
        pos = start + len;
    }
    (frames, pos)
}

/// An open append-only frame file.
#[derive(Debug)]
pub(crate) struct WalFile {
    path: PathBuf,
    file: File,
    poisoned: bool,
}

/// What [`WalFile::open`] found.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) frames: Vec<Vec<u8>>,
    /// Bytes cut from a torn tail (0 for a clean file).
    pub(crate) truncated_bytes: u64,
}

impl WalFile {
    /// Opens (creating if needed) the file at `path`, returns every valid frame and truncates a
    /// torn tail.
    pub(crate) fn open(path: &Path) -> io::Result<(WalFile, Recovered)> {
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        if !existed {
            // Make the new file's directory entry durable.
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        let (frames, valid_len) = decode_frames(&buf);
        let frames: Vec<Vec<u8>> = frames.into_iter().map(<[u8]>::to_vec).collect();
        let truncated_bytes = (buf.len() - valid_len) as u64;
        if truncated_bytes > 0 {
            tracing::warn!(
                path = %path.display(),
                valid_len,
                truncated_bytes,
                "metadata log has a torn tail; truncating to the last whole record"
            );
            file.set_len(valid_len as u64)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::Start(valid_len as u64))?;
        Ok((
            WalFile {
                path: path.to_path_buf(),
                file,
                poisoned: false,
            },
            Recovered {
                frames,
                truncated_bytes,
            },
        ))
    }

    /// Appends `payloads` as frames and fsyncs. Blocking: call from a blocking thread.
    pub(crate) fn append(&mut self, payloads: &[Vec<u8>]) -> io::Result<()> {
        if self.poisoned {
            return Err(io::Error::other(format!(
                "metadata log {} is offline after an earlier write failure",
                self.path.display()
            )));
        }
        let mut buf = Vec::new();
        for payload in payloads {
            encode_frame(payload, &mut buf)?;
        }
        let result = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data());
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever is cut off or appended after whole frames, decoding returns a prefix of
        /// the frames written, and all of them when the cut falls after the last frame.
        #[test]
        fn decoding_returns_a_prefix_of_what_was_written(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..64), 0..8),
            cut in any::<prop::sample::Index>(),
            garbage in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let mut buf = Vec::new();
            let mut ends = vec![0usize];
            for p in &payloads {
                encode_frame(p, &mut buf).expect("encode");
                ends.push(buf.len());
            }
            let cut = cut.index(buf.len() + 1);
            let mut damaged = buf[..cut].to_vec();
            damaged.extend_from_slice(&garbage);
            let (frames, valid) = decode_frames(&damaged);
            // Never more than was written before the cut, never a frame that was not written.
            let whole = ends.iter().filter(|e| **e <= cut).count() - 1;
            prop_assert!(frames.len() >= whole);
            for (got, want) in frames.iter().zip(&payloads) {
                prop_assert_eq!(*got, want.as_slice());
            }
            prop_assert!(frames.len() <= payloads.len() + garbage.len() / HEADER_LEN);
            if garbage.is_empty() {
                prop_assert_eq!(frames.len(), whole);
                prop_assert_eq!(valid, ends[whole]);
            }
        }
    }

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        encode_frame(b"one", &mut buf).expect("encode");
        encode_frame(b"three", &mut buf).expect("encode");
        assert!(encode_frame(b"", &mut buf).is_err());
        let (frames, valid) = decode_frames(&buf);
        assert_eq!(frames, vec![&b"one"[..], &b"three"[..]]);
        assert_eq!(valid, buf.len());
    }

    #[test]
    fn a_zero_filled_tail_is_not_a_frame() {
        let mut buf = Vec::new();
        encode_frame(b"one", &mut buf).expect("encode");
        let valid_len = buf.len();
        buf.extend_from_slice(&[0u8; 4096]);
        let (frames, valid) = decode_frames(&buf);
        assert_eq!(frames, vec![&b"one"[..]]);
        assert_eq!(valid, valid_len);
    }

    #[test]
    fn decoding_stops_at_a_bad_checksum() {
        let mut buf = Vec::new();
        encode_frame(b"good", &mut buf).expect("encode");
        let good_len = buf.len();
        encode_frame(b"flipped", &mut buf).expect("encode");
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        encode_frame(b"after", &mut buf).expect("encode");
        let (frames, valid) = decode_frames(&buf);
        assert_eq!(frames, vec![&b"good"[..]]);
        assert_eq!(valid, good_len);
    }

    #[test]
    fn a_torn_tail_is_truncated_on_open_and_appends_continue() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wal");
        {
            let (mut wal, recovered) = WalFile::open(&path).expect("open");
            assert!(recovered.frames.is_empty());
            wal.append(&[b"a".to_vec(), b"bb".to_vec()])
                .expect("append");
        }
        let clean_len = std::fs::metadata(&path).expect("meta").len();
        // Every cut inside the third frame must leave exactly the first two.
        let mut third = Vec::new();
        encode_frame(b"ccc", &mut third).expect("encode");
        for cut in 1..third.len() {
            let mut bytes = std::fs::read(&path).expect("read");
            bytes.truncate(clean_len as usize);
            bytes.extend_from_slice(&third[..cut]);
            std::fs::write(&path, &bytes).expect("write");
            let (_, recovered) = WalFile::open(&path).expect("reopen");
            assert_eq!(
                recovered.frames,
                vec![b"a".to_vec(), b"bb".to_vec()],
                "cut {cut}"
            );
            assert_eq!(recovered.truncated_bytes, cut as u64);
            assert_eq!(std::fs::metadata(&path).expect("meta").len(), clean_len);
        }
        let (mut wal, _) = WalFile::open(&path).expect("reopen");
        wal.append(&[b"d".to_vec()])
            .expect("append after truncation");
        drop(wal);
        let (_, recovered) = WalFile::open(&path).expect("reopen");
        assert_eq!(
            recovered.frames,
            vec![b"a".to_vec(), b"bb".to_vec(), b"d".to_vec()]
        );
    }

    #[test]
    fn garbage_after_valid_frames_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wal");
        let mut bytes = Vec::new();
        encode_frame(b"kept", &mut bytes).expect("encode");
        bytes.extend_from_slice(&[0xff; 64]);
        std::fs::write(&path, &bytes).expect("write");
        let (_, recovered) = WalFile::open(&path).expect("open");
        assert_eq!(recovered.frames, vec![b"kept".to_vec()]);
        assert_eq!(recovered.truncated_bytes, 64);
    }
}
