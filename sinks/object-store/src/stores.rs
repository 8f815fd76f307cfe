//! Building the store behind each staging type. This is the only place the three types
//! differ; writing, naming and cleanup are shared (see [`crate::sink`]).

use crate::aws_profile;
use crate::config::{
    Cleanup, FileOptions, GcsConfig, LocalConfig, S3Config, Spool, UploadOptions, WriteOptions,
};
use crate::errors::StoreContext;
use crate::paths::normalize_prefix;
use crate::sink::{Inner, ObjectStoreSink};
use flowctl_core::{expand_home, PluginError, Result, StagingLocation, StagingSink};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ClientConfigKey, ClientOptions, ObjectStore};
use std::collections::BTreeMap;
use std::path::{Component, PathBuf};
use std::sync::Arc;

fn check_bucket(kind: &str, bucket: &str) -> Result<()> {
    let ok = !bucket.is_empty()
        && bucket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(PluginError::config(format!(
            "{kind} staging: bucket {bucket:?} is not a bucket name (give only the name, \
             without a scheme, slashes or a prefix; put folders in `prefix`)"
        )));
    }
    Ok(())
}

/// object_store refuses `http://` with an opaque "builder error"; say what to set instead.
fn check_http(kind: &str, url: &str, allow_http: bool, key: &str) -> Result<()> {
    if url.starts_with("http://") && !allow_http {
        return Err(PluginError::config(format!(
            "{kind} staging: {key} {url} uses plain http; set `allow_http: true` in the \
             staging block (for a local MinIO or an emulator) or use an https:// endpoint"
        )));
    }
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(PluginError::config(format!(
            "{kind} staging: {key} {url:?} must start with https:// (or http:// with allow_http)"
        )));
    }
    Ok(())
}

fn root_of(kind: &str, scheme: &str, bucket: &str, prefix: &str) -> Result<(StorePath, String)> {
    let prefix = normalize_prefix(prefix)
        .map_err(|e| PluginError::config(format!("{kind} staging: prefix: {e}")))?;
    let uri = if prefix.is_empty() {
        format!("{scheme}://{bucket}/")
    } else {
        format!("{scheme}://{bucket}/{prefix}/")
    };
    let root = StorePath::parse(&prefix)
        .map_err(|e| PluginError::config(format!("{kind} staging: prefix {prefix:?}: {e}")))?;
    Ok((root, uri))
}

fn sink(
    location: StagingLocation,
    ctx: StoreContext,
    cleanup: Cleanup,
    write: WriteOptions,
    spool_dir: Option<PathBuf>,
) -> ObjectStoreSink {
    ObjectStoreSink {
        inner: Arc::new(Inner {
            location,
            ctx,
            cleanup,
            write,
            spool_dir,
        }),
    }
}

/// The folder of `spool: disk` (`None` for `spool: memory`). Only checked here, not
/// written to: building a sink (`flowctl validate`, `plan`) leaves the disk alone.
fn spool_dir(kind: &str, upload: &UploadOptions) -> Result<Option<PathBuf>> {
    if upload.spool == Spool::Memory {
        return Ok(None);
    }
    let dir = upload.spool_dir.as_deref();
    let path = match dir {
        Some(d) => PathBuf::from(expand_home(d)),
        None => std::env::temp_dir(),
    };
    if !path.is_dir() {
        let what = if dir.is_some() {
            "spool_dir"
        } else {
            "the temporary folder ($TMPDIR) for spool files"
        };
        return Err(PluginError::config(format!(
            "{kind} staging: {what} {} does not exist or is not a folder; set `spool_dir` \
             to one, or `spool: memory`",
            path.display()
        )));
    }
    Ok(Some(path))
}

/// Fills keys (and a region) from an AWS profile when the builder has no keys yet.
fn with_profile(mut b: AmazonS3Builder, configured: Option<&str>) -> Result<AmazonS3Builder> {
    if b.get_config_value(&AmazonS3ConfigKey::AccessKeyId)
        .is_some()
    {
        return Ok(b);
    }
    let env_profile = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty());
    let explicit = configured.is_some() || env_profile.is_some();
    let name = configured
        .map(str::to_string)
        .or(env_profile)
        .unwrap_or_else(|| "default".into());
    let Some(keys) = aws_profile::keys_from(&aws_profile::credentials_file(), &name, explicit)?
    else {
        return Ok(b);
    };
    b = b
        .with_access_key_id(keys.access_key_id)
        .with_secret_access_key(keys.secret_access_key);
    if let Some(token) = keys.session_token {
        b = b.with_token(token);
    }
    if b.get_config_value(&AmazonS3ConfigKey::Region).is_none() {
        if let Some(region) = aws_profile::region_from(&aws_profile::config_file(), &name) {
            b = b.with_region(region);
        }
    }
    Ok(b)
}

