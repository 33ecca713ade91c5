//! Measures how long recovery of a partition takes after an unclean stop.
//!
//! `cargo run --release -p vltava-log --example recovery_time -- [DIR] [MIB]`
//! writes MIB (default 1024) of 16 KiB batches into DIR (default target/recovery-time), stops
//! without a clean shutdown, drops the page cache if it can (root), and times the reopen,
//! which scans and CRC-checks every batch.

use std::time::Instant;

use vltava_log::batch::build_test_batch;
use vltava_log::{LogConfig, LogDir, LogDirOptions, TopicPartition};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .unwrap_or_else(|| "target/recovery-time".to_string());
    let mib: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1024);
    let _ = std::fs::remove_dir_all(&dir);
    let tp = TopicPartition::new("recovery", 0);
    let value = vec![b'v'; 1000];
    let values: Vec<&[u8]> = (0..16).map(|_| value.as_slice()).collect();
    let template = build_test_batch(1_700_000_000_000, &values);
    let batches = mib * 1024 * 1024 / template.len() as u64;
    {
        let log_dir = LogDir::open(dir.as_ref(), LogDirOptions::default())?;
        let log = log_dir.open_log(&tp, LogConfig::default())?;
        let started = Instant::now();
        let mut buf = template.clone();
        for _ in 0..batches {
            buf.copy_from_slice(&template);
            log.append(&buf, 0, 0)?;
        }
        log.flush(log.log_end_offset())?;
        println!(
            "wrote {} MiB in {} batches in {:.2?}; stopping without a clean shutdown",
            mib,
            batches,
            started.elapsed()
        );
    }
    let dropped = std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok();
    let started = Instant::now();
    let log_dir = LogDir::open(dir.as_ref(), LogDirOptions::default())?;
    let log = log_dir.open_log(&tp, LogConfig::default())?;
    let elapsed = started.elapsed();
    println!(
        "recovered {} records ({} MiB) in {:.2?} ({:.0} MiB/s, page cache {})",
        log.log_end_offset(),
        log.size_bytes() / (1024 * 1024),
        elapsed,
        log.size_bytes() as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64(),
        if dropped { "dropped" } else { "warm" }
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
