//! The HTTP client: a rate budget per token (see [`crate::tokens`]), retries with backoff
//! and jitter, waits for primary and secondary rate limits, conditional requests, `Link`
//! pagination. The token is attached only to URLs on the configured base URL's origin and
//! never logged.

use crate::auth::Auth;
use crate::config::GithubConfig;
use crate::gunzip::{encoding, gunzip, Encoding, GunzipError};
use crate::tokens::{Candidates, Tokens};
use flowctl_core::error::{is_transient, transient_status};
use flowctl_core::progress::{Progress, ProgressEvent};
use flowctl_core::StopSignal;
use reqwest::header::{
    HeaderMap, ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, ETAG, IF_NONE_MATCH, LINK, RETRY_AFTER,
};
use reqwest::StatusCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

/// Why a request gave up.
#[derive(Debug, Clone)]
pub enum HttpError {
    /// 404: the thing is gone (or invisible to the token).
    NotFound(String),
    /// 401: the token was rejected. Fatal for the whole read.
    Unauthorized(String),
    /// 409: the resource cannot answer in its current state (a repository's commits:
    /// "Git Repository is empty."). The caller decides what it means.
    Conflict(String),
    /// Anything else, after retries and waits; user-facing.
    Failed(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::NotFound(m)
            | HttpError::Unauthorized(m)
            | HttpError::Conflict(m)
            | HttpError::Failed(m) => f.write_str(m),
        }
    }
}

/// A fetched list page or single object.
pub enum Fetched<T> {
    NotModified,
    Page {
        data: T,
        etag: Option<String>,
        next: Option<String>,
        /// The client's parse turn this page was parsed under (see [`ParseTurn`]).
        turn: ParseTurn,
    },
}

/// The right to inflate and parse a successful body: one body at a time per client.
///
/// Requests run concurrently (`max_concurrency`), but the rows a page yields can only go
/// as fast as the engine takes batches. Without turns, every finished request would hold
/// its inflated body and built batches while waiting; with them it holds only the body as
/// it came (gzipped), and the next body is inflated once the page before it was handed on.
///
/// A caller keeps the turn of a page until its batches are sent, and must drop it
/// before it requests anything else: a task holding a turn that waits for another
/// would wait forever. Bind it by name: a `..` in the pattern leaves it in the matched
/// value, which lets go of it only when that value goes out of scope.
#[must_use = "hold the turn until the page's rows are handed on, then drop it"]
pub struct ParseTurn(Option<OwnedSemaphorePermit>);

impl ParseTurn {
    /// No turn (a body that needed none, or a page built without the client).
    pub fn none() -> ParseTurn {
        ParseTurn(None)
    }

    /// Whether this holds the client's turn (for tests).
    pub fn is_held(&self) -> bool {
        self.0.is_some()
    }
}

pub struct Client {
    http: reqwest::Client,
    base: Url,
    /// The credentials and their rate budgets.
    auth: Tokens,
    max_retries: u32,
    backoff_ms: u64,
    max_wait: u64,
    reserve: u64,
    secondary_wait: u64,
    progress: Progress,
    /// Bodies as they came (gzip, ~200 KB a pulls page) and inflated JSON (~1.7 MB) are
    /// pooled apart, so a buffer is reused for the size it grew to.
    wires: BodyPool,
    bodies: BodyPool,
    /// One permit: the [`ParseTurn`] to inflate and parse a successful body.
    turns: Arc<Semaphore>,
    /// Most bytes a response body may hold, as it came and once inflated
    /// ([`MAX_BODY`]; smaller in tests).
    max_body: usize,
    /// The engine's stop request (a run's deadline): no new request starts after it, and
    /// a rate-limit wait ends.
    stop: StopSignal,
}

/// The failure of every request asked for after the engine's stop request.
pub(crate) const STOPPED: &str = "not requested: the run stopped at its deadline";

