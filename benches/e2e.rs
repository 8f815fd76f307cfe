//! End-to-end benchmark (prints figures, asserts nothing): the real `flowctl` binary
//! (release, built by `cargo bench`) syncs the GitHub stand-in into local staging and
//! DuckDB. The stand-in runs inside this process, so its CPU time is this process's CPU
//! time; flowctl's CPU time and peak RSS come from `wait4` on the child.
//!
//! Scenarios: a full sync of `repository` + `pull_request`, a re-run with nothing changed,
//! an incremental run after 50 PRs changed, a full refresh, then (optionally) all five streams on a
//! smaller world.
//!
//! Size and pace from the environment (defaults: the target size, 2 orgs × 5 repos × 4,000 PRs):
//! `BENCH_ORGS=2 BENCH_REPOS=5 BENCH_PRS=4000 BENCH_LATENCY_MS=0`
//! `BENCH_ALL_PRS=200` (PRs per repo of the all-streams run; 0 skips it)
//! `BENCH_FULL_REFRESH=1` (default) ends the PR scenarios with `apply --full-refresh`,
//! which re-reads everything and replaces every row of the loaded tables; 0 skips it.
//! `BENCH_CONCURRENCY` (source `max_concurrency`, default the source's own)
//! `BENCH_INCLUDE_RAW=true|false` (default true, as in the source's default)
//! `BENCH_BATCH_ROWS` (source `batch_rows`), `BENCH_BATCH_BYTES` (source `batch_bytes`), `BENCH_DUCKDB_MEMORY_LIMIT` (e.g. `256MB`),
//! `BENCH_DUCKDB_THREADS`, `BENCH_DUCKDB_SLICE_BYTES`, `BENCH_DUCKDB_STORAGE_VERSION`, `BENCH_DUCKDB_ROW_GROUP_ROWS` (warehouse settings), `BENCH_PR_RUNS=0` skips the PR scenarios,
//! `BENCH_RSS_TRACE=1` prints flowctl's RSS every 250 ms beside its info log.
//! `BENCH_ROW_GROUP_BYTES` (staging `row_group_bytes`), `BENCH_ROW_GROUP_DECODED_BYTES`, `BENCH_MAX_FILE_BYTES`, `BENCH_UPLOAD_PART_BYTES` and `BENCH_SPOOL` (`disk`/`memory`; S3 only),
//! `BENCH_SNOWFLAKE_LOAD_CONCURRENCY` (Snowflake `load_concurrency`).
//! `BENCH_GZIP_LEVEL` (default 1): the stand-in gzips bodies as api.github.com does for
//! clients that send `Accept-Encoding: gzip` (flowctl does); 0 serves plain JSON.
//! `BENCH_WAREHOUSE=snowflake` stages on S3 (moto) and loads the Snowflake emulator instead
//! of local staging + DuckDB; run it under `scripts/with-emulators.sh`.
//! `BENCH_WRAP="heaptrack -o /tmp/flowctl"` runs flowctl under a profiler (its figures then
//! include the profiler's).
//! `BENCH_KEEP_DIR=1` keeps the temp dir (spec, staging, warehouse) for inspection.
//!
//! Run: `cargo bench --bench e2e` or `scripts/bench-e2e.sh`.

use flowctl_github_standin::{RequestStats, Standin, StandinConfig, DEFAULT_GZIP_LEVEL};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn env_num(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: expected a whole number")),
        Err(_) => default,
    }
}

/// CPU seconds (user, system) of a `rusage`.
fn cpu_secs(r: &libc::rusage) -> (f64, f64) {
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (tv(r.ru_utime), tv(r.ru_stime))
}

fn self_cpu() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
    let (u, s) = cpu_secs(&r);
    u + s
}

/// What one `flowctl apply` cost.
struct Measured {
    wall: Duration,
    user: f64,
    sys: f64,
    max_rss_kb: i64,
    mem: MemPeak,
    exit: i32,
    standin_cpu: f64,
    stats: RequestStats,
    summary: serde_json::Value,
}

struct Bench {
    dir: tempfile::TempDir,
    spec: PathBuf,
    runs: u32,
    _emulators: EmulatorState,
}

/// A bench's schema in the Snowflake emulator and its bucket in moto, both removed when
/// the bench ends. The Snowflake emulator keeps every schema in memory, and later runs
/// under the same `with-emulators.sh` would compete with its CPU; moto keeps every staged
/// object until its bucket is emptied.
struct EmulatorState(Option<(Cloud, CloudNames)>);

