//! Criterion benchmarks of a restore's hot path: what happens to every byte of a data file between the
//! ranged GETs and the BatchWriteItem call.
//!
//! Groups, each run on a FULL and an INCREMENTAL data file:
//! - `gunzip`: the `MultiGzDecoder` behind the engine's 256 KiB `BufReader`, into a sink;
//! - `line_split`: the engine's bounded `read_until` over the decompressed bytes;
//! - `decode`: [`scan_line`], which the engine runs on every line (checks it and finds the write in it, key
//!   checked and hashed); for comparison, [`decode_line`] building the SDK's `AttributeValue` tree, alone and
//!   with [`KeySchema::check`] and [`KeySchema::key_hash`] (the engine's path before `scan_line`);
//! - `batch_build`: [`RawWrite`] and the engine's [`Batcher`], then the rest of a call per batch through
//!   [`DynamoWriter`] with no network: building the body (and the SDK serialising its placeholder request),
//!   and a whole call answered in process;
//! - `end_to_end_decode`: [`Engine::process_file`] as a dry run over the gzip object in memory (ranged
//!   parts, MD5, gunzip, split, decode, key check, batches), i.e. the whole blocking stage.
//!
//! Every group reports throughput in *decompressed* bytes (plus lines or items where they mean something),
//! so the groups add up and compare with each other. The input comes from [`ddb_pitr_synth::generate`], the
//! generator behind the tests and `ddb-pitr-gen`: every attribute type, hostile strings, nested values and a
//! few near-400 KB items. It is generated once per run and held in memory.
//!
//! `cargo bench --bench hot_path` runs everything; add `-- --quick` for a fast pass, or a filter such as
//! `-- decode`. `cargo test --benches` runs each benchmark once.

use std::collections::HashMap;
use std::hint::black_box;
use std::io::{self, BufRead, BufReader, Read};
use std::ops::Range;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, ReturnConsumedCapacity, WriteRequest};
use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main,
};
use ddb_pitr::engine::batcher::Batcher;
use ddb_pitr::engine::watermark::FilePosition;
use ddb_pitr::engine::{Engine, FileRef, MAX_LINE_BYTES, Settings};
use ddb_pitr::export::manifest::{DataFile, ExportType};
use ddb_pitr::item::WriteOp;
use ddb_pitr::item::decode::{decode_line, scan_line};
use ddb_pitr::item::key::{KeyAttr, KeySchema, KeyType};
use ddb_pitr::item::wire::RawWrite;
use ddb_pitr::testing::http::Canned;
use ddb_pitr::testing::objects::MemoryObjects;
use ddb_pitr::write::dynamo::DynamoWriter;
use ddb_pitr::write::{BatchSize as WriteBatchSize, BatchWriter};
use ddb_pitr_synth::{self as synth, IncrementalSpec, SynthSpec};
use flate2::read::MultiGzDecoder;
use tokio_util::sync::CancellationToken;

/// The engine's read buffer in front of the gzip decoder (`Decoder::run` in `src/engine/decoder.rs`).
const READ_BUFFER: usize = 256 * 1024;

/// Batches the engine remembers for its ordering barriers with the default settings: `2 × inflight + 1`
/// (`Engine::process` in `src/engine/mod.rs`). It bounds how many key sets each [`Batcher::add`] looks at.
fn recent_batches() -> usize {
    2 * Settings::default().inflight_batches + 1
}

/// One generated data file, and everything derived from it that the groups take as input.
struct Dataset {
    name: &'static str,
    export_id: String,
    export_type: ExportType,
    file: DataFile,
    key: KeySchema,
    gz: Bytes,
    raw: Vec<u8>,
    /// Each line of `raw`, newline included.
    lines: Vec<Range<usize>>,
    /// The lines' writes, for the stages after decoding.
    writes: Vec<RawWrite>,
    /// The key hash of each write.
    key_hashes: Vec<u64>,
}

