//! Writing unflushed bytes back to disk as they come, not in the kernel's bursts.
//!
//! Without it, acks=1 data (no fsync) stays dirty until the kernel's writeback timer (30 s) or
//! its dirty limit (10 % of memory) and then goes out in one burst: on the benchmark VM 2.2 GB
//! in four seconds, during which an acks=all producer's fsync on another partition waited up to
//! 0.7 s behind it. Started a MiB at a time, those bytes trickle to disk at the rate they
//! arrive, and once clean they can leave the page cache with the flushed ones. RocksDB
//! (`bytes_per_sync`) and PostgreSQL (`backend_flush_after`) do the same for the same reason.
//!
//! `sync_file_range` makes nothing durable (no metadata, no device cache flush): durability is
//! still the fsync's alone. Neither rustix nor nix wraps it, hence the one `unsafe` call.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;

/// Starts writing `from..to` of `file` to disk and returns without waiting. Advice only: a
/// failure changes nothing the log relies on, so it is not reported.
pub fn start(file: &File, from: u64, to: u64) {
    if to > from {
        call(file, from, to - from, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// Writes `from..to` of `file` (`None`: to its end) and waits until those pages are on disk, so
/// that handing them back drops them; quick when they were written back before.
pub fn wait(file: &File, from: u64, to: Option<u64>) {
    let len = match to {
        None => 0, // sync_file_range's "to the end of the file"
        Some(to) if to > from => to - from,
        Some(_) => return,
    };
    call(
        file,
        from,
        len,
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
    );
}

fn call(file: &File, from: u64, len: u64, flags: libc::c_uint) {
    let (Ok(offset), Ok(nbytes)) = (libc::off64_t::try_from(from), libc::off64_t::try_from(len))
    else {
        return;
    };
    // SAFETY: sync_file_range reads no memory of ours; the descriptor is valid for the call
    // because `file` is borrowed for its duration, and any offsets are accepted (EINVAL at worst).
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, nbytes, flags) };
}
