//! The one [`StagingSink`] behind `gcs`, `s3` and `local`.

use crate::config::{Cleanup, WriteOptions};
use crate::errors::StoreContext;
use crate::paths::{relative_file, staged_path};
use crate::writer::PartWriter;
use flowctl_core::{
    async_trait, Result, StageTarget, StagedFile, StagedWriter, StagingLocation, StagingSink,
};
use object_store::ObjectStoreExt;
use std::sync::Arc;

pub(crate) struct Inner {
    pub location: StagingLocation,
    pub ctx: StoreContext,
    pub cleanup: Cleanup,
    pub write: WriteOptions,
    /// Folder of the spool files (`spool: disk`); `None`: parts are buffered in memory.
    pub spool_dir: Option<std::path::PathBuf>,
}

impl Inner {
    /// Full URI of a file given its path relative to the root.
    pub fn file_uri(&self, relative: &str) -> String {
        match &self.location.local_dir {
            Some(dir) => url::Url::from_file_path(dir.join(relative))
                .map(|u| u.to_string())
                .unwrap_or_else(|_| format!("file://{}/{relative}", dir.display())),
            None => format!("{}{relative}", self.location.root_uri),
        }
    }
}

/// A staging sink over one object store (a bucket, or a folder for `local`).
#[derive(Clone)]
pub struct ObjectStoreSink {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ObjectStoreSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreSink")
            .field("root_uri", &self.inner.location.root_uri)
            .finish_non_exhaustive()
    }
}

impl ObjectStoreSink {
    pub fn cleanup(&self) -> Cleanup {
        self.inner.cleanup
    }
    pub fn write_options(&self) -> WriteOptions {
        self.inner.write
    }
}

#[async_trait]
impl StagingSink for ObjectStoreSink {
    fn location(&self) -> Result<StagingLocation> {
        Ok(self.inner.location.clone())
    }

    fn plan(&self) -> Vec<String> {
        let i = &self.inner;
        let w = &i.write;
        let mut lines = vec![format!(
            "staging ({}): Snappy Parquet under {}{{table}}/{{partition_key}}={{partition}}/date={{YYYY-MM-DD}}/",
            i.ctx.kind, i.location.root_uri
        )];
        if let Some(ep) = &i.ctx.endpoint {
            lines.push(format!("staging endpoint: {ep}"));
        }
        if i.location.local_dir.is_none() {
            lines.push(match &i.spool_dir {
                Some(dir) => format!(
                    "uploads: {} MiB parts, spooled to an unnamed file in {}",
                    w.upload_part_bytes >> 20,
                    dir.display()
                ),
                None => format!(
                    "uploads: {} MiB parts, buffered in memory",
                    w.upload_part_bytes >> 20
                ),
            });
        }
        lines.push(format!(
            "row groups <= {} rows / {} MiB / {} MiB decoded; files <= {} MiB{}; cleanup: {}",
            w.row_group_rows,
            w.row_group_bytes >> 20,
            w.row_group_decoded_bytes >> 20,
            w.max_file_bytes >> 20,
            w.max_file_rows
                .map(|r| format!(" / {r} rows"))
                .unwrap_or_default(),
            match i.cleanup {
                Cleanup::Keep => "keep",
                Cleanup::DeleteAfterLoad => "delete_after_load",
            }
        ));
        lines
    }

    async fn writer(&self, target: StageTarget) -> Result<Box<dyn StagedWriter>> {
        // Reject unsafe names before any byte is written.
        relative_file(&target, 0)?;
        Ok(Box::new(PartWriter::new(self.inner.clone(), target)))
    }

    async fn after_load(&self, files: &[StagedFile]) -> Result<()> {
        if self.inner.cleanup != Cleanup::DeleteAfterLoad {
            return Ok(());
        }
        let loc = &self.inner.location;
        for f in files {
            let path = staged_path(&loc.root, &f.relative_path)?;
            match loc.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.inner.ctx.store_error("deleting", &f.uri, &e)),
            }
        }
        Ok(())
    }

    async fn check(&self) -> flowctl_core::check::StagingCheck {
        crate::check::check(self).await
    }

    async fn remove_probe(&self, probe: &StagedFile) -> Vec<flowctl_core::check::CheckResult> {
        vec![crate::check::remove_probe(self, probe).await]
    }
}
