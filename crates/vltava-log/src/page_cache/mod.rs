//! Keeps a partition's share of the page cache to its tail (`log.page.cache.tail.bytes`).
//!
//! After an fsync, the bytes further than the tail behind the log end are handed back to the
//! kernel (`POSIX_FADV_DONTNEED`), and a catch-up read of bytes already handed back (read from
//! disk) hands them back again a few MiB behind the reader (`FileRange::hand_back`). Unflushed bytes (acks=1 with no flush policy) are written
//! back a MiB at a time as they arrive ([`writeback`]) and handed back the same way once behind
//! the tail, so they neither grow the page cache nor reach the disk in the kernel's bursts.
//!
//! Why: on hosts where touching a page the kernel has not used for a while is expensive (VMs
//! that give free guest memory back to the host), a log that keeps growing the page cache pays
//! that on every new page, while a bounded set of recycled pages is copied into at memory speed.
//! Measured on the benchmark VM, 1 MiB writes with fdatasync after each over 4 GiB: 308 MiB/s
//! growing the cache, 1 068 MiB/s handing pages back 64 MiB behind. Readers of older data read
//! from disk, as they would once the kernel had evicted it anyway; tailing consumers read
//! within the tail. BookKeeper's journal and PostgreSQL's WAL hand their pages back too.

pub mod writeback;

use std::fs::File;
use std::num::NonZeroU64;

/// How many appended bytes wait before their writeback starts (RocksDB's `bytes_per_sync` is
/// commonly set to the same).
pub(crate) const WRITEBACK_CHUNK: u64 = 1 << 20;

/// ext4's largest page-cache folio. The kernel drops only folios that lie wholly inside a
/// hand-back range.
pub(crate) const LARGEST_FOLIO: u64 = 2 << 20;

/// How far behind the end writeback stays, and the boundary its ranges end on: one folio, so no
/// folio being written is still being appended to.
pub(crate) const WRITEBACK_LAG: u64 = LARGEST_FOLIO;

/// How far before the mark a hand-back starts again: the folio a range ended in stays, and
/// starting the next range this far back lets it go then.
const REACH_BACK: u64 = LARGEST_FOLIO;

/// How far the hand-back has got: everything in segments below `base`, and in segment `base`
/// below `position`, was handed back (or left to the kernel). Only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Released {
    pub base: i64,
    pub position: u64,
}

/// One segment's extent: its base offset and how many of its bytes may go (flushed, or on their
/// way to disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extent {
    pub base: i64,
    pub size: u64,
}

/// A byte range of the segment at `index` (into the extents given) to hand back; `to: None`
/// is the rest of a segment that no longer grows, to the end of its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Release {
    pub index: usize,
    pub from: u64,
    pub to: Option<u64>,
}

/// What to hand back so that only the last `tail` bytes of `extents` (oldest first, the active
/// segment last) stay, given what was handed back before; and the new mark.
pub(crate) fn plan(extents: &[Extent], released: Released, tail: u64) -> (Vec<Release>, Released) {
    let mut ranges = Vec::new();
    let mut mark = released;
    let mut newer = 0u64;
    for (index, extent) in extents.iter().enumerate().rev() {
        let keep = tail.saturating_sub(newer).min(extent.size);
        newer = newer.saturating_add(extent.size);
        if extent.base < released.base {
            break;
        }
        let done = if extent.base == released.base {
            released.position
        } else {
            0
        };
        let to = extent.size - keep;
        if to > done {
            let sealed = index + 1 < extents.len() && to == extent.size;
            ranges.push(Release {
                index,
                from: done - done % REACH_BACK,
                to: (!sealed).then_some(to),
            });
            mark = mark.max(Released {
                base: extent.base,
                position: to,
            });
        }
    }
    ranges.reverse();
    (ranges, mark)
}

/// Tells the kernel it may drop the cached pages of `file` from `from` up to `to` (`None`: to
/// the end of the file). Advice only: a failure changes nothing the log relies on, so it is
/// not reported.
pub fn hand_back(file: &File, from: u64, to: Option<u64>) {
    let len = match to {
        None => None,
        Some(to) if to > from => NonZeroU64::new(to - from),
        Some(_) => return,
    };
    let _ = rustix::fs::fadvise(file, from, len, rustix::fs::Advice::DontNeed);
}

