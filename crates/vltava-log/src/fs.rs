//! File-system helpers: positional I/O with context, atomic writes, directory fsync, and the
//! bounded cache of open segment files that lets 10 000 partitions share a small fd budget.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{LogError, Result};

/// fsync a directory so a created, renamed or deleted entry in it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| LogError::io("open directory", dir, e))?;
    f.sync_all()
        .map_err(|e| LogError::io("fsync directory", dir, e))
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the new content.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(|e| LogError::io("create", &tmp, e))?;
        std::io::Write::write_all(&mut f, bytes).map_err(|e| LogError::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| LogError::io("fsync", &tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| LogError::io("rename", path, e))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

pub fn read_exact_at(file: &File, path: &Path, buf: &mut [u8], position: u64) -> Result<()> {
    file.read_exact_at(buf, position)
        .map_err(|e| LogError::io("read", path, e))
}

/// Whether a read may wait: for the disk, or for a file to be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Allowed,
    /// From memory or not at all ([`LogError::WouldBlock`]): the read runs on an async
    /// runtime's thread, where waiting for the disk stalls every connection on it.
    Never,
}

/// [`read_exact_at`], or with [`Wait::Never`] only from the page cache.
pub fn read_exact_at_with(
    file: &File,
    path: &Path,
    buf: &mut [u8],
    position: u64,
    wait: Wait,
) -> Result<()> {
    if wait == Wait::Allowed {
        return read_exact_at(file, path, buf, position);
    }
    let wanted = buf.len();
    loop {
        let slices = &mut [std::io::IoSliceMut::new(buf)];
        // RWF_NOWAIT: the kernel copies what is cached and waits for no I/O (it may start
        // read-ahead; EAGAIN if nothing is cached). Any failure, a short read included, goes
        // to the read that may wait, whose answer (or error) the client gets: a file system
        // without RWF_NOWAIT for buffered reads (EOPNOTSUPP), a kernel or seccomp profile
        // without preadv2 (ENOSYS, EPERM), the end of the file.
        match rustix::io::preadv2(file, slices, position, rustix::io::ReadWriteFlags::NOWAIT) {
            Ok(n) if n == wanted => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Ok(_) | Err(_) => return Err(LogError::WouldBlock),
        }
    }
}

/// Reads up to `buf.len()` bytes; returns how many were read (short at end of file).
pub fn read_at_most(file: &File, path: &Path, buf: &mut [u8], position: u64) -> Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let rest = buf.get_mut(done..).unwrap_or_default();
        match file.read_at(rest, position + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LogError::io("read", path, e)),
        }
    }
    Ok(done)
}

/// Reserves disk blocks for the first `bytes` of `file` and keeps its length (Kafka's
/// `preallocate`; `fallocate` with `KEEP_SIZE`, so recovery still finds the log's end at the
/// file's end). Best effort: where the file system cannot, or the disk is full, appends allocate
/// as they go, as without the setting.
pub fn preallocate(file: &File, path: &Path, bytes: u64) {
    if let Err(e) = rustix::fs::fallocate(file, rustix::fs::FallocateFlags::KEEP_SIZE, 0, bytes) {
        tracing::warn!(path = %path.display(), "cannot preallocate {bytes} bytes: {e}");
    }
}

pub fn open_read_write(path: &Path, create: bool) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .map_err(|e| LogError::io("open", path, e))
}

/// Identifies one cached file; unique for the life of the process.
pub type FileKey = u64;

static NEXT_FILE_KEY: AtomicU64 = AtomicU64::new(1);

pub fn new_file_key() -> FileKey {
    NEXT_FILE_KEY.fetch_add(1, Ordering::Relaxed)
}

/// A least-recently-used cache of open files, shared by every log of a log dir, so that the
/// number of open segment files is bounded by configuration rather than by partition count.
/// An evicted file stays open for whoever still holds its `Arc` (a reader mid-sendfile).
#[derive(Debug)]
pub struct FileCache {
    capacity: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    tick: u64,
    files: HashMap<FileKey, (Arc<File>, u64)>,
}

impl FileCache {
    pub fn new(capacity: usize) -> FileCache {
        FileCache {
            capacity: capacity.max(2),
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// The open file for `key`, opening `path` read-write if it is not cached.
    pub fn get(&self, key: FileKey, path: &Path) -> Result<Arc<File>> {
        if let Some(file) = self.get_cached(key) {
            return Ok(file);
        }
        let file = Arc::new(open_read_write(path, false)?);
        let mut inner = self.lock();
        if inner.files.len() >= self.capacity {
            // Linear scan: only on a miss, and the cache is a few thousand entries at most.
            if let Some(oldest) = inner
                .files
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k)
            {
                inner.files.remove(&oldest);
            }
        }
        let tick = inner.tick;
        inner.files.insert(key, (Arc::clone(&file), tick));
        Ok(file)
    }

    /// The open file for `key` if the cache holds it: opening one may wait for the disk.
    pub fn get_cached(&self, key: FileKey) -> Option<Arc<File>> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let (file, used) = inner.files.get_mut(&key)?;
        *used = tick;
        Some(Arc::clone(file))
    }

    /// Drops the cached handle (before a file is deleted or renamed).
    pub fn forget(&self, key: FileKey) {
        self.lock().files.remove(&key);
    }

    pub fn open_count(&self) -> usize {
        self.lock().files.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `path` with its extension replaced (`00000000000000000000.log` → `.index`).
pub fn sibling(path: &Path, extension: &str) -> PathBuf {
    path.with_extension(extension)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = FileCache::new(3);
        for i in 0..10u64 {
            let path = dir.path().join(format!("{i}.log"));
            File::create(&path).expect("create");
            cache.get(i, &path).expect("open");
            assert!(cache.open_count() <= 3);
        }
        // Recently used entries survive eviction.
        let recent = dir.path().join("9.log");
        cache.get(9, &recent).expect("hit");
        assert_eq!(cache.open_count(), 3);
    }

    #[test]
    fn a_lookup_that_may_not_wait_finds_only_open_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        File::create(&path).expect("create");
        let cache = FileCache::new(2);
        assert!(cache.get_cached(0).is_none(), "never opened");
        cache.get(0, &path).expect("open");
        assert!(cache.get_cached(0).is_some());
        cache.forget(0);
        assert!(cache.get_cached(0).is_none(), "forgotten");
    }

    #[test]
    fn a_read_that_may_not_wait_reads_cached_bytes_and_declines_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        std::fs::write(&path, b"0123456789").expect("write");
        let file = File::open(&path).expect("open");
        let mut buf = [0u8; 4];
        read_exact_at_with(&file, &path, &mut buf, 3, Wait::Never).expect("just written");
        assert_eq!(&buf, b"3456");
        let past = read_exact_at_with(&file, &path, &mut buf, 8, Wait::Never);
        assert!(matches!(past, Err(LogError::WouldBlock)), "{past:?}");
        let blocking = read_exact_at_with(&file, &path, &mut buf, 8, Wait::Allowed);
        assert!(matches!(blocking, Err(LogError::Io { .. })), "{blocking:?}");
    }

    #[test]
    fn atomic_writes_replace_the_whole_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("checkpoint");
        write_atomically(&path, b"one").expect("write");
        write_atomically(&path, b"two").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        assert!(!path.with_extension("tmp").exists());
    }
}
