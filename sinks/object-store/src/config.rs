//! Config blocks of the `gcs`, `s3` and `local` staging types. Their JSON schemas are
//! generated from these types, so the doc comments below are what users see as field
//! descriptions in editors and in `flowctl plugins`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What happens to staged files once the warehouse has loaded them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Cleanup {
    /// Leave the files in place (an audit trail; a bucket lifecycle rule can expire them).
    #[default]
    Keep,
    /// Delete the files of a table right after its MERGE succeeded.
    DeleteAfterLoad,
}

/// Where a staged file's bytes wait until they are uploaded (`gcs` and `s3`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Spool {
    /// In an unnamed temporary file in `spool_dir`, uploaded part by part from there:
    /// memory holds only the parts being sent, and the writer never waits on the network.
    /// Nothing is left on disk however flowctl stops.
    #[default]
    Disk,
    /// In memory: the part being filled plus up to 4 being sent (5 MiB each by default).
    /// For machines without a writable local disk.
    Memory,
}

pub(crate) fn default_prefix() -> String {
    "github".to_string()
}
pub(crate) fn default_row_group_rows() -> usize {
    100_000
}
/// Encoded (compressed) bytes: `_RAW` JSON compresses ~5-16x with Snappy, so
/// `row_group_decoded_bytes` is the bound that matters to readers.
pub(crate) fn default_row_group_bytes() -> usize {
    4 * 1024 * 1024
}
/// Decoded (Arrow, uncompressed) bytes. A reader (DuckDB, Snowflake) decodes a row group
/// a column chunk at a time, so this bounds the memory of the load whatever the data's
/// compression ratio: ~800 pull requests with `_RAW`.
pub(crate) fn default_row_group_decoded_bytes() -> usize {
    16 * 1024 * 1024
}
/// 128 MiB (134 MB): inside the 100-250 MB Snowflake recommends for parallel loads. The
/// Parquet writer keeps every row group's metadata until the footer, so larger files
/// raise the peak memory of long syncs (BENCHMARKS.md).
pub(crate) fn default_max_file_bytes() -> u64 {
    128 * 1024 * 1024
}
/// The S3/GCS minimum. Parts are held in memory while uploaded (2 at a time from a spool
/// file, or the one filling plus up to 4 with `spool: memory`), so the part size is most
/// of a writer's memory. A 128 MiB file is 26 parts, far from the 10,000-part limit.
pub(crate) fn default_upload_part_bytes() -> usize {
    MIN_PART_BYTES
}

/// Parquet and upload sizing shared by every staging type (resolved from a config block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    pub row_group_rows: usize,
    pub row_group_bytes: usize,
    pub row_group_decoded_bytes: usize,
    pub max_file_rows: Option<u64>,
    pub max_file_bytes: u64,
    pub upload_part_bytes: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            row_group_rows: default_row_group_rows(),
            row_group_bytes: default_row_group_bytes(),
            row_group_decoded_bytes: default_row_group_decoded_bytes(),
            max_file_rows: None,
            max_file_bytes: default_max_file_bytes(),
            upload_part_bytes: default_upload_part_bytes(),
        }
    }
}

/// Cleanup and Parquet file sizing, the same in every staging type (flattened into each
/// config block, so users see its fields beside the others).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FileOptions {
    /// What to do with staged files after a successful load.
    #[serde(default)]
    pub cleanup: Cleanup,
    /// Rows per Parquet row group (bounded further by `row_group_bytes`).
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// Upper bound on a row group's encoded size in bytes (bounds memory while writing).
    #[serde(default = "default_row_group_bytes")]
    pub row_group_bytes: usize,
    /// Upper bound on a row group's decoded (uncompressed, in memory) size in bytes: what
    /// a reader holds to decode it. Bounds row groups of wide rows (`_RAW`) however well
    /// they compress.
    #[serde(default = "default_row_group_decoded_bytes")]
    pub row_group_decoded_bytes: usize,
    /// Start a new part file after this many rows (absent: only `max_file_bytes` rolls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_rows: Option<u64>,
    /// Start a new part file once a file reaches this many bytes.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
}

