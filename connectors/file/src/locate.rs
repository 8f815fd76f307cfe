//! Turns `path` (local path, local glob, or object-store URL with an optional glob) into the
//! list of files to read. Local files go through object_store's `LocalFileSystem` too, so
//! reading and fingerprinting (size, mtime, ETag) are one code path for every location.

use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use url::Url;

use flowctl_core::{PluginError, Result};

/// One file to read.
pub struct FileRef {
    /// What error messages and state call it: the local path or the full URL.
    pub name: String,
    pub store: Arc<dyn ObjectStore>,
    pub path: StorePath,
    /// Size, mtime and ETag: equal fingerprints mean the file did not change.
    pub fingerprint: serde_json::Value,
}

impl FileRef {
    pub async fn bytes(&self) -> Result<bytes::Bytes> {
        let got = self.store.get(&self.path).await.map_err(|e| {
            PluginError::external_from(format!("cannot read {}: {e}", self.name), e)
        })?;
        got.bytes()
            .await
            .map_err(|e| PluginError::external_from(format!("cannot read {}: {e}", self.name), e))
    }
}

fn fingerprint(meta: &ObjectMeta) -> serde_json::Value {
    json!({
        "size": meta.size,
        "last_modified": meta.last_modified.to_rfc3339(),
        "etag": meta.e_tag,
    })
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn match_options() -> glob::MatchOptions {
    glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    }
}

/// Every file `path` names, sorted by name. No match is an error naming the pattern.
pub async fn locate(path: &str, options: &BTreeMap<String, String>) -> Result<Vec<FileRef>> {
    let files = if path.contains("://") {
        locate_url(path, options).await?
    } else {
        locate_local(path).await?
    };
    if files.is_empty() {
        return Err(PluginError::data(format!("no files match {path}")));
    }
    Ok(files)
}

async fn locate_local(path: &str) -> Result<Vec<FileRef>> {
    let expanded = flowctl_core::expand_home(path);
    let names: Vec<std::path::PathBuf> = if has_wildcard(&expanded) {
        let paths = glob::glob_with(&expanded, match_options())
            .map_err(|e| PluginError::config(format!("bad glob {path}: {e}")))?;
        let mut v: Vec<_> = paths
            .filter_map(|p| p.ok())
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        v
    } else {
        vec![std::path::PathBuf::from(&expanded)]
    };
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
    let mut out = Vec::new();
    for name in names {
        let shown = name.display().to_string();
        let abs = std::path::absolute(&name).map_err(|e| {
            PluginError::data(format!("cannot resolve {shown}: {e}")).with_source(e)
        })?;
        let sp = StorePath::from_absolute_path(&abs)
            .map_err(|e| PluginError::data(format!("cannot use {shown}: {e}")).with_source(e))?;
        let meta = store
            .head(&sp)
            .await
            .map_err(|e| PluginError::data(format!("cannot open {shown}: {e}")).with_source(e))?;
        out.push(FileRef {
            name: shown,
            store: store.clone(),
            path: sp,
            fingerprint: fingerprint(&meta),
        });
    }
    Ok(out)
}

/// Store options: `AWS_*` / `GOOGLE_*` environment variables, then the spec's
/// `storage_options` (which win).
fn store_options(options: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_") || k.starts_with("GOOGLE_"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    out.extend(options.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

fn open_url(
    url: &str,
    options: &BTreeMap<String, String>,
) -> Result<(Arc<dyn ObjectStore>, StorePath)> {
    let parsed = Url::parse(url).map_err(|e| PluginError::config(format!("bad URL {url}: {e}")))?;
    let (store, path) = object_store::parse_url_opts(&parsed, store_options(options))
        .map_err(|e| PluginError::config(format!("cannot open {url}: {e}")))?;
    Ok((Arc::from(store), path))
}

/// `scheme://bucket` of a URL, to name listed objects in messages and state.
fn url_root(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => format!("{}://{}", u.scheme(), u.host_str().unwrap_or("")),
        Err(_) => String::new(),
    }
}

async fn locate_url(url: &str, options: &BTreeMap<String, String>) -> Result<Vec<FileRef>> {
    let Some(wild) = url.find(['*', '?', '[']) else {
        let (store, path) = open_url(url, options)?;
        let meta = store
            .head(&path)
            .await
            .map_err(|e| PluginError::external_from(format!("cannot open {url}: {e}"), e))?;
        return Ok(vec![FileRef {
            name: url.to_string(),
            store,
            path,
            fingerprint: fingerprint(&meta),
        }]);
    };
    let cut = url[..wild].rfind('/').map(|i| i + 1).unwrap_or(wild);
    let (store, prefix) = open_url(&url[..cut], options)?;
    let pattern_text = if prefix.as_ref().is_empty() {
        url[cut..].to_string()
    } else {
        format!("{}/{}", prefix.as_ref(), &url[cut..])
    };
    let pattern = glob::Pattern::new(&pattern_text)
        .map_err(|e| PluginError::config(format!("bad glob {url}: {e}")))?;
    let listed: Vec<ObjectMeta> =
        store.list(Some(&prefix)).try_collect().await.map_err(|e| {
            PluginError::external_from(format!("cannot list {}: {e}", &url[..cut]), e)
        })?;
    let root = url_root(url);
    let mut out: Vec<FileRef> = listed
        .into_iter()
        .filter(|m| pattern.matches_with(m.location.as_ref(), match_options()))
        .map(|m| FileRef {
            name: format!("{root}/{}", m.location),
            store: store.clone(),
            path: m.location.clone(),
            fingerprint: fingerprint(&m),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
