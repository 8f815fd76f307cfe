//! The engine completes an org's staged files as soon as the source declares the org
//! (its partition) done (`BatchSender::partition_done`), instead of holding every org's open row groups and
//! upload buffers until the whole read ends. Real parts: the GitHub stand-in (two orgs),
//! the github source, local staging and DuckDB; the staging sink is wrapped only to log
//! the order in which writers are opened and finished.
//!
//! The second test's source is an in-process fake: it breaks the contract on purpose
//! (a batch after `partition_done`), which no real source does.

use flowctl_core::engine::{self, Plugins, RunOptions};
use flowctl_core::{
    async_trait, BatchSender, ReadOutcome, ReadRequest, Source, StageTarget, StagedFile,
    StagedWriter, StagingLocation, StagingSink, StreamInfo, TaggedBatch,
};
use flowctl_github_standin::{Standin, StandinConfig};
use serde_json::json;
use std::sync::{Arc, Mutex};

use flowctl_duckdb as _;
use flowctl_github as _;
use flowctl_object_store as _;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Opened(String, String),
    Finished(String, String),
}

type Log = Arc<Mutex<Vec<Event>>>;

/// The real local sink, logging writer opens and finishes.
struct LoggingSink {
    inner: Box<dyn StagingSink>,
    log: Log,
}

struct LoggingWriter {
    inner: Box<dyn StagedWriter>,
    key: (String, String),
    log: Log,
}

#[async_trait]
impl StagedWriter for LoggingWriter {
    async fn write(
        &mut self,
        batch: &arrow::record_batch::RecordBatch,
    ) -> flowctl_core::Result<()> {
        self.inner.write(batch).await
    }
    async fn finish(self: Box<Self>) -> flowctl_core::Result<Vec<StagedFile>> {
        let (table, org) = self.key.clone();
        self.log.lock().unwrap().push(Event::Finished(table, org));
        self.inner.finish().await
    }
    async fn abort(self: Box<Self>) {
        self.inner.abort().await
    }
}

#[async_trait]
impl StagingSink for LoggingSink {
    fn location(&self) -> flowctl_core::Result<StagingLocation> {
        self.inner.location()
    }
    async fn writer(&self, target: StageTarget) -> flowctl_core::Result<Box<dyn StagedWriter>> {
        assert_eq!(target.partition_key, "org", "GitHub's partitions are orgs");
        let key = (target.table.clone(), target.partition.clone());
        self.log
            .lock()
            .unwrap()
            .push(Event::Opened(key.0.clone(), key.1.clone()));
        Ok(Box::new(LoggingWriter {
            inner: self.inner.writer(target).await?,
            key,
            log: self.log.clone(),
        }))
    }
    async fn after_load(&self, files: &[StagedFile]) -> flowctl_core::Result<()> {
        self.inner.after_load(files).await
    }
}

fn logging_staging(dir: &std::path::Path, log: &Log) -> Box<dyn StagingSink> {
    let staging = flowctl_core::find_staging("local").unwrap();
    Box::new(LoggingSink {
        inner: (staging.build)(json!({"path": dir.join("staging")})).unwrap(),
        log: log.clone(),
    })
}

