//! One read: list each org's repositories, then read the selected repositories
//! concurrently (pulls + reviews, commits + files), appending rows to per-org builders
//! that are handed to the engine whenever `batch_rows` rows are ready and at the end of
//! the org. State is derived only from rows that were appended, and returned only after
//! the final flush succeeded, so it never covers rows that were not sent.

use crate::auth::Auth;
use crate::config::{Api, GithubConfig, StreamKind};
use crate::http::{Client, Fetched, HttpError, Turn};
use crate::rows::{latest_status, parse_deployments, DeploymentRows, LatestStatus};
use crate::rows::{
    parse_page, BatchCtx, CommitFull, CommitItem, CommitRows, FileRows, PrItem, PrRows, RepoItem,
    RepoRows, ReviewItem, ReviewRows, TableRows, MAX_BATCH_TEXT_BYTES,
};
use crate::state::{us_to_time, BranchHead, OrgListing, RepoCursor, RepoRef, Span, StreamState};
use arrow::record_batch::RecordBatch;
use flowctl_core::progress::{Progress, ProgressEvent};
use flowctl_core::{
    BatchSender, PluginError, ReadOutcome, ReadRequest, Result, Shard, StreamResult, TaggedBatch,
};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use StreamKind::*;

#[path = "graphql/pulls.rs"]
mod graphql_pulls;

/// Why a piece of work stopped.
enum Stop {
    /// Abort the whole read (token rejected, engine gone, internal error).
    Fatal(PluginError),
    /// The repository vanished: warn and skip it.
    NotFound(String),
    /// This stream failed for this repository.
    Failed(String),
}

impl From<HttpError> for Stop {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::NotFound(m) => Stop::NotFound(m),
            HttpError::Unauthorized(m) => {
                Stop::Fatal(PluginError::external(format!("GitHub token rejected: {m}")))
            }
            HttpError::Conflict(m) | HttpError::Failed(m) => Stop::Failed(m),
        }
    }
}

impl Stop {
    /// For a sub-resource of a listed item (the reviews of a pull request, the files of a
    /// commit, the statuses of a deployment): one that is gone fails the stream; only a
    /// vanished repository is skipped.
    fn of_sub_resource(e: HttpError) -> Self {
        match Stop::from(e) {
            Stop::NotFound(m) => Stop::Failed(m),
            s => s,
        }
    }
}

/// Rows of one table for one org, shared by the concurrent repository tasks.
struct Acc<T> {
    kind: StreamKind,
    rows: Mutex<T>,
}

/// Outcome of a page parse: batches that filled up, and what the caller needs next.
struct PageOut<X> {
    full: Vec<RecordBatch>,
    fatal: Option<String>,
    rows: u64,
    extra: X,
}

