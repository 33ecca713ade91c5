package dev.vltava.javaclient;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Stream;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Produced;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedClass;
import org.junit.jupiter.params.provider.ArgumentsSource;

/**
 * Kafka Streams word count with processing.guarantee=exactly_once_v2: transactions, a
 * repartition topic, a changelog, offsets committed in transactions. With the record cache off,
 * every input word yields one output record, so the output is known record by record.
 */
@ParameterizedClass(name = "{0}")
@ArgumentsSource(Brokers.class)
class StreamsWordCountTest {
    private final Broker broker;

    StreamsWordCountTest(Broker broker) {
        this.broker = broker;
    }

    @Test
    void exactlyOnceWordCountOutputRecordByRecord() throws Exception {
        broker.requireTransactions();
        String in = Broker.unique("wc-in");
        String out = Broker.unique("wc-out");
        Clients.createTopic(broker, in, 1);
        Clients.createTopic(broker, out, 1);
        List<String> lines = List.of("the quick brown fox", "the lazy dog", "a fox and a dog", "the end");
        List<String> want = new ArrayList<>();
        Map<String, Long> counts = new HashMap<>();
        for (String line : lines) {
            for (String w : line.split(" ")) {
                long n = counts.merge(w, 1L, Long::sum);
                want.add(w + "=" + n);
            }
        }

        StreamsBuilder sb = new StreamsBuilder();
        sb.stream(in, Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(v -> Arrays.asList(v.split(" ")))
                .groupBy((k, w) -> w, Grouped.with(Serdes.String(), Serdes.String()))
                .count()
                .toStream()
                .to(out, Produced.with(Serdes.String(), Serdes.Long()));
        Path state = Files.createTempDirectory(Paths.get("/tmp"), "java.streams.");
        Properties p = broker.props();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, Broker.unique("wordcount"));
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "100");
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, "0");
        p.put(StreamsConfig.STATE_DIR_CONFIG, state.toString());
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, "1");
        p.put(StreamsConfig.consumerPrefix("session.timeout.ms"), "10000");
        p.put(StreamsConfig.consumerPrefix("heartbeat.interval.ms"), "500");
        p.put(StreamsConfig.producerPrefix("transaction.timeout.ms"), "20000");

        KafkaStreams streams = new KafkaStreams(sb.build(), p);
        try {
            streams.start();
            Clients.waitFor("Kafka Streams RUNNING", Duration.ofSeconds(60),
                    () -> streams.state() == KafkaStreams.State.RUNNING || streams.state() == KafkaStreams.State.ERROR);
            if (streams.state() != KafkaStreams.State.RUNNING) {
                fail("Kafka Streams is " + streams.state());
            }
            try (KafkaProducer<String, String> prod = Clients.producer(broker, Map.of())) {
                for (String line : lines) {
                    prod.send(new ProducerRecord<>(in, 0, null, line));
                }
                prod.flush();
            }
            Properties cp = broker.props();
            cp.put("key.deserializer", StringDeserializer.class.getName());
            cp.put("value.deserializer", LongDeserializer.class.getName());
            cp.put("isolation.level", "read_committed");
            try (KafkaConsumer<String, Long> c = new KafkaConsumer<>(cp)) {
                TopicPartition tp = new TopicPartition(out, 0);
                c.assign(List.of(tp));
                c.seekToBeginning(List.of(tp));
                List<String> got = new ArrayList<>();
                long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
                while (got.size() < want.size() && System.nanoTime() < deadline) {
                    for (ConsumerRecord<String, Long> r : c.poll(Duration.ofMillis(200))) {
                        got.add(r.key() + "=" + r.value());
                    }
                }
                // Let a duplicate (an output written twice) show up before comparing.
                long quiet = System.nanoTime() + Duration.ofMillis(1000).toNanos();
                while (System.nanoTime() < quiet) {
                    for (ConsumerRecord<String, Long> r : c.poll(Duration.ofMillis(200))) {
                        got.add(r.key() + "=" + r.value());
                    }
                }
                assertEquals(want, got, "word count output, record by record");
            }
        } finally {
            streams.close(Duration.ofSeconds(15));
            streams.cleanUp();
            try (Stream<Path> walk = Files.walk(state)) {
                walk.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
            }
        }
    }
}
