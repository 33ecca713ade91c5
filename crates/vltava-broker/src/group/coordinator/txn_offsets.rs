//! Transactional offset commits (TxnOffsetCommit, KIP-98/KIP-447): written to
//! `__consumer_offsets` as a transactional batch of the producer, held pending per group and
//! producer id, made visible (OffsetFetch) when the transaction's COMMIT marker is written and
//! dropped at its ABORT marker. The transaction coordinator calls [`GroupCoordinator::complete_txn_offsets`]
//! once a marker is on the group's partition.

use std::sync::Arc;

use super::{GroupCoordinator, GroupEntry, Inner, OffsetToCommit};
use crate::broker::{now_ms, Broker};
use crate::group::offsets::CommittedOffset;
use crate::group::records::{self, OffsetCommitValue, RecordKey};
use crate::group::store::{self, KeyValue, Replayed};
use crate::group::{ClassicGroup, GroupError};

/// Offsets a producer's open transaction committed for one group: (topic, partition, offset).
pub(super) type PendingOffsets = Vec<(String, i32, CommittedOffset)>;

impl GroupCoordinator {
    /// TxnOffsetCommit: one result per offset, or an error for the whole group. Written (and
    /// fsynced) as part of the producer's transaction before this returns; visible only after
    /// the transaction commits.
    #[allow(clippy::too_many_arguments)]
    pub async fn txn_commit(
        &self,
        broker: &Arc<Broker>,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        offsets: Vec<OffsetToCommit>,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        self.ensure_loaded(broker, self.partition_for(group_id), true)
            .await?;
        {
            let mut inner = self.lock();
            match inner.groups.get(group_id) {
                // KIP-447: a consumer's group metadata is checked like an OffsetCommit's; the
                // old path (no member, generation -1) is not.
                Some(entry) if generation_id >= 0 || !member_id.is_empty() => entry
                    .group
                    .validate_offset_commit(member_id, group_instance_id, generation_id)?,
                Some(_) => {}
                None if generation_id < 0 => {
                    if inner.groups.len() >= self.config.max_groups {
                        return Err(GroupError::TooManyGroups);
                    }
                    let group = ClassicGroup::new(group_id.to_string(), self.config.clone());
                    inner
                        .groups
                        .insert(group_id.to_string(), GroupEntry::new(group));
                }
                None => return Err(GroupError::IllegalGeneration),
            }
        }
        let now = now_ms();
        let mut results = Vec::with_capacity(offsets.len());
        let mut records: Vec<KeyValue> = Vec::new();
        let mut written: Vec<(String, i32, CommittedOffset)> = Vec::new();
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
                expire_timestamp: -1,
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
                commit_timestamp: now,
                expire_timestamp: -1,
            });
            match (key, encoded) {
                (Ok(key), Ok(encoded)) => {
                    records.push((key, Some(encoded)));
                    written.push((commit.topic, commit.partition, value));
                    results.push(Ok(()));
                }
                _ => results.push(Err(GroupError::OffsetMetadataTooLarge)),
            }
        }
        if records.is_empty() {
            return Ok(results);
        }
        let partition = store::partition(broker, self.partition_for(group_id))?;
        let base = crate::handlers::blocking(move || {
            store::append_transactional(&partition, &records, now, (producer_id, producer_epoch))
        })
        .await
        .map_err(|e| GroupError::Storage(e.to_string()))?
        .map_err(|e| match e {
            store::StoreError::Log(e) => GroupError::Log(e.kafka_error_code()),
            e => GroupError::from(e),
        })?;
        let mut inner = self.lock();
        let pending = inner
            .pending_txn
            .entry(producer_id)
            .or_default()
            .entry(group_id.to_string())
            .or_default();
        for (index, (topic, partition, mut value)) in written.into_iter().enumerate() {
            value.record_offset = base + index as i64;
            pending.retain(|(t, p, _)| !(t == &topic && *p == partition));
            pending.push((topic, partition, value));
        }
        Ok(results)
    }

    /// Replays `__consumer_offsets-{offsets_partition}` if it is not loaded yet. The transaction
    /// coordinator calls this before writing markers there, so a replay cannot read the log
    /// before a marker and then miss [`GroupCoordinator::complete_txn_offsets`] for it.
    pub async fn load_for_txn_markers(
        &self,
        broker: &Arc<Broker>,
        offsets_partition: i32,
    ) -> Result<(), GroupError> {
        self.ensure_loaded(broker, offsets_partition, false)
            .await
            .map(drop)
    }

    /// A COMMIT (or ABORT) marker of `producer_id` is on `__consumer_offsets-{offsets_partition}`:
    /// its pending offsets for the groups of that partition become committed (or are dropped).
    pub fn complete_txn_offsets(&self, producer_id: i64, commit: bool, offsets_partition: i32) {
        let mut inner = self.lock();
        let Some(by_group) = inner.pending_txn.get_mut(&producer_id) else {
            return;
        };
        let groups: Vec<String> = by_group
            .keys()
            .filter(|g| self.partition_for(g) == offsets_partition)
            .cloned()
            .collect();
        let mut done = Vec::new();
        for group in groups {
            if let Some(offsets) = by_group.remove(&group) {
                done.push((group, offsets));
            }
        }
        if by_group.is_empty() {
            inner.pending_txn.remove(&producer_id);
        }
        if !commit {
            return;
        }
        for (group, offsets) in done {
            apply(&mut inner, &self.config, &group, offsets);
        }
    }

    /// Whether a transaction holds an uncommitted offset for the group's partition
    /// (OffsetFetch's UNSTABLE_OFFSET_COMMIT, KIP-447).
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.lock().pending_txn.values().any(|by_group| {
            by_group
                .get(group_id)
                .is_some_and(|o| o.iter().any(|(t, p, _)| t == topic && *p == partition))
        })
    }

    /// After a replay: the records of transactions still open at the end of the log.
    pub(super) fn load_pending_txn(
        &self,
        inner: &mut Inner,
        pending: std::collections::HashMap<i64, (i16, Vec<Replayed>)>,
    ) {
        for (producer_id, (_, replayed)) in pending {
            for (log_offset, key, value) in replayed {
                let Ok(RecordKey::OffsetCommit {
                    group,
                    topic,
                    partition,
                }) = records::decode_key(&key)
                else {
                    continue;
                };
                let Some(Ok(v)) = value.map(|v| records::decode_offset_value(&v)) else {
                    continue;
                };
                let offsets = inner
                    .pending_txn
                    .entry(producer_id)
                    .or_default()
                    .entry(group)
                    .or_default();
                offsets.retain(|(t, p, _)| !(t == &topic && *p == partition));
                offsets.push((
                    topic,
                    partition,
                    CommittedOffset {
                        offset: v.offset,
                        leader_epoch: v.leader_epoch,
                        metadata: v.metadata,
                        commit_timestamp: v.commit_timestamp,
                        expire_timestamp: v.expire_timestamp,
                        record_offset: log_offset,
                    },
                ));
            }
        }
    }
}

fn apply(
    inner: &mut Inner,
    config: &crate::group::GroupConfig,
    group_id: &str,
    offsets: PendingOffsets,
) {
    let entry = inner.groups.entry(group_id.to_string()).or_insert_with(|| {
        GroupEntry::new(ClassicGroup::new(group_id.to_string(), config.clone()))
    });
    for (topic, partition, value) in offsets {
        entry.offsets.put(&topic, partition, value);
    }
}
