"""Kafka's own command-line tools (4.4, the classes behind bin/kafka-*.sh), run as an operator would
with `java -cp 'target/peers/kafka/libs/*' <main class>`, asserting on what they print.

One JVM per tool run (1-3 s each): the tests keep the count near twenty and check what they can
with the Python clients instead.
"""

import os
import re
import shutil
import subprocess
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from clients import Rec, admin, create_topic, produce, read_confluent, wait_for_topic
from conftest import ROOT

LIBS = ROOT / "target" / "peers" / "kafka" / "libs"
API_INIT_PRODUCER_ID = 22

TOPICS = "org.apache.kafka.tools.TopicCommand"
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
CONFIGS = "org.apache.kafka.tools.ConfigCommand"
GET_OFFSETS = "org.apache.kafka.tools.GetOffsetShell"
PRODUCER_PERF = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERF = "org.apache.kafka.tools.ConsumerPerformance"
TRANSACTIONS = "org.apache.kafka.tools.TransactionsCommand"

QUIET_LOG4J = """status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = err
"""


@pytest.fixture(scope="module")
def tool(tmp_path_factory, broker):
    """tool(main_class, *args, stdin=None, ok=True) -> CompletedProcess, run against `broker`."""
    if not (LIBS / "kafka-tools-4.4.0.jar").exists():
        pytest.fail(f"no Kafka jars in {LIBS}: run scripts/reference-kafka install "
                    "(scripts/blackbox does)")
    binary = os.environ.get("JAVA") or shutil.which("java")
    assert binary, "no java on PATH"
    conf = tmp_path_factory.mktemp("tools") / "log4j2.properties"
    conf.write_text(QUIET_LOG4J)
    java = [binary, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m",
            f"-Dlog4j2.configurationFile={conf}", "-cp", f"{LIBS}/*"]

    def run(main, *args, stdin=None, ok=True, timeout=90):
        out = subprocess.run(java + [main, *args], input=stdin, capture_output=True, text=True,
                             timeout=timeout)
        if ok:
            assert out.returncode == 0, (
                f"{main} {' '.join(args)} exited {out.returncode}\n"
                f"stdout:\n{out.stdout[-3000:]}\nstderr:\n{out.stderr[-3000:]}")
        return out

    return run


def _bs(broker):
    return ["--bootstrap-server", broker.bootstrap]


def _topics(broker):
    return set(admin(broker).list_topics(timeout=10).topics)


