//! Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete, and `offsets.retention.minutes`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bytes::Buf;

use super::{GroupCoordinator, GroupEntry, OffsetToCommit};
use crate::broker::{now_ms, Broker};
use crate::group::offsets::CommittedOffset;
use crate::group::records::{self, OffsetCommitValue, RecordKey};
use crate::group::store::KeyValue;
use crate::group::{ClassicGroup, GroupError, GroupState};

/// Offsets of one topic as OffsetFetch returns them (None: nothing committed).
pub type TopicOffsets = (String, Vec<(i32, Option<CommittedOffset>)>);

impl GroupCoordinator {
    /// OffsetCommit: one result per offset, or an error for the whole group. The offsets are
    /// on disk (fsynced) before this returns Ok.
    #[allow(clippy::too_many_arguments)]
    pub async fn commit(
        &self,
        broker: &Arc<Broker>,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        api_version: i16,
        retention_ms: i64,
        offsets: Vec<OffsetToCommit>,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.ensure_loaded(broker, self.partition_for(group_id), true)
            .await?;
        {
            let mut inner = self.lock();
            match inner.groups.get(group_id) {
                Some(entry) => entry.group.validate_offset_commit(
                    member_id,
                    group_instance_id,
                    generation_id,
                )?,
                // A simple consumer or an admin client: the group is created by its commit.
                None if generation_id < 0 => {
                    if inner.groups.len() >= self.config.max_groups {
                        return Err(GroupError::TooManyGroups);
                    }
                    let group = ClassicGroup::new(group_id.to_string(), self.config.clone());
                    inner
                        .groups
                        .insert(group_id.to_string(), GroupEntry::new(group));
                }
                // v9+ says so; older versions keep the old answer (GroupMetadataManager).
                None if api_version >= 9 => return Err(GroupError::GroupIdNotFound),
                None => return Err(GroupError::IllegalGeneration),
            }
        }

        let now = now_ms();
        let mut results = Vec::with_capacity(offsets.len());
        let mut records: Vec<KeyValue> = Vec::new();
        let mut written: Vec<(usize, OffsetToCommit, CommittedOffset)> = Vec::new();
        for commit in offsets {
            let metadata = commit.metadata.clone().unwrap_or_default();
            if metadata.len() > self.config.offset_metadata_max_bytes {
                results.push(Err(GroupError::OffsetMetadataTooLarge));
                continue;
            }
            let value = CommittedOffset {
                offset: commit.offset,
                leader_epoch: commit.leader_epoch,
                metadata,
                commit_timestamp: now,
                expire_timestamp: if retention_ms > 0 {
                    now.saturating_add(retention_ms)
                } else {
                    -1
                },
                record_offset: -1,
            };
            let key = records::encode_key(&RecordKey::OffsetCommit {
                group: group_id.to_string(),
                topic: commit.topic.clone(),
                partition: commit.partition,
            });
            let encoded = records::encode_offset_value(&OffsetCommitValue {
                offset: value.offset,
                leader_epoch: value.leader_epoch,
                metadata: value.metadata.clone(),
                commit_timestamp: value.commit_timestamp,
                expire_timestamp: value.expire_timestamp,
            });
            match (key, encoded) {
                (Ok(key), Ok(encoded)) => {
                    written.push((records.len(), commit, value));
                    records.push((key, Some(encoded)));
                    results.push(Ok(()));
                }
                _ => results.push(Err(GroupError::OffsetMetadataTooLarge)),
            }
        }
        if records.is_empty() {
            return Ok(results);
        }
        let base = match self.write(broker, group_id, records).await {
            Ok(base) => base,
            Err(e) => return Ok(results.into_iter().map(|r| r.and(Err(e.clone()))).collect()),
        };
        let mut inner = self.lock();
        if let Some(entry) = inner.groups.get_mut(group_id) {
            for (index, commit, mut value) in written {
                value.record_offset = base + index as i64;
                entry.offsets.put(&commit.topic, commit.partition, value);
            }
        }
        Ok(results)
    }

