//! The loader against a real DuckDB and real Parquet files in a local staging root.

use crate::common;

use common::*;
use flowctl_core::{LoadStats, WarehouseLoader};
use flowctl_duckdb::{DuckDbConfig, DuckDbLoader};

#[tokio::test]
async fn same_batch_twice_changes_nothing() {
    let f = fixture().await;
    let (root, loader, t, loc) = (&f.root, &f.loader, &f.table, &f.loc);
    let rows_in: &[Row] = &[(1, "one", T1), (2, "two", T1), (3, "three", T1)];
    let files = vec![stage(root, "a", rows_in, false)];

    let first = loader.load(t, &files, loc).await.unwrap();
    assert_eq!(
        first,
        LoadStats {
            rows_loaded: 3,
            inserted: 3,
            updated: 0,
            statements: 3
        }
    );
    let second = loader.load(t, &files, loc).await.unwrap();
    assert_eq!(
        second,
        LoadStats {
            rows_loaded: 3,
            inserted: 0,
            updated: 0,
            statements: 3
        }
    );
    assert_eq!(rows(loader).await, ["1|one", "2|two", "3|three"]);
    let stage = "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '%STAGE%'";
    assert_eq!(
        loader.query_text(stage).await.unwrap(),
        vec![vec![Some("0".to_string())]],
        "duckdb loads from the files, no stage table"
    );
}

#[tokio::test]
async fn older_row_version_is_not_applied_newer_is() {
    let f = fixture().await;
    let (root, loader, t, loc) = (&f.root, &f.loader, &f.table, &f.loc);
    let newer = stage(root, "newer", &[(1, "v2", T2)], false);
    loader.load(t, &[newer], loc).await.unwrap();

    let older = stage(root, "older", &[(1, "v1", T1)], false);
    let stats = loader.load(t, &[older], loc).await.unwrap();
    assert_eq!((stats.inserted, stats.updated), (0, 0));
    assert_eq!(rows(loader).await, ["1|v2"]);

    let newest = stage(root, "newest", &[(1, "v3", T3)], false);
    let stats = loader.load(t, &[newest], loc).await.unwrap();
    assert_eq!((stats.inserted, stats.updated), (0, 1));
    assert_eq!(rows(loader).await, ["1|v3"]);
}

#[tokio::test]
async fn duplicate_keys_in_one_batch_newest_wins() {
    let f = fixture().await;
    let (root, loader, t, loc) = (&f.root, &f.loader, &f.table, &f.loc);
    // The same key three times across two files of one run, newest in the middle.
    let files = vec![
        stage(root, "part-0", &[(7, "b", T2), (8, "x", T1)], false),
        stage(root, "part-1", &[(7, "c", T3), (7, "a", T1)], false),
    ];
    let stats = loader.load(t, &files, loc).await.unwrap();
    assert_eq!(
        (stats.rows_loaded, stats.inserted, stats.updated),
        (4, 2, 0)
    );
    assert_eq!(rows(loader).await, ["7|c", "8|x"]);
}

#[tokio::test]
async fn new_column_is_added_and_older_files_read_it_as_null() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("staging");
    let loader = loader(dir.path());
    let loc = local_location(&root);
    loader.ensure_table(&table(false)).await.unwrap();
    let old = stage(&root, "old", &[(1, "one", T1)], false);
    loader.load(&table(false), &[old], &loc).await.unwrap();

    let t2 = table(true);
    loader.ensure_table(&t2).await.unwrap();
    loader.ensure_table(&t2).await.unwrap(); // idempotent
    for tbl in ["PULL_REQUEST"] {
        let q = format!(
            "SELECT data_type FROM information_schema.columns \
             WHERE table_schema = 'RAW_TABLES' AND table_name = '{tbl}' AND column_name = 'ADDITIONS'"
        );
        let got = loader.query_text(&q).await.unwrap();
        assert_eq!(got, vec![vec![Some("INTEGER".to_string())]], "{tbl}");
    }
    let new = stage(&root, "new", &[(1, "one!", T2), (2, "two", T2)], true);
    let stats = loader.load(&t2, &[new], &loc).await.unwrap();
    assert_eq!((stats.inserted, stats.updated), (1, 1));
    let q = r#"SELECT "ADDITIONS"::VARCHAR FROM "RAW_TABLES"."PULL_REQUEST" ORDER BY "ID""#;
    let got = loader.query_text(q).await.unwrap();
    assert_eq!(got, vec![vec![Some("10".into())], vec![Some("20".into())]]);

    // A file written before the column existed, loaded after: the column reads as NULL.
    let late = stage(&root, "late", &[(3, "three", T3)], false);
    let stats = loader.load(&t2, &[late], &loc).await.unwrap();
    assert_eq!((stats.inserted, stats.updated), (1, 0));
    let got = loader.query_text(q).await.unwrap();
    assert_eq!(got[2], vec![None]);
}