def _wait(predicate, what, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_kafka_topics_create_list_describe_alter_delete(broker, tool):
    topic = "tools-topics"
    out = tool(TOPICS, *_bs(broker), "--create", "--topic", topic, "--partitions", "2",
               "--replication-factor", "1", "--config", "retention.ms=3600000")
    assert out.stdout.strip() == f"Created topic {topic}."
    again = tool(TOPICS, *_bs(broker), "--create", "--topic", topic, "--partitions", "2",
                 ok=False)
    assert again.returncode != 0
    assert f"Topic '{topic}' already exists." in again.stdout + again.stderr

    out = tool(TOPICS, *_bs(broker), "--list")
    assert topic in out.stdout.split()

    out = tool(TOPICS, *_bs(broker), "--describe", "--topic", topic)
    lines = out.stdout.strip().splitlines()
    head = lines[0].split("\t")
    assert head[0] == f"Topic: {topic}", out.stdout
    assert re.fullmatch(r"TopicId: [A-Za-z0-9_-]{22}", head[1]), head
    assert head[2:4] == ["PartitionCount: 2", "ReplicationFactor: 1"], head
    assert "retention.ms=3600000" in head[4].removeprefix("Configs: ").split(","), head
    parts = [ln.strip().split("\t") for ln in lines[1:]]
    assert [p[:5] for p in parts] == [
        [f"Topic: {topic}", f"Partition: {i}", "Leader: 1", "Replicas: 1", "Isr: 1"]
        for i in range(2)], out.stdout

    out = tool(TOPICS, *_bs(broker), "--alter", "--topic", topic, "--partitions", "3")
    wait_for_topic(broker, topic, 3)
    fewer = tool(TOPICS, *_bs(broker), "--alter", "--topic", topic, "--partitions", "1", ok=False)
    assert fewer.returncode != 0
    assert "The topic tools-topics currently has 3 partition(s); 1 would not be an increase." \
        in fewer.stdout + fewer.stderr

    tool(TOPICS, *_bs(broker), "--delete", "--topic", topic)
    _wait(lambda: topic not in _topics(broker), f"{topic} to be deleted")


def test_console_producer_and_consumer_keys_headers_from_beginning_and_groups(broker, tool):
    topic = "tools-console"
    create_topic(broker, topic, 1)
    lines = "h1:v1,h2:v2\tk1\tfirst\nh3:v3\tk2\tsecond\nh4:\tk3\tthird\n"
    # The console producer's default producer is idempotent (kafka-clients 4); the default is
    # tested below, this one is a plain producer.
    tool(CONSOLE_PRODUCER, *_bs(broker), "--topic", topic,
         "--reader-property", "parse.key=true", "--reader-property", "parse.headers=true",
         "--command-property", "enable.idempotence=false", "--command-property", "acks=all",
         stdin=lines)
    got = read_confluent(broker, topic, 0, 3)
    assert [(o, k, v, h) for o, k, v, h, _ in got] == [
        (0, b"k1", b"first", [("h1", b"v1"), ("h2", b"v2")]),
        (1, b"k2", b"second", [("h3", b"v3")]),
        (2, b"k3", b"third", [("h4", b"")]),
    ]

    fmt = ["--formatter-property", "print.key=true", "--formatter-property", "print.headers=true",
           "--formatter-property", "print.offset=true"]
    out = tool(CONSOLE_CONSUMER, *_bs(broker), "--topic", topic, "--from-beginning",
               "--group", "tools-console-group", "--max-messages", "3", "--timeout-ms", "30000",
               *fmt)
    assert out.stdout.splitlines() == [
        "Offset:0\th1:v1,h2:v2\tk1\tfirst",
        "Offset:1\th3:v3\tk2\tsecond",
        "Offset:2\th4:\tk3\tthird",
    ], out.stdout
    assert "Processed a total of 3 messages" in out.stderr

    # The group committed where it stopped: the next run of the same group starts after it.
    produce(broker, topic, [Rec(b"k4", b"fourth")])
    out = tool(CONSOLE_CONSUMER, *_bs(broker), "--topic", topic, "--group", "tools-console-group",
               "--max-messages", "1", "--timeout-ms", "30000", *fmt)
    assert out.stdout.splitlines() == ["Offset:3\tNO_HEADERS\tk4\tfourth"], out.stdout


def test_console_producer_with_its_defaults(broker, tool):
    """kafka-console-producer as typed, with no properties: an idempotent producer."""
    broker.require(API_INIT_PRODUCER_ID, what="InitProducerId (idempotent producer)")
    topic = "tools-console-default"
    create_topic(broker, topic, 1)
    tool(CONSOLE_PRODUCER, *_bs(broker), "--topic", topic, stdin="one\ntwo\n")
    assert [v for _, _, v, _, _ in read_confluent(broker, topic, 0, 2)] == [b"one", b"two"]


def test_kafka_consumer_groups_list_describe_reset_delete(broker, tool):
    topic, group = "tools-groups", "tools-group"
    create_topic(broker, topic, 2)
    produce(broker, topic, [Rec(f"k{i}".encode(), f"v{i}".encode(), partition=i % 2)
                            for i in range(10)])
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 2), TopicPartition(topic, 1, 5)],
                 asynchronous=False)
    finally:
        c.close()

    out = tool(GROUPS, *_bs(broker), "--list")
    assert group in out.stdout.split()

    out = tool(GROUPS, *_bs(broker), "--describe", "--group", group)
    rows = [ln.split() for ln in out.stdout.strip().splitlines()]
    assert rows[0][:6] == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET",
                           "LAG"], out.stdout
    assert sorted(r[:6] for r in rows[1:]) == [
        [group, topic, "0", "2", "5", "3"],
        [group, topic, "1", "5", "5", "0"],
    ], out.stdout
    assert f"Consumer group '{group}' has no active members." in out.stderr

    out = tool(GROUPS, *_bs(broker), "--describe", "--group", group, "--state")
    rows = [ln.split() for ln in out.stdout.strip().splitlines()]
    assert rows[1][0] == group and rows[1][-2:] == ["Empty", "0"], out.stdout

    out = tool(GROUPS, *_bs(broker), "--reset-offsets", "--to-earliest", "--execute",
               "--group", group, "--topic", topic)
    rows = [ln.split() for ln in out.stdout.strip().splitlines()]
    assert rows[0] == ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], out.stdout
    assert sorted(rows[1:]) == [[group, topic, "0", "0"], [group, topic, "1", "0"]]
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        committed = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
        assert [tp.offset for tp in committed] == [0, 0]
    finally:
        c.close()

    out = tool(GROUPS, *_bs(broker), "--delete", "--group", group)
    assert f"Deletion of requested consumer groups ('{group}') was successful." in out.stdout
    groups = admin(broker).list_consumer_groups().result(timeout=10)
    assert group not in {g.group_id for g in groups.valid}


