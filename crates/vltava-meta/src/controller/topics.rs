//! CreateTopics, DeleteTopics and CreatePartitions decisions.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::configs::validate_topic_config;
use super::placement::place;
use super::{CreateTopicRequest, CreatedTopic, TopicDefaults, TopicRef};
use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::records::{ConfigResource, MetadataRecord};

/// Kafka's `Topic.MAX_NAME_LENGTH`.
pub const MAX_TOPIC_NAME_LENGTH: usize = 249;

/// Kafka's `ReplicationControlManager.MAX_PARTITIONS_PER_BATCH`: the most partitions one request
/// may create. It bounds the memory a single request can make the controller allocate.
pub const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;

fn too_many_partitions() -> ControllerError {
    ControllerError::PolicyViolation("Excessively large number of partitions per request.".into())
}

/// Kafka's `Topic.validate`: the reason a topic name is illegal, if it is.
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    let reason = if name.is_empty() {
        Some("the empty string is not allowed".to_string())
    } else if name == "." {
        Some("'.' is not allowed".to_string())
    } else if name == ".." {
        Some("'..' is not allowed".to_string())
    } else if name.encode_utf16().count() > MAX_TOPIC_NAME_LENGTH {
        // Java counts UTF-16 units; an over-long name is reported before its characters.
        Some(format!(
            "the length of '{name}' is longer than the max allowed length {MAX_TOPIC_NAME_LENGTH}"
        ))
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        Some(format!(
            "'{name}' contains one or more characters other than ASCII alphanumerics, '.', '_' \
             and '-'"
        ))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ControllerError::InvalidTopicName {
            name: name.to_string(),
            reason: format!("Topic name is invalid: {reason}"),
        }),
        None => Ok(()),
    }
}

/// Kafka's `Topic.hasCollisionChars`.
fn has_collision_chars(name: &str) -> bool {
    name.contains('.') || name.contains('_')
}

/// Kafka's `Topic.unifyCollisionChars`: metric names replace '.' with '_', so `a.b` and `a_b`
/// would share metrics; Kafka refuses the second.
fn unify_collision_chars(name: &str) -> String {
    name.replace('.', "_")
}

/// Sorted ids of the registered brokers.
fn broker_ids(image: &MetadataImage) -> Vec<i32> {
    image.brokers().map(|b| b.node_id).collect()
}

fn partition_records(topic_id: Uuid, first: i32, assignments: &[Vec<i32>]) -> Vec<MetadataRecord> {
    assignments
        .iter()
        .zip(first..)
        .map(|(replicas, partition)| MetadataRecord::Partition {
            topic_id,
            partition,
            replicas: replicas.clone(),
            isr: replicas.clone(),
            leader: replicas.first().copied().unwrap_or(-1),
            leader_epoch: 0,
            partition_epoch: 0,
        })
        .collect()
}

/// `ReplicationControlManager.validateManualPartitionAssignment`.
fn validate_manual_assignment(
    image: &MetadataImage,
    replicas: &[i32],
    replication_factor: Option<usize>,
) -> Result<(), ControllerError> {
    if replicas.is_empty() {
        return Err(ControllerError::InvalidReplicaAssignment(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    let mut previous = None;
    for broker in sorted {
        if image.broker(broker).is_none() {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "The manual partition assignment includes broker {broker}, but no such broker \
                 is registered."
            )));
        }
        if previous == Some(broker) {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "The manual partition assignment includes the broker {broker} more than once."
            )));
        }
        previous = Some(broker);
    }
    if let Some(rf) = replication_factor {
        if replicas.len() != rf {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "The manual partition assignment includes a partition with {} replica(s), but \
                 this is not consistent with previous partitions, which have {rf} replica(s).",
                replicas.len()
            )));
        }
    }
    Ok(())
}