/// The checks of a bucket's block that need no environment, files or network (run by
/// every spec load; building the sink repeats them). `url` is the block's endpoint
/// setting, if any: (its key, its value).
fn check_bucket_block(
    kind: &str,
    scheme: &str,
    bucket: &str,
    prefix: &str,
    files: &FileOptions,
    upload: &UploadOptions,
    url: Option<(&str, &str)>,
) -> Result<()> {
    files.write_options(upload.upload_part_bytes)?;
    check_bucket(kind, bucket)?;
    if let Some((key, url)) = url {
        // Whether plain http is allowed may come from AWS_ALLOW_HTTP: checked at build.
        check_http(kind, url, true, key)?;
    }
    root_of(kind, scheme, bucket, prefix).map(drop)
}

/// The checks of an `s3` block that need no environment, files or network.
pub fn check_s3(cfg: &S3Config) -> Result<()> {
    let url = cfg.endpoint.as_deref().map(|u| ("endpoint", u));
    let (files, upload) = (&cfg.files, &cfg.upload);
    check_bucket_block("s3", "s3", &cfg.bucket, &cfg.prefix, files, upload, url)
}

/// The checks of a `gcs` block that need no environment, files or network.
pub fn check_gcs(cfg: &GcsConfig) -> Result<()> {
    let url = cfg.base_url.as_deref().map(|u| ("base_url", u));
    let (files, upload) = (&cfg.files, &cfg.upload);
    check_bucket_block("gcs", "gs", &cfg.bucket, &cfg.prefix, files, upload, url)
}

/// The checks of a `local` block that need no files.
pub fn check_local(cfg: &LocalConfig) -> Result<()> {
    cfg.write_options()?;
    if cfg.path.trim().is_empty() {
        return Err(PluginError::config("local staging: `path` is empty"));
    }
    Ok(())
}

/// The `s3` sink. Credentials and defaults come from the AWS environment
/// (`AmazonS3Builder::from_env`); the config block overrides them.
pub fn build_s3(cfg: S3Config) -> Result<ObjectStoreSink> {
    build_s3_from(AmazonS3Builder::from_env(), cfg)
}

/// [`build_s3`] over a given builder instead of the environment: for tests and embedders
/// that hold credentials themselves (the config block still overrides the builder).
pub fn build_s3_from(base: AmazonS3Builder, cfg: S3Config) -> Result<ObjectStoreSink> {
    let write = cfg.files.write_options(cfg.upload.upload_part_bytes)?;
    check_bucket("s3", &cfg.bucket)?;
    let spool = spool_dir("s3", &cfg.upload)?;
    let (b, settings) = s3_builder(base, &cfg)?;
    let store = b.build().map_err(|e| {
        PluginError::config(format!(
            "s3 staging: cannot set up bucket `{}`: {e}",
            cfg.bucket
        ))
    })?;
    let (root, root_uri) = root_of("s3", "s3", &cfg.bucket, &cfg.prefix)?;
    let location = StagingLocation {
        kind: "s3".into(),
        root_uri,
        store: Arc::new(store),
        root,
        local_dir: None,
        options: settings.options(),
    };
    let ctx = StoreContext {
        kind: "s3",
        bucket: Some(cfg.bucket.clone()),
        endpoint: settings.endpoint,
        credentials_hint: "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an ~/.aws/credentials \
                           profile, web identity or instance role",
    };
    Ok(sink(location, ctx, cfg.files.cleanup, write, spool))
}

/// The effective connection settings of an `s3` sink (config over environment).
struct S3Settings {
    endpoint: Option<String>,
    region: String,
    allow_http: bool,
}

impl S3Settings {
    /// What a loader needs to read the files itself (no secrets).
    fn options(&self) -> BTreeMap<String, String> {
        let mut options = BTreeMap::from([
            ("region".to_string(), self.region.clone()),
            ("allow_http".to_string(), self.allow_http.to_string()),
        ]);
        if let Some(ep) = &self.endpoint {
            options.insert("endpoint".to_string(), ep.clone());
        }
        options
    }
}

