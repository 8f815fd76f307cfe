//! The `source:` block of a spec with `type: github`. Doc comments become JSON schema
//! descriptions (and README docs), so they are written for users.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use flowctl_core::secret::SecretRef;
use flowctl_core::{PluginError, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A stream of the GitHub source (one warehouse table each).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    /// Pull requests of every selected repository → PULL_REQUEST.
    PullRequest,
    /// Reviews of pull requests new or changed since the last run → PULL_REQUEST_REVIEW.
    PullRequestReview,
    /// Commits on the default branch since the last run → COMMIT.
    Commit,
    /// Files changed by commits new since the last run → COMMIT_FILE.
    CommitFile,
    /// The organisation's repositories → REPOSITORY.
    Repository,
    /// Deployments with their latest status → DEPLOYMENT. Opt-in: not in the default list.
    Deployment,
}

impl StreamKind {
    pub const ALL: [StreamKind; 6] = [
        StreamKind::PullRequest,
        StreamKind::PullRequestReview,
        StreamKind::Commit,
        StreamKind::CommitFile,
        StreamKind::Repository,
        StreamKind::Deployment,
    ];

    /// Streams read when a spec lists none. `deployment` is opt-in so that specs
    /// written before it existed keep reading (and loading) the same tables.
    pub const DEFAULT: [StreamKind; 5] = [
        StreamKind::PullRequest,
        StreamKind::PullRequestReview,
        StreamKind::Commit,
        StreamKind::CommitFile,
        StreamKind::Repository,
    ];

    /// Name used in specs, state and `TaggedBatch::stream`.
    pub fn name(self) -> &'static str {
        match self {
            StreamKind::PullRequest => "pull_request",
            StreamKind::PullRequestReview => "pull_request_review",
            StreamKind::Commit => "commit",
            StreamKind::CommitFile => "commit_file",
            StreamKind::Repository => "repository",
            StreamKind::Deployment => "deployment",
        }
    }

    pub fn table(self) -> &'static str {
        match self {
            StreamKind::PullRequest => "PULL_REQUEST",
            StreamKind::PullRequestReview => "PULL_REQUEST_REVIEW",
            StreamKind::Commit => "COMMIT",
            StreamKind::CommitFile => "COMMIT_FILE",
            StreamKind::Repository => "REPOSITORY",
            StreamKind::Deployment => "DEPLOYMENT",
        }
    }

    pub fn from_name(name: &str) -> Option<StreamKind> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The API pull requests and reviews are read through (see `GithubConfig::api`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// `graphql` when the source has a token or an App (GitHub's GraphQL API refuses
    /// anonymous requests), else `rest`.
    #[default]
    Auto,
    Graphql,
    Rest,
}

impl Api {
    /// The API to use, given whether requests are anonymous.
    pub fn resolve(self, anonymous: bool) -> Api {
        match self {
            Api::Auto if anonymous => Api::Rest,
            Api::Auto => Api::Graphql,
            a => a,
        }
    }
}

/// GitHub App authentication: the source signs a JWT with the app's private key and
/// exchanges it for an installation token, refreshed before it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppAuth {
    /// The GitHub App's numeric id (App settings → "App ID").
    pub app_id: u64,
    /// The App's private key (PEM, as downloaded from GitHub), as a secret reference.
    pub private_key: SecretRef,
    /// The installation id of the App to use for every organisation. Leave it out when
    /// the App is installed on several organisations: each org's own installation is
    /// then looked up (`GET /orgs/{org}/installation`, or `/users/{user}/installation`)
    /// and gets its own installation token and rate budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installation_id: Option<u64>,
}

/// `token:` is one secret reference or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum TokenRefs {
    /// One token, e.g. `{ env: GITHUB_TOKEN }`.
    One(SecretRef),
    /// Several tokens, e.g. `[{ env: GITHUB_TOKEN_1 }, { env: GITHUB_TOKEN_2 }]`:
    /// requests are spread over them by remaining rate budget.
    Many(#[schemars(length(min = 1))] Vec<SecretRef>),
}