/// From this length a catch-up read behind the tail asks for the file's read-ahead doubled.
const LONG_READ: u64 = 4 << 20;

/// Sizes the kernel's read-ahead of `file` for a catch-up read of `length` bytes from disk:
/// doubled (`POSIX_FADV_SEQUENTIAL`) for a long read, the device's own for a short one. The
/// setting belongs to the open file, shared by its readers; the last read sets it.
///
/// Why: on the benchmark VM (`read_ahead_kb` 8 MiB) the kernel's read-ahead keeps ahead of a
/// consumer fetching 1 MiB at a time but not of one fetching 16 MiB, whose catch-up from disk
/// ran at 0.7× the 1 MiB one. Doubling it for every read cost the 1 MiB reader 5 %; sized by
/// the read, 12 catch-ups of 1 GiB each: 16 MiB fetches median 878 -> 1 056 MiB/s, 1 MiB
/// fetches level (1 226 -> 1 258). Advice only: a failure changes nothing the log relies on.
pub fn size_read_ahead(file: &File, length: u64) {
    let advice = if length >= LONG_READ {
        rustix::fs::Advice::Sequential
    } else {
        rustix::fs::Advice::Normal
    };
    let _ = rustix::fs::fadvise(file, 0, None, advice);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// Sizes and positions in the tests are in MiB.
    fn extents(sizes: &[(i64, u64)]) -> Vec<Extent> {
        sizes
            .iter()
            .map(|&(base, size)| Extent {
                base,
                size: size * MIB,
            })
            .collect()
    }

    fn at(base: i64, mib: u64) -> Released {
        Released {
            base,
            position: mib * MIB,
        }
    }

    fn release(index: usize, from: u64, to: Option<u64>) -> Release {
        Release {
            index,
            from: from * MIB,
            to: to.map(|to| to * MIB),
        }
    }

    #[test]
    fn keeps_the_tail_of_the_active_segment() {
        let (ranges, mark) = plan(&extents(&[(0, 10)]), at(0, 0), 3 * MIB);
        assert_eq!(ranges, vec![release(0, 0, Some(7))]);
        assert_eq!(mark, at(0, 7));
        // Nothing new: nothing to do.
        let (again, same) = plan(&extents(&[(0, 10)]), mark, 3 * MIB);
        assert!(again.is_empty());
        assert_eq!(same, mark);
        // More: from a little before the mark (the folio it ended in).
        let (ranges, mark) = plan(&extents(&[(0, 12)]), mark, 3 * MIB);
        assert_eq!(ranges, vec![release(0, 6, Some(9))]);
        assert_eq!(mark, at(0, 9));
    }

    #[test]
    fn the_tail_reaches_back_across_a_roll() {
        // 2 MiB in the new active segment: the last 1 MiB of the rolled one stays too.
        let (ranges, mark) = plan(&extents(&[(0, 10), (50, 2)]), at(0, 4), 3 * MIB);
        assert_eq!(ranges, vec![release(0, 4, Some(9))]);
        assert_eq!(mark, at(0, 9));
        // Later the rolled segment goes to its end and the active one up to its tail.
        let (ranges, mark) = plan(&extents(&[(0, 10), (50, 7)]), mark, 3 * MIB);
        assert_eq!(ranges, vec![release(0, 8, None), release(1, 0, Some(4))]);
        assert_eq!(mark, at(50, 4));
    }

    #[test]
    fn segments_before_the_mark_are_not_touched_again() {
        let (ranges, _) = plan(&extents(&[(0, 10), (50, 10), (90, 1)]), at(50, 5), 0);
        assert_eq!(ranges, vec![release(1, 4, None), release(2, 0, Some(1))]);
    }

    #[test]
    fn a_log_smaller_than_the_tail_stays_whole() {
        let (ranges, mark) = plan(&extents(&[(0, 1), (5, 1)]), at(0, 0), 64 * MIB);
        assert!(ranges.is_empty());
        assert_eq!(mark, at(0, 0));
    }
}