/// The replica lists of a new topic, from its manual assignment or from placement.
fn assign(
    image: &MetadataImage,
    request: &CreateTopicRequest,
    defaults: TopicDefaults,
) -> Result<Vec<Vec<i32>>, ControllerError> {
    if !request.assignments.is_empty() {
        if request.replication_factor != -1 {
            return Err(ControllerError::InvalidRequest(
                "A manual partition assignment was specified, but replication factor was not \
                 set to -1."
                    .into(),
            ));
        }
        if request.num_partitions != -1 {
            return Err(ControllerError::InvalidRequest(
                "A manual partition assignment was specified, but numPartitions was not set to \
                 -1."
                .into(),
            ));
        }
        let mut by_partition: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        let mut replication_factor = None;
        for (partition, replicas) in &request.assignments {
            if by_partition.contains_key(partition) {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "Found multiple manual partition assignments for partition {partition}"
                )));
            }
            validate_manual_assignment(image, replicas, replication_factor)?;
            replication_factor = Some(replicas.len());
            by_partition.insert(*partition, replicas.clone());
        }
        let consecutive = by_partition
            .keys()
            .zip(0..)
            .all(|(partition, expected)| *partition == expected);
        if !consecutive {
            return Err(ControllerError::InvalidReplicaAssignment(
                "partitions should be a consecutive 0-based integer sequence".into(),
            ));
        }
        return Ok(by_partition.into_values().collect());
    }
    if request.replication_factor < -1 || request.replication_factor == 0 {
        return Err(ControllerError::InvalidReplicationFactor(
            "Replication factor must be larger than 0, or -1 to use the default value.".into(),
        ));
    }
    if request.num_partitions < -1 || request.num_partitions == 0 {
        return Err(ControllerError::InvalidPartitions(
            "Number of partitions was set to an invalid non-positive value.".into(),
        ));
    }
    let num_partitions = if request.num_partitions == -1 {
        defaults.num_partitions
    } else {
        request.num_partitions
    };
    let replication_factor = if request.replication_factor == -1 {
        defaults.replication_factor
    } else {
        request.replication_factor
    };
    place(
        &broker_ids(image),
        image.topic_count(),
        num_partitions,
        replication_factor,
    )
    .map_err(|e| match e {
        ControllerError::InvalidReplicationFactor(reason) => {
            ControllerError::InvalidReplicationFactor(format!(
                "Unable to replicate the partition {replication_factor} time(s): {reason}"
            ))
        }
        other => other,
    })
}

