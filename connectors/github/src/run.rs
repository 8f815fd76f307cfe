//! The context one read shares between the stream readers: config, HTTP client, the
//! saved state and cursors, and the per-org row builders that batches are cut from and
//! handed to the engine.

use crate::config::{Api, GithubConfig, StreamKind};
use crate::http::{Client, Fetched, HttpError, ParseTurn};
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
use StreamKind::*;

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
    pub(crate) fn of_sub_resource(e: HttpError) -> Self {
        match ReadError::from(e) {
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

/// Outcome of a page parse: batches that filled up, and what the caller needs next.
pub(crate) struct PageRows<X> {
    pub(crate) full: Vec<RecordBatch>,
    pub(crate) fatal: Option<String>,
    pub(crate) rows: u64,
    pub(crate) extra: X,
}

impl<T: TableRows> SharedRows<T> {
    pub(crate) fn new(kind: StreamKind, rows: T) -> Self {
        SharedRows {
            kind,
            rows: Mutex::new(rows),
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct OrgTables {
    pub(crate) org: String,
    pub(crate) pulls: SharedRows<PrRows>,
    pub(crate) reviews: SharedRows<ReviewRows>,
    pub(crate) commits: SharedRows<CommitRows>,
    pub(crate) commit_files: SharedRows<FileRows>,
    pub(crate) repos: SharedRows<RepoRows>,
    pub(crate) deployments: SharedRows<DeploymentRows>,
}

pub(crate) struct Run<'a> {
    pub(crate) cfg: &'a GithubConfig,
    pub(crate) client: Client,
    pub(crate) kinds: BTreeSet<StreamKind>,
    pub(crate) old: BTreeMap<StreamKind, StreamState>,
    pub(crate) ctx: BatchCtx,
    pub(crate) out: BatchSender,
    pub(crate) progress: Progress,
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

pub(crate) fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a repository's pull-request read starts from (see [`Run::pull_cursors`]).
pub(crate) struct PullCursors {
    pub pr_want: bool,
    pub rv_want: bool,
    pub old_pr: RepoCursor,
    pub old_rv: RepoCursor,
    pub cut_pr: Option<i64>,
    pub cut_rv: Option<i64>,
    /// Where listing may stop: below both wanted streams' cursors.
    pub list_cut: Option<i64>,
    /// The first page's ETag both streams saved, if they agree.
    pub etag: Option<String>,
    /// The stream named in requests and events.
    pub label: &'static str,
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

/// Where paging may stop: the lowest cut of the wanted streams (None: read everything).
pub(crate) fn list_cut(a: (bool, Option<i64>), b: (bool, Option<i64>)) -> Option<i64> {
    match (a, b) {
        ((true, x), (true, y)) => x.zip(y).map(|(x, y)| x.min(y)),
        ((true, x), _) => x,
        (_, (_, y)) => y,
    }
}

/// A row without a date is always kept (it cannot be placed against the cursor).
pub(crate) fn keep_opt(d: Option<i64>, cut: Option<i64>) -> bool {
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
                org: org.to_string(),
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
        acc: &SharedRows<T>,
        org: &str,
        items: I,
        mut f: impl FnMut(&mut T, I::Item),
    ) -> (Vec<RecordBatch>, Option<String>, u64)
    where
        I: IntoIterator,
    {
        let mut rows = acc.lock();
        let (mut full, mut n) = (Vec::new(), 0u64);
        for it in items {
            if self.ctx.include_raw && rows.rows() == 0 {
                rows.reserve_raw(raw_capacity(self.cfg.batch_bytes));
            }
            f(&mut rows, it);
            n += 1;
            if rows.rows() >= self.cfg.batch_rows
                || rows.raw_bytes() >= self.cfg.batch_bytes
                || rows.text_bytes() >= MAX_BATCH_TEXT_BYTES
            {
                match rows.finish(org, &self.ctx) {
                    Ok(b) => {
                        self.inflight.fetch_add(1, Ordering::SeqCst);
                        full.push(b)
                    }
                    Err(e) => return (full, Some(e), n),
                }
            }
        }
        (full, None, n)
    }

    pub(crate) async fn flush<T: TableRows>(&self, acc: &SharedRows<T>, org: &str) -> Result<()> {
        let batch = {
            let mut rows = acc.lock();
            if rows.rows() == 0 {
                return Ok(());
            }
            rows.finish(org, &self.ctx).map_err(PluginError::other)?
        };
        match self.send(acc.kind, org, vec![batch]).await {
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

    /// Hands a fetched page's batches on and returns the next page's URL; `None` after
    /// the last page (or a 304, which a sub-resource page never gets).
    pub(crate) async fn forward(
        &self,
        kind: StreamKind,
        org: &str,
        got: Fetched<PageRows<()>>,
    ) -> std::result::Result<Option<String>, ReadError> {
        let Fetched::Page {
            data, next, turn, ..
        } = got
        else {
            return Ok(None);
        };
        self.deliver(kind, org, data, turn).await?;
        Ok(next)
    }

    /// The ETag to send when every wanted stream's saved state has the same one.
    pub(crate) fn common_etag(&self, cursors: &[(StreamKind, &RepoCursor)]) -> Option<String> {
        let wanted: Vec<&RepoCursor> = cursors
            .iter()
            .filter(|(k, _)| self.want(*k))
            .map(|(_, c)| *c)
            .collect();
        let first = wanted.first()?.etag.clone()?;
        wanted
            .iter()
            .all(|c| c.etag.as_deref() == Some(first.as_str()))
            .then_some(first)
    }

    /// Inclusive lower bound of the rows to yield: just after the cursor (minus the
    /// configured overlap), or the first-run floor, or everything.
    pub(crate) fn cut(&self, c: &RepoCursor) -> Option<i64> {
        c.cursor_us()
            .map(|u| u.saturating_sub(self.overlap_us).saturating_add(1))
            .or(self.floor_us)
    }

    /// The value `f` gives for every wanted stream's saved cursor, when they all agree.
    pub(crate) fn common<T: PartialEq>(
        &self,
        cursors: &[(StreamKind, &RepoCursor)],
        f: impl Fn(&RepoCursor) -> Option<T>,
    ) -> Option<T> {
        let mut vals = cursors
            .iter()
            .filter(|(k, _)| self.want(*k))
            .map(|(_, c)| f(c));
        let first = vals.next()??;
        vals.all(|v| v.as_ref() == Some(&first)).then_some(first)
    }

    /// The saved cursors both pull-request readers (REST and GraphQL) start from.
    pub(crate) fn pull_cursors(&self, key: &str) -> PullCursors {
        let (pr_want, rv_want) = (self.want(PullRequest), self.want(PullRequestReview));
        let (old_pr, old_rv) = (
            self.cursor(PullRequest, key),
            self.cursor(PullRequestReview, key),
        );
        let (cut_pr, cut_rv) = (self.cut(&old_pr), self.cut(&old_rv));
        PullCursors {
            list_cut: list_cut((pr_want, cut_pr), (rv_want, cut_rv)),
            etag: self.common_etag(&[(PullRequest, &old_pr), (PullRequestReview, &old_rv)]),
            label: if pr_want {
                "pull_request"
            } else {
                "pull_request_review"
            },
            pr_want,
            rv_want,
            old_pr,
            old_rv,
            cut_pr,
            cut_rv,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::raw_capacity;

    #[test]
    pub(crate) fn raw_capacity_fits_under_the_mmap_threshold_by_default_and_is_capped() {
        let default = crate::config::default_batch_bytes();
        assert!(raw_capacity(default) < 1 << 20, "{}", raw_capacity(default));
        assert!(raw_capacity(default) > default);
        assert_eq!(raw_capacity(usize::MAX), 64 << 20);
    }
}
