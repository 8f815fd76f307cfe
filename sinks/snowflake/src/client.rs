//! A small client for Snowflake's SQL API v2: submit one statement, follow it through
//! 202 polling to its result, retry transient failures with the same request id (so a
//! statement never runs twice), cancel it if the caller gives up while it runs.

use crate::jwt::JwtSource;
use flowctl_core::{PluginError, Result};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const MAX_ATTEMPTS: u32 = 5;

/// Session context sent with every statement, each name as Snowflake stores it (the SQL
/// API's `database`, `schema`, `warehouse` and `role` fields are case-sensitive).
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub database: String,
    pub schema: String,
    pub warehouse: Option<String>,
    pub role: Option<String>,
}

/// A finished statement's result: column names and rows of strings (None = SQL NULL).
#[derive(Debug, Clone, Default)]
pub struct ResultSet {
    pub handle: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl ResultSet {
    /// Index of the column named `name`, case-insensitively.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
    }

    /// Sum of an integer column over all rows; 0 when the column is absent (Snowflake
    /// answers a COPY of zero files with a single `status` column).
    pub fn sum(&self, name: &str) -> Result<u64> {
        let Some(i) = self.column(name) else {
            return Ok(0);
        };
        let mut total = 0u64;
        for row in &self.rows {
            if let Some(Some(v)) = row.get(i) {
                let n = v.trim().parse::<u64>().map_err(|_| {
                    PluginError::data(format!(
                        "snowflake statement {}: column {name:?} holds {v:?}, expected a count",
                        self.handle
                    ))
                })?;
                total = total.saturating_add(n);
            }
        }
        Ok(total)
    }

    /// Values of one column (absent column: empty).
    pub fn strings(&self, name: &str) -> Vec<Option<String>> {
        match self.column(name) {
            Some(i) => self
                .rows
                .iter()
                .map(|r| r.get(i).cloned().flatten())
                .collect(),
            None => Vec::new(),
        }
    }
}

/// The SQL API client.
pub struct SqlApi {
    http: reqwest::Client,
    base: String,
    jwt: Arc<JwtSource>,
    ctx: Context,
    timeout_secs: u64,
    poll: Duration,
}

impl std::fmt::Debug for SqlApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlApi")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

enum Answer {
    Done(Value),
    Running(String),
}

