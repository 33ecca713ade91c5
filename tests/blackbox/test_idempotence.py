"""Idempotent producers (KIP-98, KIP-360): raw-protocol cases for duplicates, sequence gaps and
fenced epochs, confluent-kafka with enable.idempotence=true through a proxy that drops
connections before the broker's answers arrive (so batches are retried after being written), and
across broker restarts (clean and kill -9) mid-stream: every record exactly once, in order, per
partition. Also read_committed against read_uncommitted on hand-made transactions (a raw
transactional batch plus WriteTxnMarkers)."""

import socket
import struct
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import kafka_wire as wire
from clients import create_topic
from conftest import _make_broker, free_port

API_INIT_PRODUCER_ID = 22
API_WRITE_TXN_MARKERS = 27

# Kafka 4.4 and Vltava verify transactional produces with the coordinator (KIP-890); the raw
# read_committed case writes a transactional batch without AddPartitionsToTxn, so both brokers
# run with verification off here (test_transactions.py covers it on).
BROKER_OVERRIDES = {"transaction.partition.verification.enable": "false"}

NONE = 0
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47


# --- raw protocol helpers -----------------------------------------------------------------------

def init_producer_id(conn):
    """InitProducerId v0 without a transactional id: (error_code, producer_id, epoch). Retries
    the retriable answers a broker gives while its producer id manager starts (Kafka: 14, 15)."""
    body = wire.string(None) + struct.pack(">i", 60000)
    deadline = time.monotonic() + 30
    while True:
        resp = conn.request(API_INIT_PRODUCER_ID, 0, body)
        _throttle, error_code, producer_id, epoch = struct.unpack(">ihqh", resp[:16])
        if error_code not in (14, 15) or time.monotonic() > deadline:
            return error_code, producer_id, epoch
        time.sleep(0.2)


def producer_batch(values, producer_id, epoch, sequence, transactional=False):
    """A RecordBatch v2 of `values` from an idempotent (or transactional) producer."""
    batch = bytearray(wire.record_batch([(None, v) for v in values]))
    struct.pack_into(">h", batch, 21, 0x10 if transactional else 0)
    struct.pack_into(">qhi", batch, 43, producer_id, epoch, sequence)
    struct.pack_into(">I", batch, 17, wire.crc32c(bytes(batch[21:])))
    return bytes(batch)


def produce(conn, topic, batch, partition=0, transactional_id=None):
    request = wire.string(transactional_id) + wire.produce_v8_request(topic, partition, batch)[2:]
    resp = conn.request(wire.API_PRODUCE, 8, request)
    return wire.parse_produce_v8(resp)[(topic, partition)]


def write_txn_marker(conn, topic, partition, producer_id, epoch, commit, coordinator_epoch=0):
    """WriteTxnMarkers v1 (flexible) for one partition; returns its error code."""
    body = (
        wire.uvarint(2)  # one marker
        + struct.pack(">qh?", producer_id, epoch, commit)
        + wire.uvarint(2) + wire.compact_string(topic)
        + wire.uvarint(2) + struct.pack(">i", partition) + wire.uvarint(0)  # topic tags
        + struct.pack(">i", coordinator_epoch) + wire.uvarint(0)  # marker tags
        + wire.uvarint(0)  # request tags
    )
    resp = conn.request(API_WRITE_TXN_MARKERS, 1, body, flexible_header=True)
    r = wire.Reader(resp)
    _uv(r)  # response header tags
    assert _uv(r) == 2, "one marker result"
    assert r.i64() == producer_id
    assert _uv(r) == 2, "one topic"
    name_len = _uv(r) - 1
    assert r.take(name_len).decode() == topic
    assert _uv(r) == 2, "one partition"
    assert r.i32() == partition
    return r.i16()


def _uv(r):
    """An unsigned varint from a wire.Reader."""
    value, shift = 0, 0
    while True:
        (byte,) = r.take(1)
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value
        shift += 7


@pytest.fixture
def conn(broker):
    broker.require(API_INIT_PRODUCER_ID, what="InitProducerId")
    with wire.Connection(broker.port) as c:
        yield c


def test_a_retried_batch_gets_its_original_offset_and_is_not_written_twice(broker, conn):
    create_topic(broker, "idem-dup", 1)
    err, pid, epoch = init_producer_id(conn)
    assert err == NONE and pid >= 0 and epoch == 0
    first = produce(conn, "idem-dup", producer_batch([b"a", b"b", b"c"], pid, epoch, 0))
    second = produce(conn, "idem-dup", producer_batch([b"d"], pid, epoch, 3))
    assert (first["error_code"], first["base_offset"]) == (NONE, 0)
    assert (second["error_code"], second["base_offset"]) == (NONE, 3)
    again = produce(conn, "idem-dup", producer_batch([b"a", b"b", b"c"], pid, epoch, 0))
    assert (again["error_code"], again["base_offset"]) == (NONE, 0)
    after = produce(conn, "idem-dup", producer_batch([b"e"], pid, epoch, 4))
    assert (after["error_code"], after["base_offset"]) == (NONE, 4), "the retry wrote nothing"


