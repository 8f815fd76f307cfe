//! Buckets on the S3 emulator (moto) and staging locations in them.

use crate::emulators::unique;
use flowctl_core::object_store::aws::AmazonS3Builder;
use flowctl_core::object_store::path::Path as StorePath;
use flowctl_core::StagingLocation;
use std::sync::Arc;

/// `prefix` followed by [`unique`]: a bucket name that reruns against the same emulator
/// have not used.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}{}", unique())
}

/// Creates `bucket` on the S3 emulator at `endpoint` (`http://host:port`) with a bare HTTP
/// PUT: object_store cannot create buckets.
pub fn create_bucket(endpoint: &str, bucket: &str) {
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
    assert!(
        resp.starts_with("HTTP/1.1 200"),
        "create bucket {bucket}: {resp}"
    );
}

/// A fresh `bucket` on the S3 emulator and a staging location under `prefix` in it, with
/// the emulator's static credentials.
pub fn moto_staging(endpoint: &str, bucket: &str, prefix: &str) -> StagingLocation {
    create_bucket(endpoint, bucket);
    let store = AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_region("us-east-1")
        .with_bucket_name(bucket)
        .build()
        .unwrap();
    StagingLocation {
        kind: "s3".to_string(),
        root_uri: format!("s3://{bucket}/{prefix}/"),
        store: Arc::new(store),
        root: StorePath::from(prefix),
        local_dir: None,
        options: Default::default(),
    }
}
