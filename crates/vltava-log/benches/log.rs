//! Throughput of the partition log, to be read next to the raw disk under it
//! (docs/log-benchmarks.md): append with no fsync, with an fsync per batch and with group
//! commit; sequential reads; offset-index lookups.
//!
//! Run with `cargo bench -p vltava-log --bench log`. The logs live in a temporary directory
//! under the cargo target directory, not `/tmp`, because `/tmp` may be tmpfs and fsync numbers
//! are only worth anything on the disk the broker would use. `VLTAVA_BENCH_DIR` overrides it.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tempfile::TempDir;
use vltava_log::batch::{build_test_batch, BatchHeader, HEADER_SIZE};
use vltava_log::{Log, LogConfig, LogDir, LogDirOptions, TopicPartition};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// Batch sizes on disk, header included: a small and a typical producer batch.
const BATCH_SIZES: [(&str, usize); 2] = [("1KiB", KIB), ("16KiB", 16 * KIB)];
/// Value size of each record; the last one is padded so the batch hits its size exactly.
const RECORD_VALUE_BYTES: usize = 100;
/// Appending threads in the group-commit bench, each flushing after its own append.
const GROUP_COMMIT_THREADS: usize = 4;
/// Size of the logs that reads and index lookups run against.
const READ_LOG_BYTES: usize = 64 * MIB;
/// `max.partition.fetch.bytes` (and `replica.fetch.max.bytes`): what one fetch reads.
const FETCH_MAX_BYTES: u32 = MIB as u32;
/// Append benches start a fresh log once the current one passes this, so that an unsynced run
/// does not fill the disk or the page cache.
const RECYCLE_LOG_BYTES: u64 = 256 * MIB as u64;

fn bench_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("VLTAVA_BENCH_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("vltava-log-bench")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A valid uncompressed batch of exactly `size` bytes: as many records of
/// `RECORD_VALUE_BYTES` as fit, the last one's value grown to fill the rest.
fn batch_of_size(size: usize) -> Vec<u8> {
    let build = |records: usize, last_len: usize| {
        let value = vec![b'v'; RECORD_VALUE_BYTES];
        let last = vec![b'v'; last_len];
        let mut values: Vec<&[u8]> = vec![&value; records - 1];
        values.push(&last);
        build_test_batch(now_ms(), &values)
    };
    let mut records = 1;
    while build(records + 1, RECORD_VALUE_BYTES).len() <= size {
        records += 1;
    }
    // Growing the last value by the shortfall may widen its length varints, so step back down;
    // throughputs use the real length should a size be out of exact reach.
    let mut last_len = RECORD_VALUE_BYTES;
    let mut batch = build(records, last_len);
    for _ in 0..16 {
        if batch.len() == size {
            break;
        }
        last_len = if batch.len() < size {
            last_len + size - batch.len()
        } else {
            last_len - 1
        };
        batch = build(records, last_len);
    }
    batch
}

/// One partition log in its own log directory, removed on drop.
struct Fixture {
    log: Arc<Log>,
    _log_dir: LogDir,
    _dir: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let root = bench_root();
        std::fs::create_dir_all(&root).expect("create the bench directory");
        let dir = tempfile::Builder::new()
            .prefix("log-")
            .tempdir_in(&root)
            .expect("create a temporary log directory");
        let log_dir =
            LogDir::open(dir.path(), LogDirOptions::default()).expect("open the log directory");
        let log = log_dir
            .open_log(&TopicPartition::new("bench", 0), LogConfig::default())
            .expect("open the log");
        Fixture {
            log,
            _log_dir: log_dir,
            _dir: dir,
        }
    }

    /// A log holding at least `bytes` of copies of `template`, flushed once.
    fn filled(template: &[u8], bytes: usize) -> Fixture {
        let fixture = Fixture::new();
        while (fixture.log.size_bytes() as usize) < bytes {
            append(&fixture.log, template);
        }
        let end = fixture.log.log_end_offset();
        fixture.log.flush(end).expect("flush");
        fixture
    }
}

/// Appends `template` (the log writes its own header in front of the same bytes each time, as
/// it does for a producer's request); returns the offset after it.
fn append(log: &Log, template: &[u8]) -> i64 {
    let info = log.append(template, 0, now_ms()).expect("append");
    info.last_offset + 1
}

fn append_no_fsync(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_no_fsync");
    for (name, size) in BATCH_SIZES {
        let template = batch_of_size(size);
        group.throughput(Throughput::Bytes(template.len() as u64));
        // Criterion calls the closure once per sample; the log lives across samples.
        let mut fixture: Option<Fixture> = None;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                let fixture = match fixture.take() {
                    Some(f) if f.log.size_bytes() <= RECYCLE_LOG_BYTES => fixture.insert(f),
                    _ => fixture.insert(Fixture::new()),
                };
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(append(&fixture.log, &template));
                }
                start.elapsed()
            });
        });
    }
    group.finish();
}

fn append_fsync_each(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_fsync_each");
    group.measurement_time(Duration::from_secs(6));
    for (name, size) in BATCH_SIZES {
        let template = batch_of_size(size);
        group.throughput(Throughput::Bytes(template.len() as u64));
        let mut fixture: Option<Fixture> = None;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            let fixture = fixture.get_or_insert_with(Fixture::new);
            b.iter(|| {
                let next = append(&fixture.log, &template);
                fixture.log.flush(next).expect("flush");
            });
        });
    }
    group.finish();
}