def test_a_sequence_gap_is_out_of_order(broker, conn):
    create_topic(broker, "idem-gap", 1)
    _, pid, epoch = init_producer_id(conn)
    assert produce(conn, "idem-gap", producer_batch([b"a"], pid, epoch, 0))["error_code"] == NONE
    gap = produce(conn, "idem-gap", producer_batch([b"b"], pid, epoch, 5))
    assert gap["error_code"] == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert gap["base_offset"] == -1


def test_an_older_epoch_is_fenced(broker, conn):
    create_topic(broker, "idem-epoch", 1)
    _, pid, _ = init_producer_id(conn)
    assert produce(conn, "idem-epoch", producer_batch([b"a"], pid, 1, 0))["error_code"] == NONE
    stale = produce(conn, "idem-epoch", producer_batch([b"b"], pid, 0, 1))
    assert stale["error_code"] == INVALID_PRODUCER_EPOCH


def test_an_unknown_producer_may_start_at_any_sequence(broker, conn):
    """KIP-360: the state of a producer may be gone (retention, expiration), so a producer the
    partition does not know is accepted at any sequence, and must follow on from there."""
    create_topic(broker, "idem-unknown", 1)
    _, pid, epoch = init_producer_id(conn)
    assert produce(conn, "idem-unknown", producer_batch([b"a"], pid, epoch, 17))["error_code"] == NONE
    assert produce(conn, "idem-unknown", producer_batch([b"b"], pid, epoch, 18))["error_code"] == NONE
    gap = produce(conn, "idem-unknown", producer_batch([b"c"], pid, epoch, 20))
    assert gap["error_code"] == OUT_OF_ORDER_SEQUENCE_NUMBER


def _consume_values(bootstrap, topic, partitions, isolation="read_uncommitted", expect=None,
                    timeout=30):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"idem-{time.time()}",
                  "enable.auto.commit": False, "isolation.level": isolation,
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = {p: [] for p in range(partitions)}
    eof = set()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    eof.add(m.partition())
                    total = sum(len(v) for v in got.values())
                    if len(eof) == partitions and (expect is None or total >= expect):
                        break
                    continue
                raise AssertionError(m.error())
            eof.discard(m.partition())
            got[m.partition()].append(m.value())
    finally:
        c.close()
    return got


def test_read_committed_skips_aborted_transactions_and_stops_at_the_open_one(broker, conn):
    broker.require(API_WRITE_TXN_MARKERS, what="WriteTxnMarkers")
    topic = "idem-txn"
    create_topic(broker, topic, 1)
    _, aborted_pid, _ = init_producer_id(conn)
    _, committed_pid, _ = init_producer_id(conn)
    _, open_pid, _ = init_producer_id(conn)
    unauthorized = produce(conn, topic, producer_batch([b"x"], aborted_pid, 0, 0, True))
    assert unauthorized["error_code"] == 53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED without an id"
    assert produce(conn, topic, producer_batch([b"plain-1"], -1, -1, -1))["error_code"] == NONE
    assert produce(conn, topic, producer_batch([b"aborted-1", b"aborted-2"], aborted_pid, 0, 0,
                                               transactional=True), transactional_id="raw")["error_code"] == NONE
    assert produce(conn, topic, producer_batch([b"committed-1"], committed_pid, 0, 0,
                                               transactional=True), transactional_id="raw")["error_code"] == NONE
    assert write_txn_marker(conn, topic, 0, aborted_pid, 0, commit=False) == NONE
    assert write_txn_marker(conn, topic, 0, committed_pid, 0, commit=True) == NONE
    assert produce(conn, topic, producer_batch([b"plain-2"], -1, -1, -1))["error_code"] == NONE
    assert produce(conn, topic, producer_batch([b"open-1"], open_pid, 0, 0,
                                               transactional=True), transactional_id="raw")["error_code"] == NONE
    assert produce(conn, topic, producer_batch([b"plain-3"], -1, -1, -1))["error_code"] == NONE

    committed = _consume_values(broker.bootstrap, topic, 1, "read_committed")[0]
    assert committed == [b"plain-1", b"committed-1", b"plain-2"], \
        "read_committed sees committed data up to the open transaction only"
    everything = _consume_values(broker.bootstrap, topic, 1, "read_uncommitted", expect=7)[0]
    assert everything == [b"plain-1", b"aborted-1", b"aborted-2", b"committed-1", b"plain-2",
                          b"open-1", b"plain-3"]
    assert write_txn_marker(conn, topic, 0, open_pid, 0, commit=False) == NONE
    committed = _consume_values(broker.bootstrap, topic, 1, "read_committed", expect=4)[0]
    assert committed == [b"plain-1", b"committed-1", b"plain-2", b"plain-3"]


# --- a real idempotent producer under faults ----------------------------------------------------

