//! The run engine behind `flowctl apply`: source → staging sink → warehouse loader,
//! streaming through a bounded channel so fetching and writing overlap and memory stays
//! flat; per stream: load (COPY → MERGE → TRUNCATE), commit state, clean up. A long run
//! does this at checkpoints as it goes (every `checkpoint_interval`, before a long
//! rate-limit wait) and once more at the end, also when its deadline stops the read.
//!
//! Guarantees: one batch id and one `_INGESTED_AT` per run; a stream's state is committed
//! only after the MERGE of every file holding rows it covers succeeded; a failing stream
//! does not throw away the others, nor the units of its own that finished.
//!
//! The phases of a run, each in its own module around one [`Run`]: prepare the tables
//! ([`load`]), read and stage with checkpoints on the way ([`stage`]), load and commit
//! what the read ended with ([`load`]), and sum up ([`summary`]).

mod load;
mod stage;
mod summary;
mod tracker;

pub use summary::{QuotaSummary, RunSummary, StreamSummary};

use crate::plugin::*;
use crate::state::{Lease, StateStore};
use crate::{PluginError, Result};
use chrono::{DateTime, Utc};
use stage::{Read, Staging};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracker::Tracker;

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
    /// How a step that failed transiently is tried again.
    pub retries: Retries,
}

/// How often the engine tries a step again that failed transiently
/// ([`PluginError::retryable`]): preparing a table, opening a staged file, a table's load,
/// committing state. Each is safe to repeat: a load MERGEs by `_ROW_KEY` and updates only
/// with newer rows, so loading the same files again changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retries {
    /// Tries after the first (0: none).
    pub max: u32,
    /// The wait before the first retry, doubled for each next one ([`crate::retry::backoff`]).
    pub base: Duration,
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            max: 2,
            base: Duration::from_secs(2),
        }
    }
}

/// How often a run loads and commits what it has read when the spec does not say.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// A rate-limit wait this long (or as long as the checkpoint interval, if shorter) starts
/// a checkpoint: the source is idle, so loading then costs no reading time.
pub const CHECKPOINT_BEFORE_WAIT: Duration = Duration::from_secs(60);

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
    let run = Run::new(pipeline, plugins, state_store, opts)?;
    let ttl = opts.lease_ttl.unwrap_or(Duration::from_secs(6 * 3600));
    let lease: Lease = state_store
        .acquire_lease(pipeline, opts.shard, ttl, opts.wait_for_lease)
        .await?;
    let result = match opts.cancel.clone() {
        Some(mut cancel) => {
            tokio::select! {
                r = run.locked() => r,
                _ = cancel.wait_for(|c| *c) => Err(PluginError::other(
                    "interrupted: work in flight was cancelled; streams keep the state of \
                     their last checkpoint and the next run picks up from there",
                )),
            }
        }
        None => run.locked().await,
    };
    run.tracker.finish();
    lease.release().await;
    Ok(run.summary(result?, started))
}

/// One run of a pipeline: its plugins and options, its batch id and timestamp, the streams
/// it reads, and its progress. Every phase reads it.
struct Run<'a> {
    pipeline: &'a str,
    plugins: &'a Plugins,
    state_store: &'a StateStore,
    opts: &'a RunOptions,
    location: StagingLocation,
    /// The streams the run reads (the `--streams` filter applied), in the source's order.
    streams: Vec<StreamInfo>,
    /// The run's id: `_BATCH_ID` of every row, and the stem of staged file names.
    batch_id: String,
    /// `_INGESTED_AT` of every row.
    ingested_at: DateTime<Utc>,
    /// When the read stops (`--max-duration`).
    deadline: Option<tokio::time::Instant>,
    /// Load and commit at least this often (zero: at every checkpoint the source offers).
    interval: Duration,
    /// Tables prepared and loaded at once.
    concurrency: usize,
    /// The source's word for a partition (`org`): staged paths and messages.
    partition_key: &'static str,
    tracker: Arc<Tracker>,
}

impl<'a> Run<'a> {
    fn new(
        pipeline: &'a str,
        plugins: &'a Plugins,
        state_store: &'a StateStore,
        opts: &'a RunOptions,
    ) -> Result<Self> {
        let deadline = opts.max_duration.map(|d| tokio::time::Instant::now() + d);
        let location = plugins.staging.location()?;
        let streams = select_streams(plugins.source.streams(), &opts.streams)?;
        let interval = opts
            .checkpoint_interval
            .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL);
        let tracker = Tracker::new(opts.progress_bars, interval.min(CHECKPOINT_BEFORE_WAIT));
        Ok(Run {
            pipeline,
            plugins,
            state_store,
            opts,
            location,
            streams,
            batch_id: uuid::Uuid::new_v4().to_string(),
            ingested_at: Utc::now(),
            deadline,
            interval,
            concurrency: plugins.warehouse.max_concurrent_loads().max(1),
            partition_key: plugins.source.partition_key(),
            tracker: Arc::new(tracker),
        })
    }

    /// The run under the lease, phase by phase.
    async fn locked(&self) -> Result<summary::Finished> {
        let state = self
            .state_store
            .load(self.pipeline, self.opts.shard)
            .await?;
        let prepared = self.prepare_tables().await?;
        let request = self.request(&state, &prepared.readable);
        let read = Read::new(self, state, &prepared.readable);
        let mut staging = Staging::default();
        let read_started = Instant::now();
        let (outcome, stopped) = read.read(&mut staging, request).await?;
        let errors = read.end(&mut staging, &outcome).await?;
        let summaries = self.stream_summaries(&prepared, &mut staging, errors, read_started);
        outcome?;
        Ok(summary::Finished {
            summaries,
            stopped,
            checkpoints: u64::from(staging.checkpoints),
        })
    }

    /// What the source is asked to read: the streams whose tables are ready, with their
    /// saved cursors (none with `--full-refresh`).
    fn request(
        &self,
        state: &crate::state::PipelineState,
        readable: &[&StreamInfo],
    ) -> ReadRequest {
        ReadRequest {
            streams: readable.iter().map(|s| s.name.clone()).collect(),
            state: if self.opts.full_refresh {
                Default::default()
            } else {
                state
                    .streams
                    .iter()
                    .map(|(k, v)| (k.clone(), v.cursor.clone()))
                    .collect()
            },
            batch_id: self.batch_id.clone(),
            ingested_at: self.ingested_at,
            only_partitions: self.opts.partitions.clone(),
            shard: self.opts.shard,
            progress: self.tracker.clone(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

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
