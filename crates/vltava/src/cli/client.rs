//! What every client command shares: `--bootstrap-server`, a reachability check that turns "all
//! brokers down" into one line naming the address, rdkafka client configs, and a small
//! request/response path over `kafka-protocol` for the APIs rdkafka does not expose
//! (ApiVersions, DescribeCluster, IncrementalAlterConfigs, FindCoordinator, OffsetFetch), and
//! the `--compression` codecs.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::{Buf, BufMut, BytesMut};
use clap::Args;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::ClientConfig;

/// Largest response we accept on the raw path (admin responses are small; a bench fetch asks
/// for at most `MAX_FETCH_BYTES`).
pub const MAX_RESPONSE: usize = 64 << 20;

#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// Broker to connect to first (host:port); several may be given, comma-separated.
    #[arg(
        long,
        short = 'b',
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:9092",
        env = "VLTAVA_BOOTSTRAP_SERVER"
    )]
    pub bootstrap_server: String,
    /// How long to wait for the cluster, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub timeout: u64,
}

impl ClientArgs {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }

    fn servers(&self) -> impl Iterator<Item = &str> {
        self.bootstrap_server
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// Fails with "broker unreachable at host:port" when no bootstrap server accepts a TCP
    /// connection: librdkafka would otherwise retry until the timeout and report a generic error.
    pub fn check_reachable(&self) -> anyhow::Result<()> {
        let mut last = None;
        for server in self.servers() {
            match connect(server, self.timeout()) {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("--bootstrap-server is empty")))
    }

    /// An rdkafka config for this cluster, quiet (errors reach the user through results).
    pub fn rdkafka(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_server)
            .set("client.id", "vltava-cli")
            .set("socket.timeout.ms", self.timeout().as_millis().to_string())
            .set_log_level(RDKafkaLogLevel::Emerg);
        config
    }

    /// Opens a raw connection to the first reachable bootstrap server.
    pub fn raw(&self) -> anyhow::Result<RawClient> {
        let mut last = None;
        for server in self.servers() {
            match connect(server, self.timeout()) {
                Ok(stream) => {
                    let mut client = RawClient {
                        stream,
                        address: server.to_string(),
                        correlation_id: 0,
                        versions: Vec::new(),
                    };
                    client.negotiate()?;
                    return Ok(client);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("--bootstrap-server is empty")))
    }
}

fn connect(server: &str, timeout: Duration) -> anyhow::Result<TcpStream> {
    let addrs: Vec<_> = server
        .to_socket_addrs()
        .map_err(|e| anyhow!("broker unreachable at {server}: {e}"))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))?;
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => bail!("broker unreachable at {server}: {e}"),
        None => bail!("broker unreachable at {server}: no address"),
    }
}

/// One blocking connection speaking Kafka requests through `kafka-protocol`.
pub struct RawClient {
    stream: TcpStream,
    /// host:port, for error messages.
    pub address: String,
    correlation_id: i32,
    /// (api key, min, max) as the broker advertised in ApiVersions.
    pub versions: Vec<(i16, i16, i16)>,
}

impl RawClient {
    pub fn connect(address: &str, timeout: Duration) -> anyhow::Result<RawClient> {
        let mut client = RawClient {
            stream: connect(address, timeout)?,
            address: address.to_string(),
            correlation_id: 0,
            versions: Vec::new(),
        };
        client.negotiate()?;
        Ok(client)
    }

    fn negotiate(&mut self) -> anyhow::Result<()> {
        // v0 needs no tagged fields and every broker answers it.
        let response: ApiVersionsResponse = self.send_at(ApiVersionsRequest::default(), 0)?;
        if response.error_code != 0 {
            bail!(
                "{}: ApiVersions failed with error code {}",
                self.address,
                response.error_code
            );
        }
        self.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        Ok(())
    }

    /// The highest version both the broker and we support, or an error naming the missing API.
    pub fn version_for<R: Request>(&self, ours: (i16, i16)) -> anyhow::Result<i16> {
        let name = ApiKey::try_from(R::KEY)
            .map(|k| format!("{k:?}"))
            .unwrap_or_else(|_| format!("API {}", R::KEY));
        let Some(&(_, min, max)) = self.versions.iter().find(|(key, _, _)| *key == R::KEY) else {
            bail!(
                "the broker at {} does not support {name} (API key {})",
                self.address,
                R::KEY
            );
        };
        let version = max.min(ours.1);
        if version < min.max(ours.0) {
            bail!(
                "the broker at {} serves {name} v{min}-v{max}, this tool needs v{}-v{}",
                self.address,
                ours.0,
                ours.1
            );
        }
        Ok(version)
    }

