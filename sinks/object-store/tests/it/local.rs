//! The `local` sink on a temp dir, and the parts shared by every staging type (naming,
//! rolling, row groups, schema checks, cleanup, registrations).

use crate::common;

use common::*;
use flowctl_core::StagingSink;
use flowctl_object_store::{build_local, location_from_uri, Cleanup, LocalConfig};
use std::collections::BTreeMap;

fn local(
    dir: &std::path::Path,
    f: impl FnOnce(&mut LocalConfig),
) -> flowctl_object_store::ObjectStoreSink {
    let mut cfg: LocalConfig =
        serde_json::from_value(serde_json::json!({ "path": dir.to_str().unwrap() })).unwrap();
    f(&mut cfg);
    build_local(cfg).unwrap()
}

/// Files under `dir`, relative, sorted.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    fn walk(base: &std::path::Path, d: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

/// `ID` and `_RAW`: the smallest table shape with `_RAW`.
fn id_and_raw() -> std::sync::Arc<arrow::datatypes::Schema> {
    use arrow::datatypes::{DataType, Field, Schema};
    std::sync::Arc::new(Schema::new(vec![
        Field::new("ID", DataType::Int64, false),
        Field::new(flowctl_core::meta::RAW, DataType::Utf8, true),
    ]))
}

/// A batch of `id_and_raw()`: IDs from `first`, one per document.
fn id_raw_batch<'a>(
    first: i64,
    docs: impl ExactSizeIterator<Item = &'a str>,
) -> arrow::record_batch::RecordBatch {
    use arrow::array::{Int64Array, StringArray};
    let n = docs.len() as i64;
    arrow::record_batch::RecordBatch::try_new(
        id_and_raw(),
        vec![
            std::sync::Arc::new(Int64Array::from_iter_values(first..first + n)),
            std::sync::Arc::new(StringArray::from_iter_values(docs)),
        ],
    )
    .unwrap()
}

#[tokio::test]
async fn local_writes_snappy_parquet_at_hive_path_and_reads_back_equal() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = local(tmp.path(), |c| c.row_group_rows = 1000);
    let mut w = sink
        .writer(target("pull_request", "acme", "b-1"))
        .await
        .unwrap();
    let batches = vec![batch(0, 1500, 50), batch(1500, 700, 50)];
    for b in &batches {
        w.write(b).await.unwrap();
    }
    let files = w.finish().await.unwrap();
    assert_eq!(files.len(), 1);
    let f = &files[0];
    let rel = "pull_request/org=acme/date=2026-01-02/pull_request-b-1-00000.parquet";
    assert_eq!(f.relative_path, rel);
    let abs = tmp.path().canonicalize().unwrap().join(rel);
    assert_eq!(f.uri, format!("file://{}", abs.display()));
    assert_eq!(f.rows, 2200);
    assert_eq!(f.bytes, std::fs::metadata(&abs).unwrap().len());
    assert_eq!(files_under(tmp.path()), vec![rel.to_string()]);

    let loc = sink.location().unwrap();
    let bytes = fetch(&loc, f).await;
    assert_eq!(concat(&read_parquet(bytes.clone())), concat(&batches));
    let groups = row_group_summary(bytes);
    assert_eq!(
        groups.iter().map(|g| g.0).collect::<Vec<_>>(),
        vec![1000, 1000, 200]
    );
    assert!(groups.iter().all(|g| g.1 == "SNAPPY" && g.2), "{groups:?}");
}

#[tokio::test]
async fn local_rolls_to_a_new_part_file_after_max_file_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = local(tmp.path(), |c| c.max_file_rows = Some(1000));
    let mut w = sink.writer(target("commit", "acme", "b-2")).await.unwrap();
    let batches = vec![
        batch(0, 600, 10),
        batch(600, 900, 10),
        batch(1500, 1000, 10),
    ];
    for b in &batches {
        w.write(b).await.unwrap();
    }
    let files = w.finish().await.unwrap();
    let rows: Vec<u64> = files.iter().map(|f| f.rows).collect();
    assert_eq!(rows, vec![1000, 1000, 500]);
    assert!(files[2].relative_path.ends_with("commit-b-2-00002.parquet"));
    let loc = sink.location().unwrap();
    let mut back = Vec::new();
    for f in &files {
        back.extend(read_parquet(fetch(&loc, f).await));
    }
    assert_eq!(concat(&back), concat(&batches));
}

