//! The engine writes the run's constant metadata columns (`_INGESTED_AT`, `_BATCH_ID`,
//! `_SOURCE_ORG`) into every staged row, whatever the source sends, and stages under the
//! source's own partition name. Real parts: the file source, local staging and DuckDB;
//! the hand-written sources below send exactly the columns each case needs.

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use flowctl_core::engine::{self, Plugins, RunOptions, RunSummary};
use flowctl_core::{
    async_trait, meta, BatchSender, ReadOutcome, ReadRequest, Source, StreamInfo, StreamResult,
    TaggedBatch,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use flowctl_duckdb as _;
use flowctl_file as _;
use flowctl_object_store as _;

fn local_plugins(dir: &Path, source: Box<dyn Source>) -> Plugins {
    let staging = flowctl_core::find_staging("local").unwrap();
    let warehouse = flowctl_core::find_warehouse("duckdb").unwrap();
    Plugins {
        source,
        staging: (staging.build)(json!({"path": dir.join("staging")})).unwrap(),
        warehouse: (warehouse.build)(json!({"path": dir.join("warehouse.duckdb")})).unwrap(),
    }
}

async fn run(plugins: &Plugins, pipeline: &str) -> flowctl_core::Result<RunSummary> {
    let store = engine::state_store_for(&plugins.staging.location().unwrap());
    engine::run(pipeline, plugins, &store, &RunOptions::default()).await
}

/// `(_SOURCE_ORG, _BATCH_ID, epoch microseconds of _INGESTED_AT, rows)` of `table`.
fn run_columns(dir: &Path, table: &str) -> Vec<(String, String, i64, i64)> {
    let db = duckdb::Connection::open(dir.join("warehouse.duckdb")).unwrap();
    let sql = format!(
        "SELECT _SOURCE_ORG, _BATCH_ID, epoch_us(_INGESTED_AT), COUNT(*) \
         FROM RAW_TABLES.{table} GROUP BY ALL ORDER BY ALL"
    );
    let mut stmt = db.prepare(&sql).unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap();
    rows.map(|r| r.unwrap()).collect()
}

fn micros(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_micros()
}

/// Every file under `dir`, as paths relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo: Vec<_> = dir
        .is_dir()
        .then(|| dir.to_path_buf())
        .into_iter()
        .collect();
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_source_stages_under_its_own_partition_and_gets_the_run_columns() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("users.csv");
    std::fs::write(&csv, "login,team\nalice,core\nbob,web\n").unwrap();
    let file = flowctl_core::find_source("file").unwrap();
    let source = (file.build)(json!({
        "path": csv.display().to_string(),
        "format": "csv",
        "table": "USER_LOOKUP",
        "partition": "ldap",
        "columns": [{"name": "login", "type": "string"}, {"name": "team", "type": "string"}],
        "primary_key": ["login"],
    }))
    .unwrap();
    assert_eq!(source.partition_key(), "partition");
    let plugins = local_plugins(dir.path(), source);
    let summary = run(&plugins, "users").await.unwrap();
    assert!(summary.ok, "{summary:?}");

    let day = &summary.ingested_at[..10];
    let staged: Vec<String> = files_under(&dir.path().join("staging"))
        .into_iter()
        .filter(|f| f.ends_with(".parquet"))
        .collect();
    assert_eq!(
        staged,
        [format!(
            "user_lookup/partition=ldap/date={day}/user_lookup-{}-00000.parquet",
            summary.batch_id
        )]
    );
    assert_eq!(
        run_columns(dir.path(), "USER_LOOKUP"),
        [(
            "ldap".to_string(),
            summary.batch_id.clone(),
            micros(&summary.ingested_at),
            2
        )]
    );

    // The default partition, when the spec names none.
    let default = (file.build)(json!({
        "path": csv.display().to_string(), "format": "csv", "table": "USER_LOOKUP",
        "columns": [{"name": "login", "type": "string"}], "primary_key": ["login"],
    }))
    .unwrap();
    let other = tempfile::tempdir().unwrap();
    let summary = run(&local_plugins(other.path(), default), "users")
        .await
        .unwrap();
    assert!(summary.ok, "{summary:?}");
    let staged = files_under(&other.path().join("staging"));
    assert!(
        staged
            .iter()
            .any(|f| f.starts_with("user_lookup/partition=default/")),
        "{staged:?}"
    );
}

