"""Consumer groups (committed offsets survive the consumer), the idempotent producer, and a
second producer implementation (kafka-python) with every codec."""

import time

import pytest
from confluent_kafka import Consumer, TopicPartition

import kafka_wire as wire
from clients import (Rec, assert_same, by_partition, create_topic, produce, read_confluent,
                     sample_records)

API_OFFSET_COMMIT = 8
API_OFFSET_FETCH = 9
API_JOIN_GROUP = 11
API_HEARTBEAT = 12
API_LEAVE_GROUP = 13
API_SYNC_GROUP = 14
API_INIT_PRODUCER_ID = 22

GROUP_APIS = {wire.API_FIND_COORDINATOR: "FindCoordinator", API_JOIN_GROUP: "JoinGroup",
              API_SYNC_GROUP: "SyncGroup", API_HEARTBEAT: "Heartbeat",
              API_LEAVE_GROUP: "LeaveGroup", API_OFFSET_COMMIT: "OffsetCommit",
              API_OFFSET_FETCH: "OffsetFetch"}


def _group_consumer(broker, group):
    return Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "session.timeout.ms": 10000, "heartbeat.interval.ms": 500,
                     "group.protocol": "classic"})


def _poll_values(consumer, count, timeout=45):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert not msg.error(), msg.error()
        out.append((msg.partition(), msg.offset(), msg.value()))
    return out


def test_a_consumer_group_resumes_from_its_committed_offsets(broker):
    for key, name in GROUP_APIS.items():
        broker.require(key, what=name)
    topic = "grouped"
    create_topic(broker, topic, 3)
    records = sample_records(90, partitions=3, seed=7, headers=False)
    produce(broker, topic, records)

    c = _group_consumer(broker, "billing")
    try:
        c.subscribe([topic])
        first = _poll_values(c, 45)
        assert len(first) == 45, f"read {len(first)} of 45 within the deadline"
        c.commit(asynchronous=False)
        committed = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=15)
    finally:
        c.close()
    seen = {}
    for p, o, _ in first:
        seen[p] = max(seen.get(p, -1), o)
    for tp in committed:
        assert tp.error is None, tp.error
        assert tp.offset == seen.get(tp.partition, -1) + 1 or (
            tp.partition not in seen and tp.offset < 0), (tp, seen)

    c = _group_consumer(broker, "billing")
    try:
        c.subscribe([topic])
        rest = _poll_values(c, 45)
        extra = _poll_values(c, 1, timeout=2)
    finally:
        c.close()
    assert not extra, f"read past the end: {extra}"
    everything = sorted((p, o) for p, o, _ in first + rest)
    expected = sorted((r.partition, r.offset) for r in records)
    assert everything == expected, "the second member did not resume where the first committed"


def test_idempotent_producer_writes_each_record_once(broker):
    broker.require(API_INIT_PRODUCER_ID, what="InitProducerId")
    topic = "idempotent"
    create_topic(broker, topic, 2)
    records = sample_records(500, partitions=2, seed=9)
    produce(broker, topic, records, compression="lz4",
            extra={"enable.idempotence": True, "max.in.flight.requests.per.connection": 5})
    for p, expected in by_partition(records).items():
        assert [r.offset for r in expected] == list(range(len(expected)))
        assert_same(expected, read_confluent(broker, topic, p, len(expected)), "confluent-kafka")


@pytest.mark.parametrize("codec", [None, "gzip", "snappy", "lz4", "zstd"])
def test_kafka_python_producer_records_read_back_by_confluent_kafka(broker, codec):
    from kafka import KafkaProducer
    topic = f"kp-{codec or 'none'}"
    create_topic(broker, topic, 1)
    t0 = int(time.time() * 1000) - 60_000
    records = [Rec(None if i % 5 == 0 else f"key-{i}".encode(), bytes([i % 256]) * (i * 7),
                   [("h", str(i).encode())] if i % 2 else [], t0 + i)
               for i in range(200)]
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=codec, acks="all",
                      linger_ms=10, request_timeout_ms=20000,
                      # kafka-python 3 turns idempotence on by default; that has its own test
                      enable_idempotence=False)
    try:
        futures = [p.send(topic, value=r.value, key=r.key, headers=r.headers or None,
                          partition=0, timestamp_ms=r.timestamp) for r in records]
        p.flush(timeout=30)
        for r, f in zip(records, futures):
            r.offset = f.get(timeout=30).offset
    finally:
        p.close(timeout=10)
    assert [r.offset for r in records] == list(range(len(records)))
    assert_same(records, read_confluent(broker, topic, 0, len(records)), "confluent-kafka")


def test_a_group_that_never_committed_has_no_committed_offset(broker):
    broker.require(wire.API_FIND_COORDINATOR, what="FindCoordinator")
    broker.require(API_OFFSET_FETCH, what="OffsetFetch")
    create_topic(broker, "fresh-group-topic", 1)
    c = _group_consumer(broker, "never-committed")
    try:
        (tp,) = c.committed([TopicPartition("fresh-group-topic", 0)], timeout=15)
        assert tp.error is None and tp.offset < 0, tp
    finally:
        c.close()
