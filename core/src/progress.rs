//! Progress and statistics events that plugins report while they run. The engine turns
//! them into progress bars (on a terminal), log lines and the end-of-run summary.

use std::sync::Arc;

/// One thing that happened inside a plugin.
#[derive(Debug, Clone)]
pub enum ProgressEvent {
    /// An HTTP request was sent (counted against the API), for `stream`.
    Request { stream: String },
    /// A conditional request answered 304 Not Modified (costs no quota).
    NotModified { stream: String },
    /// A page of `rows` records was read for `stream`.
    Page { stream: String, rows: u64 },
    /// The plugin is waiting for a rate limit until the given time (UTC, RFC 3339).
    RateLimitWait {
        stream: String,
        seconds: u64,
        reason: String,
    },
    /// Something worth telling the user that is not an error (a skipped repo...).
    Warning { stream: String, message: String },
    /// A credential's rate quota at the end of a read: requests it made that counted
    /// against the quota, and what its last answer said is left. `credential` names it
    /// (e.g. `token[1] (env GITHUB_TOKEN_2)`), never its secret.
    Quota {
        credential: String,
        used: u64,
        remaining: Option<u64>,
        limit: Option<u64>,
        /// When the quota resets (UTC, RFC 3339).
        resets_at: Option<String>,
    },
}

/// Receives [`ProgressEvent`]s. Implementations must be cheap and never block.
pub trait ProgressSink: Send + Sync {
    fn event(&self, event: ProgressEvent);
}

/// A sink that drops everything (tests, `plan`).
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn event(&self, _event: ProgressEvent) {}
}

pub type Progress = Arc<dyn ProgressSink>;