/// Reused response-body buffers. A pulls page is ~1.7 MB: a fresh buffer for each would be
/// a fresh `mmap` (flowctl keeps glibc's mmap threshold at 1 MiB, `src/main.rs`), ~430
/// page faults to fill and an `munmap` after, for every page of a sync. A buffer taken
/// from here is already mapped. At most `keep` buffers (as many as are in use at once:
/// one per concurrent request for bodies as they came, one for inflated bodies, which
/// are inflated a `ParseTurn` at a time) of at most `MAX_POOLED_BODY` bytes are kept; larger
/// ones are freed after use.
struct BodyPool {
    free: Mutex<Vec<Vec<u8>>>,
    keep: usize,
}

/// Largest buffer kept for reuse (a pulls page is ~1.7 MB, a commit with files can be more).
const MAX_POOLED_BODY: usize = 8 << 20;
/// Largest `Content-Length` reserved up front (a hint from the server, not trusted further).
const MAX_BODY_HINT: u64 = 64 << 20;
/// Most a response body may hold, as it came and once inflated: far above any page GitHub
/// sends (a pulls page is ~1.7 MB, a commit with 300 files a few MB), low enough that a
/// hostile or broken server cannot make one response take the machine's memory.
const MAX_BODY: usize = 512 << 20;

impl BodyPool {
    /// A pool keeping at most `keep` buffers.
    fn new(keep: usize) -> BodyPool {
        BodyPool {
            free: Mutex::new(Vec::new()),
            keep,
        }
    }

    fn take(&self) -> Vec<u8> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        free.pop().unwrap_or_default()
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        if buf.capacity() > MAX_POOLED_BODY {
            return;
        }
        buf.clear();
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < self.keep {
            free.push(buf);
        }
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The `rel="next"` target of a `Link` header, tolerant of spacing, quoting and order.
pub fn next_link(header: &str) -> Option<String> {
    for part in header.split(',') {
        let mut pieces = part.split(';');
        let target = pieces.next().unwrap_or("").trim();
        let Some(url) = target.strip_prefix('<').and_then(|t| t.strip_suffix('>')) else {
            continue;
        };
        let is_next = pieces.any(|p| {
            let p = p.trim();
            p.strip_prefix("rel=")
                .map(|v| {
                    v.trim_matches('"')
                        .split_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
                })
                .unwrap_or(false)
        });
        if is_next {
            return Some(url.to_string());
        }
    }
    None
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

fn excerpt(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(200)]);
    s.replace(['\n', '\r'], " ")
}

/// A reqwest error with its cause chain ("error sending request: client error (Connect):
/// invalid peer certificate: UnknownIssuer"), without the URL (the caller names it).
/// Causes are transport errors and never carry headers, so no token can leak.
/// A request that failed before an answer: tried again when the cause is transient (core's
/// one rule: timeouts, refused or cut connections), failed at once otherwise.
fn transport_failure<T>(url: &str, what: &str, e: reqwest::Error) -> Step<T> {
    let transient = is_transient(&e);
    let why = format!("{what}: {}", describe(e));
    if transient {
        Step::Retry(why)
    } else {
        Step::Done(Err(HttpError::Failed(format!("GET {url}: {why}"))))
    }
}

pub(crate) fn describe(e: reqwest::Error) -> String {
    flowctl_core::error_chain(&e.without_url())
}

/// `Retry-After` in seconds, given as seconds or as an HTTP date (RFC 9110).
fn retry_after(h: &HeaderMap) -> Option<u64> {
    let v = h.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(s);
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?.timestamp();
    Some((at - now_secs()).max(0) as u64)
}

fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// What one GET asks: the URL, its ETag, the stream it counts for, and how many secondary
/// rate-limit waits it has had.
#[derive(Clone, Copy)]
struct Ask<'a> {
    url: &'a str,
    etag: Option<&'a str>,
    stream: &'a str,
    secondary: u32,
}

enum Step<T> {
    Done(Result<Fetched<T>, HttpError>),
    Retry(String),
    Wait {
        seconds: u64,
        reason: String,
    },
    /// The token's quota is spent and another token has budget: ask again at once.
    Switch,
}

