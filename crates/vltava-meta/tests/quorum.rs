//! The metadata quorum end to end: real files in a temp dir, real TCP on loopback.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use vltava_meta::{
    AlterOp, ConfigResource, ControllerError, CreateTopicRequest, MetadataImage, MetadataQuorum,
    QuorumConfig, TopicDefaults, TopicRef,
};

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr")
}

fn single_voter(dir: &Path, addr: SocketAddr) -> QuorumConfig {
    QuorumConfig {
        node_id: 1,
        metadata_dir: dir.join("__cluster_metadata-0"),
        voters: vec![(1, addr)],
        controller_listener: addr,
    }
}

fn topic(name: &str, partitions: i32) -> CreateTopicRequest {
    CreateTopicRequest {
        name: name.into(),
        num_partitions: partitions,
        replication_factor: -1,
        assignments: vec![],
        configs: vec![],
    }
}

async fn start(config: QuorumConfig) -> MetadataQuorum {
    tokio::time::timeout(Duration::from_secs(30), MetadataQuorum::start(config))
        .await
        .expect("start in time")
        .expect("start")
}

/// Everything but the applied index, which moves with blank leader entries after a restart.
fn same_metadata(a: &MetadataImage, b: &MetadataImage) {
    assert_eq!(a.cluster_id(), b.cluster_id());
    assert_eq!(
        a.brokers().collect::<Vec<_>>(),
        b.brokers().collect::<Vec<_>>()
    );
    assert_eq!(
        a.topics().map(|t| (**t).clone()).collect::<Vec<_>>(),
        b.topics().map(|t| (**t).clone()).collect::<Vec<_>>()
    );
    assert_eq!(a.broker_configs(1), b.broker_configs(1));
}

