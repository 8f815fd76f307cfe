//! Quota per 1,000 PRs, REST against GraphQL, on the stand-in with 150 ms of latency a
//! request: a first sync, a rerun with nothing changed and an incremental run after 50
//! PRs changed, for pull requests + reviews and for the five default streams.
//! Run: `cargo bench -p flowctl-github --bench quota [-- LATENCY_MS]`

use flowctl_core::progress::NoProgress;
use flowctl_core::{ReadRequest, Source, StreamResult};
use flowctl_github::{GithubConfig, GithubSource};
use flowctl_github_standin::{Standin, StandinConfig};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

async fn sync(
    standin: &Standin,
    api: &str,
    streams: &[&str],
    state: BTreeMap<String, Value>,
) -> (BTreeMap<String, Value>, u64, u64, f64) {
    let config = GithubConfig::from_value(serde_json::json!({
        "orgs": standin.org_names(), "base_url": standin.base_url(), "api": api,
        "streams": streams, "token": {"env": "BENCH_QUOTA_TOKEN"},
    }))
    .expect("config");
    let src = GithubSource::from_config(config).expect("source");
    let (tx, mut rx) = flowctl_core::batch_channel(4);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    standin.reset_stats();
    let points = standin.graphql_points();
    let req = ReadRequest {
        streams: streams.iter().map(|s| s.to_string()).collect(),
        state,
        batch_id: "bench".into(),
        ingested_at: chrono::Utc::now(),
        only_partitions: vec![],
        shard: None,
        progress: Arc::new(NoProgress),
    };
    let start = Instant::now();
    let outcome = src.read(req, tx).await.expect("read");
    let _ = drain.await;
    let secs = start.elapsed().as_secs_f64();
    let st = standin.stats();
    let state = outcome
        .streams
        .into_iter()
        .map(|(k, r)| match r {
            StreamResult::Done { state } => (k, state),
            other => panic!("{k}: {other:?}"),
        })
        .collect();
    (
        state,
        st.counted() - st.kind("graphql"),
        standin.graphql_points() - points,
        secs,
    )
}

#[tokio::main]
async fn main() {
    std::env::set_var("BENCH_QUOTA_TOKEN", "ghp_bench_not_secret");
    let latency = std::env::args()
        .filter(|a| !a.starts_with('-'))
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(150);
    let prs_only: &[&str] = &["pull_request", "pull_request_review"];
    let five: &[&str] = &[
        "repository",
        "pull_request",
        "pull_request_review",
        "commit",
        "commit_file",
    ];
    println!(
        "5 repos x 200 PRs (1,000 PRs, 2 reviews each, 120 commits a repo), {latency} ms a request"
    );
    println!("| streams | api | first sync | rerun, nothing changed | after 50 PRs changed |");
    println!("|---|---|---|---|---|");
    for (label, streams) in [("PRs + reviews", prs_only), ("five default streams", five)] {
        for api in ["rest", "graphql"] {
            // A fresh world each time: touched PRs would otherwise carry over.
            let standin = Standin::start(StandinConfig {
                repos_per_org: 5,
                prs_per_repo: 200,
                latency_ms: latency,
                ..Default::default()
            })
            .await
            .expect("stand-in");
            let (s1, r1, p1, t1) = sync(&standin, api, streams, BTreeMap::new()).await;
            let (s2, r2, p2, t2) = sync(&standin, api, streams, s1).await;
            standin.touch_pull_requests(50);
            let (_, r3, p3, t3) = sync(&standin, api, streams, s2).await;
            let cell = |r: u64, p: u64, t: f64| format!("{r} req + {p} pts = {} ({t:.1} s)", r + p);
            println!(
                "| {label} | {api} | {} | {} | {} |",
                cell(r1, p1, t1),
                cell(r2, p2, t2),
                cell(r3, p3, t3)
            );
            standin.shutdown().await;
        }
    }
}
