//! Vltava in this process: the broker library on a free loopback port with a temp dir, on its
//! own tokio runtime (the cases are blocking socket code).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use vltava_broker::config::{BrokerConfig, RawConfig};
use vltava_broker::{server, Broker};

pub struct Vltava {
    pub addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
    broker: Arc<Broker>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Vltava {
    /// Starts a broker with the settings the reference Kafka has (node id 1, one partition per
    /// new topic, no initial rebalance delay), then `overrides` (`key=value`).
    pub fn start(overrides: &[&str]) -> Result<Vltava, String> {
        let dir = tempfile::Builder::new()
            .prefix("vltava-differential.")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        let mut raw = RawConfig::default();
        let log_dirs = format!("log.dirs={}", dir.path().display());
        let base = [
            "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0",
            "node.id=1",
            "num.partitions=1",
            "offsets.topic.num.partitions=1",
            "group.initial.rebalance.delay.ms=0",
            &log_dirs,
        ];
        for o in base.iter().chain(overrides) {
            raw.apply_override(o).map_err(|e| format!("{o}: {e}"))?;
        }
        let config = BrokerConfig::from_raw(&raw).map_err(|e| format!("config: {e}"))?;
        let (addr, broker, stop, task) = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| format!("bind: {e}"))?;
            let addr = listener.local_addr().map_err(|e| format!("addr: {e}"))?;
            let broker = Broker::start(config, addr)
                .await
                .map_err(|e| format!("broker start: {e}"))?;
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(server::run(listener, broker.clone(), async {
                let _ = stopped.await;
            }));
            Ok::<_, String>((addr, broker, stop, task))
        })?;
        Ok(Vltava {
            addr,
            runtime,
            broker,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        })
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Vltava {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take();
        let broker = self.broker.clone();
        self.runtime.block_on(async move {
            if let Some(task) = task {
                let _ = task.await;
            }
            let _ = broker.shutdown().await;
        });
    }
}
