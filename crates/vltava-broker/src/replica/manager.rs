//! The replica manager: keeps this broker's open partition logs in step with the metadata image.
//! When the image says this node leads a partition, its log is opened (created or recovered);
//! when a topic disappears (or is recreated with a new id), its logs are deleted.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use tracing::{info, warn};
use uuid::Uuid;
use vltava_log::{LogDir, LogError, TopicPartition};
use vltava_meta::MetadataImage;

use super::Partition;
use crate::config::{topic::log_config, BrokerConfig};
use crate::error;

/// The directory KRaft (and vltava-meta) keeps the metadata log in, inside `log.dirs`.
const METADATA_PARTITION_TOPIC: &str = "__cluster_metadata";

/// The result of looking up a partition for produce, fetch and friends.
#[derive(Debug, Clone)]
pub enum Lookup {
    Leader(Arc<Partition>),
    /// The topic exists but this broker does not lead the partition (or has not opened it yet).
    NotLeader,
    /// No such topic or partition.
    Unknown,
}

impl Lookup {
    /// The partition, or the Kafka error code for why not.
    pub fn leader(self) -> Result<Arc<Partition>, i16> {
        match self {
            Lookup::Leader(p) => Ok(p),
            Lookup::NotLeader => Err(error::NOT_LEADER_OR_FOLLOWER),
            Lookup::Unknown => Err(error::UNKNOWN_TOPIC_OR_PARTITION),
        }
    }
}

#[derive(Debug, Default)]
struct Topics {
    by_name: HashMap<String, TopicPartitions>,
    names_by_id: HashMap<Uuid, String>,
}

#[derive(Debug, Clone)]
struct TopicPartitions {
    topic_id: Uuid,
    partitions: Vec<Option<Arc<Partition>>>,
}

#[derive(Debug)]
pub struct ReplicaManager {
    node_id: i32,
    config: BrokerConfig,
    log_dir: LogDir,
    topics: RwLock<Topics>,
    /// Serializes `apply_image` (called from the image watcher and after admin requests).
    applying: Mutex<u64>,
}

impl ReplicaManager {
    pub fn new(config: BrokerConfig, log_dir: LogDir) -> ReplicaManager {
        ReplicaManager {
            node_id: config.node.node_id,
            config,
            log_dir,
            topics: RwLock::new(Topics::default()),
            applying: Mutex::new(0),
        }
    }

    pub fn log_dir(&self) -> &LogDir {
        &self.log_dir
    }

    pub fn get(&self, topic: &str, partition: i32) -> Lookup {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        match topics.by_name.get(topic) {
            None => Lookup::Unknown,
            Some(t) => match usize::try_from(partition)
                .ok()
                .and_then(|p| t.partitions.get(p))
            {
                None => Lookup::Unknown,
                Some(None) => Lookup::NotLeader,
                Some(Some(p)) => Lookup::Leader(p.clone()),
            },
        }
    }

