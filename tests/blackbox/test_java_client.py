"""The Java client (Apache Kafka 4.4's own kafka-clients, through its VerifiableProducer and
ConsoleConsumer tools; jars from scripts/reference-kafka install)."""

import json
import os
import shutil
import subprocess
import time

import pytest

import kafka_wire as wire
from clients import Rec, create_topic, produce, read_confluent
from conftest import ROOT

LIBS = ROOT / "target" / "peers" / "kafka" / "libs"
API_INIT_PRODUCER_ID = 22

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
def java(tmp_path_factory):
    """A `java -cp libs/*` command line; the jars are a test dependency, so missing ones fail."""
    if not (LIBS / "kafka-clients-4.4.0.jar").exists():
        pytest.fail(f"no Kafka jars in {LIBS}: run scripts/reference-kafka install "
                    "(scripts/blackbox does)")
    binary = os.environ.get("JAVA") or shutil.which("java")
    assert binary, "no java on PATH"
    conf = tmp_path_factory.mktemp("java") / "log4j2.properties"
    conf.write_text(QUIET_LOG4J)
    return [binary, "-XX:TieredStopAtLevel=1", "-Xmx256m", f"-Dlog4j2.configurationFile={conf}",
            "-cp", f"{LIBS}/*"]


def _run(cmd, timeout=120):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return out


@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotent"])
def test_java_producer_acknowledged_records_are_where_it_was_told(broker, java, tmp_path,
                                                                  idempotent):
    broker.require(wire.API_PRODUCE)
    if idempotent:
        broker.require(API_INIT_PRODUCER_ID, what="InitProducerId")
    topic = f"java-{'idem' if idempotent else 'plain'}"
    create_topic(broker, topic, 3)
    props = tmp_path / "producer.properties"
    # VerifiableProducer sets retries=0, which the idempotent producer refuses.
    props.write_text(f"enable.idempotence={str(idempotent).lower()}\n"
                     f"retries={1000 if idempotent else 0}\n"
                     "compression.type=zstd\nlinger.ms=5\n")
    count = 3000
    out = _run(java + ["org.apache.kafka.tools.VerifiableProducer", "--bootstrap-server",
                       broker.bootstrap, "--topic", topic, "--max-messages", str(count),
                       "--acks", "-1", "--producer.config", str(props)])
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    acked = [e for e in events if e["name"] == "producer_send_success"]
    failed = [e for e in events if e["name"] == "producer_send_error"]
    assert out.returncode == 0, out.stderr[-2000:]
    assert not failed, failed[:3]
    assert len(acked) == count, f"{len(acked)} acked of {count}; stderr: {out.stderr[-1000:]}"
    by_partition = {}
    for e in acked:
        by_partition.setdefault(e["partition"], {})[e["offset"]] = e["value"].encode()
    for p, offsets in by_partition.items():
        assert sorted(offsets) == list(range(len(offsets))), f"partition {p} not dense"
        got = read_confluent(broker, topic, p, len(offsets))
        assert {g[0]: g[2] for g in got} == offsets, f"partition {p} differs from the acks"


def test_java_console_consumer_reads_what_confluent_kafka_produced(broker, java):
    broker.require(wire.API_FETCH)
    topic = "java-consumed"
    create_topic(broker, topic, 1)
    t0 = int(time.time() * 1000) - 5000
    records = [Rec(f"key-{i}".encode(), f"value {i} ✓".encode(), [], t0 + i) for i in range(50)]
    produce(broker, topic, records, compression="snappy")
    out = _run(java + ["org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server",
                       broker.bootstrap, "--topic", topic, "--partition", "0", "--offset",
                       "earliest", "--max-messages", str(len(records)), "--timeout-ms", "30000",
                       "--formatter-property", "print.timestamp=true",
                       "--formatter-property", "print.offset=true",
                       "--formatter-property", "print.key=true"])
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert len(lines) == len(records), f"{len(lines)} lines: {out.stderr[-1000:]}"
    for r, line in zip(records, lines):
        ts, offset, key, value = line.split("\t")
        assert (ts, offset, key, value) == (f"CreateTime:{r.timestamp}", f"Offset:{r.offset}",
                                            r.key.decode(), r.value.decode())
