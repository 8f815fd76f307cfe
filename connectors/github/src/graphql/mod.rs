//! GitHub's GraphQL API for pull requests and reviews: one query returns a page of PRs
//! with their reviews and the fields the REST list lacks, for a point or two of a
//! separate hourly budget (5,000 points for a token) instead of a request per PR.
//!
//! Failure shapes handled here: HTTP 200 with `errors` (with partial `data`: the good
//! nodes are kept and the skipped ones named; without data: retried), `RATE_LIMITED`
//! (waited out until `resetAt`), secondary limits (`Retry-After`), and timeouts or
//! 5xx on a heavy query (retried with half the page).

mod pulls;
pub mod query;
pub mod rows;
pub mod shared;

use crate::gunzip::{encoding, gunzip, Encoding};
use crate::http::{describe, Client, HttpError, STOPPED};

/// Most bytes an inflated answer may hold (a pulls page of 49 PRs is ~100 KB).
const MAX_BODY: usize = 256 << 20;
use flowctl_core::progress::ProgressEvent;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::sync::Mutex;
use std::time::Duration;

/// The GraphQL endpoint for a REST `base_url`: `https://api.github.com/graphql` for
/// github.com, `https://HOST/api/graphql` for GitHub Enterprise Server
/// (`https://HOST/api/v3`), else `{base_url}/graphql`.
pub fn endpoint(base_url: &str) -> String {
    let b = base_url.trim_end_matches('/');
    match b.strip_suffix("/api/v3") {
        Some(host) => format!("{host}/api/graphql"),
        None => format!("{b}/graphql"),
    }
}

/// `rateLimit { cost remaining resetAt limit }`, asked for with every query.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    pub cost: u64,
    pub remaining: u64,
    pub reset_at: String,
    #[serde(default)]
    pub limit: Option<u64>,
}

/// One entry of a response's `errors`.
#[derive(Debug, Clone, Deserialize)]
pub struct GqlError {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub path: Option<Vec<serde_json::Value>>,
    /// `extensions.code` marks a query GitHub refused before running it (an unknown
    /// field, say): retrying cannot help.
    #[serde(default)]
    pub extensions: Option<serde_json::Value>,
}

