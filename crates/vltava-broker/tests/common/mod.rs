//! In-process broker on port 0 and a minimal Kafka client speaking kafka-protocol over TCP.
#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use vltava_broker::config::{BrokerConfig, RawConfig};
use vltava_broker::{server, Broker};

/// A broker serving on 127.0.0.1:<random port> with its data in a temp dir.
pub struct TestBroker {
    pub addr: SocketAddr,
    pub broker: Arc<Broker>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub dir: tempfile::TempDir,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(&[]).await
    }

    pub async fn start_with(overrides: &[&str]) -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, overrides).await
    }

    pub async fn start_in(dir: tempfile::TempDir, overrides: &[&str]) -> TestBroker {
        let mut raw = RawConfig::default();
        raw.apply_override("listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0")
            .unwrap();
        raw.apply_override(&format!("log.dirs={}", dir.path().display()))
            .unwrap();
        for o in overrides {
            raw.apply_override(o).unwrap();
        }
        let config = BrokerConfig::from_raw(&raw).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let broker = Broker::start(config, addr).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::run(listener, broker.clone(), async {
            let _ = stopped.await;
        }));
        TestBroker {
            addr,
            broker,
            stop: Some(stop),
            task: Some(task),
            dir,
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// Stops serving and shuts the broker down cleanly; returns the data dir for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        self.broker.shutdown().await.unwrap();
        self.dir
    }
}

pub struct Client {
    pub stream: TcpStream,
    next_correlation_id: i32,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            next_correlation_id: 1,
        }
    }

    /// Encodes a request frame without sending it.
    pub fn frame<R: Request>(&mut self, version: i16, request: &R) -> (i32, Bytes) {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("vltava-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .unwrap();
        request.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.put_slice(&body);
        (correlation_id, frame.freeze())
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Closes the sending side: the broker reads an end of stream after what was sent.
    pub async fn close_sending(&mut self) {
        self.stream.shutdown().await.unwrap();
    }

    /// Reads one response frame (without the size); None if the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let size = tokio::time::timeout(Duration::from_secs(20), self.stream.read_i32())
            .await
            .expect("response within 20 s")
            .ok()?;
        let mut buf = vec![0u8; size as usize];
        self.stream.read_exact(&mut buf).await.ok()?;
        Some(Bytes::from(buf))
    }

    /// True if the broker closed the connection (EOF or reset) within 5 s.
    pub async fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) => false,
            Err(_) => false,
        }
    }

    pub fn decode_response<R: Request>(version: i16, mut frame: Bytes) -> (i32, R::Response) {
        let header_version = <R::Response as HeaderVersion>::header_version(version);
        let header = ResponseHeader::decode(&mut frame, header_version).unwrap();
        let body = <R::Response as Decodable>::decode(&mut frame, version).unwrap();
        assert!(!frame.has_remaining(), "trailing bytes in response");
        (header.correlation_id, body)
    }

    pub async fn call<R: Request>(&mut self, version: i16, request: &R) -> R::Response {
        let (correlation_id, frame) = self.frame(version, request);
        self.send_raw(&frame).await;
        let response = self.read_frame().await.expect("connection closed");
        let (got, body) = Self::decode_response::<R>(version, response);
        assert_eq!(got, correlation_id);
        body
    }
}

/// One uncompressed RecordBatch v2 holding `values` (timestamps `base_ts`, `base_ts+1`, ...).
pub fn batch(base_ts: i64, values: &[&str]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol starts a new batch whenever offset - sequence changes; a producer
            // request carries one batch per partition (Kafka's LogValidator), so keep it fixed.
            sequence: i as i32,
            timestamp: base_ts + i as i64,
            key: None,
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

pub const API_VERSIONS: ApiKey = ApiKey::ApiVersions;