impl Default for FileOptions {
    fn default() -> Self {
        Self {
            cleanup: Cleanup::default(),
            row_group_rows: default_row_group_rows(),
            row_group_bytes: default_row_group_bytes(),
            row_group_decoded_bytes: default_row_group_decoded_bytes(),
            max_file_rows: None,
            max_file_bytes: default_max_file_bytes(),
        }
    }
}

impl FileOptions {
    /// The sizing knobs with uploads in parts of `upload_part_bytes`, checked for sane
    /// values.
    pub fn write_options(&self, upload_part_bytes: usize) -> flowctl_core::Result<WriteOptions> {
        let opts = WriteOptions {
            row_group_rows: self.row_group_rows,
            row_group_bytes: self.row_group_bytes,
            row_group_decoded_bytes: self.row_group_decoded_bytes,
            max_file_rows: self.max_file_rows,
            max_file_bytes: self.max_file_bytes,
            upload_part_bytes,
        };
        opts.validate()?;
        Ok(opts)
    }
}

/// How files reach a bucket, the same for `gcs` and `s3` (flattened beside
/// [`FileOptions`]; serde cannot deny unknown fields through a flatten nested in another).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UploadOptions {
    /// Size of each multipart upload part in bytes (at least 5 MiB, the S3/GCS minimum,
    /// and the default). Memory per open writer is about two of these (`spool: disk`) or
    /// five (`spool: memory`), plus one row group.
    #[serde(default = "default_upload_part_bytes")]
    pub upload_part_bytes: usize,
    /// Where a file's bytes wait until uploaded: `disk` (default), an unnamed temporary
    /// file in `spool_dir`, or `memory`.
    #[serde(default)]
    pub spool: Spool,
    /// Folder of the spool files (`~` is expanded; default: the system's temporary folder,
    /// `$TMPDIR` or `/tmp`). Needs room for the files being written at once, each at most
    /// `max_file_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool_dir: Option<String>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            upload_part_bytes: default_upload_part_bytes(),
            spool: Spool::default(),
            spool_dir: None,
        }
    }
}

/// Stage Parquet files in a Google Cloud Storage bucket (for Snowflake on GCP, or any
/// loader that reads `gs://`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GcsConfig {
    /// Bucket name, without `gs://` (e.g. `your-data-bucket`).
    pub bucket: String,
    /// Folder inside the bucket under which tables are staged (`{prefix}/{table}/org=.../`);
    /// a Snowflake stage should point at `gs://{bucket}/{prefix}/`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Path of a service account JSON key file (`~` is expanded). When absent, application
    /// default credentials are used (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's ADC file,
    /// or the metadata server on GCE/GKE/Cloud Run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_file: Option<String>,
    /// Storage API base URL. Only for emulators and private endpoints; an `http://` URL is
    /// allowed here because it is an explicit choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(flatten)]
    pub files: FileOptions,
    #[serde(flatten)]
    pub upload: UploadOptions,
}

/// Stage Parquet files in an S3 bucket or an S3-compatible store (MinIO, R2, Ceph).
/// Credentials come from the standard AWS chain: `AWS_ACCESS_KEY_ID` /
/// `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, a profile in `~/.aws/credentials`,
/// web identity (EKS), ECS task roles or the EC2 instance metadata service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Bucket name, without `s3://`.
    pub bucket: String,
    /// Folder inside the bucket under which tables are staged; a Snowflake stage should
    /// point at `s3://{bucket}/{prefix}/`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// AWS region of the bucket (e.g. `us-east-1`). When absent, `AWS_REGION` /
    /// `AWS_DEFAULT_REGION`, else `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Endpoint URL of an S3-compatible store (`https://<account>.r2.cloudflarestorage.com`,
    /// `http://minio:9000`). Absent for AWS itself. Requests use path-style addressing when
    /// set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Allow a plain `http://` endpoint (local MinIO or an emulator). Off by default so
    /// credentials are never sent unencrypted by accident.
    #[serde(default)]
    pub allow_http: bool,
    /// Profile in `~/.aws/credentials` (and region in `~/.aws/config`) to use when no
    /// `AWS_ACCESS_KEY_ID` is set. Absent: `AWS_PROFILE`, else `default` if present.
    /// Only static-key profiles (not SSO or credential_process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(flatten)]
    pub files: FileOptions,
    #[serde(flatten)]
    pub upload: UploadOptions,
}

