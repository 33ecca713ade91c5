//! The broker's shared state and lifecycle: open the log directory, join the metadata quorum,
//! register, open the logs the image says we lead, keep them in step with the image, run log
//! maintenance, and shut all of it down cleanly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};
use vltava_log::{LogDir, LogDirOptions};
use vltava_meta::controller::topics::validate_topic_name;
use vltava_meta::{
    ControllerError, CreateTopicRequest, MetadataImage, MetadataQuorum, QuorumConfig, TopicDefaults,
};

use crate::config::{BrokerConfig, Endpoint};
use crate::error::BrokerError;
use crate::group::GroupCoordinator;
use crate::replica::ReplicaManager;

/// Everything a request handler may need. Shared by every connection through `Arc`.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    /// Host and port clients dial, as registered in the metadata image.
    pub advertised: Endpoint,
    pub quorum: MetadataQuorum,
    pub replicas: Arc<ReplicaManager>,
    /// Consumer groups and committed offsets (`__consumer_offsets`).
    pub groups: Arc<GroupCoordinator>,
    /// Transactional ids and their transactions (`__transaction_state`).
    pub txns: Arc<crate::txn::TransactionCoordinator>,
    /// Blocks of producer ids claimed from the controller (InitProducerId).
    pub producer_ids: crate::txn::producer_ids::ProducerIdManager,
    /// Set when shutdown begins: waiting fetches answer at once instead of at `max_wait_ms`.
    stopping: tokio::sync::watch::Sender<bool>,
    /// Background tasks (image follower, log maintenance), awaited at shutdown.
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Broker {
    /// Starts the broker's storage and metadata. `bound` is the client listener's real address
    /// (tests bind port 0; the advertised port follows it then).
    pub async fn start(
        config: BrokerConfig,
        bound: SocketAddr,
    ) -> Result<Arc<Broker>, BrokerError> {
        let started = Instant::now();
        let mut advertised = config.listeners.advertised.clone();
        if advertised.port == 0 {
            advertised.port = bound.port();
        }
        std::fs::create_dir_all(&config.storage.log_dir)?;
        let root = config.storage.log_dir.clone();
        let options = LogDirOptions {
            recovery_threads: config.storage.recovery_threads,
            ..LogDirOptions::default()
        };
        let log_dir = tokio::task::spawn_blocking(move || LogDir::open(&root, options))
            .await
            .map_err(|e| BrokerError::Io(std::io::Error::other(e)))??;
        let fresh = log_dir
            .partitions_on_disk()
            .iter()
            .all(|tp| tp.topic == "__cluster_metadata");
        let previous_run = if fresh {
            "new log directory"
        } else if log_dir.was_clean_shutdown() {
            "after a clean shutdown"
        } else {
            "after an unclean shutdown"
        };

        let quorum = MetadataQuorum::start(QuorumConfig {
            node_id: config.node.node_id,
            metadata_dir: config.storage.metadata_dir(),
            voters: config.quorum.voters.clone(),
            controller_listener: config.listeners.controller,
        })
        .await
        .map_err(|e| BrokerError::Meta(e.to_string()))?;
        quorum
            .register_broker(
                config.node.node_id,
                advertised.host.clone(),
                advertised.port,
                None,
            )
            .await
            .map_err(|e| BrokerError::Meta(e.to_string()))?;

        let replicas = Arc::new(ReplicaManager::new(config.clone(), log_dir));
        let image = quorum.image();
        let opened = {
            let replicas = replicas.clone();
            tokio::task::spawn_blocking(move || replicas.apply_image(&image))
                .await
                .map_err(|e| BrokerError::Io(std::io::Error::other(e)))??
        };
        info!(
            "recovered {opened} partitions in {:?} ({previous_run})",
            started.elapsed()
        );

        let groups = Arc::new(GroupCoordinator::new(config.groups.clone()));
        let txns = Arc::new(crate::txn::TransactionCoordinator::new(
            config.transactions.clone(),
        ));
        let broker = Arc::new(Broker {
            config,
            advertised,
            quorum,
            replicas,
            groups,
            txns,
            producer_ids: crate::txn::producer_ids::ProducerIdManager::new(),
            stopping: tokio::sync::watch::Sender::new(false),
            tasks: std::sync::Mutex::new(Vec::new()),
        });
        broker.spawn_image_follower();
        broker.spawn_log_maintenance();
        // Loads `__transaction_state` (open transactions time out, half-finished ones complete)
        // and aborts timed-out transactions from now on.
        broker.txns.start(&broker);
        Ok(broker)
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.quorum.image()
    }

    pub fn node_id(&self) -> i32 {
        self.config.node.node_id
    }

    /// Applies the latest image to the replica manager now (after an admin request, so the
    /// client's next request finds the partitions open).
    pub async fn sync_replicas(&self) {
        let image = self.image();
        let replicas = self.replicas.clone();
        match tokio::task::spawn_blocking(move || replicas.apply_image(&image)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!("applying metadata to logs failed: {e}"),
            Err(e) => warn!("applying metadata to logs panicked: {e}"),
        }
    }

    /// Broker defaults for CreateTopics fields left at -1.
    pub fn topic_defaults(&self) -> TopicDefaults {
        TopicDefaults {
            num_partitions: self.config.topics.num_partitions,
            replication_factor: self.config.topics.default_replication_factor,
        }
    }

    /// Creates topics that a Metadata or Produce request named but that do not exist
    /// (`auto.create.topics.enable`), with the broker defaults. Invalid names are left alone:
    /// the caller answers for them. A topic created concurrently by someone else is fine.
    pub async fn auto_create_topics(&self, names: &[String]) {
        let requests: Vec<CreateTopicRequest> = names
            .iter()
            .filter(|name| validate_topic_name(name).is_ok())
            .map(|name| CreateTopicRequest {
                name: name.clone(),
                num_partitions: -1,
                replication_factor: -1,
                assignments: Vec::new(),
                configs: Vec::new(),
            })
            .collect();
        if requests.is_empty() {
            return;
        }
        let results = self
            .quorum
            .create_topics(requests.clone(), false, self.topic_defaults())
            .await;
        for (request, result) in requests.iter().zip(results) {
            match result {
                Ok(created) => info!(
                    "topic {} created (auto-created, {} partitions)",
                    request.name, created.num_partitions
                ),
                Err(ControllerError::TopicAlreadyExists(_)) => {}
                Err(e) => warn!("auto-creating topic {} failed: {e}", request.name),
            }
        }
        self.sync_replicas().await;
    }

    fn spawn_image_follower(self: &Arc<Self>) {
        let mut images = self.quorum.subscribe();
        let mut stopping = self.stopping();
        let broker = Arc::downgrade(self);
        self.track(tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = images.changed() => if changed.is_err() { return },
                    _ = stopping.wait_for(|s| *s) => return,
                }
                let Some(broker) = broker.upgrade() else {
                    return;
                };
                broker.sync_replicas().await;
            }
        }));
    }

    fn spawn_log_maintenance(self: &Arc<Self>) {
        let broker = Arc::downgrade(self);
        let mut stopping = self.stopping();
        let retention_every = Duration::from_millis(self.config.log.retention_check_interval_ms);
        let checkpoint_every = Duration::from_millis(self.config.log.checkpoint_interval_ms);
        self.track(tokio::spawn(async move {
            // segment.ms and flush.ms are checked every second; retention on its own interval
            // (log.retention.check.interval.ms); recovery points on theirs
            // (log.flush.offset.checkpoint.interval.ms, a minute), so a crash recovers little;
            // as in Kafka's LogManager.
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_retention = Instant::now();
            let mut last_checkpoint = Instant::now();
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
                let Some(broker) = broker.upgrade() else {
                    return;
                };
                let retention = last_retention.elapsed() >= retention_every;
                if retention {
                    last_retention = Instant::now();
                }
                let checkpoint = last_checkpoint.elapsed() >= checkpoint_every;
                if checkpoint {
                    last_checkpoint = Instant::now();
                }
                let replicas = broker.replicas.clone();
                drop(broker);
                let now = now_ms();
                let _ = tokio::task::spawn_blocking(move || {
                    replicas.maintain(now, retention);
                    if checkpoint {
                        if let Err(e) = replicas.log_dir().checkpoint() {
                            warn!("writing recovery-point checkpoints failed: {e}");
                        }
                    }
                })
                .await;
            }
        }));
    }

    fn track(&self, task: tokio::task::JoinHandle<()>) {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    /// Tells long-polling fetches to answer now (called when the listener stops).
    pub fn begin_shutdown(&self) {
        self.stopping.send_replace(true);
    }

    /// Completes once shutdown has begun.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Stops background work, flushes every log and writes the clean-shutdown marker, then
    /// stops the quorum.
    pub async fn shutdown(&self) -> Result<(), BrokerError> {
        self.begin_shutdown();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            // Each finishes its current step (a blocking log operation) and returns.
            let _ = task.await;
        }
        let replicas = self.replicas.clone();
        tokio::task::spawn_blocking(move || replicas.shutdown())
            .await
            .map_err(|e| BrokerError::Io(std::io::Error::other(e)))??;
        self.quorum.shutdown().await;
        Ok(())
    }
}

/// Wall-clock milliseconds since the epoch (Kafka timestamps).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