fn duckdb(dir: &std::path::Path) -> Box<dyn flowctl_core::WarehouseLoader> {
    let warehouse = flowctl_core::find_warehouse("duckdb").unwrap();
    (warehouse.build)(json!({"path": dir.join("warehouse.duckdb")})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orgs_files_are_completed_before_the_next_org_is_staged() {
    let gh = Standin::start(StandinConfig {
        orgs: 2,
        repos_per_org: 2,
        prs_per_repo: 30,
        reviews_per_pr: 1,
        commits_per_repo: 4,
        files_per_commit: 2,
        latency_ms: 0,
        seed: 11,
    })
    .await
    .unwrap();
    let orgs = gh.org_names();
    let dir = tempfile::tempdir().unwrap();
    let log: Log = Arc::default();
    let source = flowctl_core::find_source("github").unwrap();
    let plugins = Plugins {
        source: (source.build)(json!({
            "base_url": gh.base_url(),
            "orgs": orgs,
            "streams": ["repository", "pull_request", "pull_request_review", "commit"],
        }))
        .unwrap(),
        staging: logging_staging(dir.path(), &log),
        warehouse: duckdb(dir.path()),
    };
    let store = engine::state_store_for(&plugins.staging.location().unwrap());
    let summary = engine::run("orgs", &plugins, &store, &RunOptions::default())
        .await
        .unwrap();
    assert!(summary.ok, "{summary:?}");
    let expected = gh.expected();
    let prs: usize = expected.orgs.iter().map(|o| o.prs).sum();
    let pr = summary
        .streams
        .iter()
        .find(|s| s.stream == "pull_request")
        .unwrap();
    assert_eq!(pr.inserted as usize, prs, "{pr:?}");

    let log = log.lock().unwrap().clone();
    let (first, second) = (&orgs[0], &orgs[1]);
    let opened_first: Vec<&String> = log
        .iter()
        .filter_map(|e| match e {
            Event::Opened(t, o) if o == first => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(
        opened_first.len(),
        4,
        "one writer per table of {first}: {log:?}"
    );
    let first_of_second = log
        .iter()
        .position(|e| matches!(e, Event::Opened(_, o) if o == second))
        .expect("the second org was staged");
    for table in opened_first {
        let finished = log
            .iter()
            .position(|e| *e == Event::Finished(table.clone(), first.clone()))
            .unwrap_or_else(|| panic!("{table} of {first} never finished: {log:?}"));
        assert!(
            finished < first_of_second,
            "{table} of {first} finished at {finished}, after {second} was opened at {first_of_second}: {log:?}"
        );
    }
    // Every writer is finished exactly once.
    for e in &log {
        if let Event::Opened(t, o) = e {
            let n = log
                .iter()
                .filter(|x| **x == Event::Finished(t.clone(), o.clone()))
                .count();
            assert_eq!(n, 1, "{t}/{o}: {log:?}");
        }
    }
    gh.shutdown().await;
}

/// In-process fake source: declares its org done, then sends a batch for it anyway.
struct ContractBreakingSource {
    inner: Box<dyn Source>,
}

#[async_trait]
impl Source for ContractBreakingSource {
    fn streams(&self) -> Vec<StreamInfo> {
        self.inner.streams()
    }
    fn partition_key(&self) -> &'static str {
        self.inner.partition_key()
    }
    async fn read(
        &self,
        request: ReadRequest,
        out: BatchSender,
    ) -> flowctl_core::Result<ReadOutcome> {
        // Read for real into a private channel, then replay with a late batch.
        let (tx, mut rx) = flowctl_core::batch_channel(64);
        let collect = tokio::spawn(async move {
            let mut v: Vec<TaggedBatch> = Vec::new();
            while let Some(b) = rx.recv().await {
                v.push(b);
            }
            v
        });
        let outcome = self.inner.read(request, tx).await?;
        let batches = collect.await.unwrap();
        let (last, rest) = batches.split_last().expect("the stand-in sends rows");
        for b in rest {
            out.send(b.clone()).await.ok();
        }
        out.partition_done(&last.partition).await.ok();
        out.send(last.clone()).await.ok();
        Ok(outcome)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_after_partition_done_fails_the_run_with_fake_source() {
    let gh = Standin::start(StandinConfig {
        orgs: 1,
        repos_per_org: 1,
        prs_per_repo: 5,
        reviews_per_pr: 0,
        commits_per_repo: 0,
        files_per_commit: 0,
        latency_ms: 0,
        seed: 12,
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log: Log = Arc::default();
    let source = flowctl_core::find_source("github").unwrap();
    let inner = (source.build)(json!({
        "base_url": gh.base_url(),
        "orgs": gh.org_names(),
        "streams": ["pull_request"],
    }))
    .unwrap();
    let plugins = Plugins {
        source: Box::new(ContractBreakingSource { inner }),
        staging: logging_staging(dir.path(), &log),
        warehouse: duckdb(dir.path()),
    };
    let store = engine::state_store_for(&plugins.staging.location().unwrap());
    let err = engine::run("late", &plugins, &store, &RunOptions::default())
        .await
        .expect_err("a batch after partition_done must fail the run");
    let msg = err.to_string();
    assert!(
        msg.contains("after declaring the org done") && msg.contains("pull_request"),
        "{msg}"
    );
    // Nothing was committed: the next run reads the same range again.
    let state = store.load("late", None).await.unwrap();
    assert!(state.streams.is_empty(), "{:?}", state.streams);
    gh.shutdown().await;
}