/// One stream `thing` (ID, NAME, the metadata columns); each run sends one batch of two
/// rows holding the columns `send` names, with made-up values for the run's constants.
struct Hand {
    send: &'static [&'static str],
}

fn thing() -> StreamInfo {
    let mut fields = vec![
        Field::new("ID", DataType::Int64, false),
        Field::new("NAME", DataType::Utf8, true),
    ];
    fields.extend(meta::metadata_fields());
    StreamInfo {
        name: "thing".into(),
        table: "THING".into(),
        schema: Arc::new(Schema::new(fields)),
        key_recipe: "md5(id)".into(),
        cursor_field: None,
        description: String::new(),
        column_docs: BTreeMap::new(),
    }
}

#[async_trait]
impl Source for Hand {
    fn streams(&self) -> Vec<StreamInfo> {
        vec![thing()]
    }
    async fn read(&self, req: ReadRequest, out: BatchSender) -> flowctl_core::Result<ReadOutcome> {
        let column = |name: &str| -> ArrayRef {
            match name {
                "ID" => Arc::new(Int64Array::from(vec![1, 2])),
                "NAME" => Arc::new(StringArray::from(vec!["one", "two"])),
                meta::ROW_KEY => Arc::new(StringArray::from(vec![
                    meta::row_key(&["1"]),
                    meta::row_key(&["2"]),
                ])),
                meta::INGESTED_AT => {
                    Arc::new(TimestampMicrosecondArray::from(vec![0, 0]).with_timezone("UTC"))
                }
                _ => Arc::new(StringArray::from(vec!["stale", "stale"])),
            }
        };
        let batch = RecordBatch::try_from_iter(self.send.iter().map(|c| (*c, column(c))))?;
        let tagged = TaggedBatch {
            stream: "thing".into(),
            partition: "main".into(),
            batch,
        };
        if out.send(tagged).await.is_err() {
            return Ok(ReadOutcome::default());
        }
        let mut outcome = ReadOutcome::default();
        for s in req.streams {
            outcome
                .streams
                .insert(s, StreamResult::Done { state: json!({}) });
        }
        Ok(outcome)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_fills_the_run_columns_and_replaces_those_a_source_sends() {
    // Data and _ROW_KEY only, in another order than the schema's.
    let dir = tempfile::tempdir().unwrap();
    let plugins = local_plugins(
        dir.path(),
        Box::new(Hand {
            send: &[meta::ROW_KEY, "NAME", "ID"],
        }),
    );
    let first = run(&plugins, "things").await.unwrap();
    assert!(first.ok, "{first:?}");
    let want = |s: &RunSummary| {
        vec![(
            "main".to_string(),
            s.batch_id.clone(),
            micros(&s.ingested_at),
            2,
        )]
    };
    assert_eq!(run_columns(dir.path(), "THING"), want(&first));

    // A source that still builds the constants itself: the run's values win.
    let plugins = local_plugins(
        dir.path(),
        Box::new(Hand {
            send: &[
                "ID",
                "NAME",
                meta::ROW_KEY,
                meta::INGESTED_AT,
                meta::SOURCE_ORG,
                meta::BATCH_ID,
            ],
        }),
    );
    let second = run(&plugins, "things").await.unwrap();
    assert!(second.ok, "{second:?}");
    assert_ne!(second.batch_id, first.batch_id);
    assert_eq!(run_columns(dir.path(), "THING"), want(&second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_without_a_declared_column_fails_the_run_naming_stream_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = local_plugins(
        dir.path(),
        Box::new(Hand {
            send: &["ID", meta::ROW_KEY],
        }),
    );
    let err = run(&plugins, "things").await.unwrap_err().to_string();
    assert!(
        err.contains("stream `thing`") && err.contains("without column `NAME`"),
        "{err}"
    );
    let store = engine::state_store_for(&plugins.staging.location().unwrap());
    let state = store.load("things", None).await.unwrap();
    assert!(state.streams.is_empty(), "{:?}", state.streams);
    let staged = files_under(&dir.path().join("staging"));
    assert!(
        !staged.iter().any(|f| f.ends_with(".parquet")),
        "{staged:?}"
    );
}
