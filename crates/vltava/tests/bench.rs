//! `vltava bench` against a real `vltava server`: the counts it reports (never its timings).

mod common;

use common::{ok, stdout, vltava, Server};

/// The record count on the summary line that starts with `what` ("produced", "consumed").
fn count(out: &str, what: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{what} ")))
        .unwrap_or_else(|| panic!("no {what:?} line in:\n{out}"));
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"))
}

#[test]
fn bench_produce_then_consume_reports_every_record() {
    let server = Server::start(None, &[]);
    let produced = stdout(&ok(server.cli(&[
        "bench",
        "produce",
        "--topic",
        "perf",
        "--records",
        "2000",
        "--record-size",
        "100",
        "--partitions",
        "3",
        "--producers",
        "2",
        "--acks",
        "all",
    ])));
    assert_eq!(count(&produced, "produced"), 2000, "{produced}");
    assert!(produced.contains("(200000 bytes)"), "{produced}");
    assert!(
        produced.contains("send-to-ack latency ms: p50 "),
        "{produced}"
    );

    // The topic was created with the partitions asked for.
    let describe = stdout(&ok(server.cli(&["topic", "describe", "perf"])));
    assert!(describe.contains("perf: 3 partitions"), "{describe}");

    // Without --records the consumers read until every partition is caught up.
    let consumed = stdout(&ok(server.cli(&[
        "bench",
        "consume",
        "--topic",
        "perf",
        "--consumers",
        "2",
    ])));
    assert_eq!(count(&consumed, "consumed"), 2000, "{consumed}");

    // With --records they stop there; --json is one object with the same count.
    let json = stdout(&ok(server.cli(&[
        "bench",
        "consume",
        "--topic",
        "perf",
        "--records",
        "500",
        "--json",
    ])));
    assert_eq!(json.lines().count(), 1, "{json}");
    assert!(json.contains("\"consumed\":{\"records\":500,"), "{json}");
}

