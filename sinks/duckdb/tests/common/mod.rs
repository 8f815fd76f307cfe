//! Shared helpers: a table schema like the GitHub streams', real Snappy Parquet files
//! written into a temporary staging root, and a local `StagingLocation` over it.
#![allow(dead_code)]

use arrow::array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, ListBuilder, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use flowctl_core::meta::{metadata_fields, row_key, utc_timestamp};
use flowctl_core::object_store::local::LocalFileSystem;
use flowctl_core::object_store::path::Path as StorePath;
use flowctl_core::{StagedFile, StagingLocation, TableSpec};
use flowctl_duckdb::{DuckDbConfig, DuckDbLoader};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::path::Path;
use std::sync::Arc;

/// One row version: (id, title, ingested_at in microseconds since the epoch).
pub type Row<'a> = (i64, &'a str, i64);

pub const T1: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z
pub const T2: i64 = T1 + 3_600_000_000;
pub const T3: i64 = T2 + 3_600_000_000;

/// `with_additions` adds a column, as a source gaining a field would.
pub fn schema(with_additions: bool) -> SchemaRef {
    let mut fields = vec![
        Field::new("ID", DataType::Int64, false),
        Field::new("TITLE", DataType::Utf8, true),
        Field::new(
            "LABELS",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        Field::new("MERGED", DataType::Boolean, true),
        Field::new("CREATED_AT", utc_timestamp(), true),
    ];
    if with_additions {
        fields.push(Field::new("ADDITIONS", DataType::Int32, true));
    }
    fields.push(Field::new("_RAW", DataType::Utf8, true));
    fields.extend(metadata_fields());
    Arc::new(Schema::new(fields))
}

pub fn table(with_additions: bool) -> TableSpec {
    TableSpec {
        name: "PULL_REQUEST".to_string(),
        schema: schema(with_additions),
    }
}

pub fn batch(rows: &[Row], with_additions: bool) -> RecordBatch {
    let schema = schema(with_additions);
    let mut labels = ListBuilder::new(StringBuilder::new());
    for (id, _, _) in rows {
        labels.values().append_value("bug");
        labels.values().append_value(format!("l{id}"));
        labels.append(true);
    }
    let keys: Vec<String> = rows
        .iter()
        .map(|(id, _, _)| row_key(&["acme", "widgets", &id.to_string()]))
        .collect();
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
        Arc::new(labels.finish()),
        Arc::new(BooleanArray::from_iter(
            rows.iter().map(|r| Some(r.0 % 2 == 0)),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|_| T1))
                .with_timezone("UTC"),
        ),
    ];
    if with_additions {
        cols.push(Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.0 as i32 * 10),
        )));
    }
    cols.extend([
        Arc::new(StringArray::from_iter_values(
            rows.iter()
                .map(|r| format!("{{\"id\":{},\"title\":\"{}\"}}", r.0, r.1)),
        )) as ArrayRef,
        Arc::new(StringArray::from_iter_values(keys)),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.2))
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "acme"))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|_| "batch-1"),
        )),
    ]);
    RecordBatch::try_new(schema, cols).unwrap()
}

/// Snappy Parquet bytes of `batch`, as the staging sinks write them.
pub fn parquet_bytes(batch: &RecordBatch) -> Vec<u8> {
    parquet_bytes_in_row_groups(batch, None)
}

/// [`parquet_bytes`] with row groups of at most `rows` rows (the writer's default if None).
pub fn parquet_bytes_in_row_groups(batch: &RecordBatch, rows: Option<usize>) -> Vec<u8> {
    let mut props = WriterProperties::builder().set_compression(Compression::SNAPPY);
    if rows.is_some() {
        props = props.set_max_row_group_row_count(rows);
    }
    let props = props.build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
    buf
}

pub fn relative(name: &str) -> String {
    format!("pull_request/org=acme/date=2026-01-01/{name}.parquet")
}

/// Writes `bytes` under `root` at the Hive-style relative path and returns the file.
pub fn stage_bytes(root: &Path, name: &str, bytes: &[u8]) -> StagedFile {
    let rel = relative(name);
    let path = root.join(&rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    StagedFile {
        uri: format!("file://{}", path.display()),
        relative_path: rel,
        rows: 0,
        bytes: bytes.len() as u64,
    }
}

pub fn stage(root: &Path, name: &str, rows: &[Row], with_additions: bool) -> StagedFile {
    let b = batch(rows, with_additions);
    let mut f = stage_bytes(root, name, &parquet_bytes(&b));
    f.rows = rows.len() as u64;
    f
}

pub fn local_location(root: &Path) -> StagingLocation {
    std::fs::create_dir_all(root).unwrap();
    StagingLocation {
        kind: "local".to_string(),
        root_uri: format!("file://{}/", root.display()),
        store: Arc::new(LocalFileSystem::new_with_prefix(root).unwrap()),
        root: StorePath::from(""),
        local_dir: Some(root.to_path_buf()),
        options: Default::default(),
    }
}

pub fn loader(dir: &Path) -> DuckDbLoader {
    DuckDbLoader::from_config(DuckDbConfig {
        path: dir.join("db").join("warehouse.duckdb"),
        threads: 1,
        ..DuckDbConfig::default()
    })
    .unwrap()
}

/// `ID|TITLE` of every target row, ordered by ID.
pub async fn rows(loader: &DuckDbLoader) -> Vec<String> {
    loader
        .query_text(
            r#"SELECT "ID"::VARCHAR || '|' || "TITLE" FROM "RAW_TABLES"."PULL_REQUEST" ORDER BY "ID""#,
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect()
}

pub async fn count(loader: &DuckDbLoader, table: &str) -> i64 {
    let q = format!(r#"SELECT count(*)::VARCHAR FROM "RAW_TABLES"."{table}""#);
    let v = loader.query_text(&q).await.unwrap();
    v[0][0].as_deref().unwrap().parse().unwrap()
}

/// A fresh database with the PULL_REQUEST table created, and a staging root beside it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub root: std::path::PathBuf,
    pub loader: DuckDbLoader,
    pub table: TableSpec,
    pub loc: StagingLocation,
}

pub async fn fixture() -> Fixture {
    use flowctl_core::WarehouseLoader;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("staging");
    let loader = loader(dir.path());
    let table = table(false);
    let loc = local_location(&root);
    loader.ensure_table(&table).await.unwrap();
    Fixture {
        dir,
        root,
        loader,
        table,
        loc,
    }
}
