//! The state of one stream, as saved by the engine between runs.
//!
//! ```json
//! {
//!   "repos": {
//!     "acme/widgets": { "cursor": "2026-01-01T00:00:00Z", "etag": "W/\"8f1c...\"", "since": "2025-12-01T00:00:00Z" }
//!   },
//!   "orgs": {
//!     "acme": { "etag": "W/\"77aa...\"", "repos": [ { "name": "widgets", "id": 3000000000, "archived": false, "fork": false } ] }
//!   },
//!   "heads": {
//!     "acme/widgets": { "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e", "etag": "W/\"3c2a...\"" }
//!   }
//! }
//! ```
//!
//! * `repos` (every stream but `repository`): per `org/repo`, `cursor` is the newest
//!   `updated_at` (pull_request, pull_request_review) or committer date (commit,
//!   commit_file) of the rows yielded, and `etag` the ETag of the first list page
//!   (pulls, or commits with `since`) read when that cursor was reached; it is sent as
//!   `If-None-Match` next time and a 304 means nothing changed in that repository.
//!   `since` (commit, commit_file only) is the anchor the commits URL uses: the first
//!   run's floor, moved up to the cursor after a run that read more than one page. A
//!   stable URL is what lets an unchanged repository answer 304.
//! * `heads` (commit, commit_file only): per `org/repo`, the default branch's head SHA
//!   when last read and the ETag of `commits?per_page=1` that named it. The next run asks
//!   that URL conditionally (304: the branch did not move) and reads what is new with
//!   compare `{sha}...{new head}`, whatever the commits' dates. Without an entry (first
//!   run, state of an earlier version) commits are read by date and the head recorded.
//! * `orgs` (the `repository` stream, or the first stream read when it is not): per
//!   account, the ETag of the repo list and the list itself, so a 304 still yields the
//!   repositories to read. Kept only when the list
//!   fits one page (≤ 100 repositories); larger orgs are listed unconditionally. `user:
//!   true` marks a user account (listed at /users/{name}/repos), kept whatever the size.
//!
//! * `partial` (pull_request, pull_request_review): per `org/repo`, the span of
//!   `updated_at` a read cut short had covered (a deadline, a failure, a kill after a
//!   checkpoint): every pull request (and its reviews) updated within `[from, to]` was
//!   sent. The cursor does not cover it yet (older ones may be missing); the next read
//!   skips the span's rows and, once it finishes the repository, moves the cursor past it.
//!
//! Entries of repos not read in a run (other shard, `--org` filter, 404) are kept as they were.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamState {
    #[serde(default)]
    pub repos: BTreeMap<String, RepoCursor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub orgs: BTreeMap<String, OrgListing>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub heads: BTreeMap<String, BranchHead>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partial: BTreeMap<String, Span>,
}

/// commit, commit_file: the default branch's head as last read (see `streams/commits.rs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BranchHead {
    pub sha: String,
    /// ETag of `commits?per_page=1` when it answered this head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// The rows of a repository read so far by a read cut short (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Span {
    pub fn contains_us(&self, us: i64) -> bool {
        self.from.timestamp_micros() <= us && us <= self.to.timestamp_micros()
    }

    /// The span after a read from the top down to `low` (newest seen: `high`): it grows
    /// only once that read reached this span, so the covered rows stay one range.
    pub fn extended(old: Option<Span>, low: i64, high: i64) -> Option<Span> {
        let (from, to) = (us_to_time(low)?, us_to_time(high)?);
        match old {
            None => Some(Span { from, to }),
            Some(o) if from <= o.to => Some(Span {
                from: from.min(o.from),
                to: to.max(o.to),
            }),
            Some(_) => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepoCursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// commit, commit_file: the `since` the commits URL was built with (see `streams/commits.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
}

impl RepoCursor {
    pub fn cursor_us(&self) -> Option<i64> {
        self.cursor.map(|c| c.timestamp_micros())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrgListing {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default)]
    pub repos: Vec<RepoRef>,
    /// A user account (listed at /users/{name}/repos), not an organisation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub user: bool,
}

/// What a run needs to know about a listed repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRef {
    pub name: String,
    pub id: i64,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub fork: bool,
}

impl StreamState {
    pub fn from_value(v: Option<&serde_json::Value>) -> Result<StreamState, String> {
        match v {
            None | Some(serde_json::Value::Null) => Ok(StreamState::default()),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                format!(
                    "saved state is not understood ({e}); run with --full-refresh to start over"
                )
            }),
        }
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

pub fn us_to_time(us: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_without_heads_or_user_flags_loads_and_saves_unchanged() {
        let old = serde_json::json!({
            "repos": {"acme/w": {"cursor": "2026-01-01T00:00:00Z", "etag": "W/\"1\"", "since": "2025-12-01T00:00:00Z"}},
            "orgs": {"acme": {"etag": "W/\"2\"", "repos": [{"name": "w", "id": 1, "archived": false, "fork": false}]}}
        });
        let st = StreamState::from_value(Some(&old)).unwrap();
        assert!(st.heads.is_empty() && !st.orgs["acme"].user);
        assert_eq!(st.to_value(), old);
        let mut new = st;
        new.heads.insert(
            "acme/w".into(),
            BranchHead {
                sha: "a".repeat(40),
                etag: None,
            },
        );
        new.orgs.get_mut("acme").unwrap().user = true;
        let v = new.to_value();
        assert_eq!(
            v["heads"]["acme/w"],
            serde_json::json!({"sha": "a".repeat(40)})
        );
        assert_eq!(v["orgs"]["acme"]["user"], true);
        assert_eq!(StreamState::from_value(Some(&v)).unwrap(), new);
    }

    fn us(s: &str) -> i64 {
        s.parse::<DateTime<Utc>>().unwrap().timestamp_micros()
    }

    #[test]
    fn a_span_grows_only_once_a_read_reaches_it() {
        let first = Span::extended(None, us("2026-01-05T00:00:00Z"), us("2026-01-09T00:00:00Z"));
        let first = first.unwrap();
        assert!(first.contains_us(us("2026-01-05T00:00:00Z")));
        assert!(!first.contains_us(us("2026-01-04T23:59:59Z")));
        // A later read, still above the span: the covered rows would be two ranges.
        let above = Span::extended(
            Some(first),
            us("2026-01-10T00:00:00Z"),
            us("2026-01-12T00:00:00Z"),
        );
        assert_eq!(above, None);
        // Once it reaches the span, one range from its bottom to the newest row.
        let grown = Span::extended(
            Some(first),
            us("2026-01-02T00:00:00Z"),
            us("2026-01-12T00:00:00Z"),
        );
        assert_eq!(
            grown,
            Some(Span {
                from: "2026-01-02T00:00:00Z".parse().unwrap(),
                to: "2026-01-12T00:00:00Z".parse().unwrap(),
            })
        );
    }
}
