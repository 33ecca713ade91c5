//! The metadata quorum: openraft wired to our log store, state machine and TCP network, and the
//! controller entry points the broker calls.
//!
//! Every controller operation runs on the Raft leader: a node that is not the leader forwards it
//! over the controller listener, so a one-voter and a three-voter cluster take the same path.
//! On the leader, operations are serialized: read the latest image (after a linearizable read
//! barrier), decide with [`crate::controller`], propose the records, wait for them to apply.

pub(crate) mod dispatch;
pub mod log_store;
pub(crate) mod network;
pub mod state_machine;
pub(crate) mod wal;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use openraft::async_runtime::watch::WatchReceiver;
use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, Config, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::controller::{
    AlterOp, ConfigResource, CreateTopicRequest, CreatedTopic, TopicDefaults, TopicRef,
};
use crate::error::{ControllerError, MetaError};
use crate::image::MetadataImage;
use crate::records::{MetadataBatch, MetadataRecord};

use self::dispatch::{ControllerCall, ControllerReply};
use self::log_store::FileLogStore;
use self::network::TcpNetworkFactory;
pub use self::state_machine::{ApplyOutcome, MetadataStateMachine};

openraft::declare_raft_types!(
    /// Raft types of the metadata quorum: node ids are Kafka node ids (`node.id`), a node's
    /// address is its controller listener.
    pub TypeConfig:
        D = MetadataBatch,
        R = ApplyOutcome,
        NodeId = u64,
        Node = BasicNode,
        LeaderId = openraft::impls::leader_id_std::LeaderId<Self::Term, Self::NodeId>,
);

pub(crate) type Raft = openraft::Raft<TypeConfig, MetadataStateMachine>;
pub(crate) type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub(crate) type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub(crate) type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub(crate) type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
pub(crate) type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, MetadataImage>;
pub(crate) type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;

/// How long a controller operation waits for a leader (and for a forwarded answer) before it
/// answers NOT_CONTROLLER.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `start` waits for the persisted committed log to be re-applied.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(60);

/// Where and how this node takes part in the metadata quorum.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    /// This node's `node.id`.
    pub node_id: i32,
    /// `<log.dirs>/__cluster_metadata-0`.
    pub metadata_dir: PathBuf,
    /// `controller.quorum.voters`, e.g. `1@127.0.0.1:9093`.
    pub voters: Vec<(i32, SocketAddr)>,
    /// Where this node listens for Raft RPCs from the other voters.
    pub controller_listener: SocketAddr,
}

/// The quorum as DescribeQuorum (API 55) reports it, from this node's Raft metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    /// The leader's node id, if known.
    pub leader_id: Option<i32>,
    /// The Raft term (KRaft's leader epoch).
    pub leader_epoch: u64,
    /// Index of the last committed entry (KRaft's high watermark), if any.
    pub high_watermark: Option<u64>,
    /// Voters and, when this node leads, the last log index each has replicated.
    pub voters: Vec<(i32, Option<u64>)>,
}

/// State shared by the quorum handle and its background tasks.
pub(crate) struct QuorumInner {
    node_id: u64,
    raft: Raft,
    state_machine: MetadataStateMachine,
    /// Serializes decide-and-propose on the leader, like KRaft's single controller thread.
    controller_lock: tokio::sync::Mutex<()>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A running member of the metadata quorum. Clones share the same node.
#[derive(Clone)]
pub struct MetadataQuorum {
    inner: Arc<QuorumInner>,
}

impl std::fmt::Debug for MetadataQuorum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataQuorum")
            .field("node_id", &self.inner.node_id)
            .finish_non_exhaustive()
    }
}

fn node_id_u64(node_id: i32) -> Result<u64, MetaError> {
    u64::try_from(node_id)
        .map_err(|_| MetaError::Config(format!("node.id {node_id} must not be negative")))
}

fn validate(config: &QuorumConfig) -> Result<BTreeMap<u64, BasicNode>, MetaError> {
    let mut voters = BTreeMap::new();
    for (id, addr) in &config.voters {
        let id = node_id_u64(*id)?;
        if voters
            .insert(
                id,
                BasicNode {
                    addr: addr.to_string(),
                },
            )
            .is_some()
        {
            return Err(MetaError::Config(format!(
                "controller.quorum.voters names node {id} twice"
            )));
        }
    }
    let me = node_id_u64(config.node_id)?;
    if !voters.contains_key(&me) {
        return Err(MetaError::Config(format!(
            "node.id {} is not in controller.quorum.voters",
            config.node_id
        )));
    }
    Ok(voters)
}

