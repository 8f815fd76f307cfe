//! Shared test helpers: emulator addresses, a pull-request-like schema, and reading
//! staged files back with the parquet crate.
#![allow(dead_code)]

use arrow::array::{
    ArrayRef, Int64Array, ListBuilder, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use chrono::NaiveDate;
use flowctl_core::{meta, StageTarget, StagedFile, StagingLocation};
use flowctl_object_store::staged_path;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::{FileReader, SerializedFileReader};
use std::sync::Arc;

#[allow(unused_imports)] // not every test binary that includes this module needs it
pub use flowctl_core::testing::emulator;

pub fn schema() -> SchemaRef {
    let mut fields = vec![
        Field::new("ID", DataType::Int64, false),
        Field::new("TITLE", DataType::Utf8, true),
        Field::new("CREATED_AT", meta::utc_timestamp(), true),
        Field::new(
            "LABELS",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        Field::new("BODY", DataType::Utf8, true),
    ];
    fields.extend(meta::metadata_fields());
    Arc::new(Schema::new(fields))
}

/// Deterministic, poorly compressible text (xorshift hex), so sizes are predictable.
pub fn noise(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut s = String::with_capacity(len + 16);
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{x:016x}"));
    }
    s.truncate(len);
    s
}

/// Rows `start..start+n`; `body_len` bytes of noise per row in BODY.
pub fn batch(start: i64, n: usize, body_len: usize) -> RecordBatch {
    let ids: Vec<i64> = (start..start + n as i64).collect();
    let mut labels = ListBuilder::new(StringBuilder::new());
    for id in &ids {
        if id % 3 == 0 {
            labels.append_null();
        } else {
            labels.values().append_value(format!("l{}", id % 7));
            labels.values().append_value("bug");
            labels.append(true);
        }
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(StringArray::from_iter(
            ids.iter().map(|i| (i % 5 != 0).then(|| format!("PR #{i}"))),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter(
                ids.iter()
                    .map(|i| (i % 4 != 0).then_some(1_700_000_000_000_000 + i)),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(labels.finish()),
        Arc::new(StringArray::from_iter_values(
            ids.iter().map(|i| noise(*i as u64, body_len)),
        )),
        Arc::new(StringArray::from_iter_values(
            ids.iter()
                .map(|i| meta::row_key(&["acme", "widgets", &i.to_string()])),
        )),
        Arc::new(
            TimestampMicrosecondArray::from(vec![1_767_312_000_000_000; n]).with_timezone("UTC"),
        ),
        Arc::new(StringArray::from(vec!["acme"; n])),
        Arc::new(StringArray::from(vec!["batch-1"; n])),
    ];
    RecordBatch::try_new(schema(), cols).unwrap()
}

pub fn target(table: &str, org: &str, batch_id: &str) -> StageTarget {
    StageTarget {
        table: table.into(),
        partition_key: "org",
        partition: org.into(),
        date: NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
        batch_id: batch_id.into(),
        schema: schema(),
    }
}

pub async fn fetch(loc: &StagingLocation, file: &StagedFile) -> Bytes {
    let path = staged_path(&loc.root, &file.relative_path).unwrap();
    loc.store.get(&path).await.unwrap().bytes().await.unwrap()
}

/// Reads a Parquet file and checks it against `schema`; returns its batches.
pub fn read_parquet(bytes: Bytes) -> Vec<RecordBatch> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    for b in &batches {
        assert_eq!(b.schema().fields(), schema().fields(), "schema read back");
    }
    batches
}

/// Row groups, their compression and whether statistics were written.
pub fn row_group_summary(bytes: Bytes) -> Vec<(i64, String, bool)> {
    let reader = SerializedFileReader::new(bytes).unwrap();
    let meta = reader.metadata();
    meta.row_groups()
        .iter()
        .map(|rg| {
            let col = rg.column(0);
            (
                rg.num_rows(),
                format!("{:?}", col.compression()),
                col.statistics().is_some(),
            )
        })
        .collect()
}

/// Concatenates batches for comparison.
pub fn concat(batches: &[RecordBatch]) -> RecordBatch {
    arrow::compute::concat_batches(&schema(), batches).unwrap()
}