/// Decides a CreateTopics request. Each result lines up with its request; a success carries the
/// records that create the topic. `new_topic_id` supplies random ids (ids already in the image
/// are skipped).
pub fn create_topics(
    image: &MetadataImage,
    requests: &[CreateTopicRequest],
    defaults: TopicDefaults,
    new_topic_id: &mut dyn FnMut() -> Uuid,
) -> Vec<Result<(CreatedTopic, Vec<MetadataRecord>), ControllerError>> {
    let mut name_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for request in requests {
        *name_counts.entry(request.name.as_str()).or_default() += 1;
    }
    let is_duplicate =
        |r: &CreateTopicRequest| name_counts.get(r.name.as_str()).copied().unwrap_or(0) > 1;
    // `validateTotalNumberOfPartitions`: an upper bound over the whole request, checked before
    // anything is allocated; exceeding it fails every topic (duplicates were already answered).
    let total_partitions: i64 = requests
        .iter()
        .filter(|r| !is_duplicate(r))
        .map(|r| {
            if !r.assignments.is_empty() {
                i64::try_from(r.assignments.len()).unwrap_or(i64::MAX)
            } else if r.num_partitions == -1 {
                i64::from(defaults.num_partitions)
            } else {
                i64::from(r.num_partitions.max(0))
            }
        })
        .fold(0i64, i64::saturating_add);
    if total_partitions > MAX_PARTITIONS_PER_REQUEST {
        return requests
            .iter()
            .map(|r| {
                Err(if is_duplicate(r) {
                    ControllerError::InvalidRequest("Duplicate topic name.".into())
                } else {
                    too_many_partitions()
                })
            })
            .collect();
    }
    // Existing names with collision characters, by their unified form.
    let mut colliding: BTreeMap<String, &str> = BTreeMap::new();
    for topic in image.topics() {
        if has_collision_chars(&topic.name) {
            colliding
                .entry(unify_collision_chars(&topic.name))
                .or_insert(topic.name.as_str());
        }
    }
    let mut taken_ids: BTreeSet<Uuid> = BTreeSet::new();
    requests
        .iter()
        .map(|request| {
            // ControllerApis rejects every copy of a name given twice.
            if is_duplicate(request) {
                return Err(ControllerError::InvalidRequest(
                    "Duplicate topic name.".into(),
                ));
            }
            if image.topic(&request.name).is_some() {
                return Err(ControllerError::TopicAlreadyExists(request.name.clone()));
            }
            validate_topic_name(&request.name)?;
            if has_collision_chars(&request.name) {
                if let Some(existing) = colliding.get(&unify_collision_chars(&request.name)) {
                    return Err(ControllerError::InvalidTopicName {
                        name: request.name.clone(),
                        reason: format!(
                            "Topic '{}' collides with existing topic: {existing}",
                            request.name
                        ),
                    });
                }
            }
            for (name, value) in &request.configs {
                validate_topic_config(name, value)?;
            }
            let assignments = assign(image, request, defaults)?;
            let topic_id = loop {
                let id = new_topic_id();
                // Kafka never hands out the zero id or the metadata topic's sentinel id 1.
                if id.as_u128() > 1 && image.topic_by_id(&id).is_none() && taken_ids.insert(id) {
                    break id;
                }
            };
            let mut records = vec![MetadataRecord::Topic {
                name: request.name.clone(),
                topic_id,
            }];
            // Last value wins for a key given twice, as in Kafka's config map.
            let configs: BTreeMap<&str, &str> = request
                .configs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            records.extend(configs.iter().map(|(k, v)| MetadataRecord::Config {
                resource: ConfigResource::Topic(request.name.clone()),
                name: (*k).to_string(),
                value: Some((*v).to_string()),
            }));
            records.extend(partition_records(topic_id, 0, &assignments));
            let replication_factor = assignments
                .first()
                .map(|r| i16::try_from(r.len()).unwrap_or(i16::MAX))
                .unwrap_or(0);
            Ok((
                CreatedTopic {
                    topic_id,
                    num_partitions: i32::try_from(assignments.len()).unwrap_or(i32::MAX),
                    replication_factor,
                    configs: configs
                        .iter()
                        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                        .collect(),
                },
                records,
            ))
        })
        .collect()
}

/// Decides a DeleteTopics request: each result is the deleted topic's name and id and the record
/// that removes it.
pub fn delete_topics(
    image: &MetadataImage,
    topics: &[TopicRef],
) -> Vec<Result<(String, Uuid, MetadataRecord), ControllerError>> {
    let mut counts: BTreeMap<&TopicRef, usize> = BTreeMap::new();
    for topic in topics {
        *counts.entry(topic).or_default() += 1;
    }
    topics
        .iter()
        .map(|topic_ref| {
            let duplicate = counts.get(topic_ref).copied().unwrap_or(0) > 1;
            let topic = match topic_ref {
                TopicRef::Name(name) => {
                    if duplicate {
                        return Err(ControllerError::InvalidRequest(
                            "Duplicate topic name.".into(),
                        ));
                    }
                    image
                        .topic(name)
                        .ok_or_else(|| ControllerError::UnknownTopic(name.clone()))?
                }
                TopicRef::Id(id) => {
                    if duplicate {
                        return Err(ControllerError::InvalidRequest(
                            "Duplicate topic id.".into(),
                        ));
                    }
                    image
                        .topic_by_id(id)
                        .ok_or(ControllerError::UnknownTopicId(*id))?
                }
            };
            Ok((
                topic.name.clone(),
                topic.topic_id,
                MetadataRecord::RemoveTopic {
                    topic_id: topic.topic_id,
                },
            ))
        })
        .collect()
}