class DroppingProxy:
    """A TCP proxy that, once armed, closes a connection instead of passing on every n-th chunk
    from the broker: the request was handled, the client never sees the answer, and retries."""

    def __init__(self, port, upstream_port, drop_every=25):
        self.upstream = upstream_port
        self.drop_every = drop_every
        self.armed = False
        self.dropped = 0
        self._chunks = 0
        self._lock = threading.Lock()
        self._stop = False
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(0.2)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), timeout=10)
            except OSError:
                client.close()
                continue
            for src, dst, drops in ((client, server, False), (server, client, True)):
                threading.Thread(target=self._pump, args=(src, dst, drops), daemon=True).start()

    def _should_drop(self):
        with self._lock:
            if not self.armed:
                return False
            self._chunks += 1
            if self._chunks % self.drop_every == 0:
                self.dropped += 1
                return True
            return False

    def _pump(self, src, dst, drops):
        try:
            while True:
                data = src.recv(65536)
                if not data or (drops and self._should_drop()):
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self._stop = True
        self.listener.close()


def _idempotent_producer(bootstrap):
    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                     "linger.ms": 2, "batch.num.messages": 20,
                     "max.in.flight.requests.per.connection": 5,
                     "retry.backoff.ms": 50, "message.timeout.ms": 120000,
                     "socket.timeout.ms": 10000})


def _produce_numbered(producer, topic, partitions, count, on_half=None):
    """Sends `count` records per partition, values "<partition>-<i>"; returns delivery errors."""
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(err)

    for i in range(count):
        for p in range(partitions):
            while True:
                try:
                    producer.produce(topic, f"{p}-{i}".encode(), partition=p, on_delivery=report)
                    break
                except BufferError:
                    producer.poll(0.1)
        producer.poll(0)
        if on_half is not None and i == count // 2:
            on_half()
    assert producer.flush(120) == 0, "undelivered records"
    return errors


def _assert_exactly_once_in_order(bootstrap, topic, partitions, count):
    got = _consume_values(bootstrap, topic, partitions, expect=partitions * count, timeout=60)
    for p in range(partitions):
        expected = [f"{p}-{i}".encode() for i in range(count)]
        values = got[p]
        dups = len(values) - len(set(values))
        assert dups == 0, f"partition {p}: {dups} duplicates"
        assert values == expected, (f"partition {p}: {len(values)} records, first difference at "
                                    f"{next((i for i, (a, b) in enumerate(zip(values, expected)) if a != b), min(len(values), len(expected)))}")


def test_idempotent_producer_through_dropped_connections_writes_each_record_once(
        tmp_path_factory):
    proxy_port = free_port()
    b = _make_broker(tmp_path_factory, "idem-proxy",
                     {"advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy_port}",
                      "transaction.partition.verification.enable": "false"})
    proxy = DroppingProxy(proxy_port, b.port)
    try:
        b.require(API_INIT_PRODUCER_ID, what="InitProducerId")
        bootstrap = f"127.0.0.1:{proxy_port}"
        topic = "idem-drops"
        partitions, count = 3, 3000
        create_topic(b, topic, partitions)
        producer = _idempotent_producer(bootstrap)
        proxy.armed = True
        errors = _produce_numbered(producer, topic, partitions, count)
        proxy.armed = False
        assert not errors, errors[:3]
        assert proxy.dropped >= 3, f"only {proxy.dropped} answers were dropped"
        _assert_exactly_once_in_order(b.bootstrap, topic, partitions, count)
    finally:
        proxy.close()
        b.stop()
        b.assert_no_panic()


@pytest.mark.parametrize("how", ["restart", "kill9"])
def test_idempotent_producer_across_a_broker_restart_writes_each_record_once(fresh_broker, how):
    b = fresh_broker
    b.require(API_INIT_PRODUCER_ID, what="InitProducerId")
    topic = f"idem-{how}"
    partitions, count = 2, 4000
    create_topic(b, topic, partitions)
    producer = _idempotent_producer(b.bootstrap)

    def bounce():
        producer.flush(0)
        if how == "restart":
            b.restart()
        else:
            b.kill9()
            b.start()

    errors = _produce_numbered(producer, topic, partitions, count, on_half=bounce)
    assert not errors, errors[:3]
    _assert_exactly_once_in_order(b.bootstrap, topic, partitions, count)


def test_kafka_python_default_producer_is_idempotent_and_writes_each_record_once(broker):
    """kafka-python 3 turns idempotence on by default: it needs InitProducerId first."""
    broker.require(API_INIT_PRODUCER_ID, what="InitProducerId")
    from kafka import KafkaProducer
    topic = "idem-kafka-python"
    create_topic(broker, topic, 2)
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5, request_timeout_ms=20000)
    try:
        assert p.config["enable_idempotence"], "kafka-python's default changed"
        futures = [p.send(topic, value=f"{i % 2}-{i // 2}".encode(), partition=i % 2)
                   for i in range(600)]
        p.flush(30)
        offsets = [f.get(timeout=30).offset for f in futures]
    finally:
        p.close(timeout=10)
    assert sorted(offsets[0::2]) == list(range(300)) and sorted(offsets[1::2]) == list(range(300))
    _assert_exactly_once_in_order(broker.bootstrap, topic, 2, 300)
