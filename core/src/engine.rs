//! The run engine behind `flowctl apply`: source → staging sink → warehouse loader,
//! streaming through a bounded channel so fetching and writing overlap and memory stays
//! flat; per stream: load (COPY → MERGE → TRUNCATE), commit state, clean up. A long run
//! does this at checkpoints as it goes (every `checkpoint_interval`, before a long
//! rate-limit wait) and once more at the end, also when its deadline stops the read.
//!
//! Guarantees: one batch id and one `_INGESTED_AT` per run; a stream's state is committed
//! only after the MERGE of every file holding rows it covers succeeded; a failing stream
//! does not throw away the others, nor the units of its own that finished.

use crate::plugin::*;
use crate::progress::{ProgressEvent, ProgressSink};
use crate::state::{Lease, PipelineState, StateStore, StreamState};
use crate::{PluginError, Result};
use chrono::Utc;
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The three plugins of a pipeline, built from a spec.
pub struct Plugins {
    pub source: Box<dyn Source>,
    pub staging: Box<dyn StagingSink>,
    pub warehouse: Box<dyn WarehouseLoader>,
}

/// Options of one run (from CLI flags).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub streams: Vec<String>,
    /// Only these partitions of the source (GitHub: orgs); empty: all.
    pub partitions: Vec<String>,
    pub full_refresh: bool,
    pub shard: Option<Shard>,
    /// Wait for another run's lease instead of failing (up to this long).
    pub wait_for_lease: Option<Duration>,
    pub lease_ttl: Option<Duration>,
    /// Show progress bars (stderr is a terminal).
    pub progress_bars: bool,
    /// Bounded channel size between source and staging, in batches.
    pub channel_batches: usize,
    /// Flips to `true` to interrupt the run (Ctrl-C): work in flight is dropped (a
    /// warehouse statement being polled is cancelled), no state is committed for streams
    /// not yet loaded, and the lease is released.
    pub cancel: Option<tokio::sync::watch::Receiver<bool>>,
    /// Load and commit at least this often (None: [`DEFAULT_CHECKPOINT_INTERVAL`]; zero:
    /// at every checkpoint the source offers).
    pub checkpoint_interval: Option<Duration>,
    /// Stop reading this long after the start, load and commit what is complete, and
    /// end the run with `complete: false`.
    pub max_duration: Option<Duration>,
}

/// How often a run loads and commits what it has read when the spec does not say.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// A rate-limit wait this long (or as long as the checkpoint interval, if shorter) starts
/// a checkpoint: the source is idle, so loading then costs no reading time.
pub const CHECKPOINT_BEFORE_WAIT: Duration = Duration::from_secs(60);

/// Per-stream figures for the summary table and `--output json`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamSummary {
    pub stream: String,
    pub table: String,
    pub status: String,
    pub error: Option<String>,
    pub requests: u64,
    pub not_modified: u64,
    pub pages: u64,
    pub rows: u64,
    pub files: u64,
    pub bytes: u64,
    pub rows_loaded: u64,
    pub inserted: u64,
    pub updated: u64,
    pub statements: u64,
    pub rate_limit_wait_seconds: u64,
    pub duration_ms: u64,
}

/// The result of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub pipeline: String,
    pub batch_id: String,
    pub ingested_at: String,
    pub shard: Option<String>,
    pub ok: bool,
    /// False when the run stopped at its deadline (`--max-duration`) or a stream failed:
    /// a next run has more to read.
    pub complete: bool,
    /// Checkpoints taken before the end of the run (each: load, then commit).
    pub checkpoints: u64,
    pub streams: Vec<StreamSummary>,
    pub warnings: Vec<String>,
    /// Rate quota per source credential (token, App installation).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quota: Vec<QuotaSummary>,
    pub duration_ms: u64,
}

/// One credential's quota figures, from [`ProgressEvent::Quota`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct QuotaSummary {
    pub credential: String,
    /// Requests this run that counted against the quota.
    pub used: u64,
    pub remaining: Option<u64>,
    pub limit: Option<u64>,
    pub resets_at: Option<String>,
}

impl RunSummary {
    /// Names of the streams that failed, with their errors.
    pub fn failures(&self) -> Vec<(String, String)> {
        self.streams
            .iter()
            .filter_map(|s| s.error.clone().map(|e| (s.stream.clone(), e)))
            .collect()
    }

