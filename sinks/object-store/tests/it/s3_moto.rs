//! The `s3` sink against a real moto server (scripts/emulators/moto.sh sets
//! FLOWCTL_TEST_S3_ENDPOINT). Credentials go into each test's own builder, not the
//! process environment.

use crate::common;

use common::*;
use flowctl_core::StagingSink;
use flowctl_object_store::{build_s3_from, S3Config, Spool};
use flowctl_testkit::{create_bucket, emulator, unique_name};
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStoreExt, RetryConfig};

fn builder() -> AmazonS3Builder {
    AmazonS3Builder::new()
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_region("us-east-1")
}

fn config(endpoint: &str, bucket: &str) -> S3Config {
    serde_json::from_value(serde_json::json!({
        "bucket": bucket, "endpoint": endpoint, "allow_http": true, "prefix": "github",
    }))
    .unwrap()
}

/// The emulator's endpoint and a fresh bucket made there, or None (test skipped) without
/// the emulator.
async fn moto_bucket(name: &str) -> Option<(String, String)> {
    let ep = emulator("FLOWCTL_TEST_S3_ENDPOINT")?;
    let bucket = unique_name(name);
    create_bucket(&ep, &bucket);
    Some((ep, bucket))
}

#[tokio::test]
async fn s3_multipart_upload_of_several_parts_reads_back_equal_spooled_to_disk() {
    let spool = tempfile::tempdir().unwrap();
    multipart_reads_back_equal(Spool::Disk, Some(spool.path())).await;
    // The spool file has no name: nothing is left in the folder.
    let left: Vec<_> = std::fs::read_dir(spool.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn s3_multipart_upload_of_several_parts_reads_back_equal_buffered_in_memory() {
    multipart_reads_back_equal(Spool::Memory, None).await;
}

async fn multipart_reads_back_equal(spool: Spool, dir: Option<&std::path::Path>) {
    let Some((ep, bucket)) = moto_bucket("flowctl-mp").await else {
        return;
    };
    let mut cfg = config(&ep, &bucket);
    cfg.upload.upload_part_bytes = 5 * 1024 * 1024;
    cfg.files.row_group_bytes = 2 * 1024 * 1024;
    cfg.upload.spool = spool;
    cfg.upload.spool_dir = dir.map(|d| d.display().to_string());
    let sink = build_s3_from(builder(), cfg).unwrap();
    let loc = sink.location().unwrap();
    assert_eq!(loc.root_uri, format!("s3://{bucket}/github/"));
    assert_eq!(loc.options["endpoint"], ep);
    assert_eq!(loc.options["allow_http"], "true");

    let mut w = sink
        .writer(target("pull_request", "acme", "b-mp"))
        .await
        .unwrap();
    // 18 x 1000 rows x 1 KB of noise: ~18 MB, so at least three 5 MiB parts.
    let batches: Vec<_> = (0..18).map(|i| batch(i * 1000, 1000, 1000)).collect();
    for b in &batches {
        w.write(b).await.unwrap();
    }
    // A multipart upload is invisible until completed.
    let listed = loc
        .store
        .list_with_delimiter(Some(&loc.root))
        .await
        .unwrap();
    assert!(listed.objects.is_empty() && listed.common_prefixes.is_empty());
    let files = w.finish().await.unwrap();
    assert_eq!(files.len(), 1);
    let f = &files[0];
    assert_eq!(
        f.uri,
        format!("s3://{bucket}/github/pull_request/org=acme/date=2026-01-02/pull_request-b-mp-00000.parquet")
    );
    assert_eq!(f.rows, 18_000);
    let head = loc
        .store
        .head(&Path::parse(format!("github/{}", f.relative_path)).unwrap())
        .await
        .unwrap();
    assert_eq!(head.size, f.bytes);
    // S3 reports a multipart object's ETag as `<md5>-<number of parts>`.
    let etag = head.e_tag.unwrap();
    let parts: u32 = etag
        .trim_matches('"')
        .rsplit('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(parts >= 3, "etag {etag}");
    assert_eq!(
        concat(&read_parquet(fetch(&loc, f).await)),
        concat(&batches)
    );
}

/// Multipart uploads in progress in `bucket` (S3 ListMultipartUploads).
async fn multipart_uploads(endpoint: &str, bucket: &str) -> usize {
    let body = reqwest::get(format!("{endpoint}/{bucket}?uploads"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.matches("<UploadId>").count()
}

#[tokio::test]
async fn s3_small_file_abort_and_cleanup() {
    let Some((ep, bucket)) = moto_bucket("flowctl-small").await else {
        return;
    };
    let mut cfg = config(&ep, &bucket);
    cfg.files.cleanup = flowctl_object_store::Cleanup::DeleteAfterLoad;
    cfg.files.row_group_bytes = 2 * 1024 * 1024;
    let sink = build_s3_from(builder(), cfg).unwrap();
    let loc = sink.location().unwrap();

    let mut w = sink
        .writer(target("pull_request", "acme", "b-ab"))
        .await
        .unwrap();
    for i in 0..12 {
        w.write(&batch(i * 1000, 1000, 1000)).await.unwrap();
    }
    // ~12 MB with 10 MiB parts: a multipart upload is in progress before the abort.
    assert_eq!(multipart_uploads(&ep, &bucket).await, 1);
    w.abort().await;
    assert_eq!(multipart_uploads(&ep, &bucket).await, 0);
    let listed: Vec<_> = loc.store.list(Some(&loc.root)).collect::<Vec<_>>().await;
    assert!(listed.is_empty(), "{listed:?}");

    let mut w = sink.writer(target("review", "acme", "b-sm")).await.unwrap();
    let b = batch(0, 100, 20);
    w.write(&b).await.unwrap();
    let files = w.finish().await.unwrap();
    assert_eq!(concat(&read_parquet(fetch(&loc, &files[0]).await)), b);
    sink.after_load(&files).await.unwrap();
    let listed: Vec<_> = loc.store.list(Some(&loc.root)).collect::<Vec<_>>().await;
    assert!(listed.is_empty(), "{listed:?}");
}

#[tokio::test]
async fn s3_missing_bucket_error_names_the_bucket() {
    let Some(ep) = emulator("FLOWCTL_TEST_S3_ENDPOINT") else {
        return;
    };
    let sink = build_s3_from(builder(), config(&ep, "flowctl-no-such-bucket")).unwrap();
    let mut w = sink
        .writer(target("pull_request", "acme", "b-nb"))
        .await
        .unwrap();
    let result = async {
        w.write(&batch(0, 10, 10)).await?;
        w.finish().await
    }
    .await;
    let e = result.unwrap_err();
    let err = e.to_string();
    println!("{err}");
    assert!(
        err.contains("bucket `flowctl-no-such-bucket`") && err.contains("does not exist"),
        "{err}"
    );
    assert!(err.contains(&ep), "{err}");
    assert!(
        !e.retryable(),
        "a missing bucket does not appear by waiting: {err}"
    );
    let source = std::error::Error::source(&e).expect("the store's error is kept");
    assert!(source.is::<object_store::Error>(), "{source:?}");
    assert!(
        flowctl_core::error_chain(&e).contains("NoSuchBucket"),
        "{}",
        flowctl_core::error_chain(&e)
    );
}

/// The error of writing a file to bucket `bkt` at `endpoint`, with no retries inside
/// object_store (the first failure is the error).
async fn first_write_error(endpoint: &str) -> flowctl_core::PluginError {
    let quick = builder().with_retry(RetryConfig {
        max_retries: 0,
        ..Default::default()
    });
    let sink = build_s3_from(quick, config(endpoint, "bkt")).unwrap();
    let mut w = sink
        .writer(target("pull_request", "acme", "b-err"))
        .await
        .unwrap();
    w.write(&batch(0, 10, 10)).await.unwrap();
    w.finish().await.unwrap_err()
}

/// A server on 127.0.0.1 that answers every request with `status` and an S3 error body
/// of `code` (the shape of Amazon S3 API Reference, "Error responses"); returns its URL.
async fn answering(status: &'static str, code: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                // The whole request first (head and body), so the client reads the answer.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                     <Message>injected</Message><RequestId>r1</RequestId></Error>"
                );
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/xml\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn s3_server_errors_are_retryable_refusals_are_not() {
    for (status, code, retryable) in [
        ("503 Service Unavailable", "SlowDown", true),
        ("500 Internal Server Error", "InternalError", true),
        ("429 Too Many Requests", "SlowDown", true),
        ("403 Forbidden", "AccessDenied", false),
        ("400 Bad Request", "InvalidArgument", false),
    ] {
        let e = first_write_error(&answering(status, code).await).await;
        let err = e.to_string();
        assert_eq!(e.retryable(), retryable, "{status}: {err}");
        assert!(err.contains("s3://bkt/github/pull_request/"), "{err}");
        assert!(err.contains(code) && err.contains(&status[..3]), "{err}");
        assert!(
            !err.contains("testing"),
            "a credential in the message: {err}"
        );
        let source = std::error::Error::source(&e).expect("the store's error is kept");
        assert!(source.is::<object_store::Error>(), "{source:?}");
    }
}

#[tokio::test]
async fn s3_unreachable_endpoint_is_named() {
    // A port that was free a moment ago: nothing listens there (no emulator needed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ep = format!("http://127.0.0.1:{port}");
    let e = first_write_error(&ep).await;
    let err = e.to_string();
    println!("{err}");
    assert!(err.contains("cannot reach") && err.contains(&ep), "{err}");
    assert!(err.contains("s3://bkt/github/pull_request/"), "{err}");
    assert!(
        e.retryable(),
        "a connection that failed may work later: {err}"
    );
}

#[test]
fn s3_http_endpoint_without_allow_http_says_what_to_set() {
    let mut cfg = config("http://127.0.0.1:9000", "bkt");
    cfg.allow_http = false;
    let err = build_s3_from(builder(), cfg).unwrap_err().to_string();
    assert!(
        err.contains("allow_http: true") && err.contains("http://127.0.0.1:9000"),
        "{err}"
    );
    let mut cfg = config("https://r2.example.com", "bkt");
    cfg.allow_http = false;
    assert!(build_s3_from(builder(), cfg).is_ok());
    let err = build_s3_from(builder(), config("https://x", "s3://bkt"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a bucket name"), "{err}");
    let mut cfg = config("https://x", "bkt");
    cfg.upload.upload_part_bytes = 1024;
    let err = build_s3_from(builder(), cfg).unwrap_err().to_string();
    assert!(err.contains("upload_part_bytes"), "{err}");
}

#[tokio::test]
async fn s3_spool_folder_problems_name_the_folder_and_the_way_out() {
    let Some((ep, bucket)) = moto_bucket("flowctl-spool").await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();

    // Not a folder: refused when the sink is built (at `flowctl validate`).
    let mut cfg = config(&ep, &bucket);
    let missing = tmp.path().join("missing");
    cfg.upload.spool_dir = Some(missing.display().to_string());
    let err = build_s3_from(builder(), cfg).unwrap_err().to_string();
    assert!(
        err.contains("spool_dir") && err.contains(&missing.display().to_string()),
        "{err}"
    );
    assert!(err.contains("spool: memory"), "{err}");

    // Gone by the time a file is opened: the writer says where it tried to spool.
    let dir = tmp.path().join("spool");
    std::fs::create_dir(&dir).unwrap();
    let mut cfg = config(&ep, &bucket);
    cfg.upload.spool_dir = Some(dir.display().to_string());
    let sink = build_s3_from(builder(), cfg).unwrap();
    let plan = sink.plan().join("\n");
    assert!(
        plan.contains(&format!("spooled to an unnamed file in {}", dir.display())),
        "{plan}"
    );
    std::fs::remove_dir(&dir).unwrap();
    let mut w = sink
        .writer(target("pull_request", "acme", "b-sp"))
        .await
        .unwrap();
    let err = w.write(&batch(0, 10, 10)).await.unwrap_err().to_string();
    assert!(
        err.contains("spool file") && err.contains(&dir.display().to_string()),
        "{err}"
    );
    w.abort().await;

    // `spool: memory` needs no folder at all.
    let mut cfg = config(&ep, &bucket);
    cfg.upload.spool = Spool::Memory;
    cfg.upload.spool_dir = Some(missing.display().to_string());
    let sink = build_s3_from(builder(), cfg).unwrap();
    assert!(sink.plan().join("\n").contains("buffered in memory"));
    let mut w = sink
        .writer(target("pull_request", "acme", "b-mem"))
        .await
        .unwrap();
    let b = batch(0, 10, 10);
    w.write(&b).await.unwrap();
    let files = w.finish().await.unwrap();
    let loc = sink.location().unwrap();
    assert_eq!(concat(&read_parquet(fetch(&loc, &files[0]).await)), b);
}
