//! A first sync bigger than the quota (prints figures, asserts nothing): the real
//! `flowctl` binary syncs the GitHub stand-in into local staging and DuckDB, with a
//! GitHub-like primary quota scaled down so that the whole sync needs about three
//! windows of it.
//!
//! Scenarios, each on a fresh pipeline:
//! 1. one sync without a quota: the request count every other figure is compared with;
//! 2. successive runs, each with a fresh quota window ("an hour later"), each stopping
//!    when the quota is spent (`max_rate_limit_wait_seconds` below the reset);
//! 3. successive runs bounded by `--max-duration`, without a quota;
//! 4. a run killed (SIGKILL) once it has made ~60% of the requests of scenario 1, then
//!    a rerun to the end: the requests made twice, against the work the killed run had
//!    checkpointed.
//!
//! Requests are those the stand-in answered 200 (what GitHub charges; 304s and quota
//! refusals are free). Knobs: `BENCH_QUOTA=500 BENCH_REPOS=30 BENCH_PRS=40
//! BENCH_COMMITS=8 BENCH_LATENCY_MS=150 BENCH_MAX_DURATION=15s BENCH_CHECKPOINT=2s`;
//! `BENCH_KILL_ONLY=1` runs scenarios 1 and 4 only.
//!
//! Run: `cargo bench --bench quota` (any profile: the figures are counts, not times, so
//! `cargo bench --profile dev --bench quota` reuses the debug build).

use flowctl_github_standin::{Faults, Standin, StandinConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}={v}: expected a whole number"))
        })
        .unwrap_or(default)
}

