//! `flowctl state show|reset` and `flowctl serve` against the stand-in, local staging and
//! DuckDB.

use flowctl_github_standin::{Standin, StandinConfig};
use flowctl_testkit::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn tiny() -> StandinConfig {
    StandinConfig {
        orgs: 1,
        repos_per_org: 2,
        prs_per_repo: 30,
        reviews_per_pr: 1,
        commits_per_repo: 3,
        files_per_commit: 1,
        latency_ms: 0,
        seed: 3,
    }
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = flowctl()
        .args(args)
        .env("E2E_GITHUB_TOKEN", "ghp_x")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_show_and_reset_drive_the_next_run() {
    let gh = Standin::start(tiny()).await.unwrap();
    let env = Env::new(&gh, &["repository", "pull_request"]);
    let spec = env.spec.to_str().unwrap().to_string();

    let (code, out, err) = run(&["state", "show", &spec]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("\"pull_request\""),
        "no state before the first run: {out}"
    );

    let first = env.apply(&[]).success();
    assert_eq!(env.table_counts()["PULL_REQUEST"], 60, "{first}");
    let (code, out, err) = run(&["state", "show", &spec]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("\"pull_request\"") && out.contains("\"repository\""),
        "{out}"
    );

    // Nothing changed: the next run is all 304s.
    gh.reset_stats();
    env.apply(&[]).success();
    let quiet = gh.stats();
    assert_eq!(quiet.total, quiet.not_modified, "{quiet:?}");

    // Reset one stream: its next run backfills (real 200 pages), the other stays quiet.
    let (code, _, err) = run(&["state", "reset", &spec, "--stream", "pull_request"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(&["state", "show", &spec]);
    assert!(
        !out.contains("\"pull_request\"") && out.contains("\"repository\""),
        "{out}"
    );
    gh.reset_stats();
    let s = env.apply(&[]).success();
    assert!(gh.stats().kind("pulls") >= 2, "{:?}", gh.stats());
    // Backfilled rows are already in the table: MERGE re-applies them (newer
    // _INGESTED_AT) without adding any.
    assert_eq!(stream(&s, "pull_request")["inserted"], 0, "{s}");
    assert_eq!(stream(&s, "pull_request")["updated"], 60, "{s}");
    assert_eq!(env.table_counts()["PULL_REQUEST"], 60);

    // Reset everything.
    let (code, out, err) = run(&["state", "reset", &spec]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("backfills"), "{out}");
    gh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_on_schedule_and_stops_cleanly_on_sigterm() {
    let gh = Standin::start(tiny()).await.unwrap();
    let env = Env::new(&gh, &["pull_request"]);
    let mut yaml = std::fs::read_to_string(&env.spec).unwrap();
    yaml.push_str("schedule: \"*/2 * * * * *\"\n");
    std::fs::write(&env.spec, yaml).unwrap();

    let mut child = flowctl()
        .arg("serve")
        .arg(&env.spec)
        .env("E2E_GITHUB_TOKEN", "ghp_x")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first scheduled run loads the table.
    let state = env.staging_dir().join("_state/e2e.json");
    wait_until(|| state.exists(), 30_000);
    // SIGTERM: serve finishes any run in progress and exits 0.
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "serve did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "serve exit: {status:?}");
    assert_eq!(env.table_counts()["PULL_REQUEST"], 60);
    // No lease is left behind.
    assert!(!env.staging_dir().join("_state/e2e.lease").exists());
    gh.shutdown().await;
}
