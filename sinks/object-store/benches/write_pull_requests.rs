//! Benchmark (prints figures, asserts nothing): stage pull-request-shaped rows (~30
//! columns, list columns, a ~2 KB `_RAW` JSON string) as Parquet through the `local`
//! sink, at 100k and then 1M rows. Peak RSS (VmHWM) after each run shows whether memory
//! grows with table size; it should stay flat because row groups stream to the file.
//!
//! Run: `cargo bench -p flowctl-object-store --bench write_pull_requests`

use arrow::array::{
    ArrayRef, BooleanArray, Int64Array, ListBuilder, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use flowctl_core::{meta, StageTarget, StagingSink};
use flowctl_object_store::{build_local, LocalConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH_ROWS: usize = 5_000;

fn schema() -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    let i = |n: &str| Field::new(n, DataType::Int64, true);
    let t = |n: &str| Field::new(n, meta::utc_timestamp(), true);
    let list = |n: &str| {
        Field::new(
            n,
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        )
    };
    let mut fields = vec![
        i("ID"),
        i("NUMBER"),
        s("ORG"),
        s("REPO"),
        s("TITLE"),
        s("STATE"),
        s("AUTHOR_LOGIN"),
        i("AUTHOR_ID"),
        t("CREATED_AT"),
        t("UPDATED_AT"),
        t("CLOSED_AT"),
        t("MERGED_AT"),
        s("MERGE_COMMIT_SHA"),
        s("HEAD_REF"),
        s("BASE_REF"),
        s("HEAD_SHA"),
        Field::new("DRAFT", DataType::Boolean, true),
        i("ADDITIONS"),
        i("DELETIONS"),
        i("CHANGED_FILES"),
        i("COMMENTS"),
        list("LABELS"),
        list("REQUESTED_REVIEWERS"),
        s("URL"),
        s("_RAW"),
    ];
    fields.extend(meta::metadata_fields());
    Arc::new(Schema::new(fields))
}

fn strings(n: usize, f: impl Fn(usize) -> String) -> ArrayRef {
    Arc::new(StringArray::from_iter_values((0..n).map(f)))
}
fn ints(n: usize, f: impl Fn(usize) -> i64) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values((0..n).map(f)))
}
fn times(n: usize, f: impl Fn(usize) -> Option<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter((0..n).map(f)).with_timezone("UTC"))
}
fn lists(n: usize, f: impl Fn(usize) -> Vec<String>) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for r in 0..n {
        for v in f(r) {
            b.values().append_value(v);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

/// A ~2 KB JSON-ish document that varies per row like a real API response.
fn raw(id: usize) -> String {
    let mut s = format!("{{\"id\":{id},\"node_id\":\"PR_kwDO{id:08x}\",\"body\":\"");
    let mut x = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while s.len() < 2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(
            [
                "fix ", "the ", "flaky ", "test ", "in ", "ci ", "and ", "docs ",
            ][(x % 8) as usize],
        );
        s.push_str(&format!("{:04x} ", x & 0xffff));
    }
    s.push_str("\"}");
    s
}

fn batch(start: usize, n: usize) -> RecordBatch {
    let id = |r: usize| start + r;
    let base = 1_700_000_000_000_000i64;
    let cols = vec![
        ints(n, |r| id(r) as i64),
        ints(n, |r| (id(r) % 50_000) as i64),
        strings(n, |_| "acme".into()),
        strings(n, |r| format!("repo-{}", id(r) % 200)),
        strings(n, |r| format!("Fix flaky test number {}", id(r))),
        strings(n, |r| ["open", "closed"][id(r) % 2].into()),
        strings(n, |r| format!("user{}", id(r) % 3000)),
        ints(n, |r| (id(r) % 3000) as i64),
        times(n, |r| Some(base + id(r) as i64 * 1_000_000)),
        times(n, |r| Some(base + id(r) as i64 * 1_000_000 + 3_600_000_000)),
        times(n, |r| {
            (id(r) % 2 == 1).then_some(base + id(r) as i64 * 1_000_000 + 7_200_000_000)
        }),
        times(n, |r| {
            (id(r) % 4 == 1).then_some(base + id(r) as i64 * 1_000_000 + 7_200_000_000)
        }),
        strings(n, |r| {
            format!("{:040x}", id(r) as u128 * 0x1234_5678_9abc_def1)
        }),
        strings(n, |r| format!("feature/branch-{}", id(r))),
        strings(n, |_| "main".into()),
        strings(n, |r| {
            format!("{:040x}", id(r) as u128 * 0xfedc_ba98_7654_3211)
        }),
        Arc::new(BooleanArray::from_iter(
            (0..n).map(|r| Some(id(r) % 10 == 0)),
        )),
        ints(n, |r| (id(r) % 500) as i64),
        ints(n, |r| (id(r) % 300) as i64),
        ints(n, |r| (id(r) % 40) as i64),
        ints(n, |r| (id(r) % 12) as i64),
        lists(n, |r| {
            (0..id(r) % 3).map(|k| format!("label-{k}")).collect()
        }),
        lists(n, |r| {
            (0..id(r) % 2).map(|k| format!("reviewer-{k}")).collect()
        }),
        strings(n, |r| {
            format!(
                "https://github.com/acme/repo-{}/pull/{}",
                id(r) % 200,
                id(r)
            )
        }),
        strings(n, |r| raw(id(r))),
        strings(n, |r| meta::row_key(&["acme", "repo", &id(r).to_string()])),
        times(n, |_| Some(base)),
        strings(n, |_| "acme".into()),
        strings(n, |_| "bench-batch".into()),
    ];
    RecordBatch::try_new(schema(), cols).expect("bench batch matches schema")
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

async fn run(dir: &std::path::Path, rows: usize) {
    let cfg: LocalConfig = serde_json::from_value(serde_json::json!({
        "path": dir.to_str().expect("utf-8 temp dir"),
        "cleanup": "delete_after_load",
    }))
    .expect("bench config");
    let sink = build_local(cfg).expect("local sink");
    let target = StageTarget {
        table: "pull_request".into(),
        partition_key: "org",
        partition: "acme".into(),
        date: NaiveDate::from_ymd_opt(2026, 1, 2).expect("date"),
        batch_id: format!("bench-{rows}"),
        schema: schema(),
    };
    let mut writer = sink.writer(target).await.expect("writer");
    let (mut in_write, mut arrow_bytes) = (Duration::ZERO, 0usize);
    let started = Instant::now();
    for start in (0..rows).step_by(BATCH_ROWS) {
        let b = batch(start, BATCH_ROWS.min(rows - start));
        arrow_bytes += b.get_array_memory_size();
        let t = Instant::now();
        writer.write(&b).await.expect("write");
        in_write += t.elapsed();
    }
    let t = Instant::now();
    let files = writer.finish().await.expect("finish");
    in_write += t.elapsed();
    let total = started.elapsed();
    let parquet: u64 = files.iter().map(|f| f.bytes).sum();
    let secs = in_write.as_secs_f64();
    println!(
        "{rows:>8} rows: {:>9.0} rows/s, {:>6.1} MB/s Arrow in, {:>6.1} MB/s Parquet out \
         ({} files, {:.1} MB Parquet, {:.1} MB Arrow); write {:.2}s (total incl. row generation {:.2}s); peak RSS {:.0} MiB",
        rows as f64 / secs,
        arrow_bytes as f64 / 1e6 / secs,
        parquet as f64 / 1e6 / secs,
        files.len(),
        parquet as f64 / 1e6,
        arrow_bytes as f64 / 1e6,
        secs,
        total.as_secs_f64(),
        peak_rss_mib(),
    );
    sink.after_load(&files).await.expect("cleanup");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    println!("local staging, {BATCH_ROWS}-row batches, default row groups (100k rows / 4 MiB encoded / 16 MiB decoded), files <= 128 MiB");
    println!("peak RSS at start: {:.0} MiB", peak_rss_mib());
    rt.block_on(run(dir.path(), 100_000));
    rt.block_on(run(dir.path(), 1_000_000));
}
