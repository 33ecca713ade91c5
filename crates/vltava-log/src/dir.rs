//! A log directory (one entry of `log.dirs`): every partition log under it, the clean-shutdown
//! marker, the recovery-point and log-start-offset checkpoints, and the shared open-file budget.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::checkpoint;
use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::fs::{self, FileCache};
use crate::log::{Log, TopicPartition};
use crate::recovery::RecoveryContext;

pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";

#[derive(Debug, Clone)]
pub struct LogDirOptions {
    /// Most segment files open at once across all partitions of this directory.
    pub max_open_files: usize,
    /// Threads that open (and recover) logs at startup and close them at shutdown: Kafka's
    /// `num.recovery.threads.per.data.dir`, 2 since Kafka 4.0.
    pub recovery_threads: usize,
}

impl Default for LogDirOptions {
    fn default() -> Self {
        LogDirOptions {
            max_open_files: 4096,
            recovery_threads: 2,
        }
    }
}

#[derive(Debug)]
pub struct LogDir {
    root: PathBuf,
    cache: Arc<FileCache>,
    clean_shutdown: bool,
    recovery_points: HashMap<TopicPartition, i64>,
    log_start_offsets: HashMap<TopicPartition, i64>,
    on_disk: Vec<TopicPartition>,
    recovery_threads: usize,
    logs: Mutex<HashMap<TopicPartition, Arc<Log>>>,
}

