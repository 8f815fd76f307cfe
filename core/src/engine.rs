//! The run engine behind `flowctl apply`: source → staging sink → warehouse loader,
//! streaming through a bounded channel so fetching and writing overlap and memory stays
//! flat, then per stream: load (COPY → MERGE → TRUNCATE), commit state, clean up.
//!
//! Guarantees: one batch id and one `_INGESTED_AT` per run; a stream's state is committed
//! only after its MERGE succeeded; a failing stream does not throw away the others.

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
    pub orgs: Vec<String>,
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
}

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
    fn new(bars: bool) -> Self {
        Tracker {
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

/// One files-and-rows tally per stream, built while staging.
#[derive(Default)]
struct Staged {
    files: Vec<StagedFile>,
    rows: u64,
}

/// Run a pipeline once.
pub async fn run(
    pipeline: &str,
    plugins: &Plugins,
    state_store: &StateStore,
    opts: &RunOptions,
) -> Result<RunSummary> {
    let started = Instant::now();
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
    );
    let result = match opts.cancel.clone() {
        Some(mut cancel) => {
            tokio::select! {
                r = work => r,
                _ = cancel.wait_for(|c| *c) => Err(PluginError::other(
                    "interrupted: work in flight was cancelled; streams not yet loaded keep \
                     their previous state and the next run picks them up",
                )),
            }
        }
        None => work.await,
    };
    lease.release().await;
    let (mut summaries, warnings, quota) = result?;
    summaries.sort_by_key(|s| {
        streams
            .iter()
            .position(|i| i.name == s.stream)
            .unwrap_or(usize::MAX)
    });
    let ok = summaries.iter().all(|s| s.error.is_none());
    Ok(RunSummary {
        pipeline: pipeline.to_string(),
        batch_id,
        ingested_at: ingested_at.to_rfc3339(),
        shard: opts.shard.map(|s| format!("{}/{}", s.index, s.count)),
        ok,
        streams: summaries,
        warnings,
        quota,
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
) -> Result<(Vec<StreamSummary>, Vec<String>, Vec<QuotaSummary>)> {
    let state = state_store.load(pipeline, opts.shard).await?;
    let tracker = Arc::new(Tracker::new(opts.progress_bars));

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
        only_orgs: opts.orgs.clone(),
        shard: opts.shard,
        progress: tracker.clone(),
    };

    let stream_starts: HashMap<String, Instant> = readable
        .iter()
        .map(|s| (s.name.clone(), Instant::now()))
        .collect();
    let (staged, outcome) = read_and_stage(
        plugins,
        &readable,
        request,
        batch_id,
        ingested_at,
        opts.channel_batches.max(2),
        &tracker,
    )
    .await;

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

    let (mut staged, outcome) = match (staged, outcome) {
        (Ok(staged), Ok(outcome)) => (staged, outcome),
        (Err(e), _) | (_, Err(e)) => {
            tracker.finish();
            return Err(e);
        }
    };

    // Tables load concurrently when the warehouse allows it (each stream's state is
    // committed right after its own load, under the lock); summaries keep stream order.
    let state = tokio::sync::Mutex::new(state);
    let load = Load {
        pipeline,
        plugins,
        state_store,
        opts,
        location,
        batch_id,
        tracker: &tracker,
    };
    let loads: Vec<futures::future::BoxFuture<'_, StreamSummary>> = readable
        .into_iter()
        .map(|info| {
            let stream_started = stream_starts
                .get(&info.name)
                .copied()
                .unwrap_or_else(Instant::now);
            let staged_stream = staged.remove(&info.name).unwrap_or_default();
            let result = outcome.streams.get(&info.name).cloned();
            let (state, tracker, load) = (&state, &tracker, &load);
            async move {
                let counters = tracker.snapshot(&info.name);
                let mut summary = StreamSummary {
                    stream: info.name.clone(),
                    table: info.table.clone(),
                    status: "ok".into(),
                    requests: counters.requests,
                    not_modified: counters.not_modified,
                    pages: counters.pages,
                    rows: staged_stream.rows,
                    files: staged_stream.files.len() as u64,
                    bytes: staged_stream.files.iter().map(|f| f.bytes).sum(),
                    rate_limit_wait_seconds: counters.wait_seconds,
                    ..Default::default()
                };
                let result = result.unwrap_or_else(|| StreamResult::Failed {
                    error: "the source returned no result for this stream".into(),
                });
                match result {
                    StreamResult::Failed { error } => {
                        summary.status = "failed".into();
                        summary.error = Some(error);
                        // Its files are not loaded and its state does not advance; the next
                        // run reads the same range again, so the files are never used.
                        discard_unloaded(plugins, tracker, &info.name, &staged_stream.files).await;
                    }
                    StreamResult::Done { state: cursor } => {
                        match load.run(state, info, &staged_stream.files, cursor).await {
                            Ok(stats) => {
                                summary.rows_loaded = stats.rows_loaded;
                                summary.inserted = stats.inserted;
                                summary.updated = stats.updated;
                                summary.statements = stats.statements;
                            }
                            Err(e) => {
                                summary.status = "failed".into();
                                summary.error = Some(e.to_string());
                                discard_unloaded(
                                    plugins,
                                    tracker,
                                    &info.name,
                                    &staged_stream.files,
                                )
                                .await;
                            }
                        }
                    }
                }
                summary.duration_ms = stream_started.elapsed().as_millis() as u64;
                summary
            }
            .boxed()
        })
        .collect();
    summaries.extend(
        futures::stream::iter(loads)
            .buffered(concurrency)
            .collect::<Vec<_>>()
            .await,
    );
    tracker.finish();
    let warnings = lock(&tracker.warnings).clone();
    let quota = lock(&tracker.quota).clone();
    Ok((summaries, warnings, quota))
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

/// What loading one stream's files needs besides the stream itself.
struct Load<'a> {
    pipeline: &'a str,
    plugins: &'a Plugins,
    state_store: &'a StateStore,
    opts: &'a RunOptions,
    location: &'a StagingLocation,
    batch_id: &'a str,
    tracker: &'a Tracker,
}

impl Load<'_> {
    /// Loads `files` into the stream's table, then commits the stream's cursor (the
    /// shared state is locked only for that commit, so other tables keep loading).
    async fn run(
        &self,
        state: &tokio::sync::Mutex<PipelineState>,
        info: &StreamInfo,
        files: &[StagedFile],
        cursor: serde_json::Value,
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
        {
            let mut state = state.lock().await;
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
                "done: {} inserted, {} updated",
                stats.inserted, stats.updated
            ),
        );
        Ok(stats)
    }
}