/// What `Cloud::blocks` created for one bench.
struct CloudNames {
    bucket: String,
    schema: String,
}

impl Drop for EmulatorState {
    fn drop(&mut self) {
        if let Some((cloud, names)) = &self.0 {
            cloud.drop_schema(&names.schema);
            cloud.remove_bucket(&names.bucket);
        }
    }
}

impl Bench {
    fn new(gh: &Standin, streams: &[&str]) -> Bench {
        let dir = tempfile::tempdir().expect("temp dir");
        let spec = dir.path().join("bench.yaml");
        let mut extra = String::new();
        if let Ok(c) = std::env::var("BENCH_CONCURRENCY") {
            extra.push_str(&format!("  max_concurrency: {c}\n"));
        }
        if let Ok(n) = std::env::var("BENCH_BATCH_ROWS") {
            extra.push_str(&format!("  batch_rows: {n}\n"));
        }
        if let Ok(n) = std::env::var("BENCH_BATCH_BYTES") {
            extra.push_str(&format!("  batch_bytes: {n}\n"));
        }
        if let Ok(r) = std::env::var("BENCH_INCLUDE_RAW") {
            extra.push_str(&format!("  include_raw: {r}\n"));
        }
        let mut staging_extra = std::env::var("BENCH_ROW_GROUP_BYTES")
            .map(|b| format!("  row_group_bytes: {b}\n"))
            .unwrap_or_default();
        if let Ok(b) = std::env::var("BENCH_ROW_GROUP_DECODED_BYTES") {
            staging_extra.push_str(&format!("  row_group_decoded_bytes: {b}\n"));
        }
        if let Ok(b) = std::env::var("BENCH_MAX_FILE_BYTES") {
            staging_extra.push_str(&format!("  max_file_bytes: {b}\n"));
        }
        if let (Ok(b), Some(_)) = (std::env::var("BENCH_UPLOAD_PART_BYTES"), cloud()) {
            staging_extra.push_str(&format!("  upload_part_bytes: {b}\n"));
        }
        if let (Ok(s), Some(_)) = (std::env::var("BENCH_SPOOL"), cloud()) {
            staging_extra.push_str(&format!("  spool: {s}\n"));
        }
        let mut cloud_names = None;
        let (staging, warehouse) = match cloud() {
            Some(c) => {
                let (staging, warehouse, names) = c.blocks(&staging_extra);
                cloud_names = Some((c, names));
                (staging, warehouse)
            }
            None => (
                format!(
                    "staging:\n  type: local\n  path: {}/staging\n{staging_extra}",
                    dir.path().display()
                ),
                format!(
                    "warehouse:\n  type: duckdb\n  path: {}/warehouse.duckdb\n",
                    dir.path().display()
                ),
            ),
        };
        let mut yaml = format!(
            "name: bench\nsource:\n  type: github\n  base_url: {base}\n  orgs: [{orgs}]\n  \
             streams: [{streams}]\n  token: {{ env: BENCH_GITHUB_TOKEN }}\n{extra}\
             {staging}{warehouse}",
            base = gh.base_url(),
            orgs = gh.org_names().join(", "),
            streams = streams.join(", "),
        );
        let duckdb = |name: &str| std::env::var(name).ok().filter(|_| cloud().is_none());
        if let Some(m) = duckdb("BENCH_DUCKDB_MEMORY_LIMIT") {
            yaml.push_str(&format!("  memory_limit: \"{m}\"\n"));
        }
        if let Some(t) = duckdb("BENCH_DUCKDB_THREADS") {
            yaml.push_str(&format!("  threads: {t}\n"));
        }
        if let Some(r) = duckdb("BENCH_DUCKDB_ROW_GROUP_ROWS") {
            yaml.push_str(&format!("  row_group_rows: {r}\n"));
        }
        if let Some(v) = duckdb("BENCH_DUCKDB_STORAGE_VERSION") {
            yaml.push_str(&format!("  storage_version: {v}\n"));
        }
        if let Some(b) = duckdb("BENCH_DUCKDB_SLICE_BYTES") {
            yaml.push_str(&format!("  load_slice_bytes: {b}\n"));
        }
        std::fs::write(&spec, yaml).expect("write spec");
        Bench {
            dir,
            spec,
            runs: 0,
            _emulators: EmulatorState(cloud_names),
        }
    }