/// A load cut into many slices (one per row group here) ends with the same table as one
/// transaction, whatever order the versions of a key arrive in; each slice is one transaction of three statements.
#[tokio::test]
async fn sliced_load_equals_single_transaction_load() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("staging");
    let files = vec![
        stage(&root, "s0", &[(7, "b", T2), (8, "x", T1)], false),
        stage(&root, "s1", &[(7, "c", T3), (9, "y", T2)], false),
        stage(&root, "s2", &[(7, "a", T1), (8, "x2", T2)], false),
    ];
    let mut got = Vec::new();
    for budget in [0, 1] {
        let loader = DuckDbLoader::from_config(DuckDbConfig {
            path: dir.path().join(format!("db{budget}.duckdb")),
            threads: 1,
            load_slice_bytes: budget,
            ..DuckDbConfig::default()
        })
        .unwrap();
        let t = table(false);
        loader.ensure_table(&t).await.unwrap();
        let stats = loader
            .load(&t, &files, &local_location(&root))
            .await
            .unwrap();
        assert_eq!(stats.rows_loaded, 6);
        assert_eq!(stats.statements, if budget == 0 { 3 } else { 9 });
        got.push(rows(&loader).await);
        let again = loader
            .load(&t, &files, &local_location(&root))
            .await
            .unwrap();
        assert_eq!((again.inserted, again.updated), (0, 0), "budget {budget}");
    }
    assert_eq!(got[0], ["7|c", "8|x2", "9|y"]);
    assert_eq!(got[1], got[0]);
}

#[tokio::test]
async fn column_types_follow_the_type_map() {
    let dir = tempfile::tempdir().unwrap();
    let loader = loader(dir.path());
    loader.ensure_table(&table(true)).await.unwrap();
    let q = "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_schema = 'RAW_TABLES' AND table_name = 'PULL_REQUEST' ORDER BY ordinal_position";
    let got: Vec<String> = loader
        .query_text(q)
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{} {}", r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect();
    let want = [
        "ID BIGINT",
        "TITLE VARCHAR",
        "LABELS VARCHAR[]",
        "MERGED BOOLEAN",
        "CREATED_AT TIMESTAMP WITH TIME ZONE",
        "ADDITIONS INTEGER",
        "_RAW VARCHAR",
        "_ROW_KEY VARCHAR",
        "_INGESTED_AT TIMESTAMP WITH TIME ZONE",
        "_SOURCE_ORG VARCHAR",
        "_BATCH_ID VARCHAR",
    ];
    assert_eq!(got, want);
}

#[tokio::test]
async fn corrupt_file_fails_naming_it_and_leaves_target_untouched() {
    let f = fixture().await;
    let (root, loader, t, loc) = (&f.root, &f.loader, &f.table, &f.loc);
    let good = stage(root, "good", &[(1, "one", T1)], false);
    loader.load(t, &[good], loc).await.unwrap();

    let update = stage(root, "update", &[(1, "changed", T2), (2, "two", T2)], false);
    let corrupt = stage_bytes(root, "corrupt", b"PAR1 this is not parquet");
    let err = loader
        .load(t, &[update, corrupt], loc)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("corrupt.parquet"), "{err}");
    assert!(err.contains("not readable Parquet"), "{err}");
    assert_eq!(rows(loader).await, ["1|one"], "target untouched");
}