/// The `tls_ca_file` / `tls_insecure_skip_verify` settings of the one endpoint this
/// client talks to. Skipping verification is announced on every run, in the log and in
/// the run summary's warnings.
fn tls(
    mut builder: reqwest::ClientBuilder,
    cfg: &GithubConfig,
    progress: &Progress,
) -> Result<reqwest::ClientBuilder, String> {
    if let Some(path) = &cfg.tls_ca_file {
        let shown = path.display();
        let pem = std::fs::read(path)
            .map_err(|e| format!("source.tls_ca_file {shown}: cannot read: {e}"))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("source.tls_ca_file {shown}: not PEM certificates: {e}"))?;
        if certs.is_empty() {
            return Err(format!(
                "source.tls_ca_file {shown}: no certificate found (expected PEM `BEGIN CERTIFICATE` blocks)"
            ));
        }
        for c in certs {
            builder = builder.add_root_certificate(c);
        }
    }
    if cfg.tls_insecure_skip_verify {
        let message = format!(
            "TLS certificate verification is OFF for {} (source.tls_insecure_skip_verify): \
             anyone on the network path can read the token and forge responses",
            cfg.base_url
        );
        // The engine logs warnings as they happen and lists them in the run summary.
        progress.event(ProgressEvent::Warning {
            stream: "source".into(),
            message,
        });
        builder = builder.danger_accept_invalid_certs(true);
    }
    Ok(builder)
}

