//! The context one read shares between the stream readers: config, HTTP client, the
//! saved state and cursors, and the per-org row builders that batches are cut from and
//! handed to the engine.

use crate::config::{Api, GithubConfig, StreamKind};
use crate::http::{Client, HttpError, ParseTurn};
use crate::rows::{BatchCtx, TableRows, MAX_BATCH_TEXT_BYTES};
use crate::state::{RepoCursor, Span, StreamState};
use crate::streams::{
    commit_files::FileRows, commits::CommitRows, deployments::DeploymentRows, pulls::PrRows,
    repos::RepoRows, reviews::ReviewRows,
};
use arrow::record_batch::RecordBatch;
use flowctl_core::progress::{Progress, ProgressEvent};
use flowctl_core::{BatchSender, PluginError, Result, Shard, TaggedBatch};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Why a piece of work stopped.
pub(crate) enum ReadError {
    /// Abort the whole read (token rejected, engine gone, internal error).
    Fatal(PluginError),
    /// The repository vanished: warn and skip it.
    NotFound(String),
    /// This stream failed for this repository.
    Failed(String),
}

impl From<HttpError> for ReadError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::NotFound(m) => ReadError::NotFound(m),
            HttpError::Unauthorized(m) => {
                ReadError::Fatal(PluginError::external(format!("GitHub token rejected: {m}")))
            }
            HttpError::Conflict(m) | HttpError::Failed(m) => ReadError::Failed(m),
        }
    }
}

impl ReadError {
    /// For a sub-resource of a listed item (the reviews of a pull request, the files of a
    /// commit, the statuses of a deployment): one that is gone fails the stream; only a
    /// vanished repository is skipped.
    pub(crate) fn of_sub_resource(e: impl Into<ReadError>) -> Self {
        match e.into() {
            ReadError::NotFound(m) => ReadError::Failed(m),
            s => s,
        }
    }
}

/// Rows of one table for one org, shared by the concurrent repository tasks.
pub(crate) struct SharedRows<T> {
    pub(crate) kind: StreamKind,
    pub(crate) rows: Mutex<T>,
}

/// The rows a page yielded: batches that filled up (cut but not yet sent), an error
/// building them, how many rows, and what the reader needs next from the page.
#[derive(Default)]
pub(crate) struct PageRows<X> {
    pub(crate) full: Vec<RecordBatch>,
    pub(crate) fatal: Option<String>,
    pub(crate) rows: u64,
    pub(crate) extra: X,
}

impl PageRows<()> {
    /// These rows, with what the reader needs next from the page.
    pub(crate) fn with<X>(self, extra: X) -> PageRows<X> {
        PageRows {
            full: self.full,
            fatal: self.fatal,
            rows: self.rows,
            extra,
        }
    }
}

impl<T: TableRows> SharedRows<T> {
    pub(crate) fn new(kind: StreamKind, rows: T) -> Self {
        SharedRows {
            kind,
            rows: Mutex::new(rows),
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        locked(&self.rows)
    }
}

/// The row builders of every table for one org.
pub(crate) struct OrgTables {
    pub(crate) org: String,
    pub(crate) pulls: SharedRows<PrRows>,
    pub(crate) reviews: SharedRows<ReviewRows>,
    pub(crate) commits: SharedRows<CommitRows>,
    pub(crate) commit_files: SharedRows<FileRows>,
    pub(crate) repos: SharedRows<RepoRows>,
    pub(crate) deployments: SharedRows<DeploymentRows>,
}

/// One read: its config, client, saved state and what it has sent so far.
pub(crate) struct Run<'a> {
    pub(crate) cfg: &'a GithubConfig,
    pub(crate) client: Client,
    pub(crate) kinds: BTreeSet<StreamKind>,
    pub(crate) old: BTreeMap<StreamKind, StreamState>,
    pub(crate) ctx: BatchCtx,
    pub(crate) out: BatchSender,
    pub(crate) progress: Progress,
    /// When the run started (µs), the end of the deployment status window.
    pub(crate) started_us: i64,
    pub(crate) floor_us: Option<i64>,
    pub(crate) overlap_us: i64,
    pub(crate) shard: Option<Shard>,
    pub(crate) gql: crate::graphql::Gql,
    pub(crate) api: Api,
    /// Full batches cut but not yet sent: a checkpoint waits until none is (see `offer`).
    pub(crate) inflight: AtomicUsize,
    /// Repositories (or orgs) the deadline cut short: not failures, just not finished.
    pub(crate) unfinished: Mutex<BTreeSet<String>>,
    /// Progress of repositories still being read, per stream and `org/repo` (see
    /// `StreamState::partial`), and the streams it moved since the last offer.
    pub(crate) partial: Mutex<BTreeMap<(StreamKind, String), Span>>,
    pub(crate) progressed: Mutex<BTreeSet<StreamKind>>,
    pub(crate) progress_made: tokio::sync::Notify,
}

