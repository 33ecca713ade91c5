// HOT PATH: append and read of every produce and fetch pass through here. No per-record
// allocation, no logging at info, no fsync except in `flush`.
//! One segment: a `.log` file of RecordBatch v2 bytes starting at `base_offset`, plus its
//! `.index` and `.timeindex`. File names are the base offset in 20 digits, as in Kafka.

use std::fs::File;
use std::io::{BufReader, IoSlice, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{self, BatchHeader, HEADER_SIZE};
use crate::error::{LogError, Result};
use crate::fs::{self, FileCache, FileKey, Wait};
use crate::index::{Entry, OffsetEntry, OffsetIndex, SparseIndex, TimeEntry, TimeIndex};
use crate::page_cache;

/// The most batch headers a [`Wait::Never`] find reads, one syscall each. Index entries are
/// `index.interval.bytes` (4 KiB by default) apart, so a find reads up to about 60 headers of
/// the smallest (single-record) batches; an index made sparse by a large interval could have it
/// read thousands on an async runtime's thread. Beyond this the read goes to a thread that may
/// wait.
pub(crate) const IN_MEMORY_SCAN_HEADERS: usize = 128;

pub fn file_name(base_offset: i64, extension: &str) -> String {
    format!("{base_offset:020}.{extension}")
}

/// How a segment indexes itself (`segment.index.bytes`, `index.interval.bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSettings {
    pub max_bytes: u64,
    pub interval_bytes: u64,
}

/// What a full scan of a segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOutcome {
    /// Bytes of valid batches from the start of the file.
    pub valid_bytes: u64,
    /// Bytes after the first invalid batch (dropped when truncating).
    pub invalid_bytes: u64,
    /// Why the scan stopped early, if it did.
    pub stopped_because: Option<String>,
    pub batches: u64,
}

#[derive(Debug)]
pub struct Segment {
    pub base_offset: i64,
    log_path: PathBuf,
    log_key: FileKey,
    /// Bytes of the `.log` that belong to the log; the file is never longer after recovery.
    size: u64,
    /// Bytes whose writeback has been started (or that were on disk when the segment opened).
    written_back: u64,
    /// The offset after the last batch here (`base_offset` while empty).
    next_offset: i64,
    /// `None` until first needed: an idle segment costs no index memory.
    offset_index: Option<OffsetIndex>,
    time_index: Option<TimeIndex>,
    index: IndexSettings,
    bytes_since_last_index_entry: u64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    /// Wall-clock time of the first append, for `segment.ms` when the first batch carries no
    /// timestamp (Kafka's segment `created` time).
    pub first_append_ms: Option<i64>,
    /// `maxTimestamp` of the first batch (Kafka's `rollingBasedTimestamp`); `None` until known:
    /// read from the file on first use after an open or a truncation.
    first_batch_timestamp: Option<i64>,
}