/// Applies the config block over `base`; `AWS_ALLOW_HTTP=true` counts as `allow_http`.
fn s3_builder(base: AmazonS3Builder, cfg: &S3Config) -> Result<(AmazonS3Builder, S3Settings)> {
    let mut b = with_profile(base.with_bucket_name(&cfg.bucket), cfg.profile.as_deref())?;
    if let Some(region) = &cfg.region {
        b = b.with_region(region);
    }
    if let Some(endpoint) = &cfg.endpoint {
        b = b
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false);
    }
    let env_http = b
        .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let allow_http = cfg.allow_http || env_http;
    b = b.with_allow_http(allow_http);
    let endpoint = b.get_config_value(&AmazonS3ConfigKey::Endpoint);
    if let Some(ep) = &endpoint {
        check_http("s3", ep, allow_http, "endpoint")?;
    }
    let region = b
        .get_config_value(&AmazonS3ConfigKey::Region)
        .unwrap_or_else(|| "us-east-1".to_string());
    let mut b = b.with_region(&region);
    // Over TLS the payload's integrity is TLS's, so parts are not hashed for SigV4
    // (hashing every staged byte costs ~2% of a sync's CPU); boto3 does the same for
    // S3 over https. Over plain http the payload stays signed. AWS_UNSIGNED_PAYLOAD,
    // when set, wins.
    if std::env::var_os("AWS_UNSIGNED_PAYLOAD").is_none() {
        let tls = endpoint
            .as_deref()
            .is_none_or(|e| e.starts_with("https://"));
        b = b.with_unsigned_payload(tls);
    }
    Ok((
        b,
        S3Settings {
            endpoint,
            region,
            allow_http,
        },
    ))
}

/// The `gcs` sink. Credentials: `service_account_file`, else the environment
/// (`GOOGLE_SERVICE_ACCOUNT*`, `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's ADC file, the
/// metadata server).
pub fn build_gcs(cfg: GcsConfig) -> Result<ObjectStoreSink> {
    build_gcs_from(GoogleCloudStorageBuilder::from_env(), cfg)
}

/// [`build_gcs`] over a given builder (e.g. one with a static bearer token for an emulator).
pub fn build_gcs_from(base: GoogleCloudStorageBuilder, cfg: GcsConfig) -> Result<ObjectStoreSink> {
    let write = cfg.files.write_options(cfg.upload.upload_part_bytes)?;
    check_bucket("gcs", &cfg.bucket)?;
    let spool = spool_dir("gcs", &cfg.upload)?;
    let mut b = base.with_bucket_name(&cfg.bucket);
    if let Some(file) = &cfg.service_account_file {
        let path = expand_home(file);
        if !std::path::Path::new(&path).is_file() {
            return Err(PluginError::config(format!(
                "gcs staging: service_account_file {path} does not exist or is not a file"
            )));
        }
        b = b.with_service_account_path(path);
    }
    let mut options = BTreeMap::new();
    if let Some(url) = &cfg.base_url {
        check_http("gcs", url, true, "base_url")?;
        let url = url.trim_end_matches('/');
        b = b
            .with_base_url(url)
            .with_client_options(ClientOptions::new().with_allow_http(url.starts_with("http://")));
        options.insert("base_url".to_string(), url.to_string());
    }
    let store = b.build().map_err(|e| {
        PluginError::config(format!(
            "gcs staging: cannot set up bucket `{}` (credentials: service_account_file or \
             application default credentials): {e}",
            cfg.bucket
        ))
    })?;
    let (root, root_uri) = root_of("gcs", "gs", &cfg.bucket, &cfg.prefix)?;
    let location = StagingLocation {
        kind: "gcs".into(),
        root_uri,
        store: Arc::new(store),
        root,
        local_dir: None,
        options,
    };
    let ctx = StoreContext {
        kind: "gcs",
        bucket: Some(cfg.bucket.clone()),
        endpoint: cfg.base_url.clone(),
        credentials_hint: "service_account_file or application default credentials",
    };
    Ok(sink(location, ctx, cfg.files.cleanup, write, spool))
}