/// A load's first statement deletes the rows it replaces; a failure after it (here the
/// INSERT: a staged CREATED_AT that is text, not a timestamp) must roll those deletes
/// back with the rest, leaving the table as it was.
#[tokio::test]
async fn failure_after_the_first_statement_rolls_the_whole_load_back() {
    let f = fixture().await;
    let (root, loader, t, loc) = (&f.root, &f.loader, &f.table, &f.loc);
    let good = stage(root, "good", &[(1, "one", T1), (2, "two", T1)], false);
    loader.load(t, &[good], loc).await.unwrap();

    let newer = batch(&[(1, "changed", T2)], false);
    let at = newer.schema().index_of("CREATED_AT").unwrap();
    let mut fields: Vec<arrow::datatypes::Field> = newer
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[at] = arrow::datatypes::Field::new("CREATED_AT", arrow::datatypes::DataType::Utf8, true);
    let mut cols = newer.columns().to_vec();
    cols[at] = std::sync::Arc::new(arrow::array::StringArray::from(vec!["not a time"]));
    let bad = arrow::record_batch::RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
        cols,
    )
    .unwrap();
    let bad = stage_bytes(root, "bad", &parquet_bytes(&bad));
    let err = loader.load(t, &[bad], loc).await.unwrap_err().to_string();
    assert!(
        err.contains("bad.parquet") && err.contains("nothing of it applied"),
        "{err}"
    );
    assert_eq!(
        rows(loader).await,
        ["1|one", "2|two"],
        "row 1 deleted then restored"
    );
}

/// DuckDB runs in memory with the warehouse file attached; its spill directory must sit
/// beside that file (DuckDB's own default for a file database), not in `./.tmp` of
/// wherever flowctl was started.
#[tokio::test]
async fn spills_go_beside_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let loader = loader(dir.path());
    let got = loader
        .query_text("SELECT current_setting('temp_directory')")
        .await
        .unwrap();
    let want = dir.path().join("db").join("warehouse.duckdb.tmp");
    assert_eq!(got, vec![vec![Some(want.display().to_string())]]);
}

#[tokio::test]
async fn missing_file_fails_naming_it() {
    let f = fixture().await;
    let (root, loader, t, loc) = (&f.root, &f.loader, &f.table, &f.loc);
    let mut gone = stage(root, "gone", &[(1, "one", T1)], false);
    std::fs::remove_file(root.join(&gone.relative_path)).unwrap();
    gone.uri = "file:///staging/gone.parquet".to_string();
    let err = loader.load(t, &[gone], loc).await.unwrap_err().to_string();
    assert!(
        err.contains("gone.parquet") && err.contains("not found"),
        "{err}"
    );
    assert_eq!(count(loader, "PULL_REQUEST").await, 0);
}

#[tokio::test]
async fn identifiers_with_quotes_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let loader = loader(dir.path());
    let mut t = table(false);
    t.name = "PULL\"REQUEST".to_string();
    let err = loader.ensure_table(&t).await.unwrap_err().to_string();
    assert!(err.contains("not a valid identifier"), "{err}");
    assert!(loader.plan(&t)[0].starts_with("-- cannot plan"));

    let bad_schema = DuckDbConfig {
        schema: "RAW\"; DROP TABLE x; --".to_string(),
        ..DuckDbConfig::default()
    };
    let err = DuckDbLoader::from_config(bad_schema)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("warehouse.schema"), "{err}");

    let mut fields: Vec<_> = table(false).schema.fields().iter().cloned().collect();
    fields.push(std::sync::Arc::new(arrow::datatypes::Field::new(
        "A\"B",
        arrow::datatypes::DataType::Utf8,
        true,
    )));
    t = flowctl_core::TableSpec {
        name: "PULL_REQUEST".to_string(),
        schema: std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
    };
    let err = loader.ensure_table(&t).await.unwrap_err().to_string();
    assert!(err.contains("column") && err.contains("A\\\"B"), "{err}");
}

#[tokio::test]
async fn path_with_quote_is_escaped_not_spliced() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("it's staging");
    let loader = loader(dir.path());
    let t = table(false);
    loader.ensure_table(&t).await.unwrap();
    let f = stage(&root, "o'brien", &[(1, "one", T1)], false);
    let stats = loader.load(&t, &[f], &local_location(&root)).await.unwrap();
    assert_eq!(stats.inserted, 1);
}