#[tokio::test]
async fn local_rolls_after_max_file_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = local(tmp.path(), |c| {
        c.max_file_bytes = 1 << 20;
        c.row_group_bytes = 256 << 10;
    });
    let mut w = sink.writer(target("commit", "acme", "b-3")).await.unwrap();
    for i in 0..8 {
        w.write(&batch(i * 500, 500, 1000)).await.unwrap();
    }
    let files = w.finish().await.unwrap();
    assert!(files.len() >= 3, "{files:?}");
    assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 4000);
    // A part closes at the first check past the limit: one row group of slack at most.
    assert!(
        files.iter().all(|f| f.bytes < (1 << 20) + (512 << 10)),
        "{files:?}"
    );
}

#[tokio::test]
async fn local_file_is_invisible_until_finish_and_abort_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = local(tmp.path(), |c| c.row_group_bytes = 1 << 20);
    let mut w = sink
        .writer(target("pull_request", "acme", "b-4"))
        .await
        .unwrap();
    // ~12 MB: past the 10 MiB upload part size, so bytes have gone to the temp file.
    for i in 0..12 {
        w.write(&batch(i * 1000, 1000, 1000)).await.unwrap();
    }
    let visible: Vec<String> = files_under(tmp.path())
        .into_iter()
        .filter(|f| f.ends_with(".parquet"))
        .collect();
    assert!(visible.is_empty(), "{visible:?}");
    assert!(
        !files_under(tmp.path()).is_empty(),
        "data should be streaming to a temp file"
    );
    w.abort().await;
    assert_eq!(files_under(tmp.path()), Vec::<String>::new());

    // A writer that completed a part and is then aborted removes that part too.
    let sink = local(tmp.path(), |c| c.max_file_rows = Some(10));
    let mut w = sink
        .writer(target("pull_request", "acme", "b-5"))
        .await
        .unwrap();
    w.write(&batch(0, 15, 10)).await.unwrap();
    assert_eq!(files_under(tmp.path()).len(), 1);
    w.abort().await;
    assert_eq!(files_under(tmp.path()), Vec::<String>::new());
}

#[tokio::test]
async fn finish_without_rows_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = local(tmp.path(), |_| {});
    let mut w = sink
        .writer(target("pull_request", "acme", "b-6"))
        .await
        .unwrap();
    w.write(&batch(0, 0, 0)).await.unwrap();
    assert!(w.finish().await.unwrap().is_empty());
    assert!(files_under(tmp.path()).is_empty());
}

#[tokio::test]
async fn unsafe_partition_values_and_wrong_schemas_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = local(tmp.path(), |_| {});
    for org in ["../etc", "a/b", "..", "a\0b"] {
        let err = sink
            .writer(target("pull_request", org, "b"))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("org"), "{err}");
    }
    let mut w = sink
        .writer(target("pull_request", "acme", "b"))
        .await
        .unwrap();
    let other = arrow::record_batch::RecordBatch::try_from_iter(vec![(
        "X",
        std::sync::Arc::new(arrow::array::Int64Array::from(vec![1])) as arrow::array::ArrayRef,
    )])
    .unwrap();
    let err = w.write(&other).await.unwrap_err().to_string();
    assert!(
        err.contains("pull_request") && err.contains("schema"),
        "{err}"
    );
}

#[tokio::test]
async fn after_load_deletes_only_with_delete_after_load() {
    let tmp = tempfile::tempdir().unwrap();
    for (cleanup, remaining) in [(Cleanup::Keep, 1), (Cleanup::DeleteAfterLoad, 0)] {
        let sink = local(tmp.path(), |c| c.cleanup = cleanup);
        let mut w = sink
            .writer(target("pull_request", "acme", "b-7"))
            .await
            .unwrap();
        w.write(&batch(0, 10, 10)).await.unwrap();
        let files = w.finish().await.unwrap();
        sink.after_load(&files).await.unwrap();
        assert_eq!(files_under(tmp.path()).len(), remaining, "{cleanup:?}");
        // Deleting again (a retried load) is not an error.
        sink.after_load(&files).await.unwrap();
    }
}