impl SqlApi {
    pub fn new(
        base: String,
        jwt: Arc<JwtSource>,
        ctx: Context,
        timeout_secs: u64,
        poll: Duration,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("flowctl/", env!("CARGO_PKG_VERSION")))
            // Snowflake answers 202 after ~45 s of running; anything much longer is a hang.
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| {
                PluginError::other(format!("snowflake: HTTP client: {e}")).with_source(e)
            })?;
        Ok(SqlApi {
            http,
            base,
            jwt,
            ctx,
            timeout_secs,
            poll,
        })
    }

    /// Run one statement to completion and return its result.
    pub async fn execute(&self, statement: &str) -> Result<ResultSet> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let body = request_body(&self.ctx, statement, self.timeout_secs);
        let url = format!("{}/api/v2/statements", self.base);
        let answer = self
            .send_retrying(statement, |retry| {
                let mut query = vec![("requestId", request_id.clone())];
                if retry {
                    query.push(("retry", "true".into()));
                }
                self.http.post(&url).query(&query).json(&body)
            })
            .await?;
        let first = match answer {
            Answer::Done(v) => v,
            Answer::Running(handle) => self.wait(&handle, statement).await?,
        };
        self.result_set(first, statement).await
    }

    /// Poll a running statement until it finishes; cancels it if this future is dropped.
    async fn wait(&self, handle: &str, statement: &str) -> Result<Value> {
        let mut guard = CancelOnDrop {
            armed: Some((
                self.http.clone(),
                format!("{}/api/v2/statements/{handle}/cancel", self.base),
                self.jwt.clone(),
            )),
        };
        let url = format!("{}/api/v2/statements/{handle}", self.base);
        loop {
            tokio::time::sleep(self.poll).await;
            match self.send_retrying(statement, |_| self.http.get(&url)).await {
                Ok(Answer::Running(_)) => continue,
                Ok(Answer::Done(v)) => {
                    guard.armed = None;
                    return Ok(v);
                }
                Err(e) => {
                    guard.armed = None;
                    return Err(e);
                }
            }
        }
    }

    /// Send a request, retrying what [`PluginError::retryable`] calls transient (network
    /// errors, 429 and 5xx) with backoff. `make(retry)` builds the request; `retry` is
    /// true from the second attempt on.
    async fn send_retrying(
        &self,
        statement: &str,
        make: impl Fn(bool) -> reqwest::RequestBuilder,
    ) -> Result<Answer> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.jwt.token()?;
            let sent = make(attempt > 1)
                .bearer_auth(token)
                .header("X-Snowflake-Authorization-Token-Type", "KEYPAIR_JWT")
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await;
            let failed = match sent {
                Ok(resp) => match self.answer(resp, statement).await {
                    Ok(answer) => return Ok(answer),
                    Err(e) => e,
                },
                Err(e) => PluginError::external_from(without_url(&e), e.without_url()),
            };
            if !failed.retryable() {
                return Err(failed);
            }
            if attempt >= MAX_ATTEMPTS {
                // Still transient: a later run may succeed, and says so to the caller.
                return Err(PluginError::transient(format!(
                    "snowflake {}: gave up after {attempt} attempts, last: {failed}; statement: {}",
                    self.base,
                    excerpt(statement)
                ))
                .with_source(failed));
            }
            tracing::warn!(base = %self.base, attempt, reason = %failed, "snowflake request failed, retrying with the same request id");
            let base = Duration::from_millis(500);
            tokio::time::sleep(flowctl_core::retry::backoff(base, attempt)).await;
        }
    }

    async fn answer(&self, resp: reqwest::Response, statement: &str) -> Result<Answer> {
        let status = resp.status();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(PluginError::transient(format!("HTTP {status}")));
        }
        let text = resp.text().await.map_err(|e| {
            let msg = format!(
                "snowflake {}: reading the answer: {}",
                self.base,
                without_url(&e)
            );
            PluginError::external_from(msg, e.without_url())
        })?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let field = |k: &str| {
            body.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        match status {
            StatusCode::OK => Ok(Answer::Done(body)),
            StatusCode::ACCEPTED => {
                let handle = field("statementHandle");
                if handle.is_empty() {
                    return Err(PluginError::data(format!(
                        "snowflake {}: 202 without statementHandle",
                        self.base
                    )));
                }
                Ok(Answer::Running(handle))
            }
            StatusCode::UNPROCESSABLE_ENTITY => Err(PluginError::external(format!(
                "snowflake statement failed: {} (code {}, SQLSTATE {}, handle {}); statement: {}",
                field("message"),
                field("code"),
                field("sqlState"),
                field("statementHandle"),
                excerpt(statement)
            ))),
            StatusCode::REQUEST_TIMEOUT => Err(PluginError::external(format!(
                "snowflake statement exceeded statement_timeout_seconds ({} s) and was cancelled; statement: {}",
                self.timeout_secs,
                excerpt(statement)
            ))),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(PluginError::external(format!(
                "snowflake {} refused the key-pair JWT (HTTP {status}): {}. Check account, user and that the user's RSA_PUBLIC_KEY_FP equals {}",
                self.base,
                field("message"),
                self.jwt.fingerprint()
            ))),
            _ => Err(PluginError::external(format!(
                "snowflake {}: unexpected HTTP {status}: {}",
                self.base,
                excerpt(&text)
            ))),
        }
    }

    /// Parse a 200 answer, fetching the further partitions of a large result.
    async fn result_set(&self, first: Value, statement: &str) -> Result<ResultSet> {
        let handle = first
            .get("statementHandle")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let meta = first.get("resultSetMetaData");
        let columns = meta
            .and_then(|m| m.get("rowType"))
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .map(|c| {
                        c.get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string()
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut rows = rows_of(&first, &self.base)?;
        let partitions = meta
            .and_then(|m| m.get("partitionInfo"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let url = format!("{}/api/v2/statements/{handle}", self.base);
        for p in 1..partitions {
            let answer = self
                .send_retrying(statement, |_| {
                    self.http.get(&url).query(&[("partition", p)])
                })
                .await?;
            if let Answer::Done(v) = answer {
                rows.extend(rows_of(&v, &self.base)?);
            }
        }
        Ok(ResultSet {
            handle,
            columns,
            rows,
        })
    }
}

/// The body of `POST /api/v2/statements`. Unset warehouse and role are left out, so
/// Snowflake applies the user's defaults. `timezone` is UTC on every statement: Parquet
/// timestamps then land in TIMESTAMP_TZ as +00:00 whatever the account's default zone
/// (Snowflake's SQL API reference, "Body of the POST request", `parameters`).
pub fn request_body(ctx: &Context, statement: &str, timeout_secs: u64) -> Value {
    let mut body = json!({
        "statement": statement,
        "timeout": timeout_secs,
        "database": ctx.database,
        "schema": ctx.schema,
        "parameters": { "timezone": "UTC" },
    });
    for (key, value) in [("warehouse", &ctx.warehouse), ("role", &ctx.role)] {
        if let Some(v) = value {
            body[key] = Value::String(v.clone());
        }
    }
    body
}

fn rows_of(body: &Value, base: &str) -> Result<Vec<Vec<Option<String>>>> {
    let Some(data) = body.get("data") else {
        return Ok(Vec::new());
    };
    let rows = data.as_array().ok_or_else(|| {
        PluginError::data(format!("snowflake {base}: `data` is not an array of rows"))
    })?;
    rows.iter()
        .map(|row| {
            let cells = row.as_array().ok_or_else(|| {
                PluginError::data(format!("snowflake {base}: a row in `data` is not an array"))
            })?;
            Ok(cells
                .iter()
                .map(|c| match c {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                })
                .collect())
        })
        .collect()
}

/// The first line of a statement, shortened, for error messages.
fn excerpt(statement: &str) -> String {
    let line = statement.lines().next().unwrap_or("");
    let short: String = line.chars().take(200).collect();
    if short.len() < statement.len() {
        format!("{short} …")
    } else {
        short
    }
}

/// A reqwest error with its cause chain (its Display alone hides the cause).
fn without_url(e: &reqwest::Error) -> String {
    use std::error::Error;
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    match e.source() {
        Some(cause) => format!("{kind}: {}", flowctl_core::error_chain(cause)),
        None => kind.to_string(),
    }
}

/// Cancels the statement when the poll loop is dropped before it finished (Ctrl-C in
/// the engine drops the load future), so an abandoned MERGE does not run on unseen.
struct CancelOnDrop {
    armed: Option<(reqwest::Client, String, Arc<JwtSource>)>,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some((http, url, jwt)) = self.armed.take() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        handle.spawn(async move {
            let Ok(token) = jwt.token() else { return };
            let sent = http
                .post(&url)
                .bearer_auth(token)
                .header("X-Snowflake-Authorization-Token-Type", "KEYPAIR_JWT")
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await;
            match sent {
                Ok(r) => tracing::info!(url = %url, status = %r.status(), "cancelled snowflake statement"),
                Err(e) => tracing::warn!(url = %url, error = %e, "could not cancel snowflake statement"),
            }
        });
    }
}
