//! Micro benchmarks (print figures, assert nothing) of the hot steps of a sync, on one
//! core: `Link` header parsing, a full-size pulls page (100 PRs, as the stand-in serves
//! it) → Arrow batch, Arrow → Snappy Parquet through the `local` staging sink, and
//! `_ROW_KEY` hashing. Each case runs about `BENCH_SECS` seconds (default 2).
//!
//! Run: `cargo bench --bench micro`

use arrow::record_batch::RecordBatch;
use flowctl_core::{StageTarget, StagingSink};
use flowctl_github::rows::{pulls_page_to_batch, BatchCtx};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn budget() -> Duration {
    let secs = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

/// Call `f` in rounds of `per_round` until the budget is spent; returns calls per second.
fn rate(per_round: u64, mut f: impl FnMut()) -> (f64, u64) {
    f(); // warm up
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < budget() {
        for _ in 0..per_round {
            f();
        }
        calls += per_round;
    }
    (calls as f64 / start.elapsed().as_secs_f64(), calls)
}

fn link_headers() {
    use flowctl_github::http::next_link;
    let typical = r#"<https://api.github.com/repositories/1296269/pulls?state=all&sort=updated&direction=desc&per_page=100&page=3>; rel="next", <https://api.github.com/repositories/1296269/pulls?state=all&sort=updated&direction=desc&per_page=100&page=40>; rel="last", <https://api.github.com/repositories/1296269/pulls?state=all&sort=updated&direction=desc&per_page=100&page=1>; rel="first", <https://api.github.com/repositories/1296269/pulls?state=all&sort=updated&direction=desc&per_page=100&page=1>; rel="prev""#;
    let last_page = r#"<https://api.github.com/repositories/1296269/pulls?per_page=100&page=1>; rel="first", <https://api.github.com/repositories/1296269/pulls?per_page=100&page=39>; rel="prev""#;
    for (name, h) in [
        ("next first of 4", typical),
        ("no next (last page)", last_page),
    ] {
        let (per_s, _) = rate(10_000, || {
            black_box(next_link(black_box(h)));
        });
        println!(
            "link header ({name:<20}): {:>10.0} headers/s ({:.0} ns each)",
            per_s,
            1e9 / per_s
        );
    }
}

fn ctx(include_raw: bool) -> BatchCtx {
    BatchCtx {
        ingested_at_us: 1_767_225_600_000_000,
        batch_id: "bench".into(),
        include_raw,
        include_patch: false,
    }
}

fn pulls_to_arrow(page: &[u8]) {
    for include_raw in [false, true] {
        let c = ctx(include_raw);
        // A figure for a page that failed to parse would be meaningless.
        let rows = pulls_page_to_batch(page, "acme", "repo-0", &c)
            .expect("sample page parses")
            .num_rows();
        assert_eq!(rows, 100, "sample page has 100 PRs");
        let (pages_s, _) = rate(5, || {
            let b = pulls_page_to_batch(black_box(page), "acme", "repo-0", &c);
            black_box(b.map(|b| b.num_rows()).unwrap_or(0));
        });
        println!(
            "pulls page -> Arrow (_RAW {:<3}): {:>8.0} PRs/s a core, {:>6.1} MB/s JSON",
            if include_raw { "on" } else { "off" },
            pages_s * 100.0,
            pages_s * page.len() as f64 / 1e6
        );
    }
}

/// 1,000-row batches of real PR rows: ten distinct pages (different seeds) concatenated,
/// so Parquet's dictionaries and compression see realistic variety.
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

fn arrow_to_parquet(rt: &tokio::runtime::Runtime) {
    for include_raw in [false, true] {
        let batches = pr_batches(include_raw);
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let arrow_mb: f64 = batches
            .iter()
            .map(|b| b.get_array_memory_size() as f64 / 1e6)
            .sum();
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg: flowctl_object_store::LocalConfig = serde_json::from_value(
            serde_json::json!({ "path": dir.path(), "cleanup": "delete_after_load" }),
        )
        .expect("local sink config");
        let sink = flowctl_object_store::build_local(cfg).expect("local sink");
        let mut n = 0u32;
        let mut parquet_bytes = 0u64;
        let (per_s, _) = rate(1, || {
            n += 1;
            let target = StageTarget {
                table: "pull_request".into(),
                org: "acme".into(),
                date: chrono::NaiveDate::from_ymd_opt(2026, 1, 2).expect("date"),
                batch_id: format!("bench-{n}"),
                schema: batches[0].schema(),
            };
            rt.block_on(async {
                let mut w = sink.writer(target).await.expect("writer");
                for b in &batches {
                    w.write(b).await.expect("write");
                }
                let files = w.finish().await.expect("finish");
                parquet_bytes = files.iter().map(|f| f.bytes).sum();
                sink.after_load(&files).await.expect("cleanup");
            });
        });
        println!(
            "Arrow -> Parquet, local sink (_RAW {:<3}): {:>8.0} rows/s, {:>6.1} MB/s Arrow in \
             ({rows} rows, {arrow_mb:.1} MB Arrow -> {:.1} MB Parquet a run)",
            if include_raw { "on" } else { "off" },
            per_s * rows as f64,
            per_s * arrow_mb,
            parquet_bytes as f64 / 1e6
        );
    }
}

fn row_keys() {
    let ids: Vec<String> = (0..1000u64)
        .map(|i| (2_500_000_000 + i).to_string())
        .collect();
    let (per_s, _) = rate(1, || {
        for id in &ids {
            black_box(flowctl_core::meta::row_key(&["acme-org", "repo-17", id]));
        }
    });
    println!(
        "row_key (md5 hex of org|repo|id): {:>10.0} keys/s ({:.0} ns each)",
        per_s * 1000.0,
        1e9 / (per_s * 1000.0)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let page = flowctl_github_standin::sample_pulls_page(100, 42);
    println!(
        "micro benchmarks, one core each; pulls page: 100 PRs, {:.2} MB JSON",
        page.len() as f64 / 1e6
    );
    link_headers();
    pulls_to_arrow(&page);
    arrow_to_parquet(&rt);
    row_keys();
}
