//! `flowctl check` for the `gcs`, `s3` and `local` sinks: write a probe Parquet file
//! through the sink's own writer (the path a run takes), read it back, and delete it once
//! the warehouse has read it. A failure names the bucket permission or folder to fix.

use crate::paths::staged_path;
use crate::sink::Inner;
use chrono::Utc;
use flowctl_core::check::{self, CheckResult, StagingCheck};
use flowctl_core::{StageTarget, StagedFile, StagingSink};
use object_store::ObjectStoreExt;

/// What to change for a failed operation (`write`, `read` or `delete`), from the error's text.
fn fix(inner: &Inner, op: &str, error: &str) -> String {
    let lower = error.to_lowercase();
    let loc = &inner.location;
    let bucket = inner.ctx.bucket.as_deref().unwrap_or_default();
    let prefix = loc.root.as_ref();
    let objects = if prefix.is_empty() {
        format!("{bucket}/*")
    } else {
        format!("{bucket}/{prefix}/*")
    };
    if lower.contains("cannot reach") {
        return match &inner.ctx.endpoint {
            Some(e) => format!("make the endpoint {e} reachable from this machine, or fix its URL in the staging block"),
            None => "check this machine's network access to the storage service (proxy, firewall, DNS)".into(),
        };
    }
    match inner.ctx.kind {
        "local" => {
            let dir = loc
                .local_dir
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_default();
            format!("make {dir} a folder this user may {op} in (mkdir -p {dir} && chmod u+rwx {dir}), or change staging.path")
        }
        kind if lower.contains("does not exist") => match kind {
            "s3" => format!("create the bucket (aws s3 mb s3://{bucket}) or fix staging.bucket"),
            _ => format!("create the bucket (gcloud storage buckets create gs://{bucket}) or fix staging.bucket"),
        },
        "s3" => {
            let action = match op {
                "write" => "s3:PutObject and s3:AbortMultipartUpload",
                "read" => "s3:GetObject",
                _ => "s3:DeleteObject",
            };
            format!(
                "allow {action} on arn:aws:s3:::{objects} in the IAM policy of these credentials \
                 ({}) and in the bucket policy; the run also needs s3:ListBucket on arn:aws:s3:::{bucket}",
                inner.ctx.credentials_hint
            )
        }
        _ => {
            let role = match op {
                "read" => "roles/storage.objectViewer",
                _ => "roles/storage.objectUser (objects are written, read and deleted)",
            };
            format!(
                "grant the service account {role} on gs://{bucket} (gcloud storage buckets \
                 add-iam-policy-binding gs://{bucket} --member=serviceAccount:EMAIL --role=...); \
                 credentials come from {}",
                inner.ctx.credentials_hint
            )
        }
    }
}

fn name(inner: &Inner, what: &str) -> String {
    format!("staging ({}): {what}", inner.ctx.kind)
}

pub(crate) async fn check(sink: &crate::ObjectStoreSink) -> StagingCheck {
    let inner = &sink.inner;
    let mut out = StagingCheck::default();
    let now = Utc::now();
    let batch_id = now.format("%Y%m%dT%H%M%S%9f").to_string();
    let target = StageTarget {
        table: check::PROBE_STREAM.into(),
        partition_key: flowctl_core::DEFAULT_PARTITION_KEY,
        partition: "flowctl-check".into(),
        date: now.date_naive(),
        batch_id: batch_id.clone(),
        schema: check::probe_schema(),
    };
    let write_name = name(inner, "write a probe file");
    // A local folder that cannot exist is said plainly, before any upload is opened.
    if let Some(dir) = &inner.location.local_dir {
        if let Err(e) = std::fs::create_dir_all(dir) {
            let text = format!("local staging: cannot create {}: {e}", dir.display());
            out.results.push(CheckResult::failed(
                write_name,
                text.clone(),
                fix(inner, "write", &text),
            ));
            out.results.push(CheckResult::skipped(
                name(inner, "read the probe file back"),
                "nothing was written",
            ));
            return out;
        }
    }
    let written: flowctl_core::Result<Vec<StagedFile>> = async {
        let mut w = sink.writer(target).await?;
        w.write(&check::probe_batch(&batch_id, now)).await?;
        w.finish().await
    }
    .await;
    let file = match written {
        Ok(mut files) if files.len() == 1 => files.remove(0),
        Ok(files) => {
            out.results.push(CheckResult::failed(
                write_name,
                format!("the writer reported {} files for one row", files.len()),
                "report this as a flowctl bug",
            ));
            return out;
        }
        Err(e) => {
            let text = e.to_string();
            out.results.push(CheckResult::failed(
                write_name,
                text.clone(),
                fix(inner, "write", &text),
            ));
            out.results.push(CheckResult::skipped(
                name(inner, "read the probe file back"),
                "nothing was written",
            ));
            return out;
        }
    };
    out.results.push(CheckResult::ok(
        write_name,
        format!("{} ({} bytes)", file.uri, file.bytes),
    ));
    out.results.push(read_back(inner, &file).await);
    out.probe = Some(file);
    out
}

