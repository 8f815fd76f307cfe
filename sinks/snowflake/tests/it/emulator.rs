//! The loader through its real HTTP client against the SQL API adapter over fakesnow
//! (scripts/emulators/snowflake_sqlapi.py), with Parquet staged on moto S3.
//! Needs FLOWCTL_TEST_SNOWFLAKE_URL and FLOWCTL_TEST_S3_ENDPOINT.

use arrow::array::{
    ArrayRef, Int64Array, ListBuilder, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use flowctl_core::meta::{metadata_fields, RAW};
use flowctl_core::object_store::{path::Path, ObjectStoreExt, PutPayload};
use flowctl_core::{StagedFile, StagingLocation, TableSpec, WarehouseLoader};
use flowctl_snowflake::{SnowflakeConfig, SnowflakeLoader};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::sync::Arc;

fn env(var: &str) -> Option<String> {
    flowctl_testkit::emulator(var)
}

struct Env {
    loader: SnowflakeLoader,
    staging: StagingLocation,
    schema_name: String,
    sf_url: String,
}

fn uniq() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

async fn setup() -> Option<Env> {
    let sf_url = env("FLOWCTL_TEST_SNOWFLAKE_URL")?;
    let s3 = env("FLOWCTL_TEST_S3_ENDPOINT")?;
    let id = uniq();
    let bucket = format!("sf-test-{id}");
    let staging = flowctl_testkit::moto_staging(&s3, &bucket, "github");
    let schema_name = format!("RAW_{}", id.to_uppercase());
    Some(Env {
        loader: loader_for(&sf_url, serde_json::json!({ "schema": schema_name })),
        staging,
        schema_name,
        sf_url,
    })
}

/// A loader on the emulator; `overrides` replace keys of the base warehouse block.
fn loader_for(sf_url: &str, overrides: serde_json::Value) -> SnowflakeLoader {
    let mut cfg = serde_json::json!({
        "account": "test.us-east-1",
        "user": "flowctl",
        "private_key_path": concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/test_key.p8"),
        "storage_integration": "TEST_INT",
        "base_url": sf_url,
        "poll_interval_ms": 20,
    });
    for (k, v) in overrides.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    SnowflakeLoader::from_config(serde_json::from_value::<SnowflakeConfig>(cfg).unwrap()).unwrap()
}

/// POST a request body as given, straight to the emulator: (HTTP status, answer).
async fn post_raw(env: &Env, body: serde_json::Value) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v2/statements", env.sf_url))
        .bearer_auth("test-token")
        .header("X-Snowflake-Authorization-Token-Type", "KEYPAIR_JWT")
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn schema(extra: bool) -> SchemaRef {
    let mut f = vec![
        Field::new("ID", DataType::Int64, false),
        Field::new("TITLE", DataType::Utf8, true),
    ];
    if extra {
        f.push(Field::new("BODY", DataType::Utf8, true));
    }
    f.extend(metadata_fields());
    f.push(Field::new(RAW, DataType::Utf8, true));
    Arc::new(Schema::new(f))
}

/// One row: (id, title, ingested_at seconds).
type Row<'a> = (i64, &'a str, i64);