/// The value behind `m`, also when a task panicked while holding it.
pub(crate) fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One stream's saved cursor for a repository, and where its new rows start.
pub(crate) struct StreamCursor {
    pub(crate) kind: StreamKind,
    /// Whether the read asked for this stream.
    pub(crate) want: bool,
    pub(crate) old: RepoCursor,
    /// Inclusive lower bound of the rows to yield (see [`Run::cut`]).
    pub(crate) cut: Option<i64>,
}

impl StreamCursor {
    /// Whether a row dated `t` (µs) is yielded: a wanted stream's row at or after the
    /// cut; a row without a date is always kept (it cannot be placed against the cursor).
    pub(crate) fn wants(&self, t: Option<i64>) -> bool {
        self.want && keep_opt(t, self.cut)
    }
}

/// A list stream and the stream read for each listed item (pull requests and their
/// reviews, commits and their files): what a repository's read of the two starts from.
pub(crate) struct PairCursors {
    pub(crate) list: StreamCursor,
    pub(crate) child: StreamCursor,
    /// Where listing may stop: below both wanted streams' cuts (None: read everything).
    pub(crate) list_cut: Option<i64>,
    /// The first page's ETag both wanted streams saved, if they agree.
    pub(crate) etag: Option<String>,
    /// The stream named in requests and events.
    pub(crate) label: &'static str,
}

impl PairCursors {
    fn wanted(&self) -> impl Iterator<Item = &StreamCursor> {
        [&self.list, &self.child].into_iter().filter(|c| c.want)
    }

    /// The value `f` gives for every wanted stream's saved cursor, when they all agree.
    pub(crate) fn common<T: PartialEq>(&self, f: impl Fn(&RepoCursor) -> Option<T>) -> Option<T> {
        let mut vals = self.wanted().map(|c| f(&c.old));
        let first = vals.next()??;
        vals.all(|v| v.as_ref() == Some(&first)).then_some(first)
    }

    /// Each wanted stream's result, from `f`.
    pub(crate) fn results(
        &self,
        f: impl Fn(&StreamCursor) -> std::result::Result<RepoCursor, String>,
    ) -> Cursors {
        self.wanted().map(|c| (c.kind, f(c))).collect()
    }

    /// The saved cursors as they were (an answer 304, or nothing new).
    pub(crate) fn unchanged(&self) -> Cursors {
        self.results(|c| Ok(c.old.clone()))
    }
}

pub(crate) type Cursors = Vec<(StreamKind, std::result::Result<RepoCursor, String>)>;

/// `_RAW` bytes reserved for a new batch: `batch_bytes` plus room for the row that
/// crosses it (a pull request is ~19 KB), at most 64 MiB whatever `batch_bytes` says. With
/// the default `batch_bytes` this is 960 KiB, under flowctl's 1 MiB mmap threshold
/// (`src/main.rs`): the buffer then comes from the heap, reusing the memory of batches
/// already written, instead of a fresh `mmap` faulted in page by page.
pub(crate) fn raw_capacity(batch_bytes: usize) -> usize {
    batch_bytes.saturating_add(64 * 1024).min(64 << 20)
}