def test_kafka_configs_describe_and_alter_retention(broker, tool):
    topic = "tools-configs"
    create_topic(broker, topic, 1, config={"retention.ms": "3600000"})
    entity = ["--entity-type", "topics", "--entity-name", topic]
    out = tool(CONFIGS, *_bs(broker), "--describe", *entity)
    lines = out.stdout.strip().splitlines()
    assert lines[0] == f"Dynamic configs for topic {topic} are:", out.stdout
    # Kafka's list of the broker synonyms after the topic's own value differs per key (see
    # tests/differential for DescribeConfigs itself); the tool's line starts the same.
    assert [ln.split(" ")[2] for ln in lines[1:]] == ["retention.ms=3600000"], out.stdout
    assert lines[1].startswith("  retention.ms=3600000 sensitive=false "
                               "synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=3600000"), out.stdout

    out = tool(CONFIGS, *_bs(broker), "--alter", *entity,
               "--add-config", "retention.ms=86400000,segment.bytes=1048576")
    assert out.stdout.strip() == f"Completed updating config for topic {topic}."
    out = tool(CONFIGS, *_bs(broker), "--describe", *entity, "--all")
    lines = out.stdout.strip().splitlines()
    assert lines[0] == f"All configs for topic {topic} are:"
    assert "  retention.ms=86400000 sensitive=false " \
           "synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=86400000" in out.stdout
    assert any(ln.startswith("  segment.bytes=1048576 sensitive=false synonyms="
                             "{DYNAMIC_TOPIC_CONFIG:segment.bytes=1048576, "
                             "DEFAULT_CONFIG:log.segment.bytes=") for ln in lines), out.stdout
    assert "  cleanup.policy=delete sensitive=false synonyms={DEFAULT_CONFIG:log.cleanup.policy" \
           "=delete}" in lines


def test_kafka_get_offsets_latest_earliest_and_by_time(broker, tool):
    topic = "tools-offsets"
    create_topic(broker, topic, 2)
    base = int(time.time() * 1000) - 60_000
    produce(broker, topic, [Rec(None, f"v{i}".encode(), partition=0, timestamp=base + i * 1000)
                            for i in range(4)]
            + [Rec(None, b"x", partition=1, timestamp=base)])
    out = tool(GET_OFFSETS, *_bs(broker), "--topic", topic)
    assert sorted(out.stdout.split()) == [f"{topic}:0:4", f"{topic}:1:1"], out.stdout
    out = tool(GET_OFFSETS, *_bs(broker), "--topic-partitions", f"{topic}:0",
               "--time", str(base + 1500))
    assert out.stdout.split() == [f"{topic}:0:2"], out.stdout
    out = tool(GET_OFFSETS, *_bs(broker), "--topic", topic, "--time", "-2")
    assert sorted(out.stdout.split()) == [f"{topic}:0:0", f"{topic}:1:0"], out.stdout


def test_producer_and_consumer_perf_test(broker, tool):
    topic, n = "tools-perf", 2000
    create_topic(broker, topic, 1)
    out = tool(PRODUCER_PERF, "--topic", topic, "--num-records", str(n), "--record-size", "100",
               "--throughput", "-1", "--command-property", f"bootstrap.servers={broker.bootstrap}",
               "acks=all", "enable.idempotence=false")
    last = out.stdout.strip().splitlines()[-1]
    assert re.match(rf"{n} records sent, [0-9.]+ records/sec", last), out.stdout
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "tools-unused"})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, n)
    finally:
        c.close()

    out = tool(CONSUMER_PERF, *_bs(broker), "--topic", topic, "--num-records", str(n),
               "--timeout", "30000")
    header, row = out.stdout.strip().splitlines()[-2:]
    cols = dict(zip([h.strip() for h in header.split(",")], [v.strip() for v in row.split(",")]))
    assert cols["data.consumed.in.nMsg"] == str(n), out.stdout
    assert float(cols["data.consumed.in.MB"]) == pytest.approx(n * 100 / 1024 / 1024, abs=0.001)


def test_kafka_transactions_list_and_describe(broker, tool):
    """kafka-transactions list/describe while a transaction is open."""
    from confluent_kafka import Producer
    broker.require(API_INIT_PRODUCER_ID, what="InitProducerId (transactions)")
    broker.require(65, what="DescribeTransactions")
    broker.require(66, what="ListTransactions")
    topic, txid = "tools-txn", "tools-txn-id"
    create_topic(broker, topic, 1)
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": txid,
                  "transaction.timeout.ms": 60000})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(topic, b"open", partition=0)
    assert p.flush(30) == 0
    try:
        out = tool(TRANSACTIONS, *_bs(broker), "list")
        rows = {r[0]: r for r in (ln.split() for ln in out.stdout.strip().splitlines()[1:])}
        assert txid in rows, out.stdout
        assert rows[txid][1:2] == ["1"] and rows[txid][3] == "Ongoing", out.stdout

        out = tool(TRANSACTIONS, *_bs(broker), "describe", "--transactional-id", txid)
        header, row = out.stdout.strip().splitlines()
        cols = dict(zip(header.split("\t"), (v.strip() for v in row.split("\t"))))
        assert cols["TransactionalId"] == txid, out.stdout
        assert cols["TransactionState"] == "Ongoing", out.stdout
        assert cols["TransactionTimeoutMs"] == "60000", out.stdout
        assert cols["TopicPartitions"] == f"{topic}-0", out.stdout
    finally:
        p.commit_transaction(30)