impl TokenRefs {
    /// The references, with the name each is shown by in messages and the run summary:
    /// `token` for a single one, `token[i]` in a list.
    pub fn named(&self) -> Vec<(String, &SecretRef)> {
        match self {
            TokenRefs::One(r) => vec![("token".to_string(), r)],
            TokenRefs::Many(v) => v
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("token[{i}]"), r))
                .collect(),
        }
    }
}

// By hand rather than untagged: serde's untagged error ("did not match any variant")
// names neither the field nor the list item, and a pasted token must not be echoed.
impl<'de> Deserialize<'de> for TokenRefs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error;
        let one = |v: serde_json::Value, at: &str| match v {
            serde_json::Value::Object(_) => {
                SecretRef::deserialize(v).map_err(|e| D::Error::custom(format!("{at}: {e}")))
            }
            other => Err(D::Error::custom(format!(
                "{at}: expected a secret reference such as {{ env: GITHUB_TOKEN }}, found {}; \
                 never the token itself",
                json_kind(&other)
            ))),
        };
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Array(items) if items.is_empty() => Err(D::Error::custom(
                "source.token: the list is empty (list at least one secret reference)",
            )),
            serde_json::Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| one(v, &format!("source.token[{i}]")))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(TokenRefs::Many),
            v => one(v, "source.token").map(TokenRefs::One),
        }
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a mapping",
    }
}

