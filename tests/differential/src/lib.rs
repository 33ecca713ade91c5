//! Differential testing: the same requests against Apache Kafka 4.4 and Vltava.
//!
//! A case is a function that drives one broker through a [`Ctx`]: it opens raw connections,
//! sends requests built with `kafka-protocol`, and records every response (normalised, then
//! Debug-formatted) or the fact that the broker closed the connection, as one step of a
//! transcript. The runner calls the case once per broker and compares the transcripts step by
//! step; a step that differs fails the case unless `KNOWN_DIFFERENCES.md` lists it.

pub mod known;
pub mod normalise;
pub mod vltava;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, Request, StrBytes};

pub use normalise::Normalise;

pub type Result<T> = std::result::Result<T, String>;

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// A blocking Kafka connection that speaks whatever request it is handed.
pub struct Conn {
    stream: TcpStream,
    next_correlation_id: i32,
}

/// What a broker did with one request.
pub enum Reply<T> {
    Response(T),
    /// The broker closed the connection (EOF or reset) instead of answering.
    Closed,
}

impl Conn {
    pub fn connect(addr: &str) -> Result<Conn> {
        let stream = TcpStream::connect(addr).map_err(err("connect"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(err("timeout"))?;
        stream.set_nodelay(true).map_err(err("nodelay"))?;
        Ok(Conn {
            stream,
            next_correlation_id: 1,
        })
    }

    /// A request frame (size prefix included) with the next correlation id.
    pub fn frame<R: Request>(&mut self, version: i16, request: &R) -> Result<Bytes> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("vltava-differential")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .map_err(err("encode header"))?;
        request
            .encode(&mut body, version)
            .map_err(|e| format!("encode request (api key {} v{version}): {e}", R::KEY))?;
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.put_slice(&body);
        Ok(frame.freeze())
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        // A broker may close while we write (that is an outcome, seen on the next read).
        let _ = self.stream.write_all(bytes);
        Ok(())
    }

    /// One response frame without its size prefix; None when the broker closed the connection.
    pub fn read_frame(&mut self) -> Result<Option<Bytes>> {
        let mut size = [0u8; 4];
        match self.stream.read_exact(&mut size) {
            Ok(()) => {}
            Err(e) if is_closed(&e) => return Ok(None),
            Err(e) => return Err(format!("read response size: {e}")),
        }
        let size = i32::from_be_bytes(size);
        if !(0..=64 << 20).contains(&size) {
            return Err(format!("response size {size}"));
        }
        let mut buf = vec![0u8; size as usize];
        match self.stream.read_exact(&mut buf) {
            Ok(()) => Ok(Some(Bytes::from(buf))),
            Err(e) if is_closed(&e) => Ok(None),
            Err(e) => Err(format!("read response: {e}")),
        }
    }

    /// Reads the response to a request of type `R` sent at `version`.
    pub fn recv<R: Request>(&mut self, version: i16) -> Result<Reply<R::Response>> {
        let Some(mut frame) = self.read_frame()? else {
            return Ok(Reply::Closed);
        };
        let header_version = <R::Response as HeaderVersion>::header_version(version);
        let _header = ResponseHeader::decode(&mut frame, header_version)
            .map_err(err("decode response header"))?;
        let body = <R::Response as Decodable>::decode(&mut frame, version)
            .map_err(err("decode response"))?;
        if frame.has_remaining() {
            return Err(format!("{} trailing bytes in response", frame.remaining()));
        }
        Ok(Reply::Response(body))
    }

    pub fn call<R: Request>(&mut self, version: i16, request: &R) -> Result<Reply<R::Response>> {
        let frame = self.frame(version, request)?;
        self.send_raw(&frame)?;
        self.recv::<R>(version)
    }

    /// Like `call`, for helper steps that must succeed.
    pub fn must<R: Request>(&mut self, version: i16, request: &R) -> Result<R::Response> {
        match self.call(version, request)? {
            Reply::Response(r) => Ok(r),
            Reply::Closed => Err(format!("connection closed on api key {}", R::KEY)),
        }
    }

    /// True if the broker closes the connection within `wait` without sending anything.
    pub fn closes_within(&mut self, wait: Duration) -> Result<bool> {
        self.stream
            .set_read_timeout(Some(wait))
            .map_err(err("timeout"))?;
        let mut byte = [0u8; 1];
        let closed = match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) if is_closed(&e) => true,
            Err(_) => false, // timed out: still open
        };
        self.stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(err("timeout"))?;
        Ok(closed)
    }
}

fn is_closed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}

/// One broker under test.
#[derive(Clone)]
pub struct Target {
    /// "kafka" or "vltava".
    pub name: &'static str,
    /// Default broker (auto-create on).
    pub bootstrap: String,
    /// A broker with `auto.create.topics.enable=false`, when there is one.
    pub no_auto_create: Option<String>,
}

/// What a case sees: the broker it runs against, the request versions both brokers share,
/// a run-unique suffix for topic names, and the transcript it records.
pub struct Ctx {
    pub target: Target,
    /// The case running, for topic names.
    pub case: String,
    versions: HashMap<i16, i16>,
    run: String,
    pub steps: Vec<(String, String)>,
}

