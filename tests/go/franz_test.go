// franz-go (the strictest Kafka client) against Vltava and, when REFERENCE_KAFKA_BOOTSTRAP is set,
// the reference Kafka: produce, consume, a consumer group, transactions.
//
// Run: scripts/test-go (builds target/debug/vltava; TestMain starts it once, in a fresh temp dir
// on free loopback ports, and stops it at the end). VLTAVA_BIN overrides the binary.
package franz

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type target struct {
	name      string
	bootstrap string // empty: not in this run
	skipWhy   string
}

var targets []target

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startVltava() (addr string, stop func() error, err error) {
	bin := os.Getenv("VLTAVA_BIN")
	if bin == "" {
		bin, _ = filepath.Abs("../../target/debug/vltava")
	}
	if _, err := os.Stat(bin); err != nil {
		return "", nil, fmt.Errorf("%s is missing: run `cargo build -p vltava` first", bin)
	}
	dir, err := os.MkdirTemp("/tmp", "java-go.")
	if err != nil {
		return "", nil, err
	}
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	cport, err := freePort()
	if err != nil {
		return "", nil, err
	}
	args := []string{"server"}
	for _, kv := range []string{
		"node.id=1",
		fmt.Sprintf("listeners=PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", port, cport),
		fmt.Sprintf("controller.quorum.voters=1@127.0.0.1:%d", cport),
		"log.dirs=" + filepath.Join(dir, "data"),
		"group.initial.rebalance.delay.ms=0",
	} {
		args = append(args, "--override", kv)
	}
	logPath := filepath.Join(dir, "vltava.out")
	logf, err := os.Create(logPath)
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group (a Ctrl-C reaches it through stop only); killed if this program dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		out, _ := os.ReadFile(logPath)
		if strings.Contains(string(out), "panicked at") {
			return fmt.Errorf("vltava panicked, see %s", logPath)
		}
		return os.RemoveAll(dir)
	}
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			out, _ := os.ReadFile(logPath)
			return "", nil, fmt.Errorf("vltava exited during start (%v):\n%s", err, out)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return addr, stop, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = stop()
	return "", nil, errors.New("vltava did not listen within 60 s")
}

func TestMain(m *testing.M) {
	ref := os.Getenv("REFERENCE_KAFKA_BOOTSTRAP")
	targets = append(targets, target{"kafka", ref,
		"REFERENCE_KAFKA_BOOTSTRAP is unset: no reference Kafka in this run"})
	// Pdeathsig follows the thread that started vltava: keep this goroutine on that thread.
	runtime.LockOSThread()
	addr, stop, err := startVltava()
	if err != nil {
		fmt.Fprintln(os.Stderr, "go tests: could not start vltava:", err)
		os.Exit(1)
	}
	targets = append(targets, target{name: "vltava", bootstrap: addr})
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintln(os.Stderr, "go tests:", err)
		code = 1
	}
	os.Exit(code)
}

// eachBroker runs f as a subtest per broker; the kafka one is skipped when not configured.
func eachBroker(t *testing.T, f func(t *testing.T, b target)) {
	for _, b := range targets {
		t.Run(b.name, func(t *testing.T) {
			if b.bootstrap == "" {
				t.Skip(b.skipWhy)
			}
			f(t, b)
		})
	}
}

func client(t *testing.T, b target, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(b.bootstrap), kgo.RequestTimeoutOverhead(10 * time.Second)}, opts...)
	c, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// require skips the test on Vltava when it does not advertise the API keys a feature needs; the
// reference must have them.
func require(t *testing.T, b target, feature string, keys ...int16) {
	t.Helper()
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx(t), client(t, b))
	if err != nil {
		t.Fatal(err)
	}
	have := map[int16]bool{}
	for _, k := range resp.ApiKeys {
		have[k.ApiKey] = true
	}
	for _, k := range keys {
		if !have[k] {
			if b.name == "vltava" {
				t.Skipf("needs %s (ApiVersions key %d): not built yet in vltava", feature, k)
			}
			t.Fatalf("the reference broker lacks %s (key %d)", feature, k)
		}
	}
}

func unique(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1_000_000_000)
}

func createTopic(t *testing.T, b target, topic string, partitions int32) {
	t.Helper()
	adm := kadm.NewClient(client(t, b))
	resp, err := adm.CreateTopic(ctx(t), partitions, 1, nil, topic)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Err != nil {
		t.Fatalf("create %s: %v", topic, resp.Err)
	}
}

type rec struct {
	partition int32
	offset    int64
	key, val  string
	headers   string
}

func (r rec) String() string {
	return fmt.Sprintf("p%d@%d %s=%s [%s]", r.partition, r.offset, r.key, r.val, r.headers)
}

func asRec(r *kgo.Record) rec {
	var hs []string
	for _, h := range r.Headers {
		hs = append(hs, h.Key+":"+string(h.Value))
	}
	return rec{r.Partition, r.Offset, string(r.Key), string(r.Value), strings.Join(hs, ",")}
}

