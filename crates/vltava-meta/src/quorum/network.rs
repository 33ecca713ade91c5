//! Raft RPCs between controllers over TCP, and the controller-forwarding RPC.
//!
//! Each message is one frame: a big-endian u32 length, then that many bytes of JSON. A client
//! keeps one connection per peer and sends one request at a time on it; the server answers in
//! order. Any I/O error drops the connection; openraft retries with its own backoff.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, RaftNetworkV2};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use super::{
    dispatch::{ControllerCall, ControllerReply},
    QuorumInner, Raft, Snapshot, SnapshotMeta, TypeConfig, Vote,
};
use crate::image::MetadataImage;

/// Largest frame accepted from a peer; a bigger length is a protocol error.
const MAX_FRAME_LEN: usize = 64 * 1024 * 1024;
/// Concurrent inbound peer connections (voters plus forwarding brokers).
const MAX_CONNECTIONS: usize = 256;
/// Bound on connecting to a peer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum PeerRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    FullSnapshot {
        vote: Vote,
        meta: SnapshotMeta,
        image: MetadataImage,
    },
    /// A controller request forwarded by a node that is not the leader.
    Controller(ControllerCall),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum PeerResponse {
    AppendEntries(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    Snapshot(SnapshotResponse<TypeConfig>),
    Controller(ControllerReply),
    Error(String),
}

pub(crate) async fn write_frame<T: Serialize>(stream: &mut TcpStream, msg: &T) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    if body.len() > MAX_FRAME_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "raft message too large",
        ));
    }
    let len = u32::try_from(body.len()).map_err(io::Error::other)?;
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(&body);
    stream.write_all(&buf).await?;
    stream.flush().await
}

pub(crate) async fn read_frame<T: for<'de> Deserialize<'de>>(
    stream: &mut TcpStream,
) -> io::Result<T> {
    let len = stream.read_u32().await? as usize;
    if len > MAX_FRAME_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("raft frame of {len} bytes exceeds the limit"),
        ));
    }
    // Grow with the bytes that actually arrive, not with the length a peer claims.
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    let read = (&mut *stream)
        .take(len as u64)
        .read_to_end(&mut body)
        .await?;
    if read != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "raft frame cut short",
        ));
    }
    serde_json::from_slice(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Sends one request on a fresh connection and waits for the answer (used for forwarding).
pub(crate) async fn call_once(
    addr: &str,
    request: &PeerRequest,
    timeout: Duration,
) -> io::Result<PeerResponse> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        write_frame(&mut stream, request).await?;
        read_frame(&mut stream).await
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "controller request timed out"))?
}

/// Creates a [`TcpPeer`] per target node.
#[derive(Debug, Clone, Default)]
pub struct TcpNetworkFactory;

impl RaftNetworkFactory<TypeConfig> for TcpNetworkFactory {
    type Network = TcpPeer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> TcpPeer {
        TcpPeer {
            target,
            addr: node.addr.clone(),
            conn: None,
        }
    }
}

/// A connection to one peer controller.
#[derive(Debug)]
pub struct TcpPeer {
    target: u64,
    addr: String,
    conn: Option<TcpStream>,
}

enum CallError {
    /// Could not connect: the peer is down.
    Unreachable(io::Error),
    /// Connected, but the exchange failed.
    Network(io::Error),
    /// The peer answered with an error or an unexpected message.
    Remote(String),
}

impl From<CallError> for RPCError<TypeConfig> {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(e) => RPCError::Network(NetworkError::new(&e)),
            CallError::Remote(msg) => RPCError::Network(NetworkError::from_string(msg)),
        }
    }
}

impl From<CallError> for StreamingError<TypeConfig> {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Unreachable(e) => StreamingError::Unreachable(Unreachable::new(&e)),
            CallError::Network(e) => StreamingError::Network(NetworkError::new(&e)),
            CallError::Remote(msg) => StreamingError::Network(NetworkError::from_string(msg)),
        }
    }
}