/// Decides a CreatePartitions request for one topic.
pub fn create_partitions(
    image: &MetadataImage,
    topic: &str,
    new_total: i32,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let info = image
        .topic(topic)
        .ok_or_else(|| ControllerError::UnknownTopic(topic.to_string()))?;
    let current = i32::try_from(info.partitions.len()).unwrap_or(i32::MAX);
    if new_total == current {
        return Err(ControllerError::InvalidPartitions(format!(
            "Topic already has {current} partition(s)."
        )));
    }
    if new_total < current {
        return Err(ControllerError::InvalidPartitions(format!(
            "The topic {topic} currently has {current} partition(s); {new_total} would not be an \
             increase."
        )));
    }
    let additional = new_total - current;
    if i64::from(additional) > MAX_PARTITIONS_PER_REQUEST {
        return Err(too_many_partitions());
    }
    let start = usize::try_from(current).unwrap_or(0) + image.topic_count();
    let assignments = place(
        &broker_ids(image),
        start,
        additional,
        info.replication_factor(),
    )?;
    Ok(partition_records(info.topic_id, current, &assignments))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::apply_batch;

    fn image_with_brokers(ids: &[i32]) -> MetadataImage {
        let records: Vec<MetadataRecord> = ids
            .iter()
            .map(|id| MetadataRecord::RegisterBroker {
                node_id: *id,
                host: "localhost".into(),
                port: 9092,
                rack: None,
            })
            .collect();
        apply_batch(&MetadataImage::empty(), &records).expect("brokers")
    }

    fn req(name: &str, partitions: i32, rf: i16) -> CreateTopicRequest {
        CreateTopicRequest {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: rf,
            assignments: vec![],
            configs: vec![],
        }
    }

    fn ids() -> impl FnMut() -> Uuid {
        Uuid::new_v4
    }

    fn create_one(
        image: &MetadataImage,
        request: CreateTopicRequest,
    ) -> Result<(CreatedTopic, Vec<MetadataRecord>), ControllerError> {
        let mut gen = ids();
        create_topics(image, &[request], TopicDefaults::default(), &mut gen)
            .pop()
            .expect("one result")
    }

    fn with_topic(image: &MetadataImage, name: &str, partitions: i32) -> MetadataImage {
        let (_, records) = create_one(image, req(name, partitions, 1)).expect("create");
        apply_batch(image, &records).expect("apply")
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders-v2_eu.1").is_ok());
        for (name, reason) in [
            ("", "Topic name is invalid: the empty string is not allowed"),
            (".", "Topic name is invalid: '.' is not allowed"),
            ("..", "Topic name is invalid: '..' is not allowed"),
            (
                "a b",
                "Topic name is invalid: 'a b' contains one or more characters other than ASCII \
                 alphanumerics, '.', '_' and '-'",
            ),
        ] {
            let err = validate_topic_name(name).expect_err(name);
            assert_eq!(err.kafka_error_code(), 17);
            assert_eq!(err.message(), reason);
        }
        assert!(validate_topic_name(&"a".repeat(249)).is_ok());
        assert!(validate_topic_name(&"a".repeat(250)).is_err());
    }

    #[test]
    fn create_uses_defaults_and_round_robin() {
        let image = image_with_brokers(&[1, 2, 3]);
        let mut gen = ids();
        let defaults = TopicDefaults {
            num_partitions: 3,
            replication_factor: 2,
        };
        let results = create_topics(&image, &[req("t", -1, -1)], defaults, &mut gen);
        let (created, records) = results[0].clone().expect("created");
        assert_eq!(created.num_partitions, 3);
        assert_eq!(created.replication_factor, 2);
        let image = apply_batch(&image, &records).expect("apply");
        let topic = image.topic("t").expect("exists");
        assert_eq!(topic.topic_id, created.topic_id);
        let leaders: Vec<i32> = topic.partitions.iter().map(|p| p.leader).collect();
        assert_eq!(leaders, vec![1, 2, 3]);
        for p in &topic.partitions {
            assert_eq!(p.isr, p.replicas);
            assert_eq!(p.leader, p.replicas[0]);
            assert_eq!(p.leader_epoch, 0);
        }
    }

    #[test]
    fn replication_factor_above_broker_count_is_rejected_with_kafkas_message() {
        let image = image_with_brokers(&[1]);
        let err = create_one(&image, req("t", 1, 3)).expect_err("rf 3");
        assert_eq!(err.kafka_error_code(), 38);
        assert_eq!(
            err.message(),
            "Unable to replicate the partition 3 time(s): The target replication factor of 3 \
             cannot be reached because only 1 broker(s) are registered or some brokers have all \
             their log directories cordoned."
        );
    }

    #[test]
    fn bad_counts_are_rejected() {
        let image = image_with_brokers(&[1]);
        assert_eq!(
            create_one(&image, req("t", 0, 1))
                .expect_err("0")
                .kafka_error_code(),
            37
        );
        assert_eq!(
            create_one(&image, req("t", -2, 1))
                .expect_err("-2")
                .kafka_error_code(),
            37
        );
        assert_eq!(
            create_one(&image, req("t", 1, 0))
                .expect_err("rf 0")
                .kafka_error_code(),
            38
        );
    }

    #[test]
    fn existing_and_colliding_names_are_rejected() {
        let image = with_topic(&image_with_brokers(&[1]), "a.b", 1);
        let err = create_one(&image, req("a.b", 1, 1)).expect_err("exists");
        assert_eq!(err, ControllerError::TopicAlreadyExists("a.b".into()));
        assert_eq!(err.message(), "Topic 'a.b' already exists.");
        let err = create_one(&image, req("a_b", 1, 1)).expect_err("collides");
        assert_eq!(err.kafka_error_code(), 17);
        assert_eq!(
            err.message(),
            "Topic 'a_b' collides with existing topic: a.b"
        );
    }

    #[test]
    fn too_many_partitions_in_one_request_is_a_policy_violation() {
        let image = image_with_brokers(&[1]);
        let mut gen = ids();
        let results = create_topics(
            &image,
            &[req("a", 5_000, 1), req("b", 5_001, 1)],
            TopicDefaults::default(),
            &mut gen,
        );
        for r in &results {
            let err = r.clone().expect_err("over the cap");
            assert_eq!(err.kafka_error_code(), 44);
            assert_eq!(
                err.message(),
                "Excessively large number of partitions per request."
            );
        }
        let results = create_topics(
            &image,
            &[req("huge", i32::MAX, 1)],
            TopicDefaults::default(),
            &mut gen,
        );
        assert_eq!(results[0].clone().expect_err("huge").kafka_error_code(), 44);
        let image = with_topic(&image, "t", 1);
        assert_eq!(
            create_partitions(&image, "t", i32::MAX)
                .expect_err("huge")
                .kafka_error_code(),
            44
        );
    }

    #[test]
    fn duplicate_names_in_one_request_are_invalid_request() {
        let image = image_with_brokers(&[1]);
        let mut gen = ids();
        let results = create_topics(
            &image,
            &[req("x", 1, 1), req("x", 1, 1), req("y", 1, 1)],
            TopicDefaults::default(),
            &mut gen,
        );
        assert_eq!(results[0].clone().expect_err("dup").kafka_error_code(), 42);
        assert!(results[1].is_err());
        assert!(results[2].is_ok());
    }

    #[test]
    fn invalid_config_fails_the_topic() {
        let image = image_with_brokers(&[1]);
        let mut request = req("t", 1, 1);
        request.configs = vec![("retention.ms".into(), "soon".into())];
        assert_eq!(
            create_one(&image, request)
                .expect_err("bad")
                .kafka_error_code(),
            40
        );
        let mut request = req("t", 1, 1);
        request.configs = vec![("cleanup.policy".into(), "compact".into())];
        let (created, records) = create_one(&image, request).expect("ok");
        assert_eq!(
            created.configs,
            vec![("cleanup.policy".to_string(), "compact".to_string())]
        );
        let image = apply_batch(&image, &records).expect("apply");
        assert_eq!(
            image
                .topic("t")
                .and_then(|t| t.configs.get("cleanup.policy").cloned()),
            Some("compact".into())
        );
    }

    #[test]
    fn manual_assignments_are_validated() {
        let image = image_with_brokers(&[1, 2]);
        let manual = |assignments: Vec<(i32, Vec<i32>)>| CreateTopicRequest {
            name: "m".into(),
            num_partitions: -1,
            replication_factor: -1,
            assignments,
            configs: vec![],
        };
        let (created, _) =
            create_one(&image, manual(vec![(0, vec![2, 1]), (1, vec![1, 2])])).expect("ok");
        assert_eq!(created.num_partitions, 2);
        assert_eq!(created.replication_factor, 2);
        for (assignments, code) in [
            (vec![(0, vec![3])], 39),
            (vec![(0, vec![1, 1])], 39),
            (vec![(0, vec![])], 39),
            (vec![(0, vec![1]), (0, vec![2])], 39),
            (vec![(0, vec![1]), (2, vec![2])], 39),
            (vec![(0, vec![1]), (1, vec![1, 2])], 39),
        ] {
            let err = create_one(&image, manual(assignments.clone())).expect_err("bad");
            assert_eq!(err.kafka_error_code(), code, "{assignments:?}");
        }
        let mut with_count = manual(vec![(0, vec![1])]);
        with_count.num_partitions = 1;
        assert_eq!(
            create_one(&image, with_count)
                .expect_err("count")
                .kafka_error_code(),
            42
        );
    }

    #[test]
    fn delete_by_name_and_id() {
        let image = with_topic(&image_with_brokers(&[1]), "t", 2);
        let id = image.topic("t").map(|t| t.topic_id).expect("t");
        let results = delete_topics(
            &image,
            &[
                TopicRef::Name("t".into()),
                TopicRef::Name("missing".into()),
                TopicRef::Id(Uuid::new_v4()),
            ],
        );
        let (name, deleted_id, record) = results[0].clone().expect("deleted");
        assert_eq!((name.as_str(), deleted_id), ("t", id));
        assert_eq!(
            results[1].clone().expect_err("missing").kafka_error_code(),
            3
        );
        assert_eq!(
            results[2].clone().expect_err("no id").kafka_error_code(),
            100
        );
        let image = apply_batch(&image, &[record]).expect("apply");
        assert!(image.topic("t").is_none());
        let dup = delete_topics(&image, &[TopicRef::Id(id), TopicRef::Id(id)]);
        assert_eq!(dup[0].clone().expect_err("dup").kafka_error_code(), 42);
    }

    #[test]
    fn create_partitions_only_grows() {
        let image = with_topic(&image_with_brokers(&[1, 2]), "t", 2);
        let err = create_partitions(&image, "t", 2).expect_err("same");
        assert_eq!(err.message(), "Topic already has 2 partition(s).");
        let err = create_partitions(&image, "t", 1).expect_err("shrink");
        assert_eq!(
            err.message(),
            "The topic t currently has 2 partition(s); 1 would not be an increase."
        );
        assert_eq!(
            create_partitions(&image, "nope", 3)
                .expect_err("unknown")
                .kafka_error_code(),
            3
        );
        let records = create_partitions(&image, "t", 5).expect("grow");
        let image = apply_batch(&image, &records).expect("apply");
        let topic = image.topic("t").expect("t");
        assert_eq!(topic.partitions.len(), 5);
        assert_eq!(topic.partitions[4].partition, 4);
        assert_eq!(topic.partitions[4].replicas.len(), 1);
    }
}