/// Stage Parquet files in a folder on this machine (the quickstart: no cloud account;
/// DuckDB reads the files directly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// Folder that holds the staged tables (created if missing; `~` is expanded; a relative
    /// path is taken from the current directory).
    pub path: String,
    #[serde(flatten)]
    pub files: FileOptions,
}

impl LocalConfig {
    /// The sizing knobs of this block, checked for sane values (`local` writes whole
    /// files, so the part size is only the default).
    pub fn write_options(&self) -> flowctl_core::Result<WriteOptions> {
        self.files.write_options(default_upload_part_bytes())
    }
}

/// Multipart uploads reject parts below 5 MiB (except the last).
pub const MIN_PART_BYTES: usize = 5 * 1024 * 1024;

impl WriteOptions {
    pub fn validate(&self) -> flowctl_core::Result<()> {
        use flowctl_core::PluginError;
        if self.row_group_rows == 0
            || self.row_group_bytes == 0
            || self.row_group_decoded_bytes == 0
        {
            return Err(PluginError::config(
                "staging: row_group_rows, row_group_bytes and row_group_decoded_bytes must be greater than 0",
            ));
        }
        if self.max_file_rows == Some(0) || self.max_file_bytes == 0 {
            return Err(PluginError::config(
                "staging: max_file_rows and max_file_bytes must be greater than 0",
            ));
        }
        if self.upload_part_bytes < MIN_PART_BYTES {
            return Err(PluginError::config(format!(
                "staging: upload_part_bytes is {} but multipart uploads need parts of at least {MIN_PART_BYTES} bytes (5 MiB)",
                self.upload_part_bytes
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shared_fields_sit_beside_the_others_and_unknown_ones_are_named() {
        let cfg: S3Config = serde_json::from_value(json!({
            "bucket": "b", "row_group_rows": 10, "cleanup": "delete_after_load",
            "spool": "memory",
        }))
        .unwrap();
        assert_eq!(cfg.files.row_group_rows, 10);
        assert_eq!(cfg.files.cleanup, Cleanup::DeleteAfterLoad);
        assert_eq!(cfg.upload.spool, Spool::Memory);
        assert_eq!(cfg.upload.upload_part_bytes, MIN_PART_BYTES);
        let every = json!({
            "bucket": "b", "cleanup": "keep", "row_group_rows": 1, "row_group_bytes": 2,
            "row_group_decoded_bytes": 3, "max_file_rows": 4, "max_file_bytes": 5,
            "upload_part_bytes": 6, "spool": "disk", "spool_dir": "/tmp",
        });
        let gcs: GcsConfig = serde_json::from_value(every.clone()).unwrap();
        assert_eq!(serde_json::to_value(&gcs).unwrap()["max_file_rows"], 4);
        assert_eq!(
            (gcs.files.max_file_bytes, gcs.upload.upload_part_bytes),
            (5, 6)
        );
        let local: LocalConfig = serde_json::from_value(json!({ "path": "/x" })).unwrap();
        assert_eq!(local.files, FileOptions::default());
        for bad in [
            json!({ "bucket": "b", "row_group_rowz": 1 }),
            json!({ "path": "/x", "row_group_rowz": 1 }),
            json!({ "path": "/x", "spool": "disk", "row_group_rowz": 1 }),
        ] {
            let err = match bad.get("path") {
                Some(_) => serde_json::from_value::<LocalConfig>(bad).unwrap_err(),
                None => serde_json::from_value::<S3Config>(bad).unwrap_err(),
            };
            let err = err.to_string();
            assert!(
                err.contains("unknown field `row_group_rowz`") || err.contains("`spool`"),
                "{err}"
            );
        }
    }
}
