//! Reads real files from a temp directory (plain paths, globs and `file://` URLs through
//! object_store) and checks rows, types, keys, bad-row handling and the skip-unchanged state.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use flowctl_core::progress::{ProgressEvent, ProgressSink};
use flowctl_core::{find_source, meta, ReadRequest, Source, StreamResult};
use flowctl_file::{FileConfig, FileSource};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Warnings(Mutex<Vec<String>>);

impl ProgressSink for Warnings {
    fn event(&self, event: ProgressEvent) {
        if let ProgressEvent::Warning { message, .. } = event {
            self.0.lock().unwrap().push(message);
        }
    }
}

struct Run {
    /// The batches as the engine stages them (with the run's constant columns).
    batches: Vec<RecordBatch>,
    /// The columns of the batches the source sent.
    sent_columns: Vec<String>,
    result: StreamResult,
    warnings: Vec<String>,
}

impl Run {
    fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
    fn state(&self) -> Value {
        match &self.result {
            StreamResult::Done { state } => state.clone(),
            StreamResult::Failed { error } => panic!("failed: {error}"),
        }
    }
    fn error(&self) -> String {
        match &self.result {
            StreamResult::Failed { error } => error.clone(),
            StreamResult::Done { .. } => panic!("expected a failure"),
        }
    }
    fn strings(&self, col: &str) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for b in &self.batches {
            let a = b.column_by_name(col).unwrap().as_string::<i32>();
            out.extend((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i).to_string())));
        }
        out
    }
}

fn user_lookup(path: &str) -> Value {
    json!({
        "path": path,
        "format": "csv",
        "table": "USER_LOOKUP",
        "columns": [
            {"name": "login", "type": "string", "nullable": false},
            {"name": "ldap_uid", "type": "string"},
            {"name": "email", "type": "string"},
            {"name": "team", "type": "string"}
        ],
        "primary_key": ["login"],
        "partition": "acme"
    })
}

async fn read(cfg: Value, state: Option<Value>) -> Run {
    let src = FileSource::from_config(FileConfig::from_value(cfg).unwrap()).unwrap();
    let info = src.streams()[0].clone();
    let stream = info.name.clone();
    let warnings = Arc::new(Warnings::default());
    let mut st = BTreeMap::new();
    if let Some(s) = state {
        st.insert(stream.clone(), s);
    }
    let req = ReadRequest {
        streams: vec![stream.clone()],
        state: st,
        batch_id: "b-1".into(),
        ingested_at: "2026-01-02T03:04:05Z".parse().unwrap(),
        only_partitions: vec![],
        shard: None,
        progress: warnings.clone(),
    };
    let (tx, mut rx) = flowctl_core::batch_channel(4);
    let reader = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(b) = rx.recv().await {
            assert_eq!(b.partition, "acme");
            v.push(b.batch);
        }
        v
    });
    let outcome = src.read(req, tx).await.unwrap();
    let sent = reader.await.unwrap();
    let sent_columns = sent
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default();
    let run = meta::RunColumns {
        ingested_at: "2026-01-02T03:04:05Z".parse().unwrap(),
        batch_id: "b-1",
        partition: "acme",
    };
    let batches = sent
        .iter()
        .map(|b| meta::stage_batch(&stream, &info.schema, b, &run).unwrap())
        .collect();
    let result = outcome.streams.get(&stream).unwrap().clone();
    let warnings = warnings.0.lock().unwrap().clone();
    Run {
        batches,
        sent_columns,
        result,
        warnings,
    }
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[tokio::test]
async fn csv_rows_get_uppercase_columns_metadata_and_row_keys() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "users.csv",
        "login,ldap_uid,email,team,unused\nalice,a001,alice@x.io,core,zz\nbob,,bob@x.io,web,zz\n",
    );
    let run = read(user_lookup(&p), None).await;
    assert_eq!(run.rows(), 2);
    // The run's constant columns are the engine's to add.
    assert_eq!(
        run.sent_columns,
        ["LOGIN", "LDAP_UID", "EMAIL", "TEAM", "_ROW_KEY"]
    );
    let b = &run.batches[0];
    let schema = b.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "LOGIN",
            "LDAP_UID",
            "EMAIL",
            "TEAM",
            "_ROW_KEY",
            "_INGESTED_AT",
            "_SOURCE_ORG",
            "_BATCH_ID"
        ]
    );
    assert_eq!(
        run.strings("LOGIN"),
        [Some("alice".into()), Some("bob".into())]
    );
    assert_eq!(run.strings("LDAP_UID"), [Some("a001".into()), None]);
    assert_eq!(
        run.strings("_ROW_KEY"),
        [
            Some(format!("{:x}", md5::compute("alice"))),
            Some(format!("{:x}", md5::compute("bob")))
        ]
    );
    assert_eq!(run.strings("_SOURCE_ORG")[0].as_deref(), Some("acme"));
    assert_eq!(run.strings("_BATCH_ID")[0].as_deref(), Some("b-1"));
    let ts = b
        .column_by_name("_INGESTED_AT")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(ts.value(0), 1_767_323_045_000_000);
}

