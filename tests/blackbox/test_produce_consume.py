"""Produce with every compression codec (confluent-kafka); read back byte-exact with
confluent-kafka, kafka-python and kcat: offsets, keys, values, headers, timestamps."""

import pytest

import kafka_wire as wire
from clients import (assert_same, by_partition, create_topic, produce, read_confluent,
                     read_kafka_python, read_kcat, sample_records)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 2
COUNT = 300


@pytest.fixture(scope="module")
def produced(broker):
    broker.require(wire.API_PRODUCE)
    broker.require(wire.API_FETCH)
    broker.require(wire.API_LIST_OFFSETS)
    out = {}
    for i, codec in enumerate(CODECS):
        topic = f"codec-{codec}"
        create_topic(broker, topic, PARTITIONS)
        records = sample_records(COUNT, partitions=PARTITIONS, seed=i)
        produce(broker, topic, records, compression=codec)
        out[codec] = (topic, by_partition(records))
    return out


def _check_dense(parts):
    for p, rs in parts.items():
        assert [r.offset for r in rs] == list(range(len(rs))), f"partition {p} offsets not dense"


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_kafka_reads_back_what_it_produced(broker, produced, codec):
    topic, parts = produced[codec]
    _check_dense(parts)
    for p, expected in parts.items():
        got = read_confluent(broker, topic, p, len(expected))
        assert_same(expected, got, "confluent-kafka")


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_reads_back_what_confluent_kafka_produced(broker, produced, codec):
    topic, parts = produced[codec]
    for p, expected in parts.items():
        got = read_kafka_python(broker, topic, p, len(expected))
        assert_same(expected, got, "kafka-python")


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_reads_back_what_confluent_kafka_produced(broker, produced, codec):
    topic, parts = produced[codec]
    for p, expected in parts.items():
        got = read_kcat(broker, topic, p)
        assert_same(expected, got, "kcat")


def test_a_record_near_max_message_bytes_round_trips(broker):
    broker.require(wire.API_PRODUCE)
    import os
    import time as _time
    from clients import Rec
    topic = "big-record"
    create_topic(broker, topic, 1)
    value = os.urandom(1_000_000)  # the batch stays under max.message.bytes (1048588)
    records = [Rec(b"big", value, [("h", b"v")], int(_time.time() * 1000))]
    produce(broker, topic, records, extra={"message.max.bytes": 1_048_576})
    assert_same(records, read_confluent(broker, topic, 0, 1), "confluent-kafka")
    assert_same(records, read_kafka_python(broker, topic, 0, 1), "kafka-python")


def test_a_batch_larger_than_the_fetch_limits_is_still_returned(broker):
    """KIP-74: the first batch comes back even when it exceeds max.partition.fetch.bytes and
    fetch.max.bytes, or a consumer could never make progress."""
    broker.require(wire.API_PRODUCE)
    import time as _time
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    topic = "small-fetches"
    create_topic(broker, topic, 1)
    records = sample_records(200, seed=42)
    produce(broker, topic, records, extra={"linger.ms": 200, "batch.size": 1_000_000})
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "blackbox-unused",
                  "enable.auto.commit": False, "fetch.max.bytes": 1024, "message.max.bytes": 1000,
                  "max.partition.fetch.bytes": 1024, "receive.message.max.bytes": 2_000_000})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got = []
        deadline = _time.monotonic() + 30
        while len(got) < len(records) and _time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is not None and not msg.error():
                got.append((msg.offset(), msg.key(), msg.value(), msg.headers() or [],
                            msg.timestamp()))
    finally:
        c.close()
    assert_same(records, got, "confluent-kafka")


def test_a_waiting_fetch_is_answered_when_a_record_arrives(broker):
    """A long-poll Fetch (max wait 10 s) returns as soon as data is appended, not at its deadline."""
    broker.require(wire.API_PRODUCE)
    import json
    import time as _time
    from confluent_kafka import OFFSET_END, Consumer, TopicPartition
    from clients import Rec
    topic = "long-poll"
    create_topic(broker, topic, 1)
    stats = []
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "blackbox-unused",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 10000,
                  "fetch.min.bytes": 1, "statistics.interval.ms": 100,
                  "stats_cb": stats.append})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_END)])
        deadline = _time.monotonic() + 20
        active = False
        while not active and _time.monotonic() < deadline:
            assert c.poll(0.1) is None
            for raw in stats:
                part = json.loads(raw).get("topics", {}).get(topic, {}).get(
                    "partitions", {}).get("0", {})
                active = active or part.get("fetch_state") == "active"
            stats.clear()
        assert active, "the consumer never started fetching"
        _time.sleep(1.0)  # the fetch is now parked at the broker
        sent = _time.monotonic()
        produce(broker, topic, [Rec(b"k", b"wake up", [], int(_time.time() * 1000))])
        msg = None
        while msg is None and _time.monotonic() - sent < 15:
            msg = c.poll(0.05)
        latency = _time.monotonic() - sent
    finally:
        c.close()
    assert msg is not None and msg.value() == b"wake up"
    assert latency < 5.0, f"record arrived {latency:.1f} s after produce: fetch not woken"
