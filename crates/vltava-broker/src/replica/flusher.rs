//! acks=all answers wait for their partition's log to be durable without holding a thread each.
//!
//! One flusher per log runs the log's group commit on a blocking thread, fsync after fsync for
//! as long as answers wait, and wakes them through a watch channel. Before, every acks=all
//! request took a blocking thread of its own to wait on the group commit's condition variable:
//! at 100 000 records/s that was four thread wake-ups per request, and the pool's threads used
//! 40 % of a core doing little else (docs/benchmarks.md, 2026-12-08).
//!
//! A flusher holds a thread of tokio's blocking pool while its partition has acks=all traffic
//! without a pause; with many such partitions they share the pool with appends and reads.

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
    /// Sent after every fsync round and when the flusher stops, so waiters look again at the
    /// log's durable offset; `true` once the log is offline.
    offline: watch::Sender<bool>,
}

/// What answers wait for, and whether a flusher is on it.
#[derive(Debug)]
struct Wanted {
    up_to: i64,
    running: bool,
    /// An fsync failed: the log is offline for good (see [`Log::flush`]), no flusher starts.
    failed: bool,
}

impl Flusher {
    pub fn new(log: Arc<Log>) -> Flusher {
        let up_to = log.flushed_offset();
        Flusher {
            shared: Arc::new(Shared {
                log,
                wanted: Mutex::new(Wanted {
                    up_to,
                    running: false,
                    failed: false,
                }),
                offline: watch::Sender::new(false),
            }),
        }
    }

    /// Completes with `Ok` once everything below `up_to` is durable, or with the log's offline
    /// error once an fsync failed. The flush is asked for now, not when the future is first
    /// polled, so a request's partitions are flushed side by side however their answers are
    /// awaited. Must be called within the tokio runtime.
    pub fn durable(&self, up_to: i64) -> impl Future<Output = Result<(), LogError>> + Send {
        let shared = Arc::clone(&self.shared);
        // Subscribed before asking, so the flusher's wake-up cannot come in between.
        let mut changes = shared.offline.subscribe();
        let asked = shared.log.flushed_offset() < up_to && shared.ask(up_to);
        async move {
            if asked {
                // The log's own durable offset decides, not a value sent earlier: another
                // caller's fsync may have covered `up_to` meanwhile. The sender lives in
                // `shared`, which this future holds, so the wait cannot end with an error.
                let _ = changes
                    .wait_for(|offline| *offline || shared.log.flushed_offset() >= up_to)
                    .await;
            }
            if shared.log.flushed_offset() >= up_to {
                Ok(())
            } else {
                Err(shared.log.offline_error())
            }
        }
    }
}

impl Shared {
    /// Raises what is wanted to `up_to` and starts a flusher unless one runs (it will see the
    /// raise before it stops). False if the log is offline: there is nothing to wait for.
    fn ask(self: &Arc<Self>, up_to: i64) -> bool {
        let mut wanted = self.lock();
        if wanted.failed {
            return false;
        }
        wanted.up_to = wanted.up_to.max(up_to);
        if !wanted.running {
            wanted.running = true;
            let shared = Arc::clone(self);
            tokio::task::spawn_blocking(move || {
                let stopped = Stopped(&shared);
                shared.run();
                std::mem::forget(stopped);
            });
        }
        true
    }

    /// Flushes back to back until nothing more is wanted or an fsync fails.
    fn run(&self) {
        loop {
            let up_to = {
                let mut wanted = self.lock();
                // Never beyond the log's end: what a truncation removed cannot become durable.
                let up_to = wanted.up_to.min(self.log.log_end_offset());
                if up_to <= self.log.flushed_offset() {
                    wanted.running = false;
                    drop(wanted);
                    // Another caller's fsync (the flush policy's, a roll's) may have covered
                    // what was wanted: its waiters learn it here.
                    self.wake();
                    return;
                }
                up_to
            };
            let flushed = self.log.flush_then(up_to, || self.wake());
            if let Err(e) = flushed {
                tracing::error!("log {} offline: {e}", self.log.dir().display());
                self.go_offline();
                return;
            }
        }
    }

    /// Waiters look again at the log's durable offset.
    fn wake(&self) {
        self.offline.send_modify(|_| ());
    }

