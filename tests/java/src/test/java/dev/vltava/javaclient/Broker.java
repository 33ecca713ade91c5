package dev.vltava.javaclient;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import org.junit.jupiter.api.Assumptions;

/**
 * One broker under test: "kafka" (the reference, from REFERENCE_KAFKA_BOOTSTRAP) or "vltava"
 * (started once per run by {@link Brokers}). A test that uses the kafka broker when the variable
 * is unset is skipped, saying so.
 */
public final class Broker {
    public static final short PRODUCE = 0;
    public static final short INIT_PRODUCER_ID = 22;
    public static final short ADD_PARTITIONS_TO_TXN = 24;
    public static final short ADD_OFFSETS_TO_TXN = 25;
    public static final short END_TXN = 26;
    public static final short TXN_OFFSET_COMMIT = 28;
    public static final short CONSUMER_GROUP_HEARTBEAT = 68;

    private final String name;
    private final String bootstrap;
    private final String missing;
    private Map<Short, short[]> apiVersions;

    Broker(String name, String bootstrap, String missing) {
        this.name = name;
        this.bootstrap = bootstrap;
        this.missing = missing;
    }

    public String name() {
        return name;
    }

    public boolean isVltava() {
        return name.equals("vltava");
    }

    /** host:port; skips the test when this broker is not available in this run. */
    public String bootstrap() {
        if (bootstrap == null) {
            Assumptions.abort(missing);
        }
        return bootstrap;
    }

    /** A topic (or group, or transactional id) name no other test or run uses. */
    public static String unique(String prefix) {
        return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
    }

    /** Client properties with the bootstrap address and short timeouts. */
    public Properties props() {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap());
        p.put("request.timeout.ms", "15000");
        p.put("default.api.timeout.ms", "30000");
        return p;
    }

    @Override
    public String toString() {
        return name;
    }

    /**
     * Skips the test (Vltava only) when the broker does not advertise an API it needs, naming the
     * missing feature. The reference must have every API: there a missing one fails the test.
     */
    public void require(short apiKey, String feature) {
        Map<Short, short[]> versions = apiVersions();
        if (versions.containsKey(apiKey)) {
            return;
        }
        String msg = "needs " + feature + " (ApiVersions key " + apiKey + "): not built yet in " + name;
        if (isVltava()) {
            Assumptions.abort(msg);
        }
        fail("the reference broker lacks " + feature + " (key " + apiKey + ")");
    }

    /** The transactional APIs, for tests of transactions and exactly-once Streams. */
    public void requireTransactions() {
        require(INIT_PRODUCER_ID, "transactions: InitProducerId");
        require(ADD_PARTITIONS_TO_TXN, "transactions: AddPartitionsToTxn");
        require(ADD_OFFSETS_TO_TXN, "transactions: AddOffsetsToTxn");
        require(END_TXN, "transactions: EndTxn");
        require(TXN_OFFSET_COMMIT, "transactions: TxnOffsetCommit");
    }

    /** ApiVersions v0 over a raw socket: the key → [min, max] the broker advertises. */
    public synchronized Map<Short, short[]> apiVersions() {
        if (apiVersions == null) {
            try {
                apiVersions = fetchApiVersions(bootstrap());
            } catch (IOException e) {
                throw new IllegalStateException("ApiVersions to " + name + " failed", e);
            }
        }
        return apiVersions;
    }

    static Map<Short, short[]> fetchApiVersions(String hostPort) throws IOException {
        int colon = hostPort.lastIndexOf(':');
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(hostPort.substring(0, colon),
                    Integer.parseInt(hostPort.substring(colon + 1))), 2000);
            s.setSoTimeout(5000);
            DataOutputStream out = new DataOutputStream(s.getOutputStream());
            byte[] client = "java-probe".getBytes(StandardCharsets.UTF_8);
            out.writeInt(2 + 2 + 4 + 2 + client.length);
            out.writeShort(18); // ApiVersions
            out.writeShort(0);
            out.writeInt(7); // correlation id
            out.writeShort(client.length);
            out.write(client);
            out.flush();
            DataInputStream in = new DataInputStream(s.getInputStream());
            int size = in.readInt();
            if (size < 10) {
                throw new IOException("short ApiVersions response: " + size + " bytes");
            }
            int corr = in.readInt();
            short error = in.readShort();
            if (corr != 7 || error != 0) {
                throw new IOException("ApiVersions: correlation " + corr + ", error " + error);
            }
            int n = in.readInt();
            Map<Short, short[]> out2 = new HashMap<>();
            for (int i = 0; i < n; i++) {
                short key = in.readShort();
                out2.put(key, new short[] {in.readShort(), in.readShort()});
            }
            return out2;
        }
    }
}
