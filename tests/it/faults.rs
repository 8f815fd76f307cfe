//! Fault matrix: `flowctl apply` (the real binary) against the GitHub stand-in server
//! with faults switched on, local folder staging and embedded DuckDB. Every faulty run
//! either completes with tables equal to a clean run, or exits 1 with a clear message and
//! leaves the failed streams' state where it was; the next run, faults off, converges.
//! Each case prints one summary line: faults injected, runs, rows lost, duplicates.

use flowctl_github_standin::{Faults, Standin, StandinConfig};
use flowctl_testkit::*;
use std::collections::BTreeMap;

fn world(seed: u64) -> StandinConfig {
    StandinConfig {
        orgs: 1,
        repos_per_org: 2,
        prs_per_repo: 120,
        reviews_per_pr: 1,
        commits_per_repo: 12,
        files_per_commit: 2,
        latency_ms: 0,
        seed,
    }
}

/// Fast waits so a case stays bounded; each case may override some.
const FAST: &[(&str, &str)] = &[
    ("max_retries", "6"),
    ("retry_backoff_ms", "5"),
    ("secondary_limit_wait_seconds", "1"),
    ("max_rate_limit_wait_seconds", "10"),
    ("request_timeout_seconds", "1"),
    // Fault rates are per request: these runs make REST's many (GraphQL's: graphql_*.rs).
    ("api", "rest"),
];

struct Case {
    name: &'static str,
    faults: Faults,
    options: Vec<(&'static str, &'static str)>,
    /// The faulty run must succeed (the client is expected to ride the fault out).
    must_succeed: bool,
}

struct Outcome {
    faults_injected: u64,
    runs: usize,
    first_code: i32,
    lost: usize,
    duplicates: usize,
}

fn options(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<_> = FAST
        .iter()
        .copied()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .collect();
    out.extend_from_slice(extra);
    out
}

/// States of every stream that the run reported as failed must be unchanged.
fn assert_failed_streams_unadvanced(
    env: &Env,
    summary: &serde_json::Value,
    before: &serde_json::Value,
    stderr: &str,
) {
    let after = env.state_show();
    let streams = summary["streams"].as_array().cloned().unwrap_or_default();
    let failed: Vec<String> = streams
        .iter()
        .filter(|s| !s["error"].is_null())
        .filter_map(|s| s["stream"].as_str().map(String::from))
        .collect();
    assert!(
        summary.is_null() || !failed.is_empty(),
        "exit 1 but no failed stream in the summary: {summary}\n{stderr}"
    );
    for s in failed {
        assert_eq!(
            after["streams"][&s], before["streams"][&s],
            "state of failed stream {s} advanced"
        );
    }
}

