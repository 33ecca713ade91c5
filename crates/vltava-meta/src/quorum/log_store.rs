//! openraft's log storage over a `WalFile`: the Raft log, the vote and the committed log id.
//!
//! Everything is one stream of records in `raft.wal` under the metadata dir; replaying it in
//! order rebuilds the in-memory log. Truncation and purging are records too, so the file is only
//! ever appended to. The whole log is held in memory: metadata is small, and reads from the
//! state machine and replication never touch the disk.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use serde::{Deserialize, Serialize};

use super::wal::WalFile;
use super::{Entry, LogId, TypeConfig, Vote};
use crate::error::MetaError;

/// File name of the metadata log inside the metadata dir.
pub(crate) const WAL_FILE_NAME: &str = "raft.wal";

/// One record of the log file.
#[derive(Debug, Serialize, Deserialize)]
enum WalRecord {
    Vote(Vote),
    Committed(Option<LogId>),
    Append(Entry),
    /// Delete every entry after this log id (all of them for `None`).
    TruncateAfter(Option<LogId>),
    /// Delete every entry up to and including this log id.
    Purge(LogId),
}

#[derive(Debug, Default)]
struct MemLog {
    entries: BTreeMap<u64, Entry>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
}

impl MemLog {
    fn apply(&mut self, record: WalRecord) {
        match record {
            WalRecord::Vote(vote) => self.vote = Some(vote),
            WalRecord::Committed(committed) => self.committed = committed,
            WalRecord::Append(entry) => {
                self.entries.insert(entry.log_id.index, entry);
            }
            WalRecord::TruncateAfter(last) => {
                let from = last.map(|l| l.index + 1).unwrap_or(0);
                self.entries.split_off(&from);
            }
            WalRecord::Purge(log_id) => {
                let keep = self.entries.split_off(&(log_id.index + 1));
                self.entries = keep;
                self.last_purged = Some(log_id);
            }
        }
    }
}

#[derive(Debug)]
struct Shared {
    mem: Mutex<MemLog>,
    /// Serializes writers; held only on blocking threads.
    wal: Mutex<WalFile>,
}

/// The Raft log store. Cheap to clone: clones share the same log.
#[derive(Debug, Clone)]
pub struct FileLogStore {
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> io::Result<MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| io::Error::other("metadata log lock poisoned by a panic"))
}

impl FileLogStore {
    /// Opens the log under `dir`, replaying it. A torn tail is truncated.
    pub fn open(dir: &Path) -> Result<FileLogStore, MetaError> {
        let path = dir.join(WAL_FILE_NAME);
        let io_err = |source| MetaError::Io {
            path: path.clone(),
            source,
        };
        let (wal, recovered) = WalFile::open(&path).map_err(io_err)?;
        let mut mem = MemLog::default();
        let truncated_bytes = recovered.truncated_bytes;
        for frame in recovered.frames {
            // A frame with a good checksum that does not decode is not a torn write: refuse to
            // guess rather than drop acknowledged metadata.
            let record: WalRecord =
                serde_json::from_slice(&frame).map_err(|e| MetaError::Corrupt {
                    path: path.clone(),
                    reason: format!("undecodable record: {e}"),
                })?;
            mem.apply(record);
        }
        tracing::info!(
            path = %path.display(),
            entries = mem.entries.len(),
            truncated_bytes,
            committed = ?mem.committed,
            "metadata log replayed"
        );
        Ok(FileLogStore {
            shared: Arc::new(Shared {
                mem: Mutex::new(mem),
                wal: Mutex::new(wal),
            }),
        })
    }

    /// True when nothing was ever written: no vote and no entries.
    pub fn is_pristine(&self) -> Result<bool, MetaError> {
        let mem = lock(&self.shared.mem).map_err(|e| MetaError::Raft(e.to_string()))?;
        Ok(mem.vote.is_none() && mem.entries.is_empty() && mem.last_purged.is_none())
    }

    /// The committed log id saved before the last shutdown.
    pub fn committed(&self) -> Option<LogId> {
        lock(&self.shared.mem).ok().and_then(|m| m.committed)
    }

