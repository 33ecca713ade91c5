"""Transactions with a real client (confluent-kafka): a consume-transform-produce loop that commits
some transactions and aborts others, read_committed against read_uncommitted, a producer that dies
mid-transaction and is aborted after transaction.timeout.ms, fencing by transactional.id, and open
transactions across a broker restart."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

import kafka_wire as wire
from clients import create_topic

API_INIT_PRODUCER_ID = 22
API_ADD_PARTITIONS_TO_TXN = 24
API_ADD_OFFSETS_TO_TXN = 25
API_END_TXN = 26
API_WRITE_TXN_MARKERS = 27
API_TXN_OFFSET_COMMIT = 28

TXN_APIS = {API_INIT_PRODUCER_ID: "InitProducerId", API_ADD_PARTITIONS_TO_TXN: "AddPartitionsToTxn",
            API_ADD_OFFSETS_TO_TXN: "AddOffsetsToTxn", API_END_TXN: "EndTxn",
            API_TXN_OFFSET_COMMIT: "TxnOffsetCommit"}

# The coordinator looks for timed-out transactions every second (Kafka's default is 10 s), so a
# producer that dies with transaction.timeout.ms=3000 is aborted within a few seconds.
BROKER_OVERRIDES = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000"}

TIMEOUT = 30


def _require_transactions(broker):
    for key, name in TXN_APIS.items():
        broker.require(key, what=name)


def _producer(broker, txn_id, **extra):
    conf = {"bootstrap.servers": broker.bootstrap, "transactional.id": txn_id,
            "transaction.timeout.ms": 10000, "linger.ms": 5}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(TIMEOUT)
    return p


def _consumer(broker, isolation, group=None, **extra):
    conf = {"bootstrap.servers": broker.bootstrap, "group.id": group or f"reader-{uuid.uuid4()}",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "isolation.level": isolation, "group.protocol": "classic",
            "session.timeout.ms": 10000, "heartbeat.interval.ms": 500}
    conf.update(extra)
    return Consumer(conf)


def _read_all(broker, topic, partitions, isolation, settle=3.0, timeout=45):
    """Every value readable on `topic` with this isolation level: reads until every partition
    reached its end (EOF) and nothing new arrived for `settle` seconds."""
    c = _consumer(broker, isolation, **{"enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        values = []
        at_eof = set()
        quiet_since = time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is None:
                if len(at_eof) == partitions and time.monotonic() - quiet_since >= settle:
                    return values
                continue
            if msg.error():
                if msg.error().code() == -191:  # _PARTITION_EOF
                    at_eof.add(msg.partition())
                    continue
                raise AssertionError(msg.error())
            at_eof.discard(msg.partition())
            quiet_since = time.monotonic()
            values.append(msg.value())
        raise AssertionError(f"{topic} ({isolation}) not read to its end within {timeout}s; "
                             f"got {len(values)} values, EOF on {sorted(at_eof)}")
    finally:
        c.close()


def _wait_readable(broker, topic, partitions, isolation, want, timeout=60):
    """Polls read_committed until `want` (a set of values) is a subset of what is readable."""
    deadline = time.monotonic() + timeout
    got = []
    while time.monotonic() < deadline:
        got = _read_all(broker, topic, partitions, isolation, settle=0.5)
        if want <= set(got):
            return got
        time.sleep(0.5)
    raise AssertionError(f"{sorted(want - set(got))[:5]} not readable ({isolation}) within "
                         f"{timeout}s")


def test_consume_transform_produce_commits_some_transactions_and_aborts_others(broker):
    _require_transactions(broker)
    source, sink, group = "txn-source", "txn-sink", "txn-transformer"
    create_topic(broker, source, 2)
    create_topic(broker, sink, 2)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(40):
        plain.produce(source, value=f"in-{i}".encode(), partition=i % 2)
    assert plain.flush(TIMEOUT) == 0

    producer = _producer(broker, "transformer-1")
    consumer = _consumer(broker, "read_committed", group=group)
    consumer.subscribe([source])
    committed_values, aborted_values = [], []
    committed_positions = None
    try:
        seen = 0
        txn = 0
        deadline = time.monotonic() + 90
        # Batches of 8 inputs per transaction; every third transaction (and the last) aborts.
        while seen < 40 and time.monotonic() < deadline:
            msgs = consumer.consume(num_messages=8, timeout=1.0)
            msgs = [m for m in msgs if not m.error()]
            if not msgs:
                continue
            seen += len(msgs)
            txn += 1
            commit = txn % 3 != 0 and seen < 40
            producer.begin_transaction()
            out = [b"out-" + m.value() + (b"" if commit else b"-aborted") for m in msgs]
            for m, value in zip(msgs, out):
                producer.produce(sink, value=value, partition=m.partition())
            positions = consumer.position(consumer.assignment())
            producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(),
                                                 TIMEOUT)
            # The records reach the log before the outcome (abort_transaction purges what is
            # still queued): aborted records must be in the log, and hidden from read_committed.
            assert producer.flush(TIMEOUT) == 0
            if commit:
                producer.commit_transaction(TIMEOUT)
                committed_values += out
                committed_positions = {(tp.partition): tp.offset for tp in positions}
            else:
                producer.abort_transaction(TIMEOUT)
                aborted_values += out
        assert seen == 40, f"consumed {seen} of 40 inputs"
        assert aborted_values and committed_values
    finally:
        consumer.close()

    # The group's committed offsets are the last committed transaction's, not the aborted ones'.
    check = _consumer(broker, "read_committed", group=group)
    try:
        got = check.committed([TopicPartition(source, p) for p in range(2)], timeout=TIMEOUT)
        assert {tp.partition: tp.offset for tp in got} == committed_positions
    finally:
        check.close()

    read_committed = _read_all(broker, sink, 2, "read_committed")
    assert sorted(read_committed) == sorted(committed_values)
    assert len(read_committed) == len(set(read_committed)), "duplicates"
    read_uncommitted = _read_all(broker, sink, 2, "read_uncommitted")
    assert sorted(read_uncommitted) == sorted(committed_values + aborted_values)


def test_a_second_producer_with_the_same_transactional_id_fences_the_first(broker):
    _require_transactions(broker)
    topic = "txn-fencing"
    create_topic(broker, topic, 1)
    zombie = _producer(broker, "fenced-id")
    zombie.begin_transaction()
    zombie.produce(topic, value=b"zombie-open")
    assert zombie.flush(TIMEOUT) == 0

    # The newcomer's InitProducerId aborts the zombie's open transaction and bumps the epoch.
    fresh = _producer(broker, "fenced-id")
    fresh.begin_transaction()
    fresh.produce(topic, value=b"fresh")
    fresh.commit_transaction(TIMEOUT)

    with pytest.raises(KafkaException) as raised:
        zombie.produce(topic, value=b"zombie-late")
        zombie.flush(TIMEOUT)
        zombie.commit_transaction(TIMEOUT)
    error = raised.value.args[0]
    assert error.fatal(), error
    assert error.name() in ("_FENCED", "PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH"), error

    assert _read_all(broker, topic, 1, "read_committed") == [b"fresh"]
    assert sorted(_read_all(broker, topic, 1, "read_uncommitted")) == [b"fresh", b"zombie-open"]


DYING_PRODUCER = textwrap.dedent("""
    import sys, time
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": sys.argv[1], "transactional.id": sys.argv[2],
                  "transaction.timeout.ms": 3000})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(10):
        p.produce(sys.argv[3], value=b"doomed-%d" % i)
    assert p.flush(30) == 0
    print("open", flush=True)
    time.sleep(600)
