//! A source written against `flowctl_core::simple` runs through the real engine, local
//! staging and DuckDB: its rows land with the metadata columns, its cursor is saved per
//! partition and handed back on the next run, and `--partitions` reads one partition.

use flowctl_core::arrow::datatypes::DataType;
use flowctl_core::engine::{self, Plugins, RunOptions};
use flowctl_core::simple::{Rows, SimpleSource, Table};
use flowctl_core::{async_trait, meta, Result};
use serde_json::{json, Value};

use flowctl_duckdb as _;
use flowctl_object_store as _;

/// Per partition, `new` events after the saved cursor (`{"last": id}`).
struct Events {
    new: i64,
}

#[async_trait]
impl SimpleSource for Events {
    fn tables(&self) -> Vec<Table> {
        let columns = [("id", DataType::Int64), ("at", meta::utc_timestamp())];
        vec![Table::new("event", &columns).key(&["id"])]
    }
    fn partitions(&self) -> Vec<String> {
        vec!["east".into(), "west".into()]
    }
    async fn rows(&self, out: &mut Rows<'_>) -> Result<Option<Value>> {
        let last = out.state().and_then(|s| s["last"].as_i64()).unwrap_or(0);
        let base = if out.partition() == "east" { 0 } else { 1000 };
        for id in last + 1..=last + self.new {
            out.push(json!({"id": base + id, "at": "2026-03-04T05:06:07Z"}))
                .await?;
        }
        Ok(Some(json!({"last": last + self.new})))
    }
}

fn plugins(dir: &std::path::Path, new: i64) -> Plugins {
    let staging = flowctl_core::find_staging("local").unwrap();
    let warehouse = flowctl_core::find_warehouse("duckdb").unwrap();
    Plugins {
        source: Box::new(Events { new }),
        staging: (staging.build)(json!({"path": dir.join("staging")})).unwrap(),
        warehouse: (warehouse.build)(json!({"path": dir.join("warehouse.duckdb")})).unwrap(),
    }
}

fn rows_by_partition(dir: &std::path::Path) -> Vec<(String, i64, i64)> {
    let db = duckdb::Connection::open(dir.join("warehouse.duckdb")).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT _SOURCE_ORG, COUNT(*), MAX(ID) FROM RAW_TABLES.EVENT \
             WHERE \"AT\" = TIMESTAMPTZ '2026-03-04 05:06:07+00' AND length(_ROW_KEY) = 32 \
             AND typeof(_INGESTED_AT) = 'TIMESTAMP WITH TIME ZONE' \
             GROUP BY ALL ORDER BY ALL",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap();
    rows.map(|r| r.unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simple_source_lands_in_duckdb_and_resumes_from_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let first = plugins(dir.path(), 3);
    let store = engine::state_store_for(&first.staging.location().unwrap());
    let summary = engine::run("events", &first, &store, &RunOptions::default())
        .await
        .unwrap();
    assert!(summary.ok, "{summary:?}");
    assert_eq!(summary.streams[0].table, "EVENT");
    assert_eq!(summary.streams[0].inserted, 6);
    let expected = [("east".to_string(), 3, 3), ("west".to_string(), 3, 1003)];
    assert_eq!(rows_by_partition(dir.path()), expected);
    let state = store.load("events", None).await.unwrap();
    let cursor = &state.streams["event"].cursor;
    assert_eq!(cursor, &json!({"east": {"last": 3}, "west": {"last": 3}}));

    // Only `west`, two new rows after its cursor; `east` keeps its cursor.
    let opts = RunOptions {
        partitions: vec!["west".into()],
        ..RunOptions::default()
    };
    let summary = engine::run("events", &plugins(dir.path(), 2), &store, &opts)
        .await
        .unwrap();
    assert!(summary.ok, "{summary:?}");
    assert_eq!(summary.streams[0].inserted, 2);
    let expected = [("east".to_string(), 3, 3), ("west".to_string(), 5, 1005)];
    assert_eq!(rows_by_partition(dir.path()), expected);
    let state = store.load("events", None).await.unwrap();
    let cursor = &state.streams["event"].cursor;
    assert_eq!(cursor, &json!({"east": {"last": 3}, "west": {"last": 5}}));
}