impl Dataset {
    /// Each line's text as the engine hands it to [`scan_line`]: without its newline.
    fn texts(&self) -> impl Iterator<Item = &[u8]> {
        self.lines.iter().map(|r| &self.raw[r.start..r.end - 1])
    }

    fn bytes(&self) -> Throughput {
        Throughput::Bytes(self.raw.len() as u64)
    }

    fn lines_and_bytes(&self) -> Throughput {
        Throughput::ElementsAndBytes {
            elements: self.lines.len() as u64,
            bytes: self.raw.len() as u64,
        }
    }

    /// The writes, 25 at a time. For synthetic exports these are exactly the batches the engine cuts: no
    /// export writes a key twice, and 25 items are far below the 16 MB limit.
    fn request_batches(&self) -> impl Iterator<Item = &[RawWrite]> {
        self.writes.chunks(WriteBatchSize::MAX.get())
    }
}

/// A FULL export of 40,000 items (27 MB decompressed) and an INCREMENTAL export of 25,000 changes over it
/// (inserts, updates with both images, deletes; 32 MB), each in one data file. Generation is deterministic,
/// so every run measures the same bytes.
static DATASETS: LazyLock<[Dataset; 2]> = LazyLock::new(|| {
    const FULL_ITEMS: usize = 40_000;
    let spec = SynthSpec {
        seed: 7,
        full_items: FULL_ITEMS,
        full_files: 1,
        big_items: 4,
        incrementals: vec![IncrementalSpec {
            files: 1,
            inserts: FULL_ITEMS / 4,
            updates: FULL_ITEMS / 4,
            deletes: FULL_ITEMS / 8,
            big_inserts: 2,
        }],
        empty_files: 0,
        write_expected: false,
        ..SynthSpec::default()
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = synth::generate(dir.path(), &spec).expect("synthetic export");
    let key = KeySchema {
        attrs: [Some(&spec.partition_key), spec.sort_key.as_ref()]
            .into_iter()
            .flatten()
            .map(|k| KeyAttr {
                name: k.name.clone(),
                ty: match k.key_type {
                    synth::KeyType::S => KeyType::S,
                    synth::KeyType::N => KeyType::N,
                    synth::KeyType::B => KeyType::B,
                },
            })
            .collect(),
    };
    let [full, incremental] = &out.exports[..] else {
        panic!("one FULL and one INCREMENTAL export");
    };
    [
        ("full", ExportType::Full, full),
        ("incremental", ExportType::Incremental, incremental),
    ]
    .map(|(name, export_type, export)| {
        let [file] = &export.files[..] else {
            panic!("one data file per export");
        };
        let gz = std::fs::read(dir.path().join(&file.key)).expect("generated data file");
        let mut raw = Vec::new();
        MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .expect("generated gzip");
        let mut lines = Vec::with_capacity(file.item_count as usize);
        let mut start = 0;
        for line in raw.split_inclusive(|&b| b == b'\n') {
            lines.push(start..start + line.len());
            start += line.len();
        }
        let mut d = Dataset {
            name,
            export_id: export.export_id.clone(),
            export_type,
            file: DataFile {
                key: file.key.clone(),
                item_count: file.item_count,
                md5: file.md5.clone(),
                etag: Some(ddb_pitr_synth::one_part_etag(&gz)),
            },
            key: key.clone(),
            gz: gz.into(),
            raw,
            lines,
            writes: vec![],
            key_hashes: vec![],
        };
        let scanned: Vec<_> = d
            .texts()
            .map(|t| {
                let s = scan_line(t, export_type, &d.key).expect("generated line is valid");
                (RawWrite::new(s.delete, s.image), s.key_hash)
            })
            .collect();
        (d.writes, d.key_hashes) = scanned.into_iter().unzip();
        eprintln!(
            "{name}: {} lines, {:.1} MB decompressed, {:.1} MB gzip",
            d.lines.len(),
            d.raw.len() as f64 / 1e6,
            d.gz.len() as f64 / 1e6
        );
        d
    })
});

/// Every iteration takes from tens to hundreds of milliseconds: ten flat samples are plenty.
fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(8));
    g
}

