//! Reading and staging: the source's batches go to one staged writer per table and
//! partition while the source keeps fetching; checkpoints load and commit on the way.

use super::Run;
use crate::meta::{self, RunColumns};
use crate::plugin::*;
use crate::state::PipelineState;
use crate::{PluginError, Result};
use std::collections::{HashMap, HashSet};

/// One stream's files, offered state and load figures over a run.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) rows: u64,
    pub(super) files: u64,
    pub(super) bytes: u64,
    pub(super) stats: LoadStats,
    /// Completed files not loaded yet.
    pub(super) pending: Vec<StagedFile>,
    /// The newest state the source offered that is not committed yet.
    pub(super) offered: Option<serde_json::Value>,
    /// A load or commit failed: nothing more of this stream loads or commits in this run.
    pub(super) failed: Option<String>,
}

/// The open writers and the per-stream tallies of a run.
#[derive(Default)]
pub(super) struct Staging {
    pub(super) writers: HashMap<(String, String), Box<dyn StagedWriter>>,
    pub(super) tallies: HashMap<String, Tally>,
    /// Checkpoints taken so far; also tells apart the names of files opened after one.
    pub(super) checkpoints: u32,
    /// Partitions the source declared done: their writers are finished, and a later
    /// batch for one would reuse its file names.
    pub(super) done_partitions: HashSet<String>,
}

impl Staging {
    pub(super) fn tally(&mut self, stream: &str) -> &mut Tally {
        self.tallies.entry(stream.to_string()).or_default()
    }
}

/// The read under way: the run, the streams being read and the pipeline's state, shared by
/// staging and loading.
pub(super) struct Read<'a> {
    pub(super) run: &'a Run<'a>,
    /// The state as committed so far; locked only to commit one stream's cursor.
    pub(super) state: tokio::sync::Mutex<PipelineState>,
    /// The streams being read, in the source's order.
    pub(super) streams: Vec<&'a StreamInfo>,
    /// The same, by name.
    pub(super) infos: HashMap<String, &'a StreamInfo>,
}

impl<'a> Read<'a> {
    pub(super) fn new(run: &'a Run<'a>, state: PipelineState, readable: &[&'a StreamInfo]) -> Self {
        Read {
            run,
            state: tokio::sync::Mutex::new(state),
            streams: readable.to_vec(),
            infos: readable.iter().map(|s| (s.name.clone(), *s)).collect(),
        }
    }

    /// The source reads while the engine stages what it sends. Returns the source's
    /// outcome and whether the deadline stopped the read; a staging failure aborts the
    /// open writers and is the run's error.
    pub(super) async fn read(
        &self,
        st: &mut Staging,
        request: ReadRequest,
    ) -> Result<(Result<ReadOutcome>, bool)> {
        let (tx, rx) = batch_channel(self.run.opts.channel_batches.max(2));
        let (outcome, staged) = tokio::join!(
            self.run.plugins.source.read(request, tx),
            self.stage(st, rx)
        );
        match staged {
            Ok(stopped) => Ok((outcome, stopped)),
            Err(e) => {
                self.abandon(st).await;
                Err(e)
            }
        }
    }

    /// Stage what the source sends, taking checkpoints on the way, until the source is
    /// done. Returns whether the deadline stopped the read. On error the receiver is
    /// dropped, so the source's next send fails and it returns.
    async fn stage(&self, st: &mut Staging, mut rx: BatchReceiver) -> Result<bool> {
        let deadline = self.run.deadline;
        let mut stopped = false;
        let mut due = tokio::time::Instant::now() + self.run.interval;
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
                _ = self.run.tracker.long_wait.notified() => {
                    // Take in what the source sent before it began to wait.
                    while let Some(m) = rx.try_recv_message() {
                        self.handle(st, m).await?;
                    }
                    self.checkpoint(st, "before a rate-limit wait").await?;
                    due = tokio::time::Instant::now() + self.run.interval;
                    continue;
                }
                _ = tokio::time::sleep_until(due), if !self.run.interval.is_zero() => {
                    self.checkpoint(st, "checkpoint interval").await?;
                    due = tokio::time::Instant::now() + self.run.interval;
                    continue;
                }
                m = rx.recv_message() => match m {
                    Some(m) => m,
                    None => return Ok(stopped),
                },
            };
            let offered = matches!(msg, SourceMessage::Checkpoint { .. });
            self.handle(st, msg).await?;
            if offered && self.run.interval.is_zero() {
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
        let word = self.run.partition_key;
        if st.done_partitions.contains(&tb.partition) {
            return Err(PluginError::other(format!(
                "source sent a batch for stream `{}` of {word} `{}` after declaring the {word} done",
                tb.stream, tb.partition
            )));
        }
        let columns = RunColumns {
            ingested_at: self.run.ingested_at,
            batch_id: &self.run.batch_id,
            partition: &tb.partition,
        };
        let batch = meta::stage_batch(&tb.stream, &info.schema, &tb.batch, &columns)?;
        let key = (tb.stream.clone(), tb.partition.clone());
        if !st.writers.contains_key(&key) {
            // Files opened after a checkpoint get names of their own: the files of the
            // same table and partition loaded at the checkpoint had the first ones.
            let batch_id = match st.checkpoints {
                0 => self.run.batch_id.to_string(),
                n => format!("{}-{n}", self.run.batch_id),
            };
            let target = StageTarget {
                table: info.table.to_ascii_lowercase(),
                partition_key: self.run.partition_key,
                partition: tb.partition.clone(),
                date: self.run.ingested_at.date_naive(),
                batch_id,
                schema: info.schema.clone(),
            };
            let staging = &self.run.plugins.staging;
            let what = format!("opening a staged file of {}", info.table);
            let w = self
                .run
                .retrying(&tb.stream, &what, || staging.writer(target.clone()))
                .await?;
            st.writers.insert(key.clone(), w);
        }
        if let Some(w) = st.writers.get_mut(&key) {
            // Not retried: the writer holds the rows written to it, which a failed write
            // may have left half taken; the stream's next run stages them again.
            w.write(&batch).await.map_err(|e| {
                e.context(format!(
                    "staging {} for {word} {}",
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
    pub(super) async fn finish_writers(
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
            self.run.tracker.say(
                &stream,
                format!(
                    "finishing staged files for {} {partition}",
                    self.run.partition_key
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

    /// After a staging failure: abort the open writers; completed files that were not
    /// loaded go the way of a failed stream's files. Committed checkpoints stay.
    pub(super) async fn abandon(&self, st: &mut Staging) {
        for (_, w) in st.writers.drain() {
            w.abort().await;
        }
        for (stream, tally) in st.tallies.iter_mut() {
            let files = std::mem::take(&mut tally.pending);
            self.run.discard_unloaded(stream, &files).await;
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