#[test]
fn location_from_uri_understands_paths_and_bucket_uris() {
    let tmp = tempfile::tempdir().unwrap();
    let none = BTreeMap::new();
    let loc = location_from_uri(tmp.path().to_str().unwrap(), &none).unwrap();
    assert_eq!(loc.kind, "local");
    assert_eq!(loc.local_dir.as_deref(), Some(tmp.path()));
    assert!(loc.root_uri.starts_with("file:///") && loc.root_uri.ends_with('/'));
    let again = location_from_uri(&loc.root_uri, &none).unwrap();
    assert_eq!(again.root_uri, loc.root_uri);

    let opts = BTreeMap::from([
        ("endpoint".to_string(), "http://127.0.0.1:9".to_string()),
        ("allow_http".to_string(), "true".to_string()),
        ("region".to_string(), "eu-west-1".to_string()),
    ]);
    let s3 = location_from_uri("s3://bkt/github/_state", &opts).unwrap();
    assert_eq!(s3.root_uri, "s3://bkt/github/_state/");
    assert_eq!(s3.root.as_ref(), "github/_state");
    assert_eq!(s3.options["region"], "eu-west-1");
    assert_eq!(s3.options["endpoint"], "http://127.0.0.1:9");

    let gs = location_from_uri("gs://bkt", &none).unwrap();
    assert_eq!(gs.root_uri, "gs://bkt/");
    assert!(gs.root.as_ref().is_empty());

    let bad = BTreeMap::from([("endpiont".to_string(), "x".to_string())]);
    let err = location_from_uri("s3://bkt/x", &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("endpiont"), "{err}");
    let err = location_from_uri("ftp://x/y", &none)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unsupported scheme"), "{err}");
}

#[test]
fn three_staging_types_are_registered_with_strict_documented_schemas() {
    let names: Vec<&str> = inventory::iter::<flowctl_core::StagingRegistration>
        .into_iter()
        .map(|r| r.name)
        .collect();
    for want in ["gcs", "s3", "local"] {
        let reg = flowctl_core::find_staging(want).unwrap_or_else(|| panic!("{want} in {names:?}"));
        let schema = serde_json::to_value((reg.config_schema)()).unwrap();
        assert_eq!(schema["additionalProperties"], false, "{want}");
        let props = schema["properties"].as_object().unwrap();
        assert!(!props.contains_key("type"), "{want}");
        for (k, v) in props {
            assert!(
                v.get("description").is_some(),
                "{want}.{k} has no description"
            );
        }
    }
    let gcs = flowctl_core::find_staging("gcs").unwrap();
    let err = (gcs.build)(serde_json::json!({ "bucket": "b", "buckett": "x" }))
        .err()
        .unwrap();
    assert!(err.to_string().contains("buckett"), "{err}");
    let ok = (gcs.build)(serde_json::json!({ "bucket": "b", "base_url": "http://127.0.0.1:9" }));
    assert!(ok.is_ok());
}

#[test]
fn plan_names_the_root_and_the_sizing() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = local(tmp.path(), |c| c.cleanup = Cleanup::DeleteAfterLoad);
    let plan = sink.plan().join("\n");
    let root = sink.location().unwrap().root_uri;
    assert!(
        plan.contains(&format!(
            "{root}{{table}}/{{partition_key}}={{partition}}/date="
        )),
        "{plan}"
    );
    assert!(
        plan.contains("100000 rows / 4 MiB / 16 MiB decoded") && plan.contains("delete_after_load"),
        "{plan}"
    );
}

#[tokio::test]
async fn raw_column_is_written_without_dictionary_or_statistics() {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::basic::Encoding;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use std::sync::Arc;

    let tmp = tempfile::tempdir().unwrap();
    let sink = local(tmp.path(), |_| {});
    let schema = Arc::new(Schema::new(vec![
        Field::new("ID", DataType::Int64, false),
        Field::new("STATE", DataType::Utf8, true),
        Field::new(flowctl_core::meta::RAW, DataType::Utf8, true),
    ]));
    // Few distinct values: a dictionary would be chosen for any column that allows one.
    let n = 500;
    let values: Vec<&str> = (0..n)
        .map(|i| if i % 2 == 0 { "{\"a\":1}" } else { "{\"a\":2}" })
        .collect();
    let batch = arrow::record_batch::RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..n as i64)),
            Arc::new(StringArray::from(values.clone())),
            Arc::new(StringArray::from(values)),
        ],
    )
    .unwrap();
    let mut t = target("pull_request", "acme", "raw");
    t.schema = schema;
    let mut w = sink.writer(t).await.unwrap();
    w.write(&batch).await.unwrap();
    let files = w.finish().await.unwrap();
    let bytes = fetch(&sink.location().unwrap(), &files[0]).await;
    let reader = SerializedFileReader::new(bytes).unwrap();
    let rg = reader.metadata().row_group(0);
    let dictionary = |c: usize| {
        rg.column(c)
            .encodings()
            .any(|e| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY))
    };
    assert!(dictionary(1), "STATE keeps its dictionary");
    assert!(
        rg.column(1).statistics().is_some(),
        "STATE keeps statistics"
    );
    assert!(!dictionary(2), "_RAW is written without a dictionary");
    assert!(rg.column(2).statistics().is_none(), "_RAW has no min/max");
}

