//! The engine tries a step again when it failed transiently (`PluginError::retryable`) and
//! fails at once when it did not. Real parts: a simple source, local staging and DuckDB;
//! the loader and the sink are wrapped to inject the failures. The transient load failure
//! comes after the real load went through (an answer lost on the way back), so the retry
//! loads the same files a second time: the table must still hold each row once.

use flowctl_core::arrow::datatypes::DataType;
use flowctl_core::engine::{self, Plugins, Retries, RunOptions, RunSummary};
use flowctl_core::simple::{Rows, SimpleSource, Table};
use flowctl_core::{
    async_trait, LoadStats, PluginError, Result, StageTarget, StagedFile, StagedWriter,
    StagingLocation, StagingSink, TableSpec, WarehouseLoader,
};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowctl_duckdb as _;
use flowctl_object_store as _;

/// Ten rows, cursor `{"last": 10}`.
struct Ten;

#[async_trait]
impl SimpleSource for Ten {
    fn tables(&self) -> Vec<Table> {
        vec![Table::new(
            "thing",
            &[("id", DataType::Int64), ("name", DataType::Utf8)],
        )]
    }
    async fn rows(&self, out: &mut Rows<'_>) -> Result<Option<Value>> {
        for id in 1..=10 {
            out.push(json!({"id": id, "name": format!("thing {id}")}))
                .await?;
        }
        Ok(Some(json!({"last": 10})))
    }
}

/// What the wrapped loader does on each call of `load`, in order; then it just loads.
enum LoadFault {
    /// Load for real, then answer with a transient error.
    LoadThenTransient,
    /// Answer with an error that is not transient, loading nothing.
    Refuse,
    /// Answer with a transient error, loading nothing.
    Transient,
}

struct FaultyLoader {
    inner: Box<dyn WarehouseLoader>,
    faults: Mutex<Vec<LoadFault>>,
    calls: Arc<AtomicU32>,
}

#[async_trait]
impl WarehouseLoader for FaultyLoader {
    async fn ensure_table(&self, table: &TableSpec) -> Result<()> {
        self.inner.ensure_table(table).await
    }
    async fn load(
        &self,
        table: &TableSpec,
        files: &[StagedFile],
        staging: &StagingLocation,
    ) -> Result<LoadStats> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let fault = {
            let mut faults = self.faults.lock().unwrap();
            (!faults.is_empty()).then(|| faults.remove(0))
        };
        match fault {
            None => self.inner.load(table, files, staging).await,
            Some(LoadFault::LoadThenTransient) => {
                self.inner.load(table, files, staging).await?;
                Err(PluginError::transient(
                    "warehouse: HTTP 503 after the statement ran",
                ))
            }
            Some(LoadFault::Transient) => Err(PluginError::transient("warehouse: HTTP 503")),
            Some(LoadFault::Refuse) => Err(PluginError::external(
                "warehouse: insufficient privileges on table THING",
            )),
        }
    }
}

/// The local sink, whose first `writer` call fails transiently.
struct FlakySink {
    inner: Box<dyn StagingSink>,
    opened: AtomicU32,
}

#[async_trait]
impl StagingSink for FlakySink {
    fn location(&self) -> Result<StagingLocation> {
        self.inner.location()
    }
    async fn writer(&self, target: StageTarget) -> Result<Box<dyn StagedWriter>> {
        if self.opened.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(PluginError::transient("staging: connection reset"));
        }
        self.inner.writer(target).await
    }
    async fn after_load(&self, files: &[StagedFile]) -> Result<()> {
        self.inner.after_load(files).await
    }
}

fn plugins(dir: &Path, faults: Vec<LoadFault>, calls: &Arc<AtomicU32>) -> Plugins {
    let staging = flowctl_core::find_staging("local").unwrap();
    let warehouse = flowctl_core::find_warehouse("duckdb").unwrap();
    Plugins {
        source: Box::new(Ten),
        staging: Box::new(FlakySink {
            inner: (staging.build)(json!({"path": dir.join("staging")})).unwrap(),
            opened: AtomicU32::new(0),
        }),
        warehouse: Box::new(FaultyLoader {
            inner: (warehouse.build)(json!({"path": dir.join("warehouse.duckdb")})).unwrap(),
            faults: Mutex::new(faults),
            calls: calls.clone(),
        }),
    }
}

fn fast() -> RunOptions {
    RunOptions {
        retries: Retries {
            max: 2,
            base: Duration::from_millis(1),
        },
        ..RunOptions::default()
    }
}

/// `(rows, distinct _ROW_KEYs)` of THING.
fn counts(dir: &Path) -> (i64, i64) {
    let db = duckdb::Connection::open(dir.join("warehouse.duckdb")).unwrap();
    db.query_row(
        "SELECT COUNT(*), COUNT(DISTINCT _ROW_KEY) FROM RAW_TABLES.THING",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

async fn run(plugins: &Plugins) -> (RunSummary, Option<Value>) {
    let store = engine::state_store_for(&plugins.staging.location().unwrap());
    let summary = engine::run("things", plugins, &store, &fast())
        .await
        .unwrap();
    let state = store.load("things", None).await.unwrap();
    let cursor = state.streams.get("thing").map(|s| s.cursor.clone());
    (summary, cursor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_and_a_load_retried_after_it_went_through_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let plugins = plugins(dir.path(), vec![LoadFault::LoadThenTransient], &calls);
    let (summary, cursor) = run(&plugins).await;
    assert!(summary.ok, "{summary:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one load and one retry");
    assert_eq!(counts(dir.path()), (10, 10));
    assert_eq!(cursor, Some(json!({"default": {"last": 10}})));
    let said = |what: &str| {
        summary
            .warnings
            .iter()
            .any(|w| w.starts_with(&format!("thing: {what} failed transiently, trying again")))
    };
    assert!(
        said("opening a staged file of THING"),
        "{:?}",
        summary.warnings
    );
    assert!(said("loading THING"), "{:?}", summary.warnings);
    assert!(
        summary
            .warnings
            .iter()
            .all(|w| w.contains("(retry 1 of 2)")),
        "{:?}",
        summary.warnings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_that_is_not_transient_fails_the_stream_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let plugins = plugins(dir.path(), vec![LoadFault::Refuse], &calls);
    let (summary, cursor) = run(&plugins).await;
    assert!(!summary.ok);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "not tried again");
    assert_eq!(
        summary.streams[0].error.as_deref(),
        Some("loading THING: warehouse: insufficient privileges on table THING")
    );
    assert!(
        !summary.warnings.iter().any(|w| w.contains("loading THING")),
        "{:?}",
        summary.warnings
    );
    assert_eq!(cursor, None, "the state does not advance");
    assert_eq!(counts(dir.path()), (0, 0));

    // Transient every time: tried `max` more times, then the stream fails.
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let faults = vec![
        LoadFault::Transient,
        LoadFault::Transient,
        LoadFault::Transient,
    ];
    let plugins = self::plugins(dir.path(), faults, &calls);
    let (summary, cursor) = run(&plugins).await;
    assert!(!summary.ok);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        summary.streams[0].error.as_deref(),
        Some("loading THING: warehouse: HTTP 503")
    );
    assert_eq!(cursor, None);
}