    /// Writes `records` durably on a blocking thread, then applies them to memory.
    async fn write(&self, records: Vec<WalRecord>) -> io::Result<()> {
        let mut payloads = Vec::with_capacity(records.len());
        for record in &records {
            payloads.push(serde_json::to_vec(record).map_err(io::Error::other)?);
        }
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let mut wal = lock(&shared.wal)?;
            wal.append(&payloads).map_err(|e| {
                tracing::error!(path = %wal.path().display(), error = %e, "metadata log write failed");
                e
            })?;
            let mut mem = lock(&shared.mem)?;
            for record in records {
                mem.apply(record);
            }
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }
}

impl RaftLogReader<TypeConfig> for FileLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let mem = lock(&self.shared.mem)?;
        Ok(mem.entries.range(range).map(|(_, e)| e.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(lock(&self.shared.mem)?.vote)
    }
}

impl RaftLogStorage<TypeConfig> for FileLogStore {
    type LogReader = FileLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let mem = lock(&self.shared.mem)?;
        let last = mem
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(mem.last_purged);
        Ok(LogState {
            last_purged_log_id: mem.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.write(vec![WalRecord::Vote(*vote)]).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Persisted so that a restart re-applies the committed log before serving the image,
        // without waiting for a leader.
        self.write(vec![WalRecord::Committed(committed)]).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(lock(&self.shared.mem)?.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let records: Vec<WalRecord> = entries.into_iter().map(WalRecord::Append).collect();
        // Acknowledged only once fsynced.
        let result = self.write(records).await;
        let report = match &result {
            Ok(()) => Ok(()),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        };
        callback.io_completed(report);
        result
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        self.write(vec![WalRecord::TruncateAfter(last_log_id)])
            .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.write(vec![WalRecord::Purge(log_id)]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::entry::RaftEntry;
    use openraft::storage::RaftLogStorageExt;

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new_term_index(term, index)
    }

    fn blank(term: u64, index: u64) -> Entry {
        Entry::new_blank(log_id(term, index))
    }

    #[tokio::test]
    async fn log_vote_and_truncation_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut store = FileLogStore::open(dir.path()).expect("open");
            assert!(store.is_pristine().expect("state"));
            store
                .save_vote(&Vote::new_committed(2, 1))
                .await
                .expect("vote");
            store
                .blocking_append((1..=5).map(|i| blank(2, i)))
                .await
                .expect("append");
            store
                .truncate_after(Some(log_id(2, 3)))
                .await
                .expect("truncate");
            store.purge(log_id(2, 1)).await.expect("purge");
            store
                .save_committed(Some(log_id(2, 3)))
                .await
                .expect("committed");
        }
        let mut store = FileLogStore::open(dir.path()).expect("reopen");
        assert!(!store.is_pristine().expect("state"));
        assert_eq!(
            store.read_vote().await.expect("vote"),
            Some(Vote::new_committed(2, 1))
        );
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(log_id(2, 1)));
        assert_eq!(state.last_log_id, Some(log_id(2, 3)));
        let entries = store.try_get_log_entries(0..10).await.expect("entries");
        let indexes: Vec<u64> = entries.iter().map(|e| e.log_id.index).collect();
        assert_eq!(indexes, vec![2, 3]);
        assert_eq!(store.committed(), Some(log_id(2, 3)));
    }

    #[tokio::test]
    async fn a_torn_append_loses_only_the_unacknowledged_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut store = FileLogStore::open(dir.path()).expect("open");
            store
                .blocking_append((1..=3).map(|i| blank(1, i)))
                .await
                .expect("append");
        }
        let path = dir.path().join(WAL_FILE_NAME);
        let len = std::fs::metadata(&path).expect("meta").len();
        // Simulate a crash in the middle of writing a fourth entry.
        let mut partial = Vec::new();
        let payload = serde_json::to_vec(&WalRecord::Append(blank(1, 4))).expect("json");
        super::super::wal::encode_frame(&payload, &mut partial).expect("frame");
        let mut bytes = std::fs::read(&path).expect("read");
        bytes.extend_from_slice(&partial[..partial.len() / 2]);
        std::fs::write(&path, bytes).expect("write");

        let mut store = FileLogStore::open(dir.path()).expect("reopen");
        let indexes: Vec<u64> = store
            .try_get_log_entries(..)
            .await
            .expect("entries")
            .iter()
            .map(|e| e.log_id.index)
            .collect();
        assert_eq!(indexes, vec![1, 2, 3]);
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), len);
    }
}
