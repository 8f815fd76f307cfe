//! `flowctl check` for the `file` source: `path` names at least one file, and the first
//! one can be read (its first bytes; nothing is parsed or staged).

use crate::config::FileConfig;
use crate::locate::locate;
use flowctl_core::check::CheckResult;
use object_store::ObjectStoreExt;

pub(crate) async fn check(cfg: &FileConfig) -> Vec<CheckResult> {
    let name = format!("file: read {}", cfg.path);
    let files = match locate(&cfg.path, &cfg.storage_options).await {
        Ok(f) => f,
        Err(e) => {
            return vec![CheckResult::failed(
                name,
                e.to_string(),
                "fix source.path (a file, a glob or an s3:// gs:// file:// URL) so it names \
                 existing files this user (or these credentials) may read",
            )]
        }
    };
    let Some(first) = files.first() else {
        return vec![CheckResult::failed(
            name,
            "no file matches",
            "fix source.path",
        )];
    };
    let size = first
        .fingerprint
        .get("size")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    if size > 0 {
        if let Err(e) = first.store.get_range(&first.path, 0..size.min(64)).await {
            return vec![CheckResult::failed(
                name,
                format!("cannot read {}: {e}", first.name),
                "give this user (or the storage credentials) read access to the files",
            )];
        }
    }
    vec![CheckResult::ok(
        name,
        format!("{} file(s), {} readable", files.len(), first.name),
    )]
}
