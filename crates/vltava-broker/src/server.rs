//! The listener: accepts connections (capped by `max.connections`), serves each on its own task,
//! and shuts down cleanly: stop accepting, let connections answer what they have read, return.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::{debug, info, warn};

use crate::broker::Broker;
use crate::connection;
use crate::error::ConnectionError;

/// How long shutdown waits for connections to finish in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

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
