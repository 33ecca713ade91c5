// HOT PATH: every acks=all produce waits here.
//! Group commit: one fsync covers every append made before it started.
//!
//! Callers ask for "durable up to offset N". If an fsync is already running, they wait for it
//! and then check again; otherwise one of them runs the next fsync for everyone. An fsync
//! failure poisons the log for good: after a failed fsync the kernel may have dropped the dirty
//! pages, so retrying could acknowledge data that is gone (PostgreSQL's "fsyncgate").

use std::sync::{Condvar, Mutex, MutexGuard};

use crate::error::Result;

#[derive(Debug)]
pub struct GroupCommit {
    state: Mutex<CommitState>,
    finished: Condvar,
}

#[derive(Debug)]
struct CommitState {
    durable_offset: i64,
    syncing: bool,
    poisoned: bool,
}

/// What a wait ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durable {
    Yes,
    /// The log is poisoned by an earlier failed fsync.
    Poisoned,
}

impl GroupCommit {
    pub fn new(durable_offset: i64) -> GroupCommit {
        GroupCommit {
            state: Mutex::new(CommitState {
                durable_offset,
                syncing: false,
                poisoned: false,
            }),
            finished: Condvar::new(),
        }
    }

    pub fn durable_offset(&self) -> i64 {
        self.lock().durable_offset
    }

    /// Lowers the durable offset after a truncation.
    pub fn truncate(&self, offset: i64) {
        let mut state = self.lock();
        state.durable_offset = state.durable_offset.min(offset);
    }

    pub fn is_poisoned(&self) -> bool {
        self.lock().poisoned
    }

    /// Blocks until everything below `up_to` is durable. `sync` makes the log durable up to the
    /// offset it returns (at least the end of the log when it starts), with what is left to do
    /// once the callers it covered are told: that comes back to whichever caller ran it, after
    /// they were woken, so the next fsync does not wait for it.
    pub fn wait_durable<T>(
        &self,
        up_to: i64,
        sync: &dyn Fn() -> Result<(i64, T)>,
    ) -> Result<(Durable, Option<T>)> {
        let mut state = self.lock();
        let mut left = None;
        loop {
            if state.poisoned {
                return Ok((Durable::Poisoned, left));
            }
            if state.durable_offset >= up_to {
                return Ok((Durable::Yes, left));
            }
            if state.syncing {
                state = self.finished.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            state.syncing = true;
            drop(state);
            let outcome = sync();
            state = self.lock();
            state.syncing = false;
            match outcome {
                Ok((offset, after)) => {
                    state.durable_offset = state.durable_offset.max(offset);
                    left = Some(after);
                }
                Err(e) => {
                    state.poisoned = true;
                    self.finished.notify_all();
                    return Err(e);
                }
            }
            self.finished.notify_all();
        }
    }

    fn lock(&self) -> MutexGuard<'_, CommitState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn concurrent_waiters_share_fsyncs() {
        let commit = Arc::new(GroupCommit::new(0));
        let end = Arc::new(AtomicI64::new(0));
        let syncs = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (commit, end, syncs) = (commit.clone(), end.clone(), syncs.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let mine = end.fetch_add(1, Ordering::SeqCst) + 1;
                        let sync = || {
                            syncs.fetch_add(1, Ordering::SeqCst);
                            let target = end.load(Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_micros(200));
                            Ok((target, ()))
                        };
                        assert_eq!(
                            commit.wait_durable(mine, &sync).expect("sync").0,
                            Durable::Yes
                        );
                        assert!(commit.durable_offset() >= mine);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert!(
            syncs.load(Ordering::SeqCst) < 400,
            "every append paid its own fsync"
        );
    }

    #[test]
    fn a_failed_fsync_poisons_for_good() {
        let commit = GroupCommit::new(0);
        let fail = || {
            Err(crate::error::LogError::io(
                "fsync",
                "x",
                std::io::Error::other("EIO"),
            ))
        };
        assert!(commit.wait_durable::<()>(1, &fail).is_err());
        let ok = || Ok((10, ()));
        assert_eq!(
            commit.wait_durable(1, &ok).expect("no error").0,
            Durable::Poisoned
        );
    }
}