#[tokio::test]
async fn data_persists_in_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("staging");
    {
        let loader = loader(dir.path());
        loader.ensure_table(&table(false)).await.unwrap();
        let f = stage(&root, "a", &[(1, "one", T1)], false);
        loader
            .load(&table(false), &[f], &local_location(&root))
            .await
            .unwrap();
    }
    assert!(dir.path().join("db/warehouse.duckdb").is_file());
    let reopened = loader(dir.path());
    assert_eq!(rows(&reopened).await, ["1|one"]);
}

#[tokio::test]
async fn new_databases_compress_long_strings() {
    // `_RAW` is ~19 KB of JSON a row; DuckDB's default (v1.0) format stores such strings
    // uncompressed, the v1.2 format flowctl creates compresses them with ZSTD.
    let dir = tempfile::tempdir().unwrap();
    let loader = loader(dir.path());
    loader.ensure_table(&table(false)).await.unwrap();
    let version = "SELECT tags['storage_version'] FROM duckdb_databases() \
                   WHERE database_name = current_database()";
    assert_eq!(
        loader.query_text(version).await.unwrap(),
        vec![vec![Some("v1.2.0+".to_string())]]
    );
    loader
        .query_text(
            "CREATE TABLE long_text AS SELECT repeat('{\"a\": 1}, ', 2000) || i AS s \
             FROM range(200) t(i)",
        )
        .await
        .unwrap();
    loader.query_text("CHECKPOINT").await.unwrap();
    let compression = "SELECT DISTINCT compression FROM pragma_storage_info('long_text') \
                       WHERE column_name = 's' AND segment_type = 'VARCHAR'";
    assert_eq!(
        loader.query_text(compression).await.unwrap(),
        vec![vec![Some("ZSTD".to_string())]]
    );
    // The old format on request (for DuckDB < 1.2 readers).
    let old = DuckDbLoader::from_config(DuckDbConfig {
        path: dir.path().join("old.duckdb"),
        storage_version: "v1.0.0".to_string(),
        ..DuckDbConfig::default()
    })
    .unwrap();
    assert_eq!(
        old.query_text(version).await.unwrap(),
        vec![vec![Some("v1.0.0+".to_string())]]
    );
    drop(old);
    // An existing file keeps its format under the default (v1.2.0) settings: upgrading it
    // would lock out the older DuckDB that made it.
    let reopened = DuckDbLoader::from_config(DuckDbConfig {
        path: dir.path().join("old.duckdb"),
        ..DuckDbConfig::default()
    })
    .unwrap();
    assert_eq!(
        reopened.query_text(version).await.unwrap(),
        vec![vec![Some("v1.0.0+".to_string())]]
    );
}

#[tokio::test]
async fn rows_are_written_in_small_row_groups() {
    // DuckDB holds appended rows in memory until a row group fills; flowctl attaches the
    // database with `row_group_rows` (default 2048) so large loads are written out early.
    let dir = tempfile::tempdir().unwrap();
    let loader = loader(dir.path());
    loader
        .query_text("CREATE TABLE rg AS SELECT range AS i FROM range(5000)")
        .await
        .unwrap();
    loader.query_text("CHECKPOINT").await.unwrap();
    let groups = "SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('rg')";
    assert_eq!(
        loader.query_text(groups).await.unwrap(),
        vec![vec![Some("3".to_string())]],
        "5000 rows in row groups of 2048"
    );
}

