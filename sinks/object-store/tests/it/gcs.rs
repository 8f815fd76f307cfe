//! The `gcs` sink: writes and multipart through moto's GCS-compatible XML API
//! (FLOWCTL_TEST_S3_ENDPOINT), reads, listing and deletes through fake-gcs-server
//! (FLOWCTL_TEST_GCS_ENDPOINT), which serves XML reads but not XML writes.

use crate::common;

use common::*;
use flowctl_core::{StagedFile, StagingSink};
use flowctl_object_store::{build_gcs_from, build_local, Cleanup, GcsConfig, LocalConfig};
use flowctl_testkit::{create_bucket, emulator, unique_name};
use futures::StreamExt;
use object_store::gcp::{GcpCredential, GoogleCloudStorageBuilder};
use object_store::path::Path;
use object_store::{ObjectStoreExt, StaticCredentialProvider};
use std::sync::Arc;

/// A fixed, non-empty bearer token: the emulators do not check it, and an empty one
/// crashes moto.
fn builder() -> GoogleCloudStorageBuilder {
    let cred = StaticCredentialProvider::new(GcpCredential {
        bearer: "testing".into(),
    });
    GoogleCloudStorageBuilder::new().with_credentials(Arc::new(cred))
}

fn config(base_url: &str, bucket: &str) -> GcsConfig {
    serde_json::from_value(serde_json::json!({ "bucket": bucket, "base_url": base_url })).unwrap()
}

#[tokio::test]
async fn gcs_multipart_write_through_moto_xml_reads_back_equal() {
    let Some(ep) = emulator("FLOWCTL_TEST_S3_ENDPOINT") else {
        return;
    };
    let bucket = unique_name("flowctlgcs");
    create_bucket(&ep, &bucket);
    let mut cfg = config(&ep, &bucket);
    cfg.upload.upload_part_bytes = 5 * 1024 * 1024;
    cfg.files.row_group_bytes = 2 * 1024 * 1024;
    let sink = build_gcs_from(builder(), cfg).unwrap();
    let loc = sink.location().unwrap();
    assert_eq!(loc.root_uri, format!("gs://{bucket}/github/"));
    assert_eq!(loc.options["base_url"], ep);

    let mut w = sink
        .writer(target("pull_request", "acme", "b-gcs"))
        .await
        .unwrap();
    let batches: Vec<_> = (0..16).map(|i| batch(i * 1000, 1000, 1000)).collect();
    for b in &batches {
        w.write(b).await.unwrap();
    }
    let files = w.finish().await.unwrap();
    assert_eq!(files.len(), 1);
    assert!(files[0]
        .uri
        .starts_with(&format!("gs://{bucket}/github/pull_request/org=acme/")));
    assert!(files[0].bytes > 15 * 1024 * 1024, "{:?}", files[0]);
    let path = Path::parse(format!("github/{}", files[0].relative_path)).unwrap();
    let head = loc.store.head(&path).await.unwrap();
    assert_eq!(head.size, files[0].bytes);
    assert_eq!(
        concat(&read_parquet(fetch(&loc, &files[0]).await)),
        concat(&batches)
    );
}

/// Writes a Parquet file with the local sink, for seeding fake-gcs-server.
async fn parquet_bytes() -> (StagedFile, bytes::Bytes, arrow::record_batch::RecordBatch) {
    let tmp = tempfile::tempdir().unwrap();
    let cfg: LocalConfig =
        serde_json::from_value(serde_json::json!({ "path": tmp.path().to_str().unwrap() }))
            .unwrap();
    let sink = build_local(cfg).unwrap();
    let b = batch(0, 500, 100);
    let mut w = sink
        .writer(target("commit", "acme", "b-seed"))
        .await
        .unwrap();
    w.write(&b).await.unwrap();
    let file = w.finish().await.unwrap().remove(0);
    let bytes = fetch(&sink.location().unwrap(), &file).await;
    (file, bytes, b)
}

#[tokio::test]
async fn gcs_lists_reads_and_deletes_through_fake_gcs_server() {
    let Some(ep) = emulator("FLOWCTL_TEST_GCS_ENDPOINT") else {
        return;
    };
    let bucket = unique_name("flowctlread");
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{ep}/storage/v1/b"))
        .json(&serde_json::json!({ "name": bucket }))
        .send()
        .await
        .unwrap();
    assert!(
        resp.status().is_success(),
        "create bucket: {}",
        resp.status()
    );
    let (file, bytes, rows) = parquet_bytes().await;
    let name = format!("github/{}", file.relative_path);
    let resp = http
        .post(format!("{ep}/upload/storage/v1/b/{bucket}/o"))
        .query(&[("uploadType", "media"), ("name", name.as_str())])
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "seed: {}", resp.status());

    let mut cfg = config(&ep, &bucket);
    cfg.files.cleanup = Cleanup::DeleteAfterLoad;
    let sink = build_gcs_from(builder(), cfg).unwrap();
    let loc = sink.location().unwrap();
    let listed: Vec<_> = loc
        .store
        .list(Some(&loc.root))
        .map(|m| m.unwrap())
        .collect()
        .await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].location.as_ref(), name);
    assert_eq!(listed[0].size, bytes.len() as u64);
    let staged = StagedFile {
        uri: format!("gs://{bucket}/{name}"),
        ..file
    };
    assert_eq!(concat(&read_parquet(fetch(&loc, &staged).await)), rows);

    sink.after_load(std::slice::from_ref(&staged))
        .await
        .unwrap();
    let listed: Vec<_> = loc.store.list(Some(&loc.root)).collect().await;
    assert!(listed.is_empty(), "{listed:?}");
}

#[test]
fn gcs_config_checks_service_account_file_and_base_url() {
    let mut cfg = config("https://storage.example.com", "bkt");
    cfg.service_account_file = Some("/nonexistent/sa.json".into());
    let err = build_gcs_from(builder(), cfg).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/sa.json"), "{err}");
    let err = build_gcs_from(builder(), config("storage.example.com", "bkt")).unwrap_err();
    assert!(err.to_string().contains("base_url"), "{err}");
    let cfg: GcsConfig = serde_json::from_value(serde_json::json!({ "bucket": "b" })).unwrap();
    assert_eq!(cfg.prefix, "github");
    assert_eq!(cfg.files.cleanup, Cleanup::Keep);
    assert!(serde_json::from_value::<GcsConfig>(
        serde_json::json!({ "bucket": "b", "cleanup": "sometimes" })
    )
    .is_err());
}

#[tokio::test]
async fn gcs_missing_bucket_error_names_the_bucket() {
    let Some(ep) = emulator("FLOWCTL_TEST_S3_ENDPOINT") else {
        return;
    };
    let sink = build_gcs_from(builder(), config(&ep, &unique_name("flowctlabsent"))).unwrap();
    let mut w = sink
        .writer(target("pull_request", "acme", "b-nb"))
        .await
        .unwrap();
    w.write(&batch(0, 10, 10)).await.unwrap();
    let e = w.finish().await.unwrap_err();
    assert!(!e.retryable(), "{e}");
    let err = e.to_string();
    assert!(
        err.starts_with("gcs staging: bucket `flowctlabsent"),
        "{err}"
    );
    assert!(
        err.contains("does not exist") && err.contains("gs://flowctlabsent"),
        "{err}"
    );
}
