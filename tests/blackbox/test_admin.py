"""CreateTopics through confluent-kafka's AdminClient."""

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
