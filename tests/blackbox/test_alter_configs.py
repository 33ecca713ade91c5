"""IncrementalAlterConfigs through confluent-kafka's AdminClient: a topic config set, seen by
DescribeConfigs as a dynamic topic config, deleted back to its default; bad keys refused."""

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ResourceType)

from clients import admin, create_topic

API_INCREMENTAL_ALTER_CONFIGS = 44


def _alter(broker, topic, entries):
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
    client = admin(broker)  # keep the handle alive until the future completes
    return client.incremental_alter_configs([resource])[resource].result(timeout=30)


def _describe(broker, topic):
    resource = ConfigResource(ResourceType.TOPIC, topic)
    client = admin(broker)
    return client.describe_configs([resource])[resource].result(timeout=30)


def test_a_topic_config_set_and_deleted_round_trips(broker):
    broker.require(API_INCREMENTAL_ALTER_CONFIGS, 0, "IncrementalAlterConfigs")
    create_topic(broker, "retained", 1)
    default = _describe(broker, "retained")["retention.ms"]
    assert default.is_default
    _alter(broker, "retained", [ConfigEntry("retention.ms", "3600000",
                                            incremental_operation=AlterConfigOpType.SET)])
    changed = _describe(broker, "retained")["retention.ms"]
    assert changed.value == "3600000"
    assert not changed.is_default
    _alter(broker, "retained", [ConfigEntry("retention.ms", None,
                                            incremental_operation=AlterConfigOpType.DELETE)])
    restored = _describe(broker, "retained")["retention.ms"]
    assert restored.value == default.value
    assert restored.is_default


def test_an_unknown_config_key_is_refused(broker):
    broker.require(API_INCREMENTAL_ALTER_CONFIGS, 0, "IncrementalAlterConfigs")
    create_topic(broker, "strict", 1)
    with pytest.raises(KafkaException) as refused:
        _alter(broker, "strict", [ConfigEntry("no.such.config", "1",
                                              incremental_operation=AlterConfigOpType.SET)])
    assert refused.value.args[0].name() == "INVALID_CONFIG"


def test_altering_an_unknown_topic_is_refused(broker):
    broker.require(API_INCREMENTAL_ALTER_CONFIGS, 0, "IncrementalAlterConfigs")
    with pytest.raises(KafkaException) as refused:
        _alter(broker, "never-created", [ConfigEntry("retention.ms", "1",
                                                     incremental_operation=AlterConfigOpType.SET)])
    assert refused.value.args[0].name() == "UNKNOWN_TOPIC_OR_PART"
