//! `spool: disk`: a staged file is written to an unnamed temporary file while it is
//! encoded, and uploaded from there part by part. The Parquet writer never waits on
//! the network, and memory holds only the parts being sent, not the part being filled
//! as well.
//!
//! The file is unnamed (`O_TMPFILE` where the system has it, else unlinked at once), so
//! nothing is left behind when flowctl stops, however it stops. Its pages are the
//! kernel's page cache, not the process's memory; a part is sent from a read-only map of
//! them, so it is not copied into a buffer first either.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use object_store::path::Path as StorePath;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::async_writer::AsyncFileWriter;
use parquet::errors::{ParquetError, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::task::JoinSet;

/// Parts of one file in flight at once. The file is on disk, so the writer goes on
/// while they are sent; more in flight would only hold more parts in memory.
const PARTS_IN_FLIGHT: usize = 2;

/// A local disk problem (not the store's): shown as is, naming the folder and the knobs;
/// the disk's error stays the source.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct SpoolError {
    pub message: String,
    #[source]
    pub source: std::io::Error,
}

fn io_error(dir: &Path, action: &str, e: std::io::Error) -> ParquetError {
    ParquetError::External(Box::new(SpoolError {
        message: format!(
            "{action} the spool file in {} failed: {e} (set `spool_dir` to a folder with free \
             space, or `spool: memory`)",
            dir.display()
        ),
        source: e,
    }))
}

fn store_error(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

/// Runs blocking file I/O off the async threads.
async fn on_disk<T: Send + 'static>(io: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(io)
        .await
        .map_err(|e| ParquetError::External(Box::new(e)))?
}