/// `GROUP_COMMIT_THREADS` producers, each appending one batch and then waiting for it to be
/// durable, as acks=all produce requests do. One iteration is one batch from every thread.
fn append_group_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group(format!("append_group_commit_{GROUP_COMMIT_THREADS}threads"));
    group.measurement_time(Duration::from_secs(6));
    for (name, size) in BATCH_SIZES {
        let template = batch_of_size(size);
        group.throughput(Throughput::Bytes(
            (template.len() * GROUP_COMMIT_THREADS) as u64,
        ));
        let mut fixture: Option<Fixture> = None;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            let fixture = &*fixture.get_or_insert_with(Fixture::new);
            b.iter_custom(|iters| {
                let start_line = Barrier::new(GROUP_COMMIT_THREADS + 1);
                std::thread::scope(|scope| {
                    for _ in 0..GROUP_COMMIT_THREADS {
                        scope.spawn(|| {
                            start_line.wait();
                            for _ in 0..iters {
                                let next = append(&fixture.log, &template);
                                fixture.log.flush(next).expect("flush");
                            }
                        });
                    }
                    start_line.wait();
                    Instant::now()
                })
                .elapsed()
            });
        });
    }
    group.finish();
}

/// Reads the whole log front to back in fetch-sized ranges, as a consumer or follower does;
/// returns the bytes of whole batches read (the log size, if the ranges are right).
fn read_log_through(log: &Log) -> u64 {
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    let mut whole_batch_bytes = 0u64;
    while offset < end {
        let info = log
            .read(offset, FETCH_MAX_BYTES, i64::MAX, true)
            .expect("read");
        let range = info.range.expect("a range below the log end offset");
        let bytes = range.read_to_vec().expect("read the range");
        // Only whole batches count; a batch cut short by the size limit is read again next time.
        let mut at = 0;
        while let Some(header) = bytes.get(at..).and_then(BatchHeader::parse) {
            if at + header.size() > bytes.len() {
                break;
            }
            at += header.size();
            offset = header.next_offset();
        }
        assert!(at > 0, "a fetch at offset {offset} returned no whole batch");
        whole_batch_bytes += at as u64;
    }
    whole_batch_bytes
}

fn sequential_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("sequential_read_1MiB_fetches");
    for (name, size) in BATCH_SIZES {
        let template = batch_of_size(size);
        // Whole batches fill the log exactly, so the throughput is known before it is built
        // (which happens only if the bench is not filtered out).
        let batches = READ_LOG_BYTES.div_ceil(template.len());
        group.throughput(Throughput::Bytes((batches * template.len()) as u64));
        let mut fixture: Option<Fixture> = None;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            let fixture = fixture.get_or_insert_with(|| {
                let fixture = Fixture::filled(&template, READ_LOG_BYTES);
                let read = read_log_through(&fixture.log);
                assert_eq!(
                    read,
                    fixture.log.size_bytes(),
                    "a read-through missed bytes"
                );
                fixture
            });
            b.iter(|| black_box(read_log_through(&fixture.log)));
        });
    }
    group.finish();
}

/// xorshift64: reproducible offsets without a dependency.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A log of 1 KiB batches with an offset index entry every few batches, checked: every lookup
/// must land on the batch that holds the offset.
fn lookup_fixture(state: &mut u64) -> Fixture {
    let fixture = Fixture::filled(&batch_of_size(KIB), READ_LOG_BYTES);
    let log = &fixture.log;
    let end = log.log_end_offset();
    eprintln!(
        "index_lookup: {end} offsets, {} bytes of log, {} bytes of index entries in memory",
        log.size_bytes(),
        log.index_memory_bytes()
    );
    for _ in 0..10_000 {
        let offset = (next_random(state) % end as u64) as i64;
        let range = log
            .read(offset, FETCH_MAX_BYTES, i64::MAX, true)
            .expect("read")
            .range
            .expect("a range below the log end offset");
        let head = vltava_log::FileRange {
            length: HEADER_SIZE as u32,
            ..range
        }
        .read_to_vec()
        .expect("read a batch header");
        let header = BatchHeader::parse(&head).expect("a batch header");
        assert!(
            header.base_offset <= offset && offset <= header.last_offset(),
            "a read at {offset} starts at batch {}..={}",
            header.base_offset,
            header.last_offset()
        );
    }
    fixture
}

/// `Log::read` at random offsets: the offset index floor lookup plus the header reads that scan
/// from the index entry to the batch. The bytes themselves are not read.
fn index_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("index_lookup_random");
    group.throughput(Throughput::Elements(1));
    let mut state = 0x9E37_79B9_7F4A_7C15;
    let mut fixture: Option<Fixture> = None;
    group.bench_function(BenchmarkId::from_parameter("1KiB"), |b| {
        let log = &fixture
            .get_or_insert_with(|| lookup_fixture(&mut state))
            .log;
        let end = log.log_end_offset() as u64;
        b.iter(|| {
            let offset = (next_random(&mut state) % end) as i64;
            let info = log
                .read(offset, FETCH_MAX_BYTES, i64::MAX, true)
                .expect("read");
            black_box(info.range.map(|r| (r.position, r.length)))
        });
    });
    group.finish();
}

fn config() -> Criterion {
    // Small samples keep the whole run to a couple of minutes on a shared machine.
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
}

criterion_group! {
    name = benches;
    config = config();
    targets = append_no_fsync, append_fsync_each, append_group_commit, sequential_read, index_lookup
}
criterion_main!(benches);