async fn read_back(inner: &Inner, file: &StagedFile) -> CheckResult {
    let check_name = name(inner, "read the probe file back");
    let loc = &inner.location;
    let got = async {
        let path = staged_path(&loc.root, &file.relative_path)?;
        let got = loc
            .store
            .get(&path)
            .await
            .map_err(|e| inner.ctx.store_error("reading", &file.uri, &e))?;
        got.bytes()
            .await
            .map_err(|e| inner.ctx.store_error("reading", &file.uri, &e))
    }
    .await;
    match got {
        Ok(bytes) if bytes.len() as u64 == file.bytes && bytes.starts_with(b"PAR1") => {
            CheckResult::ok(check_name, format!("{} bytes, Parquet", bytes.len()))
        }
        Ok(bytes) => CheckResult::failed(
            check_name,
            format!(
                "read {} bytes back where {} were written, or not Parquet",
                bytes.len(),
                file.bytes
            ),
            "check that nothing rewrites objects under the prefix (a proxy, a lifecycle rule)",
        ),
        Err(e) => {
            let text = e.to_string();
            CheckResult::failed(check_name, text.clone(), fix(inner, "read", &text))
        }
    }
}

pub(crate) async fn remove_probe(sink: &crate::ObjectStoreSink, file: &StagedFile) -> CheckResult {
    let inner = &sink.inner;
    let check_name = name(inner, "delete the probe file");
    let loc = &inner.location;
    let deleted = async {
        let path = staged_path(&loc.root, &file.relative_path)?;
        loc.store
            .delete(&path)
            .await
            .map_err(|e| inner.ctx.store_error("deleting", &file.uri, &e))?;
        match loc.store.head(&path).await {
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Ok(_) => Err(flowctl_core::PluginError::external(format!(
                "{} is still there after DELETE",
                file.uri
            ))),
            Err(e) => Err(inner.ctx.store_error("checking", &file.uri, &e)),
        }
    }
    .await;
    if let (Ok(()), Some(dir)) = (&deleted, &loc.local_dir) {
        remove_empty_folders(dir, &file.relative_path);
    }
    match deleted {
        Ok(()) => CheckResult::ok(check_name, format!("{} deleted", file.uri)),
        Err(e) => {
            let text = e.to_string();
            let cleanup = if matches!(inner.cleanup, crate::Cleanup::DeleteAfterLoad) {
                "; `cleanup: delete_after_load` needs it"
            } else {
                ""
            };
            CheckResult::failed(
                check_name,
                format!("{text}{cleanup}"),
                fix(inner, "delete", &text),
            )
        }
    }
}

/// A local probe leaves `flowctl_check/partition=.../date=.../` behind: remove those folders
/// while they are empty (never the root, never a folder with anything else in it).
fn remove_empty_folders(root: &std::path::Path, relative: &str) {
    let mut dir = root.join(relative);
    while dir.pop() && dir.starts_with(root) && dir != root {
        if std::fs::remove_dir(&dir).is_err() {
            break;
        }
    }
}
