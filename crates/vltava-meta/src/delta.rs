//! Applying metadata records to an image.
//!
//! [`apply_batch`] is a pure function: the same image and the same batch give the same result on
//! every node, so a batch that is rejected here is rejected everywhere and the images never
//! diverge. A batch is applied all together or not at all.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::image::{BrokerRegistration, MetadataImage, PartitionImage, TopicImage};
use crate::records::{ConfigResource, MetadataRecord};

/// A record that cannot be applied to the image it follows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    #[error("topic {name} ({topic_id}) already exists")]
    TopicExists { name: String, topic_id: uuid::Uuid },
    #[error("no topic with id {0}")]
    UnknownTopicId(uuid::Uuid),
    #[error("no topic named {0}")]
    UnknownTopic(String),
    #[error("partition {partition} of topic {topic_id} is not the next partition ({next})")]
    PartitionGap {
        topic_id: uuid::Uuid,
        partition: i32,
        next: usize,
    },
}

/// Applies `records` in order to `image` and returns the new image, or the first record's error
/// (the input image is untouched either way).
pub fn apply_batch(
    image: &MetadataImage,
    records: &[MetadataRecord],
) -> Result<MetadataImage, DeltaError> {
    let mut next = image.clone();
    for record in records {
        apply_record(&mut next, record)?;
    }
    Ok(next)
}