/// Reads pull requests, reviews, commits, commit files and repositories of GitHub
/// organisations through the REST API, incrementally (cursors and ETags kept in state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// Organisations or user accounts whose repositories are read, e.g. `[my-org]`. A
    /// name that `/orgs/{name}/repos` does not know (404) is read as a user account
    /// through `/users/{name}/repos` (the repositories it owns; GitHub lists only public
    /// ones there), and remembered as one in the repository stream's state.
    #[schemars(length(min = 1))]
    pub orgs: Vec<String>,
    /// Repository name globs to read (`*` and `?`); empty means every repository.
    #[serde(default)]
    pub include: Vec<String>,
    /// Repository name globs to skip; applied after `include`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Also read the pull requests, commits and deployments of archived repositories
    /// (they rarely change, so off by default). Their REPOSITORY rows are kept current
    /// either way (`ARCHIVED`, `UPDATED_AT`).
    #[serde(default)]
    pub include_archived: bool,
    /// Also read repositories that are forks.
    #[serde(default = "yes")]
    pub include_forks: bool,
    /// Streams to read; default the five PR/commit/repository streams (`deployment` is
    /// opt-in: add it to read DEPLOYMENT).
    #[serde(default = "all_streams")]
    pub streams: Vec<StreamKind>,
    /// Oldest date read on the first run (no saved state), e.g. `2024-01-01`.
    /// Exclusive with `lookback`. Without either, the first run reads all history.
    #[serde(default)]
    pub start_date: Option<NaiveDate>,
    /// How far back the first run reads, e.g. `30d`, `12h`, `90m`. Exclusive with `start_date`.
    #[serde(default)]
    #[schemars(pattern(r"^[0-9]+[dhm]$"))]
    pub lookback: Option<String>,
    /// REST API root. GitHub Enterprise Server: `https://HOST/api/v3`.
    /// The token is only ever sent to this host.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// PEM file with extra CA certificates to trust for `base_url` (GitHub Enterprise
    /// Server behind a private CA); the system roots stay trusted. Prefer this to
    /// `tls_insecure_skip_verify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Switch TLS certificate verification off for `base_url` only (a test instance with
    /// a self-signed certificate). Every run warns loudly; refused for github.com.
    #[serde(default)]
    pub tls_insecure_skip_verify: bool,
    /// Personal access token (or fine-grained token) as a secret reference,
    /// e.g. `{ env: GITHUB_TOKEN }`, or a list of them: requests are then spread over the
    /// tokens by remaining rate budget, a token below `rate_limit_reserve` rests while the
    /// others carry on, and the run waits only when every token is low. Each repository
    /// keeps to one token while that token has budget, as GitHub's ETags are specific to
    /// the token. Tokens of one user share that user's quota. Exclusive with `app`.
    /// Without both, the GITHUB_TOKEN environment variable is used when set, else requests
    /// are anonymous (60 an hour).
    #[serde(default)]
    pub token: Option<TokenRefs>,
    /// GitHub App authentication instead of a token (one installation token per
    /// organisation when `installation_id` is left out).
    #[serde(default)]
    pub app: Option<AppAuth>,
    /// Repositories fetched at the same time (one shared rate budget).
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 64))]
    pub max_concurrency: usize,
    /// Timeout of one HTTP request, in seconds.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1))]
    pub request_timeout_seconds: u64,
    /// Retries after the first attempt for 5xx, connection resets, timeouts and truncated
    /// or malformed bodies (so 3 means up to 4 attempts).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Base of the exponential backoff between retries, in milliseconds (jitter is added).
    #[serde(default = "default_backoff")]
    pub retry_backoff_ms: u64,
    /// Longest wait for the primary rate limit to reset, in seconds; past it the stream
    /// fails with a message naming the reset time.
    #[serde(default = "default_max_wait")]
    pub max_rate_limit_wait_seconds: u64,
    /// When a token's `X-RateLimit-Remaining` falls below this, it rests until its reset:
    /// the next request goes to another token with budget, or waits for the reset when
    /// every token is low.
    #[serde(default = "default_reserve")]
    pub rate_limit_reserve: u64,
    /// Wait after a secondary rate limit answer without `Retry-After`, in seconds
    /// (doubled on each further one).
    #[serde(default = "default_secondary_wait")]
    pub secondary_limit_wait_seconds: u64,
    /// How pull requests and reviews are read. `auto` (default): `graphql` with a token or
    /// an App, `rest` when anonymous. `graphql`: one GraphQL query per page of
    /// a repository's PRs, with their reviews and additions, deletions, changed files,
    /// commits and merged_by, paid from GraphQL's own hourly budget (a conditional REST
    /// request first, so an unchanged repository still costs nothing). `rest`: the pulls
    /// list plus one reviews request per changed PR; those five columns stay NULL, `_RAW`
    /// holds the
    /// REST objects.
    #[serde(default)]
    pub api: Api,
    /// Keep the full JSON object of every record in the `_RAW` column.
    #[serde(default = "yes")]
    pub include_raw: bool,
    /// Keep the diff text of each file in COMMIT_FILE.PATCH (large; off by default).
    #[serde(default)]
    pub include_patch: bool,
    /// Rows per Arrow batch handed to staging (bounds memory).
    #[serde(default = "default_batch_rows")]
    #[schemars(range(min = 1))]
    pub batch_rows: usize,
    /// Also cut a batch once its `_RAW` text passes this many bytes: with `_RAW` a pull
    /// request is ~19 KB, so `batch_rows` alone would make ~19 MB batches, several of
    /// which are in flight at once. The default (896 KiB, ~45 pull requests) keeps each
    /// batch's `_RAW` buffer under the allocator's 1 MiB mmap threshold, so its memory is
    /// reused instead of mapped and faulted in afresh for every batch.
    #[serde(default = "default_batch_bytes")]
    #[schemars(range(min = 1))]
    pub batch_bytes: usize,
    /// Re-read records up to this many seconds older than the saved cursor (guards
    /// against records that became visible late). Re-read rows are yielded again and
    /// count as updates in MERGE; 0 yields only rows strictly newer than the cursor.
    #[serde(default = "default_overlap")]
    #[schemars(range(max = 31_536_000))]
    pub cursor_overlap_seconds: u64,
    /// deployment stream: deployments created within this many days are read again on
    /// every run (with their latest status), so a status that changes after the
    /// deployment was first read (queued → success, success → inactive) is picked up.
    /// Older deployments are read once; 0 reads each deployment only once.
    #[serde(default = "default_status_window")]
    #[schemars(range(max = 3650))]
    pub deployment_status_window_days: u32,
}