impl<T: TableRows> Acc<T> {
    fn new(kind: StreamKind, rows: T) -> Self {
        Acc {
            kind,
            rows: Mutex::new(rows),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Accs {
    org: String,
    pr: Acc<PrRows>,
    rv: Acc<ReviewRows>,
    cm: Acc<CommitRows>,
    cf: Acc<FileRows>,
    rp: Acc<RepoRows>,
    dp: Acc<DeploymentRows>,
}

pub struct Run<'a> {
    cfg: &'a GithubConfig,
    client: Client,
    kinds: BTreeSet<StreamKind>,
    old: BTreeMap<StreamKind, StreamState>,
    ctx: BatchCtx,
    out: BatchSender,
    progress: Progress,
    floor_us: Option<i64>,
    overlap_us: i64,
    shard: Option<Shard>,
    gql: crate::graphql::Gql,
    api: Api,
    /// Full batches cut but not yet sent: a checkpoint waits until none is (see `offer`).
    inflight: AtomicUsize,
    /// Repositories (or orgs) the deadline cut short: not failures, just not finished.
    unfinished: Mutex<BTreeSet<String>>,
    /// Progress of repositories still being read, per stream and `org/repo` (see
    /// `StreamState::partial`), and the streams it moved since the last offer.
    partial: Mutex<BTreeMap<(StreamKind, String), Span>>,
    progressed: Mutex<BTreeSet<StreamKind>>,
    progress_made: tokio::sync::Notify,
}

/// How long progress inside a repository waits before it is offered (see `Run::org`).
const PROGRESS_OFFER_DELAY: std::time::Duration = std::time::Duration::from_millis(250);

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Failures of one stream: (org/repo or org, message).
type Errors = BTreeMap<StreamKind, Vec<(String, String)>>;

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

/// Per-repository result: new cursor or error per stream.
struct RepoOutcome {
    key: String,
    results: Vec<(StreamKind, std::result::Result<RepoCursor, String>)>,
    /// The default branch's head, for the commit streams that succeeded.
    heads: Vec<(StreamKind, BranchHead)>,
    skipped: Option<String>,
}

type Cursors = Vec<(StreamKind, std::result::Result<RepoCursor, String>)>;

/// What `commits?per_page=1` said about the default branch.
enum Probe {
    Unchanged,
    Head(BranchHead),
    NoCommits,
}

/// `_RAW` bytes reserved for a new batch: `batch_bytes` plus room for the row that
/// crosses it (a pull request is ~19 KB), at most 64 MiB whatever `batch_bytes` says. With
/// the default `batch_bytes` this is 960 KiB, under flowctl's 1 MiB mmap threshold
/// (`src/main.rs`): the buffer then comes from the heap, reusing the memory of batches
/// already written, instead of a fresh `mmap` faulted in page by page.
fn raw_capacity(batch_bytes: usize) -> usize {
    batch_bytes.saturating_add(64 * 1024).min(64 << 20)
}

/// Where paging may stop: the lowest cut of the wanted streams (None: read everything).
fn list_cut(a: (bool, Option<i64>), b: (bool, Option<i64>)) -> Option<i64> {
    match (a, b) {
        ((true, x), (true, y)) => x.zip(y).map(|(x, y)| x.min(y)),
        ((true, x), _) => x,
        (_, (_, y)) => y,
    }
}

/// A row without a date is always kept (it cannot be placed against the cursor).
fn keep_opt(d: Option<i64>, cut: Option<i64>) -> bool {
    match (d, cut) {
        (Some(d), Some(c)) => d >= c,
        _ => true,
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Entry point of `Source::read`.
pub async fn read(cfg: &GithubConfig, req: ReadRequest, out: BatchSender) -> Result<ReadOutcome> {
    let mut outcome = ReadOutcome::default();
    let mut kinds = BTreeSet::new();
    let mut old = BTreeMap::new();
    for s in &req.streams {
        let Some(k) = StreamKind::from_name(s) else {
            let names: Vec<&str> = StreamKind::ALL.iter().map(|k| k.name()).collect();
            let error = format!(
                "unknown stream `{s}` (the github source has: {})",
                names.join(", ")
            );
            outcome
                .streams
                .insert(s.clone(), StreamResult::Failed { error });
            continue;
        };
        match StreamState::from_value(req.state.get(s)) {
            Ok(st) => {
                kinds.insert(k);
                old.insert(k, st);
            }
            Err(e) => {
                outcome.streams.insert(
                    s.clone(),
                    StreamResult::Failed {
                        error: format!("stream {s}: {e}"),
                    },
                );
            }
        }
    }
    if kinds.is_empty() {
        return Ok(outcome);
    }
    let auth = Auth::resolve(cfg).await?;
    let api = cfg.api.resolve(matches!(auth, Auth::Anonymous));
    let client = Client::new(cfg, auth, req.progress.clone())
        .map_err(PluginError::config)?
        .with_stop(out.stop_signal());
    let run = Run {
        cfg,
        client,
        kinds,
        old,
        ctx: BatchCtx {
            ingested_at_us: req.ingested_at.timestamp_micros(),
            batch_id: req.batch_id.clone(),
            include_raw: cfg.include_raw,
            include_patch: cfg.include_patch,
        },
        out,
        progress: req.progress.clone(),
        floor_us: cfg
            .first_run_floor(req.ingested_at)
            .map(|t| t.timestamp_micros()),
        overlap_us: i64::try_from(cfg.cursor_overlap_seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000),
        shard: req.shard,
        gql: crate::graphql::Gql::new(cfg),
        api,
        inflight: AtomicUsize::new(0),
        unfinished: Mutex::new(BTreeSet::new()),
        partial: Mutex::new(BTreeMap::new()),
        progressed: Mutex::new(BTreeSet::new()),
        progress_made: tokio::sync::Notify::new(),
    };
    let orgs: Vec<&String> = cfg
        .orgs
        .iter()
        .filter(|o| {
            req.only_partitions.is_empty()
                || req
                    .only_partitions
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(o))
        })
        .collect();
    let mut states = run.old.clone();
    let mut errors = Errors::new();
    for org in orgs {
        crate::tokens::for_org(org, run.org(org, &mut states, &mut errors)).await?;
    }
    let unfinished = std::mem::take(&mut *run.unfinished.lock().unwrap_or_else(|p| p.into_inner()));
    if !unfinished.is_empty() {
        let keys: Vec<&str> = unfinished.iter().map(|k| k.as_str()).collect();
        run.event(ProgressEvent::Warning {
            stream: "source".into(),
            message: format!(
                "stopped at the deadline: {} not read to the end ({}); they keep their \
                 previous cursors and the next run reads them",
                plural(keys.len(), "repository", "repositories"),
                name_list(&keys)
            ),
        });
    }
    for k in &run.kinds {
        let result = match errors.get(k) {
            Some(errs) if !errs.is_empty() => StreamResult::Failed {
                error: if errs.len() == 1 {
                    format!("{}: {}", errs[0].0, errs[0].1)
                } else {
                    let keys: Vec<&str> = errs.iter().map(|(k, _)| k.as_str()).collect();
                    format!(
                        "{} failed ({}); the others were loaded and their cursors committed; first error: {}: {}",
                        plural(errs.len(), "repository", "repositories"),
                        name_list(&keys),
                        errs[0].0,
                        errs[0].1
                    )
                },
            },
            _ => StreamResult::Done {
                state: run.with_partial(*k, states.get(k)).to_value(),
            },
        };
        outcome.streams.insert(k.name().to_string(), result);
    }
    Ok(outcome)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Up to ten names, then how many more.
fn name_list(names: &[&str]) -> String {
    let mut s = names
        .iter()
        .take(10)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 10 {
        s.push_str(&format!(" and {} more", names.len() - 10));
    }
    s
}

impl Run<'_> {
    fn want(&self, k: StreamKind) -> bool {
        self.kinds.contains(&k)
    }

    /// `st` with the progress of the repositories cut short or still being read.
    fn with_partial(&self, k: StreamKind, st: Option<&StreamState>) -> StreamState {
        let mut st = st.cloned().unwrap_or_default();
        for ((kind, key), span) in locked(&self.partial).iter() {
            if *kind == k {
                st.partial.insert(key.clone(), *span);
            }
        }
        st
    }

    /// Records that a repository's read so far covers `[low, high]` for `k`.
    fn progress(&self, k: StreamKind, key: &str, low: i64, high: i64) {
        let old = self.old.get(&k).and_then(|s| s.partial.get(key)).copied();
        if let Some(span) = Span::extended(old, low, high) {
            locked(&self.partial).insert((k, key.to_string()), span);
            locked(&self.progressed).insert(k);
            self.progress_made.notify_one();
        }
    }

    fn span(&self, k: StreamKind, key: &str) -> Option<Span> {
        self.old.get(&k).and_then(|s| s.partial.get(key)).copied()
    }

    fn cursor(&self, k: StreamKind, key: &str) -> RepoCursor {
        self.old
            .get(&k)
            .and_then(|s| s.repos.get(key))
            .cloned()
            .unwrap_or_default()
    }

    fn url(&self, segs: &[&str], query: &str) -> String {
        let mut u = self.client.base().clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty().extend(segs);
        }
        if !query.is_empty() {
            u.set_query(Some(query));
        }
        u.to_string()
    }

    fn event(&self, e: ProgressEvent) {
        self.progress.event(e);
    }

    async fn send(
        &self,
        kind: StreamKind,
        org: &str,
        batches: Vec<RecordBatch>,
    ) -> std::result::Result<(), Stop> {
        for batch in batches {
            let tagged = TaggedBatch {
                stream: kind.name().to_string(),
                partition: org.to_string(),
                batch,
            };
            self.out.send(tagged).await.map_err(|_| {
                Stop::Fatal(PluginError::other("the engine stopped accepting batches"))
            })?;
        }
        Ok(())
    }

    /// Append rows under the lock via `f`, cutting a batch every `batch_rows` rows or
    /// `batch_bytes` of `_RAW`, whichever comes first.
    fn fill<T: TableRows, I>(
        &self,
        acc: &Acc<T>,
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

    async fn flush<T: TableRows>(&self, acc: &Acc<T>, org: &str) -> Result<()> {
        let batch = {
            let mut rows = acc.lock();
            if rows.rows() == 0 {
                return Ok(());
            }
            rows.finish(org, &self.ctx).map_err(PluginError::other)?
        };
        match self.send(acc.kind, org, vec![batch]).await {
            Ok(()) => Ok(()),
            Err(Stop::Fatal(e)) => Err(e),
            Err(Stop::Failed(m) | Stop::NotFound(m)) => Err(PluginError::other(m)),
        }
    }

    /// Sends a page's full batches, then gives up the page's parse turn (so the next
    /// body is inflated only once these batches are with the engine).
    async fn deliver<X>(
        &self,
        kind: StreamKind,
        org: &str,
        page: PageOut<X>,
        turn: Turn,
    ) -> std::result::Result<X, Stop> {
        let cut = page.full.len();
        self.send(kind, org, page.full).await?;
        self.inflight.fetch_sub(cut, Ordering::SeqCst);
        drop(turn);
        if let Some(e) = page.fatal {
            return Err(Stop::Fatal(PluginError::other(format!(
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
    async fn forward(
        &self,
        kind: StreamKind,
        org: &str,
        got: Fetched<PageOut<()>>,
    ) -> std::result::Result<Option<String>, Stop> {
        let Fetched::Page {
            data, next, turn, ..
        } = got
        else {
            return Ok(None);
        };
        self.deliver(kind, org, data, turn).await?;
        Ok(next)
    }

    async fn org(
        &self,
        org: &str,
        states: &mut BTreeMap<StreamKind, StreamState>,
        errors: &mut Errors,
    ) -> Result<()> {
        let raw = self.cfg.include_raw;
        let mut changed = BTreeSet::new();
        let accs = Accs {
            org: org.to_string(),
            pr: Acc::new(PullRequest, PrRows::new(raw)),
            rv: Acc::new(PullRequestReview, ReviewRows::new(raw)),
            cm: Acc::new(Commit, CommitRows::new(raw)),
            cf: Acc::new(CommitFile, FileRows::new(raw)),
            rp: Acc::new(Repository, RepoRows::new(raw)),
            dp: Acc::new(Deployment, DeploymentRows::new(raw)),
        };
        let repos = match self.list_repos(&accs).await {
            Ok((repos, listing)) => {
                let k = self.listing_stream();
                let st = states.entry(k).or_default();
                let before = st.orgs.get(org).cloned();
                match listing {
                    Some(l) => st.orgs.insert(org.to_string(), l),
                    None => st.orgs.remove(org),
                };
                if st.orgs.get(org) != before.as_ref() || k == Repository {
                    changed.insert(k);
                }
                repos
            }
            Err(Stop::Fatal(e)) => return Err(e),
            Err(Stop::NotFound(m)) => {
                return Err(PluginError::external(format!(
                    "source.orgs: `{org}` is neither an organisation nor a user account at {} \
                     (its repository list answered 404: {m})",
                    self.cfg.base_url
                )))
            }
            Err(Stop::Failed(m)) => {
                self.failed(errors, self.kinds.iter().copied(), org, m);
                Vec::new()
            }
        };
        self.offer(&accs, states, &mut changed, false).await?;
        let selected: Vec<RepoRef> = repos
            .into_iter()
            .filter(|r| self.selected(org, r))
            .collect();
        // Futures collected first: a closure in the stream's type trips the Send check of
        // the async-trait future (higher-ranked lifetime inference).
        let futs: Vec<_> = selected
            .iter()
            .map(|r| Box::pin(crate::tokens::for_repo(org, &r.name, self.repo(&accs, r))))
            .collect();
        let mut tasks = futures::stream::iter(futs).buffer_unordered(self.cfg.max_concurrency);
        // Progress inside repositories still being read is offered too, a moment after
        // it is made (coalescing a burst of pages into one offer).
        let mut offer_at: Option<tokio::time::Instant> = None;
        loop {
            let res = tokio::select! {
                res = tasks.next() => match res {
                    Some(res) => res,
                    None => break,
                },
                _ = sleep_until(offer_at), if offer_at.is_some() => {
                    offer_at = None;
                    self.offer(&accs, states, &mut changed, false).await?;
                    continue;
                }
                _ = self.progress_made.notified(), if offer_at.is_none() => {
                    offer_at = Some(tokio::time::Instant::now() + PROGRESS_OFFER_DELAY);
                    continue;
                }
            };
            let o = res?;
            if let Some(m) = o.skipped {
                self.event(ProgressEvent::Warning {
                    stream: "repository".into(),
                    message: m,
                });
                continue;
            }
            for (k, r) in o.results {
                match r {
                    Ok(c) => {
                        let st = states.entry(k).or_default();
                        let cut_short = st.partial.remove(&o.key).is_some();
                        locked(&self.partial).remove(&(k, o.key.clone()));
                        if st.repos.insert(o.key.clone(), c.clone()).as_ref() != Some(&c)
                            || cut_short
                        {
                            changed.insert(k);
                        }
                    }
                    Err(m) => self.failed(errors, [k], &o.key, m),
                }
            }
            for (k, h) in o.heads {
                let st = states.entry(k).or_default();
                if st.heads.insert(o.key.clone(), h.clone()).as_ref() != Some(&h) {
                    changed.insert(k);
                }
            }
            self.offer(&accs, states, &mut changed, false).await?;
        }
        drop(tasks);
        self.flush(&accs.rp, org).await?;
        self.flush(&accs.pr, org).await?;
        self.flush(&accs.rv, org).await?;
        self.flush(&accs.cm, org).await?;
        self.flush(&accs.cf, org).await?;
        self.flush(&accs.dp, org).await?;
        self.offer(&accs, states, &mut changed, true).await?;
        // Orgs are read one after another: the engine can complete this org's staged
        // files now rather than hold them open while the next org is read.
        self.out
            .partition_done(org)
            .await
            .map_err(|e| PluginError::other(e.to_string()))?;
        Ok(())
    }

    /// Records a failure of `key` (org/repo, or org) for `kinds`; after the engine's stop
    /// request it is only unfinished work, which the next run picks up.
    fn failed(
        &self,
        errors: &mut Errors,
        kinds: impl IntoIterator<Item = StreamKind>,
        key: &str,
        m: String,
    ) {
        if self.client.stopped() {
            let mut unfinished = self.unfinished.lock().unwrap_or_else(|p| p.into_inner());
            unfinished.insert(key.to_string());
            return;
        }
        for k in kinds {
            errors
                .entry(k)
                .or_default()
                .push((key.to_string(), m.clone()));
        }
    }

    /// Offers the engine a checkpoint for each stream in `changed` (a repository finished
    /// since the last one): the rows still in that stream's builder are sent first. Waits
    /// while a full batch is cut but not yet sent (it may hold rows of a finished
    /// repository); the next finished repository, or the end of the org (`settled`: no
    /// repository task is left), offers then.
    async fn offer(
        &self,
        a: &Accs,
        states: &BTreeMap<StreamKind, StreamState>,
        changed: &mut BTreeSet<StreamKind>,
        settled: bool,
    ) -> Result<()> {
        if !settled && self.inflight.load(Ordering::SeqCst) > 0 {
            return Ok(());
        }
        changed.extend(std::mem::take(&mut *locked(&self.progressed)));
        let org = a.org.as_str();
        for k in std::mem::take(changed) {
            match k {
                PullRequest => self.flush(&a.pr, org).await?,
                PullRequestReview => self.flush(&a.rv, org).await?,
                Commit => self.flush(&a.cm, org).await?,
                CommitFile => self.flush(&a.cf, org).await?,
                Repository => self.flush(&a.rp, org).await?,
                Deployment => self.flush(&a.dp, org).await?,
            }
            let state = self.with_partial(k, states.get(&k)).to_value();
            self.out
                .checkpoint(k.name(), state)
                .await
                .map_err(|e| PluginError::other(e.to_string()))?;
        }
        Ok(())
    }

    /// The stream whose state keeps each account's repository list and its ETag: the
    /// `repository` stream when read, else the first stream read, so that an unchanged
    /// list answers 304 whichever streams a spec reads.
    fn listing_stream(&self) -> StreamKind {
        if self.want(Repository) {
            return Repository;
        }
        self.kinds.iter().next().copied().unwrap_or(Repository)
    }

    /// Repositories whose PRs, commits and deployments are read.
    fn selected(&self, org: &str, r: &RepoRef) -> bool {
        self.has_row(org, r) && (self.cfg.include_archived || !r.archived)
    }

    /// Repositories with a REPOSITORY row: archived ones too, so that a repository
    /// archived after it was loaded has its row updated.
    fn has_row(&self, org: &str, r: &RepoRef) -> bool {
        self.cfg.repo_selected(&r.name)
            && (self.cfg.include_forks || !r.fork)
            && self
                .shard
                .is_none_or(|s| s.owns(&format!("{org}/{}", r.name)))
    }

    /// The account's repositories (all pages); REPOSITORY rows for those with a row.
    /// An account saved as a user is listed at /users/{name}/repos; otherwise
    /// /orgs/{name}/repos is asked first and a 404 there tries the user path.
    async fn list_repos(
        &self,
        a: &Accs,
    ) -> std::result::Result<(Vec<RepoRef>, Option<OrgListing>), Stop> {
        let saved = self
            .old
            .get(&self.listing_stream())
            .and_then(|s| s.orgs.get(&a.org));
        let user = saved.is_some_and(|l| l.user);
        match self.list_account_repos(a, user).await {
            Err(Stop::NotFound(_)) if !user => self.list_account_repos(a, true).await,
            r => r,
        }
    }

    async fn list_account_repos(
        &self,
        a: &Accs,
        user: bool,
    ) -> std::result::Result<(Vec<RepoRef>, Option<OrgListing>), Stop> {
        let org = a.org.as_str();
        let cached = self
            .old
            .get(&self.listing_stream())
            .and_then(|s| s.orgs.get(org))
            .filter(|l| l.etag.is_some() && !l.repos.is_empty() && l.user == user);
        let want = self.want(Repository);
        // A user's `type=all` would add repositories of other owners it collaborates on.
        let mut url = if user {
            self.url(&["users", org, "repos"], "type=owner&per_page=100")
        } else {
            self.url(&["orgs", org, "repos"], "type=all&per_page=100")
        };
        let (mut repos, mut first_etag, mut pages) = (Vec::new(), None, 0);
        loop {
            let etag = if pages == 0 {
                cached.and_then(|c| c.etag.as_deref())
            } else {
                None
            };
            let got = self
                .client
                .get("repository", &url, etag, |body| {
                    let items = parse_page::<RepoItem>(body, self.ctx.include_raw)?;
                    let times = items
                        .iter()
                        .map(|(r, _)| r.times())
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    let refs: Vec<RepoRef> = items
                        .iter()
                        .map(|(r, _)| RepoRef {
                            name: r.name.to_string(),
                            id: r.id,
                            archived: r.archived.unwrap_or(false),
                            fork: r.fork.unwrap_or(false),
                        })
                        .collect();
                    let rows = items
                        .iter()
                        .zip(&times)
                        .zip(&refs)
                        .filter(|(_, rf)| want && self.has_row(org, rf));
                    let (full, fatal, n) = self.fill(&a.rp, org, rows, |b, (((r, raw), t), _)| {
                        b.append(org, r, *t, *raw)
                    });
                    Ok(PageOut {
                        full,
                        fatal,
                        rows: n,
                        extra: refs,
                    })
                })
                .await
                .map_err(|e| match Stop::from(e) {
                    // Only the first page decides what kind of account this is.
                    Stop::NotFound(m) if pages > 0 => Stop::Failed(m),
                    s => s,
                })?;
            match got {
                Fetched::NotModified => {
                    let c = cached.cloned().unwrap_or_default();
                    return Ok((c.repos.clone(), Some(c)));
                }
                Fetched::Page {
                    data,
                    etag,
                    next,
                    turn,
                } => {
                    pages += 1;
                    if pages == 1 {
                        first_etag = etag;
                    }
                    repos.extend(self.deliver(Repository, org, data, turn).await?);
                    match next {
                        Some(n) => url = n,
                        None => break,
                    }
                }
            }
        }
        let listing = if pages == 1 {
            Some(OrgListing {
                etag: first_etag,
                repos: repos.clone(),
                user,
            })
        } else {
            // Larger lists are not cached, but a user account is remembered as one.
            user.then(|| OrgListing {
                user,
                ..OrgListing::default()
            })
        };
        Ok((repos, listing))
    }

    async fn repo(&self, a: &Accs, r: &RepoRef) -> Result<RepoOutcome> {
        let key = format!("{}/{}", a.org, r.name);
        let mut out = RepoOutcome {
            key: key.clone(),
            results: Vec::new(),
            heads: Vec::new(),
            skipped: None,
        };
        let mut head = None;
        let parts: [(bool, bool); 2] = [
            (self.want(PullRequest), self.want(PullRequestReview)),
            (self.want(Commit), self.want(CommitFile)),
        ];
        for (i, (x, y)) in parts.into_iter().enumerate() {
            if !(x || y) {
                continue;
            }
            let res = if i == 0 && self.api == Api::Graphql {
                self.pulls_graphql(a, r, &key).await
            } else if i == 0 {
                self.pulls(a, r, &key).await
            } else {
                self.branch_commits(a, r, &key, &mut head).await
            };
            match res {
                Ok(mut v) => out.results.append(&mut v),
                Err(Stop::Fatal(e)) => return Err(e),
                Err(Stop::NotFound(m)) => {
                    out.skipped = Some(format!("repository {key} skipped: it answered 404 (deleted, renamed or no longer visible since it was listed): {m}"));
                    out.results.clear();
                    return Ok(out);
                }
                Err(Stop::Failed(m)) => {
                    let ks: &[StreamKind] = if i == 0 {
                        &[PullRequest, PullRequestReview]
                    } else {
                        &[Commit, CommitFile]
                    };
                    for k in ks.iter().filter(|k| self.want(**k)) {
                        out.results.push((*k, Err(m.clone())));
                    }
                }
            }
        }
        if let Some(h) = head {
            for (k, res) in &out.results {
                if matches!(k, Commit | CommitFile) && res.is_ok() {
                    out.heads.push((*k, h.clone()));
                }
            }
        }
        if self.want(Deployment) {
            match self.deployments(a, r, &key).await {
                Ok(c) => out.results.push((Deployment, Ok(c))),
                Err(Stop::Fatal(e)) => return Err(e),
                Err(Stop::NotFound(m)) => {
                    out.skipped = Some(format!("repository {key} skipped: it answered 404 (deleted, renamed or no longer visible since it was listed): {m}"));
                    out.results.clear();
                    out.heads.clear();
                }
                Err(Stop::Failed(m)) => out.results.push((Deployment, Err(m))),
            }
        }
        Ok(out)
    }

    /// The ETag to send when every wanted stream's saved state has the same one.
    fn common_etag(&self, cursors: &[(StreamKind, &RepoCursor)]) -> Option<String> {
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
    fn cut(&self, c: &RepoCursor) -> Option<i64> {
        c.cursor_us()
            .map(|u| u.saturating_sub(self.overlap_us).saturating_add(1))
            .or(self.floor_us)
    }

    /// The value `f` gives for every wanted stream's saved cursor, when they all agree.
    fn common<T: PartialEq>(
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

    /// The commit streams of a repository without commits: its cursors stay as they were
    /// (the stream still succeeds) and one warning says why nothing was read.
    fn empty_repository(
        &self,
        key: &str,
        olds: &[(StreamKind, &RepoCursor)],
        answer: &str,
    ) -> Vec<(StreamKind, std::result::Result<RepoCursor, String>)> {
        self.event(ProgressEvent::Warning {
            stream: if self.want(Commit) {
                "commit"
            } else {
                "commit_file"
            }
            .into(),
            message: format!("repository {key} has no commits yet, nothing to read ({answer})"),
        });
        olds.iter()
            .filter(|(k, _)| self.want(*k))
            .map(|(k, c)| (*k, Ok((*c).clone())))
            .collect()
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

    /// Pull requests (newest updated first, stopping below the cursor) and the reviews of
    /// PRs updated after the review cursor.
    async fn pulls(
        &self,
        a: &Accs,
        r: &RepoRef,
        key: &str,
    ) -> std::result::Result<Vec<(StreamKind, std::result::Result<RepoCursor, String>)>, Stop> {
        let org = a.org.as_str();
        let PullCursors {
            pr_want,
            rv_want,
            old_pr,
            old_rv,
            cut_pr,
            cut_rv,
            list_cut,
            etag,
            label,
        } = self.pull_cursors(key);
        let mut url = self.url(
            &["repos", org, &r.name, "pulls"],
            "state=all&sort=updated&direction=desc&per_page=100",
        );
        let (mut first, mut new_etag, mut pr_max, mut rv_max, mut rv_err) =
            (true, None, None, None, None::<String>);
        // Rows within what an earlier read cut short had covered are not sent again.
        let (span_pr, span_rv) = (
            self.span(PullRequest, key),
            self.span(PullRequestReview, key),
        );
        let fresh = |span: Option<Span>, u: i64| span.is_none_or(|s| !s.contains_us(u));
        // The newest and oldest `updated_at` listed so far in this read.
        let (mut top, mut low) = (None::<i64>, None::<i64>);
        loop {
            let got = self
                .client
                .get(
                    label,
                    &url,
                    if first { etag.as_deref() } else { None },
                    |body| {
                        let items = parse_page::<PrItem>(body, self.ctx.include_raw)?;
                        let times = items
                            .iter()
                            .map(|(p, _)| p.times())
                            .collect::<std::result::Result<Vec<_>, _>>()?;
                        // A short page is not the end: only the Link header says so.
                        let stop = list_cut.is_some_and(|c| times.iter().any(|t| t.updated < c));
                        let keep = |u: i64, cut: Option<i64>| cut.is_none_or(|c| u >= c);
                        let want_pr = |u: i64| pr_want && keep(u, cut_pr) && fresh(span_pr, u);
                        let rows = items.iter().zip(&times).filter(|(_, t)| want_pr(t.updated));
                        let (full, fatal, n) = self.fill(&a.pr, org, rows, |b, ((p, raw), t)| {
                            b.append(org, &r.name, p, t, *raw)
                        });
                        let pmax = times
                            .iter()
                            .map(|t| t.updated)
                            .filter(|u| want_pr(*u))
                            .max();
                        let targets: Vec<(i64, i64, i64)> = items
                            .iter()
                            .zip(&times)
                            .filter(|(_, t)| {
                                rv_want && keep(t.updated, cut_rv) && fresh(span_rv, t.updated)
                            })
                            .map(|((p, _), t)| (p.id, p.number, t.updated))
                            .collect();
                        let listed = (
                            times.iter().map(|t| t.updated).min(),
                            times.iter().map(|t| t.updated).max(),
                        );
                        Ok(PageOut {
                            full,
                            fatal,
                            rows: n,
                            extra: (stop, pmax, targets, listed),
                        })
                    },
                )
                .await?;
            let (data, etag_now, next, turn) = match got {
                Fetched::NotModified => {
                    return Ok([(PullRequest, old_pr), (PullRequestReview, old_rv)]
                        .into_iter()
                        .filter(|(k, _)| self.want(*k))
                        .map(|(k, c)| (k, Ok(c)))
                        .collect());
                }
                Fetched::Page {
                    data,
                    etag,
                    next,
                    turn,
                } => (data, etag, next, turn),
            };
            if first {
                new_etag = etag_now;
            }
            // The turn goes with the delivery, before the reviews are requested.
            let (stop, pmax, targets, (page_low, page_top)) =
                self.deliver(PullRequest, org, data, turn).await?;
            pr_max = max_opt(pr_max, pmax);
            top = max_opt(top, page_top);
            low = min_opt(low, page_low);
            // Every pull request listed so far is sent: a read cut short from here on
            // keeps them (see `StreamState::partial`).
            if let (true, Some(lo), Some(hi)) = (pr_want, low, top) {
                self.progress(PullRequest, key, lo, hi);
            }
            if rv_want && rv_err.is_none() {
                match self.reviews(a, r, &targets, key, top).await {
                    Ok(()) => rv_max = max_opt(rv_max, targets.iter().map(|t| t.2).max()),
                    Err(Stop::Failed(m)) => rv_err = Some(m),
                    Err(e) => return Err(e),
                }
            }
            match next {
                Some(n) if !stop => url = n,
                _ => break,
            }
            first = false;
        }
        let mut res = Vec::new();
        let span_end = |s: Option<Span>| s.map(|s| s.to.timestamp_micros());
        if pr_want {
            let cursor = max_opt(max_opt(old_pr.cursor_us(), pr_max), span_end(span_pr))
                .and_then(us_to_time);
            res.push((
                PullRequest,
                Ok(RepoCursor {
                    cursor,
                    etag: new_etag.clone(),
                    since: None,
                }),
            ));
        }
        if rv_want {
            let cursor = max_opt(max_opt(old_rv.cursor_us(), rv_max), span_end(span_rv))
                .and_then(us_to_time);
            res.push((
                PullRequestReview,
                rv_err.map_or(
                    Ok(RepoCursor {
                        cursor,
                        etag: new_etag,
                        since: None,
                    }),
                    Err,
                ),
            ));
        }
        Ok(res)
    }

    /// The reviews of `targets` (id, number, updated_at; newest first). After each pull
    /// request's, the reviews of every one listed from `top` down to it are sent.
    async fn reviews(
        &self,
        a: &Accs,
        r: &RepoRef,
        targets: &[(i64, i64, i64)],
        key: &str,
        top: Option<i64>,
    ) -> std::result::Result<(), Stop> {
        let org = a.org.as_str();
        for (id, number, updated) in targets {
            let mut url = self.url(
                &[
                    "repos",
                    org,
                    &r.name,
                    "pulls",
                    &number.to_string(),
                    "reviews",
                ],
                "per_page=100",
            );
            loop {
                let got = self
                    .client
                    .get("pull_request_review", &url, None, |body| {
                        let items = parse_page::<ReviewItem>(body, self.ctx.include_raw)?;
                        let subs = items
                            .iter()
                            .map(|(x, _)| x.submitted())
                            .collect::<std::result::Result<Vec<_>, _>>()?;
                        let (full, fatal, n) =
                            self.fill(&a.rv, org, items.iter().zip(&subs), |b, ((x, raw), s)| {
                                b.append(org, &r.name, (*id, *number), x, *s, *raw)
                            });
                        Ok(PageOut {
                            full,
                            fatal,
                            rows: n,
                            extra: (),
                        })
                    })
                    .await
                    .map_err(Stop::of_sub_resource)?;
                match self.forward(PullRequestReview, org, got).await? {
                    Some(n) => url = n,
                    None => break,
                }
            }
            if let Some(hi) = top {
                self.progress(PullRequestReview, key, *updated, hi);
            }
        }
        Ok(())
    }

    /// Commits of the default branch, newest first. The URL's `since` is an anchor kept in
    /// state (the first run's floor, moved up to the cursor after a run that needed more
    /// than one page), so an unchanged repository answers 304 to the saved ETag. Paging
    /// stops after the first page that reaches the cursor. Files are read for commits
    /// newer than the commit_file cursor.
    async fn commits(
        &self,
        a: &Accs,
        r: &RepoRef,
        key: &str,
        first_listed: &mut Option<String>,
    ) -> std::result::Result<Vec<(StreamKind, std::result::Result<RepoCursor, String>)>, Stop> {
        let org = a.org.as_str();
        let (cm_want, cf_want) = (self.want(Commit), self.want(CommitFile));
        let (old_cm, old_cf) = (self.cursor(Commit, key), self.cursor(CommitFile, key));
        let (cut_cm, cut_cf) = (self.cut(&old_cm), self.cut(&old_cf));
        let list_cut = list_cut((cm_want, cut_cm), (cf_want, cut_cf));
        let olds = [(Commit, &old_cm), (CommitFile, &old_cf)];
        let saved_anchor = self.common(&olds, |c| c.since.map(|t| t.timestamp_micros()));
        let anchor = saved_anchor.or(self.floor_us);
        let etag = if saved_anchor.is_some() || self.floor_us.is_none() {
            self.common_etag(&olds)
        } else {
            None
        };
        let label = if cm_want { "commit" } else { "commit_file" };
        let mut query = String::from("per_page=100");
        if let Some(t) = anchor.and_then(us_to_time) {
            query.push_str(&format!("&since={}", t.format("%Y-%m-%dT%H:%M:%SZ")));
        }
        let mut url = self.url(&["repos", org, &r.name, "commits"], &query);
        let (mut pages, mut new_etag, mut cm_max, mut cf_max, mut cf_err) =
            (0u32, None, None, None, None::<String>);
        loop {
            let got = self
                .client
                .get(
                    label,
                    &url,
                    if pages == 0 { etag.as_deref() } else { None },
                    |body| {
                        let items = parse_page::<CommitItem>(body, self.ctx.include_raw)?;
                        let dates = items
                            .iter()
                            .map(|(c, _)| c.dates())
                            .collect::<std::result::Result<Vec<_>, _>>()?;
                        // A short page is not the end: only the Link header says so.
                        let stop = list_cut
                            .is_some_and(|c| dates.iter().any(|d| d.1.is_some_and(|x| x < c)));
                        let rows = items
                            .iter()
                            .zip(&dates)
                            .filter(|(_, d)| cm_want && keep_opt(d.1, cut_cm));
                        let (full, fatal, n) = self.fill(&a.cm, org, rows, |b, ((c, raw), d)| {
                            b.append(org, &r.name, c, *d, *raw)
                        });
                        let max = dates
                            .iter()
                            .filter(|d| cm_want && keep_opt(d.1, cut_cm))
                            .filter_map(|d| d.1)
                            .max();
                        let targets: Vec<(String, Option<i64>)> = items
                            .iter()
                            .zip(&dates)
                            .filter(|(_, d)| cf_want && keep_opt(d.1, cut_cf))
                            .map(|((c, _), d)| (c.sha.to_string(), d.1))
                            .collect();
                        let first = items.first().map(|(c, _)| c.sha.to_string());
                        Ok(PageOut {
                            full,
                            fatal,
                            rows: n,
                            extra: (stop, max, targets, first),
                        })
                    },
                )
                .await;
            // GitHub answers 409 "Git Repository is empty." for a repository without
            // commits: nothing to read, and no reason to fail the org.
            let got = match got {
                Err(HttpError::Conflict(m)) if pages == 0 => {
                    return Ok(self.empty_repository(key, &olds, &m));
                }
                got => got?,
            };
            let Fetched::Page {
                data,
                etag: etag_now,
                next,
                turn,
            } = got
            else {
                return Ok(olds
                    .into_iter()
                    .filter(|(k, _)| self.want(*k))
                    .map(|(k, c)| (k, Ok(c.clone())))
                    .collect());
            };
            if pages == 0 {
                new_etag = etag_now;
            }
            // The turn goes with the delivery, before the files are requested.
            let (stop, max, targets, first) = self.deliver(Commit, org, data, turn).await?;
            if pages == 0 {
                *first_listed = first;
            }
            pages += 1;
            cm_max = max_opt(cm_max, max);
            if cf_want && cf_err.is_none() {
                match self.files(a, r, &targets).await {
                    Ok(()) => cf_max = max_opt(cf_max, targets.iter().filter_map(|t| t.1).max()),
                    Err(Stop::Failed(m)) => cf_err = Some(m),
                    Err(e) => return Err(e),
                }
            }
            match next {
                Some(n) if !stop => url = n,
                _ => break,
            }
        }
        let mut res = Vec::new();
        let new_cursors = [
            (Commit, max_opt(old_cm.cursor_us(), cm_max)),
            (CommitFile, max_opt(old_cf.cursor_us(), cf_max)),
        ];
        // Move the anchor up only when the window grew past one page; a moved anchor
        // changes the URL, so its ETag is not kept.
        let moved = pages > 1;
        let new_anchor = if moved {
            new_cursors
                .iter()
                .filter(|(k, _)| self.want(*k))
                .filter_map(|(_, c)| *c)
                .min()
                .or(anchor)
        } else {
            anchor
        };
        for (k, cur) in new_cursors {
            if !self.want(k) {
                continue;
            }
            let c = RepoCursor {
                cursor: cur.and_then(us_to_time),
                etag: if moved { None } else { new_etag.clone() },
                since: new_anchor.and_then(us_to_time),
            };
            let r = if k == CommitFile {
                cf_err.clone().map_or(Ok(c.clone()), Err)
            } else {
                Ok(c)
            };
            res.push((k, r));
        }
        Ok(res)
    }

    async fn files(
        &self,
        a: &Accs,
        r: &RepoRef,
        targets: &[(String, Option<i64>)],
    ) -> std::result::Result<(), Stop> {
        let org = a.org.as_str();
        for (sha, _) in targets {
            let mut url = self.url(&["repos", org, &r.name, "commits", sha], "");
            loop {
                let got = self
                    .client
                    .get("commit_file", &url, None, |body| {
                        let c: CommitFull =
                            serde_json::from_slice(body).map_err(|e| e.to_string())?;
                        let mut rows = a.cf.lock();
                        let (mut full, mut fatal) = (Vec::new(), None);
                        // Cut before a commit that would overflow the batch, so batches stay
                        // within batch_rows unless one commit alone has more files.
                        let limit = self.cfg.batch_rows;
                        if rows.rows() > 0 && rows.rows() + c.files.len() > limit {
                            match rows.finish(org, &self.ctx) {
                                Ok(b) => {
                                    self.inflight.fetch_add(1, Ordering::SeqCst);
                                    full.push(b)
                                }
                                Err(e) => fatal = Some(e),
                            }
                        }
                        let n = rows.append_commit(org, &r.name, &c, &self.ctx)?;
                        let full_now =
                            rows.rows() >= limit || rows.text_bytes() >= MAX_BATCH_TEXT_BYTES;
                        if fatal.is_none() && full_now {
                            match rows.finish(org, &self.ctx) {
                                Ok(b) => {
                                    self.inflight.fetch_add(1, Ordering::SeqCst);
                                    full.push(b)
                                }
                                Err(e) => fatal = Some(e),
                            }
                        }
                        Ok(PageOut {
                            full,
                            fatal,
                            rows: n as u64,
                            extra: (),
                        })
                    })
                    .await
                    .map_err(Stop::of_sub_resource)?;
                match self.forward(CommitFile, org, got).await? {
                    Some(n) => url = n,
                    None => break,
                }
            }
        }
        Ok(())
    }
}

/// The commit streams follow the default branch's head. Once a run has recorded it,
/// the next asks `commits?per_page=1` conditionally (304: the branch did not move, no
/// quota) and reads what is new with compare `{old head}...{new head}`: every commit
/// reachable from the new head and not from the old, whatever its dates, so a merged
/// branch's old-dated commits are read too, each once. Without a recorded head (first
/// run, state of an earlier version), or when the old head is gone (a force-push; compare
/// answers 404), commits are read by date as `commits` does, and the head recorded.
impl Run<'_> {
    async fn branch_commits(
        &self,
        a: &Accs,
        r: &RepoRef,
        key: &str,
        head: &mut Option<BranchHead>,
    ) -> std::result::Result<Cursors, Stop> {
        let olds = [
            (Commit, self.cursor(Commit, key)),
            (CommitFile, self.cursor(CommitFile, key)),
        ];
        let unchanged = || -> Cursors {
            olds.iter()
                .filter(|(k, _)| self.want(*k))
                .map(|(k, c)| (*k, Ok(c.clone())))
                .collect()
        };
        if let Some(saved) = self.saved_head(key) {
            let now = match self.probe_head(a, r, saved.etag.as_deref()).await? {
                Probe::Unchanged => {
                    *head = Some(saved);
                    return Ok(unchanged());
                }
                // Only an emptied repository lists nothing: keep the state as it is.
                Probe::NoCommits => return Ok(unchanged()),
                Probe::Head(h) => h,
            };
            if now.sha == saved.sha {
                *head = Some(now);
                return Ok(unchanged());
            }
            if let Some(res) = self
                .compare_commits(a, r, &olds, &saved.sha, &now.sha)
                .await?
            {
                *head = Some(now);
                return Ok(res);
            }
            self.event(ProgressEvent::Warning {
                stream: "commit".into(),
                message: format!(
                    "{key}: the default branch's previous head {} is gone (force-push?); \
                     reading commits by date from the saved cursor",
                    saved.sha
                ),
            });
            let res = self.commits(a, r, key, &mut None).await?;
            *head = Some(now);
            return Ok(res);
        }
        let mut listed = None;
        let res = self.commits(a, r, key, &mut listed).await?;
        // A repository with commits (listed now, or before when the list answered 304)
        // records its head. The head the list started from is kept when the branch moved
        // meanwhile (without an ETag, so the next run reads the difference).
        let had = olds.iter().any(|(_, c)| c.cursor.is_some());
        if res.iter().any(|(_, r)| r.is_ok()) && (listed.is_some() || had) {
            if let Probe::Head(now) = self.probe_head(a, r, None).await? {
                *head = Some(match listed {
                    Some(sha) if sha != now.sha => BranchHead { sha, etag: None },
                    _ => now,
                });
            }
        }
        Ok(res)
    }

    /// The head every wanted commit stream recorded, when they agree.
    fn saved_head(&self, key: &str) -> Option<BranchHead> {
        let heads: Vec<Option<&BranchHead>> = [Commit, CommitFile]
            .into_iter()
            .filter(|k| self.want(*k))
            .map(|k| self.old.get(&k).and_then(|s| s.heads.get(key)))
            .collect();
        let first = (*heads.first()?)?;
        heads
            .iter()
            .all(|h| h.is_some_and(|h| h.sha == first.sha))
            .then(|| BranchHead {
                sha: first.sha.clone(),
                etag: heads
                    .iter()
                    .all(|h| h.is_some_and(|h| h.etag == first.etag))
                    .then(|| first.etag.clone())
                    .flatten(),
            })
    }

    /// `GET .../commits?per_page=1`: the default branch's head (its newest commit).
    async fn probe_head(
        &self,
        a: &Accs,
        r: &RepoRef,
        etag: Option<&str>,
    ) -> std::result::Result<Probe, Stop> {
        let label = if self.want(Commit) {
            "commit"
        } else {
            "commit_file"
        };
        let url = self.url(&["repos", &a.org, &r.name, "commits"], "per_page=1");
        let got = self
            .client
            .get(label, &url, etag, |body| {
                let items = parse_page::<CommitItem>(body, false)?;
                Ok(items.first().map(|(c, _)| c.sha.to_string()))
            })
            .await;
        let got = match got {
            // A repository emptied since its head was recorded (deleted and created again).
            Err(HttpError::Conflict(_)) => return Ok(Probe::NoCommits),
            other => other?,
        };
        Ok(match got {
            Fetched::NotModified => Probe::Unchanged,
            Fetched::Page { data, etag, .. } => match data {
                Some(sha) => Probe::Head(BranchHead { sha, etag }),
                None => Probe::NoCommits,
            },
        })
    }

    /// Commits reachable from `head` and not from `base` (compare, pages of 100, oldest
    /// first), all yielded with their files. None when compare answers 404 on its first
    /// page (`base` no longer exists).
    async fn compare_commits(
        &self,
        a: &Accs,
        r: &RepoRef,
        olds: &[(StreamKind, RepoCursor); 2],
        base: &str,
        head: &str,
    ) -> std::result::Result<Option<Cursors>, Stop> {
        let org = a.org.as_str();
        let (cm_want, cf_want) = (self.want(Commit), self.want(CommitFile));
        let label = if cm_want { "commit" } else { "commit_file" };
        let basehead = format!("{base}...{head}");
        let mut url = self.url(
            &["repos", org, &r.name, "compare", &basehead],
            "per_page=100",
        );
        let (mut first, mut max, mut cf_err) = (true, None, None::<String>);
        loop {
            let got = self
                .client
                .get(label, &url, None, |body| {
                    let page: ComparePage =
                        serde_json::from_slice(body).map_err(|e| format!("compare answer: {e}"))?;
                    let items = parse_page::<CommitItem>(
                        page.commits.get().as_bytes(),
                        self.ctx.include_raw,
                    )?;
                    let dates = items
                        .iter()
                        .map(|(c, _)| c.dates())
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    let rows = items.iter().zip(&dates).filter(|_| cm_want);
                    let (full, fatal, n) = self.fill(&a.cm, org, rows, |b, ((c, raw), d)| {
                        b.append(org, &r.name, c, *d, *raw)
                    });
                    let targets: Vec<(String, Option<i64>)> = items
                        .iter()
                        .zip(&dates)
                        .filter(|_| cf_want)
                        .map(|((c, _), d)| (c.sha.to_string(), d.1))
                        .collect();
                    Ok(PageOut {
                        full,
                        fatal,
                        rows: n,
                        extra: (dates.iter().filter_map(|d| d.1).max(), targets),
                    })
                })
                .await;
            let got = match got {
                Err(HttpError::NotFound(_)) if first => return Ok(None),
                other => other.map_err(Stop::of_sub_resource)?,
            };
            let Fetched::Page {
                data, next, turn, ..
            } = got
            else {
                break;
            };
            first = false;
            let (page_max, targets) = self.deliver(Commit, org, data, turn).await?;
            max = max_opt(max, page_max);
            if cf_want && cf_err.is_none() {
                match self.files(a, r, &targets).await {
                    Ok(()) => {}
                    Err(Stop::Failed(m)) => cf_err = Some(m),
                    Err(e) => return Err(e),
                }
            }
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        let res = olds
            .iter()
            .filter(|(k, _)| self.want(*k))
            .map(|(k, old)| {
                let c = RepoCursor {
                    cursor: max_opt(old.cursor_us(), max).and_then(us_to_time),
                    ..old.clone()
                };
                match (&cf_err, k) {
                    (Some(m), CommitFile) => (*k, Err(m.clone())),
                    _ => (*k, Ok(c)),
                }
            })
            .collect();
        Ok(Some(res))
    }
}

/// A compare answer: its commits are read like a commits list; its files are not used
/// (the files of each commit are read one by one, as for any commit).
#[derive(serde::Deserialize)]
struct ComparePage<'a> {
    #[serde(borrow)]
    commits: &'a serde_json::value::RawValue,
}

/// The deployment stream. GitHub lists deployments newest first (by id, i.e. creation)
/// and a deployment's status changes after it was created (queued → in_progress →
/// success, later inactive), which the list does not reflect. So:
/// * the cursor is the newest `created_at` read;
/// * deployments created after the cursor (minus the overlap), and every deployment
///   created within `deployment_status_window_days` of the run's start, are yielded with
///   their latest status (one statuses request each); paging stops after the first page
///   reaching a deployment older than both;
/// * the first page is conditional when the cursor is older than the window, or when
///   there is no cursor yet (a repository without deployments): then nothing known needs
///   its status re-checked and a 304 really means "nothing new".
impl Run<'_> {
    async fn deployments(
        &self,
        a: &Accs,
        r: &RepoRef,
        key: &str,
    ) -> std::result::Result<RepoCursor, Stop> {
        let org = a.org.as_str();
        let old = self.cursor(Deployment, key);
        let window_us =
            i64::from(self.cfg.deployment_status_window_days).saturating_mul(86_400_000_000);
        let window_start = self.ctx.ingested_at_us.saturating_sub(window_us);
        let bound = match old.cursor_us() {
            Some(_) => self.cut(&old).map(|c| c.min(window_start)),
            None => self.floor_us,
        };
        // Without a cursor nothing was yielded (no deployments, or none after the first
        // run's floor), so nothing needs a re-check either.
        let etag = match old.cursor_us() {
            Some(c) if c >= window_start => None,
            _ => old.etag.clone(),
        };
        let mut url = self.url(&["repos", org, &r.name, "deployments"], "per_page=100");
        let (mut first, mut new_etag, mut max) = (true, None, old.cursor_us());
        loop {
            let got = self
                .client
                .get(
                    "deployment",
                    &url,
                    if first { etag.as_deref() } else { None },
                    |body| {
                        let items = parse_deployments(body, self.ctx.include_raw)?;
                        // A short page is not the end: only the Link header says so.
                        let stop = bound.is_some_and(|b| items.iter().any(|d| d.created < b));
                        let keep: Vec<_> = items
                            .into_iter()
                            .filter(|d| bound.is_none_or(|b| d.created >= b))
                            .collect();
                        Ok((stop, keep))
                    },
                )
                .await?;
            let Fetched::Page {
                data,
                etag,
                next,
                turn,
            } = got
            else {
                return Ok(old);
            };
            // Each deployment's status is a request of its own, which needs the turn, and
            // the rows are built after them: give it up now (a field left in `got` would
            // only be dropped at the end of the iteration).
            drop(turn);
            if first {
                new_etag = etag;
            }
            let (stop, keep) = data;
            let mut rows = Vec::with_capacity(keep.len());
            for d in keep {
                let s = self.deployment_status(org, r, d.id).await?;
                rows.push((d, s));
            }
            max = max_opt(max, rows.iter().map(|(d, _)| d.created).max());
            let (full, fatal, n) = self.fill(&a.dp, org, rows.iter(), |b, (d, s)| {
                b.append(org, &r.name, d, s.as_ref())
            });
            let page = PageOut {
                full,
                fatal,
                rows: n,
                extra: (),
            };
            self.deliver(Deployment, org, page, Turn::none()).await?;
            match next {
                Some(n) if !stop => url = n,
                _ => break,
            }
            first = false;
        }
        Ok(RepoCursor {
            cursor: max.and_then(us_to_time),
            etag: new_etag,
            since: None,
        })
    }

    /// The latest status of one deployment, from the first statuses page (GitHub lists
    /// them newest first). A 404 (deployment deleted meanwhile) fails the stream for the
    /// repository, like a vanished PR's reviews; the next run will not list it.
    async fn deployment_status(
        &self,
        org: &str,
        r: &RepoRef,
        id: i64,
    ) -> std::result::Result<Option<LatestStatus>, Stop> {
        let id = id.to_string();
        let segs = ["repos", org, &r.name, "deployments", &id, "statuses"];
        let url = self.url(&segs, "per_page=100");
        let got = self
            .client
            .get("deployment", &url, None, latest_status)
            .await
            .map_err(Stop::of_sub_resource)?;
        match got {
            Fetched::Page { data, .. } => Ok(data),
            Fetched::NotModified => Ok(None),
        }
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