#[tokio::test]
async fn wide_rows_get_the_memory_they_need() {
    // DuckDB pins about 1.5 row groups (2,048 rows each) of a load's widest column: with
    // ~75 KB `_RAW` documents (long commit patches, PR bodies) that is ~230 MB, and under
    // the default 128MB limit the load fails "Out of Memory". With `memory_limit` unset
    // the loader sizes the limit for the load from the staged footers.
    let Fixture {
        dir,
        root,
        loader,
        table,
        loc,
    } = fixture().await;
    // 4,000 rows with distinct ~75 KB `_RAW`, in row groups of 500 as staging writes them.
    let rows: Vec<Row> = (0..4_000).map(|i| (i, "t", T1)).collect();
    let b = batch(&rows, false);
    let raw_at = b.schema().index_of("_RAW").unwrap();
    let raw: Vec<String> = (0..4_000)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"patch\":\"{}\"}}",
                "+ wide line\\n".repeat(5_700)
            )
        })
        .collect();
    let mut columns = b.columns().to_vec();
    columns[raw_at] = std::sync::Arc::new(arrow::array::StringArray::from_iter_values(&raw));
    let b = arrow::record_batch::RecordBatch::try_new(b.schema(), columns).unwrap();
    let bytes = parquet_bytes_in_row_groups(&b, Some(500));
    drop(b);
    let mut file = stage_bytes(&root, "wide", &bytes);
    file.rows = rows.len() as u64;

    // A limit set in the spec is a hard one: the same load fails, and says which field.
    let capped = DuckDbLoader::from_config(DuckDbConfig {
        path: dir.path().join("capped.duckdb"),
        memory_limit: Some("128MB".to_string()),
        ..DuckDbConfig::default()
    })
    .unwrap();
    capped.ensure_table(&table).await.unwrap();
    let err = capped
        .load(&table, std::slice::from_ref(&file), &loc)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("raise warehouse.memory_limit, now 128MB"),
        "{err}"
    );
    drop(capped);

    let stats = loader.load(&table, &[file], &loc).await.unwrap();
    assert_eq!(stats.inserted, 4_000);
    assert_eq!(count(&loader, "PULL_REQUEST").await, 4_000);
    // The default limit is back for whatever the connection does next.
    let limit = loader
        .query_text("SELECT current_setting('memory_limit')")
        .await
        .unwrap();
    assert_eq!(limit, vec![vec![Some("122.0 MiB".to_string())]]);
    // Reading the wide text back needs more than that too (DuckDB decompresses 2,048
    // values at a time), so check the content under a query-sized limit.
    loader.query_text("SET memory_limit = '1GB'").await.unwrap();
    let total: usize = raw.iter().map(|t| t.len()).sum();
    let stored = loader
        .query_text(r#"SELECT sum(length("_RAW"))::VARCHAR FROM "RAW_TABLES"."PULL_REQUEST""#)
        .await
        .unwrap();
    assert_eq!(stored, vec![vec![Some(total.to_string())]]);
}

/// `flowctl query` runs whatever SQL the user gives: every type comes back as text. duckdb's
/// own row values panic on some (`TIME_NS`, found in review), so this reads Arrow results.
#[tokio::test]
async fn query_text_renders_every_type_a_user_query_may_return() {
    let f = fixture().await;
    let q = "SELECT 'a' AS s, 42::BIGINT AS i, 1.5::DOUBLE AS d, true AS b, NULL AS n, \
             '12:00:01'::TIME_NS AS tn, '12:00:01'::TIME AS t, DATE '2026-01-02' AS dt, \
             TIMESTAMP '2026-01-02 03:04:05' AS ts, 1.25::DECIMAL(5,2) AS dec, \
             12345678901234567890123::HUGEINT AS h, [1, 2] AS l, \
             INTERVAL 2 DAY AS iv, 'ab'::BLOB AS bl";
    let got = f.loader.query_text(q).await.unwrap();
    assert_eq!(got.len(), 1);
    let row: Vec<&str> = got[0]
        .iter()
        .map(|c| c.as_deref().unwrap_or("NULL"))
        .collect();
    assert_eq!(&row[..5], ["a", "42", "1.5", "true", "NULL"], "{row:?}");
    assert_eq!(&row[5..7], ["12:00:01", "12:00:01"], "{row:?}");
    assert_eq!(row[7], "2026-01-02", "{row:?}");
    assert!(row[8].starts_with("2026-01-02T03:04:05"), "{row:?}");
    assert_eq!(row[9], "1.25", "{row:?}");
    assert_eq!(row[10], "12345678901234567890123", "{row:?}");
    assert_eq!(row[11], "[1, 2]", "{row:?}");
    assert_eq!(&row[12..], ["2 days", "6162"], "{row:?}");
    // Statements without a result set still run.
    assert!(
        f.loader
            .query_text("CREATE TABLE t (x INT)")
            .await
            .unwrap()
            .len()
            <= 1
    );
    let empty = f.loader.query_text("SELECT * FROM t").await.unwrap();
    assert!(empty.is_empty());
}