impl Ctx {
    pub fn new(target: Target, case: &str, versions: HashMap<i16, i16>, run: String) -> Ctx {
        Ctx {
            target,
            case: case.replace(['/', '_'], "-"),
            versions,
            run,
            steps: Vec::new(),
        }
    }

    pub fn conn(&self) -> Result<Conn> {
        Conn::connect(&self.target.bootstrap)
    }

    /// The highest version of `key` that both brokers and `kafka-protocol` support.
    pub fn v(&self, key: ApiKey) -> i16 {
        self.versions.get(&(key as i16)).copied().unwrap_or(0)
    }

    /// A topic name unique to this run (the same on both brokers, so transcripts compare).
    pub fn topic(&self, base: &str) -> String {
        format!("{}-{base}-{}", self.case, self.run)
    }

    pub fn record(&mut self, step: &str, text: String) {
        self.steps.push((step.to_string(), text));
    }

    /// Sends `request` at the shared version, records the normalised response as `step`.
    pub fn step<R: Request>(&mut self, conn: &mut Conn, step: &str, request: &R) -> Result<()>
    where
        R::Response: Normalise + std::fmt::Debug,
    {
        let version = self.v(ApiKey::try_from(R::KEY).map_err(|_| "api key")?);
        self.step_at(conn, step, version, request)
    }

    pub fn step_at<R: Request>(
        &mut self,
        conn: &mut Conn,
        step: &str,
        version: i16,
        request: &R,
    ) -> Result<()>
    where
        R::Response: Normalise + std::fmt::Debug,
    {
        let reply = conn.call(version, request)?;
        self.record_reply(step, reply);
        Ok(())
    }

    pub fn record_reply<T: Normalise + std::fmt::Debug>(&mut self, step: &str, reply: Reply<T>) {
        let text = match reply {
            Reply::Response(mut r) => {
                r.normalise();
                format!("{r:#?}")
            }
            Reply::Closed => "<connection closed by broker>".to_string(),
        };
        self.record(step, text);
    }
}

/// Polls `f` until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("condition not met within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The common request versions of two brokers' ApiVersions answers, capped by what
/// `kafka-protocol` can encode.
pub fn common_versions(a: &[(i16, i16, i16)], b: &[(i16, i16, i16)]) -> HashMap<i16, i16> {
    let mut out = HashMap::new();
    for &(key, _, amax) in a {
        if let Some(&(_, _, bmax)) = b.iter().find(|(k, _, _)| *k == key) {
            let Ok(api) = ApiKey::try_from(key) else {
                continue;
            };
            let pmax = protocol_max(api);
            out.insert(key, amax.min(bmax).min(pmax));
        }
    }
    out
}

/// The highest request version kafka-protocol knows for `key`.
pub fn protocol_max(key: ApiKey) -> i16 {
    use kafka_protocol::messages::*;
    macro_rules! max {
        ($($k:ident => $t:ty),* $(,)?) => {
            match key {
                $(ApiKey::$k => <$t as Message>::VERSIONS.max,)*
                _ => 0,
            }
        };
    }
    max!(
        Produce => ProduceRequest,
        Fetch => FetchRequest,
        ListOffsets => ListOffsetsRequest,
        Metadata => MetadataRequest,
        OffsetCommit => OffsetCommitRequest,
        OffsetFetch => OffsetFetchRequest,
        FindCoordinator => FindCoordinatorRequest,
        JoinGroup => JoinGroupRequest,
        Heartbeat => HeartbeatRequest,
        LeaveGroup => LeaveGroupRequest,
        SyncGroup => SyncGroupRequest,
        DescribeGroups => DescribeGroupsRequest,
        ListGroups => ListGroupsRequest,
        ApiVersions => ApiVersionsRequest,
        CreateTopics => CreateTopicsRequest,
        DeleteTopics => DeleteTopicsRequest,
        DeleteRecords => DeleteRecordsRequest,
        InitProducerId => InitProducerIdRequest,
        DescribeConfigs => DescribeConfigsRequest,
        CreatePartitions => CreatePartitionsRequest,
        IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
        DescribeCluster => DescribeClusterRequest,
        OffsetForLeaderEpoch => OffsetForLeaderEpochRequest,
        AddPartitionsToTxn => AddPartitionsToTxnRequest,
        EndTxn => EndTxnRequest,
        TxnOffsetCommit => TxnOffsetCommitRequest,
        AddOffsetsToTxn => AddOffsetsToTxnRequest,
    )
}

/// ApiVersions v3 against `addr`: (key, min, max) for every key the broker advertises.
pub fn advertised(addr: &str) -> Result<Vec<(i16, i16, i16)>> {
    use kafka_protocol::messages::ApiVersionsRequest;
    let mut conn = Conn::connect(addr)?;
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("vltava-differential"))
        .with_client_software_version(StrBytes::from_static_str("0.1"));
    let resp = conn.must(3, &req)?;
    if resp.error_code != 0 {
        return Err(format!("ApiVersions error {}", resp.error_code));
    }
    Ok(resp
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect())
}

/// A unified line diff of two texts, `-` for Kafka and `+` for Vltava.
pub fn line_diff(kafka: &str, vltava: &str) -> String {
    similar::TextDiff::from_lines(kafka, vltava)
        .unified_diff()
        .context_radius(4)
        .header("kafka", "vltava")
        .to_string()
}
