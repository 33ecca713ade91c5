"""Consumer groups with real clients in real processes: partitions shared and moved between
members (on a kill -9 after the session timeout, at once on a clean leave), static membership
(KIP-345), committed offsets that survive a broker crash, kafka-python and aiokafka members,
and Kafka's error codes for bad group requests."""

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

import conftest
import kafka_wire as wire
from clients import create_topic, produce, sample_records

# Rebalances start at once (Kafka's default waits 3 s for more members); few offsets
# partitions keep the reference broker's start quick.
OVERRIDES = {"group.initial.rebalance.delay.ms": "0", "offsets.topic.num.partitions": "5"}
BROKER_OVERRIDES = OVERRIDES

API_OFFSET_COMMIT = 8
API_OFFSET_FETCH = 9
API_JOIN_GROUP = 11
API_HEARTBEAT = 12
API_LIST_GROUPS = 16

SESSION_TIMEOUT_MS = 6000  # group.min.session.timeout.ms: the shortest a broker accepts

# One consumer process: JSON lines out (assignments, records), "close" on stdin closes cleanly.
MEMBER = r"""
import json, sys, threading
from confluent_kafka import Consumer
conf = json.loads(sys.argv[1])
topic, commit = sys.argv[2], sys.argv[3] == "1"
def out(**kw):
    print(json.dumps(kw), flush=True)
c = Consumer(conf)
c.subscribe([topic],
            on_assign=lambda _, ps: out(event="assigned", partitions=sorted(p.partition for p in ps)),
            on_revoke=lambda _, ps: out(event="revoked", partitions=sorted(p.partition for p in ps)))
stop = threading.Event()
def watch():
    for line in sys.stdin:
        if line.strip() == "close":
            break
    stop.set()
threading.Thread(target=watch, daemon=True).start()
while not stop.is_set():
    m = c.poll(0.1)
    if m is None:
        continue
    if m.error():
        out(event="error", error=str(m.error()))
        continue
    out(event="record", p=m.partition(), o=m.offset())
    if commit:
        c.commit(message=m, asynchronous=False)
c.close()
out(event="closed")
"""


