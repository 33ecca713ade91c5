//! The Prometheus endpoint (`metrics.listener`, default 127.0.0.1:9644): `GET /metrics` in the
//! text exposition format, `GET /healthz`. The broker records through the `metrics` facade
//! (`vltava_broker::metrics`); this module installs the recorder, and serves HTTP with a few
//! lines of tokio: two fixed GETs need no web framework.
//!
//! Gauges that describe state (partitions, log size per topic, consumer group lag, replication
//! health) are not kept in the recorder: they are read from the broker at each scrape and
//! written after the recorder's text, so a deleted topic or group simply stops appearing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};
use vltava_broker::Broker;

/// Latency buckets (seconds): sub-millisecond handler times up to multi-second fsyncs.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Largest request head we read; a scrape is one short GET.
const MAX_REQUEST: usize = 8 * 1024;

/// Installs the process-wide recorder. Call before the broker starts: handles registered earlier
/// record nowhere.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), SECONDS_BUCKETS)
        .context("metrics buckets")?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).context("installing the metrics recorder")?;
    describe();
    Ok(handle)
}

fn describe() {
    use vltava_broker::metrics as m;
    metrics::describe_counter!(m::REQUESTS, "Kafka requests handled, by API");
    metrics::describe_histogram!(
        m::REQUEST_SECONDS,
        metrics::Unit::Seconds,
        "Time from a decoded request until its answer is ready, by API (fsync and long polls included)"
    );
    metrics::describe_counter!(
        m::BYTES_IN,
        metrics::Unit::Bytes,
        "Record bytes appended, by topic"
    );
    metrics::describe_counter!(
        m::BYTES_OUT,
        metrics::Unit::Bytes,
        "Record bytes read for fetches, by topic"
    );
    metrics::describe_gauge!(m::CONNECTIONS, "Client connections open");
    metrics::describe_counter!(m::CONNECTIONS_ACCEPTED, "Client connections accepted");
    metrics::describe_histogram!(
        "vltava_log_fsync_seconds",
        metrics::Unit::Seconds,
        "Duration of one log fsync round (group commit)"
    );
}

/// Binds `addr` and serves scrapes until the runtime stops. A port already in use is a warning,
/// not a failed start: metrics must never keep a broker down.
pub async fn serve(addr: SocketAddr, handle: PrometheusHandle, broker: Arc<Broker>) {
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            warn!("metrics endpoint disabled: cannot listen on {addr} (metrics.listener): {e}");
            return;
        }
    };
    match listener.local_addr() {
        Ok(bound) => info!("metrics on http://{bound}/metrics"),
        Err(_) => info!("metrics on http://{addr}/metrics"),
    }
    // Histograms keep samples until upkeep drains them; do it even if nobody scrapes.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!("metrics accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handle = handle.clone();
        let broker = broker.clone();
        tokio::spawn(async move {
            let answered =
                tokio::time::timeout(Duration::from_secs(10), answer(stream, &handle, &broker))
                    .await;
            if let Ok(Err(e)) = answered {
                debug!("metrics request from {peer}: {e}");
            }
        });
    }
}

async fn answer(
    mut stream: TcpStream,
    handle: &PrometheusHandle,
    broker: &Arc<Broker>,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if head.len() > MAX_REQUEST {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            )
            .await;
        }
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or(path);
    match (method, path) {
        ("GET", "/metrics") => {
            handle.run_upkeep();
            let mut body = handle.render();
            render_state(broker, &mut body).await;
            respond(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &body,
            )
            .await
        }
        ("GET", "/healthz") => respond(&mut stream, "200 OK", "text/plain", "ok\n").await,
        ("GET", _) => respond(&mut stream, "404 Not Found", "text/plain", "try /metrics\n").await,
        _ => respond(&mut stream, "405 Method Not Allowed", "text/plain", "").await,
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Appends the gauges read from the broker's state at this moment.
async fn render_state(broker: &Arc<Broker>, out: &mut String) {
    let partitions = broker.replicas.partitions();
    gauge(
        out,
        "vltava_partitions",
        "Partitions this broker leads",
        [(String::new(), partitions.len() as u64)],
    );

    let mut size: BTreeMap<String, u64> = BTreeMap::new();
    let mut high_watermarks: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for p in &partitions {
        *size
            .entry(format!("topic=\"{}\"", escape(&p.topic)))
            .or_default() += p.log.size_bytes();
        high_watermarks.insert((p.topic.as_str(), p.index), p.high_watermark());
    }
    gauge(
        out,
        "vltava_log_size_bytes",
        "Log size on disk in bytes, by topic",
        size,
    );

    // Groups load lazily from __consumer_offsets; listing them loads them all.
    if let Err(e) = broker.groups.list_groups(broker, &[], &[]).await {
        debug!("metrics: groups not loaded: {e}");
    }
    let lag = broker.groups.committed_offsets().into_iter().filter_map(
        |(group, topic, partition, offset)| {
            let end = *high_watermarks.get(&(topic.as_str(), partition))?;
            let labels = format!(
                "group=\"{}\",topic=\"{}\",partition=\"{partition}\"",
                escape(&group),
                escape(&topic)
            );
            Some((labels, end.saturating_sub(offset).max(0) as u64))
        },
    );
    gauge(
        out,
        "vltava_consumer_group_lag",
        "Records between a group's committed offset and the high watermark, by partition",
        lag,
    );

    let image = broker.image();
    let (mut under_replicated, mut offline) = (0u64, 0u64);
    for topic in image.topics() {
        for p in &topic.partitions {
            if p.leader < 0 {
                offline += 1;
            } else if p.isr.len() < p.replicas.len() {
                under_replicated += 1;
            }
        }
    }
    gauge(
        out,
        "vltava_under_replicated_partitions",
        "Partitions with fewer in-sync replicas than replicas",
        [(String::new(), under_replicated)],
    );
    gauge(
        out,
        "vltava_offline_partitions",
        "Partitions without a leader",
        [(String::new(), offline)],
    );
}

/// One gauge family in the text exposition format; `labels` is the inside of `{...}`.
fn gauge(
    out: &mut String,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
    out.push('\n');
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
