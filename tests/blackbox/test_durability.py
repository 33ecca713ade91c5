"""Restarts: a clean stop (SIGTERM) and a crash (kill -9) keep every acknowledged record."""

import struct
import time

from confluent_kafka import Consumer, Producer, TopicPartition

import kafka_wire as wire
from clients import (Rec, assert_same, by_partition, create_topic, produce, read_confluent,
                     read_kafka_python, sample_records, wait_for_topic)


def _require_data_path(broker):
    broker.require(wire.API_CREATE_TOPICS)
    broker.require(wire.API_PRODUCE)
    broker.require(wire.API_FETCH)
    broker.require(wire.API_LIST_OFFSETS)


def _high_watermark(broker, topic, partition):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "blackbox-unused"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=15,
                                       cached=False)
    finally:
        c.close()


def test_records_survive_a_clean_restart(fresh_broker):
    broker = fresh_broker
    _require_data_path(broker)
    topics = {"restart-plain": ("none", 3), "restart-zstd": ("zstd", 2)}
    written = {}
    for seed, (topic, (codec, partitions)) in enumerate(topics.items()):
        create_topic(broker, topic, partitions)
        records = sample_records(400, partitions=partitions, seed=100 + seed)
        produce(broker, topic, records, compression=codec)
        written[topic] = by_partition(records)

    assert broker.stop(), "broker did not stop within 30 s of SIGTERM"
    broker.start()

    for topic, parts in written.items():
        wait_for_topic(broker, topic, len(parts))
        for p, expected in parts.items():
            assert _high_watermark(broker, topic, p) == (0, len(expected))
            assert_same(expected, read_confluent(broker, topic, p, len(expected)),
                        "confluent-kafka")
    # kafka-python too, on one partition.
    expected = written["restart-zstd"][1]
    assert_same(expected, read_kafka_python(broker, "restart-zstd", 1, len(expected)),
                "kafka-python")

    # Appends continue densely after the restart.
    more = [Rec(b"after", b"restart", [], int(time.time() * 1000), partition=0)]
    produce(broker, "restart-plain", more)
    assert more[0].offset == len(written["restart-plain"][0])


def test_acked_records_survive_kill_9_during_acks_all_stream(fresh_broker):
    broker = fresh_broker
    _require_data_path(broker)
    topic = "crash"
    partitions = 2
    create_topic(broker, topic, partitions)

    acked = {}  # (partition, offset) -> value
    failed = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 2,
                  "enable.idempotence": False, "message.timeout.ms": 6000,
                  "retries": 0, "queue.buffering.max.messages": 100000})

    def report(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()
        else:
            failed.append(err)

    sent = 0
    killed_at = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if killed_at is None and len(acked) >= 3000:
            broker.kill9()  # mid-stream: records are in flight right now
            killed_at = time.monotonic()
        if killed_at is not None and time.monotonic() - killed_at > 1.0:
            break
        try:
            p.produce(topic, value=f"record-{sent:08d}".encode() + b"." * (sent % 50),
                      partition=sent % partitions, on_delivery=report)
            sent += 1
        except BufferError:
            pass
        p.poll(0.001 if sent % 100 == 0 else 0)
    assert killed_at is not None, f"only {len(acked)} records acknowledged in 60 s"
    p.flush(20)  # everything unacknowledged now fails; bounded by message.timeout.ms
    acked_before_restart = dict(acked)
    assert len(acked_before_restart) >= 3000

    broker.start()
    wait_for_topic(broker, topic, partitions)
    for part in range(partitions):
        low, high = _high_watermark(broker, topic, part)
        mine = sorted(o for (pp, o) in acked_before_restart if pp == part)
        assert low == 0
        assert not mine or high > mine[-1], \
            f"partition {part}: high watermark {high} below acked offset {mine[-1]}"
        got = read_confluent(broker, topic, part, high)
        offsets = [g[0] for g in got]
        assert offsets == list(range(high)), f"partition {part}: offsets not dense"
        values = {g[0]: g[2] for g in got}
        lost = [(o, acked_before_restart[(part, o)]) for o in mine
                if values.get(o) != acked_before_restart[(part, o)]]
        assert not lost, f"partition {part}: {len(lost)} acked records lost, e.g. {lost[:3]}"


def _segment_files(broker, topic, partition):
    found = sorted(broker.dir.glob(f"data/**/{topic}-{partition}/*.log"))
    assert found, f"no segment files for {topic}-{partition} under {broker.dir}/data"
    return found


def test_garbage_after_a_crash_is_truncated_and_the_valid_prefix_served(fresh_broker):
    """Invariant 4: recovery after kill -9 cuts a torn tail at the first invalid batch and
    keeps every batch before it (Kafka's LogLoader does the same)."""
    broker = fresh_broker
    _require_data_path(broker)
    topic = "torn"
    create_topic(broker, topic, 1)
    records = sample_records(120, seed=5)
    produce(broker, topic, records, compression="gzip")
    broker.kill9()

    segment = _segment_files(broker, topic, 0)[-1]
    with open(segment, "ab") as f:
        # A plausible batch header claiming more bytes than follow, then junk.
        f.write(struct.pack(">qi", 120, 5000) + bytes(range(256)) * 2)

    broker.start()
    wait_for_topic(broker, topic, 1)
    assert _high_watermark(broker, topic, 0) == (0, len(records))
    assert_same(records, read_confluent(broker, topic, 0, len(records)), "confluent-kafka")
    more = [Rec(b"after", b"recovery", [], int(time.time() * 1000))]
    produce(broker, topic, more)
    assert more[0].offset == len(records)
    got = read_confluent(broker, topic, 0, len(records) + 1)
    assert got[-1][:3] == (len(records), b"after", b"recovery")