fn batch(schema: &SchemaRef, rows: &[Row]) -> RecordBatch {
    let n = rows.len();
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
    ];
    if schema.field_with_name("BODY").is_ok() {
        cols.push(Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| format!("body {}", r.1)),
        )));
    }
    cols.push(Arc::new(StringArray::from_iter_values(rows.iter().map(
        |r| flowctl_core::meta::row_key(&["acme", "w", &r.0.to_string()]),
    ))));
    cols.push(Arc::new(
        TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.2 * 1_000_000))
            .with_timezone("UTC"),
    ));
    cols.push(Arc::new(StringArray::from_iter_values(
        std::iter::repeat_n("acme", n),
    )));
    cols.push(Arc::new(StringArray::from_iter_values(
        std::iter::repeat_n("batch", n),
    )));
    cols.push(Arc::new(StringArray::from_iter_values(
        rows.iter()
            .map(|r| format!(r#"{{"id": {}, "title": "{}"}}"#, r.0, r.1)),
    )));
    RecordBatch::try_new(schema.clone(), cols).unwrap()
}

async fn stage_file(env: &Env, schema: &SchemaRef, name: &str, rows: &[Row<'_>]) -> StagedFile {
    stage_batch(env, &batch(schema, rows), name).await
}

/// Writes `b` as Snappy Parquet to `pull_request/org=acme/date=2026-01-02/{name}.parquet`.
async fn stage_batch(env: &Env, b: &RecordBatch, name: &str) -> StagedFile {
    let mut buf = Vec::new();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut w = ArrowWriter::try_new(&mut buf, b.schema(), Some(props)).unwrap();
    w.write(b).unwrap();
    w.close().unwrap();
    let relative_path = format!("pull_request/org=acme/date=2026-01-02/{name}.parquet");
    let bytes = buf.len() as u64;
    env.staging
        .store
        .put(
            &env.staging.root.clone().join_path(&relative_path),
            PutPayload::from(buf),
        )
        .await
        .unwrap();
    StagedFile {
        uri: format!("{}{relative_path}", env.staging.root_uri),
        relative_path,
        rows: b.num_rows() as u64,
        bytes,
    }
}

/// The emulator's bookkeeping: request bodies, cancels.
async fn stats(env: &Env) -> serde_json::Value {
    reqwest::get(format!("{}/flowctl-test/stats", env.sf_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

trait JoinPath {
    fn join_path(self, rel: &str) -> Path;
}
impl JoinPath for Path {
    fn join_path(self, rel: &str) -> Path {
        Path::from(format!("{}/{rel}", self.as_ref()))
    }
}

fn table(schema: &SchemaRef) -> TableSpec {
    TableSpec {
        name: "PULL_REQUEST".into(),
        schema: schema.clone(),
    }
}

/// `(id, title)` of every target row, ordered by id.
async fn target_rows(env: &Env) -> Vec<(String, String)> {
    let rs = env
        .loader
        .execute(&format!(
            r#"SELECT "ID", "TITLE" FROM "GITHUB_PIPELINES"."{}"."PULL_REQUEST" ORDER BY "ID""#,
            env.schema_name
        ))
        .await
        .unwrap();
    rs.rows
        .iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn loads_are_idempotent_newer_only_and_deduplicated() {
    let Some(env) = setup().await else { return };
    let s = schema(false);
    env.loader.ensure_table(&table(&s)).await.unwrap();

    let f1 = stage_file(&env, &s, "f1", &[(1, "one", 100), (2, "two", 100)]).await;
    let st = env
        .loader
        .load(&table(&s), std::slice::from_ref(&f1), &env.staging)
        .await
        .unwrap();
    assert_eq!((st.rows_loaded, st.inserted, st.updated), (2, 2, 0));

    // The same batch again: copied again (FORCE), nothing changes.
    let st = env
        .loader
        .load(&table(&s), &[f1], &env.staging)
        .await
        .unwrap();
    assert_eq!((st.rows_loaded, st.inserted, st.updated), (2, 0, 0));
    assert_eq!(
        target_rows(&env).await,
        vec![("1".into(), "one".into()), ("2".into(), "two".into())]
    );

    // An older version of row 1 is not applied.
    let old = stage_file(&env, &s, "old", &[(1, "stale", 50)]).await;
    let st = env
        .loader
        .load(&table(&s), &[old], &env.staging)
        .await
        .unwrap();
    assert_eq!((st.inserted, st.updated), (0, 0));

    // Duplicate keys in one load (two files): the newest wins; a new key is inserted once.
    let a = stage_file(&env, &s, "a", &[(2, "two-newer", 200), (3, "three-a", 200)]).await;
    let b = stage_file(
        &env,
        &s,
        "b",
        &[(2, "two-newest", 300), (3, "three-b", 300)],
    )
    .await;
    let st = env
        .loader
        .load(&table(&s), &[a, b], &env.staging)
        .await
        .unwrap();
    assert_eq!((st.rows_loaded, st.inserted, st.updated), (4, 1, 1));
    assert_eq!(
        target_rows(&env).await,
        vec![
            ("1".into(), "one".into()),
            ("2".into(), "two-newest".into()),
            ("3".into(), "three-b".into())
        ]
    );
    // _RAW landed as a parsed VARIANT, not as a JSON string.
    let rs = env
        .loader
        .execute(&format!(
            r#"SELECT "_RAW":title::VARCHAR FROM "GITHUB_PIPELINES"."{}"."PULL_REQUEST" WHERE "ID" = 3"#,
            env.schema_name
        ))
        .await
        .unwrap();
    assert_eq!(rs.rows[0][0].as_deref(), Some("three-b"));
    // The staging table is left empty.
    let rs = env
        .loader
        .execute(&format!(
            r#"SELECT COUNT(*) FROM "GITHUB_PIPELINES"."{}"."PULL_REQUEST_STAGE""#,
            env.schema_name
        ))
        .await
        .unwrap();
    assert_eq!(rs.rows[0][0].as_deref(), Some("0"));
}

#[tokio::test]
async fn new_column_is_added_to_both_tables() {
    let Some(env) = setup().await else { return };
    env.loader
        .ensure_table(&table(&schema(false)))
        .await
        .unwrap();
    let s2 = schema(true);
    env.loader.ensure_table(&table(&s2)).await.unwrap();
    env.loader.ensure_table(&table(&s2)).await.unwrap(); // idempotent
    let rs = env
        .loader
        .execute(&format!(
            "SELECT TABLE_NAME FROM \"GITHUB_PIPELINES\".INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = '{}' AND COLUMN_NAME = 'BODY' ORDER BY TABLE_NAME",
            env.schema_name
        ))
        .await
        .unwrap();
    let tables: Vec<_> = rs.rows.iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(tables, vec!["PULL_REQUEST", "PULL_REQUEST_STAGE"]);
    let f = stage_file(&env, &s2, "v2", &[(7, "seven", 100)]).await;
    let st = env
        .loader
        .load(&table(&s2), &[f], &env.staging)
        .await
        .unwrap();
    assert_eq!(st.inserted, 1);
}

#[tokio::test]
async fn failed_copy_is_a_clear_error_and_target_untouched() {
    let Some(env) = setup().await else { return };
    let s = schema(false);
    env.loader.ensure_table(&table(&s)).await.unwrap();
    let good = stage_file(&env, &s, "good", &[(1, "one", 100)]).await;
    env.loader
        .load(&table(&s), std::slice::from_ref(&good), &env.staging)
        .await
        .unwrap();
    let newer = stage_file(&env, &s, "newer", &[(1, "changed", 200)]).await;
    let mut missing = newer.clone();
    missing.relative_path = "pull_request/org=acme/date=2026-01-02/missing.parquet".into();
    let e = env
        .loader
        .load(&table(&s), &[newer, missing], &env.staging)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("COPY INTO") && e.contains("PULL_REQUEST"), "{e}");
    assert_eq!(target_rows(&env).await, vec![("1".into(), "one".into())]);
}

#[tokio::test]
async fn failed_merge_is_a_clear_error_and_target_untouched() {
    let Some(env) = setup().await else { return };
    let s = schema(false);
    env.loader.ensure_table(&table(&s)).await.unwrap();
    let good = stage_file(&env, &s, "good", &[(1, "one", 100)]).await;
    env.loader
        .load(&table(&s), &[good], &env.staging)
        .await
        .unwrap();
    // _RAW that is not JSON: COPY (VARCHAR) succeeds, PARSE_JSON in the MERGE fails.
    let b = batch(&s, &[(1, "changed", 200), (2, "two", 200)]);
    let mut cols = b.columns().to_vec();
    let raw = s.index_of(RAW).unwrap();
    cols[raw] = Arc::new(StringArray::from(vec!["{not json", "{also not"]));
    let b = RecordBatch::try_new(s.clone(), cols).unwrap();
    let f = stage_batch(&env, &b, "bad").await;
    let e = env
        .loader
        .load(&table(&s), &[f], &env.staging)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("MERGE") && e.contains("PULL_REQUEST"), "{e}");
    assert_eq!(target_rows(&env).await, vec![("1".into(), "one".into())]);
}

#[tokio::test]
async fn accepted_statement_is_polled_to_its_result() {
    let Some(env) = setup().await else { return };
    let rs = env
        .loader
        .execute("SELECT 41 + 1 AS ANSWER /*flowctl-test:async*/")
        .await
        .unwrap();
    assert_eq!(rs.rows[0][0].as_deref(), Some("42"));
}

#[tokio::test]
async fn failure_422_maps_to_code_sqlstate_and_message() {
    let Some(env) = setup().await else { return };
    let e = env.loader.execute("SELEC 1").await.unwrap_err().to_string();
    assert!(
        e.contains("code 001003") && e.contains("SQLSTATE 42000") && e.contains("SELEC"),
        "{e}"
    );
}

#[tokio::test]
async fn lost_answer_is_retried_without_running_twice() {
    let Some(env) = setup().await else { return };
    let t = format!(r#""GITHUB_PIPELINES"."{}"."RETRY_T""#, env.schema_name);
    env.loader
        .execute(&format!("CREATE TABLE {t} (X NUMBER(38,0))"))
        .await
        .unwrap();
    env.loader
        .execute(&format!(
            "INSERT INTO {t} VALUES (1) /*flowctl-test:fail-once*/"
        ))
        .await
        .unwrap();
    let rs = env
        .loader
        .execute(&format!("SELECT COUNT(*) FROM {t}"))
        .await
        .unwrap();
    assert_eq!(
        rs.rows[0][0].as_deref(),
        Some("1"),
        "the retried INSERT ran twice"
    );
}

/// POST requests the emulator received whose statement contains `marker`.
async fn requests_with(env: &Env, marker: &str) -> usize {
    stats(env).await["bodies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["statement"].as_str().is_some_and(|s| s.contains(marker)))
        .count()
}

/// Snowflake answers 429 when requests come too fast (Snowflake community article "SQL API
/// request fails with error Request rate exceeds max"); the same request is sent again.
#[tokio::test]
async fn throttled_statement_is_retried_and_succeeds() {
    let Some(env) = setup().await else { return };
    let id = uniq();
    let rs = env
        .loader
        .execute(&format!(
            "SELECT 7 AS SEVEN /*{id}*/ /*flowctl-test:throttle-once*/"
        ))
        .await
        .unwrap();
    assert_eq!(rs.rows[0][0].as_deref(), Some("7"));
    assert_eq!(requests_with(&env, &id).await, 2);
}

#[tokio::test]
async fn refused_key_and_bad_sql_fail_at_once_and_are_not_retryable() {
    let Some(env) = setup().await else { return };
    let id = uniq();
    let e = env
        .loader
        .execute(&format!("SELECT 1 /*{id}*/ /*flowctl-test:unauthorized*/"))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("refused the key-pair JWT (HTTP 401"), "{msg}");
    assert!(
        msg.contains("JWT token is invalid") && msg.contains("SHA256:"),
        "{msg}"
    );
    assert!(!e.retryable(), "{msg}");
    assert_eq!(
        requests_with(&env, &id).await,
        1,
        "a refused key was retried"
    );

    let id = uniq();
    let e = env
        .loader
        .execute(&format!("SELEC 1 /*{id}*/"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("SQLSTATE 42000"), "{e}");
    assert!(!e.retryable(), "{e}");
    assert_eq!(requests_with(&env, &id).await, 1, "bad SQL was retried");
}

#[tokio::test]
async fn dropping_a_running_statement_cancels_it() {
    let Some(env) = setup().await else { return };
    let cancels = || async { stats(&env).await["cancels"].as_array().unwrap().len() };
    let before = cancels().await;
    let run = env.loader.execute("SELECT 1 /*flowctl-test:hang*/");
    // The statement never finishes; give up once it has been polled a few times.
    let r = tokio::time::timeout(std::time::Duration::from_millis(300), run).await;
    assert!(r.is_err(), "a hanging statement finished");
    for _ in 0..200 {
        if cancels().await > before {
            return;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no cancel request reached the emulator");
}

/// Names in a spec mean what they mean in Snowflake SQL: plain names their upper-case form,
/// quoted names exactly. The emulator's request fields are case-sensitive, as Snowflake's
/// are, so a loader that sent `github_pipelines` as written would fail here.
#[tokio::test]
async fn spec_names_resolve_like_snowflake_identifiers() {
    let Some(env) = setup().await else { return };
    let s = schema(false);
    env.loader.ensure_table(&table(&s)).await.unwrap();
    let lower_schema = env.schema_name.to_lowercase();

    // The field as written is refused: the database exists only as GITHUB_PIPELINES.
    let (status, answer) = post_raw(
        &env,
        serde_json::json!({"statement": "SELECT 1", "database": "github_pipelines", "schema": env.schema_name}),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{answer}"
    );

    // Lower-case names in the spec reach the upper-case objects, stage and integration too.
    let lower = loader_for(
        &env.sf_url,
        serde_json::json!({
            "database": "github_pipelines", "schema": lower_schema,
            "warehouse": "etl_wh", "role": "flowctl_loader", "storage_integration": "test_int",
        }),
    );
    lower.ensure_table(&table(&s)).await.unwrap();
    let f = stage_file(&env, &s, "lower", &[(1, "one", 100)]).await;
    let st = lower.load(&table(&s), &[f], &env.staging).await.unwrap();
    assert_eq!(st.inserted, 1);
    // The stage flowctl created is found again under a lower-case qualified name.
    let by_stage = loader_for(
        &env.sf_url,
        serde_json::json!({"schema": lower_schema, "stage": format!("{lower_schema}.flowctl_stage")}),
    );
    let f = stage_file(&env, &s, "staged", &[(2, "two", 100)]).await;
    by_stage.load(&table(&s), &[f], &env.staging).await.unwrap();
    assert_eq!(
        target_rows(&env).await,
        vec![("1".into(), "one".into()), ("2".into(), "two".into())]
    );

    // Quoted names are exact: a mixed-case database and a lower-case schema.
    let db = format!("Mixed_{}", &lower_schema[4..]);
    env.loader
        .execute(&format!(r#"CREATE DATABASE IF NOT EXISTS "{db}""#))
        .await
        .unwrap();
    env.loader
        .execute(&format!(r#"CREATE SCHEMA IF NOT EXISTS "{db}"."raw""#))
        .await
        .unwrap();
    let quoted = loader_for(
        &env.sf_url,
        serde_json::json!({"database": format!("\"{db}\""), "schema": "\"raw\""}),
    );
    quoted.ensure_table(&table(&s)).await.unwrap();
    quoted.ensure_table(&table(&s)).await.unwrap(); // columns found again: no ADD COLUMN
    let f = stage_file(&env, &s, "quoted", &[(3, "three", 100)]).await;
    assert_eq!(
        quoted
            .load(&table(&s), &[f], &env.staging)
            .await
            .unwrap()
            .inserted,
        1
    );
    let rs = quoted
        .execute(&format!(
            r#"SELECT "TITLE" FROM "{db}"."raw"."PULL_REQUEST""#
        ))
        .await
        .unwrap();
    assert_eq!(rs.rows, vec![vec![Some("three".to_string())]]);
    // The same name unquoted means MIXED_..., which does not exist.
    let plain = loader_for(
        &env.sf_url,
        serde_json::json!({"database": db, "schema": "raw"}),
    );
    let e = plain
        .ensure_table(&table(&s))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
}

/// Every statement carries `parameters.timezone = UTC` and no null warehouse or role. The
/// emulator's session zone otherwise is Snowflake's account default (America/Los_Angeles),
/// so timestamps read back in UTC only when the parameter arrived.
#[tokio::test]
async fn statements_run_in_utc_without_null_context() {
    let Some(env) = setup().await else { return };
    let s = schema(false);
    env.loader.ensure_table(&table(&s)).await.unwrap();
    let f = stage_file(&env, &s, "tz", &[(1, "one", 100)]).await;
    env.loader
        .load(&table(&s), &[f], &env.staging)
        .await
        .unwrap();
    let probe = format!(
        r#"SELECT "_INGESTED_AT" FROM "GITHUB_PIPELINES"."{}"."PULL_REQUEST""#,
        env.schema_name
    );
    let rs = env.loader.execute(&probe).await.unwrap();
    assert_eq!(rs.rows[0][0].as_deref(), Some("1970-01-01T00:01:40+00:00"));
    // Without the parameter the same row reads in the account's zone: the check can fail.
    let (_, answer) = post_raw(
        &env,
        serde_json::json!({"statement": probe, "database": "GITHUB_PIPELINES", "schema": env.schema_name}),
    )
    .await;
    assert_eq!(
        answer["data"][0][0], "1969-12-31T16:01:40-08:00",
        "{answer}"
    );

    let stats = stats(&env).await;
    let sent: Vec<&serde_json::Value> = stats["bodies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["schema"] == env.schema_name.as_str() && b.get("parameters").is_some())
        .collect();
    assert!(
        sent.len() >= 5,
        "CREATE, COPY, MERGE, TRUNCATE, SELECT: {sent:?}"
    );
    for body in sent {
        let keys = body.as_object().unwrap();
        assert!(
            !keys.contains_key("warehouse") && !keys.contains_key("role"),
            "{body}"
        );
        assert!(keys.values().all(|v| !v.is_null()), "{body}");
        assert_eq!(body["parameters"]["timezone"], "UTC", "{body}");
    }
}

/// LIST columns land as ARRAYs with their elements, an empty list as `[]` and a null list
/// as SQL NULL. Stricter than the emulator, which reports these columns as VARIANT: each
/// value must be an array (IS_ARRAY), not JSON text in a VARIANT string.
#[tokio::test]
async fn list_columns_arrive_as_arrays_with_their_elements() {
    let Some(env) = setup().await else { return };
    let list = || DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
    let mut fields = vec![
        Field::new("ID", DataType::Int64, false),
        Field::new("LABELS", list(), true),
        Field::new("ASSIGNEES", list(), true),
    ];
    fields.extend(metadata_fields());
    let s: SchemaRef = Arc::new(Schema::new(fields));
    let rows: [(i64, Option<Vec<&str>>); 4] = [
        (1, Some(vec!["bug", "enhancement ✨"])),
        (2, Some(vec![])),
        (3, None),
        (4, Some(vec!["it's \"quoted\""])),
    ];
    let lists = |shift: usize| {
        let mut b = ListBuilder::new(StringBuilder::new());
        for (_, l) in &rows {
            match l {
                Some(items) => {
                    for i in items.iter().skip(shift) {
                        b.values().append_value(i);
                    }
                    b.append(true);
                }
                None => b.append(false),
            }
        }
        Arc::new(b.finish()) as ArrayRef
    };
    let n = rows.len();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        lists(0),
        lists(1),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| {
            flowctl_core::meta::row_key(&["acme", "l", &r.0.to_string()])
        }))),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(std::iter::repeat_n(100_000_000, n))
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            "acme", n,
        ))),
        Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
            "batch", n,
        ))),
    ];
    let b = RecordBatch::try_new(s.clone(), cols).unwrap();
    let f = stage_batch(&env, &b, "lists").await;
    env.loader.ensure_table(&table(&s)).await.unwrap();
    env.loader
        .load(&table(&s), &[f], &env.staging)
        .await
        .unwrap();

    let rs = env
        .loader
        .execute(&format!(
            r#"SELECT "ID", "LABELS", IS_ARRAY("LABELS"), ARRAY_SIZE("LABELS"), "LABELS"[0]::VARCHAR, "ASSIGNEES" FROM "GITHUB_PIPELINES"."{}"."PULL_REQUEST" ORDER BY "ID""#,
            env.schema_name
        ))
        .await
        .unwrap();
    let parse = |v: &Option<String>| {
        v.as_deref()
            .map(|t| serde_json::from_str::<Vec<String>>(t).unwrap_or_else(|e| panic!("{t}: {e}")))
    };
    let got: Vec<_> = rs
        .rows
        .iter()
        .map(|r| {
            (
                r[0].clone().unwrap(),
                parse(&r[1]),
                r[2].clone(),
                r[3].clone(),
                r[4].clone(),
                parse(&r[5]),
            )
        })
        .collect();
    let strings = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        got,
        vec![
            (
                "1".into(),
                strings(&["bug", "enhancement ✨"]),
                some("true"),
                some("2"),
                some("bug"),
                strings(&["enhancement ✨"])
            ),
            (
                "2".into(),
                strings(&[]),
                some("true"),
                some("0"),
                None,
                strings(&[])
            ),
            ("3".into(), None, None, None, None, None),
            (
                "4".into(),
                strings(&["it's \"quoted\""]),
                some("true"),
                some("1"),
                some("it's \"quoted\""),
                strings(&[])
            ),
        ]
    );
}
