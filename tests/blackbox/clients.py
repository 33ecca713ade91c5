"""Real third-party clients, driven the way an application would: confluent-kafka (librdkafka),
kafka-python and kcat. Every wait is bounded."""

import os
import random
import subprocess
import time
from dataclasses import dataclass, field

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

import kafka_wire as wire


@dataclass
class Rec:
    """A record as produced, and as each client must read it back."""
    key: bytes | None
    value: bytes | None
    headers: list = field(default_factory=list)  # [(str, bytes)]
    timestamp: int = 0  # CreateTime, ms
    partition: int = 0
    offset: int = -1  # filled from the delivery report


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create_topic(broker, name, partitions=1, config=None, timeout=30):
    broker.require(wire.API_CREATE_TOPICS)
    a = admin(broker)  # keep the client alive until its futures resolve
    futures = a.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=timeout, request_timeout=timeout)
    futures[name].result(timeout=timeout)
    wait_for_topic(broker, name, partitions)


def wait_for_topic(broker, name, partitions, timeout=30):
    """Until Metadata shows every partition of the topic with a leader."""
    deadline = time.monotonic() + timeout
    a = admin(broker)
    last = None
    while time.monotonic() < deadline:
        md = a.list_topics(topic=name, timeout=10)
        t = md.topics.get(name)
        if t is not None and t.error is None and len(t.partitions) == partitions and all(
                p.leader >= 0 for p in t.partitions.values()):
            return md
        last = t
        time.sleep(0.2)
    raise AssertionError(f"topic {name} not ready with {partitions} partitions: {last}")


def sample_records(n, partitions=1, seed=1, ts_base=None, headers=True):
    """Records with binary keys and values (every byte value), null keys and values, empty
    values, duplicate and empty header values, and distinct explicit timestamps."""
    rnd = random.Random(seed)
    if ts_base is None:
        ts_base = int(time.time() * 1000) - 3_600_000
    out = []
    for i in range(n):
        key = None if i % 7 == 3 else bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 24)))
        if i % 11 == 5:
            value = None
        elif i % 13 == 6:
            value = b""
        else:
            value = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 600)))
        hs = []
        if headers and i % 3:
            # kcat prints headers as k=v,k=v: keep them printable and free of ',' and '='.
            hs = [("trace", f"t-{i}".encode()), ("tag", b"x" * (i % 5)), ("trace", b"dup")]
        out.append(Rec(key, value, hs, ts_base + i * 10, partition=i % partitions))
    return out


def produce(broker, topic, records, compression="none", acks="all", extra=None, timeout=60):
    """Produce with confluent-kafka; fill in offsets from delivery reports; fail on any error."""
    conf = {"bootstrap.servers": broker.bootstrap, "compression.type": compression,
            "acks": acks, "linger.ms": 20, "enable.idempotence": False,
            "message.timeout.ms": 30000}
    conf.update(extra or {})
    p = Producer(conf)
    errors = []

    def report(rec):
        def cb(err, msg):
            if err is not None:
                errors.append(err)
            else:
                rec.offset = msg.offset()
        return cb

    for rec in records:
        p.produce(topic, value=rec.value, key=rec.key, partition=rec.partition,
                  timestamp=rec.timestamp, headers=rec.headers or None, on_delivery=report(rec))
        p.poll(0)
    left = p.flush(timeout)
    assert left == 0, f"{left} records not delivered within {timeout}s"
    assert not errors, f"delivery errors: {errors[:5]}"
    return records


def by_partition(records):
    parts = {}
    for r in records:
        parts.setdefault(r.partition, []).append(r)
    for rs in parts.values():
        rs.sort(key=lambda r: r.offset)
    return parts