type StageOutput = (Result<HashMap<String, Staged>>, Result<ReadOutcome>);

/// Finish the writers whose (stream, org) key matches, moving their files into `out`. Stops
/// at the first failure; the writers not yet finished stay in `writers` (to be aborted).
async fn finish_writers(
    writers: &mut HashMap<(String, String), Box<dyn StagedWriter>>,
    matches: impl Fn(&(String, String)) -> bool,
    tracker: &Tracker,
    out: &mut HashMap<String, Staged>,
) -> Result<()> {
    let keys: Vec<(String, String)> = writers.keys().filter(|k| matches(k)).cloned().collect();
    for key in keys {
        let Some(w) = writers.remove(&key) else {
            continue;
        };
        let (stream, org) = key;
        tracker.say(&stream, format!("finishing staged files for org {org}"));
        let files = w.finish().await?;
        out.entry(stream).or_default().files.extend(files);
    }
    Ok(())
}

/// Run the source and the staging writers concurrently over a bounded channel.
async fn read_and_stage(
    plugins: &Plugins,
    streams: &[&StreamInfo],
    request: ReadRequest,
    batch_id: &str,
    ingested_at: chrono::DateTime<Utc>,
    capacity: usize,
    tracker: &Arc<Tracker>,
) -> StageOutput {
    let (tx, mut rx) = crate::plugin::batch_channel(capacity);
    let schemas: HashMap<String, &StreamInfo> =
        streams.iter().map(|s| (s.name.clone(), *s)).collect();
    let date = ingested_at.date_naive();

    let reader = plugins.source.read(request, tx);
    let writer = async {
        let mut writers: HashMap<(String, String), Box<dyn StagedWriter>> = HashMap::new();
        let mut rows: HashMap<String, u64> = HashMap::new();
        let mut out: HashMap<String, Staged> = HashMap::new();
        // Orgs the source declared done: their writers are finished, and a later batch
        // for one would reuse its file names.
        let mut done_orgs: HashSet<String> = HashSet::new();
        let mut failure: Option<PluginError> = None;
        while let Some(msg) = rx.recv_message().await {
            if failure.is_some() {
                continue; // drain so the source is not blocked; it will see the result
            }
            let tb = match msg {
                SourceMessage::Batch(tb) => tb,
                SourceMessage::OrgDone(org) => {
                    // Complete this org's files now: their open row groups and upload
                    // buffers would otherwise stay in memory until the whole read ends.
                    if let Err(e) =
                        finish_writers(&mut writers, |k| k.1 == org, tracker, &mut out).await
                    {
                        failure = Some(e);
                    }
                    done_orgs.insert(org);
                    continue;
                }
            };
            let Some(info) = schemas.get(&tb.stream) else {
                failure = Some(PluginError::other(format!(
                    "source sent a batch for stream `{}`, which was not requested",
                    tb.stream
                )));
                continue;
            };
            if done_orgs.contains(&tb.org) {
                failure = Some(PluginError::other(format!(
                    "source sent a batch for stream `{}` of org `{}` after declaring the org done",
                    tb.stream, tb.org
                )));
                continue;
            }
            let key = (tb.stream.clone(), tb.org.clone());
            if !writers.contains_key(&key) {
                let target = StageTarget {
                    table: info.table.to_ascii_lowercase(),
                    org: tb.org.clone(),
                    date,
                    batch_id: batch_id.to_string(),
                    schema: info.schema.clone(),
                };
                match plugins.staging.writer(target).await {
                    Ok(w) => {
                        writers.insert(key.clone(), w);
                    }
                    Err(e) => {
                        failure = Some(e);
                        continue;
                    }
                }
            }
            if let Some(w) = writers.get_mut(&key) {
                if let Err(e) = w.write(&tb.batch).await {
                    failure = Some(PluginError::external(format!(
                        "staging {} for org {}: {e}",
                        info.table, tb.org
                    )));
                    continue;
                }
                *rows.entry(tb.stream.clone()).or_default() += tb.batch.num_rows() as u64;
            }
        }
        if failure.is_none() {
            if let Err(e) = finish_writers(&mut writers, |_| true, tracker, &mut out).await {
                failure = Some(e);
            }
        }
        if let Some(e) = failure {
            for (_, w) in writers {
                w.abort().await;
            }
            // Files of orgs completed before the failure will never load: they go the way
            // of a failed stream's files.
            for (stream, staged) in &out {
                discard_unloaded(plugins, tracker, stream, &staged.files).await;
            }
            return Err(e);
        }
        for (stream, n) in rows {
            out.entry(stream).or_default().rows = n;
        }
        Ok(out)
    };
    let (outcome, staged) = tokio::join!(reader, writer);
    (staged, outcome)
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
