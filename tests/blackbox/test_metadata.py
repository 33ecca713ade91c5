"""Metadata: one broker at the address it listens on, and a cluster id."""

import kafka_wire as wire
from clients import admin


def test_metadata_lists_the_one_broker_at_its_listener_address(broker):
    md = admin(broker).list_topics(timeout=15)
    assert len(md.brokers) == 1, md.brokers
    (b,) = md.brokers.values()
    assert (b.host, b.port) == ("127.0.0.1", broker.port)
    assert md.cluster_id, "Metadata carries no cluster id"


def test_raw_metadata_v4_names_broker_cluster_and_controller(broker):
    broker.require(wire.API_METADATA, 4)
    md = wire.metadata_v4(broker.port)
    assert [(b["host"], b["port"]) for b in md["brokers"]] == [("127.0.0.1", broker.port)]
    assert md["cluster_id"], "no cluster id"
    node_ids = {b["node_id"] for b in md["brokers"]}
    assert md["controller_id"] in node_ids or md["controller_id"] == -1


def test_api_versions_v0_lists_itself_and_metadata(broker):
    with wire.Connection(broker.port) as c:
        error, keys, trailing = wire.parse_api_versions_v0(
            c.request(wire.API_API_VERSIONS, 0, b""))
    assert error == wire.NONE
    assert trailing == 0, "ApiVersions v0 response has trailing bytes"
    assert keys[wire.API_API_VERSIONS][0] == 0 and keys[wire.API_API_VERSIONS][1] >= 3
    assert wire.API_METADATA in keys


def test_producing_to_a_new_topic_creates_it_when_auto_create_is_on(broker):
    """auto.create.topics.enable defaults to true, with num.partitions (1) partitions."""
    import time

    from clients import Rec, produce, wait_for_topic
    broker.require(wire.API_PRODUCE)
    records = [Rec(b"k", b"first", [], int(time.time() * 1000))]
    produce(broker, "made-on-demand", records, extra={"message.timeout.ms": 30000})
    assert records[0].offset == 0
    md = wait_for_topic(broker, "made-on-demand", 1)
    assert len(md.topics["made-on-demand"].partitions) == 1