fn gunzip(c: &mut Criterion) {
    let mut g = group(c, "gunzip");
    for d in DATASETS.iter() {
        g.throughput(d.bytes());
        g.bench_function(d.name, |b| {
            b.iter(|| {
                let mut reader =
                    BufReader::with_capacity(READ_BUFFER, MultiGzDecoder::new(&d.gz[..]));
                io::copy(&mut reader, &mut io::sink()).expect("gunzip")
            })
        });
    }
}

fn line_split(c: &mut Criterion) {
    let mut g = group(c, "line_split");
    for d in DATASETS.iter() {
        g.throughput(d.lines_and_bytes());
        g.bench_function(d.name, |b| {
            b.iter(|| {
                // As `Decoder::run` reads lines: a bounded `read_until` into one reused buffer.
                let mut reader = BufReader::with_capacity(READ_BUFFER, &d.raw[..]);
                let mut buf = Vec::with_capacity(64 * 1024);
                let mut lines = 0u64;
                loop {
                    buf.clear();
                    let n = Read::take(&mut reader, MAX_LINE_BYTES + 1)
                        .read_until(b'\n', &mut buf)
                        .expect("in memory");
                    if n == 0 {
                        break lines;
                    }
                    lines += 1;
                }
            })
        });
    }
}

fn decode(c: &mut Criterion) {
    let mut g = group(c, "decode");
    for d in DATASETS.iter() {
        g.throughput(d.lines_and_bytes());
        g.bench_function(BenchmarkId::new("scan_line", d.name), |b| {
            b.iter(|| {
                let mut hashes = 0u64;
                for text in d.texts() {
                    let s = scan_line(text, d.export_type, &d.key).expect("valid");
                    hashes ^= s.key_hash ^ black_box(s.image.len()) as u64;
                }
                hashes
            })
        });
        // The decoded ops are returned, so that freeing them is not timed: the engine freed them after the
        // write, on another thread.
        g.bench_function(BenchmarkId::new("decode_line", d.name), |b| {
            b.iter_batched(
                || Vec::with_capacity(d.lines.len()),
                |mut ops| {
                    for text in d.texts() {
                        ops.push(decode_line(text, d.export_type).expect("decodes"));
                    }
                    ops
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function(BenchmarkId::new("decode_line+key", d.name), |b| {
            b.iter_batched(
                || Vec::with_capacity(d.lines.len()),
                |mut ops| {
                    for text in d.texts() {
                        let op = decode_line(text, d.export_type).expect("decodes");
                        d.key.check(&op).expect("carries the key");
                        ops.push((d.key.key_hash(op.item()), op));
                    }
                    ops
                },
                BatchSize::PerIteration,
            )
        });
    }
}

/// One BatchWriteItem call answered in process (test credentials, fixed region), two ways:
/// - `direct`: the production [`DynamoWriter`]: the batch's JSON, SigV4 signing (the body's SHA-256
///   included), the answer parsed;
/// - `sdk`: the SDK's own call, from `AttributeValue` items built beforehand (cloned into each call, as
///   the SDK takes them by value): serialization, the orchestrator's interceptors and endpoint rules,
///   signing, response parsing. This was the write path before `wire` and `DynamoWriter`.
fn sdk_client() -> Client {
    Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .with_test_defaults_v2()
            .http_client(Canned::always(200, "{}"))
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build(),
    )
}

/// The batch as the SDK's request items.
fn sdk_requests(batch: &[RawWrite]) -> Vec<WriteRequest> {
    batch
        .iter()
        .map(|w| match w.to_op() {
            WriteOp::Put(item) => WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .expect("item"),
                )
                .build(),
            WriteOp::Delete(key) => WriteRequest::builder()
                .delete_request(
                    DeleteRequest::builder()
                        .set_key(Some(key))
                        .build()
                        .expect("key"),
                )
                .build(),
        })
        .collect()
}

fn batch_build(c: &mut Criterion) {
    // The SDK's timeouts need the timer.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = sdk_client();
    let writer = DynamoWriter::new(&client);
    let mut g = group(c, "batch_build");
    for d in DATASETS.iter() {
        g.throughput(d.lines_and_bytes());
        g.bench_function(BenchmarkId::new("raw_write+batcher", d.name), |b| {
            b.iter_batched(
                || Vec::with_capacity(d.lines.len() / WriteBatchSize::MAX.get() + 1),
                |mut batches| {
                    let mut batcher = Batcher::new(WriteBatchSize::MAX.get(), recent_batches());
                    let mut position = FilePosition::default();
                    for ((write, &key_hash), range) in
                        d.writes.iter().zip(&d.key_hashes).zip(&d.lines)
                    {
                        position.offset = range.end as u64;
                        position.lines += 1;
                        let line = (position.lines, range.start as u64);
                        batches.extend(batcher.add(
                            write.is_delete(),
                            write.item_json(),
                            key_hash,
                            line,
                            range.len(),
                            position,
                        ));
                    }
                    batches.extend(batcher.cut());
                    batches
                },
                BatchSize::PerIteration,
            )
        });

        let table = "synth";
        let first = &d.writes[..WriteBatchSize::MAX.get()];
        let check = rt.block_on(writer.write_batch(table, first));
        assert!(check.is_ok(), "{check:?}");
        g.bench_function(BenchmarkId::new("send_direct", d.name), |b| {
            b.iter(|| {
                rt.block_on(async {
                    for batch in d.request_batches() {
                        black_box(writer.write_batch(table, batch).await).ok();
                    }
                })
            })
        });
        let requests: Vec<Vec<WriteRequest>> = d.request_batches().map(sdk_requests).collect();
        g.bench_function(BenchmarkId::new("send_sdk", d.name), |b| {
            b.iter(|| {
                rt.block_on(async {
                    for batch in &requests {
                        let call = client
                            .batch_write_item()
                            .request_items(table, batch.clone())
                            .return_consumed_capacity(ReturnConsumedCapacity::Indexes)
                            .send();
                        black_box(call.await).expect("answered 200");
                    }
                })
            })
        });
    }
}

fn end_to_end_decode(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut g = group(c, "end_to_end_decode");
    for d in DATASETS.iter() {
        // A dry run (no writer): every batch is cut and acknowledged at once, nothing is sent.
        let engine = Engine {
            objects: Arc::new(MemoryObjects(HashMap::from([(
                d.file.key.clone(),
                d.gz.clone(),
            )]))),
            writer: None,
            table: "synth".into(),
            key: d.key.clone(),
            settings: Settings::default(),
            stats: Arc::default(),
        };
        let file = FileRef {
            export_id: &d.export_id,
            export_type: d.export_type,
            bucket: "synth-bucket",
            file: &d.file,
        };
        g.throughput(d.lines_and_bytes());
        g.bench_function(d.name, |b| {
            b.iter(|| {
                let (progress, _) = tokio::sync::watch::channel(FilePosition::default());
                let outcome = rt
                    .block_on(async {
                        let open = engine.open(file, FilePosition::default(), None).await?;
                        engine
                            .process_file(file, &open, &progress, &CancellationToken::new())
                            .await
                    })
                    .expect("restores");
                assert!(outcome.complete, "the whole file was read and verified");
                outcome
            })
        });
    }
}

criterion_group!(
    benches,
    gunzip,
    line_split,
    decode,
    batch_build,
    end_to_end_decode
);
criterion_main!(benches);