    /// The topic's name for a topic id (Fetch v13+ and Produce v13 address topics by id).
    pub fn topic_name(&self, topic_id: &Uuid) -> Option<String> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics.names_by_id.get(topic_id).cloned()
    }

    pub fn topic_id(&self, topic: &str) -> Option<Uuid> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics.by_name.get(topic).map(|t| t.topic_id)
    }

    /// Every partition this broker leads.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics
            .by_name
            .values()
            .flat_map(|t| t.partitions.iter().flatten().cloned())
            .collect()
    }

    /// Brings the open logs in line with `image`. Blocking (opens, recovers and deletes logs):
    /// call from a blocking thread. Returns how many partition logs were opened.
    pub fn apply_image(&self, image: &MetadataImage) -> Result<usize, LogError> {
        let mut applied = self.applying.lock().unwrap_or_else(|e| e.into_inner());
        if *applied != 0 && image.applied_index() <= *applied {
            return Ok(0);
        }
        let mut opened = 0;
        let mut next = Topics::default();
        let current: HashMap<String, TopicPartitions> = {
            let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
            topics.by_name.clone()
        };
        let mut wanted: HashSet<TopicPartition> = HashSet::new();
        self.open_new_topics_at_once(image, &current)?;

        for topic in image.topics() {
            let existing = current
                .get(&topic.name)
                .filter(|t| t.topic_id == topic.topic_id)
                .map(|t| t.partitions.clone());
            if let Some(old) = current.get(&topic.name) {
                if old.topic_id != topic.topic_id {
                    // Deleted and recreated under the same name: the old data must go.
                    self.delete_topic_logs(&topic.name, &current)?;
                }
            }
            let log_config = log_config(&self.config, &topic.configs);
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for p in &topic.partitions {
                let tp = TopicPartition::new(topic.name.clone(), p.partition);
                if p.leader != self.node_id {
                    partitions.push(None);
                    continue;
                }
                wanted.insert(tp.clone());
                let already = existing
                    .as_ref()
                    .and_then(|parts| usize::try_from(p.partition).ok().and_then(|i| parts.get(i)))
                    .and_then(|p| p.clone());
                let partition = match already {
                    Some(part) => {
                        part.set_leader_epoch(p.leader_epoch);
                        if part.log.config() != log_config {
                            part.log.set_config(log_config.clone());
                        }
                        part
                    }
                    None => {
                        let log = self.log_dir.open_log(&tp, log_config.clone())?;
                        opened += 1;
                        Arc::new(Partition::new(
                            topic.name.clone(),
                            topic.topic_id,
                            p.partition,
                            log,
                            p.leader_epoch,
                        ))
                    }
                };
                partitions.push(Some(partition));
            }
            next.names_by_id.insert(topic.topic_id, topic.name.clone());
            next.by_name.insert(
                topic.name.clone(),
                TopicPartitions {
                    topic_id: topic.topic_id,
                    partitions,
                },
            );
        }

        // Publish the new view before deleting, so requests stop finding deleted partitions.
        let removed: Vec<Arc<Partition>> = {
            let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
            let old = std::mem::replace(&mut *topics, next);
            old.by_name
                .into_values()
                .flat_map(|t| t.partitions.into_iter().flatten())
                .collect()
        };
        for partition in removed {
            let tp = TopicPartition::new(partition.topic.clone(), partition.index);
            if !wanted.contains(&tp) {
                partition.wake_fetches();
                info!("deleting log {tp}");
                self.log_dir.delete_log(&tp)?;
            }
        }
        // Logs on disk for topics the image no longer has (deleted while we were down). Only
        // once the image includes our own registration: then it has replayed the metadata log
        // at least that far, and an absent topic really is gone, not just not yet replayed.
        if image.broker(self.node_id).is_some() {
            for tp in self.log_dir.partitions_on_disk() {
                if tp.topic != METADATA_PARTITION_TOPIC
                    && !wanted.contains(&tp)
                    && image.topic(&tp.topic).is_none()
                    && self.log_dir.root().join(tp.dir_name()).exists()
                {
                    warn!("deleting log {tp}: its topic is not in the metadata image");
                    self.log_dir.delete_log(&tp)?;
                }
            }
        }
        *applied = image.applied_index();
        Ok(opened)
    }

    /// Opens the logs this broker leads of topics it has none of yet, all at once on the log
    /// dir's recovery threads (at startup: every partition, so a crash recovers several at a
    /// time). A recreated topic is left to `apply_image`, which must delete the old logs
    /// before it opens the new ones.
    fn open_new_topics_at_once(
        &self,
        image: &MetadataImage,
        current: &HashMap<String, TopicPartitions>,
    ) -> Result<(), LogError> {
        let mut new_logs = Vec::new();
        for topic in image.topics() {
            if current.contains_key(&topic.name) {
                continue;
            }
            let log_config = log_config(&self.config, &topic.configs);
            for p in topic.partitions.iter().filter(|p| p.leader == self.node_id) {
                new_logs.push((
                    TopicPartition::new(topic.name.clone(), p.partition),
                    log_config.clone(),
                ));
            }
        }
        self.log_dir.open_logs(&new_logs).map(|_| ())
    }

    fn delete_topic_logs(
        &self,
        topic: &str,
        current: &HashMap<String, TopicPartitions>,
    ) -> Result<(), LogError> {
        if let Some(old) = current.get(topic) {
            for part in old.partitions.iter().flatten() {
                part.wake_fetches();
                info!(
                    "deleting log {}-{} (topic recreated)",
                    part.topic, part.index
                );
                self.log_dir
                    .delete_log(&TopicPartition::new(topic, part.index))?;
            }
        }
        Ok(())
    }

    /// Periodic work: roll segments past `segment.ms`, flush past `flush.ms`, apply retention.
    /// Blocking; run from a blocking thread. Errors are logged per partition.
    pub fn maintain(&self, now_ms: i64, retention: bool) {
        for partition in self.partitions() {
            let log = &partition.log;
            // Kafka checks producer expiration every `producer.id.expiration.check.interval.ms`
            // (10 minutes); a look at an in-memory map each second is cheap enough.
            log.expire_producers(now_ms, self.config.log.producer_id_expiration_ms);
            let result = log
                .roll_if_due(now_ms)
                .and_then(|_| log.flush_if_due(now_ms).map(|_| ()))
                .and_then(|_| {
                    if retention {
                        log.apply_retention(now_ms).map(|deleted| {
                            if deleted > 0 {
                                info!(
                                    "retention deleted {deleted} segments of {}-{}",
                                    partition.topic, partition.index
                                );
                            }
                        })
                    } else {
                        Ok(())
                    }
                });
            if let Err(e) = result {
                warn!(
                    "log maintenance of {}-{} failed: {e}",
                    partition.topic, partition.index
                );
            }
        }
    }

    /// Flushes every log, writes checkpoints and the clean-shutdown marker.
    pub fn shutdown(&self) -> Result<(), LogError> {
        self.log_dir.shutdown()
    }
}