#[tokio::test]
async fn jsonl_types_and_composite_keys() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "d.jsonl",
        "{\"org\":\"o\",\"n\":7,\"score\":1.5,\"ok\":true,\"at\":\"2024-05-01T10:00:00Z\",\"day\":\"2024-05-01\"}\n\n\
         {\"ORG\":\"o\",\"n\":\"8\",\"score\":null,\"ok\":false,\"at\":\"2024-05-01 12:00:00\",\"day\":null}\n",
    );
    let cfg = json!({
        "path": p, "format": "jsonl", "table": "metrics", "partition": "acme",
        "columns": [
            {"name": "org", "type": "string"}, {"name": "n", "type": "int64"},
            {"name": "score", "type": "float64"}, {"name": "ok", "type": "boolean"},
            {"name": "at", "type": "timestamp"}, {"name": "day", "type": "date"}
        ],
        "primary_key": ["org", "n"]
    });
    let run = read(cfg, None).await;
    assert_eq!(run.rows(), 2);
    let b = &run.batches[0];
    assert_eq!(
        b.column_by_name("N")
            .unwrap()
            .as_primitive::<Int64Type>()
            .values(),
        &[7, 8]
    );
    let score = b
        .column_by_name("SCORE")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert_eq!(score.value(0), 1.5);
    assert!(score.is_null(1));
    let at = b
        .column_by_name("AT")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(at.value(1) - at.value(0), 2 * 3600 * 1_000_000);
    let day = b
        .column_by_name("DAY")
        .unwrap()
        .as_primitive::<Date32Type>();
    assert_eq!(day.value(0), 19844);
    assert!(day.is_null(1));
    assert_eq!(
        run.strings("_ROW_KEY")[1],
        Some(format!("{:x}", md5::compute("o|8")))
    );
}

#[tokio::test]
async fn glob_reads_every_matching_file_and_skips_unchanged_ones_next_time() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.csv",
        "login,ldap_uid,email,team\nalice,a1,,core\n",
    );
    write(
        dir.path(),
        "b.csv",
        "login,ldap_uid,email,team\nbob,b1,,web\ncarol,c1,,web\n",
    );
    write(dir.path(), "c.txt", "not matched\n");
    let pattern = format!("{}/*.csv", dir.path().display());
    let first = read(user_lookup(&pattern), None).await;
    assert_eq!(first.rows(), 3);
    let state = first.state();
    assert_eq!(state["files"].as_object().unwrap().len(), 2);

    let second = read(user_lookup(&pattern), Some(state.clone())).await;
    assert_eq!(second.rows(), 0, "unchanged files are not read again");
    assert_eq!(second.state(), state);

    write(
        dir.path(),
        "b.csv",
        "login,ldap_uid,email,team\nbob,b1,,web\ncarol,c1,,web\ndan,d1,,ops\n",
    );
    let third = read(user_lookup(&pattern), Some(state)).await;
    assert_eq!(third.rows(), 3, "only the changed file is read");
    assert_eq!(third.strings("LOGIN")[2].as_deref(), Some("dan"));
}

