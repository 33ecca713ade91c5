"""Topic configs that change what a produce means: LogAppendTime, a per-topic
max.message.bytes, and compaction (keys required)."""

import time

import kafka_wire as wire
from clients import create_topic, read_confluent


def _produce(broker, topic, batch):
    broker.require(wire.API_PRODUCE, 8)
    with wire.Connection(broker.port, timeout=20) as c:
        response = wire.parse_produce_v8(
            c.request(wire.API_PRODUCE, 8, wire.produce_v8_request(topic, 0, batch)))
    return response[(topic, 0)]


def test_log_append_time_topic_stamps_records_with_the_brokers_clock(broker):
    create_topic(broker, "stamped", 1, config={"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    result = _produce(broker, "stamped", wire.record_batch([(b"k", b"v")], base_timestamp=1000))
    after = int(time.time() * 1000)
    assert result["error_code"] == wire.NONE, result
    assert before - 1000 <= result["log_append_time_ms"] <= after + 1000, result
    (got,) = read_confluent(broker, "stamped", 0, 1)
    assert got[4] == (2, result["log_append_time_ms"]), "not LogAppendTime as the ack said"


def test_topic_max_message_bytes_override_is_enforced(broker):
    create_topic(broker, "small-messages", 1, config={"max.message.bytes": "1000"})
    small = _produce(broker, "small-messages", wire.record_batch([(b"k", b"v" * 500)]))
    assert small["error_code"] == wire.NONE, small
    big = _produce(broker, "small-messages", wire.record_batch([(b"k", b"v" * 2000)]))
    assert big["error_code"] == wire.MESSAGE_TOO_LARGE, big


def test_compacted_topic_rejects_a_record_without_a_key(broker):
    create_topic(broker, "compacted", 1, config={"cleanup.policy": "compact"})
    keyed = _produce(broker, "compacted", wire.record_batch([(b"k", b"v")]))
    assert keyed["error_code"] == wire.NONE, keyed
    keyless = _produce(broker, "compacted", wire.record_batch([(b"k", b"v"), (None, b"v")]))
    assert keyless["error_code"] == wire.INVALID_RECORD, keyless
    assert [index for index, _ in keyless["record_errors"]] == [1], keyless