    /// A fixed-width table for terminals and logs.
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{:<22} {:>6} {:>8} {:>5} {:>9} {:>6} {:>11} {:>9} {:>8} {:>9}\n",
            "stream",
            "status",
            "requests",
            "304s",
            "rows",
            "files",
            "bytes",
            "inserted",
            "updated",
            "duration"
        ));
        for s in &self.streams {
            out.push_str(&format!(
                "{:<22} {:>6} {:>8} {:>5} {:>9} {:>6} {:>11} {:>9} {:>8} {:>8.1}s\n",
                s.stream,
                s.status,
                s.requests,
                s.not_modified,
                s.rows,
                s.files,
                s.bytes,
                s.inserted,
                s.updated,
                s.duration_ms as f64 / 1000.0
            ));
        }
        for q in &self.quota {
            let left = match (q.remaining, q.limit) {
                (Some(r), Some(l)) => format!("{r} of {l} left"),
                (Some(r), None) => format!("{r} left"),
                _ => "left unknown".to_string(),
            };
            let reset = q
                .resets_at
                .as_ref()
                .map(|t| format!(", resets at {t}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "quota {}: {} requests used, {left}{reset}\n",
                q.credential, q.used
            ));
        }
        out
    }
}

/// Counts progress events per stream and mirrors them to bars or log lines.
struct Tracker {
    counters: Mutex<HashMap<String, Counters>>,
    bars: Option<Bars>,
    warnings: Mutex<Vec<String>>,
    quota: Mutex<Vec<QuotaSummary>>,
    /// Signalled when the source starts a rate-limit wait of `wait_threshold` seconds or more.
    long_wait: tokio::sync::Notify,
    wait_threshold: u64,
}

#[derive(Default, Clone)]
struct Counters {
    requests: u64,
    not_modified: u64,
    pages: u64,
    rows: u64,
    wait_seconds: u64,
}

struct Bars {
    multi: indicatif::MultiProgress,
    per_stream: Mutex<HashMap<String, indicatif::ProgressBar>>,
}

impl Bars {
    fn bar(&self, stream: &str) -> indicatif::ProgressBar {
        let mut map = match self.per_stream.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.entry(stream.to_string())
            .or_insert_with(|| {
                let pb = self.multi.add(indicatif::ProgressBar::new_spinner());
                let style = indicatif::ProgressStyle::with_template(
                    "{spinner} {prefix:<20} {wide_msg} [{elapsed}]",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
                pb.set_style(style);
                pb.set_prefix(stream.to_string());
                pb.enable_steady_tick(Duration::from_millis(200));
                pb
            })
            .clone()
    }
}

impl Tracker {
    fn new(bars: bool, wait_threshold: Duration) -> Self {
        Tracker {
            long_wait: tokio::sync::Notify::new(),
            wait_threshold: wait_threshold.as_secs(),
            counters: Mutex::new(HashMap::new()),
            bars: bars.then(|| Bars {
                multi: indicatif::MultiProgress::new(),
                per_stream: Mutex::new(HashMap::new()),
            }),
            warnings: Mutex::new(Vec::new()),
            quota: Mutex::new(Vec::new()),
        }
    }

    fn snapshot(&self, stream: &str) -> Counters {
        lock(&self.counters)
            .get(stream)
            .cloned()
            .unwrap_or_default()
    }

