package dev.vltava.javaclient;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.params.ParameterizedClass;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ArgumentsSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Consumer groups with both protocols: two members share the partitions, each consumes its own,
 * commits; after both leave, a new member resumes from the commits.
 */
@ParameterizedClass(name = "{0}")
@ArgumentsSource(Brokers.class)
class GroupTest {
    private static final int PARTITIONS = 4;
    private final Broker broker;

    GroupTest(Broker broker) {
        this.broker = broker;
    }

    private Map<String, String> groupProps(String protocol, String group) {
        Map<String, String> m = new HashMap<>();
        m.put("group.id", group);
        m.put("group.protocol", protocol);
        if (protocol.equals("classic")) {
            m.put("session.timeout.ms", "10000");
            m.put("heartbeat.interval.ms", "500");
        }
        return m;
    }

    private void produce(String topic, int from, int to) throws Exception {
        try (KafkaProducer<String, String> p = Clients.producer(broker, Map.of("linger.ms", "5"))) {
            for (int i = from; i < to; i++) {
                p.send(new ProducerRecord<>(topic, i % PARTITIONS, "k" + i, "v" + i));
            }
            p.flush();
        }
    }

    private static boolean settled(KafkaConsumer<String, String> a, KafkaConsumer<String, String> b) {
        Set<TopicPartition> as = a.assignment();
        Set<TopicPartition> bs = b.assignment();
        Set<TopicPartition> all = new HashSet<>(as);
        all.addAll(bs);
        if (as.isEmpty() || bs.isEmpty() || all.size() != PARTITIONS || as.size() + bs.size() != PARTITIONS) {
            return false;
        }
        for (KafkaConsumer<String, String> c : List.of(a, b)) {
            for (TopicPartition tp : c.assignment()) {
                if (c.position(tp, Duration.ofSeconds(5)) != 25) {
                    return false;
                }
            }
        }
        return true;
    }

    @ParameterizedTest(name = "group.protocol={0}")
    @ValueSource(strings = {"classic", "consumer"})
    void twoMembersShareCommitAndResume(String protocol) throws Exception {
        if (protocol.equals("consumer")) {
            broker.require(Broker.CONSUMER_GROUP_HEARTBEAT, "the consumer group protocol of KIP-848: ConsumerGroupHeartbeat");
        }
        String topic = Broker.unique("group-" + protocol);
        String group = Broker.unique("g-" + protocol);
        Clients.createTopic(broker, topic, PARTITIONS);
        produce(topic, 0, 100);

        try (KafkaConsumer<String, String> a = Clients.consumer(broker, groupProps(protocol, group));
                KafkaConsumer<String, String> b = Clients.consumer(broker, groupProps(protocol, group))) {
            a.subscribe(List.of(topic));
            b.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = new ArrayList<>();
            long deadline = System.nanoTime() + Duration.ofSeconds(45).toNanos();
            // Poll both until the two assignments are disjoint, non-empty, cover every partition,
            // and each member has read its own partitions to the end (25 records each).
            while (System.nanoTime() < deadline) {
                a.poll(Duration.ofMillis(100)).forEach(got::add);
                b.poll(Duration.ofMillis(100)).forEach(got::add);
                if (settled(a, b)) {
                    break;
                }
            }
            assertEquals(PARTITIONS, a.assignment().size() + b.assignment().size(),
                    "assignments " + a.assignment() + " and " + b.assignment());
            assertTrue(!a.assignment().isEmpty() && !b.assignment().isEmpty(),
                    "both members own partitions: " + a.assignment() + " / " + b.assignment());
            assertTrue(settled(a, b), "each member read its partitions to the end");
            // A rebalance may hand a partition over before a commit: records may repeat, none may be lost.
            Set<String> values = new HashSet<>();
            got.forEach(r -> values.add(r.value()));
            assertEquals(100, values.size(), "distinct records consumed");
            a.commitSync(Duration.ofSeconds(15));
            b.commitSync(Duration.ofSeconds(15));
            Map<TopicPartition, OffsetAndMetadata> committed = new HashMap<>();
            committed.putAll(a.committed(a.assignment(), Duration.ofSeconds(15)));
            committed.putAll(b.committed(b.assignment(), Duration.ofSeconds(15)));
            assertEquals(PARTITIONS, committed.size());
            committed.forEach((tp, om) -> assertEquals(25, om.offset(), "committed offset of " + tp));
        }

        produce(topic, 100, 140);
        try (KafkaConsumer<String, String> c = Clients.consumer(broker, groupProps(protocol, group))) {
            c.subscribe(List.of(topic));
            List<ConsumerRecord<String, String>> got = Clients.pollUntil(c, 40, Duration.ofSeconds(45));
            Set<String> values = new HashSet<>();
            got.forEach(r -> values.add(r.value()));
            for (int i = 100; i < 140; i++) {
                assertTrue(values.contains("v" + i), "resumed member got v" + i);
            }
            assertEquals(40, got.size(), "the resumed member reads only what came after the commits");
            for (ConsumerRecord<String, String> r : got) {
                assertTrue(r.offset() >= 25, "offset " + r.offset() + " was committed before");
            }
            Clients.assertNoMore(c, Duration.ofMillis(500));
            c.commitSync(Duration.ofSeconds(15));
            c.unsubscribe();
        }
    }
}
