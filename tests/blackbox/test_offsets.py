"""Where a consumer starts: earliest, latest, and by timestamp (ListOffsets)."""

import json
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

import kafka_wire as wire
from clients import Rec, create_topic, produce, read_confluent

TOPIC = "offsets"
COUNT = 100
STEP_MS = 1000


@pytest.fixture(scope="module")
def timeline(broker):
    broker.require(wire.API_PRODUCE)
    broker.require(wire.API_FETCH)
    broker.require(wire.API_LIST_OFFSETS)
    create_topic(broker, TOPIC, 1)
    t0 = int(time.time() * 1000) - 10 * 60 * 1000
    records = [Rec(f"k{i}".encode(), f"v{i}".encode(), [], t0 + i * STEP_MS) for i in range(COUNT)]
    # Several produce requests, so that timestamps span more than one batch.
    for chunk in range(0, COUNT, 25):
        produce(broker, TOPIC, records[chunk:chunk + 25], extra={"linger.ms": 0})
    assert [r.offset for r in records] == list(range(COUNT))
    return t0, records


def _consumer(broker):
    return Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "blackbox-unused",
                     "enable.auto.commit": False, "auto.offset.reset": "error"})


def test_watermarks_span_everything_produced(broker, timeline):
    c = _consumer(broker)
    try:
        low, high = c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=15, cached=False)
    finally:
        c.close()
    assert (low, high) == (0, COUNT)


def test_consume_from_earliest_starts_at_offset_zero(broker, timeline):
    _, records = timeline
    got = read_confluent(broker, TOPIC, 0, 3, start=OFFSET_BEGINNING)
    assert [(o, v) for o, _, v, _, _ in got] == [(r.offset, r.value) for r in records[:3]]


def _produce_new(broker, tag):
    new = [Rec(f"new{i}".encode(), f"{tag}{i}".encode(), [], int(time.time() * 1000))
           for i in range(5)]
    produce(broker, TOPIC, new)
    return new


def test_consume_from_latest_sees_only_new_records(broker, timeline):
    # librdkafka reports where a fetcher stands only in its statistics: wait until the
    # partition's fetcher is active at the resolved "latest" offset, then produce.
    stats = []
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "blackbox-unused",
                  "enable.auto.commit": False, "auto.offset.reset": "error",
                  "statistics.interval.ms": 100, "stats_cb": stats.append})
    try:
        _, high = c.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=15, cached=False)
        c.assign([TopicPartition(TOPIC, 0, OFFSET_END)])
        deadline = time.monotonic() + 20
        state = None
        while time.monotonic() < deadline:
            msg = c.poll(0.1)
            assert msg is None or msg.error(), f"read offset {msg.offset()} before anything new"
            for raw in stats:
                part = json.loads(raw).get("topics", {}).get(TOPIC, {}).get(
                    "partitions", {}).get("0", {})
                state = (part.get("fetch_state"), part.get("next_offset"))
            stats.clear()
            if state and state[0] == "active":
                break
        assert state == ("active", high), f"fetcher state {state}, latest should be {high}"
        new = _produce_new(broker, "after")
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 5 and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is not None and not msg.error():
                got.append((msg.offset(), msg.value()))
        assert got == [(high + i, r.value) for i, r in enumerate(new)]
    finally:
        c.close()


def test_kafka_python_seek_to_end_sees_only_new_records(broker, timeline):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                      enable_auto_commit=False, request_timeout_ms=20000)
    try:
        tp = KTP(TOPIC, 0)
        c.assign([tp])
        c.seek_to_end(tp)
        latest = c.position(tp, timeout_ms=15000)
        assert latest == c.end_offsets([tp])[tp] and latest >= COUNT
        new = _produce_new(broker, "later")
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 5 and time.monotonic() < deadline:
            for msgs in c.poll(timeout_ms=500).values():
                got += [(m.offset, m.value) for m in msgs]
        assert got == [(latest + i, r.value) for i, r in enumerate(new)]
    finally:
        c.close()


def test_offsets_for_times_finds_the_first_record_at_or_after_a_timestamp(broker, timeline):
    t0, records = timeline
    c = _consumer(broker)
    try:
        queries = {
            0: t0 - 60_000,  # before everything → first offset
            1: t0 + 37 * STEP_MS,  # exact hit
            2: t0 + 37 * STEP_MS - STEP_MS // 2,  # between two records → the later one
            3: t0 + (COUNT - 1) * STEP_MS,  # the last record
        }
        for i, ts in queries.items():
            (res,) = c.offsets_for_times([TopicPartition(TOPIC, 0, ts)], timeout=15)
            assert res.error is None, res.error
            want = {0: 0, 1: 37, 2: 37, 3: COUNT - 1}[i]
            assert res.offset == want, f"timestamp {ts}: offset {res.offset}, want {want}"
        # Far in the future (beyond every record, even the ones other tests add): no offset.
        (res,) = c.offsets_for_times(
            [TopicPartition(TOPIC, 0, int(time.time() * 1000) + 86_400_000)], timeout=15)
        assert res.offset == -1, f"future timestamp gave offset {res.offset}"
    finally:
        c.close()
    got = read_confluent(broker, TOPIC, 0, 1, start=37)
    assert got[0][0] == 37 and got[0][4] == (1, records[37].timestamp)


def test_kafka_python_offsets_for_times_agrees(broker, timeline):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    t0, _ = timeline
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                      enable_auto_commit=False, request_timeout_ms=20000)
    try:
        tp = KTP(TOPIC, 0)
        res = c.offsets_for_times({tp: t0 + 50 * STEP_MS - 1})
        assert res[tp] is not None and res[tp].offset == 50, res
        assert res[tp].timestamp == t0 + 50 * STEP_MS
        assert c.beginning_offsets([tp])[tp] == 0
        assert c.end_offsets([tp])[tp] >= COUNT
    finally:
        c.close()


def test_fetch_past_the_end_is_offset_out_of_range(broker, timeline):
    from confluent_kafka import KafkaError
    c = _consumer(broker)  # auto.offset.reset=error: the broker's error reaches the app
    try:
        c.assign([TopicPartition(TOPIC, 0, 1_000_000)])
        deadline = time.monotonic() + 20
        err = None
        while err is None and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is not None:
                assert msg.error(), f"read offset {msg.offset()} past the end"
                err = msg.error()
        assert err is not None, "no error for a fetch far past the end"
        assert err.code() == KafkaError._AUTO_OFFSET_RESET, err
        assert "out of range" in err.str().lower(), err
    finally:
        c.close()