class Member:
    """A confluent-kafka consumer in its own process, watched through its event stream."""

    def __init__(self, broker, group, topic, instance_id=None, commit=False, name="m",
                 strategy="range"):
        conf = {"bootstrap.servers": broker.bootstrap, "group.id": group,
                "enable.auto.commit": False, "auto.offset.reset": "earliest",
                "session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": 300,
                "group.protocol": "classic", "client.id": name,
                "partition.assignment.strategy": strategy}
        if instance_id:
            conf["group.instance.id"] = instance_id
        self.name = name
        # KIP-429: callbacks carry only the partitions added or taken away.
        self.incremental = strategy == "cooperative-sticky"
        self.events = []
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", MEMBER, json.dumps(conf), topic, "1" if commit else "0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            event["at"] = time.monotonic()
            with self.lock:
                self.events.append(event)

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def assignment(self):
        """The partitions after the latest assign/revoke (eager: revoke clears everything)."""
        current = set()
        for e in self.snapshot():
            if e["event"] == "assigned":
                current = current | set(e["partitions"]) if self.incremental \
                    else set(e["partitions"])
            elif e["event"] == "revoked":
                current = current - set(e["partitions"]) if self.incremental else set()
        return sorted(current)

    def records(self):
        return [(e["p"], e["o"]) for e in self.snapshot() if e["event"] == "record"]

    def count(self, event):
        return sum(1 for e in self.snapshot() if e["event"] == event)

    def close(self, timeout=30):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("close\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.reader.join(5)

    def kill9(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def members():
    started = []
    yield started
    for m in started:
        m.kill9()


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


def balanced(group_members, partitions, each):
    """Every member owns `each` partitions and together they own all of them, once."""
    assignments = [m.assignment() for m in group_members]
    owned = sorted(p for a in assignments for p in a)
    return owned == list(range(partitions)) and all(len(a) == each for a in assignments)


def require_groups(broker):
    for key in (wire.API_FIND_COORDINATOR, API_JOIN_GROUP, API_HEARTBEAT, API_OFFSET_COMMIT,
                API_OFFSET_FETCH):
        broker.require(key)


def start_members(broker, members, group, topic, n, **kw):
    for i in range(n):
        members.append(Member(broker, group, topic, name=f"{group}-{i}", **kw))
    wait_until(lambda: balanced(members[-n:], 6, 6 // n), 60,
               f"{n} members of {group} with {6 // n} partitions each")
    return members[-n:]


def test_three_members_share_six_partitions_and_read_each_record_once(broker, members):
    require_groups(broker)
    topic = "shared6"
    create_topic(broker, topic, 6)
    group = start_members(broker, members, "sharers", topic, 3)
    records = produce(broker, topic, sample_records(600, partitions=6, seed=5, headers=False))
    wait_until(lambda: sum(len(m.records()) for m in group) >= 600, 60, "600 records read")
    time.sleep(1)  # nothing more may arrive
    seen = [r for m in group for r in m.records()]
    assert sorted(seen) == sorted((r.partition, r.offset) for r in records), \
        "each record exactly once across the group"
    for m in group:
        assert {p for p, _ in m.records()} <= set(m.assignment()), m.name


def test_partitions_move_after_a_kill_and_at_once_after_a_clean_leave(broker, members):
    require_groups(broker)
    topic = "moving6"
    create_topic(broker, topic, 6)
    a, b, c = start_members(broker, members, "movers", topic, 3)

    killed_at = time.monotonic()
    c.kill9()  # no LeaveGroup: the coordinator notices only when its session times out
    moved_at = wait_until(lambda: balanced([a, b], 6, 3), 60, "partitions of the killed member")
    after_kill = moved_at - killed_at
    assert after_kill >= SESSION_TIMEOUT_MS / 1000 - 1.5, \
        f"moved after {after_kill:.1f}s, before the session timeout"

    left_at = time.monotonic()
    b.close()  # LeaveGroup: the group rebalances now
    moved_at = wait_until(lambda: balanced([a], 6, 6), 60, "partitions of the leaving member")
    after_leave = moved_at - left_at
    assert after_leave < SESSION_TIMEOUT_MS / 1000 - 1, \
        f"a clean leave took {after_leave:.1f}s, as long as a session timeout"


def test_a_restarted_static_member_gets_its_partitions_back_without_a_rebalance(
        broker, members):
    require_groups(broker)
    topic = "static6"
    create_topic(broker, topic, 6)
    for i in range(2):
        members.append(Member(broker, "statics", topic, instance_id=f"instance-{i}",
                              name=f"static-{i}"))
    first, second = members[-2:]
    wait_until(lambda: balanced([first, second], 6, 3), 60, "two static members, 3 each")
    mine = first.assignment()
    assigned_before, revoked_before = second.count("assigned"), second.count("revoked")

    first.kill9()  # a static member sends no LeaveGroup anyway
    time.sleep(1)
    again = Member(broker, "statics", topic, instance_id="instance-0", name="static-0-again")
    members.append(again)
    wait_until(lambda: again.assignment() == mine, 30, "the same partitions for the instance")
    time.sleep(2)  # a rebalance, had there been one, would reach the other member by now
    assert (second.count("assigned"), second.count("revoked")) == (
        assigned_before, revoked_before), \
        f"the other member was rebalanced: {second.snapshot()} / {again.snapshot()}"


def test_cooperative_sticky_members_rebalance_incrementally(broker, members):
    require_groups(broker)
    topic = "coop6"
    create_topic(broker, topic, 6)
    first, second = start_members(broker, members, "cooperators", topic, 2,
                                  strategy="cooperative-sticky")
    kept = {m.name: set(m.assignment()) for m in (first, second)}
    seen = {m.name: len(m.snapshot()) for m in (first, second)}
    third = Member(broker, "cooperators", topic, name="cooperator-3",
                   strategy="cooperative-sticky")
    members.append(third)
    wait_until(lambda: balanced([first, second, third], 6, 2), 60, "three cooperative members")
    for m in (first, second):
        # Sticky and incremental: each keeps what it still owns, and only gives partitions up.
        assert set(m.assignment()) <= kept[m.name], m.name
        assert all(set(e["partitions"]) <= kept[m.name]
                   for e in m.snapshot()[seen[m.name]:] if e["event"] == "revoked"), m.name
    records = produce(broker, topic, sample_records(120, partitions=6, seed=8, headers=False))
    group = (first, second, third)
    wait_until(lambda: sum(len(m.records()) for m in group) >= 120, 60, "120 records read")
    time.sleep(1)
    assert sorted(r for m in group for r in m.records()) == sorted(
        (r.partition, r.offset) for r in records)


def _commit_reader(broker, group, topic, count, metadata=None):
    """Reads `count` records by subscription, commits their positions (with metadata), closes."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "session.timeout.ms": SESSION_TIMEOUT_MS, "group.protocol": "classic"})
    read = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(read) < count and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            read.append((m.partition(), m.offset()))
        positions = {}
        for p, o in read:
            positions[p] = max(positions.get(p, -1), o + 1)
        if positions:
            c.commit(offsets=[TopicPartition(topic, p, o, metadata=metadata and f"{metadata}-{p}")
                              for p, o in positions.items()], asynchronous=False)
    finally:
        c.close()
    return read, positions


def test_committed_offsets_and_metadata_survive_a_broker_crash(tmp_path_factory):
    b = conftest._make_broker(tmp_path_factory, "groups-crash", OVERRIDES)
    try:
        require_groups(b)
        topic = "durable3"
        create_topic(b, topic, 3)
        records = produce(b, topic, sample_records(300, partitions=3, seed=9, headers=False))
        first, positions = _commit_reader(b, "resumers", topic, 150, metadata="note")
        assert len(first) == 150

        b.kill9()  # the commit was acknowledged, so it was fsynced
        b.start()

        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "resumers",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest",
                      "group.protocol": "classic"})
        try:
            committed = c.committed([TopicPartition(topic, p) for p in range(3)], timeout=30)
            for tp in committed:
                assert tp.error is None, tp.error
                if tp.partition in positions:
                    assert tp.offset == positions[tp.partition], tp
                    assert tp.metadata == f"note-{tp.partition}", tp
                else:
                    assert tp.offset < 0, tp
            c.subscribe([topic])
            rest = []
            deadline = time.monotonic() + 60
            while len(rest) < 150 and time.monotonic() < deadline:
                m = c.poll(0.2)
                if m is not None and not m.error():
                    rest.append((m.partition(), m.offset()))
            extra = c.poll(1.0)
        finally:
            c.close()
        assert extra is None or extra.error(), "read past the end"
        assert sorted(first + rest) == sorted((r.partition, r.offset) for r in records), \
            "resumed exactly after the last commit: nothing skipped, nothing read twice"
    finally:
        b.stop()
        b.assert_no_panic()


def test_kafka_python_member_joins_and_commits(broker):
    require_groups(broker)
    from kafka import KafkaConsumer
    from kafka.structs import OffsetAndMetadata
    from kafka.structs import TopicPartition as KTP
    topic = "kpython"
    create_topic(broker, topic, 2)
    produce(broker, topic, sample_records(40, partitions=2, seed=3, headers=False))
    c = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id="kp-group",
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=1000,
                      consumer_timeout_ms=20000)
    try:
        got = []
        for m in c:
            got.append(m)
            if len(got) == 40:
                break
        assert len(got) == 40
        assert sorted(c.assignment()) == [KTP(topic, 0), KTP(topic, 1)]
        c.commit({KTP(topic, 0): OffsetAndMetadata(7, "kp-meta", -1)})
        assert c.committed(KTP(topic, 0)) == 7
    finally:
        c.close()


def test_aiokafka_member_joins_and_commits(broker):
    require_groups(broker)
    aiokafka = pytest.importorskip("aiokafka")
    topic = "aio"
    create_topic(broker, topic, 2)
    produce(broker, topic, sample_records(30, partitions=2, seed=4, headers=False))

    async def run():
        c = aiokafka.AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap,
                                      group_id="aio-group", auto_offset_reset="earliest",
                                      enable_auto_commit=False,
                                      session_timeout_ms=SESSION_TIMEOUT_MS,
                                      heartbeat_interval_ms=1000)
        await c.start()
        try:
            got = []
            async with asyncio.timeout(30):
                while len(got) < 30:
                    batch = await c.getmany(timeout_ms=1000)
                    for msgs in batch.values():
                        got.extend(msgs)
            await c.commit()
            tps = sorted(c.assignment())
            committed = {tp.partition: await c.committed(tp) for tp in tps}
            return got, committed
        finally:
            await c.stop()

    got, committed = asyncio.run(run())
    assert len(got) == 30
    last = {}
    for m in got:
        last[m.partition] = max(last.get(m.partition, -1), m.offset)
    assert committed == {p: o + 1 for p, o in last.items()}


# --- bad input, by hand-built frames --------------------------------------------------------

def _carr(items):
    return wire.uvarint(len(items) + 1) + b"".join(items)


class _R(wire.Reader):
    def uvarint(self):
        shift = out = 0
        while True:
            b = self.take(1)[0]
            out |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return out

    def cstring(self):
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


def _flexible(conn, api_key, version, body):
    r = _R(conn.request(api_key, version, body, flexible_header=True))
    r.tags()
    return r


SUBSCRIPTION = b"\x00\x01\x00\x00\x00\x01\x00\x05topic\x00\x00\x00\x00"


def join_v6(conn, group, member=""):
    cs = wire.compact_string
    body = (cs(group) + (10000).to_bytes(4, "big") + (30000).to_bytes(4, "big") + cs(member)
            + cs(None) + cs("consumer")
            + _carr([cs("range") + wire.uvarint(len(SUBSCRIPTION) + 1) + SUBSCRIPTION + b"\0"])
            + b"\0")
    r = _flexible(conn, API_JOIN_GROUP, 6, body)
    r.i32()
    error, generation = r.i16(), r.i32()
    r.cstring(), r.cstring()
    return error, generation, r.cstring()


def heartbeat_v4(conn, group, generation, member):
    cs = wire.compact_string
    r = _flexible(conn, API_HEARTBEAT, 4,
                  cs(group) + generation.to_bytes(4, "big", signed=True) + cs(member) + cs(None)
                  + b"\0")
    r.i32()
    return r.i16()


def commit_v8(conn, group, generation, member, topic, partition=0, offset=1):
    cs = wire.compact_string
    p = partition.to_bytes(4, "big") + offset.to_bytes(8, "big") + (-1).to_bytes(4, "big",
                                                                                signed=True)
    p += cs("") + b"\0"
    body = (cs(group) + generation.to_bytes(4, "big", signed=True) + cs(member) + cs(None)
            + _carr([cs(topic) + _carr([p]) + b"\0"]) + b"\0")
    r = _flexible(conn, API_OFFSET_COMMIT, 8, body)
    r.i32()
    out = []
    for _ in range(r.uvarint() - 1):
        r.cstring()
        for _ in range(r.uvarint() - 1):
            out.append((r.i32(), r.i16()))
            r.tags()
        r.tags()
    return out


def list_groups_v4(conn):
    r = _flexible(conn, API_LIST_GROUPS, 4, _carr([]) + b"\0")
    r.i32()
    assert r.i16() == 0
    names = []
    for _ in range(r.uvarint() - 1):
        names.append(r.cstring())
        r.cstring(), r.cstring()
        r.tags()
    return names


def test_bad_group_requests_get_kafkas_error_codes(broker):
    require_groups(broker)
    topic = "badgroups"
    create_topic(broker, topic, 1)
    with wire.Connection(broker.port, timeout=30) as conn:
        # KIP-394: a new dynamic member first gets MEMBER_ID_REQUIRED (79) and an id.
        error, _, member = join_v6(conn, "strict")
        assert error == 79 and member
        error, generation, joined = join_v6(conn, "strict", member)
        assert (error, joined) == (0, member) and generation >= 1
        assert heartbeat_v4(conn, "strict", generation, "nobody") == 25  # UNKNOWN_MEMBER_ID
        assert heartbeat_v4(conn, "no-such-group", 1, member) == 25
        assert heartbeat_v4(conn, "strict", generation + 7, member) == 22  # ILLEGAL_GENERATION
        assert commit_v8(conn, "strict", generation + 7, member, topic) == [(0, 22)]
        assert commit_v8(conn, "strict", generation, "nobody", topic) == [(0, 25)]
        assert commit_v8(conn, "never-joined", 3, "x", topic) == [(0, 22)]
        assert commit_v8(conn, "strict", generation, member, "no-such-topic") == [(0, 3)]
        assert join_v6(conn, "")[0] == 24  # INVALID_GROUP_ID
    # A 100 KB group id: Kafka's decoders refuse strings past 32767 bytes and close.
    with wire.Connection(broker.port, timeout=30) as conn:
        conn.send_request(API_HEARTBEAT, 4,
                          wire.compact_string("g" * 100 * 1024) + b"\0\0\0\1"
                          + wire.compact_string("m") + wire.compact_string(None) + b"\0",
                          flexible_header=True)
        assert conn.closed_by_peer(), "a 100 KB group id must close the connection"


def _rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_thousands_of_groups_are_listed_and_memory_stays_bounded(broker):
    require_groups(broker)
    topic = "manygroups"
    create_topic(broker, topic, 1)
    n = 3000
    prefix = f"many-{uuid.uuid4().hex[:6]}-"
    with wire.Connection(broker.port, timeout=60) as conn:
        commit_v8(conn, prefix + "warmup", -1, "", topic)  # the offsets topic exists now
        before = _rss_kb(broker.pid) if broker.kind == "vltava" else 0
        for i in range(n):
            assert commit_v8(conn, f"{prefix}{i}", -1, "", topic, offset=i) == [(0, 0)]
        names = [g for g in list_groups_v4(conn) if g.startswith(prefix)]
        after = _rss_kb(broker.pid) if broker.kind == "vltava" else 0
    assert len(names) == n + 1
    if broker.kind == "vltava":
        grown_mb = (after - before) / 1024
        assert grown_mb < 64, f"{n} simple groups grew the broker by {grown_mb:.0f} MB"
