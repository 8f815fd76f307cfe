//! Fault matrix: `flowctl apply` (the real binary) against the GitHub stand-in server
//! with faults switched on, local folder staging and embedded DuckDB. Every faulty run
//! either completes with tables equal to a clean run, or exits 1 with a clear message and
//! leaves the failed streams' state where it was; the next run, faults off, converges.
//! Each case prints one summary line: faults injected, runs, rows lost, duplicates.

mod common;

use common::*;
use flowctl_github_standin::{Faults, Standin, StandinConfig};
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

/// A warehouse error mid-run: the PULL_REQUEST target carries an extra NOT NULL column
/// the loader never fills, so its MERGE fails after COPY into the stage succeeded. The
/// stream must fail with its state unadvanced, the other streams load; once the column
/// is dropped, the next run converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_duckdb_merge_leaves_state_unadvanced_and_converges() {
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
