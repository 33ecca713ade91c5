//! Kafka's checkpoint files: a version line, a count line, then one entry per line, written
//! atomically (temp file, fsync, rename, fsync of the directory).
//!
//! Used for `recovery-point-offset-checkpoint` and `log-start-offset-checkpoint` (entries
//! `topic partition offset`) and each partition's `leader-epoch-checkpoint` (entries
//! `epoch start_offset`).

use std::path::Path;

use crate::error::{LogError, Result};
use crate::fs;

const VERSION: &str = "0";

/// Reads the entry lines of a checkpoint file; a missing file has no entries.
pub fn read_lines(path: &Path) -> Result<Vec<Vec<String>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LogError::io("read checkpoint", path, e)),
    };
    let bad = |line: usize, reason: &str| LogError::Checkpoint {
        path: path.to_path_buf(),
        line,
        reason: reason.to_string(),
    };
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(VERSION) {
        return Err(bad(1, "unsupported version"));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| bad(2, "entry count is not a number"))?;
    let entries: Vec<Vec<String>> = lines
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|fields| !fields.is_empty())
        .collect();
    if entries.len() != count {
        return Err(bad(2, "entry count does not match the entries"));
    }
    Ok(entries)
}

/// Writes entry lines atomically.
pub fn write_lines(path: &Path, entries: &[String]) -> Result<()> {
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for e in entries {
        text.push_str(e);
        text.push('\n');
    }
    fs::write_atomically(path, text.as_bytes())
}

/// `topic partition offset` entries.
pub fn read_partition_offsets(path: &Path) -> Result<Vec<(String, i32, i64)>> {
    let mut out = Vec::new();
    for (i, fields) in read_lines(path)?.into_iter().enumerate() {
        let parsed = match fields.as_slice() {
            [topic, partition, offset] => partition
                .parse()
                .ok()
                .zip(offset.parse().ok())
                .map(|(p, o)| (topic.clone(), p, o)),
            _ => None,
        };
        out.push(parsed.ok_or_else(|| LogError::Checkpoint {
            path: path.to_path_buf(),
            line: i + 3,
            reason: "expected `topic partition offset`".to_string(),
        })?);
    }
    Ok(out)
}

pub fn write_partition_offsets(path: &Path, entries: &[(String, i32, i64)]) -> Result<()> {
    let lines: Vec<String> = entries
        .iter()
        .map(|(t, p, o)| format!("{t} {p} {o}"))
        .collect();
    write_lines(path, &lines)
}

/// `epoch start_offset` entries.
pub fn read_epoch_entries(path: &Path) -> Result<Vec<(i32, i64)>> {
    let mut out = Vec::new();
    for (i, fields) in read_lines(path)?.into_iter().enumerate() {
        let parsed = match fields.as_slice() {
            [epoch, offset] => epoch.parse().ok().zip(offset.parse().ok()),
            _ => None,
        };
        out.push(parsed.ok_or_else(|| LogError::Checkpoint {
            path: path.to_path_buf(),
            line: i + 3,
            reason: "expected `epoch start_offset`".to_string(),
        })?);
    }
    Ok(out)
}

pub fn write_epoch_entries(path: &Path, entries: &[(i32, i64)]) -> Result<()> {
    let lines: Vec<String> = entries.iter().map(|(e, o)| format!("{e} {o}")).collect();
    write_lines(path, &lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_offsets_round_trip_in_kafka_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("recovery-point-offset-checkpoint");
        let entries = vec![
            ("orders".to_string(), 0, 42),
            ("my-topic".to_string(), 11, 7),
        ];
        write_partition_offsets(&path, &entries).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, "0\n2\norders 0 42\nmy-topic 11 7\n");
        assert_eq!(read_partition_offsets(&path).expect("read"), entries);
    }

    #[test]
    fn a_missing_file_has_no_entries_and_a_garbled_one_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("leader-epoch-checkpoint");
        assert!(read_epoch_entries(&path)
            .expect("missing is empty")
            .is_empty());
        std::fs::write(&path, "0\n3\n1 0\n").expect("write");
        assert!(read_epoch_entries(&path).is_err());
        std::fs::write(&path, "0\n1\n1 x\n").expect("write");
        assert!(read_epoch_entries(&path).is_err());
    }
}
