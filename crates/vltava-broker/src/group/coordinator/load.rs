//! Replaying a `__consumer_offsets` partition into groups, the first time it is needed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tracing::{info, warn};

use super::{GroupCoordinator, GroupEntry, Inner};
use crate::broker::Broker;
use crate::group::member::{Member, Protocol};
use crate::group::offsets::CommittedOffset;
use crate::group::records::{self, RecordKey};
use crate::group::{store, ClassicGroup, GroupError, OFFSETS_TOPIC};

impl GroupCoordinator {
    /// Replays the group's partition if needed. With `create`, creates `__consumer_offsets`
    /// first (a write is coming); without, a missing topic just means no groups.
    pub(super) async fn ensure_loaded(
        &self,
        broker: &Arc<Broker>,
        partition: i32,
        create: bool,
    ) -> Result<bool, GroupError> {
        self.start_timers(broker);
        if self.lock().loaded.contains(&partition) {
            return Ok(true);
        }
        if broker.image().topic(OFFSETS_TOPIC).is_none() {
            if !create {
                return Ok(false);
            }
            store::ensure_topic(broker).await?;
        }
        let _serial = self.loading.lock().await;
        if self.lock().loaded.contains(&partition) {
            return Ok(true);
        }
        let log = store::partition(broker, partition)?.log.clone();
        let started = Instant::now();
        let (replayed, pending) =
            crate::handlers::blocking(move || store::replay_with_pending(&log))
                .await
                .map_err(|e| GroupError::Storage(e.to_string()))??;
        let count = replayed.len();
        let now = self.now();
        let mut inner = self.lock();
        let loaded = self.apply_replay(&mut inner, replayed, now);
        self.load_pending_txn(&mut inner, pending);
        inner.loaded.insert(partition);
        for id in &loaded {
            Self::reschedule(&mut inner, id);
        }
        drop(inner);
        self.wake.notify_one();
        if count > 0 {
            info!(
                "loaded {} groups from {count} records of {OFFSETS_TOPIC}-{partition} in {:?}",
                loaded.len(),
                started.elapsed()
            );
        }
        Ok(true)
    }

    fn apply_replay(
        &self,
        inner: &mut Inner,
        records: Vec<(i64, Bytes, Option<Bytes>)>,
        now: u64,
    ) -> Vec<String> {
        let mut metadata: HashMap<String, Option<records::GroupMetadataValue>> = HashMap::new();
        let mut offsets: HashMap<String, GroupEntry> = HashMap::new();
        for (log_offset, key, value) in records {
            let key = match records::decode_key(&key) {
                Ok(key) => key,
                Err(e) => {
                    warn!("skipping undecodable {OFFSETS_TOPIC} key at {log_offset}: {e}");
                    continue;
                }
            };
            match key {
                RecordKey::OffsetCommit {
                    group,
                    topic,
                    partition,
                } => {
                    let entry = offsets.entry(group.clone()).or_insert_with(|| {
                        GroupEntry::new(ClassicGroup::new(group, self.config.clone()))
                    });
                    match value.map(|v| records::decode_offset_value(&v)) {
                        None => {
                            entry.offsets.remove(&topic, partition);
                        }
                        Some(Ok(v)) => entry.offsets.put(
                            &topic,
                            partition,
                            CommittedOffset {
                                offset: v.offset,
                                leader_epoch: v.leader_epoch,
                                metadata: v.metadata,
                                commit_timestamp: v.commit_timestamp,
                                expire_timestamp: v.expire_timestamp,
                                record_offset: log_offset,
                            },
                        ),
                        Some(Err(e)) => warn!("skipping offset record at {log_offset}: {e}"),
                    }
                }
                RecordKey::GroupMetadata { group } => {
                    match value.map(|v| records::decode_group_value(&v)) {
                        None => {
                            metadata.insert(group, None);
                        }
                        Some(Ok(v)) => {
                            metadata.insert(group, Some(v));
                        }
                        Some(Err(e)) => warn!("skipping group record at {log_offset}: {e}"),
                    }
                }
                RecordKey::Other(_) => {}
            }
        }
        let mut ids = Vec::new();
        for (group_id, value) in metadata {
            let Some(value) = value else { continue };
            let members = value
                .members
                .into_iter()
                .map(|m| Member {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    rebalance_timeout_ms: m.rebalance_timeout,
                    session_timeout_ms: m.session_timeout,
                    protocols: value
                        .protocol
                        .clone()
                        .map(|name| Protocol {
                            name,
                            metadata: m.subscription,
                        })
                        .into_iter()
                        .collect(),
                    assignment: m.assignment,
                    awaiting_join: false,
                    awaiting_sync: false,
                    is_new: false,
                    session_deadline: None,
                })
                .collect();
            let group = ClassicGroup::loaded(
                group_id.clone(),
                self.config.clone(),
                value.generation,
                (!value.protocol_type.is_empty()).then_some(value.protocol_type),
                value.protocol,
                value.leader,
                members,
                value.current_state_timestamp,
                now,
            );
            let entry = offsets
                .entry(group_id.clone())
                .or_insert_with(|| GroupEntry::new(group.clone()));
            entry.group = group;
        }
        for (group_id, entry) in offsets {
            if entry.group.is_empty()
                && entry.offsets.is_empty()
                && entry.group.generation_id() == 0
            {
                continue;
            }
            ids.push(group_id.clone());
            inner.groups.insert(group_id, entry);
        }
        ids
    }
}