impl Client {
    pub fn new(cfg: &GithubConfig, auth: Auth, progress: Progress) -> Result<Client, String> {
        let base =
            Url::parse(&cfg.base_url).map_err(|e| format!("base_url `{}`: {e}", cfg.base_url))?;
        let origin = base.clone();
        // Follow redirects only within the API's origin: a token must never reach
        // another host, and reqwest would otherwise follow cross-host redirects.
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 || !same_origin(attempt.url(), &origin) {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        // Bodies are inflated by `gunzip` in one call (much faster than reqwest's
        // streaming decoder), so reqwest neither asks for gzip nor decodes it.
        let builder = reqwest::Client::builder()
            .no_gzip()
            .user_agent(concat!("flowctl/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(cfg.request_timeout_seconds))
            .connect_timeout(Duration::from_secs(cfg.request_timeout_seconds.min(30)))
            .redirect(policy);
        let http = tls(builder, cfg, &progress)?
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Client {
            http,
            base,
            auth: Tokens::new(auth, cfg.rate_limit_reserve, progress.clone()),
            max_retries: cfg.max_retries,
            backoff_ms: cfg.retry_backoff_ms,
            max_wait: cfg.max_rate_limit_wait_seconds,
            reserve: cfg.rate_limit_reserve,
            secondary_wait: cfg.secondary_limit_wait_seconds,
            wires: BodyPool::new(cfg.max_concurrency),
            // Successful bodies are inflated one at a time (`ParseTurn`); error answers
            // inflate without a turn, into a fresh buffer when this one is in use.
            bodies: BodyPool::new(1),
            turns: Arc::new(Semaphore::new(1)),
            max_body: MAX_BODY,
            progress,
            stop: StopSignal::never(),
        })
    }

    /// Stop starting requests, and end waits, once `stop` fires.
    pub fn with_stop(mut self, stop: StopSignal) -> Self {
        self.stop = stop;
        self
    }

    /// Whether the engine asked the read to stop.
    pub fn stopped(&self) -> bool {
        self.stop.is_set()
    }

    /// Sleeps `d`, or less when the engine asks the read to stop.
    pub(crate) async fn pause(&self, d: Duration) -> Result<(), HttpError> {
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = self.stop.wait() => Err(HttpError::Failed(STOPPED.into())),
        }
    }

    /// Bound response bodies at `bytes` instead of 512 MiB, as they came and once inflated
    /// (tests of the bound, which cannot afford to send 512 MiB).
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// `{base_url}/{path}` (path without a leading slash).
    pub fn url(&self, path_and_query: &str) -> String {
        format!(
            "{}/{}",
            self.base.as_str().trim_end_matches('/'),
            path_and_query
        )
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    pub(crate) fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The `Authorization` header value for a request to the API origin (the GraphQL
    /// endpoint shares it).
    pub(crate) async fn authorization(&self) -> Result<Option<String>, HttpError> {
        self.auth.header(self).await
    }

    fn event(&self, e: ProgressEvent) {
        self.progress.event(e);
    }

    /// GET `url` and parse the body with `parse`. Transport errors, 5xx and bodies
    /// `parse` rejects are retried; rate limits are waited out; 304 is returned as
    /// `NotModified` when `etag` was sent.
    pub async fn get<T>(
        &self,
        stream: &str,
        url: &str,
        etag: Option<&str>,
        mut parse: impl FnMut(&[u8]) -> Result<T, String>,
    ) -> Result<Fetched<T>, HttpError> {
        let parsed = Url::parse(url)
            .map_err(|e| HttpError::Failed(format!("GET {url}: invalid URL: {e}")))?;
        if !same_origin(&parsed, &self.base) {
            return Err(HttpError::Failed(format!(
                "GET {url}: refusing to follow a link to another host than {} (the token is only sent there)",
                self.base
            )));
        }
        let cands = self.auth.candidates(self, url).await?;
        let (mut attempt, mut secondary, mut switches) = (0u32, 0u32, 0usize);
        loop {
            if self.stopped() {
                return Err(HttpError::Failed(STOPPED.into()));
            }
            let slot = self.wait_for_budget(stream, &cands).await?;
            self.event(ProgressEvent::Request {
                stream: stream.into(),
            });
            // Each switch leaves a spent token behind, so there are at most as many as tokens.
            let switch = (switches < cands.len()).then_some(&cands);
            match self
                .once(
                    &Ask {
                        url,
                        etag,
                        stream,
                        secondary,
                    },
                    &mut parse,
                    slot,
                    switch,
                )
                .await
            {
                // Which of several credentials was refused.
                Step::Done(Err(HttpError::Unauthorized(m))) => {
                    return Err(HttpError::Unauthorized(format!(
                        "{m} (credential: {})",
                        self.auth.name(slot)
                    )))
                }
                Step::Done(r) => return r,
                Step::Switch => switches += 1,
                Step::Retry(why) => {
                    attempt += 1;
                    if attempt > self.max_retries {
                        return Err(HttpError::Failed(format!(
                            "GET {url}: {why} (gave up after {attempt} attempts)"
                        )));
                    }
                    let base = Duration::from_millis(self.backoff_ms);
                    self.pause(flowctl_core::retry::backoff(base, attempt))
                        .await?;
                }
                Step::Wait { seconds, reason } => {
                    secondary += 1;
                    if secondary > 10 {
                        return Err(HttpError::Failed(format!(
                            "GET {url}: still rate limited after 10 waits ({reason})"
                        )));
                    }
                    self.event(ProgressEvent::RateLimitWait {
                        stream: stream.into(),
                        seconds,
                        reason,
                    });
                    self.pause(Duration::from_secs(seconds)).await?;
                }
            }
        }
    }

    /// One request with the credential in `slot`; `switch` holds the other candidates
    /// when a refusal for a spent quota may go to one of them.
    async fn once<T>(
        &self,
        ask: &Ask<'_>,
        parse: &mut impl FnMut(&[u8]) -> Result<T, String>,
        slot: usize,
        switch: Option<&Candidates>,
    ) -> Step<T> {
        let Ask {
            url, etag, stream, ..
        } = *ask;
        let mut rb = self
            .http
            .get(url)
            .header(ACCEPT, "application/vnd.github+json")
            .header(ACCEPT_ENCODING, "gzip")
            .header("X-GitHub-Api-Version", "2022-11-28");
        match self.auth.header_of(self, slot).await {
            Ok(Some(h)) => rb = rb.header(AUTHORIZATION, h),
            Ok(None) => {}
            Err(e) => return Step::Done(Err(e)),
        }
        if let Some(e) = etag {
            rb = rb.header(IF_NONE_MATCH, e);
        }
        let mut resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => return transport_failure(url, "request failed", e),
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        self.auth.note(slot, status.as_u16(), &headers);
        if matches!(status.as_u16(), 403 | 429)
            && header_u64(&headers, "x-ratelimit-remaining") == Some(0)
            && switch.is_some_and(|c| self.auth.another_usable(slot, c))
        {
            return Step::Switch;
        }
        if status == StatusCode::NOT_MODIFIED {
            self.event(ProgressEvent::NotModified {
                stream: stream.into(),
            });
            return Step::Done(Ok(Fetched::NotModified));
        }
        let coding = match encoding(&headers) {
            Ok(c) => c,
            Err(e) if status.is_success() => {
                return Step::Done(Err(HttpError::Failed(format!(
                    "GET {url}: unexpected answer (HTTP {}): {e}",
                    status.as_u16()
                ))))
            }
            // An error answer (a proxy's 502, say) is still judged by its status and
            // headers; its body is only quoted.
            Err(_) => Encoding::Identity,
        };
        let mut wire = self.wires.take();
        if let Some(n) = resp.content_length() {
            wire.reserve(n.min(MAX_BODY_HINT) as usize);
        }
        let step = loop {
            match resp.chunk().await {
                Ok(Some(chunk)) if wire.len().saturating_add(chunk.len()) > self.max_body => {
                    break Step::Done(Err(HttpError::Failed(format!(
                        "GET {url}: the response body is over {} bytes (HTTP {}), the most \
                         flowctl reads in one response; no GitHub page is that large",
                        self.max_body,
                        status.as_u16()
                    ))));
                }
                Ok(Some(chunk)) => wire.extend_from_slice(&chunk),
                Ok(None) => {
                    // Wait for the turn holding only the body as it came: see `ParseTurn`.
                    let turn = if status.is_success() {
                        ParseTurn(self.turns.clone().acquire_owned().await.ok())
                    } else {
                        ParseTurn::none()
                    };
                    let mut step =
                        self.inflate_and_judge(ask, status, &headers, coding, &wire, parse);
                    if let Step::Done(Ok(Fetched::Page { turn: t, .. })) = &mut step {
                        *t = turn;
                    }
                    break step;
                }
                Err(e) => {
                    break transport_failure(url, "reading the body failed", e);
                }
            }
        };
        self.wires.give_back(wire);
        step
    }

    /// `judge` the body as it came, or once inflated when it came gzipped.
    fn inflate_and_judge<T>(
        &self,
        ask: &Ask<'_>,
        status: StatusCode,
        headers: &HeaderMap,
        coding: Encoding,
        wire: &[u8],
        parse: &mut impl FnMut(&[u8]) -> Result<T, String>,
    ) -> Step<T> {
        let url = ask.url;
        if coding == Encoding::Identity {
            return self.judge(ask, status, headers, wire, parse);
        }
        let mut body = self.bodies.take();
        let step = match gunzip(wire, &mut body, self.max_body) {
            Ok(()) => self.judge(ask, status, headers, &body, parse),
            // An error answer whose body does not inflate (a proxy's plain 404 page
            // marked gzip, say) is still judged by its status; its body is quoted as it came.
            Err(GunzipError::Corrupt(_)) if !status.is_success() => {
                self.judge(ask, status, headers, wire, parse)
            }
            Err(GunzipError::Corrupt(e)) => Step::Retry(format!("{e} ({} bytes came)", wire.len())),
            Err(GunzipError::TooLarge(e)) => Step::Done(Err(HttpError::Failed(format!(
                "GET {url}: {e} (HTTP {})",
                status.as_u16()
            )))),
        };
        self.bodies.give_back(body);
        step
    }

    fn judge<T>(
        &self,
        ask: &Ask<'_>,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        parse: &mut impl FnMut(&[u8]) -> Result<T, String>,
    ) -> Step<T> {
        let Ask { url, secondary, .. } = *ask;
        let fail = |what: &str| {
            format!(
                "GET {url}: {what} (HTTP {}): {}",
                status.as_u16(),
                excerpt(body)
            )
        };
        if status.is_success() {
            return match parse(body) {
                Ok(data) => {
                    let etag = headers
                        .get(ETAG)
                        .and_then(|v| v.to_str().ok())
                        .map(String::from);
                    let next = headers
                        .get(LINK)
                        .and_then(|v| v.to_str().ok())
                        .and_then(next_link);
                    Step::Done(Ok(Fetched::Page {
                        data,
                        etag,
                        next,
                        turn: ParseTurn::none(),
                    }))
                }
                Err(e) => Step::Retry(format!(
                    "malformed or truncated JSON ({} bytes): {e}",
                    body.len()
                )),
            };
        }
        match status.as_u16() {
            401 => Step::Done(Err(HttpError::Unauthorized(fail("token rejected")))),
            404 => Step::Done(Err(HttpError::NotFound(fail("not found")))),
            409 => Step::Done(Err(HttpError::Conflict(fail("conflict")))),
            403 | 429 => self
                .limited(status, headers, body, secondary)
                .unwrap_or_else(|| Step::Done(Err(HttpError::Failed(fail("forbidden"))))),
            s if transient_status(s) => {
                Step::Retry(format!("HTTP {}: {}", status.as_u16(), excerpt(body)))
            }
            _ if status.is_redirection() => Step::Done(Err(HttpError::Failed(fail(
                "redirect refused (only same-host redirects are followed)",
            )))),
            _ => Step::Done(Err(HttpError::Failed(fail("unexpected answer")))),
        }
    }

    /// Classify a 403/429: primary limit (remaining 0), secondary limit, or neither.
    fn limited<T>(
        &self,
        status: StatusCode,
        h: &HeaderMap,
        body: &[u8],
        secondary: u32,
    ) -> Option<Step<T>> {
        if header_u64(h, "x-ratelimit-remaining") == Some(0) {
            let reset = header_u64(h, "x-ratelimit-reset")
                .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
                .unwrap_or(now_secs().saturating_add(60));
            let wait = u64::try_from(reset.saturating_sub(now_secs()))
                .unwrap_or(0)
                .saturating_add(1);
            if wait > self.max_wait {
                return Some(Step::Done(Err(HttpError::Failed(format!(
                    "GitHub rate limit exhausted; it resets at {} ({wait} s away, more than max_rate_limit_wait_seconds = {})",
                    fmt_time(reset),
                    self.max_wait
                )))));
            }
            return Some(Step::Wait {
                seconds: wait,
                reason: format!("primary rate limit, resets at {}", fmt_time(reset)),
            });
        }
        let text = String::from_utf8_lossy(&body[..body.len().min(2000)]).to_lowercase();
        if let Some(s) = retry_after(h) {
            if s > self.max_wait {
                return Some(Step::Done(Err(HttpError::Failed(format!(
                    "GitHub secondary rate limit asks to wait {s} s (Retry-After), more than max_rate_limit_wait_seconds = {}",
                    self.max_wait
                )))));
            }
            return Some(Step::Wait {
                seconds: s,
                reason: format!(
                    "secondary rate limit (HTTP {}, Retry-After {s} s)",
                    status.as_u16()
                ),
            });
        }
        if text.contains("secondary rate limit") || text.contains("abuse") || status.as_u16() == 429
        {
            let s = self.secondary_wait.saturating_mul(1 << secondary.min(6));
            if s > self.max_wait {
                return Some(Step::Done(Err(HttpError::Failed(format!(
                    "GitHub secondary rate limit persists; the next backoff ({s} s) is more than max_rate_limit_wait_seconds = {}",
                    self.max_wait
                )))));
            }
            return Some(Step::Wait {
                seconds: s,
                reason: "secondary rate limit".into(),
            });
        }
        None
    }

    /// The credential for the next request; when every candidate is below the reserve,
    /// wait for the first reset (shared by all concurrent repo tasks).
    async fn wait_for_budget(&self, stream: &str, cands: &Candidates) -> Result<usize, HttpError> {
        let low = match self.auth.choose(cands) {
            Ok(slot) => return Ok(slot),
            Err(low) => low,
        };
        let (rem, reset, which) = (low.remaining, low.reset, low.which);
        let wait = (reset - now_secs()).max(0) as u64 + 1;
        if wait > self.max_wait {
            return Err(HttpError::Failed(format!(
                "GitHub rate limit nearly spent{which} ({rem} left, reserve {}); it resets at {} ({wait} s away, more than max_rate_limit_wait_seconds = {})",
                self.reserve,
                fmt_time(reset),
                self.max_wait
            )));
        }
        self.event(ProgressEvent::RateLimitWait {
            stream: stream.into(),
            seconds: wait,
            reason: format!(
                "{rem} requests left{which} (reserve {}), resets at {}",
                self.reserve,
                fmt_time(reset)
            ),
        });
        self.pause(Duration::from_secs(wait)).await?;
        self.auth.refilled(low.slot);
        Ok(low.slot)
    }
}

fn fmt_time(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| epoch.to_string())
}

#[cfg(test)]
mod tests {
    use super::{next_link, retry_after, BodyPool, MAX_POOLED_BODY};
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn with_retry_after(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn retry_after_as_seconds_or_http_date() {
        assert_eq!(retry_after(&with_retry_after(" 86400 ")), Some(86400));
        let later = chrono::Utc::now() + chrono::Duration::days(1);
        let date = later.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let s = retry_after(&with_retry_after(&date)).unwrap();
        assert!((86_000..=86_400).contains(&s), "{s}");
        let past = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(retry_after(&with_retry_after(past)), Some(0));
        assert_eq!(retry_after(&with_retry_after("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn link_header_variants() {
        let h = r#"<https://api.github.com/repositories/1/pulls?page=2>; rel="next", <https://api.github.com/repositories/1/pulls?page=9>; rel="last""#;
        assert_eq!(
            next_link(h).unwrap(),
            "https://api.github.com/repositories/1/pulls?page=2"
        );
        let h = r#"<https://x/a?page=1>; rel="prev",<https://x/a?page=3>;rel=next"#;
        assert_eq!(next_link(h).unwrap(), "https://x/a?page=3");
        assert_eq!(next_link(r#"<https://x/a?page=9>; rel="last""#), None);
        assert_eq!(next_link("garbage"), None);
        assert_eq!(next_link(""), None);
        let h = r#"<https://x/a?page=2>; rel="next last""#;
        assert_eq!(next_link(h).unwrap(), "https://x/a?page=2");
    }

    #[test]
    fn body_buffers_are_reused_empty_and_bounded() {
        let pool = BodyPool::new(2);
        let mut a = pool.take();
        a.extend_from_slice(&[7u8; 2_000_000]);
        let (ptr, cap) = (a.as_ptr(), a.capacity());
        pool.give_back(a);
        let again = pool.take();
        assert!(again.is_empty(), "a reused buffer starts empty");
        assert_eq!(
            (again.as_ptr(), again.capacity()),
            (ptr, cap),
            "same memory"
        );
        // At most `keep` are kept, and none larger than MAX_POOLED_BODY.
        for _ in 0..3 {
            pool.give_back(Vec::with_capacity(1024));
        }
        pool.give_back(Vec::with_capacity(MAX_POOLED_BODY + 1));
        let kept = pool.free.lock().unwrap();
        assert_eq!(kept.len(), 2);
        assert!(kept.iter().all(|b| b.capacity() <= MAX_POOLED_BODY));
    }
}
