//! Preparing tables before the read, and loading: each stream's files are loaded (COPY →
//! MERGE → TRUNCATE), then its state is committed and its files cleaned up, at every
//! checkpoint and once more when the read ends.

use super::stage::{Read, Staging};
use super::Run;
use crate::plugin::*;
use crate::progress::{ProgressEvent, ProgressSink};
use crate::state::StreamState;
use crate::{error_chain, PluginError, Result};
use chrono::Utc;
use futures::{FutureExt, StreamExt};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;

/// The streams whose tables are ready, and why the others are not.
pub(super) struct Prepared<'a> {
    pub(super) readable: Vec<&'a StreamInfo>,
    /// Stream name → why its table could not be prepared.
    pub(super) table_errors: BTreeMap<String, String>,
}

impl Run<'_> {
    /// Ensures every stream's table before any read, so a warehouse we cannot reach fails
    /// the run before any API call. As many at once as the warehouse loads at once: on
    /// Snowflake each table is three or more statements, each a network round trip and a
    /// turn in the warehouse's queue. A stream whose table fails is not read; when none
    /// is ready, the run fails.
    pub(super) async fn prepare_tables(&self) -> Result<Prepared<'_>> {
        // Boxed and collected first so that the futures are `Send` whatever they borrow.
        let prepare: Vec<futures::future::BoxFuture<'_, Result<()>>> = self
            .streams
            .iter()
            .map(|s| {
                let table = TableSpec {
                    name: s.table.clone(),
                    schema: s.schema.clone(),
                };
                let what = format!("preparing table {}", s.table);
                async move {
                    self.retrying(&s.name, &what, || {
                        self.plugins.warehouse.ensure_table(&table)
                    })
                    .await
                }
                .boxed()
            })
            .collect();
        let prepared: Vec<Result<()>> = futures::stream::iter(prepare)
            .buffered(self.concurrency)
            .collect()
            .await;
        let mut table_errors: BTreeMap<String, String> = BTreeMap::new();
        for (r, s) in prepared.into_iter().zip(&self.streams) {
            if let Err(e) = r {
                table_errors.insert(s.name.clone(), format!("preparing table {}: {e}", s.table));
            }
        }
        if table_errors.len() == self.streams.len() && !self.streams.is_empty() {
            let (stream, err) = table_errors
                .iter()
                .next()
                .map(|(a, b)| (a.clone(), b.clone()))
                .unwrap_or_default();
            return Err(PluginError::external(format!("{stream}: {err}")));
        }
        let readable = self
            .streams
            .iter()
            .filter(|s| !table_errors.contains_key(&s.name))
            .collect();
        Ok(Prepared {
            readable,
            table_errors,
        })
    }

    /// Runs `step` until it succeeds, fails for good, or has failed transiently
    /// ([`PluginError::retryable`]) more than `opts.retries.max` times, waiting
    /// [`crate::retry::backoff`] between tries and saying so as a warning of `stream`.
    /// Only for steps that are safe to repeat.
    pub(super) async fn retrying<T, F, Fut>(
        &self,
        stream: &str,
        what: &str,
        mut step: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let retries = self.opts.retries;
        let mut attempt = 0;
        loop {
            match step().await {
                Err(e) if e.retryable() && attempt < retries.max => {
                    attempt += 1;
                    let wait = crate::retry::backoff(retries.base, attempt);
                    self.tracker.event(ProgressEvent::Warning {
                        stream: stream.to_string(),
                        message: format!(
                            "{what} failed transiently, trying again in {:.1}s (retry {attempt} of {}): {}",
                            wait.as_secs_f64(),
                            retries.max,
                            error_chain(&e)
                        ),
                    });
                    tokio::time::sleep(wait).await;
                }
                r => return r,
            }
        }
    }

    /// A failed stream's staged files: the next run stages its rows again, so nothing will
    /// ever load these. They go the way of loaded files (`cleanup: delete_after_load`
    /// deletes them; `keep` keeps them for inspection) instead of piling up in staging.
    pub(super) async fn discard_unloaded(&self, stream: &str, files: &[StagedFile]) {
        if files.is_empty() {
            return;
        }
        if let Err(e) = self.plugins.staging.after_load(files).await {
            self.tracker.event(ProgressEvent::Warning {
                stream: stream.to_string(),
                message: format!("cleanup of the failed stream's staged files failed: {e}"),
            });
        }
    }
}

