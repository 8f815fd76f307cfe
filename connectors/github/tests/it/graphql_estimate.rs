//! `plan --estimate` against what a run then spends on the stand-in: within 10%, for a
//! first and an incremental sync, over GraphQL and over REST.

use crate::common;

use common::run_source;
use flowctl_core::StreamResult;
use flowctl_github::estimate::estimate;
use flowctl_github::GithubConfig;
use flowctl_github_standin::{Standin, StandinConfig};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

fn config(s: &Standin, api: &str, streams: &[&str]) -> GithubConfig {
    GithubConfig::from_value(json!({
        "orgs": s.org_names(),
        "base_url": s.base_url(),
        "api": api,
        "streams": streams,
    }))
    .unwrap()
}

/// (REST requests counted against the quota, GraphQL points) since the last reset.
fn spent(s: &Standin, points_before: u64) -> (u64, u64) {
    let st = s.stats();
    (
        st.counted() - st.kind("graphql"),
        s.graphql_points() - points_before,
    )
}

fn within_10pct(what: &str, est: (u64, u64), got: (u64, u64)) {
    for (e, g, unit) in [(est.0, got.0, "requests"), (est.1, got.1, "points")] {
        let d = e.abs_diff(g) as f64;
        assert!(
            d <= 0.1 * g as f64,
            "{what}: estimated {e} {unit}, the run spent {g}"
        );
    }
}

async fn sync(
    cfg: GithubConfig,
    streams: &[&str],
    state: BTreeMap<String, Value>,
) -> BTreeMap<String, Value> {
    let p: flowctl_core::progress::Progress = Arc::new(flowctl_core::progress::NoProgress);
    let (res, _) = run_source(cfg, streams, state, None, p).await;
    res.unwrap()
        .streams
        .into_iter()
        .map(|(k, r)| match r {
            StreamResult::Done { state } => (k, state),
            other => panic!("{k}: {other:?}"),
        })
        .collect()
}

async fn check(api: &str, streams: &[&str]) {
    let s = Standin::start(StandinConfig {
        repos_per_org: 5,
        prs_per_repo: 200,
        commits_per_repo: 120,
        ..Default::default()
    })
    .await
    .unwrap();
    let cfg = config(&s, api, streams);
    let est = estimate(&cfg, 50).await.unwrap();
    assert_eq!(est.repos.len(), 5);
    assert_eq!(est.repos.iter().map(|r| r.prs).sum::<u64>(), 1000);
    assert!(
        est.counting_points <= 4,
        "counting is cheap: {}",
        est.counting_points
    );
    let text = est.render();
    assert!(
        text.contains("quota per hour: 1000000 REST requests"),
        "{text}"
    );
    let (first, inc) = est.totals();
    s.reset_stats();
    let p0 = s.graphql_points();
    let state = sync(cfg.clone(), streams, BTreeMap::new()).await;
    within_10pct(&format!("{api} first sync"), first, spent(&s, p0));
    // Nothing changed: free, as estimated for unchanged repositories.
    s.reset_stats();
    let p1 = s.graphql_points();
    let state = sync(cfg.clone(), streams, state).await;
    let idle = spent(&s, p1);
    assert_eq!(idle.1, 0);
    // 50 PRs changed (the stand-in has no new commits: compare PR streams only).
    if !streams.contains(&"commit") {
        s.touch_pull_requests(50);
        s.reset_stats();
        let p2 = s.graphql_points();
        sync(cfg.clone(), streams, state).await;
        within_10pct(&format!("{api} incremental"), inc, spent(&s, p2));
    }
    s.shutdown().await;
}

#[tokio::test]
async fn estimate_matches_a_graphql_run() {
    check(
        "graphql",
        &["repository", "pull_request", "pull_request_review"],
    )
    .await;
}

#[tokio::test]
async fn estimate_matches_a_rest_run() {
    check(
        "rest",
        &["repository", "pull_request", "pull_request_review"],
    )
    .await;
}

#[tokio::test]
async fn estimate_matches_a_first_sync_of_the_default_streams() {
    check(
        "graphql",
        &[
            "repository",
            "pull_request",
            "pull_request_review",
            "commit",
            "commit_file",
        ],
    )
    .await;
}

#[tokio::test]
async fn commit_file_is_said_to_cost_a_request_per_commit() {
    let s = Standin::start(StandinConfig::default()).await.unwrap();
    let est = estimate(&config(&s, "graphql", &["commit_file"]), 10)
        .await
        .unwrap();
    let line = est
        .lines
        .iter()
        .find(|l| l.stream == "commit_file")
        .unwrap();
    assert_eq!(line.first.0, 3 * 120);
    assert!(est.render().contains("one REST request per commit"));
    s.shutdown().await;
}