async fn populate(quorum: &MetadataQuorum) {
    quorum
        .register_broker(1, "127.0.0.1".into(), 9092, None)
        .await
        .expect("register");
    let mut orders = topic("orders", 3);
    orders.configs = vec![("retention.ms".into(), "60000".into())];
    let results = quorum
        .create_topics(
            vec![orders, topic("payments", -1)],
            false,
            TopicDefaults {
                num_partitions: 2,
                replication_factor: 1,
            },
        )
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    quorum
        .create_partitions("payments".into(), 4, false)
        .await
        .expect("grow");
    quorum
        .alter_configs(
            ConfigResource::Topic("orders".into()),
            vec![
                ("cleanup.policy".into(), AlterOp::Set("compact".into())),
                ("retention.ms".into(), AlterOp::Delete),
            ],
            false,
        )
        .await
        .expect("alter");
    quorum
        .create_topics(vec![topic("doomed", 1)], false, TopicDefaults::default())
        .await
        .into_iter()
        .for_each(|r| {
            r.expect("doomed created");
        });
    let deleted = quorum
        .delete_topics(vec![TopicRef::Name("doomed".into())])
        .await;
    assert!(deleted[0].is_ok(), "{deleted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_survives_restart_with_topic_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let quorum = start(single_voter(dir.path(), addr)).await;
    populate(&quorum).await;
    let before = quorum.image();
    let orders = before.topic("orders").expect("orders").clone();
    assert_eq!(orders.partitions.len(), 3);
    assert_eq!(
        orders.configs.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
    assert!(!orders.configs.contains_key("retention.ms"));
    assert_eq!(
        before.topic("payments").map(|t| t.partitions.len()),
        Some(4)
    );
    assert!(before.topic("doomed").is_none());
    assert!(before.broker(1).is_some());
    quorum.shutdown().await;

    let quorum = start(single_voter(dir.path(), addr)).await;
    let after = quorum.image();
    same_metadata(&before, &after);
    assert_eq!(
        after.topic("orders").map(|t| t.topic_id),
        Some(orders.topic_id)
    );
    // And it still takes writes after the restart.
    let again = quorum
        .create_topics(vec![topic("orders", 1)], false, TopicDefaults::default())
        .await;
    assert_eq!(
        again[0],
        Err(ControllerError::TopicAlreadyExists("orders".into()))
    );
    let created = quorum
        .create_topics(vec![topic("later", 1)], false, TopicDefaults::default())
        .await;
    assert!(created[0].is_ok());
    quorum.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_metadata_log_tail_is_truncated_on_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let config = single_voter(dir.path(), addr);
    let quorum = start(config.clone()).await;
    populate(&quorum).await;
    let before = quorum.image();
    quorum.shutdown().await;

    // A crash in the middle of an append: half a frame of garbage at the end.
    let wal = config.metadata_dir.join("raft.wal");
    let mut bytes = std::fs::read(&wal).expect("read wal");
    let clean_len = bytes.len();
    bytes.extend_from_slice(&[0x40, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, b'{', b'"']);
    std::fs::write(&wal, &bytes).expect("write wal");

    let quorum = start(config.clone()).await;
    same_metadata(&before, &quorum.image());
    quorum.shutdown().await;
    // The garbage is gone; what follows it is the second run's own records.
    let after = std::fs::read(&wal).expect("read wal");
    assert_eq!(&after[..clean_len], &bytes[..clean_len]);
    assert_ne!(
        after.get(clean_len..clean_len + 4),
        Some(&[0x40, 0, 0, 0][..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_errors_and_validate_only_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let quorum = start(single_voter(dir.path(), free_addr())).await;
    quorum
        .register_broker(1, "127.0.0.1".into(), 9092, None)
        .await
        .expect("register");
    let mut rf3 = topic("replicated", 1);
    rf3.replication_factor = 3;
    let results = quorum
        .create_topics(
            vec![rf3, topic("checked", 2), topic("bad name", 1)],
            true,
            TopicDefaults::default(),
        )
        .await;
    assert_eq!(
        results[0]
            .as_ref()
            .map_err(ControllerError::kafka_error_code),
        Err(38)
    );
    assert_eq!(results[1].as_ref().map(|c| c.num_partitions), Ok(2));
    assert_eq!(
        results[2]
            .as_ref()
            .map_err(ControllerError::kafka_error_code),
        Err(17)
    );
    assert!(quorum.image().topic("checked").is_none(), "validate_only");
    assert_eq!(
        quorum
            .alter_configs(
                ConfigResource::Broker(1),
                vec![("log.cleaner.threads".into(), AlterOp::Set("2".into()))],
                false,
            )
            .await,
        Ok(())
    );
    assert_eq!(
        quorum
            .image()
            .broker_configs(1)
            .and_then(|c| c.get("log.cleaner.threads").cloned()),
        Some("2".into())
    );
    assert!(quorum.image().cluster_id().is_some());
    let status = quorum.status();
    assert_eq!(status.leader_id, Some(1));
    assert!(status.leader_epoch >= 1);
    assert_eq!(status.voters.len(), 1);
    assert_eq!(status.voters[0].0, 1);
    assert!(status.high_watermark.is_some());
    quorum.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_see_new_images() {
    let dir = tempfile::tempdir().expect("tempdir");
    let quorum = start(single_voter(dir.path(), free_addr())).await;
    let mut images = quorum.subscribe();
    quorum
        .register_broker(1, "127.0.0.1".into(), 9092, None)
        .await
        .expect("register");
    let image: Arc<MetadataImage> = tokio::time::timeout(
        Duration::from_secs(5),
        images.wait_for(|i| i.broker(1).is_some()),
    )
    .await
    .expect("in time")
    .expect("channel open")
    .clone();
    assert_eq!(image.broker(1).map(|b| b.port), Some(9092));
    quorum.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_agree_and_followers_forward() {
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let addrs: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let voters: Vec<(i32, SocketAddr)> = (1..=3).zip(addrs.iter().copied()).collect();
    let configs: Vec<QuorumConfig> = (0..3)
        .map(|i| QuorumConfig {
            node_id: i32::try_from(i + 1).expect("small"),
            metadata_dir: dirs[i].path().join("__cluster_metadata-0"),
            voters: voters.clone(),
            controller_listener: addrs[i],
        })
        .collect();
    let started = futures_util::future::join_all(configs.iter().cloned().map(start)).await;
    // Every node registers itself; two of them are followers and forward to the leader.
    for (i, quorum) in started.iter().enumerate() {
        let id = i32::try_from(i + 1).expect("small");
        quorum
            .register_broker(
                id,
                "127.0.0.1".into(),
                9092 + u16::try_from(i).expect("small"),
                None,
            )
            .await
            .expect("register");
    }
    let leader = started[0].leader().expect("a leader");
    let follower = started
        .iter()
        .find(|q| q.leader().is_some_and(|l| l != q_id(q, &started)))
        .expect("a follower");
    let mut request = topic("replicated", 3);
    request.replication_factor = 3;
    let results = follower
        .create_topics(vec![request], false, TopicDefaults::default())
        .await;
    let created = results[0].clone().expect("created via a follower");
    for quorum in &started {
        let mut images = quorum.subscribe();
        let image = tokio::time::timeout(
            Duration::from_secs(10),
            images.wait_for(|i| i.topic("replicated").is_some() && i.brokers().count() == 3),
        )
        .await
        .expect("replicated in time")
        .expect("open")
        .clone();
        let t = image.topic("replicated").expect("topic");
        assert_eq!(t.topic_id, created.topic_id);
        assert!(t.partitions.iter().all(|p| p.replicas.len() == 3));
        assert_eq!(leader, quorum.leader().expect("leader known"));
    }
    let before = started[0].image();
    for quorum in &started {
        quorum.shutdown().await;
    }

    // One voter alone has no quorum, but it replays what it knew was committed.
    let alone = start(configs[2].clone()).await;
    let replayed = alone.image();
    assert_eq!(
        replayed.topic("replicated").map(|t| t.topic_id),
        Some(created.topic_id)
    );
    assert_eq!(replayed.brokers().count(), 3);
    // With a majority back, the cluster takes writes again.
    let second = start(configs[0].clone()).await;
    let results = second
        .create_topics(
            vec![topic("after-restart", 1)],
            false,
            TopicDefaults::default(),
        )
        .await;
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(
        second.image().topic("replicated").map(|t| (**t).clone()),
        before.topic("replicated").map(|t| (**t).clone())
    );
    alone.shutdown().await;
    second.shutdown().await;
}

/// The node id of `q` (its position in `all`, plus one).
fn q_id(q: &MetadataQuorum, all: &[MetadataQuorum]) -> i32 {
    all.iter()
        .position(|x| std::ptr::eq(x, q))
        .and_then(|p| i32::try_from(p + 1).ok())
        .unwrap_or(-1)
}
