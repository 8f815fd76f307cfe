//! Streaming Parquet writer: each batch is encoded into the current row group, and each
//! finished row group is pushed into a multipart upload, so memory stays bounded by one
//! row group plus the upload parts in flight, whatever the table size. With a spool
//! folder (`spool: disk`) finished row groups go to a local file first and parts are
//! sent from it, mapped rather than copied ([`crate::spool`]).

use crate::paths::{relative_file, staged_path};
use crate::sink::Inner;
use crate::spool::{self, SpoolUpload};
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use flowctl_core::{async_trait, meta, PluginError, Result, StageTarget, StagedFile, StagedWriter};
use futures::future::BoxFuture;
use object_store::buffered::BufWriter;
use object_store::ObjectStoreExt;
use parquet::arrow::async_writer::{AsyncArrowWriter, AsyncFileWriter, ParquetObjectWriter};
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::sync::Arc;

/// Concurrent part uploads per file when parts are buffered in memory (`spool: memory`,
/// and `local`): enough to keep a link busy, small enough to bound memory.
const UPLOAD_CONCURRENCY: usize = 4;

/// Where the encoded bytes of a file go.
enum Upload {
    /// Buffered in memory, parts sent as they fill (`object_store`'s `BufWriter`).
    Buffered(ParquetObjectWriter),
    /// Through a spool file.
    Spooled(SpoolUpload),
}

impl Upload {
    async fn abort(self) -> object_store::Result<()> {
        match self {
            // `BufWriter::abort` panics once its shutdown has begun (a `finish` whose
            // upload failed); there is nothing left to abort then.
            Upload::Buffered(w) => {
                use futures::FutureExt;
                std::panic::AssertUnwindSafe(w.into_inner().abort())
                    .catch_unwind()
                    .await
                    .unwrap_or(Ok(()))
            }
            Upload::Spooled(s) => s.abort().await,
        }
    }
}

impl AsyncFileWriter for Upload {
    fn write(&mut self, bs: Bytes) -> BoxFuture<'_, parquet::errors::Result<()>> {
        match self {
            Upload::Buffered(w) => w.write(bs),
            Upload::Spooled(s) => s.write(bs),
        }
    }

    fn complete(&mut self) -> BoxFuture<'_, parquet::errors::Result<()>> {
        match self {
            Upload::Buffered(w) => w.complete(),
            Upload::Spooled(s) => s.complete(),
        }
    }
}

struct OpenPart {
    writer: AsyncArrowWriter<Upload>,
    relative: String,
    uri: String,
    rows: u64,
}

pub(crate) struct PartWriter {
    inner: Arc<Inner>,
    target: StageTarget,
    props: WriterProperties,
    next_part: u32,
    open: Option<OpenPart>,
    done: Vec<StagedFile>,
}

/// Page size bound of `_RAW` (see `properties`).
const RAW_PAGE_BYTES: usize = 256 * 1024;
/// Rows the Parquet writer encodes between page-size checks when a table has `_RAW`: 8
/// pull requests are ~150 KB, so a page closes at 256-420 KiB.
const RAW_WRITE_BATCH_ROWS: usize = 8;

fn properties(inner: &Inner, schema: &Schema) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(inner.write.row_group_rows))
        .set_max_row_group_bytes(Some(inner.write.row_group_bytes))
        .set_created_by(format!("flowctl {}", env!("CARGO_PKG_VERSION")));
    // `_RAW` values are whole JSON documents, all distinct: a dictionary never pays off and
    // min/max statistics of JSON text serve no filter. Small pages and write batches keep
    // each page's gather and Snappy buffers on the reused heap, not fresh page-faulted
    // allocations (figures: BENCHMARKS.md).
    if schema.field_with_name(meta::RAW).is_ok() {
        let raw = ColumnPath::from(meta::RAW);
        props = props
            .set_column_dictionary_enabled(raw.clone(), false)
            .set_column_statistics_enabled(raw.clone(), EnabledStatistics::None)
            .set_column_data_page_size_limit(raw, RAW_PAGE_BYTES)
            .set_write_batch_size(RAW_WRITE_BATCH_ROWS);
    }
    props.build()
}

impl PartWriter {
    pub fn new(inner: Arc<Inner>, target: StageTarget) -> Self {
        let props = properties(&inner, &target.schema);
        Self {
            inner,
            target,
            props,
            next_part: 0,
            open: None,
            done: Vec::new(),
        }
    }

