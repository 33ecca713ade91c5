//! ListGroups, DescribeGroups, DeleteGroups.

use std::sync::Arc;

use super::{GroupCoordinator, GroupDescription, MemberDescription};
use crate::broker::Broker;
use crate::group::records::{self, RecordKey};
use crate::group::store::KeyValue;
use crate::group::{GroupError, GroupState};

/// One row of ListGroups.
#[derive(Debug, Clone)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

impl GroupCoordinator {
    /// Every group this broker coordinates, filtered by state names and group types
    /// (case-insensitive, as Kafka parses them; every group here is "classic").
    pub async fn list_groups(
        &self,
        broker: &Arc<Broker>,
        states: &[String],
        types: &[String],
    ) -> Result<Vec<GroupListing>, GroupError> {
        for partition in 0..self.config.offsets_topic_partitions {
            self.ensure_loaded(broker, partition, false).await?;
        }
        if !types.is_empty() && !types.iter().any(|t| t.eq_ignore_ascii_case("classic")) {
            return Ok(Vec::new());
        }
        let inner = self.lock();
        let mut groups: Vec<GroupListing> = inner
            .groups
            .iter()
            .filter(|(_, e)| e.group.state() != GroupState::Dead)
            .filter(|(_, e)| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(e.group.state().name()))
            })
            .map(|(id, e)| GroupListing {
                group_id: id.clone(),
                protocol_type: e.group.protocol_type().unwrap_or_default().to_string(),
                state: e.group.state(),
            })
            .collect();
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(groups)
    }

    /// DescribeGroups for one group; `GroupIdNotFound` when there is no such group.
    pub async fn describe(
        &self,
        broker: &Arc<Broker>,
        group_id: &str,
    ) -> Result<GroupDescription, GroupError> {
        if !self
            .ensure_loaded(broker, self.partition_for(group_id), false)
            .await?
        {
            return Err(GroupError::GroupIdNotFound);
        }
        let inner = self.lock();
        let Some(entry) = inner.groups.get(group_id) else {
            return Err(GroupError::GroupIdNotFound);
        };
        let group = &entry.group;
        if group.state() == GroupState::Dead {
            return Err(GroupError::GroupIdNotFound);
        }
        let stable = group.state() == GroupState::Stable;
        let protocol = group.protocol_name().unwrap_or_default();
        Ok(GroupDescription {
            state: group.state(),
            protocol_type: group.protocol_type().unwrap_or_default().to_string(),
            protocol: if stable {
                protocol.to_string()
            } else {
                String::new()
            },
            members: group
                .members()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    // Kafka shows metadata and assignments only for a Stable group.
                    metadata: if stable {
                        m.metadata(protocol).cloned().unwrap_or_default()
                    } else {
                        Default::default()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Default::default()
                    },
                })
                .collect(),
        })
    }

    /// DeleteGroups: an empty group and its offsets go (tombstones); one result per group.
    pub async fn delete_groups(
        &self,
        broker: &Arc<Broker>,
        group_ids: &[String],
    ) -> Vec<Result<(), GroupError>> {
        let mut results = Vec::with_capacity(group_ids.len());
        for group_id in group_ids {
            results.push(self.delete_group(broker, group_id).await);
        }
        results
    }

    async fn delete_group(&self, broker: &Arc<Broker>, group_id: &str) -> Result<(), GroupError> {
        if !self
            .ensure_loaded(broker, self.partition_for(group_id), false)
            .await?
        {
            return Err(GroupError::GroupIdNotFound);
        }
        let tombstones: Vec<KeyValue> = {
            let mut inner = self.lock();
            let Some(entry) = inner.groups.get_mut(group_id) else {
                return Err(GroupError::GroupIdNotFound);
            };
            match entry.group.state() {
                GroupState::Dead => return Err(GroupError::GroupIdNotFound),
                GroupState::Empty => {}
                _ => return Err(GroupError::NonEmptyGroup),
            }
            entry.group.set_dead();
            let mut tombstones: Vec<KeyValue> = entry
                .offsets
                .iter()
                .filter_map(|(topic, partition, _)| {
                    records::encode_key(&RecordKey::OffsetCommit {
                        group: group_id.to_string(),
                        topic: topic.to_string(),
                        partition,
                    })
                    .ok()
                })
                .map(|key| (key, None))
                .collect();
            if let Some(record) = super::group_metadata_record(&entry.group) {
                tombstones.push(record);
            }
            tombstones
        };
        let written = self.write(broker, group_id, tombstones).await;
        let mut inner = self.lock();
        if inner
            .groups
            .get(group_id)
            .is_some_and(|e| e.group.state() == GroupState::Dead)
        {
            inner.groups.remove(group_id);
            Self::reschedule(&mut inner, group_id);
        }
        written.map(drop)
    }

    /// Every committed offset of the groups in memory, as `(group, topic, partition, offset)`
    /// sorted by group: what the lag gauges are computed from. Partitions of
    /// `__consumer_offsets` not replayed yet are not loaded here (a scrape must not start a
    /// replay); they appear once any group request has touched them.
    pub fn committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        let inner = self.lock();
        let mut rows: Vec<(String, String, i32, i64)> = inner
            .groups
            .iter()
            .flat_map(|(group, e)| {
                e.offsets.iter().map(move |(topic, partition, committed)| {
                    (
                        group.clone(),
                        topic.to_string(),
                        partition,
                        committed.offset,
                    )
                })
            })
            .collect();
        rows.sort();
        rows
    }

    /// Groups in memory and their approximate bytes (for the memory measurement).
    pub fn footprint(&self) -> (usize, usize) {
        let inner = self.lock();
        let bytes = inner
            .groups
            .values()
            .map(|e| e.group.footprint() + e.offsets.len() * 64)
            .sum();
        (inner.groups.len(), bytes)
    }
}