/// Makes `dir` absolute and removes `.`/`..` without touching the disk (the folder may
/// not exist yet, and `plan` must not create it).
fn absolute_dir(path: &str) -> Result<PathBuf> {
    let expanded = PathBuf::from(expand_home(path));
    let abs = if expanded.is_absolute() {
        expanded
    } else {
        let cwd = std::env::current_dir().map_err(|e| {
            PluginError::config(format!("local staging: cannot resolve {path}: {e}"))
        })?;
        cwd.join(expanded)
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

/// The `local` sink: a folder, through object_store's `LocalFileSystem`, which writes to
/// a temporary file next to the target and renames it when the upload completes.
pub fn build_local(cfg: LocalConfig) -> Result<ObjectStoreSink> {
    let write = cfg.write_options()?;
    if cfg.path.trim().is_empty() {
        return Err(PluginError::config("local staging: `path` is empty"));
    }
    let dir = absolute_dir(&cfg.path)?;
    let root = StorePath::from_absolute_path(&dir).map_err(|e| {
        PluginError::config(format!(
            "local staging: path {} is not usable: {e}",
            dir.display()
        ))
    })?;
    let root_uri = url::Url::from_directory_path(&dir)
        .map_err(|_| PluginError::config(format!("local staging: bad path {}", dir.display())))?
        .to_string();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
    let location = StagingLocation {
        kind: "local".into(),
        root_uri,
        store,
        root,
        local_dir: Some(dir.clone()),
        options: BTreeMap::new(),
    };
    let ctx = StoreContext {
        kind: "local",
        bucket: None,
        endpoint: None,
        credentials_hint: "file permissions",
    };
    Ok(sink(location, ctx, cfg.files.cleanup, write, None))
}

const URI_OPTIONS: [&str; 5] = [
    "endpoint",
    "region",
    "allow_http",
    "base_url",
    "service_account_file",
];

/// The upload settings of a sink built to read and delete staged files, not to write
/// them.
fn read_only() -> UploadOptions {
    UploadOptions {
        spool: Spool::Memory,
        ..UploadOptions::default()
    }
}

fn split_bucket(uri: &str, rest: &str) -> Result<(String, String)> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(PluginError::config(format!(
            "location {uri}: no bucket name"
        )));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

/// A staging location from a URI (a state `location:` override): `s3://bucket/prefix`,
/// `gs://bucket/prefix`, `file:///abs/dir` or a plain folder path. `options` may hold
/// `endpoint`, `region`, `allow_http` (s3), `base_url`, `service_account_file` (gcs).
pub fn location_from_uri(uri: &str, options: &BTreeMap<String, String>) -> Result<StagingLocation> {
    if let Some(k) = options.keys().find(|k| !URI_OPTIONS.contains(&k.as_str())) {
        return Err(PluginError::config(format!(
            "location {uri}: unknown option `{k}` (known: {})",
            URI_OPTIONS.join(", ")
        )));
    }
    let opt = |k: &str| options.get(k).cloned();
    let sink = if let Some(rest) = uri.strip_prefix("s3://") {
        let (bucket, prefix) = split_bucket(uri, rest)?;
        let allow_http = match opt("allow_http").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => {
                return Err(PluginError::config(format!(
                    "location {uri}: allow_http must be true or false, not {v:?}"
                )))
            }
        };
        build_s3(S3Config {
            bucket,
            prefix,
            region: opt("region"),
            endpoint: opt("endpoint"),
            allow_http,
            profile: None,
            files: FileOptions::default(),
            upload: read_only(),
        })?
    } else if let Some(rest) = uri.strip_prefix("gs://") {
        let (bucket, prefix) = split_bucket(uri, rest)?;
        build_gcs(GcsConfig {
            bucket,
            prefix,
            service_account_file: opt("service_account_file"),
            base_url: opt("base_url"),
            files: FileOptions::default(),
            upload: read_only(),
        })?
    } else {
        let path = if uri.starts_with("file://") {
            url::Url::parse(uri)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .ok_or_else(|| {
                    PluginError::config(format!(
                        "location {uri}: not a file:// URI of an absolute path"
                    ))
                })?
                .to_string_lossy()
                .into_owned()
        } else if uri.contains("://") {
            return Err(PluginError::config(format!(
                "location {uri}: unsupported scheme (use s3://, gs://, file:// or a folder path)"
            )));
        } else {
            uri.to_string()
        };
        build_local(LocalConfig {
            path,
            files: FileOptions::default(),
        })?
    };
    sink.location()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> S3Config {
        serde_json::from_str(json).unwrap()
    }

    fn payload_signing(json: &str) -> Option<String> {
        let cfg = config(json);
        let (b, _) = s3_builder(AmazonS3Builder::new(), &cfg).unwrap();
        b.get_config_value(&AmazonS3ConfigKey::UnsignedPayload)
    }

    #[test]
    fn parts_go_unhashed_over_tls_only() {
        assert_eq!(
            payload_signing(r#"{"bucket": "b"}"#).as_deref(),
            Some("true")
        );
        let https = r#"{"bucket": "b", "endpoint": "https://minio.internal:9000"}"#;
        assert_eq!(payload_signing(https).as_deref(), Some("true"));
        let http = r#"{"bucket": "b", "endpoint": "http://127.0.0.1:9000",
                       "allow_http": true}"#;
        assert_eq!(payload_signing(http).as_deref(), Some("false"));
    }
}
