//! Running one blocking step over many items on a few threads: opening (and recovering) logs
//! at startup and closing them at shutdown, as Kafka does with
//! `num.recovery.threads.per.data.dir`, and scanning the segments of one partition that a
//! recovery has to check.
//!
//! Scoped std threads rather than a pool crate: the work happens twice in a broker's life, and
//! threads that end with the call keep the idle broker's footprint what it was.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// `step` applied to every item on up to `threads` threads; results in the items' order. Items
/// are handed out one at a time, so one large partition does not hold up the small ones queued
/// behind it on the same thread.
pub(crate) fn map<T, R, F>(items: &[T], threads: usize, step: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(&step).collect();
    }
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let result = step(item);
                done.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((i, result));
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::Duration;

    #[test]
    fn results_keep_the_items_order_whatever_finishes_first() {
        let items: Vec<u64> = (0..40).collect();
        let out = map(&items, 4, |n| {
            // Early items take longest, so they finish last.
            std::thread::sleep(Duration::from_millis(40 - n));
            n * 10
        });
        assert_eq!(out, items.iter().map(|n| n * 10).collect::<Vec<_>>());
    }

    #[test]
    fn the_items_run_at_once_on_the_threads_asked_for_and_no_more() {
        // Each step waits (up to a bound) until three have run at the same time.
        let in_flight = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let items: Vec<u32> = (0..12).collect();
        let out = map(&items, 3, |_| {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while peak.load(Ordering::SeqCst) < 3 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            in_flight.fetch_sub(1, Ordering::SeqCst);
            std::thread::current().id()
        });
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        let used: HashSet<_> = out.into_iter().collect();
        assert_eq!(used.len(), 3);
        assert!(!used.contains(&std::thread::current().id()));
    }

    #[test]
    fn one_thread_or_one_item_runs_on_the_caller() {
        let here = std::thread::current().id();
        assert_eq!(
            map(&[1, 2, 3], 1, |_| std::thread::current().id()),
            vec![here; 3]
        );
        assert_eq!(map(&[1], 8, |_| std::thread::current().id()), vec![here]);
        assert!(map(&[] as &[u8], 8, |_| 0).is_empty());
    }
}
