//! The listener: accepts connections (capped by `max.connections`), serves each on its own task,
//! and shuts down cleanly: stop accepting, let connections answer what they have read, return.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::{debug, info, warn};

use crate::broker::Broker;
use crate::config::SocketConfig;
use crate::connection;
use crate::error::ConnectionError;

/// How long shutdown waits for connections to finish in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Listens on `addr` with `socket.receive.buffer.bytes` set before `listen`, as Kafka does: a
/// receive buffer set on an accepted connection comes too late for the window scale agreed in
/// its handshake. The kernel queues `socket.listen.backlog.size` connections until they are
/// accepted. Call it inside the runtime: the listener registers with its reactor.
pub fn bind(addr: SocketAddr, socket: &SocketConfig) -> io::Result<TcpListener> {
    let listener = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As TcpListener::bind does: a restart need not wait out the last run's TIME_WAIT.
    listener.set_reuseaddr(true)?;
    if let Some(bytes) = socket.receive_buffer_bytes {
        listener.set_recv_buffer_size(u32::try_from(bytes).unwrap_or(u32::MAX))?;
    }
    listener.bind(addr)?;
    listener.listen(socket.listen_backlog)
}

/// `socket.send.buffer.bytes` on an accepted connection.
fn apply_send_buffer(stream: &TcpStream, socket: &SocketConfig) -> io::Result<()> {
    match socket.send_buffer_bytes {
        Some(bytes) => rustix::net::sockopt::set_socket_send_buffer_size(stream, bytes)
            .map_err(io::Error::from),
        None => Ok(()),
    }
}

/// Serves Kafka clients on `listener` until `shutdown` completes. Tests bind port 0 and call
/// this directly (the mini-redis pattern); the binary passes a SIGTERM/SIGINT future.
pub async fn run(listener: TcpListener, broker: Arc<Broker>, shutdown: impl Future) {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a clone; when all are dropped, recv() returns None.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let limit = Arc::new(Semaphore::new(
        broker
            .config
            .socket
            .max_connections
            .min(Semaphore::MAX_PERMITS),
    ));
    let budget = broker
        .config
        .socket
        .queued_max_request_bytes
        .map(connection::RequestBudget::new);
    if let Ok(addr) = listener.local_addr() {
        info!("listening on {addr} (advertised as {})", broker.advertised);
    }

    let accept = async {
        loop {
            let Ok(permit) = limit.clone().acquire_owned().await else {
                return;
            };
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            if let Err(e) = apply_send_buffer(&stream, &broker.config.socket) {
                warn!(%peer, "setting socket.send.buffer.bytes failed: {e}");
            }
            let broker = broker.clone();
            let stop = stop_rx.clone();
            let done = done_tx.clone();
            let budget = budget.clone();
            tokio::spawn(async move {
                crate::metrics::connection(1.0);
                let served = connection::serve(broker, stream, stop, budget).await;
                crate::metrics::connection(-1.0);
                match served {
                    Ok(()) => {}
                    // A client going away or idle, or Kafka's hang-up after a failed acks=0
                    // produce: routine.
                    Err(
                        e @ (ConnectionError::Io(_)
                        | ConnectionError::Idle(_)
                        | ConnectionError::AcksZeroProduceFailed(_)),
                    ) => debug!("connection from {peer} closed: {e}"),
                    // Malformed input: say why we hung up (invariant 3).
                    Err(e) => warn!("closing connection from {peer}: {e}"),
                }
                drop(permit);
                drop(done);
            });
        }
    };

    tokio::select! {
        _ = accept => {}
        _ = shutdown => {}
    }
    info!("shutting down: no new connections, finishing in-flight requests");
    let _ = stop_tx.send(true);
    broker.begin_shutdown();
    drop(done_tx);
    if tokio::time::timeout(DRAIN_TIMEOUT, done_rx.recv())
        .await
        .is_err()
    {
        warn!("connections still open after {DRAIN_TIMEOUT:?}; closing anyway");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rustix::net::sockopt;

    fn sizes(send: Option<usize>, receive: Option<usize>) -> SocketConfig {
        SocketConfig {
            request_max_bytes: 1 << 20,
            max_connections: 1,
            connections_max_idle: Duration::from_secs(60),
            queued_max_request_bytes: None,
            send_buffer_bytes: send,
            receive_buffer_bytes: receive,
            listen_backlog: 50,
        }
    }

    /// The server's end of a connection to `listener`, and the client's end kept open.
    async fn accept(listener: TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        (stream, client)
    }

    /// A connection accepted by a listener bound with `config`, given the send buffer `run`
    /// gives it (`run` itself is exercised by every integration test, not here).
    async fn configured(config: &SocketConfig) -> (TcpStream, TcpStream) {
        let (stream, client) = accept(bind("127.0.0.1:0".parse().unwrap(), config).unwrap()).await;
        apply_send_buffer(&stream, config).unwrap();
        (stream, client)
    }

    /// A connection accepted as before these keys: the OS's own sizes.
    async fn plain() -> (TcpStream, TcpStream) {
        accept(TcpListener::bind("127.0.0.1:0").await.unwrap()).await
    }

    fn buffers(stream: &TcpStream) -> (usize, usize) {
        (
            sockopt::socket_send_buffer_size(stream).unwrap(),
            sockopt::socket_recv_buffer_size(stream).unwrap(),
        )
    }

    // Linux reports twice what was set: the kernel doubles it for its bookkeeping (socket(7)).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn connections_get_the_configured_buffers() {
        let (stream, _client) = configured(&sizes(Some(50_000), Some(60_000))).await;
        assert_eq!(buffers(&stream), (100_000, 120_000));
    }

    #[tokio::test]
    async fn minus_one_leaves_the_buffers_to_the_os() {
        let (default, _client) = configured(&sizes(None, None)).await;
        let (os, _os_client) = plain().await;
        assert_eq!(buffers(&default), buffers(&os));
    }

    /// Connections to a listener nobody accepts on that complete their handshake within a
    /// second: the kernel completes backlog + 1 (`sk_acceptq_is_full` is a `>` test) and drops
    /// the SYNs of the rest, which would retry only after a second.
    #[cfg(target_os = "linux")]
    async fn handshakes_without_accept(listener: &TcpListener, attempts: usize) -> usize {
        let addr = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        for _ in 0..attempts {
            let connect = TcpStream::connect(addr);
            if let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(1), connect).await {
                clients.push(client);
            }
        }
        clients.len()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_kernel_queues_the_configured_backlog() {
        let mut config = sizes(None, None);
        config.listen_backlog = 2;
        let small = bind("127.0.0.1:0".parse().unwrap(), &config).unwrap();
        assert_eq!(handshakes_without_accept(&small, 5).await, 3);
        config.listen_backlog = 50;
        let kafkas = bind("127.0.0.1:0".parse().unwrap(), &config).unwrap();
        assert_eq!(handshakes_without_accept(&kafkas, 5).await, 5);
    }
}
