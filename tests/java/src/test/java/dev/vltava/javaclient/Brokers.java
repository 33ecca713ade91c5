package dev.vltava.javaclient;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.ArgumentsProvider;
import org.junit.jupiter.params.support.ParameterDeclarations;

/**
 * The brokers every test class runs against: "kafka" (REFERENCE_KAFKA_BOOTSTRAP, started by
 * scripts/test; skipped when unset) and "vltava", started here once per run (the root extension
 * store closes it when the run ends) from $VLTAVA_BIN or target/debug/vltava, in a fresh temp
 * dir on free loopback ports.
 */
public final class Brokers implements ArgumentsProvider {
    private static final ExtensionContext.Namespace NS = ExtensionContext.Namespace.create(Brokers.class);

    @Override
    public Stream<? extends Arguments> provideArguments(ParameterDeclarations params, ExtensionContext ctx) {
        String ref = System.getenv("REFERENCE_KAFKA_BOOTSTRAP");
        if (ref != null && ref.isBlank()) {
            ref = null;
        }
        Broker kafka = new Broker("kafka", ref,
                "REFERENCE_KAFKA_BOOTSTRAP is unset: no reference Kafka in this run");
        Vltava v = ctx.getRoot().getStore(NS).getOrComputeIfAbsent("vltava", k -> Vltava.start(), Vltava.class);
        return Stream.of(Arguments.of(kafka), Arguments.of(v.broker));
    }

    /** The Vltava process of this run; closed (SIGTERM, then SIGKILL) when the run ends. */
    static final class Vltava implements AutoCloseable {
        final Broker broker;
        final Process proc;
        final Path dir;

        private Vltava(Broker broker, Process proc, Path dir) {
            this.broker = broker;
            this.proc = proc;
            this.dir = dir;
        }

        static Vltava start() {
            try {
                return doStart();
            } catch (IOException e) {
                throw new IllegalStateException("could not start vltava", e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted starting vltava", e);
            }
        }

        private static Vltava doStart() throws IOException, InterruptedException {
            String bin = System.getenv("VLTAVA_BIN");
            if (bin == null || bin.isBlank()) {
                String root = System.getenv().getOrDefault("VLTAVA_ROOT", "../..");
                bin = Paths.get(root, "target", "debug", "vltava").toString();
            }
            if (!Files.isExecutable(Paths.get(bin))) {
                throw new IllegalStateException(bin + " is missing: run `cargo build -p vltava` first");
            }
            Path dir = Files.createTempDirectory(Paths.get("/tmp"), "java.");
            int port = freePort();
            int cport = freePort();
            List<String> cmd = new ArrayList<>(List.of(bin, "server"));
            String[] settings = {
                "node.id=1",
                "listeners=PLAINTEXT://127.0.0.1:" + port + ",CONTROLLER://127.0.0.1:" + cport,
                "controller.quorum.voters=1@127.0.0.1:" + cport,
                "log.dirs=" + dir.resolve("data"),
                "group.initial.rebalance.delay.ms=0",
            };
            for (String s : settings) {
                cmd.add("--override");
                cmd.add(s);
            }
            Path log = dir.resolve("vltava.out");
            Process proc = new ProcessBuilder(cmd)
                    .redirectErrorStream(true)
                    .redirectOutput(log.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                    .start();
            String bootstrap = "127.0.0.1:" + port;
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            IOException last = null;
            while (System.nanoTime() < deadline) {
                if (!proc.isAlive()) {
                    throw new IllegalStateException("vltava exited during start (exit " + proc.exitValue()
                            + "):\n" + Files.readString(log));
                }
                try {
                    Broker.fetchApiVersions(bootstrap);
                    Vltava v = new Vltava(new Broker("vltava", bootstrap, null), proc, dir);
                    Runtime.getRuntime().addShutdownHook(new Thread(proc::destroyForcibly));
                    return v;
                } catch (IOException e) {
                    last = e;
                }
                Thread.sleep(100);
            }
            proc.destroyForcibly();
            throw new IllegalStateException("vltava did not answer ApiVersions within 60 s: " + last
                    + "\n" + Files.readString(log));
        }

        @Override
        public void close() throws Exception {
            proc.destroy(); // SIGTERM
            if (!proc.waitFor(30, TimeUnit.SECONDS)) {
                proc.destroyForcibly();
                proc.waitFor(10, TimeUnit.SECONDS);
            }
            String out = Files.readString(dir.resolve("vltava.out"));
            if (out.contains("panicked at")) {
                // Keep the directory for a look; fail the run.
                throw new AssertionError("vltava panicked during the run, see " + dir.resolve("vltava.out"));
            }
            try (Stream<Path> walk = Files.walk(dir)) {
                walk.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }
}