impl Segment {
    /// Creates a new, empty segment file, with disk blocks reserved for its first `preallocate`
    /// bytes if given. The caller fsyncs the directory.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        index: IndexSettings,
        preallocate: Option<u64>,
    ) -> Result<Segment> {
        let log_path = dir.join(file_name(base_offset, "log"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&log_path)
            .map_err(|e| LogError::io("create segment", &log_path, e))?;
        if let Some(bytes) = preallocate {
            fs::preallocate(&file, &log_path, bytes);
        }
        Ok(Segment {
            base_offset,
            log_path,
            log_key: fs::new_file_key(),
            size: 0,
            written_back: 0,
            next_offset: base_offset,
            offset_index: Some(OffsetIndex::new(index.max_bytes)),
            time_index: Some(TimeIndex::new(index.max_bytes)),
            index,
            bytes_since_last_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            first_append_ms: None,
            first_batch_timestamp: None,
        })
    }

    /// An existing segment whose contents are not yet known; `recover` or `open_trusted` follows.
    pub fn existing(log_path: PathBuf, base_offset: i64, index: IndexSettings) -> Result<Segment> {
        let size = std::fs::metadata(&log_path)
            .map_err(|e| LogError::io("stat segment", &log_path, e))?
            .len();
        Ok(Segment {
            base_offset,
            log_path,
            log_key: fs::new_file_key(),
            size,
            written_back: size,
            next_offset: base_offset,
            offset_index: None,
            time_index: None,
            index,
            bytes_since_last_index_entry: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            first_append_ms: None,
            first_batch_timestamp: None,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    pub fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    fn index_path(&self) -> PathBuf {
        fs::sibling(&self.log_path, "index")
    }

    fn time_index_path(&self) -> PathBuf {
        fs::sibling(&self.log_path, "timeindex")
    }

    pub fn file(&self, cache: &FileCache) -> Result<Arc<File>> {
        cache.get(self.log_key, &self.log_path)
    }

    /// [`Segment::file`]; with [`Wait::Never`] only if it is open already.
    pub fn file_with(&self, cache: &FileCache, wait: Wait) -> Result<Arc<File>> {
        match wait {
            Wait::Allowed => self.file(cache),
            Wait::Never => cache.get_cached(self.log_key).ok_or(LogError::WouldBlock),
        }
    }

    /// Whether `extra_bytes` more (in `extra_batches` batches) still fit under the limits.
    pub fn has_room_for(&self, extra_bytes: u64, last_offset: i64, segment_bytes: u64) -> bool {
        if self.size == 0 {
            return last_offset - self.base_offset <= i64::from(i32::MAX);
        }
        let index_room = self.offset_index.as_ref().map_or(usize::MAX, |i| i.room());
        let time_room = self.time_index.as_ref().map_or(usize::MAX, |i| i.room());
        self.size + extra_bytes <= segment_bytes
            && last_offset - self.base_offset <= i64::from(i32::MAX)
            && index_room > 1
            && time_room > 1
    }

    /// Writes already-validated batches at the end of the segment, each as its assigned header
    /// followed by the rest of its bytes in `bytes`, and indexes them. On a write error the file
    /// is cut back so the segment stays as it was.
    pub fn append(
        &mut self,
        cache: &FileCache,
        bytes: &[u8],
        batches: &[AssignedBatch],
        now_ms: i64,
    ) -> Result<()> {
        let file = self.file(cache)?;
        let written = match write_assigned(&file, bytes, batches, self.size) {
            Ok(written) => written,
            Err(e) => {
                // Best effort: remove a partial write so recovery never sees half a batch we
                // refused.
                let _ = file.set_len(self.size);
                return Err(LogError::io("append to", &self.log_path, e));
            }
        };
        self.load_indexes(cache)?;
        let start = self.size;
        if start == 0 {
            self.first_batch_timestamp = batches.first().map(|b| b.header.max_timestamp);
        }
        for b in batches {
            self.index_batch(start + b.position as u64, &b.header);
        }
        self.size += written;
        self.first_append_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// Once `chunk` or more bytes lie between the last call's end and `lag` (a power of two)
    /// behind the end, the range of them to start writing back, ending on a multiple of `lag`;
    /// the segment then counts them as written back. The lag keeps appends off the pages being
    /// written: a page dirtied again while under writeback would be skipped and stay dirty. A
    /// `sealed` segment (no longer appended to) gives all it has left.
    pub fn writeback_due(&mut self, chunk: u64, lag: u64, sealed: bool) -> Option<(u64, u64)> {
        let from = self.written_back.min(self.size);
        let to = if sealed {
            self.size
        } else {
            self.size.saturating_sub(lag) & !(lag - 1)
        };
        if to <= from || (!sealed && to < from.saturating_add(chunk)) {
            return None;
        }
        self.written_back = to;
        Some((from, to))
    }

    fn index_batch(&mut self, position: u64, header: &BatchHeader) {
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.base_offset;
        }
        if self.bytes_since_last_index_entry > self.index.interval_bytes {
            let relative = (header.last_offset() - self.base_offset) as u32;
            if let Some(index) = self.offset_index.as_mut() {
                index.push(OffsetEntry {
                    relative_offset: relative,
                    position: position as u32,
                });
            }
            let rel_max = (self.offset_of_max_timestamp - self.base_offset) as u32;
            if let Some(index) = self.time_index.as_mut() {
                index.maybe_push(self.max_timestamp, rel_max);
            }
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += header.size() as u64;
        self.next_offset = header.next_offset();
    }

    /// Whether an append here reads nothing from disk: the indexes are loaded and the first
    /// batch's timestamp (for `segment.ms`) is known.
    pub fn appends_in_memory(&self) -> bool {
        self.indexes_in_memory() && (self.first_batch_timestamp.is_some() || self.size == 0)
    }

    /// Whether both indexes are loaded, so neither append nor find reads them from disk.
    fn indexes_in_memory(&self) -> bool {
        self.offset_index.is_some() && self.time_index.is_some()
    }

    /// Whether a read from `offset` starts within `window` bytes of the end with the indexes in
    /// memory: [`Segment::find_in`] then reads only headers near the end, which were written a
    /// moment ago.
    pub fn reads_in_memory(&self, offset: i64, window: u64) -> bool {
        // Both, or `find` loads them from disk.
        let (Some(index), Some(_)) = (&self.offset_index, &self.time_index) else {
            return false;
        };
        offset >= self.base_offset
            && u64::from(index.position_for(self.base_offset, offset)) + window >= self.size
    }

    /// The `maxTimestamp` of the segment's first batch, `None` while it is empty.
    pub fn first_batch_timestamp(&mut self, cache: &FileCache) -> Result<Option<i64>> {
        if self.first_batch_timestamp.is_none() && self.size > 0 {
            let file = self.file(cache)?;
            self.first_batch_timestamp = self.header_at(&file, 0)?.map(|h| h.max_timestamp);
        }
        Ok(self.first_batch_timestamp)
    }

    /// Reads the header of the batch at `position`, or `None` if fewer than a header's bytes
    /// of the segment remain there.
    pub fn header_at(&self, file: &File, position: u64) -> Result<Option<BatchHeader>> {
        self.header_at_with(file, position, Wait::Allowed)
    }

    fn header_at_with(
        &self,
        file: &File,
        position: u64,
        wait: Wait,
    ) -> Result<Option<BatchHeader>> {
        if position + HEADER_SIZE as u64 > self.size {
            return Ok(None);
        }
        let mut buf = [0u8; HEADER_SIZE];
        fs::read_exact_at_with(file, &self.log_path, &mut buf, position, wait)?;
        Ok(BatchHeader::parse(&buf))
    }

    /// The position and header of the batch that contains `offset` (or the first batch after
    /// it, for gaps), if any.
    pub fn find(&mut self, cache: &FileCache, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        let file = self.file(cache)?;
        self.find_in(cache, &file, offset, Wait::Allowed)
    }

    /// [`Segment::find`] in this segment's open `file`. With [`Wait::Never`] the indexes must
    /// be loaded (see [`Segment::reads_in_memory`]).
    pub fn find_in(
        &mut self,
        cache: &FileCache,
        file: &File,
        offset: i64,
        wait: Wait,
    ) -> Result<Option<(u64, BatchHeader)>> {
        if wait == Wait::Never && !self.indexes_in_memory() {
            return Err(LogError::WouldBlock);
        }
        self.load_indexes(cache)?;
        let mut position = self
            .offset_index
            .as_ref()
            .map_or(0, |i| u64::from(i.position_for(self.base_offset, offset)));
        let mut headers = 0;
        while let Some(header) = self.header_at_with(file, position, wait)? {
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            position += header.size() as u64;
            headers += 1;
            if wait == Wait::Never && headers >= IN_MEMORY_SCAN_HEADERS {
                return Err(LogError::WouldBlock);
            }
        }
        Ok(None)
    }

    /// Position of the first batch whose base offset is `>= offset` (the segment size if none)
    /// in this segment's open `file`: the end of what may be read below a bound such as the
    /// high watermark.
    pub fn position_of_bound(
        &mut self,
        cache: &FileCache,
        file: &File,
        offset: i64,
        wait: Wait,
    ) -> Result<u64> {
        if offset >= self.next_offset {
            return Ok(self.size);
        }
        Ok(match self.find_in(cache, file, offset, wait)? {
            Some((position, header)) if header.base_offset >= offset => position,
            Some((position, header)) => position + header.size() as u64,
            None => self.size,
        })
    }

    /// The bytes of the batch at `position`.
    pub fn read_batch(
        &self,
        cache: &FileCache,
        position: u64,
        header: &BatchHeader,
    ) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; header.size()];
        fs::read_exact_at(&*self.file(cache)?, &self.log_path, &mut buf, position)?;
        Ok(buf)
    }

    /// The first batch whose max timestamp is `>= timestamp`.
    pub fn find_by_timestamp(
        &mut self,
        cache: &FileCache,
        timestamp: i64,
    ) -> Result<Option<(u64, BatchHeader)>> {
        self.load_indexes(cache)?;
        let start_offset = self
            .time_index
            .as_ref()
            .and_then(|i| i.floor(timestamp, true))
            .map_or(self.base_offset, |e| {
                self.base_offset + i64::from(e.relative_offset)
            });
        let mut next = self.find(cache, start_offset)?;
        let file = self.file(cache)?;
        while let Some((position, header)) = next {
            if header.max_timestamp >= timestamp {
                return Ok(Some((position, header)));
            }
            let following = position + header.size() as u64;
            next = self.header_at(&file, following)?.map(|h| (following, h));
        }
        Ok(None)
    }

    /// Loads the index files if they are not in memory. A file that is missing, torn or
    /// inconsistent with the log is rebuilt by scanning the segment's headers.
    pub fn load_indexes(&mut self, cache: &FileCache) -> Result<()> {
        if self.offset_index.is_some() && self.time_index.is_some() {
            return Ok(());
        }
        let offset_index = read_file(&self.index_path())?
            .and_then(|b| OffsetIndex::from_file_bytes(&b, self.index.max_bytes))
            .filter(|i| i.is_consistent_with(self.size));
        let time_index = read_file(&self.time_index_path())?
            .and_then(|b| TimeIndex::from_file_bytes(&b, self.index.max_bytes));
        match (offset_index, time_index) {
            (Some(o), Some(t)) => {
                self.offset_index = Some(o);
                self.time_index = Some(t);
            }
            _ => {
                tracing::warn!(segment = %self.log_path.display(), "index missing or corrupt; rebuilding");
                self.rebuild_from_scan(cache, None, false)?;
                self.persist_indexes(true)?;
            }
        }
        Ok(())
    }

    /// Opens a trusted segment that is not the active one without loading its indexes (an idle
    /// partition then costs no index memory): its end is the next segment's base, and its max
    /// timestamp is the time index's last entry, sealed there when it stopped being active.
    /// Falls back to loading the indexes when the time index is missing or torn.
    pub fn open_inactive(&mut self, cache: &FileCache, next_base_offset: i64) -> Result<()> {
        let last_entry = read_file(&self.time_index_path())?.and_then(|bytes| {
            if bytes.is_empty() || !bytes.len().is_multiple_of(TimeEntry::SIZE) {
                return None;
            }
            bytes
                .get(bytes.len() - TimeEntry::SIZE..)
                .and_then(TimeEntry::decode)
        });
        match last_entry {
            Some(entry) => {
                self.max_timestamp = entry.timestamp;
                self.offset_of_max_timestamp = self.base_offset + i64::from(entry.relative_offset);
                self.next_offset = next_base_offset;
                Ok(())
            }
            None if self.size == 0 => {
                self.next_offset = next_base_offset;
                Ok(())
            }
            None => self.open_trusted(cache),
        }
    }

    /// Sets `next_offset`, max timestamp and (for the active segment) the indexing cursor
    /// after a clean open, reading only the tail past the last index entry.
    pub fn open_trusted(&mut self, cache: &FileCache) -> Result<()> {
        self.load_indexes(cache)?;
        let mut position = self
            .offset_index
            .as_ref()
            .and_then(|i| i.last())
            .map_or(0, |e| u64::from(e.position));
        let file = self.file(cache)?;
        let mut since_index = 0u64;
        while let Some(header) = self.header_at(&file, position)? {
            self.next_offset = header.next_offset();
            since_index += header.size() as u64;
            position += header.size() as u64;
            if header.max_timestamp > self.max_timestamp {
                self.max_timestamp = header.max_timestamp;
                self.offset_of_max_timestamp = header.base_offset;
            }
        }
        self.bytes_since_last_index_entry = since_index;
        if let Some(last) = self.time_index.as_ref().and_then(|t| t.last()) {
            if last.timestamp >= self.max_timestamp {
                self.max_timestamp = last.timestamp;
                self.offset_of_max_timestamp = self.base_offset + i64::from(last.relative_offset);
            }
        }
        Ok(())
    }

    /// Scans every batch from the start, rebuilding both indexes. Batches whose last offset is
    /// at or past `verify_from` have their CRC and offsets checked and the scan stops at the
    /// first invalid one (the caller decides whether to truncate there); the others, flushed
    /// before the recovery point was written, have only their headers read and checked, as
    /// Kafka trusts the segments below its recovery point without reading them. With
    /// `hand_back`, the bytes read are handed back to the kernel behind the scan (as
    /// `log.page.cache.tail.bytes` does behind appends), so a recovery reads into pages it just
    /// freed rather than new ones, which cost a host fault each on a VM that reclaims free
    /// memory. Never reads past the file or allocates more than the bytes the file has.
    pub fn rebuild_from_scan(
        &mut self,
        cache: &FileCache,
        verify_from: Option<i64>,
        hand_back: bool,
    ) -> Result<ScanOutcome> {
        let file = self.file(cache)?;
        let file_len = file
            .metadata()
            .map_err(|e| LogError::io("stat segment", &self.log_path, e))?
            .len();
        // Headers of trusted batches come through a small buffer (a header and the start of
        // the next few small batches per read); verified batches through a large one.
        let mut walker = BufReader::with_capacity(HEADER_WALK_BUFFER, &*file);
        let mut reader = BufReader::with_capacity(1 << 20, &*file);
        walker
            .seek(SeekFrom::Start(0))
            .map_err(|e| LogError::io("seek", &self.log_path, e))?;
        self.offset_index = Some(OffsetIndex::new(self.index.max_bytes));
        self.time_index = Some(TimeIndex::new(self.index.max_bytes));
        self.bytes_since_last_index_entry = 0;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = -1;
        self.next_offset = self.base_offset;
        let mut position = 0u64;
        let mut handed_back = 0u64;
        let mut batches = 0u64;
        // Offsets only grow, so once one batch is verified every later one is, and `reader`
        // is then positioned at `position`.
        let mut verifying = false;
        let mut buf = Vec::new();
        let stopped_because = loop {
            if hand_back && position - handed_back >= SCAN_HAND_BACK_BYTES {
                page_cache::hand_back(&file, handed_back, Some(position));
                handed_back = position;
            }
            if position == file_len {
                break None;
            }
            if position + HEADER_SIZE as u64 > file_len {
                break Some(format!(
                    "{} trailing bytes are not a batch",
                    file_len - position
                ));
            }
            let mut head = [0u8; HEADER_SIZE];
            let source = if verifying { &mut reader } else { &mut walker };
            source
                .read_exact(&mut head)
                .map_err(|e| LogError::io("read", &self.log_path, e))?;
            let Some(header) = BatchHeader::parse(&head) else {
                break Some("unreadable header".to_string());
            };
            if let Err(e) = header.check_shape(position as usize) {
                break Some(e.to_string());
            }
            let size = header.size() as u64;
            if position + size > file_len {
                break Some(format!(
                    "batch at {position} declares {size} bytes past the end"
                ));
            }
            if header.base_offset < self.next_offset
                || header.last_offset() - self.base_offset > i64::from(i32::MAX)
            {
                break Some(format!(
                    "batch at {position} has offset {} but {} was expected",
                    header.base_offset, self.next_offset
                ));
            }
            let body = size - HEADER_SIZE as u64;
            if !verifying && verify_from.is_some_and(|from| header.last_offset() >= from) {
                reader
                    .seek(SeekFrom::Start(position + HEADER_SIZE as u64))
                    .map_err(|e| LogError::io("seek", &self.log_path, e))?;
                verifying = true;
            }
            if verifying {
                buf.clear();
                buf.extend_from_slice(&head);
                buf.resize(size as usize, 0);
                reader
                    .read_exact(buf.get_mut(HEADER_SIZE..).unwrap_or_default())
                    .map_err(|e| LogError::io("read", &self.log_path, e))?;
                if let Err(e) = batch::validate(&buf, position as usize) {
                    break Some(e.to_string());
                }
            } else {
                walker
                    .seek_relative(body as i64)
                    .map_err(|e| LogError::io("seek", &self.log_path, e))?;
            }
            self.index_batch(position, &header);
            position += size;
            batches += 1;
        };
        if hand_back {
            page_cache::hand_back(&file, handed_back, Some(position));
        }
        self.size = position;
        self.first_batch_timestamp = None;
        Ok(ScanOutcome {
            valid_bytes: position,
            invalid_bytes: file_len - position,
            stopped_because,
            batches,
        })
    }

    /// Cuts the `.log` file to `size` bytes: after a scan found its valid prefix, or when a
    /// preallocated segment rolls (a truncate to the same length also frees the blocks reserved
    /// past it).
    pub fn truncate_file_to_size(&mut self, cache: &FileCache) -> Result<()> {
        let file = self.file(cache)?;
        file.set_len(self.size)
            .map_err(|e| LogError::io("truncate", &self.log_path, e))
    }

    /// Removes every batch whose last offset is `>= offset`; returns the new next offset.
    pub fn truncate_to(&mut self, cache: &FileCache, offset: i64) -> Result<i64> {
        let Some((position, _)) = self.find(cache, offset)? else {
            return Ok(self.next_offset);
        };
        let file = self.file(cache)?;
        file.set_len(position)
            .map_err(|e| LogError::io("truncate", &self.log_path, e))?;
        // Rebuild the tail state from the surviving bytes: cheap compared with replication.
        self.size = position;
        self.first_batch_timestamp = None;
        self.rebuild_from_scan(cache, None, false)?;
        self.persist_indexes(false)?;
        Ok(self.next_offset)
    }

    /// Writes index entries not yet on disk; with `sync`, fsyncs the index files too.
    pub fn persist_indexes(&mut self, sync: bool) -> Result<()> {
        let index_path = self.index_path();
        let time_path = self.time_index_path();
        if let Some(index) = self.offset_index.as_mut() {
            persist_index(&index_path, index, sync)?;
        }
        if let Some(index) = self.time_index.as_mut() {
            persist_index(&time_path, index, sync)?;
        }
        Ok(())
    }

    /// Called when the segment stops being the active one or the log closes: record the final
    /// max timestamp in the time index (Kafka's `onBecomeInactiveSegment`) so a later open
    /// knows it without a scan.
    pub fn seal(&mut self, cache: &FileCache) -> Result<()> {
        if self.max_timestamp >= 0 {
            self.load_indexes(cache)?;
            let rel = (self.offset_of_max_timestamp - self.base_offset) as u32;
            if let Some(t) = self.time_index.as_mut() {
                t.maybe_push(self.max_timestamp, rel);
            }
        }
        Ok(())
    }

    /// fdatasync of the `.log` file.
    pub fn sync(&self, cache: &FileCache) -> Result<()> {
        self.file(cache)?
            .sync_data()
            .map_err(|e| LogError::io("fsync", &self.log_path, e))
    }

    /// Closes the segment's cached file handle; the next read opens it again.
    pub fn forget_file(&self, cache: &FileCache) {
        cache.forget(self.log_key);
    }

    /// Deletes the segment's files through a `.deleted` rename (as Kafka does), so a crash
    /// halfway never leaves a segment that looks live but is partly gone.
    pub fn delete(self, cache: &FileCache) -> Result<()> {
        self.forget_file(cache);
        for path in [
            self.log_path.clone(),
            self.index_path(),
            self.time_index_path(),
            fs::sibling(&self.log_path, crate::index::txn::TXN_INDEX_EXTENSION),
        ] {
            let deleted = PathBuf::from(format!("{}.deleted", path.display()));
            match std::fs::rename(&path, &deleted) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(LogError::io("rename for deletion", &path, e)),
            }
            std::fs::remove_file(&deleted).map_err(|e| LogError::io("delete", &deleted, e))?;
        }
        Ok(())
    }

    /// Memory held by the in-memory indexes, for the budget tests.
    pub fn index_memory_bytes(&self) -> usize {
        self.offset_index.as_ref().map_or(0, |i| i.len() * 8)
            + self.time_index.as_ref().map_or(0, |i| i.len() * 12)
    }
}

fn read_file(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::io("read index", path, e)),
    }
}

