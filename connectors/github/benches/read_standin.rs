//! Full sync of pull requests from the stand-in over real HTTP (same process, so the
//! figures include the server's rendering): wall time, PRs/s, requests vs the minimum.
//! Run: `cargo bench -p flowctl-github --bench read_standin [-- ORGS REPOS PRS]`

use flowctl_core::progress::NoProgress;
use flowctl_core::{ReadRequest, Source};
use flowctl_github::{GithubConfig, GithubSource};
use flowctl_github_standin::{Standin, StandinConfig};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

fn arg(i: usize, default: usize) -> usize {
    std::env::args()
        .filter(|a| !a.starts_with('-'))
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let (orgs, repos, prs) = (arg(1, 2), arg(2, 5), arg(3, 4000));
    let cfg = StandinConfig {
        orgs,
        repos_per_org: repos,
        prs_per_repo: prs,
        ..Default::default()
    };
    let standin = Standin::start(cfg).await.expect("start the stand-in");
    for include_raw in [false, true] {
        let config = GithubConfig::from_value(serde_json::json!({
            "orgs": standin.org_names(), "base_url": standin.base_url(), "include_raw": include_raw,
        }))
        .expect("config");
        let src = GithubSource::from_config(config).expect("source");
        let (tx, mut rx) = flowctl_core::batch_channel(4);
        let drain = tokio::spawn(async move {
            let mut rows = 0usize;
            while let Some(b) = rx.recv().await {
                let b: flowctl_core::TaggedBatch = b;
                rows += b.batch.num_rows();
            }
            rows
        });
        standin.reset_stats();
        let req = ReadRequest {
            streams: vec!["pull_request".into()],
            state: BTreeMap::new(),
            batch_id: "bench".into(),
            ingested_at: chrono::Utc::now(),
            only_partitions: vec![],
            shard: None,
            progress: Arc::new(NoProgress),
        };
        let start = Instant::now();
        let outcome = src.read(req, tx).await;
        let rows = drain.await.unwrap_or(0);
        let secs = start.elapsed().as_secs_f64();
        let st = standin.stats();
        let minimum = orgs + orgs * repos * prs.div_ceil(100);
        println!(
            "_RAW {:<3}: {rows} PRs in {secs:.2} s = {:.0} PRs/s; requests {} (minimum {minimum}); ok={}",
            if include_raw { "on" } else { "off" },
            rows as f64 / secs,
            st.total,
            outcome.is_ok()
        );
    }
    standin.shutdown().await;
}