    /// Run `flowctl apply` once and measure it.
    fn apply(&mut self, gh: &Standin) -> Measured {
        self.apply_with(gh, &[])
    }

    /// `flowctl apply` with extra arguments (e.g. `--full-refresh`).
    fn apply_with(&mut self, gh: &Standin, extra: &[&str]) -> Measured {
        self.runs += 1;
        let summary_path = self.dir.path().join(format!("summary-{}.json", self.runs));
        gh.reset_stats();
        let cpu0 = self_cpu();
        let started = Instant::now();
        let flowctl = env!("CARGO_BIN_EXE_flowctl");
        let wrap = std::env::var("BENCH_WRAP").unwrap_or_default();
        let mut wrap = wrap.split_whitespace();
        let mut cmd = match wrap.next() {
            Some(tool) => {
                let mut c = Command::new(tool);
                c.args(wrap).arg(flowctl);
                c
            }
            None => Command::new(flowctl),
        };
        // Reaped by `wait4` below (std's `wait` would drop the resource usage).
        #[allow(clippy::zombie_processes)]
        let child = cmd
            .arg("apply")
            .arg(&self.spec)
            .arg("--output")
            .arg(&summary_path)
            .args(extra)
            .env("BENCH_GITHUB_TOKEN", "ghp_bench_token_not_secret")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("RUST_LOG", if trace() { "info" } else { "warn" })
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn flowctl");
        let sampler = mem_sampler(child.id(), started);
        let (status, usage) = wait4(child.id() as libc::pid_t);
        let wall = started.elapsed();
        let mem = sampler.join().unwrap_or_default();
        // The sampler thread's own CPU is the bench's, not the stand-in's.
        let standin_cpu = self_cpu() - cpu0 - mem.sampler_cpu;
        let (user, sys) = cpu_secs(&usage);
        let summary = read_json(&summary_path);
        Measured {
            wall,
            user,
            sys,
            max_rss_kb: usage.ru_maxrss,
            mem,
            exit: status,
            standin_cpu,
            stats: gh.stats(),
            summary,
        }
    }
}

/// `BENCH_WAREHOUSE=snowflake`: the production path instead of local staging + DuckDB:
/// staging on S3 (moto) and loads through the Snowflake SQL API v2 (the adapter over
/// fakesnow), both started by `scripts/with-emulators.sh`, which exports their addresses.
/// The warehouse then runs in another process, so flowctl's own figures are the read,
/// convert, stage and load-orchestration cost.
struct Cloud {
    s3: String,
    snowflake: String,
}

fn cloud() -> Option<Cloud> {
    match std::env::var("BENCH_WAREHOUSE").as_deref() {
        Ok("snowflake") => {}
        Ok("duckdb") | Err(_) => return None,
        Ok(other) => panic!("BENCH_WAREHOUSE={other}: expected duckdb or snowflake"),
    }
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("BENCH_WAREHOUSE=snowflake needs {name}: run under scripts/with-emulators.sh")
        })
    };
    Some(Cloud {
        s3: var("FLOWCTL_TEST_S3_ENDPOINT"),
        snowflake: var("FLOWCTL_TEST_SNOWFLAKE_URL"),
    })
}

