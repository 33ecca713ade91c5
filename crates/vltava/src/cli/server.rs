//! `vltava server`: load the configuration, start the broker, serve until SIGTERM/SIGINT, then
//! shut down cleanly (stop accepting, finish in-flight requests, flush, clean-shutdown marker).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tracing::{info, warn};
use vltava_broker::config::BrokerConfig;
use vltava_broker::{server, Broker};

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// A Kafka-style server.properties (node.id, listeners, log.dirs, ...).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// key=value, overriding the file; may be repeated (Kafka's --override).
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_target(false)
        // Colour only for a person at a terminal; journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    // One line, naming the key (and file:line), and a non-zero exit: no backtrace noise.
    let config = match BrokerConfig::load(args.config.as_deref(), &args.overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    for (key, origin) in &config.ignored_keys {
        warn!("{origin}: {key} is not supported yet and has no effect");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("vltava")
        .build()
        .context("starting the async runtime")?;
    // Before the broker starts: metric handles registered earlier would record nowhere.
    let metrics = match config.metrics_listener {
        Some(_) => Some(crate::metrics_endpoint::install()?),
        None => None,
    };
    runtime.block_on(serve(config, metrics))
}

async fn serve(
    config: BrokerConfig,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> anyhow::Result<()> {
    let addr = config.listeners.broker;
    let metrics_listener = config.metrics_listener;
    let listener =
        server::bind(addr, &config.socket).with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    info!(
        "starting node {} with data in {}",
        config.node.node_id,
        config.storage.log_dir.display()
    );
    let broker = Broker::start(config, bound)
        .await
        .context("starting the broker")?;
    if let (Some(listen), Some(handle)) = (metrics_listener, metrics) {
        tokio::spawn(crate::metrics_endpoint::serve(
            listen,
            handle,
            broker.clone(),
        ));
    }
    server::run(listener, broker.clone(), shutdown_signal()).await;
    broker.shutdown().await.context("shutting down")?;
    info!("shut down cleanly");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            warn!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
    }
}