def read_confluent(broker, topic, partition, count, start=OFFSET_BEGINNING, timeout=30):
    """[(offset, key, value, headers, (ts_type, ts))] with confluent-kafka, by assignment."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "blackbox-unused",
                  "enable.auto.commit": False, "auto.offset.reset": "error",
                  "enable.partition.eof": False})
    try:
        c.assign([TopicPartition(topic, partition, start)])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            out.append((msg.offset(), msg.key(), msg.value(), msg.headers() or [],
                        msg.timestamp()))
        return out
    finally:
        c.close()


def read_kafka_python(broker, topic, partition, count, timeout=30):
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTP
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      request_timeout_ms=20000, consumer_timeout_ms=1000)
    try:
        tp = KTP(topic, partition)
        c.assign([tp])
        c.seek_to_beginning(tp)
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            batch = c.poll(timeout_ms=500)
            for msgs in batch.values():
                for m in msgs:
                    out.append((m.offset, m.key, m.value, list(m.headers or []),
                                (m.timestamp_type, m.timestamp)))
        return out
    finally:
        c.close()


KCAT_FORMAT = "%p %o %T %K %S\n%k%s|%h\n"


def read_kcat(broker, topic, partition, timeout=60):
    """kcat -C ... -e: read to the end of the partition, parse the length-prefixed output."""
    out = subprocess.run(
        ["kcat", "-C", "-b", broker.bootstrap, "-t", topic, "-p", str(partition),
         "-o", "beginning", "-e", "-q", "-f", KCAT_FORMAT],
        capture_output=True, timeout=timeout, env=dict(os.environ))
    assert out.returncode == 0, f"kcat exited {out.returncode}: {out.stderr.decode()[-2000:]}"
    data = out.stdout
    pos = 0
    records = []
    while pos < len(data):
        nl = data.index(b"\n", pos)
        p, o, ts, klen, vlen = data[pos:nl].split(b" ")
        pos = nl + 1
        klen, vlen = int(klen), int(vlen)
        key = None if klen < 0 else data[pos:pos + klen]
        pos += max(klen, 0)
        value = None if vlen < 0 else data[pos:pos + vlen]
        pos += max(vlen, 0)
        assert data[pos:pos + 1] == b"|", f"kcat output out of step at byte {pos}"
        nl = data.index(b"\n", pos)
        raw_headers = data[pos + 1:nl]
        pos = nl + 1
        headers = []
        if raw_headers:
            for kv in raw_headers.split(b","):
                k, _, v = kv.partition(b"=")
                headers.append((k.decode(), v))
        records.append((int(o), key, value, headers, int(ts)))
    return records


# How each client reports a CreateTime timestamp.
CREATE_TIME = {
    "confluent-kafka": lambda ts: (1, ts),  # TIMESTAMP_CREATE_TIME
    "kafka-python": lambda ts: (0, ts),  # timestamp_type 0 = CreateTime
    "kcat": lambda ts: ts,
}


def assert_same(expected, got, client):
    """Byte-exact comparison of (offset, key, value, headers, timestamp) lists."""
    assert len(got) == len(expected), f"{client}: read {len(got)} records, wrote {len(expected)}"
    for rec, g in zip(expected, got):
        offset, key, value, headers, ts = g
        where = f"{client} offset {rec.offset}"
        assert offset == rec.offset, f"{where}: offset {offset}"
        assert key == rec.key, f"{where}: key {key!r} != {rec.key!r}"
        assert value == rec.value, f"{where}: value differs ({_short(value)} != {_short(rec.value)})"
        assert [(k, bytes(v) if v is not None else None) for k, v in headers] == rec.headers, \
            f"{where}: headers {headers} != {rec.headers}"
        want = CREATE_TIME[client](rec.timestamp)
        assert ts == want, f"{where}: timestamp {ts} != CreateTime {want}"


def _short(b):
    return None if b is None else f"{len(b)} bytes {b[:16]!r}"


__all__ = ["Rec", "admin", "create_topic", "wait_for_topic", "sample_records", "produce",
           "read_confluent", "read_kafka_python", "read_kcat", "assert_same", "KafkaError",
           "by_partition"]