impl Read<'_> {
    /// The end of the read is the last checkpoint: each stream's final state (or, for a
    /// failed stream, the newest state it offered) commits after its files load. Returns
    /// the streams the source failed, with their errors.
    pub(super) async fn end(
        &self,
        st: &mut Staging,
        outcome: &Result<ReadOutcome>,
    ) -> Result<HashMap<String, String>> {
        let mut errors: HashMap<String, String> = HashMap::new();
        let mut last: Vec<(String, Option<serde_json::Value>)> = Vec::new();
        for name in self.streams.iter().map(|s| &s.name) {
            let tally = st.tally(name);
            let result = match outcome {
                Ok(o) => o.streams.get(name).cloned(),
                Err(e) => Some(StreamResult::Failed {
                    error: e.to_string(),
                }),
            };
            let cursor = match result {
                Some(StreamResult::Done { state }) => Some(state),
                Some(StreamResult::Failed { error }) => {
                    errors.insert(name.clone(), error);
                    tally.offered.take()
                }
                None => {
                    errors.insert(
                        name.clone(),
                        "the source returned no result for this stream".into(),
                    );
                    tally.offered.take()
                }
            };
            last.push((name.clone(), cursor));
        }
        if let Err(e) = self.finish_writers(st, |_| true).await {
            self.abandon(st).await;
            return Err(e);
        }
        // A failed stream's files beyond its last committed state are never loaded: the
        // next run stages those rows again.
        for (name, cursor) in &last {
            if cursor.is_none() && errors.contains_key(name) {
                let files = std::mem::take(&mut st.tally(name).pending);
                self.run.discard_unloaded(name, &files).await;
            }
        }
        self.load_and_commit(st, last).await;
        Ok(errors)
    }

    /// Loads each stream's pending files, then commits its state when one is given (as
    /// many tables at once as the warehouse allows). A failure marks the stream failed.
    pub(super) async fn load_and_commit(
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
                self.run.discard_unloaded(&stream, &files).await;
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
                        self.run.discard_unloaded(&info.name, &files).await;
                    }
                    (info.name.clone(), r)
                }
                .boxed()
            })
            .collect();
        let done: Vec<(String, Result<LoadStats>)> = futures::stream::iter(loads)
            .buffered(self.run.concurrency)
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
    /// locked only for that commit, so other tables keep loading). A load that fails
    /// transiently is tried again: the MERGE takes a row only when it is new or newer, so
    /// files loaded twice change nothing.
    async fn load(
        &self,
        info: &StreamInfo,
        files: &[StagedFile],
        cursor: Option<serde_json::Value>,
    ) -> Result<LoadStats> {
        let run = self.run;
        let table = TableSpec {
            name: info.table.clone(),
            schema: info.schema.clone(),
        };
        let stats = if files.is_empty() {
            LoadStats::default()
        } else {
            run.tracker.say(
                &info.name,
                format!("loading {} files into {}", files.len(), info.table),
            );
            let what = format!("loading {}", info.table);
            run.retrying(&info.name, &what, || {
                run.plugins.warehouse.load(&table, files, &run.location)
            })
            .await
            .map_err(|e| e.context(&what))?
        };
        // Commit this stream's cursor only now that its rows are merged.
        if let Some(cursor) = cursor {
            let mut state = self.state.lock().await;
            state.streams.insert(
                info.name.clone(),
                StreamState {
                    committed_at: Utc::now(),
                    batch_id: run.batch_id.clone(),
                    cursor,
                },
            );
            state.version = 1;
            state.pipeline = run.pipeline.to_string();
            let state = &*state;
            run.retrying(&info.name, "committing state", || {
                run.state_store.save(run.pipeline, run.opts.shard, state)
            })
            .await
            .map_err(|e| e.context("committing state"))?;
        }
        if !files.is_empty() {
            if let Err(e) = run.plugins.staging.after_load(files).await {
                run.tracker.event(ProgressEvent::Warning {
                    stream: info.name.clone(),
                    message: format!("cleanup of staged files failed: {e}"),
                });
            }
        }
        run.tracker.say(
            &info.name,
            format!(
                "loaded: {} inserted, {} updated",
                stats.inserted, stats.updated
            ),
        );
        Ok(stats)
    }
}