// poll reads until n records came or the deadline passed.
func poll(t *testing.T, c *kgo.Client, n int, timeout time.Duration) []rec {
	t.Helper()
	var got []rec
	deadline := time.Now().Add(timeout)
	for len(got) < n && time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := c.PollFetches(pctx)
		cancel()
		for _, e := range fs.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				t.Fatalf("fetch %s/%d: %v", e.Topic, e.Partition, e.Err)
			}
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, asRec(r)) })
	}
	if len(got) < n {
		t.Fatalf("got %d of %d records within %s", len(got), n, timeout)
	}
	return got
}

func produceSync(t *testing.T, c *kgo.Client, rs ...*kgo.Record) {
	t.Helper()
	if err := c.ProduceSync(ctx(t), rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func TestProduceConsume(t *testing.T) {
	eachBroker(t, func(t *testing.T, b target) {
		for _, codec := range []struct {
			name string
			c    kgo.CompressionCodec
		}{{"none", kgo.NoCompression()}, {"gzip", kgo.GzipCompression()}, {"snappy", kgo.SnappyCompression()},
			{"lz4", kgo.Lz4Compression()}, {"zstd", kgo.ZstdCompression()}} {
			t.Run(codec.name, func(t *testing.T) {
				topic := unique("franz-" + codec.name)
				createTopic(t, b, topic, 3)
				// A plain producer: the idempotent one (franz-go's default) is TestIdempotentProducer.
				p := client(t, b, kgo.DisableIdempotentWrite(), kgo.ProducerBatchCompression(codec.c),
					kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
				var want []rec
				var rs []*kgo.Record
				for i := 0; i < 150; i++ {
					r := &kgo.Record{Topic: topic, Partition: int32(i % 3), Key: []byte(fmt.Sprintf("k%d", i)),
						Value:   []byte(strings.Repeat(fmt.Sprintf("v%d ", i), 5)),
						Headers: []kgo.RecordHeader{{Key: "i", Value: []byte(fmt.Sprint(i))}}}
					rs = append(rs, r)
					want = append(want, rec{int32(i % 3), int64(i / 3), string(r.Key), string(r.Value), "i:" + fmt.Sprint(i)})
				}
				produceSync(t, p, rs...)
				for i, r := range rs {
					if r.Offset != int64(i/3) {
						t.Fatalf("record %d acknowledged at offset %d, want %d", i, r.Offset, i/3)
					}
				}
				c := client(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
				got := poll(t, c, len(want), 30*time.Second)
				sortRecs(got)
				sortRecs(want)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("read back differs:\n got %v\nwant %v", got, want)
				}
			})
		}
	})
}

func sortRecs(rs []rec) {
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].partition != rs[j].partition {
			return rs[i].partition < rs[j].partition
		}
		return rs[i].offset < rs[j].offset
	})
}

func TestIdempotentProducer(t *testing.T) {
	eachBroker(t, func(t *testing.T, b target) {
		require(t, b, "the idempotent producer: InitProducerId", 22)
		topic := unique("franz-idem")
		createTopic(t, b, topic, 2)
		p := client(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MaxBufferedRecords(1000))
		var rs []*kgo.Record
		for i := 0; i < 400; i++ {
			rs = append(rs, &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: []byte(fmt.Sprint(i))})
		}
		produceSync(t, p, rs...)
		for i, r := range rs {
			if r.Offset != int64(i/2) {
				t.Fatalf("record %d at offset %d, want %d", i, r.Offset, i/2)
			}
			if r.ProducerID < 0 {
				t.Fatalf("record %d has no producer id: the write was not idempotent", i)
			}
		}
	})
}