impl Cloud {
    /// The staging and warehouse blocks of a spec, with a fresh bucket and schema, and
    /// their names.
    fn blocks(&self, staging_extra: &str) -> (String, String, CloudNames) {
        let id = flowctl_testkit::unique();
        let bucket = format!("bench{id}");
        let schema = format!("RAW_BENCH_{id}");
        let ok = Command::new("curl")
            .args(["-sf", "-X", "PUT", &format!("{}/{bucket}", self.s3)])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "could not create bucket {bucket} on {}", self.s3);
        let key = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sinks/snowflake/tests/fixtures/test_key.p8"
        );
        (
            format!(
                "staging:\n  type: s3\n  bucket: {bucket}\n  prefix: gh\n  region: us-east-1\n  \
                 endpoint: {}\n  allow_http: true\n{staging_extra}",
                self.s3
            ),
            format!(
                "warehouse:\n  type: snowflake\n  account: test.us-east-1\n  user: flowctl\n  \
                 schema: {schema}\n  private_key_path: {key}\n  \
                 storage_integration: TEST_INT\n  base_url: {}\n{}",
                self.snowflake,
                std::env::var("BENCH_SNOWFLAKE_LOAD_CONCURRENCY")
                    .map(|n| format!("  load_concurrency: {n}\n"))
                    .unwrap_or_default()
            ),
            CloudNames { bucket, schema },
        )
    }

    /// Drops a bench's schema in the Snowflake emulator (which takes any bearer token),
    /// best effort: a failure is printed, the figures stand.
    fn drop_schema(&self, schema: &str) {
        let body = serde_json::json!({
            "statement": format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
            "database": "GITHUB_PIPELINES",
        });
        let ok = Command::new("curl")
            .args(["-sf", "-o", "/dev/null", "-X", "POST"])
            .args(["-H", "Authorization: Bearer bench-cleanup"])
            .args(["-H", "X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT"])
            .args(["-H", "Content-Type: application/json"])
            .args(["--data", &body.to_string()])
            .arg(format!("{}/api/v2/statements", self.snowflake))
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("bench: dropping {schema} in the Snowflake emulator failed");
        }
    }

    /// Deletes every object of a bench's bucket in moto, then the bucket, best effort
    /// like `drop_schema`. moto does not check signatures, but answers an object DELETE
    /// without an `Authorization` header with 403, so the requests carry a dummy SigV4
    /// header. ListObjectsV2 returns at most 1,000 keys a call, so it lists again until
    /// the bucket is empty (bounded).
    fn remove_bucket(&self, bucket: &str) {
        const AUTH: &str = "Authorization: AWS4-HMAC-SHA256 \
            Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";
        let curl = |method: &str, url: &str| {
            Command::new("curl")
                .args(["-sf", "-H", AUTH, "-X", method, url])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        };
        let mut deleted = 0usize;
        for _ in 0..100 {
            let Some(listing) = curl("GET", &format!("{}/{bucket}?list-type=2", self.s3)) else {
                break;
            };
            let keys: Vec<&str> = listing
                .split("<Key>")
                .skip(1)
                .filter_map(|k| k.split("</Key>").next())
                .collect();
            if keys.is_empty() {
                break;
            }
            let before = deleted;
            for key in keys {
                // Staged keys are ASCII paths (`org=…/date=…/…parquet`): no XML escapes.
                if curl("DELETE", &format!("{}/{bucket}/{key}", self.s3)).is_some() {
                    deleted += 1;
                }
            }
            if deleted == before {
                break;
            }
        }
        if curl("DELETE", &format!("{}/{bucket}", self.s3)).is_none() {
            eprintln!(
                "bench: removing bucket {bucket} from moto failed ({deleted} objects deleted)"
            );
        }
    }
}

fn trace() -> bool {
    std::env::var("BENCH_RSS_TRACE").is_ok_and(|v| v == "1")
}

/// Peak memory of one run from `/proc/PID/status`, sampled every 10 ms.
///
/// `wait4`'s peak RSS counts file-backed pages too: the parts of the flowctl binary and
/// libduckdb the run touched, clean and shared with the page cache. How many of those a
/// process maps varies with the page cache (the kernel maps cached neighbours of a
/// faulting page), by ±10 MiB between runs. Anonymous RSS (heap, stacks, buffers) is what
/// flowctl itself holds, and the figure to compare across sizes; a 10 ms sample can miss a
/// shorter spike.
#[derive(Default, Clone, Copy)]
struct MemPeak {
    anon_kb: u64,
    /// File-backed RSS at the anonymous peak.
    file_kb: u64,
    sampler_cpu: f64,
}

fn status_kb(status: &str, key: &str) -> Option<u64> {
    let v = status.lines().find_map(|l| l.strip_prefix(key))?;
    v.trim().trim_end_matches("kB").trim().parse().ok()
}

