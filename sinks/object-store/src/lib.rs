//! Staging sinks `gcs`, `s3` and `local`: Hive-partitioned, Snappy-compressed Parquet
//! written through one `object_store` code path, so the three differ only in how their
//! store is built.
//!
//! Files land at `{prefix}/{table}/org={org}/date={YYYY-MM-DD}/{table}-{batch_id}-{part:05}.parquet`.
//! Batches stream into a multipart upload as they arrive (an object becomes visible only
//! when its upload completes; `local` writes a temporary file and renames it), so memory
//! per open writer is bounded by one row group plus the upload parts in flight. For `gcs`
//! and `s3` the bytes wait in an unnamed local file until sent (`spool: disk`, see
//! [`spool`]), or in memory (`spool: memory`).

mod aws_profile;
mod check;
pub mod config;
mod errors;
mod paths;
mod sink;
mod spool;
mod stores;
mod writer;

pub use config::{
    Cleanup, FileOptions, GcsConfig, LocalConfig, S3Config, Spool, UploadOptions, WriteOptions,
};
pub use paths::{staged_path, validate_segment};
pub use sink::ObjectStoreSink;
pub use stores::{
    build_gcs, build_gcs_from, build_local, build_s3, build_s3_from, location_from_uri,
};

use flowctl_core::{PluginError, StagingRegistration, StagingSink};

fn parse<T: serde::de::DeserializeOwned>(
    kind: &str,
    cfg: serde_json::Value,
) -> flowctl_core::Result<T> {
    serde_json::from_value(cfg).map_err(|e| PluginError::config(format!("staging `{kind}`: {e}")))
}

fn build_gcs_sink(cfg: serde_json::Value) -> flowctl_core::Result<Box<dyn StagingSink>> {
    Ok(Box::new(build_gcs(parse("gcs", cfg)?)?))
}
fn build_s3_sink(cfg: serde_json::Value) -> flowctl_core::Result<Box<dyn StagingSink>> {
    Ok(Box::new(build_s3(parse("s3", cfg)?)?))
}
fn build_local_sink(cfg: serde_json::Value) -> flowctl_core::Result<Box<dyn StagingSink>> {
    Ok(Box::new(build_local(parse("local", cfg)?)?))
}

inventory::submit! {
    StagingRegistration {
        name: "gcs",
        description: "Google Cloud Storage bucket: Snappy Parquet under gs://bucket/prefix/",
        config_schema: || schemars::schema_for!(GcsConfig),
        build: build_gcs_sink,
        check: |cfg| stores::check_gcs(&parse("gcs", cfg)?),
    }
}
inventory::submit! {
    StagingRegistration {
        name: "s3",
        description: "Amazon S3 or an S3-compatible store (MinIO, R2): Snappy Parquet under s3://bucket/prefix/",
        config_schema: || schemars::schema_for!(S3Config),
        build: build_s3_sink,
        check: |cfg| stores::check_s3(&parse("s3", cfg)?),
    }
}
inventory::submit! {
    StagingRegistration {
        name: "local",
        description: "A folder on this machine: Snappy Parquet files DuckDB can read directly",
        config_schema: || schemars::schema_for!(LocalConfig),
        build: build_local_sink,
        check: |cfg| stores::check_local(&parse("local", cfg)?),
    }
}