    /// OffsetFetch for one group: the requested partitions, or every committed one (`None`).
    pub async fn fetch_offsets(
        &self,
        broker: &Arc<Broker>,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<Vec<TopicOffsets>, GroupError> {
        self.ensure_loaded(broker, self.partition_for(group_id), false)
            .await?;
        let inner = self.lock();
        let entry = inner.groups.get(group_id);
        Ok(match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let offsets = partitions
                        .into_iter()
                        .map(|p| (p, entry.and_then(|e| e.offsets.get(&topic, p)).cloned()))
                        .collect();
                    (topic, offsets)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> =
                    BTreeMap::new();
                if let Some(entry) = entry {
                    for (topic, partition, offset) in entry.offsets.iter() {
                        by_topic
                            .entry(topic.to_string())
                            .or_default()
                            .push((partition, Some(offset.clone())));
                    }
                }
                by_topic.into_iter().collect()
            }
        })
    }

    /// OffsetDelete: per partition, GROUP_SUBSCRIBED_TO_TOPIC while members consume the topic.
    pub async fn delete_offsets(
        &self,
        broker: &Arc<Broker>,
        group_id: &str,
        topics: Vec<(String, Vec<i32>)>,
    ) -> Result<Vec<(String, i32, Result<(), GroupError>)>, GroupError> {
        if !self
            .ensure_loaded(broker, self.partition_for(group_id), false)
            .await?
        {
            return Err(GroupError::GroupIdNotFound);
        }
        let mut results = Vec::new();
        let mut tombstones: Vec<KeyValue> = Vec::new();
        {
            let inner = self.lock();
            let Some(entry) = inner.groups.get(group_id) else {
                return Err(GroupError::GroupIdNotFound);
            };
            let group = &entry.group;
            let consumer = group.protocol_type() == Some("consumer");
            match group.state() {
                GroupState::Dead => return Err(GroupError::GroupIdNotFound),
                GroupState::Empty => {}
                _ if !consumer => return Err(GroupError::NonEmptyGroup),
                _ => {}
            }
            let subscribed = (group.state() != GroupState::Empty).then(|| subscribed_topics(group));
            for (topic, partitions) in topics {
                let in_use = match &subscribed {
                    None => false,
                    Some(Some(topics)) => topics.contains(&topic),
                    Some(None) => consumer, // unparseable subscriptions: assume it is used
                };
                for partition in partitions {
                    if in_use {
                        results.push((
                            topic.clone(),
                            partition,
                            Err(GroupError::GroupSubscribedToTopic),
                        ));
                        continue;
                    }
                    if entry.offsets.get(&topic, partition).is_some() {
                        if let Ok(key) = records::encode_key(&RecordKey::OffsetCommit {
                            group: group_id.to_string(),
                            topic: topic.clone(),
                            partition,
                        }) {
                            tombstones.push((key, None));
                        }
                    }
                    results.push((topic.clone(), partition, Ok(())));
                }
            }
        }
        if !tombstones.is_empty() {
            self.write(broker, group_id, tombstones).await?;
            let mut inner = self.lock();
            if let Some(entry) = inner.groups.get_mut(group_id) {
                for (topic, partition, result) in &results {
                    if result.is_ok() {
                        entry.offsets.remove(topic, *partition);
                    }
                }
            }
        }
        Ok(results)
    }

    /// Expires offsets past `offsets.retention.minutes` and drops groups left with nothing,
    /// writing tombstones for both (Kafka's `cleanupGroupMetadata`).
    pub async fn expire_offsets(&self, broker: &Arc<Broker>) {
        let now = now_ms();
        // (group, tombstones, expired partitions, whether the group goes too)
        type Expiry = (String, Vec<KeyValue>, Vec<(String, i32)>, bool);
        let mut work: Vec<Expiry> = Vec::new();
        {
            let mut inner = self.lock();
            for (group_id, entry) in inner.groups.iter_mut() {
                let group = &entry.group;
                let expired = entry.offsets.expired(
                    now,
                    self.config.offsets_retention_ms,
                    group.state() == GroupState::Empty,
                    group.protocol_type().is_some(),
                    group.state_timestamp_ms,
                );
                let abandoned = group.state() == GroupState::Empty
                    && group.is_empty()
                    && entry.offsets.is_empty()
                    && group.next_deadline().is_none();
                if expired.is_empty() && !abandoned {
                    continue;
                }
                let mut tombstones: Vec<KeyValue> = expired
                    .iter()
                    .filter_map(|(topic, partition)| {
                        records::encode_key(&RecordKey::OffsetCommit {
                            group: group_id.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                        })
                        .ok()
                    })
                    .map(|key| (key, None))
                    .collect();
                let drop_group = expired.len() == entry.offsets.len() && group.is_empty();
                if drop_group {
                    entry.group.set_dead();
                    if let Some(record) = super::group_metadata_record(&entry.group) {
                        tombstones.push(record);
                    }
                }
                work.push((group_id.clone(), tombstones, expired, drop_group));
            }
        }
        for (group_id, tombstones, expired, drop_group) in work {
            if let Err(e) = self.write(broker, &group_id, tombstones).await {
                tracing::warn!("expiring offsets of group {group_id:?} failed: {e}");
                continue;
            }
            tracing::info!("expired {} offsets of group {group_id:?}", expired.len());
            let mut inner = self.lock();
            if drop_group {
                inner.groups.remove(&group_id);
                Self::reschedule(&mut inner, &group_id);
            } else if let Some(entry) = inner.groups.get_mut(&group_id) {
                for (topic, partition) in expired {
                    entry.offsets.remove(&topic, partition);
                }
            }
        }
    }
}

/// The topics a consumer group's members subscribe to, from the consumer protocol's
/// Subscription (every version starts with version, topics). None if any does not parse.
fn subscribed_topics(group: &ClassicGroup) -> Option<HashSet<String>> {
    let protocol = group.protocol_name()?;
    let mut topics = HashSet::new();
    for member in group.members() {
        let mut buf: &[u8] = member.metadata(protocol)?;
        buf.try_get_i16().ok()?;
        let count = buf.try_get_i32().ok()?;
        for _ in 0..count.max(0) {
            let len = usize::try_from(buf.try_get_i16().ok()?).ok()?;
            let name = buf.get(..len)?;
            topics.insert(String::from_utf8(name.to_vec()).ok()?);
            buf.advance(len);
        }
    }
    Some(topics)
}