async fn run_case(case: Case, seed: u64) -> Outcome {
    let gh = Standin::start(world(seed)).await.unwrap();
    let clean = Env::with_source_options(&gh, ALL_STREAMS, &options(&[]));
    clean.apply(&[]).success();
    let want = clean.content_snapshot();

    let env = Env::with_source_options(&gh, ALL_STREAMS, &options(&case.options));
    gh.reset_stats();
    gh.set_faults(case.faults.clone());
    let before = env.state_show();
    let first = env.apply(&[]);
    let injected = gh.stats().faults_injected;
    gh.set_faults(Faults::default());
    assert!(!first.stderr.contains("panicked"), "{}", first.stderr);
    let mut runs = 1;
    if first.code == 0 {
        assert_eq!(
            env.content_snapshot(),
            want,
            "{}: tables differ from a clean run",
            case.name
        );
    } else {
        assert!(
            !case.must_succeed,
            "{}: run failed:\n{}",
            case.name, first.stderr
        );
        assert_eq!(first.code, 1, "{}: {}", case.name, first.stderr);
        assert!(first.stderr.contains("error: pipeline"), "{}", first.stderr);
        assert_failed_streams_unadvanced(&env, &first.summary, &before, &first.stderr);
        env.apply(&[]).success();
        runs += 1;
    }
    let got = env.content_snapshot();
    let (lost, extra) = lost_and_extra(&want, &got);
    env.assert_no_duplicate_keys();
    gh.shutdown().await;
    let o = Outcome {
        faults_injected: injected,
        runs,
        first_code: first.code,
        lost,
        duplicates: extra,
    };
    eprintln!(
        "FAULT SUMMARY {:<28} faults injected {:>4}  runs {}  first exit {}  rows lost {}  duplicates {}",
        case.name, o.faults_injected, o.runs, o.first_code, o.lost, o.duplicates
    );
    assert_eq!((o.lost, o.duplicates), (0, 0), "{}", case.name);
    assert_eq!(got, want, "{}: did not converge", case.name);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_5xx_is_retried_to_an_exact_load() {
    let o = run_case(
        Case {
            name: "10% 5xx",
            faults: Faults {
                fail_5xx_rate: 0.10,
                ..Default::default()
            },
            options: vec![],
            must_succeed: true,
        },
        11,
    )
    .await;
    assert!(
        o.faults_injected > 5,
        "too few faults: {}",
        o.faults_injected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_json_bodies_are_retried_to_an_exact_load() {
    let o = run_case(
        Case {
            name: "truncated bodies (10%)",
            faults: Faults {
                truncate_rate: 0.10,
                truncate_next: 3,
                ..Default::default()
            },
            options: vec![],
            must_succeed: true,
        },
        12,
    )
    .await;
    assert!(o.faults_injected >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_slower_than_the_timeout_are_retried() {
    let o = run_case(
        Case {
            name: "slow past timeout (3%)",
            faults: Faults {
                slow_rate: 0.03,
                slow_ms: 1500,
                ..Default::default()
            },
            options: vec![],
            must_succeed: true,
        },
        13,
    )
    .await;
    assert!(o.faults_injected > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secondary_limit_storm_with_retry_after_is_waited_out() {
    let o = run_case(
        Case {
            name: "secondary storm Retry-After",
            faults: Faults {
                secondary_next: 8,
                secondary_retry_after: Some(1),
                ..Default::default()
            },
            options: vec![],
            must_succeed: true,
        },
        14,
    )
    .await;
    assert_eq!(o.faults_injected, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_quota_exhausted_with_a_near_reset_is_waited_out() {
    let o = run_case(
        Case {
            name: "primary quota, reset in 2 s",
            faults: Faults {
                primary_exhausted_next: 3,
                primary_reset_secs: 2,
                ..Default::default()
            },
            options: vec![],
            must_succeed: true,
        },
        15,
    )
    .await;
    assert!(o.faults_injected >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_quota_reset_beyond_the_max_wait_fails_cleanly_then_converges() {
    let o = run_case(
        Case {
            name: "primary quota, reset too far",
            faults: Faults {
                primary_exhausted_next: 1000,
                primary_reset_secs: 600,
                ..Default::default()
            },
            options: vec![("max_rate_limit_wait_seconds", "2")],
            must_succeed: false,
        },
        16,
    )
    .await;
    assert_eq!(o.first_code, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_5xx_on_one_endpoint_fails_that_stream_then_converges() {
    let o = run_case(
        Case {
            name: "502 on every reviews call",
            faults: Faults {
                fail_5xx_kind: Some("reviews".into()),
                ..Default::default()
            },
            options: vec![("max_retries", "1")],
            must_succeed: false,
        },
        17,
    )
    .await;
    assert_eq!(o.first_code, 1);
}

fn parquet_files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out
}

/// A warehouse error mid-run: the PULL_REQUEST target carries an extra NOT NULL column
/// the loader never fills, so the load's append fails after its first statement ran. The
/// stream must fail with its state unadvanced, the other streams load; once the column
/// is dropped, the next run converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_duckdb_load_leaves_state_unadvanced_and_converges() {
    let gh = Standin::start(world(18)).await.unwrap();
    let clean = Env::with_source_options(&gh, ALL_STREAMS, &options(&[]));
    clean.apply(&[]).success();
    let want = clean.content_snapshot();
    let ddl: String = {
        let db = duckdb::Connection::open(clean.duckdb_path()).unwrap();
        db.query_row(
            "SELECT sql FROM duckdb_tables() WHERE schema_name = 'RAW_TABLES' AND table_name = 'PULL_REQUEST'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    let poisoned = match ddl.trim_end().trim_end_matches(';').rfind(')') {
        Some(i) => format!("{}, \"BOOM\" INTEGER NOT NULL)", &ddl[..i]),
        None => panic!("unexpected DDL {ddl}"),
    };
    let env = Env::with_source_options(&gh, ALL_STREAMS, &options(&[]));
    // Staged files go once loaded, and a failed stream's files too (never reused).
    let spec = std::fs::read_to_string(&env.spec).unwrap();
    let spec = spec.replace("/staging\n", "/staging\n  cleanup: delete_after_load\n");
    assert!(spec.contains("delete_after_load"));
    std::fs::write(&env.spec, spec).unwrap();
    {
        let db = duckdb::Connection::open(env.duckdb_path()).unwrap();
        db.execute_batch(&format!("CREATE SCHEMA RAW_TABLES; {poisoned};"))
            .unwrap();
    }
    let first = env.apply(&[]);
    assert_eq!(first.code, 1, "{}", first.stderr);
    assert!(!first.stderr.contains("panicked"));
    assert!(first.stderr.contains("PULL_REQUEST"), "{}", first.stderr);
    let pr = stream(&first.summary, "pull_request");
    assert!(pr["error"].is_string(), "{pr}");
    assert!(env.stream_state("pull_request").is_null(), "state advanced");
    assert_eq!(
        env.content_snapshot_of("PULL_REQUEST"),
        Vec::<String>::new()
    );
    assert_eq!(env.content_snapshot_of("REPOSITORY"), want["REPOSITORY"]);
    let left = parquet_files_under(&env.staging_dir());
    assert!(left.is_empty(), "staged files left behind: {left:?}");
    {
        let db = duckdb::Connection::open(env.duckdb_path()).unwrap();
        db.execute_batch("ALTER TABLE RAW_TABLES.PULL_REQUEST DROP COLUMN \"BOOM\";")
            .unwrap();
    }
    env.apply(&[]).success();
    let got = env.content_snapshot();
    let (lost, dup) = lost_and_extra(&want, &got);
    eprintln!(
        "FAULT SUMMARY {:<28} faults injected {:>4}  runs 2  first exit 1  rows lost {lost}  duplicates {dup}",
        "duckdb MERGE failure", 1
    );
    assert_eq!(got, want);
    env.assert_no_duplicate_keys();
    gh.shutdown().await;
}

/// Sanity of the harness itself: a snapshot with a row removed or doubled is detected.
#[test]
fn lost_and_extra_counts_differences() {
    let want: BTreeMap<String, Vec<String>> =
        [("T".to_string(), vec!["a".into(), "b".into()])].into();
    let got: BTreeMap<String, Vec<String>> =
        [("T".to_string(), vec!["a".into(), "a".into()])].into();
    assert_eq!(lost_and_extra(&want, &got), (1, 1));
    assert_eq!(lost_and_extra(&want, &want), (0, 0));
}

// ------------------------------------------------ object store errors mid multipart upload

/// What the proxy does with multipart part uploads (`PUT ...?partNumber=N&uploadId=...`).
#[derive(Clone, Copy, PartialEq, Debug)]
enum PartFault {
    Off,
    /// Answer the next N part uploads with this status.
    Next(u16, u32),
    /// Answer every part upload with this status.
    Always(u16),
}

/// A fault-injecting HTTP/1.1 proxy in front of moto: forwards every request as it is
/// (one request per connection), except part uploads it is told to fail.
struct S3Proxy {
    url: String,
    fault: std::sync::Arc<std::sync::Mutex<PartFault>>,
    injected: std::sync::Arc<std::sync::atomic::AtomicU64>,
    parts_seen: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl S3Proxy {
    fn start(upstream: &str) -> S3Proxy {
        use std::sync::atomic::AtomicU64;
        use std::sync::{Arc, Mutex};
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fault = Arc::new(Mutex::new(PartFault::Off));
        let injected = Arc::new(AtomicU64::new(0));
        let parts_seen = Arc::new(AtomicU64::new(0));
        let (f, i, p) = (fault.clone(), injected.clone(), parts_seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (f, i, p, up) = (f.clone(), i.clone(), p.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let _ = proxy_one(conn, &up, &f, &i, &p);
                });
            }
        });
        S3Proxy {
            url,
            fault,
            injected,
            parts_seen,
        }
    }

    fn set(&self, f: PartFault) {
        *self.fault.lock().unwrap() = f;
    }
}

fn proxy_one(
    mut client: std::net::TcpStream,
    upstream: &str,
    fault: &std::sync::Mutex<PartFault>,
    injected: &std::sync::atomic::AtomicU64,
    parts_seen: &std::sync::atomic::AtomicU64,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::Ordering;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = String::new();
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if !lower.starts_with("connection:") {
            head.push_str(&h);
        }
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    let is_part = first.starts_with("PUT ") && first.contains("partNumber=");
    if is_part {
        parts_seen.fetch_add(1, Ordering::SeqCst);
        let status = {
            let mut f = fault.lock().unwrap();
            match *f {
                PartFault::Off => None,
                PartFault::Always(s) => Some(s),
                PartFault::Next(s, n) => {
                    *f = if n > 1 {
                        PartFault::Next(s, n - 1)
                    } else {
                        PartFault::Off
                    };
                    Some(s)
                }
            }
        };
        if let Some(s) = status {
            injected.fetch_add(1, Ordering::SeqCst);
            let xml = format!("<?xml version=\"1.0\"?><Error><Code>InjectedFault</Code><Message>injected {s} by the test proxy</Message></Error>");
            let resp = format!(
                "HTTP/1.1 {s} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            );
            client.write_all(resp.as_bytes())?;
            return Ok(());
        }
    }
    let mut up = std::net::TcpStream::connect(upstream)?;
    up.write_all(first.as_bytes())?;
    up.write_all(head.as_bytes())?;
    up.write_all(b"Connection: close\r\n\r\n")?;
    up.write_all(&body)?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    client.write_all(&resp)?;
    Ok(())
}

/// The S3 emulator's address, or None (printing SKIPPED) unless emulators are required.
fn s3_endpoint() -> Option<String> {
    emulator("FLOWCTL_TEST_S3_ENDPOINT")
}

/// One bodiless request to the S3 emulator (unsigned: moto accepts it); the whole answer.
fn s3_request(endpoint: &str, method: &str, target: &str) -> String {
    use std::io::{Read, Write};
    let host = endpoint.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp
}

/// Multipart uploads started and neither completed nor aborted in `bucket`
/// (ListMultipartUploads).
fn open_multipart_uploads(endpoint: &str, bucket: &str) -> usize {
    let resp = s3_request(endpoint, "GET", &format!("/{bucket}?uploads"));
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    resp.matches("<UploadId>").count()
}

fn create_bucket(endpoint: &str, bucket: &str) {
    let resp = s3_request(endpoint, "PUT", &format!("/{bucket}"));
    assert!(
        resp.starts_with("HTTP/1.1 200") || resp.contains("BucketAlreadyOwnedByYou"),
        "{resp}"
    );
}

/// 150 pull requests with 40 KB of incompressible title each: staged files well past the
/// 5 MiB part size, so the S3 sink uploads in several parts.
fn big_pulls_server() -> TinyServer {
    let mut seed = 0x1234_5678_u64;
    let mut noise = |n: usize| -> String {
        const A: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..n)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                A[(seed >> 33) as usize % A.len()] as char
            })
            .collect()
    };
    let prs: Vec<String> = (1..=150)
        .map(|i| pr_json("big", "r", i, i, &format!("\"{}\"", noise(40_000))))
        .collect();
    let (p1, p2) = (
        format!("[{}]", prs[..100].join(",")),
        format!("[{}]", prs[100..].join(",")),
    );
    let base = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let b2 = base.clone();
    let srv = TinyServer::start(move |req| {
        let t = req.target.as_str();
        if t.starts_with("/orgs/big/repos") {
            Reply::json(format!("[{}]", repo_json("big", "r", 1)))
        } else if t.starts_with("/repos/big/r/pulls") && t.contains("page=2") {
            Reply::json(p2.clone())
        } else if t.starts_with("/repos/big/r/pulls") {
            let next = format!(
                "<{}/repos/big/r/pulls?page=2>; rel=\"next\"",
                b2.get().map(String::as_str).unwrap_or("")
            );
            Reply::json(p1.clone()).header("Link", &next)
        } else {
            Reply::status(404)
        }
    });
    let _ = base.set(srv.base_url.clone());
    srv
}

const AWS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", "us-east-1"),
];

fn s3_env(gh: &TinyServer, endpoint: &str, bucket: &str) -> Env {
    // The hand-made server speaks REST only.
    let env = Env::for_server(
        &gh.base_url,
        &["big"],
        &["repository", "pull_request"],
        "  api: rest\n",
    );
    let spec = std::fs::read_to_string(&env.spec).unwrap();
    let (i, j) = (
        spec.find("staging:").unwrap(),
        spec.find("warehouse:").unwrap(),
    );
    let staging = format!(
        "staging:\n  type: s3\n  bucket: {bucket}\n  prefix: gh\n  endpoint: {endpoint}\n  allow_http: true\n  upload_part_bytes: 5242880\n"
    );
    std::fs::write(&env.spec, format!("{}{staging}{}", &spec[..i], &spec[j..])).unwrap();
    env
}

#[test]
fn s3_errors_mid_multipart_upload_are_retried_or_fail_cleanly_then_converge() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let gh = big_pulls_server();
    let proxy = S3Proxy::start(&endpoint);
    // Fresh buckets per run: state lives beside the staged files, and the emulator
    // outlives this test.
    let tag = unique();
    let (b_clean, b1, b2) = (
        format!("fc-{tag}"),
        format!("f1-{tag}"),
        format!("f2-{tag}"),
    );
    for b in [&b_clean, &b1, &b2] {
        create_bucket(&endpoint, b);
    }
    let clean = s3_env(&gh, &endpoint, &b_clean);
    let out = clean.apply_with_env(&[], AWS);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let want = clean.content_snapshot();
    assert_eq!(want["PULL_REQUEST"].len(), 150);

    // Transient: the next two part uploads answer 503; the sink's retries ride them out.
    let env = s3_env(&gh, &proxy.url, &b1);
    proxy.set(PartFault::Next(503, 2));
    let out = env.apply_with_env(&[], AWS);
    let parts = proxy.parts_seen.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        parts >= 3,
        "no multipart upload happened ({parts} part requests)"
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(env.content_snapshot(), want);

    // Persistent: every part upload is refused (403); the stream fails, state unadvanced.
    // (Another bucket: state lives beside the staged files.)
    let env = s3_env(&gh, &proxy.url, &b2);
    env.apply_with_env(&["--streams", "repository"], AWS)
        .success();
    proxy.set(PartFault::Always(403));
    let out = env.apply_with_env(&[], AWS);
    proxy.set(PartFault::Off);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(b2.as_str()),
        "the message should name the bucket: {}",
        out.stderr
    );
    assert!(
        env.state_show_with_env(AWS)["streams"]["pull_request"].is_null(),
        "state advanced"
    );
    // The failed file's multipart upload was aborted, not left to be billed.
    assert_eq!(open_multipart_uploads(&endpoint, &b2), 0);
    let out = env.apply_with_env(&[], AWS);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let got = env.content_snapshot();
    let (lost, dup) = lost_and_extra(&want, &got);
    let injected = proxy.injected.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!(
        "FAULT SUMMARY {:<28} faults injected {injected:>4}  runs 4  rows lost {lost}  duplicates {dup}",
        "S3 multipart part errors"
    );
    assert_eq!(got, want);
    env.assert_no_duplicate_keys();
}

// ------------------------------------------------------------ a failing Snowflake MERGE

/// One statement through the emulator's SQL API (as flowctl's loader sends them).
fn snowflake_sql(url: &str, schema: &str, sql: &str) -> serde_json::Value {
    let body =
        serde_json::json!({"statement": sql, "database": "GITHUB_PIPELINES", "schema": schema});
    let out = std::process::Command::new("curl")
        .args(["-s", "-X", "POST", &format!("{url}/api/v2/statements")])
        .args([
            "-H",
            "Content-Type: application/json",
            "-H",
            "Authorization: Bearer test",
        ])
        .args(["-H", "X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT"])
        .args(["-d", &body.to_string()])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn snowflake_count(url: &str, schema: &str, sql: &str) -> i64 {
    let v = snowflake_sql(url, schema, sql);
    v["data"][0][0]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{sql}: {v}"))
}

/// The PULL_REQUEST target carries an extra NOT NULL column the loader never fills: the
/// COPY into the stage succeeds, the MERGE fails. The stream must fail with its state
/// unadvanced; once the column is dropped, the next run loads exactly the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_snowflake_merge_leaves_state_unadvanced_and_converges() {
    let (Some(s3), Some(sf)) = (s3_endpoint(), snowflake_url()) else {
        return;
    };
    let gh = Standin::start(world(19)).await.unwrap();
    let tag = unique();
    let (bucket, schema) = (format!("sf{tag}"), format!("RAW_FAULT_{tag}"));
    create_bucket(&s3, &bucket);
    let env = Env::new(&gh, &["repository", "pull_request"]);
    let spec = std::fs::read_to_string(&env.spec).unwrap();
    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sinks/snowflake/tests/fixtures/test_key.p8"
    );
    let tail = format!(
        "staging:\n  type: s3\n  bucket: {bucket}\n  prefix: github\n  region: us-east-1\n  endpoint: {s3}\n  allow_http: true\nwarehouse:\n  type: snowflake\n  account: test.us-east-1\n  user: flowctl\n  schema: {schema}\n  private_key_path: {key}\n  storage_integration: TEST_INT\n  base_url: {sf}\n"
    );
    let i = spec.find("staging:").unwrap();
    std::fs::write(&env.spec, format!("{}{tail}", &spec[..i])).unwrap();
    // Create the schema and the other tables with a first run of one stream.
    env.apply_with_env(&["--streams", "repository"], AWS)
        .success();
    let ddl = flowctl()
        .args([
            "sql",
            "raw-tables",
            "--database",
            "GITHUB_PIPELINES",
            "--schema",
            &schema,
        ])
        .output()
        .unwrap();
    let ddl = String::from_utf8_lossy(&ddl.stdout).into_owned();
    let create = ddl
        .split(';')
        .find(|s| s.contains("\"PULL_REQUEST\" ("))
        .unwrap_or_else(|| panic!("no PULL_REQUEST DDL in {ddl}"));
    let cut = create.rfind(')').unwrap();
    let poisoned = format!("{}, \"BOOM\" NUMBER(38,0) NOT NULL)", &create[..cut]);
    let r = snowflake_sql(&sf, &schema, &poisoned);
    assert!(r["code"].is_string(), "{r}");

    let first = env.apply_with_env(&[], AWS);
    assert!(!first.stderr.contains("panicked"), "{}", first.stderr);
    assert_eq!(first.code, 1, "{}", first.stderr);
    assert!(first.stderr.contains("PULL_REQUEST"), "{}", first.stderr);
    assert!(
        env.state_show_with_env(AWS)["streams"]["pull_request"].is_null(),
        "state advanced"
    );
    let q = |t: &str| format!("SELECT COUNT(*) FROM \"GITHUB_PIPELINES\".\"{schema}\".\"{t}\"");
    assert_eq!(snowflake_count(&sf, &schema, &q("PULL_REQUEST")), 0);

    snowflake_sql(
        &sf,
        &schema,
        &format!(
            "ALTER TABLE \"GITHUB_PIPELINES\".\"{schema}\".\"PULL_REQUEST\" DROP COLUMN \"BOOM\""
        ),
    );
    let second = env.apply_with_env(&[], AWS);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let want = gh.expected().total_prs() as i64;
    let got = snowflake_count(&sf, &schema, &q("PULL_REQUEST"));
    let distinct = snowflake_count(&sf, &schema, &format!(
        "SELECT COUNT(DISTINCT \"_ROW_KEY\") FROM \"GITHUB_PIPELINES\".\"{schema}\".\"PULL_REQUEST\""
    ));
    eprintln!(
        "FAULT SUMMARY {:<28} faults injected {:>4}  runs 2  first exit 1  rows lost {}  duplicates {}",
        "snowflake MERGE failure", 1, want - distinct, got - distinct
    );
    assert_eq!((got, distinct), (want, want));
    gh.shutdown().await;
}

fn snowflake_url() -> Option<String> {
    emulator("FLOWCTL_TEST_SNOWFLAKE_URL")
}