#[tokio::test]
async fn file_url_with_glob_goes_through_object_store() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    write(
        &dir.path().join("sub"),
        "x.csv",
        "login,ldap_uid,email,team\nzed,z1,,core\n",
    );
    write(
        dir.path(),
        "y.csv",
        "login,ldap_uid,email,team\nyan,y1,,core\n",
    );
    let url = format!("file://{}/*.csv", dir.path().display());
    let run = read(user_lookup(&url), None).await;
    assert_eq!(
        run.strings("LOGIN"),
        [Some("yan".into())],
        "`*` does not cross `/`"
    );
    let key = run.state()["files"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    assert!(
        key.starts_with("file:///") && key.ends_with("y.csv"),
        "{key}"
    );
}

#[tokio::test]
async fn bad_row_fails_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "n.csv", "id,name\n1,a\n2,b\nthree,c\n4,d\n");
    let cfg = json!({
        "path": p, "format": "csv", "table": "NUMS", "partition": "acme",
        "columns": [{"name": "id", "type": "int64"}, {"name": "name", "type": "string"}],
        "primary_key": ["id"]
    });
    let err = read(cfg, None).await.error();
    assert!(err.contains(&format!("{p}:4:")), "{err}");
    assert!(
        err.contains("column id") && err.contains("\"three\""),
        "{err}"
    );
}

#[tokio::test]
async fn bad_rows_are_skipped_counted_and_warned_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "n.csv", "id,name\n1,a\nthree,c\n4\n,e\n5,f\n");
    let cfg = json!({
        "path": p, "format": "csv", "table": "NUMS", "partition": "acme", "on_bad_row": "skip",
        "columns": [{"name": "id", "type": "int64", "nullable": false}, {"name": "name", "type": "string"}],
        "primary_key": ["id"]
    });
    let run = read(cfg, None).await;
    assert_eq!(run.rows(), 2);
    assert_eq!(run.warnings.len(), 1, "{:?}", run.warnings);
    let w = &run.warnings[0];
    assert!(w.contains("skipped 3 bad row(s) (lines 3, 4, 5)"), "{w}");
    assert!(w.contains("expected an integer"), "{w}");
}

#[tokio::test]
async fn jsonl_bad_line_and_missing_csv_column_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "u.jsonl", "{\"login\":\"a\"}\n[1,2]\n");
    let mut cfg = user_lookup(&p);
    cfg["format"] = json!("jsonl");
    let err = read(cfg, None).await.error();
    assert!(err.ends_with("u.jsonl:2: expected a JSON object"), "{err}");

    let p = write(dir.path(), "u.csv", "login,uid\na,1\n");
    let err = read(user_lookup(&p), None).await.error();
    assert!(
        err.contains("has no column `ldap_uid` (it has: login, uid)"),
        "{err}"
    );

    let err = read(
        user_lookup(&format!("{}/none-*.csv", dir.path().display())),
        None,
    )
    .await
    .error();
    assert!(err.starts_with("no files match"), "{err}");
}

#[tokio::test]
async fn small_batches_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("login,ldap_uid,email,team\n");
    for i in 0..25 {
        text.push_str(&format!("u{i},,,t\n"));
    }
    let p = write(dir.path(), "many.csv", &text);
    let mut cfg = user_lookup(&p);
    cfg["batch_rows"] = json!(10);
    let run = read(cfg, None).await;
    let sizes: Vec<usize> = run.batches.iter().map(|b| b.num_rows()).collect();
    assert_eq!(sizes, [10, 10, 5]);
}