""")


def test_a_producer_that_dies_mid_transaction_is_aborted_after_its_timeout(broker):
    _require_transactions(broker)
    topic = "txn-dying"
    create_topic(broker, topic, 1)
    child = subprocess.Popen([sys.executable, "-c", DYING_PRODUCER, broker.bootstrap,
                              "dying-id", topic], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        line = child.stdout.readline()
        assert line.strip() == "open", f"child said {line!r} (exit {child.poll()})"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)

    # A record after the open transaction stays invisible to read_committed (the last stable
    # offset is held back) until the coordinator aborts the dead producer's transaction.
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    plain.produce(topic, value=b"after")
    assert plain.flush(TIMEOUT) == 0
    started = time.monotonic()
    assert _read_all(broker, topic, 1, "read_committed", settle=0.5) == [], \
        "read_committed saw past an open transaction"
    got = _wait_readable(broker, topic, 1, "read_committed", {b"after"}, timeout=60)
    waited = time.monotonic() - started
    assert got == [b"after"], got
    assert waited < 30, f"aborted only after {waited:.0f}s"
    assert len(_read_all(broker, topic, 1, "read_uncommitted")) == 11

    # The dead producer's transactional.id is usable again, with a bumped epoch.
    again = _producer(broker, "dying-id")
    again.begin_transaction()
    again.produce(topic, value=b"reborn")
    again.commit_transaction(TIMEOUT)
    assert _read_all(broker, topic, 1, "read_committed") == [b"after", b"reborn"]


def test_open_transactions_keep_every_guarantee_across_a_broker_restart(fresh_broker):
    broker = fresh_broker
    _require_transactions(broker)
    topic, source, group = "txn-restart", "txn-restart-in", "txn-restart-group"
    create_topic(broker, topic, 2)
    create_topic(broker, source, 1)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        plain.produce(source, value=f"in-{i}".encode())
    assert plain.flush(TIMEOUT) == 0
    consumer = _consumer(broker, "read_committed", group=group)
    consumer.subscribe([source])
    deadline = time.monotonic() + 60
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.5)
    metadata = consumer.consumer_group_metadata()

    committer = _producer(broker, "restart-commit", **{"transaction.timeout.ms": 60000})
    aborter = _producer(broker, "restart-abort", **{"transaction.timeout.ms": 60000})
    done = _producer(broker, "restart-done")
    done.begin_transaction()
    done.produce(topic, value=b"done-before", partition=0)
    done.commit_transaction(TIMEOUT)
    committer.begin_transaction()
    for i in range(5):
        committer.produce(topic, value=f"commit-{i}".encode(), partition=i % 2)
    committer.send_offsets_to_transaction([TopicPartition(source, 0, 7)], metadata, TIMEOUT)
    aborter.begin_transaction()
    for i in range(5):
        aborter.produce(topic, value=f"abort-{i}".encode(), partition=i % 2)
    aborter.send_offsets_to_transaction([TopicPartition(source, 0, 9)], metadata, TIMEOUT)
    assert committer.flush(TIMEOUT) == 0 and aborter.flush(TIMEOUT) == 0
    consumer.close()

    broker.restart()

    # Nothing of the open transactions is visible, before or after the restart.
    assert _read_all(broker, topic, 2, "read_committed") == [b"done-before"]
    committer.commit_transaction(TIMEOUT)
    aborter.abort_transaction(TIMEOUT)
    got = _read_all(broker, topic, 2, "read_committed")
    assert sorted(got) == sorted([b"done-before"] + [f"commit-{i}".encode() for i in range(5)])
    assert len(_read_all(broker, topic, 2, "read_uncommitted")) == 11
    check = _consumer(broker, "read_committed", group=group)
    try:
        got = check.committed([TopicPartition(source, 0)], timeout=TIMEOUT)
        assert got[0].offset == 7, got
    finally:
        check.close()

    # The producers carry on with new transactions on the restarted broker.
    committer.begin_transaction()
    committer.produce(topic, value=b"commit-after", partition=1)
    committer.commit_transaction(TIMEOUT)
    assert b"commit-after" in _read_all(broker, topic, 2, "read_committed")


# --- DescribeTransactions / ListTransactions, hand-built (confluent-kafka's Python admin has
# neither). Both are flexible from v0: compact strings and arrays, tagged fields.

API_DESCRIBE_TRANSACTIONS = 65
API_LIST_TRANSACTIONS = 66


def _uvarint(r):
    shift = value = 0
    while True:
        b = r.take(1)[0]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value
        shift += 7


def _compact_string(r):
    n = _uvarint(r) - 1
    return None if n < 0 else r.take(n).decode()


def _compact_array(r, item):
    n = _uvarint(r) - 1
    return None if n < 0 else [item(r) for _ in range(n)]


def _skip_tags(r):
    for _ in range(_uvarint(r)):
        _uvarint(r)
        r.take(_uvarint(r))


def _describe_transactions(broker, txn_ids):
    body = wire.uvarint(len(txn_ids) + 1) + b"".join(wire.compact_string(t) for t in txn_ids)
    body += b"\x00"
    with wire.Connection(broker.port) as conn:
        r = wire.Reader(conn.request(API_DESCRIBE_TRANSACTIONS, 0, body, flexible_header=True))
    _skip_tags(r)  # response header v1
    r.i32()  # throttle

    def state(r):
        out = {"error": r.i16(), "id": _compact_string(r), "state": _compact_string(r),
               "timeout_ms": r.i32(), "start_ms": r.i64(), "producer_id": r.i64(),
               "epoch": r.i16()}

        def topic(r):
            name = _compact_string(r)
            parts = _compact_array(r, lambda r: r.i32())
            _skip_tags(r)
            return name, parts

        out["topics"] = dict(_compact_array(r, topic))
        _skip_tags(r)
        return out

    return {s["id"]: s for s in _compact_array(r, state)}


def _list_transactions(broker, states=()):
    body = wire.uvarint(len(states) + 1) + b"".join(wire.compact_string(s) for s in states)
    body += wire.uvarint(1)  # no producer id filter
    body += b"\x00"
    with wire.Connection(broker.port) as conn:
        r = wire.Reader(conn.request(API_LIST_TRANSACTIONS, 0, body, flexible_header=True))
    _skip_tags(r)
    r.i32()
    error = r.i16()
    unknown = _compact_array(r, _compact_string)

    def state(r):
        out = (_compact_string(r), r.i64(), _compact_string(r))
        _skip_tags(r)
        return out

    listed = _compact_array(r, state)
    return error, unknown, {tid: (pid, st) for tid, pid, st in listed}


def test_describe_and_list_transactions_show_an_open_transaction_and_its_end(broker):
    _require_transactions(broker)
    broker.require(API_DESCRIBE_TRANSACTIONS, 0, what="DescribeTransactions")
    broker.require(API_LIST_TRANSACTIONS, 0, what="ListTransactions")
    topic = "txn-described"
    create_topic(broker, topic, 2)
    p = _producer(broker, "described-id", **{"transaction.timeout.ms": 20000})
    p.begin_transaction()
    p.produce(topic, value=b"a", partition=1)
    assert p.flush(TIMEOUT) == 0

    d = _describe_transactions(broker, ["described-id", "no-such-id"])
    open_txn = d["described-id"]
    assert open_txn["error"] == 0
    assert open_txn["state"] == "Ongoing"
    assert open_txn["timeout_ms"] == 20000
    assert open_txn["start_ms"] > 0
    assert open_txn["topics"] == {topic: [1]}
    assert d["no-such-id"]["error"] == 105  # TRANSACTIONAL_ID_NOT_FOUND

    error, unknown, listed = _list_transactions(broker, ["Ongoing", "Bogus"])
    assert error == 0 and unknown == ["Bogus"]
    assert listed["described-id"] == (open_txn["producer_id"], "Ongoing")

    p.commit_transaction(TIMEOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = _describe_transactions(broker, ["described-id"])["described-id"]
        if done["state"] == "CompleteCommit":
            break
        time.sleep(0.2)
    assert done["state"] == "CompleteCommit", done
    assert done["topics"] == {}
    assert done["producer_id"] == open_txn["producer_id"]
    _, _, listed = _list_transactions(broker, ["Ongoing"])
    assert "described-id" not in listed
