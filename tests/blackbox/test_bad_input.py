"""Hostile and malformed input over a raw socket (shared/reference/kafka-bad-input.md):
the broker closes the connection or answers with Kafka's error code, and keeps serving others."""

import struct

import pytest

import kafka_wire as wire
from clients import create_topic

BROKER_OVERRIDES = {"auto.create.topics.enable": "false"}
SOCKET_REQUEST_MAX_BYTES = 104857600  # socket.request.max.bytes default
MAX_MESSAGE_BYTES = 1048588  # max.message.bytes default
TOPIC = "bad-input"


@pytest.fixture(autouse=True)
def still_serving(broker):
    """After each test a second connection still gets good ApiVersions and Metadata answers."""
    yield
    keys = wire.api_versions(broker.port)
    assert wire.API_API_VERSIONS in keys
    lo, hi = keys[wire.API_METADATA]
    if lo <= 4 <= hi:
        md = wire.metadata_v4(broker.port)
        assert [(b["host"], b["port"]) for b in md["brokers"]] == [("127.0.0.1", broker.port)]


@pytest.fixture(scope="module")
def topic(broker):
    create_topic(broker, TOPIC, 1)
    return TOPIC


def test_negative_frame_size_closes_the_connection(broker):
    with wire.Connection(broker.port) as c:
        c.send_raw(struct.pack(">i", -1) + b"\x00" * 16)
        assert c.closed_by_peer(), "connection stayed open after a negative frame size"


def test_frame_size_over_socket_request_max_bytes_closes_the_connection(broker):
    with wire.Connection(broker.port) as c:
        # Only the size: the broker must refuse without waiting for (or allocating) the body.
        c.send_raw(struct.pack(">i", SOCKET_REQUEST_MAX_BYTES + 1))
        assert c.closed_by_peer(), "connection stayed open after an oversized frame size"


def test_unknown_api_key_closes_the_connection(broker):
    with wire.Connection(broker.port) as c:
        c.send_raw(wire.frame(wire.request_header_v1(9999, 0, 1) + b"\x00" * 8))
        assert c.closed_by_peer(), "connection stayed open after an unknown api key"


def test_garbage_body_closes_the_connection(broker):
    broker.require(wire.API_METADATA, 4)
    with wire.Connection(broker.port) as c:
        # Metadata v4 claiming 2^31-1 topics, followed by a few junk bytes.
        body = struct.pack(">i", 0x7FFFFFFF) + b"\xff\x13\x37"
        c.send_raw(wire.frame(wire.request_header_v1(wire.API_METADATA, 4, 1) + body))
        assert c.closed_by_peer(), "connection stayed open after an undecodable body"


def test_api_versions_with_too_new_version_answers_v0_unsupported_version(broker):
    with wire.Connection(broker.port) as c:
        # A v3-shaped body (client software name and version, tagged fields) at version 127.
        body = wire.compact_string("blackbox") + wire.compact_string("1.0") + b"\x00"
        response = c.request(wire.API_API_VERSIONS, 127, body, flexible_header=True)
        error, keys, trailing = wire.parse_api_versions_v0(response)
        assert error == wire.UNSUPPORTED_VERSION
        assert trailing == 0, f"{trailing} bytes after a v0-format body"
        assert wire.API_API_VERSIONS in keys, f"api keys {keys}"
        lo, hi = keys[wire.API_API_VERSIONS]
        assert lo == 0 and hi >= 3, (lo, hi)
        # The connection still works: the client retries with a version it now knows.
        error, keys, _ = wire.parse_api_versions_v0(c.request(wire.API_API_VERSIONS, 0, b""))
        assert error == wire.NONE and wire.API_PRODUCE in keys


def _produce(broker, topic, batch, partition=0):
    broker.require(wire.API_PRODUCE, 8)
    with wire.Connection(broker.port, timeout=20) as c:
        response = wire.parse_produce_v8(
            c.request(wire.API_PRODUCE, 8, wire.produce_v8_request(topic, partition, batch)))
    assert list(response) == [(topic, partition)], response
    return response[(topic, partition)]


def test_hand_built_produce_v8_with_a_good_batch_is_appended(broker, topic):
    # Guards the encoder the other produce tests rely on: a correct batch must succeed.
    batch = wire.record_batch([(b"k0", b"v0"), (None, b"v1"), (b"k2", None)])
    first = _produce(broker, topic, batch)
    assert first["error_code"] == wire.NONE, first
    second = _produce(broker, topic, batch)
    assert second["error_code"] == wire.NONE, second
    assert second["base_offset"] == first["base_offset"] + 3


def test_produce_batch_with_wrong_crc_is_corrupt_message(broker, topic):
    batch = wire.record_batch([(b"k", b"v" * 100)], corrupt_crc=True)
    result = _produce(broker, topic, batch)
    assert result["error_code"] == wire.CORRUPT_MESSAGE, result


def test_produce_batch_over_max_message_bytes_is_message_too_large(broker, topic):
    batch = wire.record_batch([(b"big", b"\x00" * (MAX_MESSAGE_BYTES + 1000))])
    assert len(batch) > MAX_MESSAGE_BYTES
    result = _produce(broker, topic, batch)
    assert result["error_code"] == wire.MESSAGE_TOO_LARGE, result


def test_produce_to_unknown_topic_without_auto_create_is_unknown_topic(broker):
    batch = wire.record_batch([(b"k", b"v")])
    result = _produce(broker, "no-such-topic", batch)
    assert result["error_code"] == wire.UNKNOWN_TOPIC_OR_PARTITION, result
    md = wire.metadata_v4(broker.port, topics=["no-such-topic"])
    assert md["topics"][0]["error_code"] == wire.UNKNOWN_TOPIC_OR_PARTITION, \
        "the topic was created although auto.create.topics.enable=false"