fn apply_record(image: &mut MetadataImage, record: &MetadataRecord) -> Result<(), DeltaError> {
    match record {
        MetadataRecord::ClusterId { cluster_id } => {
            // The first leader writes it; a second leader racing it loses, deterministically.
            if image.cluster_id.is_none() {
                image.cluster_id = Some(cluster_id.clone());
            }
        }
        MetadataRecord::RegisterBroker {
            node_id,
            host,
            port,
            rack,
        } => {
            image.brokers.insert(
                *node_id,
                BrokerRegistration {
                    node_id: *node_id,
                    host: host.clone(),
                    port: *port,
                    rack: rack.clone(),
                },
            );
        }
        MetadataRecord::Topic { name, topic_id } => {
            if image.topics.contains_key(topic_id) || image.topic_ids_by_name.contains_key(name) {
                return Err(DeltaError::TopicExists {
                    name: name.clone(),
                    topic_id: *topic_id,
                });
            }
            image.topic_ids_by_name.insert(name.clone(), *topic_id);
            image.topics.insert(
                *topic_id,
                Arc::new(TopicImage {
                    name: name.clone(),
                    topic_id: *topic_id,
                    partitions: Vec::new(),
                    configs: BTreeMap::new(),
                }),
            );
        }
        MetadataRecord::Partition {
            topic_id,
            partition,
            replicas,
            isr,
            leader,
            leader_epoch,
            partition_epoch,
        } => {
            let topic = image
                .topics
                .get_mut(topic_id)
                .ok_or(DeltaError::UnknownTopicId(*topic_id))?;
            let topic = Arc::make_mut(topic);
            let next = topic.partitions.len();
            let index = usize::try_from(*partition).map_err(|_| DeltaError::PartitionGap {
                topic_id: *topic_id,
                partition: *partition,
                next,
            })?;
            let value = PartitionImage {
                partition: *partition,
                replicas: replicas.clone(),
                isr: isr.clone(),
                leader: *leader,
                leader_epoch: *leader_epoch,
                partition_epoch: *partition_epoch,
            };
            if index == next {
                topic.partitions.push(value);
            } else if let Some(slot) = topic.partitions.get_mut(index) {
                *slot = value;
            } else {
                return Err(DeltaError::PartitionGap {
                    topic_id: *topic_id,
                    partition: *partition,
                    next,
                });
            }
        }
        MetadataRecord::ProducerIds {
            next_producer_id, ..
        } => {
            // Blocks only move forward, so a replayed or duplicated record never reissues ids.
            image.next_producer_id = image.next_producer_id.max(*next_producer_id);
        }
        MetadataRecord::RemoveTopic { topic_id } => {
            let topic = image
                .topics
                .remove(topic_id)
                .ok_or(DeltaError::UnknownTopicId(*topic_id))?;
            image.topic_ids_by_name.remove(&topic.name);
        }
        MetadataRecord::Config {
            resource,
            name,
            value,
        } => match resource {
            ConfigResource::Topic(topic_name) => {
                let id = *image
                    .topic_ids_by_name
                    .get(topic_name)
                    .ok_or_else(|| DeltaError::UnknownTopic(topic_name.clone()))?;
                let topic = image
                    .topics
                    .get_mut(&id)
                    .ok_or(DeltaError::UnknownTopicId(id))?;
                let configs = &mut Arc::make_mut(topic).configs;
                match value {
                    Some(v) => configs.insert(name.clone(), v.clone()),
                    None => configs.remove(name),
                };
            }
            ConfigResource::Broker(node_id) => {
                let configs = image.broker_configs.entry(*node_id).or_default();
                match value {
                    Some(v) => configs.insert(name.clone(), v.clone()),
                    None => configs.remove(name),
                };
                if configs.is_empty() {
                    image.broker_configs.remove(node_id);
                }
            }
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn topic_records(name: &str, id: Uuid, partitions: i32) -> Vec<MetadataRecord> {
        let mut records = vec![MetadataRecord::Topic {
            name: name.to_string(),
            topic_id: id,
        }];
        for p in 0..partitions {
            records.push(MetadataRecord::Partition {
                topic_id: id,
                partition: p,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
            });
        }
        records
    }

    #[test]
    fn topic_and_partitions_are_visible_by_name_and_id() {
        let id = Uuid::new_v4();
        let image = apply_batch(&MetadataImage::empty(), &topic_records("orders", id, 3))
            .expect("valid batch");
        let topic = image.topic("orders").expect("created");
        assert_eq!(topic.topic_id, id);
        assert_eq!(topic.partitions.len(), 3);
        assert_eq!(
            image.topic_by_id(&id).map(|t| t.name.as_str()),
            Some("orders")
        );
    }

    #[test]
    fn failed_batch_leaves_image_unchanged() {
        let id = Uuid::new_v4();
        let image = apply_batch(&MetadataImage::empty(), &topic_records("a", id, 1)).expect("ok");
        // Second topic is fine, but the third record reuses the name "a".
        let mut batch = topic_records("b", Uuid::new_v4(), 1);
        batch.extend(topic_records("a", Uuid::new_v4(), 1));
        let err = apply_batch(&image, &batch).expect_err("duplicate name");
        assert!(matches!(err, DeltaError::TopicExists { .. }));
        assert!(image.topic("b").is_none());
    }

    #[test]
    fn partition_records_must_be_dense() {
        let id = Uuid::new_v4();
        let mut batch = topic_records("t", id, 1);
        batch.push(MetadataRecord::Partition {
            topic_id: id,
            partition: 5,
            replicas: vec![1],
            isr: vec![1],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
        });
        assert!(matches!(
            apply_batch(&MetadataImage::empty(), &batch),
            Err(DeltaError::PartitionGap { .. })
        ));
    }

    #[test]
    fn remove_topic_drops_name_and_configs() {
        let id = Uuid::new_v4();
        let mut batch = topic_records("t", id, 2);
        batch.push(MetadataRecord::Config {
            resource: ConfigResource::Topic("t".into()),
            name: "retention.ms".into(),
            value: Some("1000".into()),
        });
        let image = apply_batch(&MetadataImage::empty(), &batch).expect("ok");
        assert_eq!(
            image
                .topic("t")
                .and_then(|t| t.configs.get("retention.ms").cloned()),
            Some("1000".to_string())
        );
        let image =
            apply_batch(&image, &[MetadataRecord::RemoveTopic { topic_id: id }]).expect("remove");
        assert!(image.topic("t").is_none());
        assert_eq!(image.topic_count(), 0);
        // A topic of the same name can be created again, with a new id.
        let image = apply_batch(&image, &topic_records("t", Uuid::new_v4(), 1)).expect("again");
        assert!(image
            .topic("t")
            .map(|t| t.configs.is_empty())
            .unwrap_or(false));
    }

    #[test]
    fn broker_config_delete_removes_entry() {
        let set = MetadataRecord::Config {
            resource: ConfigResource::Broker(1),
            name: "log.cleaner.threads".into(),
            value: Some("2".into()),
        };
        let del = MetadataRecord::Config {
            resource: ConfigResource::Broker(1),
            name: "log.cleaner.threads".into(),
            value: None,
        };
        let image = apply_batch(&MetadataImage::empty(), &[set]).expect("ok");
        assert_eq!(image.broker_configs(1).map(|c| c.len()), Some(1));
        let image = apply_batch(&image, &[del]).expect("ok");
        assert!(image.broker_configs(1).is_none());
    }

    #[test]
    fn cluster_id_is_written_once() {
        let a = MetadataRecord::ClusterId {
            cluster_id: "a".into(),
        };
        let b = MetadataRecord::ClusterId {
            cluster_id: "b".into(),
        };
        let image = apply_batch(&MetadataImage::empty(), &[a, b]).expect("ok");
        assert_eq!(image.cluster_id(), Some("a"));
    }
}