    /// No flusher runs or will start again; every waiter is answered with the offline error.
    fn go_offline(&self) {
        let mut wanted = self.lock();
        wanted.failed = true;
        wanted.running = false;
        drop(wanted);
        self.offline.send_replace(true);
    }

    fn lock(&self) -> MutexGuard<'_, Wanted> {
        // Only plain fields are set under this lock: a poisoned one still holds valid state.
        self.wanted.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Dropped only if the flusher panicked: its waiters would otherwise wait for good, so the
/// log is treated as offline, as after a failed fsync.
struct Stopped<'a>(&'a Shared);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        tracing::error!(
            "the flusher of log {} panicked; the log is offline",
            self.0.log.dir().display()
        );
        self.0.go_offline();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use vltava_log::batch::build_test_batch;
    use vltava_log::{LogConfig, LogDir, LogDirOptions, TopicPartition};

    use super::*;

    const PATIENCE: Duration = Duration::from_secs(20);

    /// A fresh log and its flusher. Fields drop in order: the directory goes last.
    struct Fixture {
        flusher: Flusher,
        log: Arc<Log>,
        _dir: LogDir,
        _root: tempfile::TempDir,
    }

    fn fixture() -> Fixture {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = LogDir::open(root.path(), LogDirOptions::default()).expect("open log dir");
        let log = dir
            .open_log(&TopicPartition::new("orders", 0), LogConfig::default())
            .expect("open log");
        Fixture {
            flusher: Flusher::new(Arc::clone(&log)),
            log,
            _dir: dir,
            _root: root,
        }
    }

    /// A waiter that asked while a flusher was (as if) on it, so no fsync of its own answers
    /// it; it parks until the flusher wakes it.
    fn parked_waiter(
        flusher: &Flusher,
        up_to: i64,
    ) -> tokio::task::JoinHandle<Result<(), LogError>> {
        flusher.shared.lock().running = true;
        tokio::spawn(flusher.durable(up_to))
    }

    fn append_one(log: &Log) -> i64 {
        let info = log
            .append(&build_test_batch(0, &[b"value"]), 0, 0)
            .expect("append");
        info.last_offset + 1
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_waiter_is_answered_once_its_offsets_are_on_disk() {
        let Fixture { flusher, log, .. } = &fixture();
        let mut answers = Vec::new();
        for _ in 0..300 {
            let up_to = append_one(log);
            let durable = flusher.durable(up_to);
            let log = Arc::clone(log);
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
        let Fixture { flusher, log, .. } = &fixture();
        let up_to = append_one(log);
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
    async fn a_wait_for_what_is_already_on_disk_asks_for_nothing() {
        let Fixture { flusher, log, .. } = &fixture();
        let up_to = append_one(log);
        log.flush(up_to).expect("flush");
        let durable = flusher.durable(up_to);
        {
            let wanted = flusher.shared.lock();
            assert!(!wanted.running, "no flusher started");
            assert_eq!(wanted.up_to, 0, "nothing asked for");
        }
        durable.await.expect("durable");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn offsets_another_caller_flushed_answer_their_waiters() {
        let Fixture { flusher, log, .. } = &fixture();
        let up_to = append_one(log);
        let waiting = parked_waiter(flusher, up_to);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The flush policy's fsync covers the offsets; then the flusher finds nothing to do.
        log.flush(up_to).expect("flush");
        let shared = Arc::clone(&flusher.shared);
        tokio::task::spawn_blocking(move || shared.run())
            .await
            .expect("flusher");
        tokio::time::timeout(PATIENCE, waiting)
            .await
            .expect("answered when the flusher stops")
            .expect("waiter task")
            .expect("durable");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_log_gone_offline_answers_every_waiter_with_its_error() {
        let Fixture { flusher, log, .. } = &fixture();
        let up_to = append_one(log);
        let waiting = parked_waiter(flusher, up_to);
        flusher.shared.go_offline();
        let answer = tokio::time::timeout(PATIENCE, waiting)
            .await
            .expect("answered")
            .expect("waiter task");
        assert!(
            matches!(answer, Err(LogError::Offline { .. })),
            "{answer:?}"
        );
        let later = flusher.durable(append_one(log)).await;
        assert!(matches!(later, Err(LogError::Offline { .. })), "{later:?}");
    }
}