/// Rows of ~20 KB that compress ~100x: by encoded size alone (4 MiB) one row group would
/// hold all 600 rows, 12 MB decoded; `row_group_decoded_bytes` (1 MiB here) cuts them so
/// a reader never decodes more than about that at once. Every row is still written.
#[tokio::test]
async fn row_groups_are_bounded_by_decoded_size_too() {
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let tmp = tempfile::tempdir().unwrap();
    let sink = local(tmp.path(), |c| c.row_group_decoded_bytes = 1 << 20);
    let doc = format!("{{\"body\":\"{}\"}}", "x".repeat(20_000));
    let mut t = target("pull_request", "acme", "wide");
    t.schema = id_and_raw();
    let mut w = sink.writer(t).await.unwrap();
    // Six batches of 100 rows, as the source sends them.
    for b in 0..6i64 {
        let docs = vec![doc.as_str(); 100];
        w.write(&id_raw_batch(b * 100, docs.into_iter()))
            .await
            .unwrap();
    }
    let files = w.finish().await.unwrap();
    assert_eq!(files.len(), 1);
    let bytes = fetch(&sink.location().unwrap(), &files[0]).await;
    let reader = SerializedFileReader::new(bytes).unwrap();
    let meta = reader.metadata();
    let rows: Vec<i64> = meta.row_groups().iter().map(|rg| rg.num_rows()).collect();
    assert_eq!(rows.iter().sum::<i64>(), 600, "{rows:?}");
    // ~20 KB a row: at most ~52 rows fit in 1 MiB.
    assert!(meta.num_row_groups() >= 12, "{rows:?}");
    for rg in meta.row_groups() {
        assert!(
            rg.total_byte_size() <= (1 << 20) + 21_000,
            "row group of {} rows holds {} bytes decoded",
            rg.num_rows(),
            rg.total_byte_size()
        );
    }
}

/// `_RAW` pages stay under half a MiB even when one batch carries megabytes of it: the
/// writer checks the page size only between mini-batches of rows, and with the default
/// 1,024 rows a page was the whole batch (here 4 MB), whose gather and Snappy buffers were
/// fresh 1 MiB+ allocations (an `mmap` and a page fault per 4 KiB, for every page). Pages
/// of 512-800 KiB still faulted when Snappy's output buffer grew (`writer.rs`).
#[tokio::test]
async fn raw_pages_stay_under_half_a_megabyte() {
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let tmp = tempfile::tempdir().unwrap();
    let sink = local(tmp.path(), |_| {});
    // 200 distinct ~20 KB documents in one batch: 4 MB of `_RAW`.
    let docs: Vec<String> = (0..200)
        .map(|i| format!("{{\"id\":{i},\"body\":\"{}\"}}", "y".repeat(20_000)))
        .collect();
    let mut t = target("pull_request", "acme", "pages");
    t.schema = id_and_raw();
    let mut w = sink.writer(t).await.unwrap();
    w.write(&id_raw_batch(0, docs.iter().map(String::as_str)))
        .await
        .unwrap();
    let files = w.finish().await.unwrap();
    let bytes = fetch(&sink.location().unwrap(), &files[0]).await;
    let reader = SerializedFileReader::new(bytes).unwrap();
    let mut sizes = Vec::new();
    for g in 0..reader.num_row_groups() {
        let mut pages = reader
            .get_row_group(g)
            .unwrap()
            .get_column_page_reader(1)
            .unwrap();
        while let Some(page) = pages.get_next_page().unwrap() {
            sizes.push(page.buffer().len());
        }
    }
    let total: usize = sizes.iter().sum();
    assert!(total >= 200 * 20_000, "all of _RAW was written: {total}");
    assert!(
        sizes.iter().all(|&s| s < 512 * 1024),
        "_RAW page sizes (decoded bytes): {sizes:?}"
    );
}
