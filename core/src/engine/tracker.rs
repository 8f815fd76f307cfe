//! The run's progress: counts per stream, bars or log lines, warnings and quota.

use super::QuotaSummary;
use crate::progress::{ProgressEvent, ProgressSink};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Counts progress events per stream and mirrors them to bars or log lines.
pub(super) struct Tracker {
    counters: Mutex<HashMap<String, Counters>>,
    bars: Option<Bars>,
    warnings: Mutex<Vec<String>>,
    quota: Mutex<Vec<QuotaSummary>>,
    /// Signalled when the source starts a rate-limit wait of `wait_threshold` seconds or more.
    pub(super) long_wait: tokio::sync::Notify,
    wait_threshold: u64,
}

#[derive(Default, Clone)]
pub(super) struct Counters {
    pub(super) requests: u64,
    pub(super) not_modified: u64,
    pub(super) pages: u64,
    rows: u64,
    pub(super) wait_seconds: u64,
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
    pub(super) fn new(bars: bool, wait_threshold: Duration) -> Self {
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

    pub(super) fn snapshot(&self, stream: &str) -> Counters {
        lock(&self.counters)
            .get(stream)
            .cloned()
            .unwrap_or_default()
    }

    pub(super) fn say(&self, stream: &str, msg: String) {
        match &self.bars {
            Some(b) => b.bar(stream).set_message(msg),
            None => tracing::info!(stream, "{msg}"),
        }
    }

    /// The warnings so far, in order.
    pub(super) fn warnings(&self) -> Vec<String> {
        lock(&self.warnings).clone()
    }

    /// The quota figures so far, one per credential.
    pub(super) fn quota(&self) -> Vec<QuotaSummary> {
        lock(&self.quota).clone()
    }

    pub(super) fn finish(&self) {
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