    fn say(&self, stream: &str, msg: String) {
        match &self.bars {
            Some(b) => b.bar(stream).set_message(msg),
            None => tracing::info!(stream, "{msg}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bars {
            for pb in lock(&b.per_stream).values() {
                pb.finish();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl ProgressSink for Tracker {
    fn event(&self, event: ProgressEvent) {
        match event {
            ProgressEvent::Request { stream } => {
                lock(&self.counters).entry(stream).or_default().requests += 1;
            }
            ProgressEvent::NotModified { stream } => {
                lock(&self.counters).entry(stream).or_default().not_modified += 1;
            }
            ProgressEvent::Page { stream, rows } => {
                let c = {
                    let mut map = lock(&self.counters);
                    let c = map.entry(stream.clone()).or_default();
                    c.pages += 1;
                    c.rows += rows;
                    c.clone()
                };
                let msg = format!(
                    "{} pages, {} rows, {} requests ({} not modified)",
                    c.pages, c.rows, c.requests, c.not_modified
                );
                match &self.bars {
                    Some(b) => b.bar(&stream).set_message(msg),
                    None => tracing::debug!(stream = %stream, "{msg}"),
                }
            }
            ProgressEvent::RateLimitWait {
                stream,
                seconds,
                reason,
            } => {
                {
                    let mut counters = lock(&self.counters);
                    let c = counters.entry(stream.clone()).or_default();
                    c.wait_seconds = c.wait_seconds.saturating_add(seconds);
                }
                if seconds >= self.wait_threshold {
                    self.long_wait.notify_one();
                }
                let msg = format!("rate limit: waiting {seconds}s ({reason})");
                match &self.bars {
                    Some(b) => b.bar(&stream).set_message(msg),
                    None => tracing::warn!(stream = %stream, "{msg}"),
                }
            }
            ProgressEvent::Warning { stream, message } => {
                tracing::warn!(stream = %stream, "{message}");
                lock(&self.warnings).push(format!("{stream}: {message}"));
            }
            ProgressEvent::Quota {
                credential,
                used,
                remaining,
                limit,
                resets_at,
            } => {
                tracing::info!("quota {credential}: {used} requests used, {remaining:?} left");
                let mut all = lock(&self.quota);
                // A later read with the same credential adds its requests.
                let before = all.iter().position(|q| q.credential == credential);
                let used = used + before.map_or(0, |i| all[i].used);
                let q = QuotaSummary {
                    credential,
                    used,
                    remaining,
                    limit,
                    resets_at,
                };
                match before {
                    Some(i) => all[i] = q,
                    None => all.push(q),
                }
            }
        }
    }
}

/// Where state lives for this pipeline: the spec's override or beside the staged data.
pub fn state_store_for(location: &StagingLocation) -> StateStore {
    StateStore::new(location.store.clone(), &location.root, &location.root_uri)
}

/// Run a pipeline once.
pub async fn run(
    pipeline: &str,
    plugins: &Plugins,
    state_store: &StateStore,
    opts: &RunOptions,
) -> Result<RunSummary> {
    let started = Instant::now();
    let deadline = opts.max_duration.map(|d| tokio::time::Instant::now() + d);
    let batch_id = uuid::Uuid::new_v4().to_string();
    let ingested_at = Utc::now();
    let location = plugins.staging.location()?;

    let streams = select_streams(plugins.source.streams(), &opts.streams)?;
    let ttl = opts.lease_ttl.unwrap_or(Duration::from_secs(6 * 3600));
    let lease: Lease = state_store
        .acquire_lease(pipeline, opts.shard, ttl, opts.wait_for_lease)
        .await?;
    let work = run_locked(
        pipeline,
        plugins,
        state_store,
        opts,
        &streams,
        &location,
        &batch_id,
        ingested_at,
        deadline,
    );
    let result = match opts.cancel.clone() {
        Some(mut cancel) => {
            tokio::select! {
                r = work => r,
                _ = cancel.wait_for(|c| *c) => Err(PluginError::other(
                    "interrupted: work in flight was cancelled; streams keep the state of \
                     their last checkpoint and the next run picks up from there",
                )),
            }
        }
        None => work.await,
    };
    lease.release().await;
    let mut done = result?;
    done.summaries.sort_by_key(|s| {
        streams
            .iter()
            .position(|i| i.name == s.stream)
            .unwrap_or(usize::MAX)
    });
    let ok = done.summaries.iter().all(|s| s.error.is_none());
    Ok(RunSummary {
        pipeline: pipeline.to_string(),
        batch_id,
        ingested_at: ingested_at.to_rfc3339(),
        shard: opts.shard.map(|s| format!("{}/{}", s.index, s.count)),
        ok,
        complete: ok && !done.stopped,
        checkpoints: done.checkpoints,
        streams: done.summaries,
        warnings: done.warnings,
        quota: done.quota,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// Keep the source's streams that the `--streams` filter names (all when empty).
fn select_streams(available: Vec<StreamInfo>, wanted: &[String]) -> Result<Vec<StreamInfo>> {
    if wanted.is_empty() {
        return Ok(available);
    }
    let names: Vec<&str> = available.iter().map(|s| s.name.as_str()).collect();
    for w in wanted {
        if !names.contains(&w.as_str()) {
            return Err(PluginError::config(format!(
                "--streams names `{w}`, which this pipeline does not read; its streams are: {}",
                names.join(", ")
            )));
        }
    }
    Ok(available
        .into_iter()
        .filter(|s| wanted.contains(&s.name))
        .collect())
}

/// What a run under the lease produced.
struct Finished {
    summaries: Vec<StreamSummary>,
    warnings: Vec<String>,
    /// The deadline stopped the read.
    stopped: bool,
    checkpoints: u64,
    quota: Vec<QuotaSummary>,
}

#[allow(clippy::too_many_arguments)]
async fn run_locked(
    pipeline: &str,
    plugins: &Plugins,
    state_store: &StateStore,
    opts: &RunOptions,
    streams: &[StreamInfo],
    location: &StagingLocation,
    batch_id: &str,
    ingested_at: chrono::DateTime<Utc>,
    deadline: Option<tokio::time::Instant>,
) -> Result<Finished> {
    let state = state_store.load(pipeline, opts.shard).await?;
    let interval = opts
        .checkpoint_interval
        .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL);
    let tracker = Arc::new(Tracker::new(
        opts.progress_bars,
        interval.min(CHECKPOINT_BEFORE_WAIT),
    ));

    // Tables first: a warehouse we cannot reach fails the run before any API call. As
    // many at once as the warehouse loads at once: on Snowflake each table is three or
    // more statements, each a network round trip and a turn in the warehouse's queue.
    // The futures are boxed and collected first so that they are `Send` whatever they
    // borrow (as the loads below).
    let concurrency = plugins.warehouse.max_concurrent_loads().max(1);
    let prepare: Vec<futures::future::BoxFuture<'_, Result<()>>> = streams
        .iter()
        .map(|s| {
            let table = TableSpec {
                name: s.table.clone(),
                schema: s.schema.clone(),
            };
            async move { plugins.warehouse.ensure_table(&table).await }.boxed()
        })
        .collect();
    let prepared: Vec<Result<()>> = futures::stream::iter(prepare)
        .buffered(concurrency)
        .collect()
        .await;
    let mut table_errors: BTreeMap<String, String> = BTreeMap::new();
    for (r, s) in prepared.into_iter().zip(streams) {
        if let Err(e) = r {
            table_errors.insert(s.name.clone(), format!("preparing table {}: {e}", s.table));
        }
    }
    if table_errors.len() == streams.len() && !streams.is_empty() {
        let (stream, err) = table_errors
            .iter()
            .next()
            .map(|(a, b)| (a.clone(), b.clone()))
            .unwrap_or_default();
        return Err(PluginError::external(format!("{stream}: {err}")));
    }
    let readable: Vec<&StreamInfo> = streams
        .iter()
        .filter(|s| !table_errors.contains_key(&s.name))
        .collect();

    let request = ReadRequest {
        streams: readable.iter().map(|s| s.name.clone()).collect(),
        state: if opts.full_refresh {
            BTreeMap::new()
        } else {
            state
                .streams
                .iter()
                .map(|(k, v)| (k.clone(), v.cursor.clone()))
                .collect()
        },
        batch_id: batch_id.to_string(),
        ingested_at,
        only_partitions: opts.partitions.clone(),
        shard: opts.shard,
        progress: tracker.clone(),
    };

    let stream_started = Instant::now();
    let ctx = Ctx {
        pipeline,
        plugins,
        state_store,
        opts,
        location,
        batch_id,
        ingested_at,
        date: ingested_at.date_naive(),
        partition_key: plugins.source.partition_key(),
        tracker: &tracker,
        state: tokio::sync::Mutex::new(state),
        infos: readable.iter().map(|s| (s.name.clone(), *s)).collect(),
        concurrency,
        interval,
    };
    let mut staging = Staging::default();
    let (tx, rx) = crate::plugin::batch_channel(opts.channel_batches.max(2));
    let (outcome, staged) = tokio::join!(
        plugins.source.read(request, tx),
        ctx.stage(&mut staging, rx, deadline)
    );
    let stopped = match staged {
        Ok(stopped) => stopped,
        Err(e) => {
            ctx.abandon(&mut staging).await;
            tracker.finish();
            return Err(e);
        }
    };

    // The end of the read is the last checkpoint: each stream's final state (or, for a
    // failed stream, the newest state it offered) commits after its files load.
    let source_error = outcome.as_ref().err().map(|e| e.to_string());
    let mut errors: HashMap<String, String> = HashMap::new();
    let mut last: Vec<(String, Option<serde_json::Value>)> = Vec::new();
    for info in &readable {
        let tally = staging.tallies.entry(info.name.clone()).or_default();
        let result = match &outcome {
            Ok(o) => o.streams.get(&info.name).cloned(),
            Err(e) => Some(StreamResult::Failed {
                error: e.to_string(),
            }),
        };
        let cursor = match result {
            Some(StreamResult::Done { state }) => Some(state),
            Some(StreamResult::Failed { error }) => {
                errors.insert(info.name.clone(), error);
                tally.offered.take()
            }
            None => {
                errors.insert(
                    info.name.clone(),
                    "the source returned no result for this stream".into(),
                );
                tally.offered.take()
            }
        };
        last.push((info.name.clone(), cursor));
    }
    if let Err(e) = ctx.finish_writers(&mut staging, |_| true).await {
        ctx.abandon(&mut staging).await;
        tracker.finish();
        return Err(e);
    }
    // A failed stream's files beyond its last committed state are never loaded: the next
    // run stages those rows again.
    for (name, cursor) in &last {
        if cursor.is_none() && errors.contains_key(name) {
            let files = std::mem::take(&mut staging.tally(name).pending);
            discard_unloaded(plugins, &tracker, name, &files).await;
        }
    }
    ctx.load_and_commit(&mut staging, last).await;

    let mut summaries = Vec::new();
    for (name, err) in &table_errors {
        let info = streams.iter().find(|s| &s.name == name);
        summaries.push(StreamSummary {
            stream: name.clone(),
            table: info.map(|i| i.table.clone()).unwrap_or_default(),
            status: "failed".into(),
            error: Some(err.clone()),
            ..Default::default()
        });
    }
    for info in &readable {
        let counters = tracker.snapshot(&info.name);
        let tally = staging.tally(&info.name);
        let error = tally.failed.clone().or_else(|| errors.remove(&info.name));
        summaries.push(StreamSummary {
            stream: info.name.clone(),
            table: info.table.clone(),
            status: if error.is_some() { "failed" } else { "ok" }.into(),
            error,
            requests: counters.requests,
            not_modified: counters.not_modified,
            pages: counters.pages,
            rows: tally.rows,
            files: tally.files,
            bytes: tally.bytes,
            rows_loaded: tally.stats.rows_loaded,
            inserted: tally.stats.inserted,
            updated: tally.stats.updated,
            statements: tally.stats.statements,
            rate_limit_wait_seconds: counters.wait_seconds,
            duration_ms: stream_started.elapsed().as_millis() as u64,
        });
    }
    tracker.finish();
    if let Some(e) = source_error {
        return Err(PluginError::external(e));
    }
    let warnings = lock(&tracker.warnings).clone();
    let quota = lock(&tracker.quota).clone();
    Ok(Finished {
        summaries,
        warnings,
        stopped,
        quota,
        checkpoints: u64::from(staging.checkpoints),
    })
}

/// A failed stream's staged files: the next run stages its rows again, so nothing will
/// ever load these. They go the way of loaded files (`cleanup: delete_after_load`
/// deletes them; `keep` keeps them for inspection) instead of piling up in staging.
async fn discard_unloaded(
    plugins: &Plugins,
    tracker: &Tracker,
    stream: &str,
    files: &[StagedFile],
) {
    if files.is_empty() {
        return;
    }
    if let Err(e) = plugins.staging.after_load(files).await {
        tracker.event(ProgressEvent::Warning {
            stream: stream.to_string(),
            message: format!("cleanup of the failed stream's staged files failed: {e}"),
        });
    }
}

/// One stream's files, offered state and load figures over a run.
#[derive(Default)]
struct Tally {
    rows: u64,
    files: u64,
    bytes: u64,
    stats: LoadStats,
    /// Completed files not loaded yet.
    pending: Vec<StagedFile>,
    /// The newest state the source offered that is not committed yet.
    offered: Option<serde_json::Value>,
    /// A load or commit failed: nothing more of this stream loads or commits in this run.
    failed: Option<String>,
}

/// The open writers and the per-stream tallies of a run.
#[derive(Default)]
struct Staging {
    writers: HashMap<(String, String), Box<dyn StagedWriter>>,
    tallies: HashMap<String, Tally>,
    /// Checkpoints taken so far; also tells apart the names of files opened after one.
    checkpoints: u32,
    /// Partitions the source declared done: their writers are finished, and a later
    /// batch for one would reuse its file names.
    done_partitions: HashSet<String>,
}

impl Staging {
    fn tally(&mut self, stream: &str) -> &mut Tally {
        self.tallies.entry(stream.to_string()).or_default()
    }
}

/// Everything staging and loading share during a run.
struct Ctx<'a> {
    pipeline: &'a str,
    plugins: &'a Plugins,
    state_store: &'a StateStore,
    opts: &'a RunOptions,
    location: &'a StagingLocation,
    batch_id: &'a str,
    ingested_at: chrono::DateTime<Utc>,
    date: chrono::NaiveDate,
    /// The source's word for a partition (`org`): staged paths and messages.
    partition_key: &'static str,
    tracker: &'a Tracker,
    state: tokio::sync::Mutex<PipelineState>,
    infos: HashMap<String, &'a StreamInfo>,
    concurrency: usize,
    interval: Duration,
}

impl Ctx<'_> {
    /// Stage what the source sends, taking checkpoints on the way, until the source is
    /// done. Returns whether the deadline stopped the read. On error the receiver is
    /// dropped, so the source's next send fails and it returns.
    async fn stage(
        &self,
        st: &mut Staging,
        mut rx: BatchReceiver,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<bool> {
        let mut stopped = false;
        let mut due = tokio::time::Instant::now() + self.interval;
        loop {
            // Deadline and checkpoints first: a source that always has a batch ready
            // must not starve them.
            let msg = tokio::select! {
                biased;
                _ = sleep_until(deadline), if !stopped => {
                    rx.request_stop();
                    stopped = true;
                    tracing::info!("deadline reached: stopping the read, then loading what is complete");
                    continue;
                }
                _ = self.tracker.long_wait.notified() => {
                    // Take in what the source sent before it began to wait.
                    while let Some(m) = rx.try_recv_message() {
                        self.handle(st, m).await?;
                    }
                    self.checkpoint(st, "before a rate-limit wait").await?;
                    due = tokio::time::Instant::now() + self.interval;
                    continue;
                }
                _ = tokio::time::sleep_until(due), if !self.interval.is_zero() => {
                    self.checkpoint(st, "checkpoint interval").await?;
                    due = tokio::time::Instant::now() + self.interval;
                    continue;
                }
                m = rx.recv_message() => match m {
                    Some(m) => m,
                    None => return Ok(stopped),
                },
            };
            let offered = matches!(msg, SourceMessage::Checkpoint { .. });
            self.handle(st, msg).await?;
            if offered && self.interval.is_zero() {
                self.checkpoint(st, "checkpoint offered").await?;
            }
        }
    }

    async fn handle(&self, st: &mut Staging, msg: SourceMessage) -> Result<()> {
        match msg {
            SourceMessage::Batch(tb) => self.write(st, tb).await,
            SourceMessage::PartitionDone(partition) => {
                // Complete this partition's files now: their open row groups and upload
                // buffers would otherwise stay in memory until the whole read ends.
                self.finish_writers(st, |k| k.1 == partition).await?;
                st.done_partitions.insert(partition);
                Ok(())
            }
            SourceMessage::Checkpoint { stream, state } => {
                if !self.infos.contains_key(&stream) {
                    return Err(PluginError::other(format!(
                        "source offered a checkpoint for stream `{stream}`, which was not requested"
                    )));
                }
                st.tally(&stream).offered = Some(state);
                Ok(())
            }
        }
    }

    async fn write(&self, st: &mut Staging, tb: TaggedBatch) -> Result<()> {
        let Some(info) = self.infos.get(&tb.stream) else {
            return Err(PluginError::other(format!(
                "source sent a batch for stream `{}`, which was not requested",
                tb.stream
            )));
        };
        let word = self.partition_key;
        if st.done_partitions.contains(&tb.partition) {
            return Err(PluginError::other(format!(
                "source sent a batch for stream `{}` of {word} `{}` after declaring the {word} done",
                tb.stream, tb.partition
            )));
        }
        let run = crate::meta::RunColumns {
            ingested_at: self.ingested_at,
            batch_id: self.batch_id,
            partition: &tb.partition,
        };
        let batch = crate::meta::stage_batch(&tb.stream, &info.schema, &tb.batch, &run)?;
        let key = (tb.stream.clone(), tb.partition.clone());
        if !st.writers.contains_key(&key) {
            // Files opened after a checkpoint get names of their own: the files of the
            // same table and partition loaded at the checkpoint had the first ones.
            let batch_id = match st.checkpoints {
                0 => self.batch_id.to_string(),
                n => format!("{}-{n}", self.batch_id),
            };
            let target = StageTarget {
                table: info.table.to_ascii_lowercase(),
                partition_key: self.partition_key,
                partition: tb.partition.clone(),
                date: self.date,
                batch_id,
                schema: info.schema.clone(),
            };
            let w = self.plugins.staging.writer(target).await?;
            st.writers.insert(key.clone(), w);
        }
        if let Some(w) = st.writers.get_mut(&key) {
            w.write(&batch).await.map_err(|e| {
                PluginError::external(format!(
                    "staging {} for {word} {}: {e}",
                    info.table, tb.partition
                ))
            })?;
            st.tally(&tb.stream).rows += batch.num_rows() as u64;
        }
        Ok(())
    }

    /// Finish the writers whose (stream, partition) key matches, adding their files to the
    /// stream's pending files. Stops at the first failure; the writers not yet finished
    /// stay in `st.writers` (to be aborted).
    async fn finish_writers(
        &self,
        st: &mut Staging,
        matches: impl Fn(&(String, String)) -> bool,
    ) -> Result<()> {
        let keys: Vec<(String, String)> =
            st.writers.keys().filter(|k| matches(k)).cloned().collect();
        for key in keys {
            let Some(w) = st.writers.remove(&key) else {
                continue;
            };
            let (stream, partition) = key;
            self.tracker.say(
                &stream,
                format!(
                    "finishing staged files for {} {partition}",
                    self.partition_key
                ),
            );
            let files = w.finish().await?;
            let tally = st.tally(&stream);
            tally.files += files.len() as u64;
            tally.bytes += files.iter().map(|f| f.bytes).sum::<u64>();
            tally.pending.extend(files);
        }
        Ok(())
    }

    /// A checkpoint: every stream with an offered state finishes its open files, loads
    /// its pending files and commits that state. Streams that offered nothing keep
    /// staging.
    async fn checkpoint(&self, st: &mut Staging, why: &str) -> Result<()> {
        let ready: Vec<String> = st
            .tallies
            .iter()
            .filter(|(_, t)| t.offered.is_some() && t.failed.is_none())
            .map(|(s, _)| s.clone())
            .collect();
        if ready.is_empty() {
            return Ok(());
        }
        self.finish_writers(st, |k| ready.contains(&k.0)).await?;
        let commits = ready
            .iter()
            .map(|s| (s.clone(), st.tally(s).offered.take()))
            .collect();
        st.checkpoints += 1;
        tracing::info!(
            "checkpoint {} ({why}): loading and committing {}",
            st.checkpoints,
            ready.join(", ")
        );
        self.load_and_commit(st, commits).await;
        Ok(())
    }

    /// Loads each stream's pending files, then commits its state when one is given (as
    /// many tables at once as the warehouse allows). A failure marks the stream failed.
    async fn load_and_commit(
        &self,
        st: &mut Staging,
        commits: Vec<(String, Option<serde_json::Value>)>,
    ) {
        let mut jobs = Vec::new();
        for (stream, cursor) in commits {
            let Some(info) = self.infos.get(&stream).copied() else {
                continue;
            };
            let tally = st.tally(&stream);
            let files = std::mem::take(&mut tally.pending);
            if tally.failed.is_some() {
                discard_unloaded(self.plugins, self.tracker, &stream, &files).await;
                continue;
            }
            if files.is_empty() && cursor.is_none() {
                continue;
            }
            jobs.push((info, files, cursor));
        }
        let loads: Vec<futures::future::BoxFuture<'_, (String, Result<LoadStats>)>> = jobs
            .into_iter()
            .map(|(info, files, cursor)| {
                async move {
                    let r = self.load(info, &files, cursor).await;
                    if r.is_err() {
                        discard_unloaded(self.plugins, self.tracker, &info.name, &files).await;
                    }
                    (info.name.clone(), r)
                }
                .boxed()
            })
            .collect();
        let done: Vec<(String, Result<LoadStats>)> = futures::stream::iter(loads)
            .buffered(self.concurrency)
            .collect()
            .await;
        for (stream, r) in done {
            let tally = st.tally(&stream);
            match r {
                Ok(s) => {
                    tally.stats.rows_loaded += s.rows_loaded;
                    tally.stats.inserted += s.inserted;
                    tally.stats.updated += s.updated;
                    tally.stats.statements += s.statements;
                }
                Err(e) => tally.failed = Some(e.to_string()),
            }
        }
    }

    /// Loads `files` into the stream's table, then commits `cursor` (the shared state is
    /// locked only for that commit, so other tables keep loading).
    async fn load(
        &self,
        info: &StreamInfo,
        files: &[StagedFile],
        cursor: Option<serde_json::Value>,
    ) -> Result<LoadStats> {
        let table = TableSpec {
            name: info.table.clone(),
            schema: info.schema.clone(),
        };
        let stats = if files.is_empty() {
            LoadStats::default()
        } else {
            self.tracker.say(
                &info.name,
                format!("loading {} files into {}", files.len(), info.table),
            );
            self.plugins
                .warehouse
                .load(&table, files, self.location)
                .await
                .map_err(|e| PluginError::external(format!("loading {}: {e}", info.table)))?
        };
        // Commit this stream's cursor only now that its rows are merged.
        if let Some(cursor) = cursor {
            let mut state = self.state.lock().await;
            state.streams.insert(
                info.name.clone(),
                StreamState {
                    committed_at: Utc::now(),
                    batch_id: self.batch_id.to_string(),
                    cursor,
                },
            );
            state.version = 1;
            state.pipeline = self.pipeline.to_string();
            self.state_store
                .save(self.pipeline, self.opts.shard, &state)
                .await
                .map_err(|e| PluginError::external(format!("committing state: {e}")))?;
        }
        if !files.is_empty() {
            if let Err(e) = self.plugins.staging.after_load(files).await {
                self.tracker.event(ProgressEvent::Warning {
                    stream: info.name.clone(),
                    message: format!("cleanup of staged files failed: {e}"),
                });
            }
        }
        self.tracker.say(
            &info.name,
            format!(
                "loaded: {} inserted, {} updated",
                stats.inserted, stats.updated
            ),
        );
        Ok(stats)
    }

    /// After a staging failure: abort the open writers; completed files that were not
    /// loaded go the way of a failed stream's files. Committed checkpoints stay.
    async fn abandon(&self, st: &mut Staging) {
        for (_, w) in st.writers.drain() {
            w.abort().await;
        }
        for (stream, tally) in st.tallies.iter_mut() {
            let files = std::mem::take(&mut tally.pending);
            discard_unloaded(self.plugins, self.tracker, stream, &files).await;
        }
    }
}

/// Sleeps until `at`, or forever when there is no deadline.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_stream_filter_is_a_clear_error() {
        let s = StreamInfo {
            name: "pull_request".into(),
            table: "PULL_REQUEST".into(),
            schema: Arc::new(arrow::datatypes::Schema::empty()),
            key_recipe: String::new(),
            cursor_field: None,
            description: String::new(),
            column_docs: BTreeMap::new(),
        };
        let err = select_streams(vec![s.clone()], &["pulls".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pulls") && err.contains("pull_request"),
            "{err}"
        );
        assert_eq!(
            select_streams(vec![s], &["pull_request".into()])
                .unwrap()
                .len(),
            1
        );
    }
}
