//! Metric names, and the calls the broker records through (the `metrics` facade: a no-op until
//! the binary installs a recorder, so tests and embedders pay nothing).
//!
//! Per-API handles are registered once, on the first request, and reused: the request path does
//! no name formatting or registry lookup. Gauges that describe state (partitions, log size) are
//! not kept here; whoever renders a scrape reads them from the broker at that moment.

use std::sync::OnceLock;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use metrics::{Counter, Histogram};

/// Requests handled, by API (`api="Produce"`).
pub const REQUESTS: &str = "vltava_requests_total";
/// Time from a decoded request until its answer is ready to write, by API: it includes an
/// acks=all fsync, a long-polling fetch, and the wait behind earlier answers on the connection.
pub const REQUEST_SECONDS: &str = "vltava_request_duration_seconds";
/// Record batch bytes appended by producers, by topic.
pub const BYTES_IN: &str = "vltava_topic_bytes_in_total";
/// Record batch bytes sent to fetchers, by topic.
pub const BYTES_OUT: &str = "vltava_topic_bytes_out_total";
/// Client connections open now.
pub const CONNECTIONS: &str = "vltava_connections";
/// Client connections accepted since start.
pub const CONNECTIONS_ACCEPTED: &str = "vltava_connections_accepted_total";

/// Highest API key kafka-protocol knows, plus one.
const API_KEYS: usize = 93;

struct PerApi {
    requests: Counter,
    seconds: Histogram,
}

static PER_API: OnceLock<Vec<Option<PerApi>>> = OnceLock::new();

fn per_api() -> &'static [Option<PerApi>] {
    PER_API.get_or_init(|| {
        let mut table: Vec<Option<PerApi>> = (0..API_KEYS).map(|_| None).collect();
        for route in crate::handlers::ROUTES {
            let api = format!("{:?}", route.api_key);
            if let Some(slot) = table.get_mut(route.api_key as usize) {
                *slot = Some(PerApi {
                    requests: metrics::counter!(REQUESTS, "api" => api.clone()),
                    seconds: metrics::histogram!(REQUEST_SECONDS, "api" => api),
                });
            }
        }
        table
    })
}

/// One request of `api_key` handled in `elapsed`.
pub fn request(api_key: ApiKey, elapsed: Duration) {
    if let Some(Some(m)) = per_api().get(api_key as usize) {
        m.requests.increment(1);
        m.seconds.record(elapsed.as_secs_f64());
    }
}

/// A connection opened (`+1`) or closed (`-1`).
pub fn connection(delta: f64) {
    metrics::gauge!(CONNECTIONS).increment(delta);
    if delta > 0.0 {
        metrics::counter!(CONNECTIONS_ACCEPTED).increment(1);
    }
}