/// Samples the child's memory until it exits; with `BENCH_RSS_TRACE=1` also prints its
/// resident set every 250 ms (to stderr, beside its log lines), to see which phase of a
/// run holds the memory.
fn mem_sampler(pid: u32, started: Instant) -> std::thread::JoinHandle<MemPeak> {
    let trace = trace();
    std::thread::spawn(move || {
        let mut peak = MemPeak::default();
        let mut last_print: Option<Instant> = None;
        let path = format!("/proc/{pid}/status");
        loop {
            let status = std::fs::read_to_string(&path).unwrap_or_default();
            // A zombie (exited, not yet reaped) has no VmRSS.
            let (Some(rss), Some(anon), Some(file)) = (
                status_kb(&status, "VmRSS:"),
                status_kb(&status, "RssAnon:"),
                status_kb(&status, "RssFile:"),
            ) else {
                break;
            };
            if anon > peak.anon_kb {
                peak.anon_kb = anon;
                peak.file_kb = file;
            }
            if trace && last_print.is_none_or(|t| t.elapsed() >= Duration::from_millis(250)) {
                last_print = Some(Instant::now());
                eprintln!(
                    "[{:>6.2} s] flowctl RSS {rss} kB (anon {anon} kB, file {file} kB)",
                    started.elapsed().as_secs_f64(),
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: getrusage only writes into the struct we pass.
        let mut r: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut r) };
        let (u, s) = cpu_secs(&r);
        peak.sampler_cpu = u + s;
        peak
    })
}

/// Wait for a child and collect its resource usage (std's `wait` drops it).
fn wait4(pid: libc::pid_t) -> (i32, libc::rusage) {
    // SAFETY: plain syscall on our own child; both out-params are owned here.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut status = 0;
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 on flowctl failed");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, usage)
}

fn read_json(p: &Path) -> serde_json::Value {
    std::fs::read_to_string(p)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn sum(summary: &serde_json::Value, field: &str) -> u64 {
    streams(summary)
        .iter()
        .map(|s| s[field].as_u64().unwrap_or(0))
        .sum()
}

fn streams(summary: &serde_json::Value) -> Vec<serde_json::Value> {
    summary["streams"].as_array().cloned().unwrap_or_default()
}

/// Least possible counted requests for repository + pull_request: one repo-list page per
/// 100 repos per org, plus one pulls page per 100 PRs per repo.
fn minimum_requests(c: &StandinConfig) -> u64 {
    let per_org = c.repos_per_org.div_ceil(100).max(1);
    let pulls = c.repos_per_org * c.prs_per_repo.div_ceil(100).max(1);
    (c.orgs * (per_org + pulls)) as u64
}

fn report(label: &str, m: &Measured, min_requests: Option<u64>) {
    let rows = sum(&m.summary, "rows");
    let cpu = m.user + m.sys;
    println!("--- {label}");
    if m.exit != 0 || m.summary.is_null() {
        println!("  flowctl exited {} (summary: {})", m.exit, m.summary);
    }
    println!(
        "  wall {:.2} s | flowctl CPU {:.2} s (user {:.2}, sys {:.2}) | stand-in CPU {:.2} s | flowctl peak RSS {:.1} MiB",
        m.wall.as_secs_f64(),
        cpu,
        m.user,
        m.sys,
        m.standin_cpu,
        m.max_rss_kb as f64 / 1024.0
    );
    println!(
        "  memory: peak anonymous RSS {:.1} MiB (+ {:.1} MiB file-backed then; sampled every 10 ms)",
        m.mem.anon_kb as f64 / 1024.0,
        m.mem.file_kb as f64 / 1024.0,
    );
    let min = min_requests
        .map(|n| {
            format!(
                " | minimum {n} (ratio {:.3})",
                m.stats.counted() as f64 / n as f64
            )
        })
        .unwrap_or_default();
    println!(
        "  requests: server saw {} ({} counted, {} answered 304){min} | flowctl counted {} requests, {} 304s",
        m.stats.total,
        m.stats.counted(),
        m.stats.not_modified,
        sum(&m.summary, "requests"),
        sum(&m.summary, "not_modified"),
    );
    if m.stats.json_bytes > 0 {
        println!(
            "  bodies: {:.1} MB on the wire for {:.1} MB of JSON ({} of {} gzipped)",
            m.stats.body_bytes as f64 / 1e6,
            m.stats.json_bytes as f64 / 1e6,
            m.stats.gzipped,
            m.stats.total - m.stats.not_modified,
        );
    }
    println!(
        "  rows {} ({:.0} rows/s wall, {:.0} rows per flowctl CPU second) | staged {:.1} MB in {} files",
        rows,
        rows as f64 / m.wall.as_secs_f64(),
        rows as f64 / cpu.max(1e-9),
        sum(&m.summary, "bytes") as f64 / 1e6,
        sum(&m.summary, "files"),
    );
    for s in streams(&m.summary) {
        println!(
            "    {:<20} rows {:>8} inserted {:>8} updated {:>6} statements {:>2} requests {:>6} ({} 304) {:>7.2} s {}",
            s["stream"].as_str().unwrap_or("?"),
            s["rows"],
            s["inserted"],
            s["updated"],
            s["statements"],
            s["requests"],
            s["not_modified"],
            s["duration_ms"].as_u64().unwrap_or(0) as f64 / 1000.0,
            s["error"].as_str().unwrap_or("")
        );
    }
}

fn config(prs: usize) -> StandinConfig {
    StandinConfig {
        orgs: env_num("BENCH_ORGS", 2) as usize,
        repos_per_org: env_num("BENCH_REPOS", 5) as usize,
        prs_per_repo: prs,
        reviews_per_pr: env_num("BENCH_REVIEWS", 2) as usize,
        commits_per_repo: env_num("BENCH_COMMITS", 120) as usize,
        files_per_commit: env_num("BENCH_FILES", 3) as usize,
        latency_ms: env_num("BENCH_LATENCY_MS", 0),
        seed: 42,
    }
}

/// The stand-in, gzipping bodies at `BENCH_GZIP_LEVEL` (default the stand-in's own, as
/// api.github.com compresses for clients that accept gzip, which flowctl does; 0 = off).
fn start_standin(rt: &tokio::runtime::Runtime, cfg: StandinConfig) -> Standin {
    let gh = rt.block_on(Standin::start(cfg)).expect("start stand-in");
    let level = env_num("BENCH_GZIP_LEVEL", u64::from(DEFAULT_GZIP_LEVEL));
    gh.set_gzip_level(u32::try_from(level).unwrap_or(9));
    println!("stand-in: gzip level {level} (BENCH_GZIP_LEVEL; 0 = plain JSON)");
    gh
}

fn pr_scenarios(rt: &tokio::runtime::Runtime) {
    let cfg = config(env_num("BENCH_PRS", 4000) as usize);
    let gh = start_standin(rt, cfg);
    println!(
        "world: {} orgs x {} repos x {} PRs = {} PRs, latency {} ms a request",
        cfg.orgs,
        cfg.repos_per_org,
        cfg.prs_per_repo,
        cfg.orgs * cfg.repos_per_org * cfg.prs_per_repo,
        cfg.latency_ms
    );
    let mut b = Bench::new(&gh, &["repository", "pull_request"]);
    let min = minimum_requests(&cfg);
    report(
        "full sync [repository, pull_request]",
        &b.apply(&gh),
        Some(min),
    );
    report("re-run, nothing changed", &b.apply(&gh), None);
    let repos = (cfg.orgs * cfg.repos_per_org) as u64;
    rt.block_on(async { gh.touch_pull_requests(50) });
    let m = b.apply(&gh);
    report(
        &format!(
            "incremental after 50 PRs changed (target: counted requests <= repos + 2 = {})",
            repos + 2
        ),
        &m,
        None,
    );
    if env_num("BENCH_FULL_REFRESH", 1) == 1 {
        report(
            "full refresh over the loaded tables (every row replaced)",
            &b.apply_with(&gh, &["--full-refresh"]),
            Some(min),
        );
    }
    keep(b);
    rt.block_on(gh.shutdown());
}

fn all_streams(rt: &tokio::runtime::Runtime, prs: usize) {
    let cfg = config(prs);
    let gh = start_standin(rt, cfg);
    println!(
        "world: {} orgs x {} repos x {} PRs ({} reviews a PR, {} commits a repo, {} files a commit)",
        cfg.orgs,
        cfg.repos_per_org,
        cfg.prs_per_repo,
        cfg.reviews_per_pr,
        cfg.commits_per_repo,
        cfg.files_per_commit
    );
    let mut b = Bench::new(
        &gh,
        &[
            "repository",
            "pull_request",
            "pull_request_review",
            "commit",
            "commit_file",
        ],
    );
    report("full sync, all five streams", &b.apply(&gh), None);
    rt.block_on(async { gh.touch_pull_requests(50) });
    report(
        "incremental after 50 PRs changed, all streams",
        &b.apply(&gh),
        None,
    );
    keep(b);
    rt.block_on(gh.shutdown());
}

fn keep(b: Bench) {
    if std::env::var("BENCH_KEEP_DIR").is_ok_and(|v| v == "1") {
        println!("  kept {}", b.dir.keep().display());
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not used here.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "flowctl e2e benchmark: {} cores, flowctl = {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        env!("CARGO_BIN_EXE_flowctl")
    );
    if env_num("BENCH_PR_RUNS", 1) == 1 {
        pr_scenarios(&rt);
    }
    let all = env_num("BENCH_ALL_PRS", 200) as usize;
    if all > 0 {
        all_streams(&rt, all);
    }
}