    /// Sends `request` at the best common version in `ours` and reads its response.
    pub fn send<R: Request>(
        &mut self,
        request: R,
        ours: (i16, i16),
    ) -> anyhow::Result<R::Response> {
        let version = self.version_for::<R>(ours)?;
        self.send_at(request, version)
    }

    fn send_at<R: Request>(&mut self, request: R, version: i16) -> anyhow::Result<R::Response> {
        self.write_request(&request, version)?;
        self.read::<R>(version)
    }

    /// Writes `request` at `version` without waiting for its answer ([`RawClient::read`]).
    pub fn write_request<R: Request>(&mut self, request: &R, version: i16) -> anyhow::Result<()> {
        self.correlation_id += 1;
        let mut frame = BytesMut::new();
        encode_request(&mut frame, request, version, self.correlation_id)?;
        let address = &self.address;
        self.stream
            .write_all(&frame)
            .map_err(|e| anyhow!("broker at {address}: {e}"))
    }

    /// Reads the answer to the oldest request written and not yet read.
    pub fn read<R: Request>(&mut self, version: i16) -> anyhow::Result<R::Response> {
        read_response::<R>(&mut self.stream, version, &self.address)
    }

    /// The connection itself, for a caller that pipelines requests on it.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }
}

/// Appends `request` to `frame` as one size-prefixed frame (a caller sending many reuses one
/// buffer instead of faulting in a new one per request).
pub fn encode_request<R: Request>(
    frame: &mut BytesMut,
    request: &R,
    version: i16,
    correlation_id: i32,
) -> anyhow::Result<()> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("vltava-cli")));
    let start = frame.len();
    frame.put_u32(0);
    header
        .encode(frame, R::header_version(version))
        .map_err(|e| anyhow!("encoding request header: {e}"))?;
    request
        .encode(frame, version)
        .map_err(|e| anyhow!("encoding request: {e}"))?;
    let size = u32::try_from(frame.len() - start - 4).context("request too large")?;
    frame[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// Reads one response frame to a request `R` sent at `version`, from the broker at `address`.
pub fn read_response<R: Request>(
    stream: &mut impl Read,
    version: i16,
    address: &str,
) -> anyhow::Result<R::Response> {
    let io_err = |e: std::io::Error| anyhow!("broker at {address}: {e}");
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).map_err(io_err)?;
    let size = u32::from_be_bytes(size) as usize;
    if size > MAX_RESPONSE {
        bail!("broker at {address} sent a {size}-byte response");
    }
    let mut response = vec![0u8; size];
    stream.read_exact(&mut response).map_err(io_err)?;
    let mut response = bytes::Bytes::from(response);
    let header_version =
        <R::Response as kafka_protocol::protocol::HeaderVersion>::header_version(version);
    let _ = kafka_protocol::messages::ResponseHeader::decode(&mut response, header_version)
        .map_err(|e| anyhow!("decoding response header: {e}"))?;
    let decoded = R::Response::decode(&mut response, version)
        .map_err(|e| anyhow!("decoding {:?} response: {e}", ApiKey::try_from(R::KEY)))?;
    if response.has_remaining() {
        // Harmless, but a sign of a version mismatch worth seeing in a bug report.
        tracing::debug!("{} trailing bytes after response", response.remaining());
    }
    Ok(decoded)
}

/// `--compression`: the codec of the record batches a command produces.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// Its name as librdkafka's `compression.type` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// The same codec for batches encoded with `kafka-protocol`.
    pub fn wire(self) -> kafka_protocol::records::Compression {
        use kafka_protocol::records::Compression as Wire;
        match self {
            Compression::None => Wire::None,
            Compression::Gzip => Wire::Gzip,
            Compression::Snappy => Wire::Snappy,
            Compression::Lz4 => Wire::Lz4,
            Compression::Zstd => Wire::Zstd,
        }
    }
}

/// Splits `key=value`, naming the argument on error.
pub fn key_value(pair: &str, what: &str) -> anyhow::Result<(String, String)> {
    match pair.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => bail!("{what} {pair:?}: expected key=value"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_names_the_bad_argument() {
        assert_eq!(
            key_value("a.b=1=2", "--config").unwrap(),
            ("a.b".to_string(), "1=2".to_string())
        );
        let err = key_value("nothing", "--config").unwrap_err().to_string();
        assert_eq!(err, "--config \"nothing\": expected key=value");
    }

    #[test]
    fn unreachable_broker_is_one_line_with_the_address() {
        // Port 1 on loopback: nothing listens there.
        let args = ClientArgs {
            bootstrap_server: "127.0.0.1:1".to_string(),
            timeout: 1,
        };
        let err = args.check_reachable().unwrap_err().to_string();
        assert!(
            err.starts_with("broker unreachable at 127.0.0.1:1"),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }
}
