//! Checkpoints, partial failures and bounded runs, end to end: the real `flowctl` binary
//! reads the GitHub stand-in, stages to a local folder and loads DuckDB.
//!
//! - a run killed after its first checkpoints keeps the checkpointed repositories' rows
//!   and cursors, and the rerun requests only the repositories that were not checkpointed;
//! - a repository that keeps failing does not hold back the others: they are loaded and
//!   their cursors committed, the run exits 1 naming it, and the next run reads only it;
//! - `--max-duration` stops a run cleanly, and successive bounded runs finish the sync
//!   with nothing lost and nothing doubled;
//! - a repository cut short keeps the pull requests and reviews it had sent: the next run
//!   requests the reviews of the others only.

use flowctl_github_standin::{data, Faults, GraphqlFaults, Standin, StandinConfig};
use flowctl_testkit::*;
use std::collections::BTreeSet;
use std::time::Duration;

/// The request counts below are the REST path's (progress inside a repository is offered
/// from REST pages of pull requests).
const REST: &[(&str, &str)] = &[("api", "rest")];

fn world(repos: usize, prs: usize, latency_ms: u64) -> StandinConfig {
    StandinConfig {
        orgs: 1,
        repos_per_org: repos,
        prs_per_repo: prs,
        reviews_per_pr: 1,
        commits_per_repo: 6,
        files_per_commit: 2,
        latency_ms,
        seed: 35,
    }
}

/// Appends a `run:` block to the spec.
fn with_run_block(env: &Env, lines: &str) {
    let mut spec = std::fs::read_to_string(&env.spec).unwrap();
    spec.push_str("run:\n");
    spec.push_str(lines);
    std::fs::write(&env.spec, spec).unwrap();
}

