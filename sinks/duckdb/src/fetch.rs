//! Turns staged files into local paths DuckDB can `read_parquet`.
//!
//! Local staging is read in place. Object storage (s3, gcs) is downloaded through the
//! staging sink's own `object_store` client into a temporary directory: the sink
//! already holds working credentials and endpoints, whereas DuckDB's httpfs extension
//! would need its own copy of them (and is not part of the prebuilt libduckdb).

use flowctl_core::object_store::path::{Path as StorePath, PathPart};
use flowctl_core::object_store::ObjectStoreExt;
use flowctl_core::{PluginError, Result, StagedFile, StagingLocation};
use futures::{StreamExt, TryStreamExt};
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;

/// Parallel downloads; small, since each file is a whole Parquet part.
const DOWNLOADS_IN_FLIGHT: usize = 4;

/// Local copies of a run's staged files; the temporary directory (if any) lives as long
/// as this value.
pub struct LocalFiles {
    pub paths: Vec<PathBuf>,
    _tmp: Option<tempfile::TempDir>,
}

/// Where each of `files` can be read on this machine.
pub async fn localize(files: &[StagedFile], staging: &StagingLocation) -> Result<LocalFiles> {
    for f in files {
        check_relative_path(f)?;
    }
    match &staging.local_dir {
        Some(dir) => {
            let paths = files.iter().map(|f| dir.join(&f.relative_path)).collect();
            let local = LocalFiles { paths, _tmp: None };
            check_exist(files, &local.paths)?;
            Ok(local)
        }
        None => download_all(files, staging).await,
    }
}

/// `read_parquet` treats `*`, `?` and `[` as glob syntax, which has no escape; a staged
/// path never contains them, so one that does is refused rather than misread. `..`
/// would leave the staging root.
fn check_relative_path(f: &StagedFile) -> Result<()> {
    let p = &f.relative_path;
    if p.is_empty() || p.contains(['*', '?', '[']) || p.split('/').any(|s| s == "..") {
        return Err(PluginError::data(format!(
            "staged file {}: relative path {p:?} is not a plain path under the staging root",
            f.uri
        )));
    }
    Ok(())
}

fn check_exist(files: &[StagedFile], paths: &[PathBuf]) -> Result<()> {
    for (f, p) in files.iter().zip(paths) {
        if !p.is_file() {
            return Err(PluginError::data(format!(
                "staged file {} not found at {}",
                f.uri,
                p.display()
            )));
        }
    }
    Ok(())
}

async fn download_all(files: &[StagedFile], staging: &StagingLocation) -> Result<LocalFiles> {
    let tmp = tempfile::Builder::new()
        .prefix("flowctl-duckdb-")
        .tempdir()
        .map_err(|e| {
            PluginError::other(format!("cannot create a temporary directory: {e}")).with_source(e)
        })?;
    // A flat, unique local name per file: the index keeps same-named files of
    // different partitions apart. Collected first so the stream holds plain futures.
    let jobs: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, f)| download(staging, f, tmp.path().join(format!("{i:06}.parquet"))))
        .collect();
    let paths: Vec<PathBuf> = futures::stream::iter(jobs)
        .buffered(DOWNLOADS_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(LocalFiles {
        paths,
        _tmp: Some(tmp),
    })
}

/// The object path of a staged file. `Path::child` would percent-encode the `/` inside
/// `relative_path`, so each segment is appended on its own.
pub fn store_path(root: &StorePath, relative: &str) -> StorePath {
    root.parts()
        .chain(
            relative
                .split('/')
                .filter(|s| !s.is_empty())
                .map(PathPart::from),
        )
        .collect()
}

async fn download(staging: &StagingLocation, f: &StagedFile, dest: PathBuf) -> Result<PathBuf> {
    let location = store_path(&staging.root, &f.relative_path);
    // Kept as the source: a 5xx or a cut connection from the store is retryable.
    let fail = |what: &str, e: Box<dyn std::error::Error + Send + Sync>| {
        PluginError::external_from(format!("staged file {}: {what}: {e}", f.uri), e)
    };
    let result = staging
        .store
        .get(&location)
        .await
        .map_err(|e| fail("cannot download", e.into()))?;
    let cannot_write = format!("cannot write {}", dest.display());
    let mut out = tokio::fs::File::create(&dest)
        .await
        .map_err(|e| fail(&format!("cannot create {}", dest.display()), e.into()))?;
    let mut body = result.into_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| fail("download interrupted", e.into()))?;
        out.write_all(&chunk)
            .await
            .map_err(|e| fail(&cannot_write, e.into()))?;
    }
    out.flush()
        .await
        .map_err(|e| fail(&cannot_write, e.into()))?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_path_keeps_segments() {
        let root = StorePath::from("github");
        let p = store_path(&root, "pull_request/org=acme/date=2026-01-02/f.parquet");
        assert_eq!(
            p.as_ref(),
            "github/pull_request/org=acme/date=2026-01-02/f.parquet"
        );
        assert_eq!(store_path(&StorePath::from(""), "a/b").as_ref(), "a/b");
    }

    #[test]
    fn glob_and_parent_paths_are_refused() {
        for bad in [
            "a/*.parquet",
            "a/?.parquet",
            "a/[x].parquet",
            "../x.parquet",
            "",
        ] {
            let f = StagedFile {
                uri: format!("file:///s/{bad}"),
                relative_path: bad.to_string(),
                rows: 0,
                bytes: 0,
            };
            assert!(check_relative_path(&f).is_err(), "{bad}");
        }
    }
}
