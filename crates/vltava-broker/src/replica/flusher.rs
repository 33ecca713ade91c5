//! acks=all answers wait for their partition's log to be durable without holding a thread each.
//!
//! One flusher per log runs the log's group commit on a blocking thread, fsync after fsync for
//! as long as answers wait, and tells them through a watch channel. Before, every acks=all
//! request took a blocking thread of its own to wait on the group commit's condition variable:
//! at 100 000 records/s that was four thread wake-ups per request, and the pool's threads used
//! 40 % of a core doing little else (docs/benchmarks.md, 2026-12-08).

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use vltava_log::{Log, LogError};

#[derive(Debug)]
pub struct Flusher {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    log: Arc<Log>,
    wanted: Mutex<Wanted>,
    progress: watch::Sender<Progress>,
}

/// What answers wait for, and whether a flusher is on it.
#[derive(Debug)]
struct Wanted {
    up_to: i64,
    running: bool,
}

/// What the flusher last made durable; `failed` once an fsync failed (the log is offline for
/// good, see [`Log::flush`]).
#[derive(Debug, Clone, Copy)]
struct Progress {
    durable: i64,
    failed: bool,
}

impl Flusher {
    pub fn new(log: Arc<Log>) -> Flusher {
        let durable = log.flushed_offset();
        Flusher {
            shared: Arc::new(Shared {
                log,
                wanted: Mutex::new(Wanted {
                    up_to: durable,
                    running: false,
                }),
                progress: watch::Sender::new(Progress {
                    durable,
                    failed: false,
                }),
            }),
        }
    }

    /// Completes once everything below `up_to` is durable. The flush is asked for now, not
    /// when the future is first polled, so a request's partitions are flushed side by side
    /// however their answers are awaited. Must be called within the tokio runtime.
    pub fn durable(&self, up_to: i64) -> impl Future<Output = Result<(), LogError>> + Send {
        let shared = Arc::clone(&self.shared);
        // Subscribed before asking, so the flusher's answer cannot come in between.
        let mut progress = shared.progress.subscribe();
        let asked = shared.log.flushed_offset() < up_to && shared.ask(up_to);
        async move {
            if asked {
                // The sender lives in `shared`, which this future holds: the wait ends only
                // with an answer.
                let _ = progress.wait_for(|p| p.failed || p.durable >= up_to).await;
            }
            if shared.log.flushed_offset() >= up_to {
                Ok(())
            } else {
                Err(LogError::Offline {
                    path: shared.log.dir().to_path_buf(),
                })
            }
        }
    }
}

impl Shared {
    /// Raises what is wanted to `up_to` and starts a flusher unless one runs (it will see the
    /// raise before it stops). False if the log is offline: there is nothing to wait for.
    fn ask(self: &Arc<Self>, up_to: i64) -> bool {
        if self.progress.borrow().failed {
            return false;
        }
        let mut wanted = self.lock();
        wanted.up_to = wanted.up_to.max(up_to);
        if !wanted.running {
            wanted.running = true;
            let shared = Arc::clone(self);
            tokio::task::spawn_blocking(move || shared.run());
        }
        true
    }

    /// Flushes back to back until nothing more is wanted or an fsync fails.
    fn run(&self) {
        loop {
            let up_to = {
                let mut wanted = self.lock();
                // Never beyond the log's end: after a truncation the group commit could not
                // reach it and would fsync in a loop.
                let up_to = wanted.up_to.min(self.log.log_end_offset());
                if up_to <= self.log.flushed_offset() {
                    // Another caller's fsync (the flush policy's, a roll's) may have covered
                    // what was wanted: its waiters learn it here.
                    self.publish(false);
                    wanted.running = false;
                    return;
                }
                up_to
            };
            if let Err(e) = self.log.flush_then(up_to, || self.publish(false)) {
                tracing::error!(
                    "fsync failed, log {} offline: {e}",
                    self.log.dir().display()
                );
                self.publish(true);
                self.lock().running = false;
                return;
            }
        }
    }

    /// Tells the waiters what is on disk now.
    fn publish(&self, failed: bool) {
        self.progress.send_replace(Progress {
            durable: self.log.flushed_offset(),
            failed,
        });
    }

    fn lock(&self) -> MutexGuard<'_, Wanted> {
        // Only plain fields are set under this lock: a poisoned one still holds valid state.
        self.wanted.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use vltava_log::batch::build_test_batch;
    use vltava_log::{LogConfig, LogDir, LogDirOptions, TopicPartition};

    use super::*;

    const PATIENCE: Duration = Duration::from_secs(20);

    fn open(root: &std::path::Path) -> (LogDir, Arc<Log>) {
        let dir = LogDir::open(root, LogDirOptions::default()).expect("open log dir");
        let log = dir
            .open_log(&TopicPartition::new("orders", 0), LogConfig::default())
            .expect("open log");
        (dir, log)
    }

    fn append_one(log: &Log) -> i64 {
        let info = log
            .append(&build_test_batch(0, &[b"value"]), 0, 0)
            .expect("append");
        info.last_offset + 1
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_waiter_is_answered_once_its_offsets_are_on_disk() {
        let root = tempfile::tempdir().expect("tempdir");
        let (_dir, log) = open(root.path());
        let flusher = Flusher::new(Arc::clone(&log));
        let mut answers = Vec::new();
        for _ in 0..300 {
            let up_to = append_one(&log);
            let durable = flusher.durable(up_to);
            let log = Arc::clone(&log);
            answers.push(tokio::spawn(async move {
                durable.await.expect("durable");
                (up_to, log.flushed_offset())
            }));
            if up_to % 7 == 0 {
                tokio::task::yield_now().await;
            }
        }
        for answer in answers {
            let (up_to, flushed) = tokio::time::timeout(PATIENCE, answer)
                .await
                .expect("every waiter is answered")
                .expect("waiter task");
            assert!(
                flushed >= up_to,
                "answered at {flushed}, waited for {up_to}"
            );
        }
        assert_eq!(log.flushed_offset(), log.log_end_offset());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_fsync_is_asked_for_before_the_answer_is_awaited() {
        let root = tempfile::tempdir().expect("tempdir");
        let (_dir, log) = open(root.path());
        let flusher = Flusher::new(Arc::clone(&log));
        let up_to = append_one(&log);
        assert!(log.flushed_offset() < up_to);
        let _not_polled = flusher.durable(up_to);
        tokio::time::timeout(PATIENCE, async {
            while log.flushed_offset() < up_to {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("flushed without the future being polled");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wait_for_what_is_already_on_disk_starts_no_fsync() {
        let root = tempfile::tempdir().expect("tempdir");
        let (_dir, log) = open(root.path());
        let flusher = Flusher::new(Arc::clone(&log));
        let up_to = append_one(&log);
        log.flush(up_to).expect("flush");
        flusher.durable(up_to).await.expect("durable");
        assert!(!flusher.shared.lock().running);
    }
}