/// The outcome of a part's task.
fn part_outcome(
    done: std::result::Result<object_store::Result<()>, tokio::task::JoinError>,
) -> Result<()> {
    done.map_err(|e| ParquetError::External(Box::new(e)))?
        .map_err(store_error)
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

// Not built on this project's CI (Linux): the same loops over Windows' positioned I/O.
#[cfg(windows)]
fn write_at(file: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_write(buf, offset)? {
            0 => return Err(std::io::ErrorKind::WriteZero.into()),
            n => {
                buf = &buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// `len` bytes at `offset` of the spool file, as a read-only map of its pages: the part
/// is sent straight from the page cache, not copied into a buffer of its own first.
fn map_part(file: &File, offset: u64, len: usize) -> std::io::Result<Bytes> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: a map must not see its file change or shrink under it. The spool file is
    // unnamed, so no other process can open it; this upload only appends to it, past the
    // bytes it has already handed to parts, and never truncates it. (What a map cannot
    // turn into an error is a disk read error while its pages are faulted back in, after
    // the kernel dropped them from the page cache: that stops the process, as it would
    // for the binary's own pages, and the run ends as a killed one does: nothing it had
    // not committed counts, and the next run converges, tests/it/crash_convergence.rs.)
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(len)
            .populate()
            .map(file)?
    };
    Ok(Bytes::from_owner(map))
}

/// Opens an unnamed file in `dir` for spooling.
pub(crate) fn open(dir: &Path) -> std::io::Result<File> {
    tempfile::tempfile_in(dir)
}

/// The upload of one staged object through a spool file.
pub(crate) struct SpoolUpload {
    store: Arc<dyn ObjectStore>,
    path: StorePath,
    dir: PathBuf,
    file: Arc<File>,
    part_bytes: usize,
    /// Bytes in the spool file.
    written: u64,
    /// Bytes handed to parts so far.
    sent: u64,
    upload: Option<Box<dyn MultipartUpload>>,
    in_flight: JoinSet<object_store::Result<()>>,
}

impl SpoolUpload {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        path: StorePath,
        dir: PathBuf,
        file: File,
        part_bytes: usize,
    ) -> Self {
        Self {
            store,
            path,
            dir,
            file: Arc::new(file),
            part_bytes,
            written: 0,
            sent: 0,
            upload: None,
            in_flight: JoinSet::new(),
        }
    }

    /// Maps `len` bytes at `offset` of the spool file (off the async threads: the pages
    /// are faulted in at once, from the page cache or the disk).
    fn read(&self, offset: u64, len: usize) -> impl std::future::Future<Output = Result<Bytes>> {
        let file = self.file.clone();
        let dir = self.dir.clone();
        on_disk(move || map_part(&file, offset, len).map_err(|e| io_error(&dir, "reading", e)))
    }

    /// Collects finished parts; with `wait`, waits for one first. A failed part fails
    /// the file (object_store has already retried it).
    async fn reap(&mut self, wait: bool) -> Result<()> {
        if wait {
            if let Some(done) = self.in_flight.join_next().await {
                part_outcome(done)?;
            }
        }
        while let Some(done) = self.in_flight.try_join_next() {
            part_outcome(done)?;
        }
        Ok(())
    }

    /// Sends the next `len` bytes of the file as a part.
    async fn send_part(&mut self, len: usize) -> Result<()> {
        let data = self.read(self.sent, len).await?;
        let upload = match &mut self.upload {
            Some(u) => u,
            None => self.upload.insert(
                self.store
                    .put_multipart(&self.path)
                    .await
                    .map_err(store_error)?,
            ),
        };
        // Parts are numbered in the order put_part is called, not the order they finish.
        self.in_flight
            .spawn(upload.put_part(PutPayload::from(data)));
        self.sent += len as u64;
        Ok(())
    }

    /// Starts every full part there is room for, without waiting.
    async fn pump(&mut self) -> Result<()> {
        self.reap(false).await?;
        while self.written - self.sent >= self.part_bytes as u64
            && self.in_flight.len() < PARTS_IN_FLIGHT
        {
            self.send_part(self.part_bytes).await?;
        }
        Ok(())
    }

    async fn append(&mut self, bs: Bytes) -> Result<()> {
        let file = self.file.clone();
        let dir = self.dir.clone();
        let offset = self.written;
        let len = bs.len() as u64;
        on_disk(move || write_at(&file, &bs, offset).map_err(|e| io_error(&dir, "writing", e)))
            .await?;
        self.written += len;
        self.pump().await
    }

    async fn finish(&mut self) -> Result<()> {
        if self.upload.is_none() {
            // Never reached a full part: one PUT.
            let len = usize::try_from(self.written)
                .map_err(|_| ParquetError::General("spool file too large".into()))?;
            let data = self.read(0, len).await?;
            self.store
                .put(&self.path, PutPayload::from(data))
                .await
                .map_err(store_error)?;
            return Ok(());
        }
        while self.sent < self.written {
            if self.in_flight.len() >= PARTS_IN_FLIGHT {
                self.reap(true).await?;
            }
            let rest = self.written - self.sent;
            let len = usize::try_from(rest.min(self.part_bytes as u64)).unwrap_or(self.part_bytes);
            self.send_part(len).await?;
        }
        while !self.in_flight.is_empty() {
            self.reap(true).await?;
        }
        if let Some(upload) = &mut self.upload {
            upload.complete().await.map_err(store_error)?;
        }
        Ok(())
    }

    /// Stops the parts in flight and aborts the multipart upload, if one was started.
    pub async fn abort(mut self) -> object_store::Result<()> {
        self.in_flight.shutdown().await;
        match self.upload.take() {
            Some(mut u) => u.abort().await,
            None => Ok(()),
        }
    }
}

impl AsyncFileWriter for SpoolUpload {
    fn write(&mut self, bs: Bytes) -> BoxFuture<'_, Result<()>> {
        self.append(bs).boxed()
    }

    fn complete(&mut self) -> BoxFuture<'_, Result<()>> {
        self.finish().boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use object_store::memory::InMemory;

    fn upload(store: &Arc<InMemory>, dir: &Path, file: File, part_bytes: usize) -> SpoolUpload {
        SpoolUpload::new(
            store.clone(),
            StorePath::from("t/f.parquet"),
            dir.to_path_buf(),
            file,
            part_bytes,
        )
    }

    async fn stored(store: &InMemory) -> Vec<u8> {
        store
            .get(&StorePath::from("t/f.parquet"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }

    /// Writes of uneven sizes, parts of 1,000 bytes (object_store's in-memory store takes
    /// any part size): the object is the bytes in order, whether it went as one PUT or as
    /// many parts finishing in any order.
    #[tokio::test]
    async fn the_object_is_every_byte_written_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for total in [10usize, 999, 1000, 1001, 25_017] {
            let store = Arc::new(InMemory::new());
            let mut up = upload(&store, dir.path(), open(dir.path()).unwrap(), 1000);
            let want: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
            let mut at = 0;
            let mut step = 1;
            while at < total {
                let end = (at + step).min(total);
                up.write(Bytes::copy_from_slice(&want[at..end]))
                    .await
                    .unwrap();
                at = end;
                step = step * 3 % 2048 + 1;
            }
            assert!(up.in_flight.len() <= PARTS_IN_FLIGHT);
            up.complete().await.unwrap();
            assert_eq!(up.upload.is_some(), total >= 1000, "{total} bytes");
            assert_eq!(stored(&store).await, want, "{total} bytes");
        }
        // Unnamed files: the folder stays empty.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_failing_spool_file_names_the_folder_and_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read-only");
        std::fs::write(&path, b"x").unwrap();
        let store = Arc::new(InMemory::new());
        // Opened for reading only: the first append fails.
        let mut up = upload(&store, dir.path(), File::open(&path).unwrap(), 1000);
        let err = up.write(Bytes::from_static(b"PAR1")).await.unwrap_err();
        let ParquetError::External(inner) = &err else {
            panic!("{err}");
        };
        let msg = inner
            .downcast_ref::<SpoolError>()
            .expect("a SpoolError")
            .message
            .clone();
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(
            msg.contains("spool_dir") && msg.contains("spool: memory"),
            "{msg}"
        );
        up.abort().await.unwrap();
    }

    /// A spool file that cannot be mapped (here: opened for writing only) fails the file
    /// when its bytes are sent, naming the folder, instead of sending anything.
    #[tokio::test]
    async fn a_spool_file_that_cannot_be_read_back_fails_the_upload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("write-only");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        for part_bytes in [1000, 1 << 20] {
            let store = Arc::new(InMemory::new());
            let mut up = upload(&store, dir.path(), file.try_clone().unwrap(), part_bytes);
            // Under one part the writes succeed and the read-back comes at the end;
            // over one, it comes with the write that fills the first part.
            let wrote = up.write(Bytes::from(vec![7u8; 1500])).await;
            let err = match wrote {
                Err(e) => e,
                Ok(()) => up.complete().await.unwrap_err(),
            };
            let ParquetError::External(inner) = &err else {
                panic!("{err}");
            };
            let msg = &inner
                .downcast_ref::<SpoolError>()
                .expect("a SpoolError")
                .message;
            assert!(msg.starts_with("reading the spool file in "), "{msg}");
            assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
            let listed = store.list(None).next().await;
            assert!(listed.is_none(), "nothing may be stored: {listed:?}");
            up.abort().await.unwrap();
        }
    }
}