#[test]
fn bench_consume_over_the_wire_client_reads_every_record_and_its_bytes() {
    let server = Server::start(None, &[]);
    // lz4 batches: the wire client has to inflate them to count records and value bytes.
    let produced = stdout(&ok(server.cli(&[
        "bench",
        "produce",
        "--topic",
        "wire",
        "--records",
        "3000",
        "--record-size",
        "50",
        "--partitions",
        "3",
        "--compression",
        "lz4",
        "--acks",
        "1",
    ])));
    assert_eq!(count(&produced, "produced"), 3000, "{produced}");
    let consumed = stdout(&ok(server.cli(&[
        "bench",
        "consume",
        "--topic",
        "wire",
        "--client",
        "wire",
        "--consumers",
        "2",
        // Small fetches, so each partition takes several, each starting where the last ended.
        "-X",
        "max.partition.fetch.bytes=1024",
    ])));
    assert_eq!(count(&consumed, "consumed"), 3000, "{consumed}");
    assert!(consumed.contains("(150000 bytes)"), "{consumed}");

    let some = stdout(&ok(server.cli(&[
        "bench",
        "consume",
        "--topic",
        "wire",
        "--client",
        "wire",
        "--records",
        "10",
    ])));
    // It stops after the fetch that reached 10 (which may hold every partition's records).
    assert!(count(&some, "consumed") >= 10, "{some}");

    let bad = server.cli(&[
        "bench",
        "consume",
        "--topic",
        "wire",
        "--client",
        "wire",
        "-X",
        "linger.ms=5",
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("linger.ms"), "{err}");
}

#[test]
fn bench_produce_over_the_wire_client_lands_every_record_for_librdkafka_to_read() {
    let server = Server::start(None, &[]);
    for (topic, acks, compression) in [("wire-all", "all", "zstd"), ("wire-none", "0", "none")] {
        let produced = stdout(&ok(server.cli(&[
            "bench",
            "produce",
            "--client",
            "wire",
            "--topic",
            topic,
            "--records",
            "5000",
            "--record-size",
            "64",
            "--partitions",
            "3",
            "--acks",
            acks,
            "--compression",
            compression,
            // Small batches, several in flight at once.
            "-X",
            "batch.num.messages=100",
        ])));
        assert_eq!(count(&produced, "produced"), 5000, "{produced}");
        assert!(produced.contains("(320000 bytes)"), "{produced}");
        // A real client finds them all, in every partition. acks=0 had no answer to wait for,
        // so its last requests may still be on their way: wait for the count, not the end.
        let mut read = vec!["bench", "consume", "--topic", topic];
        if acks == "0" {
            read.extend(["--records", "5000"]);
        }
        let consumed = stdout(&ok(server.cli(&read)));
        assert_eq!(count(&consumed, "consumed"), 5000, "{topic}: {consumed}");
        assert!(consumed.contains("(320000 bytes)"), "{consumed}");
    }
    let describe = stdout(&ok(server.cli(&["topic", "describe", "wire-all"])));
    assert!(describe.contains("wire-all: 3 partitions"), "{describe}");

    let idempotent = server.cli(&[
        "bench",
        "produce",
        "--client",
        "wire",
        "--topic",
        "wire-all",
        "--idempotence",
    ]);
    assert!(!idempotent.status.success());
    let err = String::from_utf8_lossy(&idempotent.stderr);
    assert!(err.contains("idempotent"), "{err}");
}

#[test]
fn bench_e2e_reads_back_every_stamped_record() {
    let server = Server::start(None, &[]);
    let out = stdout(&ok(server.cli(&[
        "bench",
        "e2e",
        "--topic",
        "latency",
        "--records",
        "300",
        "--throughput",
        "1000",
        "--acks",
        "1",
    ])));
    assert_eq!(count(&out, "produced"), 300, "{out}");
    assert_eq!(count(&out, "consumed"), 300, "{out}");
    assert!(out.contains("end-to-end latency ms: p50 "), "{out}");
}

#[test]
fn bench_e2e_over_the_wire_clients_reads_back_every_record_with_its_own_stamp() {
    let server = Server::start(None, &[]);
    let started = std::time::Instant::now();
    let out = stdout(&ok(server.cli(&[
        "bench",
        "e2e",
        "--client",
        "wire",
        "--topic",
        "wire-latency",
        "--partitions",
        "3",
        "--consumers",
        "2",
        "--records",
        "3000",
        "--throughput",
        "3000",
        "--record-size",
        "64",
        // Producer and consumer keys side by side.
        "-X",
        "linger.ms=0",
        "-X",
        "fetch.wait.max.ms=100",
    ])));
    let run_ms = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!(count(&out, "produced"), 3000, "{out}");
    assert_eq!(count(&out, "consumed"), 3000, "{out}");
    // Every record carries its own due time: none can have waited longer than the whole run
    // (a missing or shared stamp reads as decades and saturates the histogram at 10 minutes).
    let line = out
        .lines()
        .find(|l| l.starts_with("end-to-end latency ms:"))
        .unwrap_or_else(|| panic!("no end-to-end line in:\n{out}"));
    let max: f64 = line
        .rsplit("max ")
        .next()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no max in {line:?}"));
    assert!(
        max > 0.0 && max < run_ms,
        "max {max} ms in a {run_ms} ms run: {line}"
    );

    let bad = server.cli(&["bench", "e2e", "--client", "wire", "-X", "bogus=1"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("bogus") && err.contains("linger.ms"), "{err}");
}

#[test]
fn bench_consume_of_an_unknown_topic_fails_with_its_name() {
    let server = Server::start(None, &[]);
    let out = server.cli(&["bench", "consume", "--topic", "nope"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown topic \"nope\""), "{err}");
}

#[test]
fn bench_help_shows_examples() {
    for sub in ["produce", "consume", "e2e"] {
        let help = stdout(&ok(vltava(&["bench", sub, "--help"])));
        assert!(help.contains("Example"), "{sub}:\n{help}");
        assert!(help.contains("vltava bench "), "{sub}:\n{help}");
    }
}

#[test]
fn bench_refuses_a_rate_or_duration_it_cannot_pace_in_one_line() {
    for (flag, value) in [
        ("--throughput", "0"),
        ("--throughput", "NaN"),
        ("--duration", "1e30"),
    ] {
        let out = vltava(&["bench", "e2e", flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{flag} {value}: {err}");
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
}
