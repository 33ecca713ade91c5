//! A full disk: appends fail with KAFKA_STORAGE_ERROR, nothing half-written stays behind, and
//! everything acknowledged before is still readable and survives a restart. Uses a tiny tmpfs,
//! so it needs root (as CI has); elsewhere it says so and does nothing.

mod common;

use std::process::Command;

use common::*;
use vltava_log::LogConfig;

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_appends_cleanly_and_keeps_what_was_acknowledged() {
    let root = tempfile::tempdir().expect("tempdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(root.path())
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("SKIPPED: mounting a small tmpfs needs root; the disk-full test did not run");
        return;
    }
    let _mount = Mount(root.path().to_path_buf());
    let config = LogConfig {
        segment_bytes: 64 * 1024,
        ..LogConfig::default()
    };
    let mut acknowledged = Vec::new();
    {
        let (_dir, log) = open(root.path(), config.clone());
        let mut i = 0;
        let error = loop {
            let b = batch(i, &format!("{i:0>500}"), 4);
            match log.append(&b, 0, 0) {
                Ok(info) => acknowledged.push(as_stored(&b, &info, 0)),
                Err(e) => break e,
            }
            i += 1;
            assert!(i < 10_000, "a 256 KiB file system never filled up");
        };
        assert_eq!(error.kafka_error_code(), 56, "{error}");
        let survivors: Vec<Vec<u8>> = read_all(&log, 0).into_iter().map(|(_, b)| b).collect();
        assert_eq!(survivors, acknowledged, "reads still work on a full disk");
        let on_disk: u64 = segment_files(&root.path().join("orders-0"))
            .into_iter()
            .map(|p| std::fs::metadata(p).expect("stat").len())
            .sum();
        let acked_bytes: usize = acknowledged.iter().map(Vec::len).sum();
        assert_eq!(
            on_disk, acked_bytes as u64,
            "no half-written batch left in the segment files"
        );
    }
    // The operator frees space; the next start recovers exactly the acknowledged batches.
    let grown = Command::new("mount")
        .args(["-o", "remount,size=2m"])
        .arg(root.path())
        .status()
        .expect("remount");
    assert!(grown.success());
    let (_dir, log) = open(root.path(), config);
    let survivors: Vec<Vec<u8>> = read_all(&log, 0).into_iter().map(|(_, b)| b).collect();
    assert_eq!(survivors.len(), acknowledged.len());
    assert_eq!(survivors, acknowledged);
}
