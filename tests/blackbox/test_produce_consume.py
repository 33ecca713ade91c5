"""Produce with every compression codec (confluent-kafka); read back byte-exact with
confluent-kafka, kafka-python and kcat: offsets, keys, values, headers, timestamps."""

import pytest

import kafka_wire as wire
from clients import (assert_same, by_partition, create_topic, produce, read_confluent,
                     read_kafka_python, read_kcat, sample_records)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 2
COUNT = 300


@pytest.fixture(scope="module")
def produced(broker):
    broker.require(wire.API_PRODUCE)
    broker.require(wire.API_FETCH)
    broker.require(wire.API_LIST_OFFSETS)
    out = {}
    for i, codec in enumerate(CODECS):
        topic = f"codec-{codec}"
        create_topic(broker, topic, PARTITIONS)
        records = sample_records(COUNT, partitions=PARTITIONS, seed=i)
        produce(broker, topic, records, compression=codec)
        out[codec] = (topic, by_partition(records))
    return out


def _check_dense(parts):
    for p, rs in parts.items():
        assert [r.offset for r in rs] == list(range(len(rs))), f"partition {p} offsets not dense"


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_kafka_reads_back_what_it_produced(broker, produced, codec):
    topic, parts = produced[codec]
    _check_dense(parts)
    for p, expected in parts.items():
        got = read_confluent(broker, topic, p, len(expected))
        assert_same(expected, got, "confluent-kafka")


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_reads_back_what_confluent_kafka_produced(broker, produced, codec):
    topic, parts = produced[codec]
    for p, expected in parts.items():
        got = read_kafka_python(broker, topic, p, len(expected))
        assert_same(expected, got, "kafka-python")


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_reads_back_what_confluent_kafka_produced(broker, produced, codec):
    topic, parts = produced[codec]
    for p, expected in parts.items():
        got = read_kcat(broker, topic, p)
        assert_same(expected, got, "kcat")
