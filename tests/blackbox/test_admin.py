"""Topic administration through confluent-kafka's AdminClient: create, delete, grow,
describe configs, delete records."""

import time

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import NewTopic

import kafka_wire as wire
from clients import admin, create_topic


@pytest.mark.parametrize("partitions", [1, 3, 8])
def test_created_topic_appears_in_metadata_with_its_partitions(broker, partitions):
    name = f"created-{partitions}"
    create_topic(broker, name, partitions)
    md = admin(broker).list_topics(timeout=15)
    assert name in md.topics
    t = md.topics[name]
    assert sorted(t.partitions) == list(range(partitions))
    for p in t.partitions.values():
        assert p.leader == 1, f"partition {p.id} leader {p.leader}"
        assert p.replicas == [1] and p.isrs == [1]
    if broker.api_versions().get(wire.API_METADATA, (0, -1))[0] <= 4:
        raw = wire.metadata_v4(broker.port, topics=[name])
        (topic,) = raw["topics"]
        assert topic["error_code"] == wire.NONE
        assert sorted(p["partition_index"] for p in topic["partitions"]) == list(range(partitions))


def test_creating_an_existing_topic_fails_with_topic_already_exists(broker):
    create_topic(broker, "twice", 2)
    a = admin(broker)  # keep the client alive until its futures resolve
    futures = a.create_topics([NewTopic("twice", num_partitions=2,
                                                    replication_factor=1)],
                                          operation_timeout=20, request_timeout=20)
    with pytest.raises(Exception) as e:
        futures["twice"].result(timeout=30)
    err = e.value.args[0]
    assert isinstance(err, KafkaError), e.value
    assert err.code() == KafkaError.TOPIC_ALREADY_EXISTS, err
    # The first topic is untouched.
    md = admin(broker).list_topics(topic="twice", timeout=15)
    assert len(md.topics["twice"].partitions) == 2


@pytest.mark.parametrize("topic,partitions,replication,code", [
    ("zero-partitions", 0, 1, KafkaError.INVALID_PARTITIONS),
    ("too-many-replicas", 1, 3, KafkaError.INVALID_REPLICATION_FACTOR),
    ("bad/name", 1, 1, KafkaError.TOPIC_EXCEPTION),
    ("..", 1, 1, KafkaError.TOPIC_EXCEPTION),
    ("x" * 250, 1, 1, KafkaError.TOPIC_EXCEPTION),
])
def test_invalid_create_topics_requests_get_kafkas_error_codes(broker, topic, partitions,
                                                               replication, code):
    broker.require(wire.API_CREATE_TOPICS)
    a = admin(broker)
    futures = a.create_topics([NewTopic(topic, num_partitions=partitions,
                                        replication_factor=replication)],
                              operation_timeout=20, request_timeout=20)
    with pytest.raises(Exception) as e:
        futures[topic].result(timeout=30)
    err = e.value.args[0]
    assert isinstance(err, KafkaError), e.value
    assert err.code() == code, err
    md = a.list_topics(timeout=15)
    assert topic not in md.topics, f"{topic!r} was created anyway"


API_DELETE_TOPICS = 20
API_DELETE_RECORDS = 21
API_DESCRIBE_CONFIGS = 32
API_CREATE_PARTITIONS = 37


def _result(futures, key, timeout=30):
    return futures[key].result(timeout=timeout)


def _error_code(futures, key):
    with pytest.raises(Exception) as e:
        _result(futures, key)
    err = e.value.args[0]
    assert isinstance(err, KafkaError), e.value
    return err.code()


def test_deleted_topic_disappears_and_can_be_created_afresh(broker):
    broker.require(API_DELETE_TOPICS, what="DeleteTopics")
    from clients import Rec, produce, wait_for_topic
    create_topic(broker, "doomed", 2)
    produce(broker, "doomed", [Rec(b"k", b"old", [], 1_700_000_000_000)])
    a = admin(broker)
    _result(a.delete_topics(["doomed"], operation_timeout=20, request_timeout=20), "doomed")
    deadline = time.monotonic() + 30
    while "doomed" in a.list_topics(timeout=15).topics and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "doomed" not in a.list_topics(timeout=15).topics
    assert _error_code(a.delete_topics(["doomed"], operation_timeout=20, request_timeout=20),
                       "doomed") == KafkaError.UNKNOWN_TOPIC_OR_PART
    # The name is free again, and the new topic starts empty at offset 0.
    deadline = time.monotonic() + 30
    while True:
        futures = a.create_topics([NewTopic("doomed", num_partitions=1, replication_factor=1)],
                                  operation_timeout=20, request_timeout=20)
        try:
            _result(futures, "doomed")
            break
        except Exception:  # Kafka may still be deleting the old one (TOPIC_ALREADY_EXISTS)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    wait_for_topic(broker, "doomed", 1)
    fresh = [Rec(b"k", b"new", [], 1_700_000_000_001)]
    produce(broker, "doomed", fresh)
    assert fresh[0].offset == 0


