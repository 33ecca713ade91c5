package dev.vltava.javaclient;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.junit.jupiter.params.ParameterizedClass;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ArgumentsSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Produce with each codec kafka-clients has, read back with keys, values, headers and offsets. */
@ParameterizedClass(name = "{0}")
@ArgumentsSource(Brokers.class)
class CompressionTest {
    private final Broker broker;

    CompressionTest(Broker broker) {
        this.broker = broker;
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"none", "gzip", "snappy", "lz4", "zstd"})
    void producesAndConsumesWithCodec(String codec) throws Exception {
        String topic = Broker.unique("codec-" + codec);
        Clients.createTopic(broker, topic, 2);
        int count = 300;
        // Compressible values, batched: linger and a batch size that holds many records.
        List<Future<RecordMetadata>> acks = new ArrayList<>();
        try (KafkaProducer<String, String> p = Clients.producer(broker, Map.of(
                "compression.type", codec, "linger.ms", "20", "batch.size", "65536", "acks", "all"))) {
            for (int i = 0; i < count; i++) {
                RecordHeaders h = new RecordHeaders();
                h.add("i", Integer.toString(i).getBytes(StandardCharsets.UTF_8));
                acks.add(p.send(new ProducerRecord<>(topic, i % 2, "k" + i, ("value " + i + " ").repeat(10), h)));
            }
            p.flush();
        }
        for (int i = 0; i < count; i++) {
            RecordMetadata md = acks.get(i).get(30, TimeUnit.SECONDS);
            assertEquals(i % 2, md.partition());
            assertEquals(i / 2, md.offset(), "acknowledged offset of record " + i);
        }
        List<ConsumerRecord<String, String>> got = Clients.readAll(broker, topic, 2, count, Map.of());
        assertEquals(count, got.size());
        Clients.assertDenseOffsets(got);
        for (ConsumerRecord<String, String> r : got) {
            int i = Integer.parseInt(r.key().substring(1));
            assertEquals(i % 2, r.partition(), "partition of " + r.key());
            assertEquals(r.offset(), i / 2, "offset of " + r.key());
            assertEquals(("value " + i + " ").repeat(10), r.value());
            assertArrayEquals(Integer.toString(i).getBytes(StandardCharsets.UTF_8),
                    r.headers().lastHeader("i").value());
        }
    }
}