impl MetadataQuorum {
    /// Opens (or creates) the metadata log under `metadata_dir`, replays it, binds the
    /// controller listener and joins the quorum. On the very first start (empty log) every voter
    /// proposes the same initial membership; a lone voter then elects itself.
    pub async fn start(config: QuorumConfig) -> Result<MetadataQuorum, MetaError> {
        let voters = validate(&config)?;
        let node_id = node_id_u64(config.node_id)?;
        let dir = config.metadata_dir.clone();
        let log_store = tokio::task::spawn_blocking(move || -> Result<FileLogStore, MetaError> {
            std::fs::create_dir_all(&dir).map_err(|source| MetaError::Io {
                path: dir.clone(),
                source,
            })?;
            FileLogStore::open(&dir)
        })
        .await
        .map_err(|e| MetaError::Raft(format!("metadata log open task failed: {e}")))??;
        let pristine = log_store.is_pristine()?;
        let committed = log_store.committed();

        let listener = TcpListener::bind(config.controller_listener)
            .await
            .map_err(|source| MetaError::Bind {
                addr: config.controller_listener,
                source,
            })?;

        let raft_config = Config {
            cluster_name: "vltava-metadata".to_string(),
            heartbeat_interval: 100,
            election_timeout_min: 400,
            election_timeout_max: 800,
            // The log is the only durable state; it is never purged, so no snapshot is needed
            // to restart, and a lagging voter is caught up from the log.
            snapshot_policy: SnapshotPolicy::Never,
            ..Default::default()
        }
        .validate()
        .map_err(|e| MetaError::Config(e.to_string()))?;

        let state_machine = MetadataStateMachine::new();
        let raft = Raft::new(
            node_id,
            Arc::new(raft_config),
            TcpNetworkFactory,
            log_store,
            state_machine.clone(),
        )
        .await
        .map_err(|e| MetaError::Raft(e.to_string()))?;

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let inner = Arc::new(QuorumInner {
            node_id,
            raft: raft.clone(),
            state_machine,
            controller_lock: tokio::sync::Mutex::new(()),
            shutdown_tx,
            tasks: Mutex::new(Vec::new()),
        });
        let server = tokio::spawn(network::serve(
            listener,
            raft.clone(),
            Arc::downgrade(&inner),
            shutdown_rx,
        ));
        inner.track(server);

        let configured: Vec<u64> = voters.keys().copied().collect();
        if pristine {
            match raft.initialize(voters).await {
                Ok(()) => {}
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(MetaError::Raft(e.to_string())),
            }
        }
        if let Some(committed) = committed {
            raft.wait(Some(REPLAY_TIMEOUT))
                .applied_index_at_least(Some(committed.index), "replay committed metadata")
                .await
                .map_err(|e| MetaError::Raft(format!("replaying the metadata log: {e}")))?;
        }
        // After the first start the membership lives in the log; changing
        // controller.quorum.voters in the config does not change it (adding voters is a
        // membership change, not a config edit).
        let stored: Vec<u64> = raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        if !pristine && !stored.is_empty() && stored != configured {
            tracing::warn!(
                ?stored,
                ?configured,
                "controller.quorum.voters differs from the voters in the metadata log; the log wins"
            );
        }
        let cluster_id_task =
            tokio::spawn(ensure_cluster_id(Arc::downgrade(&inner), raft.metrics()));
        inner.track(cluster_id_task);
        tracing::info!(node_id, listener = %config.controller_listener, "metadata quorum started");
        Ok(MetadataQuorum { inner })
    }