/// A row without a date is always kept (it cannot be placed against the cursor).
fn keep_opt(d: Option<i64>, cut: Option<i64>) -> bool {
    match (d, cut) {
        (Some(d), Some(c)) => d >= c,
        _ => true,
    }
}

pub(crate) fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

pub(crate) fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

impl Run<'_> {
    pub(crate) fn want(&self, k: StreamKind) -> bool {
        self.kinds.contains(&k)
    }

    /// `st` with the progress of the repositories cut short or still being read.
    pub(crate) fn with_partial(&self, k: StreamKind, st: Option<&StreamState>) -> StreamState {
        let mut st = st.cloned().unwrap_or_default();
        for ((kind, key), span) in locked(&self.partial).iter() {
            if *kind == k {
                st.partial.insert(key.clone(), *span);
            }
        }
        st
    }

    /// Records that a repository's read so far covers `[low, high]` for `k`.
    pub(crate) fn progress(&self, k: StreamKind, key: &str, low: i64, high: i64) {
        let old = self.old.get(&k).and_then(|s| s.partial.get(key)).copied();
        if let Some(span) = Span::extended(old, low, high) {
            locked(&self.partial).insert((k, key.to_string()), span);
            locked(&self.progressed).insert(k);
            self.progress_made.notify_one();
        }
    }

    pub(crate) fn span(&self, k: StreamKind, key: &str) -> Option<Span> {
        self.old.get(&k).and_then(|s| s.partial.get(key)).copied()
    }

    pub(crate) fn cursor(&self, k: StreamKind, key: &str) -> RepoCursor {
        self.old
            .get(&k)
            .and_then(|s| s.repos.get(key))
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn url(&self, segs: &[&str], query: &str) -> String {
        let mut u = self.client.base().clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty().extend(segs);
        }
        if !query.is_empty() {
            u.set_query(Some(query));
        }
        u.to_string()
    }

    pub(crate) fn event(&self, e: ProgressEvent) {
        self.progress.event(e);
    }

    pub(crate) async fn send(
        &self,
        kind: StreamKind,
        org: &str,
        batches: Vec<RecordBatch>,
    ) -> std::result::Result<(), ReadError> {
        for batch in batches {
            let tagged = TaggedBatch {
                stream: kind.name().to_string(),
                partition: org.to_string(),
                batch,
            };
            self.out.send(tagged).await.map_err(|_| {
                ReadError::Fatal(PluginError::other("the engine stopped accepting batches"))
            })?;
        }
        Ok(())
    }

    /// Append rows under the lock via `f`, cutting a batch every `batch_rows` rows or
    /// `batch_bytes` of `_RAW`, whichever comes first.
    pub(crate) fn fill<T: TableRows, I>(
        &self,
        table: &SharedRows<T>,
        items: I,
        mut f: impl FnMut(&mut T, I::Item),
    ) -> PageRows<()>
    where
        I: IntoIterator,
    {
        let mut rows = table.lock();
        let mut page = PageRows::default();
        for it in items {
            if self.ctx.include_raw && rows.rows() == 0 {
                rows.reserve_raw(raw_capacity(self.cfg.batch_bytes));
            }
            f(&mut rows, it);
            page.rows += 1;
            if rows.rows() >= self.cfg.batch_rows
                || rows.raw_bytes() >= self.cfg.batch_bytes
                || rows.text_bytes() >= MAX_BATCH_TEXT_BYTES
            {
                if let Err(e) = self.cut_batch(&mut *rows, &mut page.full) {
                    page.fatal = Some(e);
                    break;
                }
            }
        }
        page
    }

    /// Finishes the rows buffered so far into a batch for `full`, counted in `inflight`
    /// until it is sent.
    pub(crate) fn cut_batch<T: TableRows>(
        &self,
        rows: &mut T,
        full: &mut Vec<RecordBatch>,
    ) -> std::result::Result<(), String> {
        let batch = rows.finish(&self.ctx)?;
        self.inflight.fetch_add(1, Ordering::SeqCst);
        full.push(batch);
        Ok(())
    }

    pub(crate) async fn flush<T: TableRows>(&self, table: &SharedRows<T>, org: &str) -> Result<()> {
        let batch = {
            let mut rows = table.lock();
            if rows.rows() == 0 {
                return Ok(());
            }
            rows.finish(&self.ctx).map_err(PluginError::other)?
        };
        match self.send(table.kind, org, vec![batch]).await {
            Ok(()) => Ok(()),
            Err(ReadError::Fatal(e)) => Err(e),
            Err(ReadError::Failed(m) | ReadError::NotFound(m)) => Err(PluginError::other(m)),
        }
    }

    /// Sends a page's full batches, then gives up the page's parse turn (so the next
    /// body is inflated only once these batches are with the engine).
    pub(crate) async fn deliver<X>(
        &self,
        kind: StreamKind,
        org: &str,
        page: PageRows<X>,
        turn: ParseTurn,
    ) -> std::result::Result<X, ReadError> {
        let cut = page.full.len();
        self.send(kind, org, page.full).await?;
        self.inflight.fetch_sub(cut, Ordering::SeqCst);
        drop(turn);
        if let Some(e) = page.fatal {
            return Err(ReadError::Fatal(PluginError::other(format!(
                "building {} rows: {e}",
                kind.table()
            ))));
        }
        self.event(ProgressEvent::Page {
            stream: kind.name().into(),
            rows: page.rows,
        });
        Ok(page.extra)
    }

    /// Inclusive lower bound of the rows to yield: just after the cursor (minus the
    /// configured overlap), or the first-run floor, or everything.
    pub(crate) fn cut(&self, c: &RepoCursor) -> Option<i64> {
        c.cursor_us()
            .map(|u| u.saturating_sub(self.overlap_us).saturating_add(1))
            .or(self.floor_us)
    }

    /// The saved cursors a list stream and its child stream start from in repository `key`.
    pub(crate) fn pair_cursors(
        &self,
        list: StreamKind,
        child: StreamKind,
        key: &str,
    ) -> PairCursors {
        let cursor = |kind| {
            let old = self.cursor(kind, key);
            StreamCursor {
                kind,
                want: self.want(kind),
                cut: self.cut(&old),
                old,
            }
        };
        let (list, child) = (cursor(list), cursor(child));
        let list_cut = match (list.want, child.want) {
            (true, true) => list.cut.zip(child.cut).map(|(x, y)| x.min(y)),
            (true, false) => list.cut,
            (false, _) => child.cut,
        };
        let label = if list.want { list.kind } else { child.kind }.name();
        let mut pair = PairCursors {
            list,
            child,
            list_cut,
            etag: None,
            label,
        };
        pair.etag = pair.common(|c| c.etag.clone());
        pair
    }
}

/// The result of reading a child stream (reviews, files) for a page's items: its own
/// failure is kept in `failed`, fails only that stream for the repository and ends its
/// reading there; any other error ends the read. Whether the items were read.
pub(crate) fn child_read(
    res: std::result::Result<(), ReadError>,
    failed: &mut Option<String>,
) -> std::result::Result<bool, ReadError> {
    match res {
        Ok(()) => Ok(true),
        Err(ReadError::Failed(m)) => {
            *failed = Some(m);
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::raw_capacity;

    #[test]
    fn raw_capacity_fits_under_the_mmap_threshold_by_default_and_is_capped() {
        let default = crate::config::default_batch_bytes();
        assert!(raw_capacity(default) < 1 << 20, "{}", raw_capacity(default));
        assert!(raw_capacity(default) > default);
        assert_eq!(raw_capacity(usize::MAX), 64 << 20);
    }
}
