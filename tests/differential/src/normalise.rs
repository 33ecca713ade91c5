//! What may differ between two correct brokers is rewritten to a fixed value before comparing:
//! throttle times, cluster ids, ports, hosts, topic ids, producer ids, member ids, broker-assigned
//! timestamps and free-text error messages. Lists whose order carries no meaning are sorted.
//! Node ids need no rewriting: Vltava runs with `node.id=1`, as the reference broker does.

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use uuid::Uuid;

pub trait Normalise {
    fn normalise(&mut self);
}

/// A non-nil id becomes one fixed id; nil (no id) stays nil.
pub fn uuid(u: &mut Uuid) {
    if !u.is_nil() {
        *u = Uuid::from_u128(0xffff);
    }
}

/// Error messages are free text for people; clients branch on the codes.
pub fn message(m: &mut Option<StrBytes>) {
    *m = None;
}

fn non_empty(s: &mut StrBytes, to: &'static str) {
    if !s.is_empty() {
        *s = StrBytes::from_static_str(to);
    }
}

fn port(p: &mut i32) {
    if *p > 0 {
        *p = 9092;
    }
}

/// Record batches become a readable summary: per record its offset, timestamp, key, value and
/// headers, per batch its base offset and attributes (what a client sees of them).
pub fn records(r: &mut Option<Bytes>) {
    let Some(bytes) = r.as_mut() else { return };
    if bytes.is_empty() {
        return;
    }
    let mut buf = bytes.clone();
    let mut out = String::new();
    match RecordBatchDecoder::decode_all(&mut buf) {
        Ok(batches) => {
            for b in batches {
                out.push_str(&format!(
                    "batch compression={:?} control={} transactional={}\n",
                    b.compression,
                    b.records.first().is_some_and(|r| r.control),
                    b.records.first().is_some_and(|r| r.transactional)
                ));
                for rec in b.records {
                    out.push_str(&format!(
                        "  offset={} ts={} type={:?} key={:?} value={:?} headers={}\n",
                        rec.offset,
                        rec.timestamp,
                        rec.timestamp_type,
                        rec.key,
                        rec.value,
                        rec.headers.len()
                    ));
                }
            }
        }
        Err(e) => out = format!("<undecodable records: {e}>"),
    }
    *bytes = Bytes::from(out);
}

impl Normalise for ApiVersionsResponse {
    fn normalise(&mut self) {
        self.throttle_time_ms = 0;
    }
}

impl Normalise for MetadataResponse {
    fn normalise(&mut self) {
        self.throttle_time_ms = 0;
        self.cluster_id = self.cluster_id.as_ref().map(|_| "<cluster>".into());
        for b in &mut self.brokers {
            port(&mut b.port);
        }
        for t in &mut self.topics {
            uuid(&mut t.topic_id);
        }
        self.topics.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

impl Normalise for CreateTopicsResponse {
    fn normalise(&mut self) {
        self.throttle_time_ms = 0;
        for t in &mut self.topics {
            uuid(&mut t.topic_id);
            message(&mut t.error_message);
            // The configs of a created topic are compared one by one by the describe_configs
            // case (`config_steps`); here only whether they came back.
            if let Some(configs) = &mut t.configs {
                configs.clear();
            }
        }
        self.topics.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

impl Normalise for ProduceResponse {
    fn normalise(&mut self) {
        self.throttle_time_ms = 0;
        for e in &mut self.node_endpoints {
            port(&mut e.port);
        }
        for t in &mut self.responses {
            uuid(&mut t.topic_id);
            for p in &mut t.partition_responses {
                if p.log_append_time_ms != -1 {
                    p.log_append_time_ms = 0;
                }
                message(&mut p.error_message);
                for e in &mut p.record_errors {
                    message(&mut e.batch_index_error_message);
                }
            }
        }
    }
}

impl Normalise for FetchResponse {
    fn normalise(&mut self) {
        self.throttle_time_ms = 0;
        if self.session_id != 0 {
            self.session_id = 1;
        }
        for e in &mut self.node_endpoints {
            port(&mut e.port);
        }
        for t in &mut self.responses {
            uuid(&mut t.topic_id);
            for p in &mut t.partitions {
                records(&mut p.records);
            }
        }
    }
}

impl Normalise for ListOffsetsResponse {
    fn normalise(&mut self) {
        self.throttle_time_ms = 0;
    }
}

impl Normalise for DescribeConfigsResponse {
    fn normalise(&mut self) {
        self.throttle_time_ms = 0;
        for r in &mut self.results {
            message(&mut r.error_message);
            r.configs.sort_by(|a, b| a.name.cmp(&b.name));
            for c in &mut r.configs {
                message(&mut c.documentation);
            }
        }
    }
}

impl Normalise for FindCoordinatorResponse {
    fn normalise(&mut self) {
        self.throttle_time_ms = 0;
        message(&mut self.error_message);
        port(&mut self.port);
        for c in &mut self.coordinators {
            port(&mut c.port);
            message(&mut c.error_message);
        }
    }
}

impl Normalise for JoinGroupResponse {
    fn normalise(&mut self) {
        self.throttle_time_ms = 0;
        non_empty(&mut self.member_id, "<member>");
        non_empty(&mut self.leader, "<member>");
        for m in &mut self.members {
            non_empty(&mut m.member_id, "<member>");
        }
    }
}

impl Normalise for SyncGroupResponse {
    fn normalise(&mut self) {
        self.throttle_time_ms = 0;
    }
}

impl Normalise for HeartbeatResponse {
    fn normalise(&mut self) {
        self.throttle_time_ms = 0;
    }
}

impl Normalise for LeaveGroupResponse {
    fn normalise(&mut self) {
        self.throttle_time_ms = 0;
        for m in &mut self.members {
            non_empty(&mut m.member_id, "<member>");
        }
    }
}

impl Normalise for OffsetCommitResponse {
    fn normalise(&mut self) {
        self.throttle_time_ms = 0;
        for t in &mut self.topics {
            uuid(&mut t.topic_id);
        }
    }
}

impl Normalise for OffsetFetchResponse {
    fn normalise(&mut self) {
        self.throttle_time_ms = 0;
        for g in &mut self.groups {
            for t in &mut g.topics {
                uuid(&mut t.topic_id);
            }
        }
    }
}

impl Normalise for InitProducerIdResponse {
    fn normalise(&mut self) {
        self.throttle_time_ms = 0;
        if self.producer_id.0 >= 0 {
            self.producer_id = ProducerId(1000);
        }
    }
}

impl Normalise for SaslHandshakeResponse {
    fn normalise(&mut self) {}
}

impl Normalise for AddPartitionsToTxnResponse {
    fn normalise(&mut self) {
        self.throttle_time_ms = 0;
    }
}

impl Normalise for EndTxnResponse {
    fn normalise(&mut self) {
        self.throttle_time_ms = 0;
        if self.producer_id.0 >= 0 {
            self.producer_id = ProducerId(1000);
        }
    }
}

impl Normalise for TxnOffsetCommitResponse {
    fn normalise(&mut self) {
        self.throttle_time_ms = 0;
    }
}