    /// The latest applied image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.inner.state_machine.image()
    }

    /// Notified with every newly applied image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.inner.state_machine.subscribe()
    }

    /// The current quorum leader's node id, if one is known.
    pub fn leader(&self) -> Option<i32> {
        let leader = self.inner.raft.metrics().borrow_watched().current_leader;
        leader.and_then(|id| i32::try_from(id).ok())
    }

    /// Leader, epoch, high watermark and voter progress, for DescribeQuorum.
    pub fn status(&self) -> QuorumStatus {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow_watched();
        let to_i32 = |id: u64| i32::try_from(id).unwrap_or(i32::MAX);
        let voters = m
            .membership_config
            .membership()
            .voter_ids()
            .map(|id| {
                let matched = m
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id))
                    .and_then(|l| l.as_ref().map(|l| l.index));
                (to_i32(id), matched)
            })
            .collect();
        QuorumStatus {
            leader_id: m.current_leader.map(to_i32),
            leader_epoch: m.current_term,
            high_watermark: m.cluster_committed.as_ref().map(|l| l.index),
            voters,
        }
    }

    /// Registers (or re-registers) a broker's endpoint.
    pub async fn register_broker(
        &self,
        node_id: i32,
        host: String,
        port: u16,
        rack: Option<String>,
    ) -> Result<(), MetaError> {
        let call = ControllerCall::RegisterBroker {
            node_id,
            host,
            port,
            rack,
        };
        match self.inner.call(call).await {
            ControllerReply::Unit(r) => r.map_err(MetaError::from),
            _ => Err(MetaError::Raft("unexpected controller reply".into())),
        }
    }

    /// CreateTopics: one result per request, in order.
    pub async fn create_topics(
        &self,
        requests: Vec<CreateTopicRequest>,
        validate_only: bool,
        defaults: TopicDefaults,
    ) -> Vec<Result<CreatedTopic, ControllerError>> {
        let n = requests.len();
        let call = ControllerCall::CreateTopics {
            requests,
            validate_only,
            defaults,
        };
        match self.inner.call(call).await {
            ControllerReply::CreateTopics(v) if v.len() == n => v,
            _ => vec![
                Err(ControllerError::Storage(
                    "unexpected controller reply".into()
                ));
                n
            ],
        }
    }

    /// DeleteTopics: one result (name and id of the deleted topic) per reference, in order.
    pub async fn delete_topics(
        &self,
        names_or_ids: Vec<TopicRef>,
    ) -> Vec<Result<(String, Uuid), ControllerError>> {
        let n = names_or_ids.len();
        let call = ControllerCall::DeleteTopics {
            topics: names_or_ids,
        };
        match self.inner.call(call).await {
            ControllerReply::DeleteTopics(v) if v.len() == n => v,
            _ => vec![
                Err(ControllerError::Storage(
                    "unexpected controller reply".into()
                ));
                n
            ],
        }
    }

    /// CreatePartitions: grow `topic` to `new_total` partitions.
    pub async fn create_partitions(
        &self,
        topic: String,
        new_total: i32,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let call = ControllerCall::CreatePartitions {
            topic,
            new_total,
            validate_only,
        };
        self.inner.call_unit(call).await
    }

    /// (Incremental)AlterConfigs on one resource; all operations apply together or none does.
    pub async fn alter_configs(
        &self,
        resource: ConfigResource,
        ops: Vec<(String, AlterOp)>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let call = ControllerCall::AlterConfigs {
            resource,
            ops,
            validate_only,
        };
        self.inner.call_unit(call).await
    }

    /// AllocateProducerIds: claims the next block of producer ids for `broker_id` through the
    /// metadata log (KIP-730), so ids are unique cluster-wide.
    pub async fn allocate_producer_ids(
        &self,
        broker_id: i32,
    ) -> Result<crate::controller::producer_ids::ProducerIdBlock, ControllerError> {
        match self
            .inner
            .call(ControllerCall::AllocateProducerIds { broker_id })
            .await
        {
            ControllerReply::ProducerIds(r) => r,
            _ => Err(ControllerError::Storage(
                "unexpected controller reply".into(),
            )),
        }
    }

    /// Stops Raft, the controller listener and background tasks. The log is already durable.
    pub async fn shutdown(&self) {
        self.inner.shutdown_tx.send_replace(true);
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        let tasks = match self.inner.tasks.lock() {
            Ok(mut tasks) => std::mem::take(&mut *tasks),
            Err(_) => Vec::new(),
        };
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

impl QuorumInner {
    fn track(&self, task: JoinHandle<()>) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(task);
        }
    }

    fn is_shut_down(&self) -> bool {
        *self.shutdown_tx.borrow()
    }
}

/// Kafka's cluster id format: a random UUID, URL-safe base64 without padding (22 characters).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut out = String::with_capacity(22);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(ALPHABET[((acc >> bits) & 0x3f) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (6 - bits)) & 0x3f) as usize]));
    }
    out
}

/// Writes a cluster id once, from whichever node first leads a cluster that has none.
async fn ensure_cluster_id(
    inner: Weak<QuorumInner>,
    mut metrics: openraft::type_config::alias::WatchReceiverOf<
        TypeConfig,
        openraft::RaftMetrics<TypeConfig>,
    >,
) {
    loop {
        let leads = {
            let m = metrics.borrow_watched();
            m.current_leader == Some(m.id)
        };
        {
            let Some(inner) = inner.upgrade() else { return };
            if inner.state_machine.image().cluster_id().is_some() {
                return;
            }
            if leads {
                let record = MetadataRecord::ClusterId {
                    cluster_id: new_cluster_id(),
                };
                // Racing leaders are harmless: the first applied record wins.
                match inner.propose(vec![record]).await {
                    Ok(()) => return,
                    Err(e) => tracing::debug!(error = %e, "writing the cluster id"),
                }
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_id_looks_like_kafkas() {
        let id = new_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn node_must_be_a_voter() {
        let config = QuorumConfig {
            node_id: 2,
            metadata_dir: PathBuf::from("/nonexistent"),
            voters: vec![(1, "127.0.0.1:1".parse().expect("addr"))],
            controller_listener: "127.0.0.1:1".parse().expect("addr"),
        };
        assert!(matches!(validate(&config), Err(MetaError::Config(_))));
    }
}
