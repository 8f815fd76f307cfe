//! The run's summary: per-stream figures, the table printed at the end and `--output json`.

use super::load::Prepared;
use super::stage::Staging;
use super::Run;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;

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

/// One credential's quota figures, from [`crate::progress::ProgressEvent::Quota`].
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

/// What a run under the lease produced.
pub(super) struct Finished {
    pub(super) summaries: Vec<StreamSummary>,
    /// The deadline stopped the read.
    pub(super) stopped: bool,
    pub(super) checkpoints: u64,
}

impl Run<'_> {
    /// One summary per stream: those whose table could not be prepared, then those read.
    pub(super) fn stream_summaries(
        &self,
        prepared: &Prepared<'_>,
        staging: &mut Staging,
        mut errors: HashMap<String, String>,
        read_started: Instant,
    ) -> Vec<StreamSummary> {
        let mut summaries = Vec::new();
        for (name, err) in &prepared.table_errors {
            let info = self.streams.iter().find(|s| &s.name == name);
            summaries.push(StreamSummary {
                stream: name.clone(),
                table: info.map(|i| i.table.clone()).unwrap_or_default(),
                status: "failed".into(),
                error: Some(err.clone()),
                ..Default::default()
            });
        }
        for info in &prepared.readable {
            let counters = self.tracker.snapshot(&info.name);
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
                duration_ms: read_started.elapsed().as_millis() as u64,
            });
        }
        summaries
    }

    /// The run's summary, its streams in the source's order.
    pub(super) fn summary(&self, mut done: Finished, started: Instant) -> RunSummary {
        done.summaries.sort_by_key(|s| {
            self.streams
                .iter()
                .position(|i| i.name == s.stream)
                .unwrap_or(usize::MAX)
        });
        let ok = done.summaries.iter().all(|s| s.error.is_none());
        RunSummary {
            pipeline: self.pipeline.to_string(),
            batch_id: self.batch_id.clone(),
            ingested_at: self.ingested_at.to_rfc3339(),
            shard: self.opts.shard.map(|s| format!("{}/{}", s.index, s.count)),
            ok,
            complete: ok && !done.stopped,
            checkpoints: done.checkpoints,
            streams: done.summaries,
            warnings: self.tracker.warnings(),
            quota: self.tracker.quota(),
            duration_ms: started.elapsed().as_millis() as u64,
        }
    }
}
