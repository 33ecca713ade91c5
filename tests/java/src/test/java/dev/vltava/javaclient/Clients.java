package dev.vltava.javaclient;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** Small helpers shared by the test classes: topics, clients, polling with a deadline. */
final class Clients {
    private Clients() {}

    static Admin admin(Broker b) {
        return Admin.create(b.props());
    }

    static void createTopic(Broker b, String topic, int partitions) throws Exception {
        createTopic(b, topic, partitions, Map.of());
    }

    static void createTopic(Broker b, String topic, int partitions, Map<String, String> configs) throws Exception {
        try (Admin admin = admin(b)) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1).configs(configs)))
                    .all().get(30, TimeUnit.SECONDS);
        }
    }

    static KafkaProducer<String, String> producer(Broker b, Map<String, String> extra) {
        Properties p = b.props();
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        p.put("delivery.timeout.ms", "30000");
        p.put("max.block.ms", "30000");
        // Plain producer unless a test asks otherwise: kafka-clients 4 defaults to idempotence,
        // which IdempotentProducerTest covers (and which needs InitProducerId).
        p.put("enable.idempotence", "false");
        p.putAll(extra);
        return new KafkaProducer<>(p);
    }

    static KafkaConsumer<String, String> consumer(Broker b, Map<String, String> extra) {
        Properties p = b.props();
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        p.put("auto.offset.reset", "earliest");
        p.put("enable.auto.commit", "false");
        p.putAll(extra);
        return new KafkaConsumer<>(p);
    }

    /** Reads partitions [0, partitions) of a topic from the beginning until `count` records came. */
    static List<ConsumerRecord<String, String>> readAll(Broker b, String topic, int partitions, int count,
            Map<String, String> extra) {
        try (KafkaConsumer<String, String> c = consumer(b, extra)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < partitions; i++) {
                tps.add(new TopicPartition(topic, i));
            }
            c.assign(tps);
            c.seekToBeginning(tps);
            return pollUntil(c, count, Duration.ofSeconds(30));
        }
    }

    /** Polls until `count` records came or the timeout passed; fails when fewer came. */
    static List<ConsumerRecord<String, String>> pollUntil(KafkaConsumer<String, String> c, int count,
            Duration timeout) {
        List<ConsumerRecord<String, String>> got = new ArrayList<>();
        long deadline = System.nanoTime() + timeout.toNanos();
        while (got.size() < count && System.nanoTime() < deadline) {
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                got.add(r);
            }
        }
        if (got.size() < count) {
            fail("got " + got.size() + " of " + count + " records within " + timeout);
        }
        return got;
    }

    /** Polls for `quiet` more and asserts nothing else arrives. */
    static void assertNoMore(KafkaConsumer<String, String> c, Duration quiet) {
        long deadline = System.nanoTime() + quiet.toNanos();
        while (System.nanoTime() < deadline) {
            var recs = c.poll(Duration.ofMillis(200));
            if (!recs.isEmpty()) {
                fail("unexpected record " + recs.iterator().next());
            }
        }
    }

    static void waitFor(String what, Duration timeout, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            if (cond.getAsBoolean()) {
                return;
            }
            Thread.sleep(100);
        }
        fail("timed out after " + timeout + " waiting for " + what);
    }

    /** Values per partition, in offset order. */
    static Map<Integer, List<String>> byPartition(List<ConsumerRecord<String, String>> recs) {
        Map<Integer, List<String>> out = new HashMap<>();
        for (ConsumerRecord<String, String> r : recs) {
            out.computeIfAbsent(r.partition(), k -> new ArrayList<>()).add(r.value());
        }
        return out;
    }

    static void assertDenseOffsets(List<ConsumerRecord<String, String>> recs) {
        Map<Integer, Long> next = new HashMap<>();
        for (ConsumerRecord<String, String> r : recs) {
            long want = next.getOrDefault(r.partition(), 0L);
            assertEquals(want, r.offset(), "offset in partition " + r.partition());
            next.put(r.partition(), want + 1);
        }
    }
}