#[test]
fn registered_and_config_is_strict() {
    let reg = find_source("file").expect("file source registered");
    let mut cfg = user_lookup("x.csv");
    assert!((reg.build)(cfg.clone()).is_ok());
    cfg["colums"] = json!([]);
    assert!((reg.build)(cfg).is_err(), "unknown keys are rejected");
    // The partition is the file source's own word; `org` is not one of its keys.
    let mut cfg = user_lookup("x.csv");
    let partition = cfg.as_object_mut().unwrap().remove("partition").unwrap();
    cfg["org"] = partition;
    let err = (reg.build)(cfg).err().unwrap().to_string();
    assert!(err.contains("unknown field `org`"), "{err}");
    let mut cfg = user_lookup("x.csv");
    cfg["primary_key"] = json!(["nope"]);
    let err = (reg.build)(cfg).err().unwrap().to_string();
    assert!(err.contains("primary_key `nope`"), "{err}");
    let schema = serde_json::to_value((reg.config_schema)()).unwrap();
    assert_eq!(schema["additionalProperties"], json!(false));
    assert!(schema["properties"].get("type").is_none());
}

#[tokio::test]
async fn duplicate_keys_are_bad_rows_and_the_first_wins() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "d.csv",
        "login,ldap_uid,email,team\nAnn,a1,,core\nbob,b1,,web\nAnn,a2,,ops\n",
    );
    let err = read(user_lookup(&p), None).await.error();
    assert!(
        err.contains(":4: duplicate primary key (login), first seen at line 2"),
        "{err}"
    );

    let mut cfg = user_lookup(&p);
    cfg["on_bad_row"] = json!("skip");
    let run = read(cfg, None).await;
    assert_eq!(
        run.strings("LDAP_UID"),
        [Some("a1".into()), Some("b1".into())]
    );
    assert!(
        run.warnings[0].contains("skipped 1 bad row(s) (lines 4)"),
        "{:?}",
        run.warnings
    );

    let p = write(
        dir.path(),
        "e.csv",
        "login,ldap_uid,email,team\n,a1,,core\n",
    );
    let mut cfg = user_lookup(&p);
    cfg["columns"][0]["nullable"] = json!(true);
    let err = read(cfg, None).await.error();
    assert!(
        err.ends_with("e.csv:2: primary key column login is empty"),
        "{err}"
    );
}

use flowctl_core::testing::emulator;

/// Creates a bucket on moto with a bare HTTP PUT (object_store cannot create buckets).
fn create_bucket(endpoint: &str, bucket: &str) {
    use std::io::{Read, Write};
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

#[tokio::test]
async fn s3_glob_on_moto() {
    use object_store::{ObjectStoreExt, PutPayload};
    let Some(ep) = emulator("FLOWCTL_TEST_S3_ENDPOINT") else {
        return;
    };
    let bucket = format!("filesrc{}", std::process::id());
    create_bucket(&ep, &bucket);
    let opts = json!({
        "aws_endpoint": ep, "aws_allow_http": "true", "aws_region": "us-east-1",
        "aws_access_key_id": "testing", "aws_secret_access_key": "testing"
    });
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(&bucket)
        .with_endpoint(&ep)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap();
    for (name, body) in [
        ("lookup/a.jsonl", "{\"login\":\"ann\",\"team\":\"core\"}\n"),
        ("lookup/b.jsonl", "{\"login\":\"ben\",\"team\":\"web\"}\n"),
        ("other/c.jsonl", "{\"login\":\"cid\"}\n"),
    ] {
        store
            .put(&name.into(), PutPayload::from(body.as_bytes().to_vec()))
            .await
            .unwrap();
    }
    let mut cfg = user_lookup(&format!("s3://{bucket}/lookup/*.jsonl"));
    cfg["format"] = json!("jsonl");
    cfg["storage_options"] = opts;
    let run = read(cfg, None).await;
    assert_eq!(
        run.strings("LOGIN"),
        [Some("ann".into()), Some("ben".into())]
    );
    let state = run.state();
    let names: Vec<&String> = state["files"].as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        [
            &format!("s3://{bucket}/lookup/a.jsonl"),
            &format!("s3://{bucket}/lookup/b.jsonl")
        ]
    );
    assert!(state["files"][names[0]]["etag"].is_string());
}