func TestConsumerGroup(t *testing.T) {
	eachBroker(t, func(t *testing.T, b target) {
		topic, group := unique("franz-group"), unique("franz-g")
		createTopic(t, b, topic, 4)
		p := client(t, b, kgo.DisableIdempotentWrite(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
		produce := func(from, to int) {
			var rs []*kgo.Record
			for i := from; i < to; i++ {
				rs = append(rs, &kgo.Record{Topic: topic, Partition: int32(i % 4), Value: []byte(fmt.Sprint(i))})
			}
			produceSync(t, p, rs...)
		}
		produce(0, 80)
		member := func() (*kgo.Client, *owned) {
			o := &owned{ps: map[int32]bool{}}
			return client(t, b, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
				kgo.SessionTimeout(10*time.Second), kgo.HeartbeatInterval(500*time.Millisecond),
				kgo.Balancers(kgo.CooperativeStickyBalancer()),
				kgo.OnPartitionsAssigned(o.add), kgo.OnPartitionsRevoked(o.remove),
				kgo.OnPartitionsLost(o.remove)), o
		}
		a, ao := member()
		c, co := member()
		seen := map[string]bool{}
		// next[m][p]: the offset after the last record member m read from partition p.
		next := map[*kgo.Client]map[int32]int64{a: {}, c: {}}
		settled := func() bool {
			if ao.count() == 0 || co.count() == 0 || ao.count()+co.count() != 4 {
				return false
			}
			for m, o := range map[*kgo.Client]*owned{a: ao, c: co} {
				o.mu.Lock()
				for p := range o.ps {
					if next[m][p] != 20 {
						o.mu.Unlock()
						return false
					}
				}
				o.mu.Unlock()
			}
			return true
		}
		deadline := time.Now().Add(45 * time.Second)
		// Both members poll until each owns partitions and has read each of its own to the end (a
		// partition that moved is read again by its new owner: nothing was committed yet).
		for time.Now().Before(deadline) {
			for _, m := range []*kgo.Client{a, c} {
				for _, r := range poll0(m) {
					seen[r.val] = true
					next[m][r.partition] = r.offset + 1
				}
			}
			if len(seen) == 80 && settled() {
				break
			}
		}
		if len(seen) != 80 {
			t.Fatalf("the group read %d distinct records of 80", len(seen))
		}
		if !settled() {
			t.Fatalf("assignments %v and %v do not share 4 partitions read to the end (%v)", ao.ps, co.ps, next)
		}
		for _, m := range []*kgo.Client{a, c} {
			if err := m.CommitUncommittedOffsets(ctx(t)); err != nil {
				t.Fatal(err)
			}
		}
		adm := kadm.NewClient(client(t, b))
		offs, err := adm.FetchOffsets(ctx(t), group)
		if err != nil {
			t.Fatal(err)
		}
		for p := int32(0); p < 4; p++ {
			o, ok := offs.Lookup(topic, p)
			if !ok || o.Err != nil || o.At != 20 {
				t.Fatalf("committed offset of partition %d: %+v (ok=%v), want 20", p, o, ok)
			}
		}
		a.Close()
		c.Close()

		produce(80, 100)
		r, _ := member()
		got := poll(t, r, 20, 45*time.Second)
		vals := map[string]bool{}
		for _, x := range got {
			vals[x.val] = true
			if x.offset < 20 {
				t.Fatalf("the resumed member read %v, committed before", x)
			}
		}
		if len(got) != 20 || len(vals) != 20 {
			t.Fatalf("the resumed member read %d records (%d distinct), want the 20 new ones", len(got), len(vals))
		}
	})
}

func poll0(c *kgo.Client) []rec {
	pctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var out []rec
	c.PollFetches(pctx).EachRecord(func(r *kgo.Record) { out = append(out, asRec(r)) })
	return out
}

// owned tracks a group member's partitions through the rebalance callbacks.
type owned struct {
	mu sync.Mutex
	ps map[int32]bool
}

func (o *owned) add(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, ps := range m {
		for _, p := range ps {
			o.ps[p] = true
		}
	}
}

func (o *owned) remove(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, ps := range m {
		for _, p := range ps {
			delete(o.ps, p)
		}
	}
}

func (o *owned) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.ps)
}

func TestTransactions(t *testing.T) {
	eachBroker(t, func(t *testing.T, b target) {
		require(t, b, "transactions: InitProducerId", 22)
		require(t, b, "transactions: AddPartitionsToTxn", 24)
		require(t, b, "transactions: EndTxn", 26)
		topic := unique("franz-txn")
		createTopic(t, b, topic, 1)
		p := client(t, b, kgo.TransactionalID(unique("franz-tx")), kgo.DefaultProduceTopic(topic),
			kgo.TransactionTimeout(20*time.Second))
		txn := func(commit bool, vals ...string) {
			if err := p.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			var rs []*kgo.Record
			for _, v := range vals {
				rs = append(rs, kgo.StringRecord(v))
			}
			produceSync(t, p, rs...)
			if err := p.EndTransaction(ctx(t), kgo.TransactionEndTry(commit)); err != nil {
				t.Fatal(err)
			}
		}
		txn(true, "a0", "a1", "a2")
		txn(false, "x0", "x1")
		txn(true, "b0")

		rc := client(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		var vals []string
		for _, r := range poll(t, rc, 4, 30*time.Second) {
			vals = append(vals, r.val)
		}
		if strings.Join(vals, " ") != "a0 a1 a2 b0" {
			t.Fatalf("read_committed read %v, want [a0 a1 a2 b0]", vals)
		}
		ru := client(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
		vals = nil
		for _, r := range poll(t, ru, 6, 30*time.Second) {
			vals = append(vals, r.val)
		}
		if strings.Join(vals, " ") != "a0 a1 a2 x0 x1 b0" {
			t.Fatalf("read_uncommitted read %v, want [a0 a1 a2 x0 x1 b0]", vals)
		}
	})
}