impl TcpPeer {
    async fn call(
        &mut self,
        request: PeerRequest,
        ttl: Duration,
    ) -> Result<PeerResponse, CallError> {
        if self.conn.is_none() {
            let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.addr));
            let stream = match connect.await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(CallError::Unreachable(e)),
                Err(_) => {
                    return Err(CallError::Unreachable(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "connecting to controller {} at {} timed out",
                            self.target, self.addr
                        ),
                    )))
                }
            };
            stream.set_nodelay(true).map_err(CallError::Network)?;
            self.conn = Some(stream);
        }
        let Some(stream) = self.conn.as_mut() else {
            return Err(CallError::Network(io::Error::other("no connection")));
        };
        let exchange = async {
            write_frame(stream, &request).await?;
            read_frame::<PeerResponse>(stream).await
        };
        let result = match tokio::time::timeout(ttl, exchange).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "raft rpc timed out",
            )),
        };
        match result {
            Ok(PeerResponse::Error(msg)) => Err(CallError::Remote(msg)),
            Ok(response) => Ok(response),
            Err(e) => {
                // The stream may hold half a message; start over on a new connection.
                self.conn = None;
                Err(CallError::Network(e))
            }
        }
    }
}

fn unexpected(what: &str) -> CallError {
    CallError::Remote(format!("unexpected reply to {what}"))
}

impl RaftNetworkV2<TypeConfig> for TcpPeer {
    type SnapshotData = MetadataImage;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(PeerRequest::AppendEntries(rpc), option.hard_ttl())
            .await?
        {
            PeerResponse::AppendEntries(r) => Ok(r),
            _ => Err(unexpected("append_entries").into()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(PeerRequest::Vote(rpc), option.hard_ttl()).await? {
            PeerResponse::Vote(r) => Ok(r),
            _ => Err(unexpected("vote").into()),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(PeerRequest::PreVote(rpc), option.hard_ttl())
            .await?
        {
            PeerResponse::Vote(r) => Ok(r),
            _ => Err(unexpected("pre_vote").into()),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let request = PeerRequest::FullSnapshot {
            vote,
            meta: snapshot.meta,
            image: snapshot.snapshot,
        };
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            reply = self.call(request, option.hard_ttl()) => match reply? {
                PeerResponse::Snapshot(r) => Ok(r),
                _ => Err(unexpected("full_snapshot").into()),
            },
        }
    }
}

/// Accepts peer connections until `shutdown` flips to true.
pub(crate) async fn serve(
    listener: TcpListener,
    raft: Raft,
    quorum: Weak<QuorumInner>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "controller listener accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::warn!(%peer, "too many controller connections; closing");
            continue;
        };
        let raft = raft.clone();
        let quorum = quorum.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, raft, quorum, shutdown).await;
            drop(permit);
        });
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    raft: Raft,
    quorum: Weak<QuorumInner>,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "set_nodelay failed");
    }
    loop {
        let request = tokio::select! {
            _ = shutdown.changed() => return,
            request = read_frame::<PeerRequest>(&mut stream) => request,
        };
        let request = match request {
            Ok(r) => r,
            Err(e) => {
                if e.kind() != io::ErrorKind::UnexpectedEof {
                    tracing::debug!(%peer, error = %e, "closing controller connection");
                }
                return;
            }
        };
        let response = handle(request, &raft, &quorum).await;
        if let Err(e) = write_frame(&mut stream, &response).await {
            tracing::debug!(%peer, error = %e, "controller connection write failed");
            return;
        }
    }
}

async fn handle(request: PeerRequest, raft: &Raft, quorum: &Weak<QuorumInner>) -> PeerResponse {
    match request {
        PeerRequest::AppendEntries(r) => match raft.append_entries(r).await {
            Ok(r) => PeerResponse::AppendEntries(r),
            Err(e) => PeerResponse::Error(e.to_string()),
        },
        PeerRequest::Vote(r) => match raft.vote(r).await {
            Ok(r) => PeerResponse::Vote(r),
            Err(e) => PeerResponse::Error(e.to_string()),
        },
        PeerRequest::PreVote(r) => match raft.pre_vote(r).await {
            Ok(r) => PeerResponse::Vote(r),
            Err(e) => PeerResponse::Error(e.to_string()),
        },
        PeerRequest::FullSnapshot { vote, meta, image } => {
            let snapshot = Snapshot {
                meta,
                snapshot: image,
            };
            match raft.install_full_snapshot(vote, snapshot).await {
                Ok(r) => PeerResponse::Snapshot(r),
                Err(e) => PeerResponse::Error(e.to_string()),
            }
        }
        PeerRequest::Controller(call) => match quorum.upgrade() {
            Some(inner) => PeerResponse::Controller(inner.execute_on_leader(call).await),
            None => PeerResponse::Error("controller is shutting down".into()),
        },
    }
}
