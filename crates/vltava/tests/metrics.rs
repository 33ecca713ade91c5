//! The Prometheus endpoint of a real `vltava server`: it parses as the text exposition format,
//! and its counters move when traffic flows.

mod common;

use std::collections::BTreeMap;

use common::{ok, Server};

/// Parses Prometheus text (version 0.0.4) into `name{labels}` → value, failing on any line that
/// is neither a comment nor a sample.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.split_whitespace().collect();
            match words.first() {
                Some(&"HELP") => assert!(words.len() >= 2, "bad HELP: {line}"),
                Some(&"TYPE") => assert!(
                    matches!(
                        words.get(2),
                        Some(&("counter" | "gauge" | "histogram" | "summary" | "untyped"))
                    ),
                    "bad TYPE: {line}"
                ),
                _ => {}
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unclosed labels: {line}");
        }
        samples.insert(series.to_string(), value);
    }
    samples
}

#[test]
fn metrics_endpoint_parses_and_counters_move_with_traffic() {
    let server = Server::start(None, &[]);
    let (status, body) = server.http_get("/healthz");
    assert!(status.contains("200"), "{status}");
    assert_eq!(body, "ok\n");

    let (status, before) = server.http_get("/metrics");
    assert!(status.contains("200"), "{status}");
    let before = parse(&before);

    ok(server.cli(&["topic", "create", "metered", "--partitions", "2"]));
    ok(server.cli_with_stdin(&["produce", "metered"], Some(b"one\ntwo\nthree\n")));
    ok(server.cli(&["consume", "metered", "--from-beginning", "--count", "3"]));

    let (_, after) = server.http_get("/metrics");
    let after = parse(&after);
    let produce = r#"vltava_requests_total{api="Produce"}"#;
    assert!(
        after.get(produce).copied().unwrap_or(0.0) > before.get(produce).copied().unwrap_or(0.0),
        "{produce} did not move: {after:#?}"
    );
    assert!(
        after
            .get(r#"vltava_topic_bytes_in_total{topic="metered"}"#)
            .is_some_and(|v| *v > 0.0),
        "{after:#?}"
    );
    assert!(
        after
            .get(r#"vltava_topic_bytes_out_total{topic="metered"}"#)
            .is_some_and(|v| *v > 0.0),
        "{after:#?}"
    );
    assert!(
        after
            .keys()
            .any(|k| k.starts_with(r#"vltava_request_duration_seconds_bucket{api="Fetch""#)),
        "{after:#?}"
    );
    assert!(
        after.get("vltava_partitions").is_some_and(|v| *v >= 2.0),
        "{after:#?}"
    );
    assert!(
        after.contains_key(r#"vltava_log_size_bytes{topic="metered"}"#),
        "{after:#?}"
    );
    assert!(after.contains_key("vltava_connections"), "{after:#?}");

    let (status, _) = server.http_get("/nothing");
    assert!(status.contains("404"), "{status}");
}

/// Sum of `vltava_consumer_group_lag` for one group and topic.
fn group_lag(samples: &BTreeMap<String, f64>, group: &str, topic: &str) -> Option<f64> {
    let prefix = format!(r#"vltava_consumer_group_lag{{group="{group}",topic="{topic}","#);
    let lags: Vec<f64> = samples
        .iter()
        .filter(|(k, _)| k.starts_with(&prefix))
        .map(|(_, v)| *v)
        .collect();
    (!lags.is_empty()).then(|| lags.iter().sum())
}

#[test]
fn group_lag_follows_commits_and_a_deleted_topic_leaves_the_gauges() {
    let server = Server::start(None, &[]);
    // One partition: with two, keyless records may all land on one, and a partition the group
    // never committed has no lag to report (as in Kafka's tools).
    ok(server.cli(&["topic", "create", "lagging", "--partitions", "1"]));
    ok(server.cli_with_stdin(&["produce", "lagging"], Some(b"a\nb\nc\n")));
    ok(server.cli(&[
        "consume",
        "lagging",
        "--group",
        "readers",
        "--from-beginning",
        "--count",
        "3",
    ]));
    let (_, caught_up) = server.http_get("/metrics");
    assert_eq!(
        group_lag(&parse(&caught_up), "readers", "lagging"),
        Some(0.0),
        "{caught_up}"
    );

    ok(server.cli_with_stdin(&["produce", "lagging"], Some(b"d\ne\n")));
    let (_, behind) = server.http_get("/metrics");
    assert_eq!(
        group_lag(&parse(&behind), "readers", "lagging"),
        Some(2.0),
        "{behind}"
    );

    ok(server.cli(&["topic", "delete", "lagging"]));
    let (_, deleted) = server.http_get("/metrics");
    let deleted = parse(&deleted);
    assert!(
        !deleted.contains_key(r#"vltava_log_size_bytes{topic="lagging"}"#),
        "{deleted:#?}"
    );
    assert_eq!(group_lag(&deleted, "readers", "lagging"), None);
}
