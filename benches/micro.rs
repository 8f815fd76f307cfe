//! Micro benchmarks (print figures, assert nothing about time) of the hot steps of a sync,
//! on one core, with divan: `Link` header parsing, a full-size pulls page (100 PRs, as the
//! stand-in serves it) → Arrow batch, Arrow → Snappy Parquet through the `local` staging
//! sink, and `_ROW_KEY` hashing. Each prints divan's fastest / slowest / median / mean time
//! of an iteration and, from its counters, the throughput: `item/s` is PRs (pulls page),
//! rows (Parquet), headers or keys a second; `B/s` is bytes of JSON or of Arrow in.
//!
//! Run: `cargo bench --bench micro` (divan's flags after `--`: `--max-time 2`,
//! `--sample-count 50`, a name filter such as `pulls_page`).

use arrow::record_batch::RecordBatch;
use divan::counter::{BytesCount, ItemsCount};
use divan::{black_box, Bencher};
use flowctl_core::{StageTarget, StagingSink};
use flowctl_github::rows::BatchCtx;
use flowctl_github::streams::pulls::pulls_page_to_batch;
use std::sync::LazyLock;

/// The stand-in's pulls page: 100 PRs, ~1.85 MB of JSON.
static PAGE: LazyLock<Vec<u8>> =
    LazyLock::new(|| flowctl_github_standin::sample_pulls_page(100, 42));

const TYPICAL_LINK: &str = r#"<https://api.github.com/repositories/1296269/pulls?state=all&sort=updated&direction=desc&per_page=100&page=3>; rel="next", <https://api.github.com/repositories/1296269/pulls?state=all&sort=updated&direction=desc&per_page=100&page=40>; rel="last", <https://api.github.com/repositories/1296269/pulls?state=all&sort=updated&direction=desc&per_page=100&page=1>; rel="first", <https://api.github.com/repositories/1296269/pulls?state=all&sort=updated&direction=desc&per_page=100&page=1>; rel="prev""#;
const LAST_PAGE_LINK: &str = r#"<https://api.github.com/repositories/1296269/pulls?per_page=100&page=1>; rel="first", <https://api.github.com/repositories/1296269/pulls?per_page=100&page=39>; rel="prev""#;

/// `next` first of four links, and a last page (no `next`).
#[divan::bench(args = ["next first of 4", "no next (last page)"], counter = ItemsCount::new(1usize))]
fn link_header(bencher: Bencher, case: &str) {
    let h = if case == "no next (last page)" {
        LAST_PAGE_LINK
    } else {
        TYPICAL_LINK
    };
    bencher.bench(|| flowctl_github::http::next_link(black_box(h)));
}

fn ctx(include_raw: bool) -> BatchCtx {
    BatchCtx {
        include_raw,
        include_patch: false,
    }
}

/// One pulls page into one Arrow batch, typed columns only (`_RAW` off) and with `_RAW`.
#[divan::bench(args = [false, true])]
fn pulls_page_to_arrow(bencher: Bencher, include_raw: bool) {
    let page = PAGE.as_slice();
    let c = ctx(include_raw);
    // A figure for a page that failed to parse would be meaningless.
    let rows = pulls_page_to_batch(page, "acme", "repo-0", &c)
        .expect("sample page parses")
        .num_rows();
    assert_eq!(rows, 100, "sample page has 100 PRs");
    bencher
        .counter(ItemsCount::new(rows))
        .counter(BytesCount::new(page.len()))
        .bench(|| {
            pulls_page_to_batch(black_box(page), "acme", "repo-0", &c)
                .map(|b| b.num_rows())
                .unwrap_or(0)
        });
}