    fn open_part(&mut self) -> Result<&mut OpenPart> {
        if self.open.is_none() {
            let relative = relative_file(&self.target, self.next_part)?;
            let uri = self.inner.file_uri(&relative);
            let loc = &self.inner.location;
            let path = staged_path(&loc.root, &relative)?;
            let part_bytes = self.inner.write.upload_part_bytes;
            let upload = match &self.inner.spool_dir {
                Some(dir) => {
                    let file = spool::open(dir).map_err(|e| {
                        PluginError::other(format!(
                            "{} staging: cannot create a spool file in {} for {uri}: {e} \
                             (set `spool_dir` to a writable folder, or `spool: memory`)",
                            self.inner.ctx.kind,
                            dir.display()
                        ))
                        .with_source(e)
                    })?;
                    Upload::Spooled(SpoolUpload::new(
                        loc.store.clone(),
                        path,
                        dir.clone(),
                        file,
                        part_bytes,
                    ))
                }
                None => Upload::Buffered(ParquetObjectWriter::from_buf_writer(
                    BufWriter::with_capacity(loc.store.clone(), path, part_bytes)
                        .with_max_concurrency(UPLOAD_CONCURRENCY),
                )),
            };
            let writer = AsyncArrowWriter::try_new(
                upload,
                self.target.schema.clone(),
                Some(self.props.clone()),
            )
            .map_err(|e| self.inner.ctx.parquet_error("opening", &uri, e))?;
            self.next_part += 1;
            self.open = Some(OpenPart {
                writer,
                relative,
                uri,
                rows: 0,
            });
        }
        self.open
            .as_mut()
            .ok_or_else(|| PluginError::other("staging: no open part file"))
    }

    async fn close_part(&mut self) -> Result<()> {
        let Some(mut part) = self.open.take() else {
            return Ok(());
        };
        if let Err(e) = part.writer.finish().await {
            // The upload may already be completed or half shut down; aborting is best effort,
            // so a failed file leaves no multipart upload behind where that can be helped.
            let err = self.inner.ctx.parquet_error("writing", &part.uri, e);
            if let Err(e) = part.writer.into_inner().abort().await {
                tracing::debug!("staging: aborting upload of {} failed: {e}", part.uri);
            }
            return Err(err);
        }
        self.done.push(StagedFile {
            uri: part.uri,
            relative_path: part.relative,
            rows: part.rows,
            bytes: part.writer.bytes_written() as u64,
        });
        Ok(())
    }

    fn check_schema(&self, batch: &RecordBatch) -> Result<()> {
        if batch.schema().fields() != self.target.schema.fields() {
            return Err(PluginError::data(format!(
                "staging {}: batch schema differs from the table schema\n  table: {:?}\n  batch: {:?}",
                self.target.table,
                self.target.schema.fields(),
                batch.schema().fields()
            )));
        }
        Ok(())
    }

    /// Whether the open part reached a size limit and should be completed.
    fn part_full(&self) -> bool {
        let w = &self.inner.write;
        self.open.as_ref().is_some_and(|p| {
            let bytes = (p.writer.bytes_written() + p.writer.in_progress_size()) as u64;
            w.max_file_rows.is_some_and(|m| p.rows >= m) || bytes >= w.max_file_bytes
        })
    }
}

#[async_trait]
impl StagedWriter for PartWriter {
    async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.check_schema(batch)?;
        let mut rest = batch.clone();
        // Decoded bytes a row, from this batch (the source builds each batch afresh, so its
        // buffers hold just its rows).
        let per_row = (batch.get_array_memory_size() / batch.num_rows().max(1)).max(1);
        let decoded_cap = self.inner.write.row_group_decoded_bytes;
        while rest.num_rows() > 0 {
            let max_rows = self.inner.write.max_file_rows;
            let part = self.open_part()?;
            // The ArrowWriter closes row groups on its own limits too; what it still buffers
            // is the open row group.
            let buffered = part.writer.in_progress_rows();
            let decoded = buffered.saturating_mul(per_row);
            if buffered > 0 && decoded.saturating_add(per_row) > decoded_cap {
                if let Err(e) = part.writer.flush().await {
                    let uri = part.uri.clone();
                    return Err(self.inner.ctx.parquet_error("writing", &uri, e));
                }
                continue;
            }
            let fits = ((decoded_cap - decoded.min(decoded_cap)) / per_row).max(1);
            let room = max_rows.map_or(u64::MAX, |m| m.saturating_sub(part.rows));
            let take = rest
                .num_rows()
                .min(usize::try_from(room).unwrap_or(usize::MAX))
                .min(fits);
            let chunk = rest.slice(0, take);
            rest = rest.slice(take, rest.num_rows() - take);
            if let Err(e) = part.writer.write(&chunk).await {
                let uri = part.uri.clone();
                return Err(self.inner.ctx.parquet_error("writing", &uri, e));
            }
            part.rows += take as u64;
            if self.part_full() {
                self.close_part().await?;
            }
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<Vec<StagedFile>> {
        self.close_part().await?;
        Ok(std::mem::take(&mut self.done))
    }

    async fn abort(mut self: Box<Self>) {
        if let Some(part) = self.open.take() {
            if let Err(e) = part.writer.into_inner().abort().await {
                tracing::warn!("staging: aborting upload of {} failed: {e}", part.uri);
            }
        }
        // Completed parts of an abandoned batch would never be loaded: remove them.
        let loc = &self.inner.location;
        for f in &self.done {
            if let Ok(path) = staged_path(&loc.root, &f.relative_path) {
                if let Err(e) = loc.store.delete(&path).await {
                    tracing::warn!("staging: removing {} after abort failed: {e}", f.uri);
                }
            }
        }
    }
}