impl LogDir {
    /// Opens (creating if missing) a log directory. Removes the clean-shutdown marker at once, so
    /// that a crash from now on is seen as unclean at the next start.
    pub fn open(root: &Path, options: LogDirOptions) -> Result<LogDir> {
        std::fs::create_dir_all(root).map_err(|e| LogError::io("create log dir", root, e))?;
        let marker = root.join(CLEAN_SHUTDOWN_FILE);
        let clean_shutdown = marker.exists();
        let recovery_points = to_map(checkpoint::read_partition_offsets(
            &root.join(RECOVERY_POINT_CHECKPOINT),
        )?);
        let log_start_offsets = to_map(checkpoint::read_partition_offsets(
            &root.join(LOG_START_OFFSET_CHECKPOINT),
        )?);
        let mut on_disk = Vec::new();
        let entries = std::fs::read_dir(root).map_err(|e| LogError::io("list", root, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| LogError::io("list", root, e))?;
            if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with("-delete") {
                // A deletion interrupted by a crash (`<topic>-<p>.<id>-delete`): finish it.
                let path = entry.path();
                tracing::info!(dir = %path.display(), "finishing interrupted partition deletion");
                std::fs::remove_dir_all(&path).map_err(|e| LogError::io("remove", &path, e))?;
                continue;
            }
            if name.starts_with("__cluster_metadata") {
                continue;
            }
            if let Some(tp) = TopicPartition::from_dir_name(&name) {
                on_disk.push(tp);
            }
        }
        on_disk.sort();
        if clean_shutdown {
            std::fs::remove_file(&marker).map_err(|e| LogError::io("remove", &marker, e))?;
            fs::sync_dir(root)?;
        }
        Ok(LogDir {
            root: root.to_path_buf(),
            cache: Arc::new(FileCache::new(options.max_open_files)),
            clean_shutdown,
            recovery_points,
            log_start_offsets,
            on_disk,
            recovery_threads: options.recovery_threads,
            logs: Mutex::new(HashMap::new()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the previous run ended with a clean shutdown.
    pub fn was_clean_shutdown(&self) -> bool {
        self.clean_shutdown
    }

    /// The partition directories found when the directory was opened.
    pub fn partitions_on_disk(&self) -> Vec<TopicPartition> {
        self.on_disk.clone()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TopicPartition, Arc<Log>>> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Log>> {
        self.lock().get(tp).cloned()
    }

    pub fn logs(&self) -> Vec<Arc<Log>> {
        self.lock().values().cloned().collect()
    }

    /// Opens the log of a partition, creating it if missing and recovering it if the last
    /// shutdown was unclean. Opening an already open log returns it.
    pub fn open_log(&self, tp: &TopicPartition, config: LogConfig) -> Result<Arc<Log>> {
        if let Some(log) = self.get(tp) {
            return Ok(log);
        }
        let started = Instant::now();
        let context = RecoveryContext {
            clean_shutdown: self.clean_shutdown,
            recovery_point: self.recovery_points.get(tp).copied(),
            log_start_offset: self.log_start_offsets.get(tp).copied(),
            scan_threads: self.recovery_threads,
        };
        let dir = self.root.join(tp.dir_name());
        let created = !dir.exists();
        let log = Arc::new(Log::open(
            &dir,
            tp.clone(),
            config,
            Arc::clone(&self.cache),
            context,
        )?);
        if created {
            fs::sync_dir(&self.root)?;
        }
        tracing::debug!(partition = %tp, elapsed = ?started.elapsed(), "log opened");
        let mut logs = self.lock();
        Ok(Arc::clone(logs.entry(tp.clone()).or_insert(log)))
    }

    /// Opens many distinct logs as `open_log` does, on the recovery threads: a start after a
    /// crash recovers that many partitions at a time. Every log is attempted; the first error
    /// is returned.
    pub fn open_logs(&self, wanted: &[(TopicPartition, LogConfig)]) -> Result<Vec<Arc<Log>>> {
        crate::parallel::map(wanted, self.recovery_threads, |(tp, config)| {
            self.open_log(tp, config.clone())
        })
        .into_iter()
        .collect()
    }

    /// Deletes a partition's log and its directory (renamed to `<dir>.<n>-delete` first, as
    /// Kafka does, so a crash midway is finished at the next start).
    pub fn delete_log(&self, tp: &TopicPartition) -> Result<()> {
        let removed = self.lock().remove(tp);
        let result = self.remove_partition_dir(tp);
        // After the removal, so a read that opened a file again meanwhile is let go too: an
        // open handle keeps a deleted file's blocks.
        if let Some(log) = removed {
            log.forget_files();
        }
        result
    }

    fn remove_partition_dir(&self, tp: &TopicPartition) -> Result<()> {
        let dir = self.root.join(tp.dir_name());
        if !dir.exists() {
            return Ok(());
        }
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let doomed = self
            .root
            .join(format!("{}.{unique:x}-delete", tp.dir_name()));
        std::fs::rename(&dir, &doomed).map_err(|e| LogError::io("rename for deletion", &dir, e))?;
        fs::sync_dir(&self.root)?;
        std::fs::remove_dir_all(&doomed).map_err(|e| LogError::io("remove", &doomed, e))
    }

    /// Writes the recovery points and log start offsets of every open log.
    pub fn checkpoint(&self) -> Result<()> {
        let logs = self.logs();
        let mut recovery = Vec::with_capacity(logs.len());
        let mut starts = Vec::with_capacity(logs.len());
        for log in &logs {
            log.persist_indexes()?;
            let tp = log.topic_partition();
            recovery.push((tp.topic.clone(), tp.partition, log.flushed_offset()));
            starts.push((tp.topic.clone(), tp.partition, log.log_start_offset()));
        }
        recovery.sort();
        starts.sort();
        checkpoint::write_partition_offsets(&self.root.join(RECOVERY_POINT_CHECKPOINT), &recovery)?;
        checkpoint::write_partition_offsets(&self.root.join(LOG_START_OFFSET_CHECKPOINT), &starts)
    }

    /// Flushes and closes every log, writes the checkpoints, then the clean-shutdown marker.
    pub fn shutdown(&self) -> Result<()> {
        let closed = crate::parallel::map(&self.logs(), self.recovery_threads, |log| log.close());
        closed.into_iter().collect::<Result<()>>()?;
        self.checkpoint()?;
        fs::write_atomically(
            &self.root.join(CLEAN_SHUTDOWN_FILE),
            br#"{"version":0,"brokerEpoch":-1}"#,
        )
    }

    /// Open segment files right now (bounded by `max_open_files`).
    pub fn open_file_count(&self) -> usize {
        self.cache.open_count()
    }
}

fn to_map(entries: Vec<(String, i32, i64)>) -> HashMap<TopicPartition, i64> {
    entries
        .into_iter()
        .map(|(topic, partition, offset)| (TopicPartition::new(topic, partition), offset))
        .collect()
}
