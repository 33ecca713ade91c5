package dev.vltava.javaclient;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedClass;
import org.junit.jupiter.params.provider.ArgumentsSource;

/** The AdminClient calls Kafka's tools are built on. */
@ParameterizedClass(name = "{0}")
@ArgumentsSource(Brokers.class)
class AdminTest {
    private static final long T = 30;
    private final Broker broker;

    AdminTest(Broker broker) {
        this.broker = broker;
    }

    private static Throwable cause(ExecutionException e) {
        return e.getCause();
    }

    @Test
    void clusterTopicsConfigsAndPartitions() throws Exception {
        String topic = Broker.unique("admin");
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        try (Admin admin = Clients.admin(broker)) {
            DescribeClusterResult cluster = admin.describeCluster();
            Collection<Node> nodes = cluster.nodes().get(T, TimeUnit.SECONDS);
            assertEquals(1, nodes.size(), "one node: " + nodes);
            Node node = nodes.iterator().next();
            assertEquals(broker.bootstrap(), node.host() + ":" + node.port());
            assertNotNull(cluster.clusterId().get(T, TimeUnit.SECONDS));
            assertEquals(node.id(), cluster.controller().get(T, TimeUnit.SECONDS).id());

            admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1)
                    .configs(Map.of("retention.ms", "3600000")))).all().get(T, TimeUnit.SECONDS);
            ExecutionException again = assertThrows(ExecutionException.class, () -> admin.createTopics(
                    List.of(new NewTopic(topic, 3, (short) 1))).all().get(T, TimeUnit.SECONDS));
            assertInstanceOf(TopicExistsException.class, cause(again));

            assertTrue(admin.listTopics().names().get(T, TimeUnit.SECONDS).contains(topic));

            TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames()
                    .get(T, TimeUnit.SECONDS).get(topic);
            assertEquals(3, d.partitions().size());
            assertFalse(d.isInternal());
            assertNotNull(d.topicId());
            for (TopicPartitionInfo p : d.partitions()) {
                assertEquals(node.id(), p.leader().id(), "leader of " + p.partition());
                assertEquals(List.of(node.id()), p.isr().stream().map(Node::id).collect(Collectors.toList()));
            }

            Config cfg = admin.describeConfigs(List.of(res)).all().get(T, TimeUnit.SECONDS).get(res);
            ConfigEntry retention = cfg.get("retention.ms");
            assertEquals("3600000", retention.value());
            assertEquals(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, retention.source());
            ConfigEntry cleanup = cfg.get("cleanup.policy");
            assertEquals("delete", cleanup.value());
            assertTrue(cleanup.isDefault(), "cleanup.policy is a default: " + cleanup);

            admin.incrementalAlterConfigs(Map.of(res, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.SET))))
                    .all().get(T, TimeUnit.SECONDS);
            Clients.waitFor("the altered retention.ms", Duration.ofSeconds(10), () -> "7200000".equals(
                    describe(admin, res).get("retention.ms").value()));
            assertEquals("compact", describe(admin, res).get("cleanup.policy").value());
            admin.incrementalAlterConfigs(Map.of(res, List.of(
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", ""), AlterConfigOp.OpType.DELETE))))
                    .all().get(T, TimeUnit.SECONDS);
            Clients.waitFor("cleanup.policy back to its default", Duration.ofSeconds(10), () -> {
                ConfigEntry e = describe(admin, res).get("cleanup.policy");
                return e.value().equals("delete") && e.isDefault();
            });

            admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all().get(T, TimeUnit.SECONDS);
            Clients.waitFor("5 partitions", Duration.ofSeconds(10), () -> describeTopic(admin, topic).partitions().size() == 5);
            ExecutionException fewer = assertThrows(ExecutionException.class, () -> admin.createPartitions(
                    Map.of(topic, NewPartitions.increaseTo(2))).all().get(T, TimeUnit.SECONDS));
            assertInstanceOf(InvalidPartitionsException.class, cause(fewer));

            admin.deleteTopics(List.of(topic)).all().get(T, TimeUnit.SECONDS);
            Clients.waitFor("the topic to be gone", Duration.ofSeconds(15), () -> {
                try {
                    return !admin.listTopics().names().get(T, TimeUnit.SECONDS).contains(topic);
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            ExecutionException gone = assertThrows(ExecutionException.class, () -> admin.describeTopics(
                    List.of(topic)).allTopicNames().get(T, TimeUnit.SECONDS));
            assertInstanceOf(UnknownTopicOrPartitionException.class, cause(gone));
        }
    }

    private static Config describe(Admin admin, ConfigResource res) {
        try {
            return admin.describeConfigs(List.of(res)).all().get(T, TimeUnit.SECONDS).get(res);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    private static TopicDescription describeTopic(Admin admin, String topic) {
        try {
            return admin.describeTopics(List.of(topic)).allTopicNames().get(T, TimeUnit.SECONDS).get(topic);
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    @Test
    void listOffsetsAndDeleteRecords() throws Exception {
        String topic = Broker.unique("admin-offsets");
        Clients.createTopic(broker, topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        long base = System.currentTimeMillis() - 60_000;
        try (KafkaProducer<String, String> p = Clients.producer(broker, Map.of())) {
            for (int i = 0; i < 10; i++) {
                // Timestamps rise by a second each, but record 7 has the largest.
                long ts = i == 7 ? base + 100_000 : base + i * 1000L;
                p.send(new ProducerRecord<>(topic, 0, ts, "k" + i, "v" + i)).get(T, TimeUnit.SECONDS);
            }
        }
        try (Admin admin = Clients.admin(broker)) {
            assertEquals(0, offset(admin, tp, OffsetSpec.earliest()).offset());
            assertEquals(10, offset(admin, tp, OffsetSpec.latest()).offset());
            ListOffsetsResultInfo at = offset(admin, tp, OffsetSpec.forTimestamp(base + 2500));
            assertEquals(3, at.offset(), "first offset with a timestamp at or after base+2.5 s");
            assertEquals(base + 3000, at.timestamp());
            ListOffsetsResultInfo max = offset(admin, tp, OffsetSpec.maxTimestamp());
            assertEquals(7, max.offset());
            assertEquals(base + 100_000, max.timestamp());
            assertEquals(-1, offset(admin, tp, OffsetSpec.forTimestamp(base + 200_000)).offset(),
                    "no record at or after a later timestamp");

            long low = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(4))).lowWatermarks()
                    .get(tp).get(T, TimeUnit.SECONDS).lowWatermark();
            assertEquals(4, low);
            assertEquals(4, offset(admin, tp, OffsetSpec.earliest()).offset());
            assertEquals(10, offset(admin, tp, OffsetSpec.latest()).offset());
        }
        assertEquals("v4", Clients.readAll(broker, topic, 1, 6, Map.of()).get(0).value());
    }

    private static ListOffsetsResultInfo offset(Admin admin, TopicPartition tp, OffsetSpec spec) throws Exception {
        return admin.listOffsets(Map.of(tp, spec)).partitionResult(tp).get(T, TimeUnit.SECONDS);
    }

    @Test
    @SuppressWarnings("deprecation")
    void consumerGroups() throws Exception {
        String topic = Broker.unique("admin-groups");
        String group = Broker.unique("admin-g");
        Clients.createTopic(broker, topic, 2);
        try (KafkaProducer<String, String> p = Clients.producer(broker, Map.of())) {
            for (int i = 0; i < 10; i++) {
                p.send(new ProducerRecord<>(topic, i % 2, "k" + i, "v" + i));
            }
            p.flush();
        }
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        try (Admin admin = Clients.admin(broker);
                KafkaConsumer<String, String> c = Clients.consumer(broker, Map.of(
                        "group.id", group, "group.protocol", "classic", "client.id", "admin-test-member"))) {
            c.subscribe(List.of(topic));
            Clients.pollUntil(c, 10, Duration.ofSeconds(30));
            c.commitSync(Map.of(p0, new OffsetAndMetadata(5), p1, new OffsetAndMetadata(3, "meta")),
                    Duration.ofSeconds(T));

            Collection<GroupListing> groups = admin.listGroups(ListGroupsOptions.forConsumerGroups())
                    .all().get(T, TimeUnit.SECONDS);
            GroupListing listing = groups.stream().filter(g -> g.groupId().equals(group)).findFirst()
                    .orElseThrow(() -> new AssertionError(group + " not in " + groups));
            assertEquals("consumer", listing.protocol());
            assertTrue(admin.listConsumerGroups().all().get(T, TimeUnit.SECONDS).stream()
                    .anyMatch(g -> g.groupId().equals(group)), "listConsumerGroups has the group");

            ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).describedGroups()
                    .get(group).get(T, TimeUnit.SECONDS);
            assertEquals(GroupState.STABLE, d.groupState());
            assertEquals(1, d.members().size());
            MemberDescription m = d.members().iterator().next();
            assertEquals("admin-test-member", m.clientId());
            assertEquals(Set.of(p0, p1), m.assignment().topicPartitions());
            assertFalse(d.isSimpleConsumerGroup());

            Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(group)
                    .partitionsToOffsetAndMetadata().get(T, TimeUnit.SECONDS);
            assertEquals(5, offsets.get(p0).offset());
            assertEquals(3, offsets.get(p1).offset());
            assertEquals("meta", offsets.get(p1).metadata());
        }
        try (Admin admin = Clients.admin(broker)) {
            // The member left when it closed: the group is empty, its offsets can be altered.
            Clients.waitFor("the group to be empty", Duration.ofSeconds(15), () -> {
                try {
                    return admin.describeConsumerGroups(List.of(group)).describedGroups().get(group)
                            .get(T, TimeUnit.SECONDS).groupState() == GroupState.EMPTY;
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            admin.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(1)))
                    .all().get(T, TimeUnit.SECONDS);
            Map<TopicPartition, OffsetAndMetadata> offsets = admin.listConsumerGroupOffsets(group)
                    .partitionsToOffsetAndMetadata().get(T, TimeUnit.SECONDS);
            assertEquals(1, offsets.get(p0).offset());
            assertEquals(3, offsets.get(p1).offset());

            admin.deleteConsumerGroups(List.of(group)).all().get(T, TimeUnit.SECONDS);
            assertFalse(admin.listGroups(ListGroupsOptions.forConsumerGroups()).all().get(T, TimeUnit.SECONDS)
                    .stream().anyMatch(g -> g.groupId().equals(group)), "the deleted group is not listed");
            admin.deleteTopics(List.of(topic)).all().get(T, TimeUnit.SECONDS);
        }
    }
}