def test_create_partitions_grows_a_topic_and_refuses_to_shrink_it(broker):
    broker.require(API_CREATE_PARTITIONS, what="CreatePartitions")
    from confluent_kafka.admin import NewPartitions
    from clients import wait_for_topic
    create_topic(broker, "growing", 2)
    a = admin(broker)
    _result(a.create_partitions([NewPartitions("growing", 5)], operation_timeout=20,
                                request_timeout=20), "growing")
    wait_for_topic(broker, "growing", 5)
    code = _error_code(a.create_partitions([NewPartitions("growing", 3)], operation_timeout=20,
                                           request_timeout=20), "growing")
    assert code == KafkaError.INVALID_PARTITIONS
    assert len(a.list_topics(topic="growing", timeout=15).topics["growing"].partitions) == 5


def test_describe_configs_shows_defaults_and_the_overrides_a_topic_was_created_with(broker):
    broker.require(API_DESCRIBE_CONFIGS, what="DescribeConfigs")
    from confluent_kafka.admin import ConfigResource
    create_topic(broker, "configured", 1, config={"retention.ms": "3600000",
                                                  "cleanup.policy": "compact"})
    a = admin(broker)
    res = ConfigResource(ConfigResource.Type.TOPIC, "configured")
    entries = _result(a.describe_configs([res], request_timeout=20), res)
    assert entries["retention.ms"].value == "3600000"
    assert not entries["retention.ms"].is_default
    assert entries["cleanup.policy"].value == "compact"
    assert entries["max.message.bytes"].value == "1048588"
    assert entries["max.message.bytes"].is_default


def test_delete_records_moves_the_log_start_offset(broker):
    broker.require(API_DELETE_RECORDS, what="DeleteRecords")
    from confluent_kafka import Consumer, TopicPartition
    from clients import Rec, produce, read_confluent
    create_topic(broker, "trimmed", 1)
    records = [Rec(b"k", f"v{i}".encode(), [], 1_700_000_000_000 + i) for i in range(30)]
    produce(broker, "trimmed", records)
    a = admin(broker)
    tp = TopicPartition("trimmed", 0, 10)
    result = _result(a.delete_records([tp], request_timeout=20, operation_timeout=20), tp)
    assert result.low_watermark == 10
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "blackbox-unused"})
    try:
        assert c.get_watermark_offsets(TopicPartition("trimmed", 0), timeout=15,
                                       cached=False) == (10, 30)
    finally:
        c.close()
    from confluent_kafka import OFFSET_BEGINNING
    got = read_confluent(broker, "trimmed", 0, 20, start=OFFSET_BEGINNING)
    assert [(o, v) for o, _, v, _, _ in got] == [(i, f"v{i}".encode()) for i in range(10, 30)]


def test_validate_only_create_topics_checks_without_creating(broker):
    broker.require(wire.API_CREATE_TOPICS)
    a = admin(broker)
    ok = a.create_topics([NewTopic("only-validated", num_partitions=3, replication_factor=1)],
                         validate_only=True, operation_timeout=20, request_timeout=20)
    _result(ok, "only-validated")
    bad = a.create_topics([NewTopic("only-validated-bad", num_partitions=1,
                                    replication_factor=3)],
                          validate_only=True, operation_timeout=20, request_timeout=20)
    assert _error_code(bad, "only-validated-bad") == KafkaError.INVALID_REPLICATION_FACTOR
    time.sleep(1)  # a topic that was created anyway would show up by now
    topics = a.list_topics(timeout=15).topics
    assert "only-validated" not in topics and "only-validated-bad" not in topics
