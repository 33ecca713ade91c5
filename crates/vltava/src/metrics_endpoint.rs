//! The Prometheus endpoint (`metrics.listener`, default 127.0.0.1:9644): `GET /metrics` in the
//! text exposition format, `GET /healthz`. The broker records through the `metrics` facade
//! (`vltava_broker::metrics`); this module installs the recorder, sets the gauges that describe
//! state (partitions, log size, replication health) at scrape time, and serves HTTP with a few
//! lines of tokio: two fixed GETs need no web framework.

use std::collections::BTreeMap;
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
        "Time from a decoded request to its handler's reply, by API"
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
    metrics::describe_gauge!("vltava_partitions", "Partitions this broker leads");
    metrics::describe_gauge!(
        "vltava_log_size_bytes",
        metrics::Unit::Bytes,
        "Log size on disk, by topic"
    );
    metrics::describe_gauge!(
        "vltava_under_replicated_partitions",
        "Partitions with fewer in-sync replicas than replicas"
    );
    metrics::describe_gauge!("vltava_offline_partitions", "Partitions without a leader");
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
    broker: &Broker,
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
            update_state_gauges(broker);
            handle.run_upkeep();
            let body = handle.render();
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

/// Gauges read from the broker's state at scrape time (nothing to keep in step).
fn update_state_gauges(broker: &Broker) {
    let partitions = broker.replicas.partitions();
    metrics::gauge!("vltava_partitions").set(partitions.len() as f64);
    let mut size: BTreeMap<&str, u64> = BTreeMap::new();
    for p in &partitions {
        *size.entry(p.topic.as_str()).or_default() += p.log.size_bytes();
    }
    for (topic, bytes) in size {
        metrics::gauge!("vltava_log_size_bytes", "topic" => topic.to_string()).set(bytes as f64);
    }
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
    metrics::gauge!("vltava_under_replicated_partitions").set(under_replicated as f64);
    metrics::gauge!("vltava_offline_partitions").set(offline as f64);
}