fn env_str(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// Requests GitHub would charge: answered 200.
fn charged(gh: &Standin) -> u64 {
    gh.stats().by_status.get(&200).copied().unwrap_or(0)
}

struct Pipeline {
    _dir: tempfile::TempDir,
    spec: PathBuf,
    summary: PathBuf,
}

impl Pipeline {
    fn new(gh: &Standin, source_extra: &str, run_block: &str) -> Pipeline {
        let dir = tempfile::tempdir().expect("temp dir");
        let spec = dir.path().join("quota.yaml");
        let d = dir.path().display();
        let yaml = format!(
            "name: quota\nsource:\n  type: github\n  base_url: {}\n  orgs: [{}]\n  \
             streams: [repository, pull_request, pull_request_review, commit, commit_file]\n  \
             token: {{ env: BENCH_GITHUB_TOKEN }}\n  max_retries: 2\n  retry_backoff_ms: 10\n\
             {source_extra}staging:\n  type: local\n  path: {d}/staging\nwarehouse:\n  \
             type: duckdb\n  path: {d}/warehouse.duckdb\n{run_block}",
            gh.base_url(),
            gh.org_names().join(", "),
        );
        std::fs::write(&spec, yaml).expect("write spec");
        let summary = dir.path().join("summary.json");
        Pipeline {
            _dir: dir,
            spec,
            summary,
        }
    }

    fn command(&self, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowctl"));
        cmd.arg("apply")
            .arg(&self.spec)
            .arg("--output")
            .arg(&self.summary)
            .args(extra)
            .env("BENCH_GITHUB_TOKEN", "ghp_bench_not_secret")
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        cmd
    }

    /// Runs `apply`; returns (exit code, `complete` from the summary).
    fn apply(&self, extra: &[&str]) -> (i32, bool) {
        let _ = std::fs::remove_file(&self.summary);
        let status = self.command(extra).status().expect("run flowctl");
        let complete = read_json(&self.summary)["complete"]
            .as_bool()
            .unwrap_or(false);
        (status.code().unwrap_or(-1), complete)
    }

    fn rows(&self) -> (i64, i64) {
        let db = duckdb::Connection::open(self.spec.with_file_name("warehouse.duckdb"))
            .expect("open warehouse");
        let q = |sql: &str| db.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap_or(-1);
        (
            q("SELECT COUNT(*) FROM RAW_TABLES.PULL_REQUEST_REVIEW"),
            q("SELECT COUNT(*) - COUNT(DISTINCT _ROW_KEY) FROM RAW_TABLES.PULL_REQUEST_REVIEW"),
        )
    }
}

fn read_json(p: &Path) -> serde_json::Value {
    std::fs::read(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Successive runs until one is complete (at most `max_runs`); before each, `before`.
/// Returns (runs, total requests, complete).
fn runs_until_complete(
    gh: &Standin,
    p: &Pipeline,
    extra: &[&str],
    max_runs: u32,
    before: impl Fn(),
) -> (u32, u64, bool) {
    gh.reset_stats();
    for run in 1..=max_runs {
        before();
        let (code, complete) = p.apply(extra);
        println!(
            "  run {run}: exit {code}, complete {complete}, {} requests so far",
            charged(gh)
        );
        if complete {
            return (run, charged(gh), true);
        }
    }
    (max_runs, charged(gh), false)
}

/// Scenarios 2 and 3: successive runs stopping at the quota, then at `--max-duration`.
fn bounded_runs(gh: &Standin, quota: u64, full: u64, max_duration: &str) {
    // 2. Runs that stop when the quota is spent; each starts with a fresh window.
    let at_quota = Pipeline::new(gh, "  max_rate_limit_wait_seconds: 5\n", "");
    println!("2. runs stopping at the quota ({quota} a window, a fresh window per run):");
    let (runs, total, done) = runs_until_complete(gh, &at_quota, &[], 20, || {
        gh.set_faults(Faults {
            quota: Some(quota),
            quota_window_secs: 3600,
            ..Default::default()
        })
    });
    // A window the later scenarios never exhaust (faults without a quota keep the last one).
    gh.set_faults(Faults {
        quota: Some(u64::MAX / 2),
        ..Default::default()
    });
    let (rows, dup) = at_quota.rows();
    println!(
        "   {runs} runs, finished {done}: {total} requests = {:.3} x one unlimited sync; reviews {rows} (duplicates {dup})",
        total as f64 / full as f64
    );

    // 3. Runs bounded by --max-duration, no quota.
    let bounded = Pipeline::new(gh, "", "");
    println!("3. runs bounded by --max-duration {max_duration}:");
    let (runs, total, done) =
        runs_until_complete(gh, &bounded, &["--max-duration", max_duration], 30, || {});
    let (rows, dup) = bounded.rows();
    println!(
        "   {runs} runs, finished {done}: {total} requests = {:.3} x one unlimited sync; reviews {rows} (duplicates {dup})",
        total as f64 / full as f64
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quota = env_num("BENCH_QUOTA", 500);
    let cfg = StandinConfig {
        orgs: 1,
        repos_per_org: env_num("BENCH_REPOS", 30) as usize,
        prs_per_repo: env_num("BENCH_PRS", 40) as usize,
        reviews_per_pr: 1,
        commits_per_repo: env_num("BENCH_COMMITS", 8) as usize,
        files_per_commit: 2,
        latency_ms: env_num("BENCH_LATENCY_MS", 150),
        seed: 35,
    };
    let max_duration = env_str("BENCH_MAX_DURATION", "15s");
    let checkpoint = env_str("BENCH_CHECKPOINT", "2s");
    let gh = Standin::start(cfg).await.expect("start the stand-in");
    println!(
        "world: {} repos x {} PRs (1 review each), {} commits x 2 files; quota {quota} a window; latency {} ms",
        cfg.repos_per_org, cfg.prs_per_repo, cfg.commits_per_repo, cfg.latency_ms
    );

    // 1. One sync without a quota.
    let reference = Pipeline::new(&gh, "", "");
    gh.reset_stats();
    let started = Instant::now();
    let (code, _) = reference.apply(&[]);
    let full = charged(&gh);
    let (reviews, _) = reference.rows();
    println!(
        "1. unlimited sync: exit {code}, {full} requests ({:.1} quota windows), {reviews} reviews, {:.1} s",
        full as f64 / quota as f64,
        started.elapsed().as_secs_f64()
    );

    if env_num("BENCH_KILL_ONLY", 0) == 0 {
        bounded_runs(&gh, quota, full, &max_duration);
    }

    // 4. A kill at ~60% of the requests, then a rerun.
    let killed = Pipeline::new(
        &gh,
        "",
        &format!("run:\n  checkpoint_interval: {checkpoint}\n"),
    );
    gh.reset_stats();
    let mut child = killed.command(&[]).spawn().expect("run flowctl");
    let target = full * 6 / 10;
    while charged(&gh) < target {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let first = charged(&gh);
    gh.reset_stats();
    let (code, complete) = killed.apply(&[]);
    let second = charged(&gh);
    let again = (first + second).saturating_sub(full);
    let checkpointed = full.saturating_sub(second);
    let (rows, dup) = killed.rows();
    println!(
        "4. killed at {first} requests ({:.0}%, checkpoint_interval {checkpoint}); rerun: exit {code}, complete {complete}, {second} requests",
        100.0 * first as f64 / full as f64
    );
    println!(
        "   made twice: {again} = {:.1}% of the {checkpointed} requests' worth the killed run had checkpointed; reviews {rows} (duplicates {dup})",
        100.0 * again as f64 / checkpointed.max(1) as f64
    );
    gh.shutdown().await;
}
