package dev.vltava.javaclient;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedClass;
import org.junit.jupiter.params.provider.ArgumentsSource;

/** A transactional producer; read_committed sees committed transactions only, in order. */
@ParameterizedClass(name = "{0}")
@ArgumentsSource(Brokers.class)
class TransactionsTest {
    private final Broker broker;

    TransactionsTest(Broker broker) {
        this.broker = broker;
    }

    private static List<String> values(List<ConsumerRecord<String, String>> recs) {
        List<String> out = new ArrayList<>();
        recs.forEach(r -> out.add(r.value()));
        return out;
    }

    @Test
    void readCommittedSeesOnlyCommittedTransactions() throws Exception {
        broker.requireTransactions();
        String topic = Broker.unique("txn");
        Clients.createTopic(broker, topic, 1);
        TopicPartition tp = new TopicPartition(topic, 0);
        Map<String, String> txn = Map.of("transactional.id", Broker.unique("tx"),
                "enable.idempotence", "true", "transaction.timeout.ms", "20000");
        try (KafkaProducer<String, String> p = Clients.producer(broker, txn);
                KafkaConsumer<String, String> committed = Clients.consumer(broker,
                        Map.of("isolation.level", "read_committed"))) {
            p.initTransactions();
            p.beginTransaction();
            for (int i = 0; i < 10; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k", "a" + i));
            }
            p.commitTransaction();

            p.beginTransaction();
            for (int i = 0; i < 5; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k", "aborted" + i));
            }
            p.flush();
            p.abortTransaction();

            // An open transaction holds read_committed readers at its first offset.
            p.beginTransaction();
            for (int i = 0; i < 3; i++) {
                p.send(new ProducerRecord<>(topic, 0, "k", "b" + i));
            }
            p.flush();

            committed.assign(List.of(tp));
            committed.seekToBeginning(List.of(tp));
            List<ConsumerRecord<String, String>> first = Clients.pollUntil(committed, 10, Duration.ofSeconds(30));
            assertEquals(List.of("a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9"), values(first));
            Clients.assertNoMore(committed, Duration.ofMillis(1000));

            p.commitTransaction();
            List<ConsumerRecord<String, String>> second = Clients.pollUntil(committed, 3, Duration.ofSeconds(30));
            assertEquals(List.of("b0", "b1", "b2"), values(second));
            Clients.assertNoMore(committed, Duration.ofMillis(500));
        }
        // read_uncommitted sees the aborted records too (the control batches take offsets too).
        List<ConsumerRecord<String, String>> all = Clients.readAll(broker, topic, 1, 18,
                Map.of("isolation.level", "read_uncommitted"));
        List<String> want = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            want.add("a" + i);
        }
        for (int i = 0; i < 5; i++) {
            want.add("aborted" + i);
        }
        want.addAll(List.of("b0", "b1", "b2"));
        assertEquals(want, values(all));
    }
}