impl GqlError {
    /// `repository.pullRequests.nodes.3`, or the message's kind when it has no path.
    pub fn where_(&self) -> String {
        match &self.path {
            Some(p) => p
                .iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("."),
            None => self.kind.clone().unwrap_or_else(|| "query".into()),
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    errors: Vec<GqlError>,
}

/// A response with data: the raw `data` object (parsed by the caller) and the errors
/// that came with it (nodes GitHub could not resolve are `null` in `data`).
pub struct Answer {
    pub data: String,
    pub errors: Vec<GqlError>,
}

/// Why a query gave up.
#[derive(Clone)]
pub enum GqlFail {
    /// Timeouts, 5xx or a server-side error without data: a smaller page may pass.
    Heavy(String),
    /// Anything else (rate limit beyond the allowed wait, bad answer, 401, 404).
    Http(HttpError),
}

/// The GraphQL budget, apart from REST's: what the last answer said was left.
#[derive(Default)]
struct Budget {
    remaining: Option<u64>,
    reset: Option<i64>,
}

/// Sends queries over the REST client's connection pool, with its token.
pub struct Gql {
    url: String,
    budget: Mutex<Budget>,
    max_retries: u32,
    backoff_ms: u64,
    max_wait: u64,
    secondary_wait: u64,
    /// Points spent so far (sum of `rateLimit.cost`).
    spent: Mutex<u64>,
    /// `Pulls` asks waiting to share a query.
    pending: shared::Pending,
}

fn parse_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Gql {
    pub fn new(cfg: &crate::config::GithubConfig) -> Gql {
        Gql {
            url: endpoint(&cfg.base_url),
            budget: Mutex::new(Budget::default()),
            max_retries: cfg.max_retries,
            backoff_ms: cfg.retry_backoff_ms,
            max_wait: cfg.max_rate_limit_wait_seconds,
            secondary_wait: cfg.secondary_limit_wait_seconds,
            spent: Mutex::new(0),
            pending: shared::Pending::default(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Points spent by this client's queries so far.
    pub fn spent(&self) -> u64 {
        *self.spent.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait_reason(&self, client: &Client, stream: &str, seconds: u64, reason: String) {
        client.progress().event(ProgressEvent::RateLimitWait {
            stream: stream.into(),
            seconds,
            reason,
        });
    }

    /// Before a query of `cost` points: when the budget cannot pay it, wait for the reset.
    async fn wait_for_budget(
        &self,
        client: &Client,
        stream: &str,
        cost: u64,
    ) -> Result<(), GqlFail> {
        let (rem, reset) = {
            let b = self.budget.lock().unwrap_or_else(|p| p.into_inner());
            (b.remaining, b.reset)
        };
        let (Some(rem), Some(reset)) = (rem, reset) else {
            return Ok(());
        };
        if rem >= cost || reset <= now() {
            return Ok(());
        }
        let wait = u64::try_from(reset - now()).unwrap_or(0) + 1;
        if wait > self.max_wait {
            return Err(GqlFail::Http(HttpError::Failed(format!(
                "GitHub GraphQL budget spent ({rem} points left, the next query costs {cost}); it resets in {wait} s, more than max_rate_limit_wait_seconds = {}",
                self.max_wait
            ))));
        }
        self.wait_reason(
            client,
            stream,
            wait,
            format!("GraphQL budget: {rem} points left, the next query costs {cost}"),
        );
        client
            .pause(Duration::from_secs(wait))
            .await
            .map_err(GqlFail::Http)?;
        self.budget
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remaining = None;
        Ok(())
    }

    fn note(&self, rl: &RateLimit) {
        *self.spent.lock().unwrap_or_else(|p| p.into_inner()) += rl.cost;
        let mut b = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        b.remaining = Some(rl.remaining);
        b.reset = parse_time(&rl.reset_at).or(b.reset);
    }

    /// POST one query. Rate limits are waited out (within `max_rate_limit_wait_seconds`);
    /// transport errors, 5xx and server errors without data come back as
    /// [`GqlFail::Heavy`] after `max_retries` attempts, for the caller to shrink the page.
    pub async fn query(
        &self,
        client: &Client,
        stream: &str,
        doc: &str,
        vars: serde_json::Value,
        cost: u64,
    ) -> Result<Answer, GqlFail> {
        let body = serde_json::json!({ "query": doc, "variables": vars }).to_string();
        let (mut attempt, mut waits) = (0u32, 0u32);
        loop {
            if client.stopped() {
                return Err(GqlFail::Http(HttpError::Failed(STOPPED.into())));
            }
            self.wait_for_budget(client, stream, cost).await?;
            client.progress().event(ProgressEvent::Request {
                stream: stream.into(),
            });
            let step = self.once(client, &body).await;
            match step {
                Once::Done(a) => return Ok(a),
                Once::Fail(e) => return Err(GqlFail::Http(e)),
                Once::Retry(why) => {
                    attempt += 1;
                    if attempt > self.max_retries {
                        return Err(GqlFail::Heavy(format!(
                            "POST {}: {why} (gave up after {attempt} attempts)",
                            self.url
                        )));
                    }
                    let base = Duration::from_millis(self.backoff_ms);
                    client
                        .pause(flowctl_core::retry::backoff(base, attempt))
                        .await
                        .map_err(GqlFail::Http)?;
                }
                Once::Wait(seconds, reason) => {
                    waits += 1;
                    if waits > 10 {
                        return Err(GqlFail::Http(HttpError::Failed(format!(
                            "POST {}: still rate limited after 10 waits ({reason})",
                            self.url
                        ))));
                    }
                    if seconds > self.max_wait {
                        return Err(GqlFail::Http(HttpError::Failed(format!(
                            "POST {}: {reason}; waiting {seconds} s is more than max_rate_limit_wait_seconds = {}",
                            self.url, self.max_wait
                        ))));
                    }
                    self.wait_reason(client, stream, seconds, reason);
                    client
                        .pause(Duration::from_secs(seconds))
                        .await
                        .map_err(GqlFail::Http)?;
                }
            }
        }
    }

    async fn once(&self, client: &Client, body: &str) -> Once {
        let mut rb = client
            .http()
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT_ENCODING, "gzip")
            .body(body.to_string());
        match client.authorization().await {
            Ok(Some(h)) => rb = rb.header(reqwest::header::AUTHORIZATION, h),
            Ok(None) => {}
            Err(e) => return Once::Fail(e),
        }
        let mut resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => return Once::Retry(format!("request failed: {}", describe(e))),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut wire = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) if wire.len() + c.len() > MAX_BODY => {
                    return Once::Fail(HttpError::Failed(format!(
                        "POST {}: the answer is over {MAX_BODY} bytes (HTTP {status}); no GraphQL page flowctl asks for is that large",
                        self.url
                    )))
                }
                Ok(Some(c)) => wire.extend_from_slice(&c),
                Ok(None) => break,
                Err(e) => {
                    return Once::Retry(format!("reading the body failed: {}", describe(e)))
                }
            }
        }
        // Bodies come gzipped, as REST pages do (reqwest does not inflate: see `http`).
        let body = match encoding(&headers) {
            Ok(Encoding::Gzip) => {
                let mut out = Vec::new();
                match gunzip(&wire, &mut out, MAX_BODY) {
                    Ok(()) => out,
                    Err(e) => return Once::Retry(format!("{e:?} ({} bytes came)", wire.len())),
                }
            }
            Ok(Encoding::Identity) => wire,
            Err(e) => return Once::Retry(e),
        };
        let text = String::from_utf8_lossy(&body);
        judge(
            status,
            &headers,
            &text,
            self.secondary_wait,
            &self.url,
            |rl| self.note(rl),
        )
    }
}

enum Once {
    Done(Answer),
    Fail(HttpError),
    Retry(String),
    Wait(u64, String),
}

fn header_i64(h: &reqwest::header::HeaderMap, name: &str) -> Option<i64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn excerpt(s: &str) -> String {
    s.chars()
        .take(200)
        .collect::<String>()
        .replace(['\n', '\r'], " ")
}

/// Classify one answer.
fn judge(
    status: u16,
    h: &reqwest::header::HeaderMap,
    text: &str,
    secondary_wait: u64,
    url: &str,
    note: impl FnOnce(&RateLimit),
) -> Once {
    let reset_wait = || {
        let reset = header_i64(h, "x-ratelimit-reset").unwrap_or(now() + 60);
        u64::try_from(reset - now()).unwrap_or(0) + 1
    };
    let retry_after = h
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match status {
        200 => {}
        401 => {
            return Once::Fail(HttpError::Unauthorized(format!(
                "POST {url}: token rejected (HTTP 401): {}",
                excerpt(text)
            )))
        }
        403 | 429 => {
            if let Some(s) = retry_after {
                return Once::Wait(
                    s,
                    format!("secondary rate limit (HTTP {status}, Retry-After {s} s)"),
                );
            }
            if header_i64(h, "x-ratelimit-remaining") == Some(0) {
                return Once::Wait(reset_wait(), "GraphQL rate limit exhausted".into());
            }
            let lower = text.to_lowercase();
            if lower.contains("secondary rate limit") || lower.contains("abuse") || status == 429 {
                return Once::Wait(secondary_wait, "secondary rate limit".into());
            }
            return Once::Fail(HttpError::Failed(format!(
                "POST {url}: forbidden (HTTP {status}): {}",
                excerpt(text)
            )));
        }
        500..=599 => return Once::Retry(format!("HTTP {status}: {}", excerpt(text))),
        _ => {
            return Once::Fail(HttpError::Failed(format!(
                "POST {url}: unexpected answer (HTTP {status}): {}",
                excerpt(text)
            )))
        }
    }
    let env: Envelope = match serde_json::from_str(text) {
        Ok(e) => e,
        Err(e) => {
            return Once::Retry(format!(
                "malformed or truncated JSON ({} bytes): {e}",
                text.len()
            ))
        }
    };
    if env
        .errors
        .iter()
        .any(|e| e.kind.as_deref() == Some("RATE_LIMITED"))
    {
        return Once::Wait(
            reset_wait(),
            "GraphQL rate limit exhausted (RATE_LIMITED)".into(),
        );
    }
    let data = env.data.map(|d| d.get()).filter(|d| *d != "null");
    let Some(data) = data else {
        let msgs: Vec<String> = env.errors.iter().map(|e| e.message.clone()).collect();
        if msgs.is_empty() {
            return Once::Retry("an answer with neither data nor errors".into());
        }
        if env.errors.iter().any(|e| {
            e.extensions
                .as_ref()
                .is_some_and(|x| x.get("code").is_some())
        }) {
            return Once::Fail(HttpError::Failed(format!(
                "POST {url}: GitHub refused the query: {} (a GitHub Enterprise Server older than GitHub's current schema? `api: rest` reads the same tables)",
                msgs.join("; ")
            )));
        }
        // GitHub answers a query that timed out with errors and no data.
        return Once::Retry(format!("errors without data: {}", msgs.join("; ")));
    };
    #[derive(Deserialize)]
    struct Rl {
        #[serde(rename = "rateLimit", default)]
        rate_limit: Option<RateLimit>,
    }
    if let Ok(Rl {
        rate_limit: Some(rl),
    }) = serde_json::from_str::<Rl>(data)
    {
        note(&rl);
    }
    Once::Done(Answer {
        data: data.to_string(),
        errors: env.errors,
    })
}

#[cfg(test)]
mod tests {
    use super::{endpoint, judge, Once};
    use reqwest::header::HeaderMap;

    #[test]
    fn a_refused_query_fails_at_once_and_a_timed_out_one_is_retried() {
        // GitHub's answer to a field it does not have (graphql-ruby's shape).
        let refused = r#"{"errors":[{"path":["query Pulls","repository","pullRequests","nodes","fullDatabaseId"],"extensions":{"code":"undefinedField","typeName":"PullRequest","fieldName":"fullDatabaseId"},"locations":[{"line":9,"column":9}],"message":"Field 'fullDatabaseId' doesn't exist on type 'PullRequest'"}]}"#;
        match judge(200, &HeaderMap::new(), refused, 1, "u", |_| {}) {
            Once::Fail(e) => assert!(e.to_string().contains("api: rest"), "{e}"),
            _ => panic!("a refused query must not be retried"),
        }
        let timeout = r#"{"data":null,"errors":[{"message":"Something went wrong while executing your query. This may be the result of a timeout, or it could be a GitHub bug."}]}"#;
        assert!(matches!(
            judge(200, &HeaderMap::new(), timeout, 1, "u", |_| {}),
            Once::Retry(_)
        ));
        let limited = r#"{"errors":[{"type":"RATE_LIMITED","message":"API rate limit exceeded for user ID 1."}]}"#;
        assert!(matches!(
            judge(200, &HeaderMap::new(), limited, 1, "u", |_| {}),
            Once::Wait(..)
        ));
    }

    #[test]
    fn endpoint_for_github_com_ghes_and_other_roots() {
        assert_eq!(
            endpoint("https://api.github.com"),
            "https://api.github.com/graphql"
        );
        assert_eq!(
            endpoint("https://ghe.example.com/api/v3/"),
            "https://ghe.example.com/api/graphql"
        );
        assert_eq!(
            endpoint("http://127.0.0.1:9000"),
            "http://127.0.0.1:9000/graphql"
        );
    }
}