fn yes() -> bool {
    true
}
fn all_streams() -> Vec<StreamKind> {
    StreamKind::DEFAULT.to_vec()
}
fn default_base_url() -> String {
    "https://api.github.com".into()
}
fn default_concurrency() -> usize {
    4
}
fn default_timeout() -> u64 {
    30
}
fn default_retries() -> u32 {
    3
}
fn default_backoff() -> u64 {
    500
}
fn default_max_wait() -> u64 {
    3600
}
fn default_reserve() -> u64 {
    50
}
fn default_secondary_wait() -> u64 {
    60
}
fn default_batch_rows() -> usize {
    1000
}
pub(crate) fn default_batch_bytes() -> usize {
    896 * 1024
}
fn default_overlap() -> u64 {
    0
}
fn default_status_window() -> u32 {
    7
}

impl GithubConfig {
    /// Parse a validated config block; errors name the offending field.
    pub fn from_value(value: serde_json::Value) -> Result<Self> {
        let cfg: GithubConfig = serde_json::from_value(value)
            .map_err(|e| PluginError::config(format!("source (github): {e}")))?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Rules the JSON schema does not express.
    pub fn check(&self) -> Result<()> {
        if self.orgs.is_empty() {
            return Err(PluginError::config(
                "source.orgs: at least one organisation is required",
            ));
        }
        for (i, o) in self.orgs.iter().enumerate() {
            // Org names are case-insensitive on GitHub: a second entry would read the org
            // twice in one run.
            if let Some(first) = self.orgs[..i].iter().find(|p| p.eq_ignore_ascii_case(o)) {
                return Err(PluginError::config(format!(
                    "source.orgs: `{}` is listed twice (as `{}` before; org names are case-insensitive)",
                    o.escape_debug(),
                    first.escape_debug()
                )));
            }
            let ok_chars = o
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
            if o.is_empty() || !ok_chars || o.starts_with('.') || o.len() > 100 {
                return Err(PluginError::config(format!(
                    "source.orgs: `{}` is not a GitHub organisation or user name (letters, digits, `-`, `_`, `.`)",
                    o.escape_debug()
                )));
            }
        }
        if let Some(TokenRefs::Many(list)) = &self.token {
            for (i, r) in list.iter().enumerate() {
                if let Some(j) = list[..i].iter().position(|p| p == r) {
                    return Err(PluginError::config(format!(
                        "source.token[{i}]: {r} is listed twice (as source.token[{j}] before)"
                    )));
                }
            }
        }
        if self.token.is_some() && self.app.is_some() {
            return Err(PluginError::config(
                "source: set either `token` or `app`, not both",
            ));
        }
        if self.start_date.is_some() && self.lookback.is_some() {
            return Err(PluginError::config(
                "source: set either `start_date` or `lookback`, not both",
            ));
        }
        if let Some(l) = &self.lookback {
            parse_lookback(l)?;
        }
        if self.cursor_overlap_seconds > 31_536_000 {
            return Err(PluginError::config(format!(
                "source.cursor_overlap_seconds: {} is more than a year (31536000)",
                self.cursor_overlap_seconds
            )));
        }
        if self.deployment_status_window_days > 3650 {
            return Err(PluginError::config(format!(
                "source.deployment_status_window_days: {} is more than ten years (3650)",
                self.deployment_status_window_days
            )));
        }
        if self.streams.is_empty() {
            return Err(PluginError::config(
                "source.streams: list at least one stream",
            ));
        }
        if self.max_concurrency == 0 || self.batch_rows == 0 || self.batch_bytes == 0 {
            return Err(PluginError::config(
                "source.max_concurrency, source.batch_rows and source.batch_bytes must be at least 1",
            ));
        }
        let url = url::Url::parse(&self.base_url).map_err(|e| {
            PluginError::config(format!("source.base_url `{}`: {e}", self.base_url))
        })?;
        if url.host_str().is_none() || !matches!(url.scheme(), "http" | "https") {
            return Err(PluginError::config(format!(
                "source.base_url `{}`: expected an http(s) URL with a host",
                self.base_url
            )));
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if self.tls_insecure_skip_verify && (host == "github.com" || host.ends_with(".github.com"))
        {
            return Err(PluginError::config(format!(
                "source.tls_insecure_skip_verify: refused for {host}; it is only for your own \
                 GitHub Enterprise host (use tls_ca_file for a private CA)"
            )));
        }
        Ok(())
    }

    /// Lower bound for the first run, if any.
    pub fn first_run_floor(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if let Some(d) = self.start_date {
            return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        }
        let l = self.lookback.as_deref()?;
        parse_lookback(l)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
    }

    /// Whether repository `name` passes include/exclude.
    pub fn repo_selected(&self, name: &str) -> bool {
        let inc = self.include.is_empty() || self.include.iter().any(|g| glob_match(g, name));
        inc && !self.exclude.iter().any(|g| glob_match(g, name))
    }
}

/// `30d`, `12h`, `90m` → a duration.
pub fn parse_lookback(s: &str) -> Result<Duration> {
    let bad = || {
        PluginError::config(format!(
            "source.lookback `{s}`: expected a number followed by d, h or m (e.g. 30d)"
        ))
    };
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "d" => Duration::try_days(n),
        "h" => Duration::try_hours(n),
        "m" => Duration::try_minutes(n),
        _ => None,
    }
    .ok_or_else(bad)?;
    if d > Duration::days(MAX_LOOKBACK_DAYS) {
        return Err(PluginError::config(format!(
            "source.lookback `{s}`: at most {MAX_LOOKBACK_DAYS}d (100 years); leave `lookback` \
             out to read all history"
        )));
    }
    Ok(d)
}

/// Longest `lookback`: GitHub is younger than this, so a longer one means all history,
/// which is what leaving `lookback` out says.
const MAX_LOOKBACK_DAYS: i64 = 36_500;

/// Case-insensitive glob with `*` (any run) and `?` (one char), as GitHub names are
/// case-insensitive.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    let (mut pi, mut ni, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_fill_in() {
        let c = GithubConfig::from_value(json!({"orgs": ["acme"]})).unwrap();
        assert_eq!(c.streams.len(), 5);
        assert!(c.include_forks && !c.include_archived && c.include_raw && !c.include_patch);
        assert_eq!(c.base_url, "https://api.github.com");
        assert_eq!(
            (
                c.max_concurrency,
                c.max_retries,
                c.batch_rows,
                c.batch_bytes
            ),
            (4, 3, 1000, 896 << 10)
        );
    }

    #[test]
    fn unknown_field_is_named() {
        let e = GithubConfig::from_value(json!({"orgs": ["a"], "tokn": {"env": "X"}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("tokn"), "{e}");
    }

    #[test]
    fn hostile_org_names_are_rejected() {
        for bad in [
            "../etc", "a/b", "x'; DROP", "", ".hidden", "a\u{0}b", "o rg",
        ] {
            let e = GithubConfig::from_value(json!({"orgs": [bad]}))
                .unwrap_err()
                .to_string();
            assert!(e.contains("source.orgs"), "{bad}: {e}");
        }
        assert!(GithubConfig::from_value(json!({"orgs": ["my-org_1.x"]})).is_ok());
        let e = GithubConfig::from_value(json!({"orgs": ["acme", "other", "Acme"]}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`Acme` is listed twice"), "{e}");
    }

    #[test]
    fn durations_past_what_dates_hold_are_refused() {
        for (key, v, want) in [
            (
                "cursor_overlap_seconds",
                json!(9_300_000_000_000u64),
                "more than a year",
            ),
            (
                "deployment_status_window_days",
                json!(200_000),
                "more than ten years",
            ),
            ("lookback", json!("100000000d"), "at most 36500d"),
        ] {
            let e = GithubConfig::from_value(json!({"orgs": ["a"], key: v}))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key) && e.contains(want), "{key}: {e}");
        }
        let c = GithubConfig::from_value(json!({"orgs": ["a"], "lookback": "36500d"})).unwrap();
        let now = Utc::now();
        assert_eq!(c.first_run_floor(now), Some(now - Duration::days(36_500)));
    }

    #[test]
    fn token_and_app_are_exclusive() {
        let v = json!({"orgs": ["a"], "token": {"env": "T"},
            "app": {"app_id": 1, "private_key": {"file": "k.pem"}, "installation_id": 2}});
        assert!(GithubConfig::from_value(v)
            .unwrap_err()
            .to_string()
            .contains("either"));
    }

    #[test]
    fn token_is_one_reference_or_a_list_and_errors_name_the_item() {
        let one = GithubConfig::from_value(json!({"orgs": ["a"], "token": {"env": "T"}})).unwrap();
        assert_eq!(one.token, Some(TokenRefs::One(SecretRef::Env("T".into()))));
        let many = GithubConfig::from_value(
            json!({"orgs": ["a"], "token": [{"env": "T1"}, {"file": "/run/t2"}]}),
        )
        .unwrap();
        let names: Vec<String> = many
            .token
            .as_ref()
            .unwrap()
            .named()
            .into_iter()
            .map(|n| n.0)
            .collect();
        assert_eq!(names, ["token[0]", "token[1]"]);
        // Serialized back as it was written.
        assert_eq!(
            serde_json::to_value(&many.token).unwrap(),
            json!([{"env": "T1"}, {"file": "/run/t2"}])
        );
        for (token, want) in [
            (
                json!("ghp_pasted_secret"),
                "source.token: expected a secret reference",
            ),
            (
                json!([{"env": "T1"}, "ghp_pasted_secret"]),
                "source.token[1]: expected",
            ),
            (
                json!([{"env": "T1"}, {"envv": "X"}]),
                "source.token[1]: unknown variant `envv`",
            ),
            (json!([]), "source.token: the list is empty"),
            (
                json!([{"env": "T"}, {"env": "T"}]),
                "source.token[1]: { env: T } is listed twice",
            ),
        ] {
            let e = GithubConfig::from_value(json!({"orgs": ["a"], "token": token}))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("ghp_pasted_secret"), "{e}");
        }
    }

    #[test]
    fn app_installation_id_is_optional() {
        let c = GithubConfig::from_value(
            json!({"orgs": ["a", "b"], "app": {"app_id": 1, "private_key": {"file": "k.pem"}}}),
        )
        .unwrap();
        assert_eq!(c.app.unwrap().installation_id, None);
    }

    #[test]
    fn lookback_and_globs() {
        assert_eq!(parse_lookback("30d").unwrap(), Duration::days(30));
        assert_eq!(parse_lookback("12h").unwrap(), Duration::hours(12));
        assert!(parse_lookback("12x").is_err() && parse_lookback("d").is_err());
        // Long enough to reach before year -262143, where chrono's subtraction panics.
        let err = parse_lookback("100000000d").unwrap_err().to_string();
        assert!(
            err.contains("source.lookback") && err.contains("at most 36500d"),
            "{err}"
        );
        assert!(parse_lookback("876000h").is_ok() && parse_lookback("876001h").is_err());
        assert!(glob_match("api-*", "API-gateway"));
        assert!(glob_match("*-svc", "billing-svc") && !glob_match("*-svc", "billing-svc2"));
        assert!(glob_match("r?po", "repo") && !glob_match("r?po", "rpo"));
        let c = GithubConfig::from_value(
            json!({"orgs": ["a"], "include": ["svc-*"], "exclude": ["*-old"]}),
        )
        .unwrap();
        assert!(c.repo_selected("svc-a") && !c.repo_selected("svc-a-old") && !c.repo_selected("x"));
    }

    #[test]
    fn schema_requires_orgs_and_describes_fields() {
        let s = serde_json::to_value(schemars::schema_for!(GithubConfig)).unwrap();
        assert_eq!(s["required"], json!(["orgs"]));
        assert!(s["properties"]["include_patch"]["description"].is_string());
        assert_eq!(s["additionalProperties"], json!(false));
    }
}