/// Writes what of `index` is not in its file yet; a clean index costs nothing unless `sync`.
fn persist_index<E: Entry>(path: &Path, index: &mut SparseIndex<E>, sync: bool) -> Result<()> {
    if !index.is_dirty() && !sync {
        return Ok(());
    }
    let (position, bytes) = index.unpersisted();
    let file = fs::open_read_write(path, true)?;
    if !bytes.is_empty() {
        file.write_all_at(&bytes, position)
            .map_err(|e| LogError::io("write index", path, e))?;
    }
    file.set_len(index.file_len())
        .map_err(|e| LogError::io("truncate index", path, e))?;
    if sync {
        file.sync_data()
            .map_err(|e| LogError::io("fsync index", path, e))?;
    }
    index.mark_persisted();
    Ok(())
}

/// One batch of an append: where it starts in the producer's bytes, its header as the log
/// assigned it, and that header's bytes, which are written in place of the producer's.
pub struct AssignedBatch {
    pub position: usize,
    pub header: BatchHeader,
    pub written_header: [u8; HEADER_SIZE],
}

/// Linux's IOV_MAX: the most slices one `pwritev` takes.
const MAX_SLICES: usize = 1024;

/// How far a recovery scan reads between two hand-backs of what it read.
const SCAN_HAND_BACK_BYTES: u64 = 8 << 20;

/// Read size of the header-only walk over trusted batches: one header and the next few
/// batches' headers when batches are small, little wasted when they are large.
const HEADER_WALK_BUFFER: usize = 8 << 10;

/// Writes each batch's assigned header and the rest of its bytes at `offset` with vectored
/// writes, so a producer's records go from the request buffer to the page cache without a copy
/// in between. Returns the number of bytes written.
fn write_assigned(
    file: &File,
    bytes: &[u8],
    batches: &[AssignedBatch],
    mut offset: u64,
) -> std::io::Result<u64> {
    let mut slices = Vec::with_capacity(batches.len() * 2);
    for b in batches {
        let records = bytes
            .get(b.position + HEADER_SIZE..b.position + b.header.size())
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "batch outside the buffer")
            })?;
        slices.push(IoSlice::new(&b.written_header));
        slices.push(IoSlice::new(records));
    }
    let total: u64 = slices.iter().map(|s| s.len() as u64).sum();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let chunk = rest.len().min(MAX_SLICES);
        let n = match rustix::io::pwritev(file, rest.get(..chunk).unwrap_or_default(), offset) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        offset += n as u64;
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(total)
}
