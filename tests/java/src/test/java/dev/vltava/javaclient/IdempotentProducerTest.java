package dev.vltava.javaclient;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedClass;
import org.junit.jupiter.params.provider.ArgumentsSource;

/** The producer as kafka-clients 4 configures it by default: enable.idempotence=true, acks=all. */
@ParameterizedClass(name = "{0}")
@ArgumentsSource(Brokers.class)
class IdempotentProducerTest {
    private final Broker broker;

    IdempotentProducerTest(Broker broker) {
        this.broker = broker;
    }

    @Test
    void defaultProducerIsIdempotentAndExactlyOnce() throws Exception {
        broker.require(Broker.INIT_PRODUCER_ID, "the idempotent producer: InitProducerId");
        String topic = Broker.unique("idem");
        Clients.createTopic(broker, topic, 3);
        int count = 600;
        List<Future<RecordMetadata>> acks = new ArrayList<>();
        // enable.idempotence=true and acks=all are the defaults of kafka-clients 4 (Clients turns
        // idempotence off for the other tests); five requests in flight at once.
        try (KafkaProducer<String, String> p = Clients.producer(broker,
                Map.of("enable.idempotence", "true", "max.in.flight.requests.per.connection", "5",
                        "linger.ms", "2", "batch.size", "2048"))) {
            for (int i = 0; i < count; i++) {
                acks.add(p.send(new ProducerRecord<>(topic, i % 3, "k" + i, "v" + i)));
            }
            p.flush();
        }
        for (int i = 0; i < count; i++) {
            RecordMetadata md = acks.get(i).get(30, TimeUnit.SECONDS);
            assertEquals(i / 3, md.offset(), "acknowledged offset of record " + i);
        }
        List<ConsumerRecord<String, String>> got = Clients.readAll(broker, topic, 3, count, Map.of());
        Clients.assertDenseOffsets(got);
        for (ConsumerRecord<String, String> r : got) {
            assertEquals("v" + (r.offset() * 3 + r.partition()), r.value());
        }
    }
}