/// 1,000-row batches of real PR rows: ten distinct pages (different seeds) concatenated,
/// so Parquet's dictionaries and compression see realistic variety; ten of them a run.
fn pr_batches(include_raw: bool) -> Vec<RecordBatch> {
    let c = ctx(include_raw);
    let pages: Vec<RecordBatch> = (0..10u64)
        .map(|seed| {
            let body = flowctl_github_standin::sample_pulls_page(100, 1000 + seed);
            pulls_page_to_batch(&body, "acme", "repo-0", &c).expect("sample page parses")
        })
        .collect();
    let one = arrow::compute::concat_batches(&pages[0].schema(), &pages).expect("concat");
    vec![one; 10]
}

/// What one write of `batches` through the `local` sink needs: a runtime, the sink and
/// its folder (deleted with it).
struct LocalSink {
    rt: tokio::runtime::Runtime,
    sink: flowctl_object_store::ObjectStoreSink,
    _dir: tempfile::TempDir,
}

impl LocalSink {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg: flowctl_object_store::LocalConfig = serde_json::from_value(
            serde_json::json!({ "path": dir.path(), "cleanup": "delete_after_load" }),
        )
        .expect("local sink config");
        let sink = flowctl_object_store::build_local(cfg).expect("local sink");
        Self {
            rt,
            sink,
            _dir: dir,
        }
    }

    /// Writes `batches` as one staged file (batch id `bench-{n}`), deletes it, and
    /// returns its size.
    fn write(&self, batches: &[RecordBatch], n: u32) -> u64 {
        let target = StageTarget {
            table: "pull_request".into(),
            partition_key: "org",
            partition: "acme".into(),
            date: chrono::NaiveDate::from_ymd_opt(2026, 1, 2).expect("date"),
            batch_id: format!("bench-{n}"),
            schema: batches[0].schema(),
        };
        self.rt.block_on(async {
            let mut w = self.sink.writer(target).await.expect("writer");
            for b in batches {
                w.write(b).await.expect("write");
            }
            let files = w.finish().await.expect("finish");
            self.sink.after_load(&files).await.expect("cleanup");
            files.iter().map(|f| f.bytes).sum()
        })
    }
}

/// What each `arrow_to_parquet` case wrote, for `main` to print after divan's table.
static PARQUET_SIZES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// 10,000 PR rows → one Snappy Parquet file in the `local` sink (then deleted), `_RAW` off
/// and on.
#[divan::bench(args = [false, true], sample_count = 20, sample_size = 1)]
fn arrow_to_parquet(bencher: Bencher, include_raw: bool) {
    let batches = pr_batches(include_raw);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let arrow_bytes: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    let sink = LocalSink::new();
    let mut n = 0u32;
    let mut parquet_bytes = 0u64;
    bencher
        .counter(ItemsCount::new(rows))
        .counter(BytesCount::new(arrow_bytes))
        .bench_local(|| {
            n += 1;
            parquet_bytes = sink.write(&batches, n);
        });
    let line = format!(
        "arrow_to_parquet (_RAW {}): {rows} rows, {:.1} MB Arrow -> {:.1} MB Parquet a run",
        if include_raw { "on" } else { "off" },
        arrow_bytes as f64 / 1e6,
        parquet_bytes as f64 / 1e6
    );
    if let Ok(mut sizes) = PARQUET_SIZES.lock() {
        sizes.push(line);
    }
}

/// `_ROW_KEY` (MD5 hex of `org|repo|id`) of 1,000 ids.
#[divan::bench(counter = ItemsCount::new(1000usize))]
fn row_key(bencher: Bencher) {
    let ids: Vec<String> = (0..1000u64)
        .map(|i| (2_500_000_000 + i).to_string())
        .collect();
    bencher.bench(|| {
        for id in &ids {
            black_box(flowctl_core::meta::row_key(&["acme-org", "repo-17", id]));
        }
    });
}

fn main() {
    println!(
        "micro benchmarks, one core each; pulls page: 100 PRs, {:.2} MB JSON",
        PAGE.len() as f64 / 1e6
    );
    divan::main();
    // After divan's table, which a line printed inside a bench would break.
    for line in PARQUET_SIZES.lock().map(|l| l.clone()).unwrap_or_default() {
        println!("{line}");
    }
}