/// The repositories (`org/repo`) whose cursors a stream's saved state holds.
fn repos_in_state(state: &serde_json::Value, stream: &str) -> BTreeSet<String> {
    state["streams"][stream]["cursor"]["repos"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn rows_of(env: &Env, table: &str, key: &str) -> i64 {
    let (org, repo) = key.split_once('/').unwrap();
    env.query_i64(&format!(
        "SELECT COUNT(*) FROM RAW_TABLES.\"{table}\" WHERE ORG = '{org}' AND REPO_NAME = '{repo}'"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_after_checkpoints_keeps_them_and_the_rerun_reads_only_the_rest() {
    let (repos, prs, commits) = (6usize, 30usize, 6usize);
    let gh = Standin::start(world(repos, prs, 15)).await.unwrap();
    let reference = Env::with_source_options(&gh, ALL_STREAMS, REST);
    reference.apply(&[]).success();
    let want = reference.content_snapshot();

    // One repository at a time and a checkpoint at every finished one.
    let env = Env::with_source_options(&gh, ALL_STREAMS, &[("max_concurrency", "1"), REST[0]]);
    with_run_block(&env, "  checkpoint_interval: 0s\n");
    let state_file = env.staging_dir().join("_state").join("e2e.json");
    let mut child = env.spawn_apply(&[]);
    wait_until(
        || {
            std::fs::read(&state_file)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|s| repos_in_state(&s, "pull_request_review").len() >= 2)
        },
        120_000,
    );
    child.kill().unwrap();
    child.wait().unwrap();

    let state = env.state_show();
    let reviewed = repos_in_state(&state, "pull_request_review");
    let pulled = repos_in_state(&state, "pull_request");
    let filed = repos_in_state(&state, "commit_file");
    assert!(
        reviewed.len() >= 2 && reviewed.len() < repos,
        "killed after 2 checkpointed repositories, before the end: {reviewed:?}"
    );
    // What a checkpoint committed is in the warehouse, whole.
    for key in &pulled {
        assert_eq!(rows_of(&env, "PULL_REQUEST", key), prs as i64, "{key}");
    }
    for key in &reviewed {
        assert_eq!(
            rows_of(&env, "PULL_REQUEST_REVIEW", key),
            prs as i64,
            "{key}"
        );
    }
    for key in &filed {
        let files = (commits * 2) as i64;
        assert_eq!(rows_of(&env, "COMMIT_FILE", key), files, "{key}");
    }

    // The rerun re-requests only what no checkpoint covered: one reviews list per pull
    // request of the repositories not finished, less those a checkpoint had covered
    // within a repository (`partial`), and one single-commit request per commit.
    let covered: i64 = state["streams"]["pull_request_review"]["cursor"]["partial"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, span)| {
            let (org, repo) = key.split_once('/').unwrap();
            reference.query_i64(&format!(
                "SELECT COUNT(*) FROM RAW_TABLES.PULL_REQUEST WHERE ORG = '{org}' AND \
                 REPO_NAME = '{repo}' AND UPDATED_AT BETWEEN TIMESTAMPTZ '{}' AND TIMESTAMPTZ '{}'",
                span["from"].as_str().unwrap(),
                span["to"].as_str().unwrap()
            ))
        })
        .sum();
    gh.reset_stats();
    env.apply(&[]).success();
    let st = gh.stats();
    assert_eq!(
        st.kind("reviews") as i64,
        ((repos - reviewed.len()) * prs) as i64 - covered,
        "reviews re-requested for checkpointed pull requests"
    );
    assert_eq!(st.kind("commit"), ((repos - filed.len()) * commits) as u64);
    assert_eq!(env.content_snapshot(), want);
    env.assert_no_duplicate_keys();
    gh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_repository_keeps_its_cursor_while_the_others_load_and_commit() {
    // Five repositories: the stand-in archives the last of four (skipped by default).
    let (repos, prs) = (5usize, 20usize);
    let gh = Standin::start(world(repos, prs, 1)).await.unwrap();
    let reference = Env::with_source_options(&gh, ALL_STREAMS, REST);
    reference.apply(&[]).success();
    let want = reference.content_snapshot();
    let org = data::org_name(0);
    let broken = data::repo_name(2);
    let broken_key = format!("{org}/{broken}");

    let env = Env::with_source_options(&gh, ALL_STREAMS, &[("max_retries", "1"), REST[0]]);
    gh.set_faults(Faults {
        fail_5xx_repo: Some(broken.clone()),
        ..Default::default()
    });
    let out = env.apply(&[]);
    gh.set_faults(Faults::default());
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(out.stderr.contains(&broken_key), "{}", out.stderr);
    let pr = stream(&out.summary, "pull_request");
    assert_eq!(pr["status"], "failed", "{pr}");
    assert!(pr["error"].as_str().unwrap().contains(&broken_key), "{pr}");
    assert_eq!(out.summary["complete"], false);

    // The other repositories are loaded and their cursors committed; the broken one
    // has no cursor and no rows.
    let state = env.state_show();
    for stream_name in [
        "pull_request",
        "pull_request_review",
        "commit",
        "commit_file",
    ] {
        let got = repos_in_state(&state, stream_name);
        let others: BTreeSet<String> = (0..repos)
            .filter(|j| *j != 2)
            .map(|j| format!("{org}/{}", data::repo_name(j)))
            .collect();
        assert_eq!(got, others, "{stream_name}");
    }
    for j in (0..repos).filter(|j| *j != 2) {
        let key = format!("{org}/{}", data::repo_name(j));
        assert_eq!(rows_of(&env, "PULL_REQUEST", &key), prs as i64, "{key}");
        assert_eq!(rows_of(&env, "PULL_REQUEST_REVIEW", &key), prs as i64);
    }
    assert_eq!(rows_of(&env, "PULL_REQUEST", &broken_key), 0);

    // The next run reads the broken repository only.
    gh.reset_stats();
    let summary = env.apply(&[]).success();
    assert_eq!(summary["complete"], true);
    assert_eq!(gh.stats().kind("reviews"), prs as u64);
    assert_eq!(env.content_snapshot(), want);
    env.assert_no_duplicate_keys();
    gh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_runs_stop_cleanly_and_finish_the_sync_together() {
    let gh = Standin::start(world(8, 20, 50)).await.unwrap();
    let reference = Env::with_source_options(&gh, ALL_STREAMS, REST);
    reference.apply(&[]).success();
    let want = reference.content_snapshot();

    let env = Env::with_source_options(&gh, ALL_STREAMS, &[("max_concurrency", "2"), REST[0]]);
    with_run_block(&env, "  max_duration: 1h\n");
    let mut runs = Vec::new();
    loop {
        // The flag overrides the spec's `run.max_duration`.
        let out = env.apply(&["--max-duration", "2s"]);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        // A run stopped at its deadline is not a failure: exit 0, `complete: false`.
        let said = out.stdout.contains("stopped at the deadline");
        let summary = out.success();
        let complete = summary["complete"].as_bool().unwrap();
        assert_eq!(said, !complete, "{summary}");
        runs.push(complete);
        if complete {
            break;
        }
        assert!(runs.len() < 30, "no end after 30 bounded runs");
    }
    eprintln!("bounded runs: {} to finish the sync", runs.len());
    assert!(
        runs.len() > 1,
        "the first 2 s run already finished: {runs:?}"
    );
    assert_eq!(env.content_snapshot(), want);
    env.assert_no_duplicate_keys();
    gh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_cut_short_by_the_deadline_keeps_what_it_had_sent() {
    // One repository of 300 pull requests (three pages), read one request at a time:
    // the reviews alone take 300 round trips, far more than the 1 s deadline.
    let prs = 300usize;
    let gh = Standin::start(world(1, prs, 10)).await.unwrap();
    let reference = Env::with_source_options(&gh, ALL_STREAMS, REST);
    reference.apply(&[]).success();
    let want = reference.content_snapshot();

    let env = Env::with_source_options(&gh, ALL_STREAMS, &[("max_concurrency", "1"), REST[0]]);
    let first = env.apply(&["--max-duration", "1s"]);
    assert!(!first.stderr.contains("panicked"), "{}", first.stderr);
    let summary = first.success();
    assert_eq!(summary["complete"], false, "{summary}");
    let key = format!("{}/{}", data::org_name(0), data::repo_name(0));
    assert!(
        summary["warnings"].to_string().contains(&key),
        "the unfinished repository is named: {summary}"
    );
    let state = env.state_show();
    let span = &state["streams"]["pull_request_review"]["cursor"]["partial"][&key];
    assert!(span.is_object(), "no progress kept: {state}");
    let covered = reference.query_i64(&format!(
        "SELECT COUNT(*) FROM RAW_TABLES.PULL_REQUEST WHERE UPDATED_AT BETWEEN TIMESTAMPTZ '{}' AND TIMESTAMPTZ '{}'",
        span["from"].as_str().unwrap(),
        span["to"].as_str().unwrap()
    ));
    assert!(covered > 0 && covered < prs as i64, "{covered}");
    // What the span covers is in the warehouse.
    assert!(env.query_i64("SELECT COUNT(*) FROM RAW_TABLES.PULL_REQUEST_REVIEW") >= covered);

    gh.reset_stats();
    let summary = env.apply(&[]).success();
    assert_eq!(summary["complete"], true);
    assert_eq!(gh.stats().kind("reviews") as i64, prs as i64 - covered);
    let state = env.state_show();
    assert!(
        state["streams"]["pull_request_review"]["cursor"]["partial"].is_null(),
        "a finished repository keeps no span: {state}"
    );
    assert_eq!(env.content_snapshot(), want);
    env.assert_no_duplicate_keys();
    gh.shutdown().await;
}

/// The deadline ends a GraphQL rate-limit wait as it ends a REST one: the run stops, keeps
/// what it has and exits 0 instead of waiting for a reset ten minutes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_ends_a_graphql_rate_limit_wait() {
    let gh = Standin::start(world(2, 20, 0)).await.unwrap();
    gh.set_graphql_faults(GraphqlFaults {
        rate_limited_next: 1_000,
        rate_limited_reset_secs: 600,
        ..Default::default()
    });
    let env = Env::with_source_options(
        &gh,
        &["pull_request", "pull_request_review"],
        &[("api", "graphql")],
    );
    let summary = env.dir.path().join("bounded.json");
    let mut cmd = flowctl();
    cmd.arg("apply")
        .arg(&env.spec)
        .args(["--max-duration", "2s", "--output"])
        .arg(&summary)
        .env("E2E_GITHUB_TOKEN", "ghp_e2e_token_not_secret");
    // Killed after 120 s, well before the reset: a run still waiting for it is caught.
    let (code, stdout, stderr) = run_bounded(cmd, Duration::from_secs(120));
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("stopped at the deadline"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(summary["complete"], false, "{summary}");
    assert!(
        summary.to_string().contains("RATE_LIMITED") || stderr.contains("RATE_LIMITED"),
        "the run did meet the rate limit: {summary}\n{stderr}"
    );
    gh.shutdown().await;
}
