//! The engine prepares and loads tables concurrently, up to what the warehouse allows
//! (`WarehouseLoader::max_concurrent_loads`; Snowflake's `load_concurrency`, default 4),
//! and commits each stream's state after its own load. Real parts: the GitHub stand-in,
//! the github source, local staging and DuckDB; the DuckDB loader is wrapped to count
//! table preparations and loads in flight, holding each one (100 / 300 ms) so that
//! overlap is observable.

use flowctl_core::engine::{self, Plugins, RunOptions};
use flowctl_core::{
    async_trait, LoadStats, StagedFile, StagingLocation, TableSpec, WarehouseLoader,
};
use flowctl_github_standin::{Standin, StandinConfig};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

// Link the real plugins (inventory registers what is linked).
use flowctl_duckdb as _;
use flowctl_github as _;
use flowctl_object_store as _;

/// The real DuckDB loader, instrumented: counts loads in flight and their maximum.
struct CountingLoader {
    inner: Box<dyn WarehouseLoader>,
    limit: usize,
    in_flight: AtomicUsize,
    max_in_flight: Arc<AtomicUsize>,
    preparing: AtomicUsize,
    max_preparing: Arc<AtomicUsize>,
}

#[async_trait]
impl WarehouseLoader for CountingLoader {
    fn max_concurrent_loads(&self) -> usize {
        self.limit
    }
    async fn ensure_table(&self, table: &TableSpec) -> flowctl_core::Result<()> {
        let now = self.preparing.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_preparing.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let result = self.inner.ensure_table(table).await;
        self.preparing.fetch_sub(1, Ordering::SeqCst);
        result
    }
    async fn load(
        &self,
        table: &TableSpec,
        files: &[StagedFile],
        staging: &StagingLocation,
    ) -> flowctl_core::Result<LoadStats> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let result = self.inner.load(table, files, staging).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

/// Most loads and most table preparations seen in flight, the run's summary, and the
/// streams whose state was committed.
struct Seen {
    loads: usize,
    preparing: usize,
    summary: engine::RunSummary,
    committed: Vec<String>,
}

async fn run_with_limit(gh: &Standin, limit: usize) -> Seen {
    let dir = tempfile::tempdir().unwrap();
    // A token file, not an env var: setting env vars races other tests of this binary.
    let token = dir.path().join("token");
    std::fs::write(&token, "ghp_engine_loads_not_secret").unwrap();
    let source = flowctl_core::find_source("github").unwrap();
    let staging = flowctl_core::find_staging("local").unwrap();
    let warehouse = flowctl_core::find_warehouse("duckdb").unwrap();
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let max_preparing = Arc::new(AtomicUsize::new(0));
    let plugins = Plugins {
        source: (source.build)(json!({
            "base_url": gh.base_url(),
            "orgs": gh.org_names(),
            "streams": ["repository", "pull_request", "pull_request_review", "commit", "commit_file"],
            "token": {"file": token},
        }))
        .unwrap(),
        staging: (staging.build)(json!({"path": dir.path().join("staging")})).unwrap(),
        warehouse: Box::new(CountingLoader {
            inner: (warehouse.build)(json!({"path": dir.path().join("warehouse.duckdb")}))
                .unwrap(),
            limit,
            in_flight: AtomicUsize::new(0),
            max_in_flight: max_in_flight.clone(),
            preparing: AtomicUsize::new(0),
            max_preparing: max_preparing.clone(),
        }),
    };
    let location = plugins.staging.location().unwrap();
    let store = engine::state_store_for(&location);
    let summary = engine::run("loads", &plugins, &store, &RunOptions::default())
        .await
        .unwrap();
    let state = store.load("loads", None).await.unwrap();
    Seen {
        loads: max_in_flight.load(Ordering::SeqCst),
        preparing: max_preparing.load(Ordering::SeqCst),
        summary,
        committed: state.streams.keys().cloned().collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_are_prepared_and_loaded_concurrently_up_to_the_warehouse_limit() {
    let gh = Standin::start(StandinConfig {
        orgs: 1,
        repos_per_org: 2,
        prs_per_repo: 20,
        reviews_per_pr: 1,
        commits_per_repo: 5,
        files_per_commit: 2,
        latency_ms: 0,
        seed: 5,
    })
    .await
    .unwrap();
    let expected = gh.expected();
    for (limit, want_max) in [(4, 4), (1, 1), (8, 5)] {
        let Seen {
            loads,
            preparing,
            summary,
            committed,
        } = run_with_limit(&gh, limit).await;
        assert!(summary.ok, "limit {limit}: {summary:?}");
        assert_eq!(loads, want_max, "limit {limit}: loads in flight at most");
        assert_eq!(
            preparing, want_max,
            "limit {limit}: table preparations in flight at most"
        );
        // Summaries keep the streams' order; every stream loaded and committed.
        let names: Vec<&str> = summary.streams.iter().map(|s| s.stream.as_str()).collect();
        assert_eq!(
            names,
            [
                "repository",
                "pull_request",
                "pull_request_review",
                "commit",
                "commit_file"
            ],
            "limit {limit}"
        );
        assert_eq!(committed.len(), 5, "limit {limit}: {committed:?}");
        let prs: usize = expected.orgs.iter().map(|o| o.prs).sum();
        let pr = &summary.streams[1];
        assert_eq!(pr.inserted as usize, prs, "limit {limit}: {pr:?}");
        assert_eq!(pr.statements, 3, "limit {limit}: {pr:?}");
    }
    gh.shutdown().await;
}
