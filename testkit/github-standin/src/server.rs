//! The HTTP side: routing, pagination with `Link` headers, ETags, rate-limit headers and
//! fault injection.

use crate::data::{self, PrFacts, World};
use crate::{Faults, RequestStats};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

pub type Resp = Response<Full<Bytes>>;

/// Hourly quota unless `Faults::quota` sets one: high, so benchmarks that make tens of
/// thousands of requests are not stalled for an hour.
pub const DEFAULT_LIMIT: u64 = 1_000_000;

/// Per-repo PR timestamps and title revisions (changed by `touch_pull_requests`).
pub struct RepoPrs {
    pub updated: Vec<i64>,
    pub rev: Vec<u32>,
    /// PR indices sorted by `updated` descending.
    pub order: Vec<u32>,
}

pub struct RateState {
    pub used: u64,
    pub reset: i64,
    pub limit: u64,
    pub window: i64,
}

impl RateState {
    pub fn new(limit: u64, window: i64) -> RateState {
        RateState {
            used: 0,
            reset: now() + window,
            limit,
            window,
        }
    }
}

pub struct Shared {
    pub world: World,
    pub base_url: Mutex<String>,
    pub prs: Mutex<Vec<RepoPrs>>,
    pub stats: Mutex<RequestStats>,
    pub faults: Mutex<Faults>,
    pub rate: Mutex<RateState>,
    /// Quotas of the tokens in `Faults::token_quotas`, by token.
    pub token_rates: Mutex<HashMap<String, RateState>>,
    pub request_no: AtomicU64,
    pub touch_seq: AtomicU64,
    /// Per repo: deployments, oldest first (changed by `add_deployment*`).
    pub deploys: Mutex<Vec<Vec<data::Deploy>>>,
    /// gzip level of 200 bodies for clients that send `Accept-Encoding: gzip`, as
    /// api.github.com does (0 = never compress). Default [`DEFAULT_GZIP_LEVEL`].
    pub gzip_level: AtomicU32,
    /// Per repo: commits added since start (changed by `Standin::merge_*`, `push_commits`,
    /// `force_push`).
    pub history: Mutex<Vec<History>>,
    /// Per repo: the repository object when it changed since start (`archive_repo`).
    pub repo_json: Mutex<Vec<Option<String>>>,
    /// `POST /graphql`: its own point budget and faults.
    pub graphql: crate::graphql::GraphqlState,
}

/// What changed in a repository's default branch since start.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Commits added, oldest first.
    pub added: Vec<data::CommitFacts>,
    /// The branch head when it is not generated commit 0.
    pub head: Option<String>,
    /// Commits no longer in the repository (dropped by a force-push and collected).
    pub gone: std::collections::HashSet<String>,
    /// Bumped on every change (part of the commits ETags).
    pub version: u64,
}

impl History {
    fn changed(&self) -> bool {
        self.version > 0
    }
}

impl World {
    /// The commit `sha` of `repo`, if the repository has it.
    pub fn commit(&self, h: &History, repo: usize, sha: &str) -> Option<data::CommitFacts> {
        if h.gone.contains(sha) {
            return None;
        }
        let generated = sha
            .get(32..)
            .and_then(|t| usize::from_str_radix(t, 16).ok())
            .filter(|c| *c < self.cfg.commits_per_repo && self.commit_sha(repo, *c) == sha);
        match generated {
            Some(c) => Some(self.base_commit(repo, c)),
            None => h.added.iter().find(|c| c.sha == sha).cloned(),
        }
    }

    /// The head of the default branch (None for an empty repository).
    pub fn head(&self, h: &History, repo: usize) -> Option<String> {
        h.head
            .clone()
            .or_else(|| (self.cfg.commits_per_repo > 0).then(|| self.commit_sha(repo, 0)))
    }

    /// Every commit reachable from `sha` (itself included).
    pub fn reachable(&self, h: &History, repo: usize, sha: &str) -> Vec<data::CommitFacts> {
        let mut seen = std::collections::HashSet::new();
        let mut todo = vec![sha.to_string()];
        let mut out = Vec::new();
        while let Some(s) = todo.pop() {
            if !seen.insert(s.clone()) {
                continue;
            }
            if let Some(c) = self.commit(h, repo, &s) {
                todo.extend(c.parents.iter().cloned());
                out.push(c);
            }
        }
        out
    }
}

/// api.github.com answers `Accept-Encoding: gzip` with gzip; level 1 (nginx's default)
/// keeps the stand-in's own CPU low. `Standin::set_gzip_level` changes it.
pub const DEFAULT_GZIP_LEVEL: u32 = 1;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Shared {
    pub fn new(world: World) -> Shared {
        let prs = world
            .repos
            .iter()
            .enumerate()
            .map(|(ri, _)| {
                let n = world.cfg.prs_per_repo;
                RepoPrs {
                    updated: (0..n).map(|k| world.pr_initial_updated(ri, k)).collect(),
                    rev: vec![0; n],
                    order: (0..n as u32).collect(),
                }
            })
            .collect();
        let deploys = (0..world.repos.len())
            .map(|ri| world.deployments(ri, data::DEFAULT_DEPLOYMENTS))
            .collect();
        Shared {
            history: Mutex::new(vec![History::default(); world.repos.len()]),
            repo_json: Mutex::new(vec![None; world.repos.len()]),
            deploys: Mutex::new(deploys),
            world,
            base_url: Mutex::new(String::new()),
            prs: Mutex::new(prs),
            stats: Mutex::new(RequestStats::default()),
            faults: Mutex::new(Faults::default()),
            rate: Mutex::new(RateState::new(DEFAULT_LIMIT, 3600)),
            token_rates: Mutex::new(HashMap::new()),
            request_no: AtomicU64::new(0),
            touch_seq: AtomicU64::new(0),
            gzip_level: AtomicU32::new(DEFAULT_GZIP_LEVEL),
            graphql: Default::default(),
        }
    }

    fn roll(&self, n: u64, salt: u64) -> f64 {
        (data::hash(&[self.world.cfg.seed, n, salt]) % 1_000_000) as f64 / 1_000_000.0
    }
}

fn json_resp(status: StatusCode, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn message(status: StatusCode, msg: &str) -> Resp {
    json_resp(
        status,
        format!(
            r#"{{"message":"{msg}","documentation_url":"https://docs.github.com/rest","status":"{}"}}"#,
            status.as_u16()
        ),
    )
}

fn set(r: &mut Resp, k: &'static str, v: String) {
    if let Ok(v) = v.parse() {
        r.headers_mut().insert(k, v);
    }
}

/// Request kind for statistics.
fn kind(segs: &[&str]) -> &'static str {
    match segs {
        ["rate_limit"] => "rate_limit",
        ["graphql"] => "graphql",
        ["orgs", _, "repos"] | ["organizations", _, "repos"] => "repos",
        ["users", _, "repos"] | ["user", _, "repos"] => "repos",
        ["users", _] => "users",
        [.., "compare", _] => "compare",
        [.., "pulls"] => "pulls",
        [.., "reviews"] => "reviews",
        [.., "commits"] => "commits",
        [.., "commits", _] => "commit",
        [.., "deployments"] => "deployments",
        [.., "deployments", _, "statuses"] => "deployment_statuses",
        ["app", ..] => "app_token",
        ["orgs" | "users", _, "installation"] => "installation",
        _ => "other",
    }
}

pub async fn handle(
    sh: std::sync::Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Resp, std::convert::Infallible> {
    let latency = sh.world.cfg.latency_ms;
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let k = kind(&segs);
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let n = sh.request_no.fetch_add(1, Ordering::SeqCst);
    let gzip = accepts_gzip(req.headers());
    let tok = token_of(&req);
    let mut resp = match fault(&sh, &req, k, n).await {
        Some(r) => r,
        None if k == "graphql" && req.method() == Method::POST => {
            crate::graphql::serve(&sh, req).await
        }
        None => route(&sh, &req, &segs, &query),
    };
    let status = resp.status();
    // GraphQL spends points of its own budget, not requests.
    let counted = k != "rate_limit"
        && k != "graphql"
        && status != StatusCode::NOT_MODIFIED
        && status != StatusCode::FORBIDDEN;
    if counted {
        with_rate(&sh, &tok, |rate| {
            if now() >= rate.reset {
                rate.used = 0;
                rate.reset = now() + rate.window;
            }
            rate.used += 1;
        });
    }
    let scopes = sh
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .oauth_scopes
        .clone();
    if let Some(scopes) = scopes {
        set(&mut resp, "x-oauth-scopes", scopes);
    }
    if !resp.headers().contains_key("x-ratelimit-remaining") {
        let (limit, used, reset) = with_rate(&sh, &tok, |r| (r.limit, r.used, r.reset));
        set(&mut resp, "x-ratelimit-limit", limit.to_string());
        set(
            &mut resp,
            "x-ratelimit-remaining",
            limit.saturating_sub(used).to_string(),
        );
        set(&mut resp, "x-ratelimit-reset", reset.to_string());
        set(&mut resp, "x-ratelimit-used", used.to_string());
        set(&mut resp, "x-ratelimit-resource", "core".into());
    }
    if status == StatusCode::OK && k != "rate_limit" {
        resp = maybe_truncate(&sh, resp, n);
    }
    let level = sh.gzip_level.load(Ordering::Relaxed);
    if gzip && level > 0 && status == StatusCode::OK {
        resp = compress(resp, level);
    }
    let mut st = sh.stats.lock().unwrap_or_else(|p| p.into_inner());
    st.total += 1;
    // A rendered 200 keeps its JSON in a `Bytes` extension (see `ok_json`).
    if let Some(json) = resp.extensions().get::<Bytes>() {
        let zipped = resp.extensions().get::<Gzipped>();
        st.json_bytes += json.len() as u64;
        st.body_bytes += zipped.map_or(json.len() as u64, |z| z.0);
        st.gzipped += u64::from(zipped.is_some());
    }
    if resp.status() == StatusCode::NOT_MODIFIED {
        st.not_modified += 1;
    }
    *st.by_kind.entry(k.to_string()).or_default() += 1;
    if counted {
        *st.by_token.entry(tok.clone()).or_default() += 1;
    }
    if let Some(o) = org_of(&sh.world, &segs).filter(|_| k != "installation") {
        *st.by_org_token.entry((data::org_name(o), tok)).or_default() += 1;
    }
    *st.by_status.entry(resp.status().as_u16()).or_default() += 1;
    Ok(resp)
}

/// The token of a request as sent, after `Bearer ` or `token ` ("" without one).
fn token_of(req: &Request<Incoming>) -> String {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    auth.strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("token "))
        .unwrap_or(auth)
        .to_string()
}

/// `f` on the quota `tok` is counted against: its own, or the shared one.
fn with_rate<R>(sh: &Shared, tok: &str, f: impl FnOnce(&mut RateState) -> R) -> R {
    let mut own = sh.token_rates.lock().unwrap_or_else(|p| p.into_inner());
    match own.get_mut(tok) {
        Some(r) => f(r),
        None => f(&mut sh.rate.lock().unwrap_or_else(|p| p.into_inner())),
    }
}

/// The org a request is about, when its path names one.
fn org_of(w: &World, segs: &[&str]) -> Option<usize> {
    match segs {
        ["orgs" | "users", org, ..] => {
            (0..w.cfg.orgs).find(|i| data::org_name(*i).eq_ignore_ascii_case(org))
        }
        ["organizations", id, ..] => w.org_ids.iter().position(|x| x.to_string() == *id),
        ["repos", o, r, ..] => w.repo_index(o, r).map(|ri| w.repos[ri].org),
        ["repositories", id, ..] => id
            .parse()
            .ok()
            .and_then(|id| w.repo_by_id(id))
            .map(|ri| w.repos[ri].org),
        _ => None,
    }
}

/// With an installation per org: a request about an org needs that org's installation
/// token (404 with another's, as GitHub hides what an installation cannot see; 401
/// without one). The App's own JWT routes are checked where they are answered.
fn installation_refusal(sh: &Shared, k: &str, segs: &[&str], tok: &str) -> Option<Resp> {
    if matches!(k, "app_token" | "installation" | "rate_limit") {
        return None;
    }
    let Some(id) = tok
        .strip_prefix("ghs_standin_installation_")
        .and_then(|i| i.parse::<u64>().ok())
    else {
        return Some(message(StatusCode::UNAUTHORIZED, "Bad credentials"));
    };
    match org_of(&sh.world, segs) {
        Some(o) if crate::installation_id(o) != id => {
            Some(message(StatusCode::NOT_FOUND, "Not Found"))
        }
        _ => None,
    }
}

/// An App JWT: `Bearer` and three dot-separated parts (not checked further).
fn is_app_jwt(req: &Request<Incoming>) -> bool {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.strip_prefix("Bearer "))
        .is_some_and(|j| j.split('.').count() == 3)
}

fn injected(sh: &Shared) {
    sh.stats
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .faults_injected += 1;
}

/// Faults decided before routing. Counters (`*_next`) fire first, then rates.
async fn fault(sh: &Shared, req: &Request<Incoming>, k: &str, n: u64) -> Option<Resp> {
    let f = sh.faults.lock().unwrap_or_else(|p| p.into_inner()).clone();
    // GitHub refuses a bad token on `/rate_limit` too; no other fault applies there.
    if k == "rate_limit" {
        return refused_token(&f, req, k);
    }
    if f.slow_rate > 0.0 && sh.roll(n, 1) < f.slow_rate {
        injected(sh);
        tokio::time::sleep(std::time::Duration::from_millis(f.slow_ms)).await;
    }
    if let Some(r) = refused_token(&f, req, k) {
        return Some(r);
    }
    if f.forbid_kind.as_deref() == Some(k) {
        injected(sh);
        return Some(message(
            StatusCode::FORBIDDEN,
            "Resource not accessible by personal access token",
        ));
    }
    let tok = token_of(req);
    if f.installation_per_org {
        let path = req.uri().path().to_string();
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        if let Some(r) = installation_refusal(sh, k, &segs, &tok) {
            return Some(r);
        }
    }
    if let Some(r) = quota_spent(sh, &tok) {
        return Some(r);
    }
    let mut live = sh.faults.lock().unwrap_or_else(|p| p.into_inner());
    if live.primary_exhausted_next > 0 {
        live.primary_exhausted_next -= 1;
        drop(live);
        injected(sh);
        let mut r = message(
            StatusCode::FORBIDDEN,
            "API rate limit exceeded for installation ID 1.",
        );
        set(&mut r, "x-ratelimit-limit", "5000".into());
        set(&mut r, "x-ratelimit-remaining", "0".into());
        set(&mut r, "x-ratelimit-used", "5000".into());
        set(
            &mut r,
            "x-ratelimit-reset",
            (now() + f.primary_reset_secs as i64).to_string(),
        );
        return Some(r);
    }
    if live.secondary_next > 0 {
        live.secondary_next -= 1;
        drop(live);
        injected(sh);
        let mut r = message(
            StatusCode::FORBIDDEN,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        );
        if let Some(s) = f.secondary_retry_after {
            set(&mut r, "retry-after", s.to_string());
        }
        return Some(r);
    }
    if live.fail_5xx_next > 0 {
        live.fail_5xx_next -= 1;
        drop(live);
        injected(sh);
        return Some(message(StatusCode::BAD_GATEWAY, "Server Error"));
    }
    drop(live);
    if f.fail_5xx_kind.as_deref() == Some(k) {
        injected(sh);
        return Some(message(StatusCode::BAD_GATEWAY, "Server Error"));
    }
    if f.fail_5xx_rate > 0.0 && sh.roll(n, 2) < f.fail_5xx_rate {
        injected(sh);
        return Some(message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
        ));
    }
    None
}

/// 401 "Bad credentials" when the token is refused (`unauthorized`, `require_token`).
fn refused_token(f: &Faults, req: &Request<Incoming>, k: &str) -> Option<Resp> {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token_ok = match &f.require_token {
        Some(t) => {
            auth == format!("Bearer {t}") || auth == format!("token {t}") || k == "app_token"
        }
        None => true,
    };
    (f.unauthorized || !token_ok).then(|| message(StatusCode::UNAUTHORIZED, "Bad credentials"))
}

/// The window's quota is used up: 403 with remaining 0, as GitHub answers.
fn quota_spent(sh: &Shared, tok: &str) -> Option<Resp> {
    let (limit, used, reset) = with_rate(sh, tok, |r| (r.limit, r.used, r.reset));
    if now() >= reset || used < limit {
        return None;
    }
    let rate = RateState {
        used,
        reset,
        limit,
        window: 0,
    };
    let mut r = message(
        StatusCode::FORBIDDEN,
        "API rate limit exceeded for user ID 1.",
    );
    set(&mut r, "x-ratelimit-limit", rate.limit.to_string());
    set(&mut r, "x-ratelimit-remaining", "0".into());
    set(&mut r, "x-ratelimit-used", rate.used.to_string());
    set(&mut r, "x-ratelimit-reset", rate.reset.to_string());
    Some(r)
}

fn maybe_truncate(sh: &Shared, resp: Resp, n: u64) -> Resp {
    let mut live = sh.faults.lock().unwrap_or_else(|p| p.into_inner());
    let fire = if live.truncate_next > 0 {
        live.truncate_next -= 1;
        true
    } else {
        live.truncate_rate > 0.0 && sh.roll(n, 3) < live.truncate_rate
    };
    drop(live);
    if !fire {
        return resp;
    }
    injected(sh);
    let (parts, body) = resp.into_parts();
    // Full<Bytes> has exactly one frame; rebuild from the rendered bytes kept in an extension.
    let bytes = parts.extensions.get::<Bytes>().cloned().unwrap_or_default();
    drop(body);
    let cut = bytes.slice(0..bytes.len() / 2);
    let mut parts = parts;
    parts.extensions.insert(cut.clone());
    Response::from_parts(parts, Full::new(cut))
}

/// A 200 of rendered JSON. The bytes are also kept in an extension: faults rebuild the
/// body from them, `compress` gzips them, and the stats count them.
fn ok_json(bytes: Bytes) -> Resp {
    let mut r = json_resp(StatusCode::OK, String::new());
    *r.body_mut() = Full::new(bytes.clone());
    r.extensions_mut().insert(bytes);
    r
}

/// Marks a body sent gzipped: its size on the wire.
#[derive(Clone, Copy)]
struct Gzipped(u64);

/// Does the request accept gzip (`Accept-Encoding: gzip`, `gzip, deflate`, `gzip;q=1`)?
fn accepts_gzip(headers: &hyper::HeaderMap) -> bool {
    headers
        .get_all(hyper::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|c| {
            let mut it = c.split(';');
            let name = it.next().unwrap_or("").trim();
            let refused = it.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// gzip the rendered body (kept in the response's `Bytes` extension) as GitHub does,
/// with `Content-Encoding: gzip` and `Vary: Accept-Encoding`.
fn compress(resp: Resp, level: u32) -> Resp {
    use std::io::Write as _;
    let (mut parts, body) = resp.into_parts();
    let Some(bytes) = parts.extensions.get::<Bytes>().cloned() else {
        return Response::from_parts(parts, body);
    };
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 8 + 64),
        flate2::Compression::new(level.min(9)),
    );
    let zipped = match enc.write_all(&bytes).and_then(|_| enc.finish()) {
        Ok(z) => z,
        Err(_) => return Response::from_parts(parts, body),
    };
    drop(body);
    parts.extensions.insert(Gzipped(zipped.len() as u64));
    parts.headers.insert(
        hyper::header::CONTENT_ENCODING,
        hyper::header::HeaderValue::from_static("gzip"),
    );
    parts.headers.insert(
        hyper::header::VARY,
        hyper::header::HeaderValue::from_static("Accept-Encoding"),
    );
    Response::from_parts(parts, Full::new(Bytes::from(zipped)))
}

fn route(sh: &Shared, req: &Request<Incoming>, segs: &[&str], q: &HashMap<String, String>) -> Resp {
    let w = &sh.world;
    match segs {
        ["rate_limit"] => rate_limit(sh),
        // Test hook: a redirect to any URL (cross-host redirect tests).
        ["__redirect"] => {
            let mut r = message(StatusCode::FOUND, "Found");
            set(&mut r, "location", q.get("to").cloned().unwrap_or_default());
            r
        }
        ["app", "installations", id, "access_tokens"] if req.method() == Method::POST => {
            let (per_org, ttl) = {
                let f = sh.faults.lock().unwrap_or_else(|p| p.into_inner());
                (f.installation_per_org, f.installation_token_ttl_secs)
            };
            let token = if per_org {
                let known = (0..w.cfg.orgs).any(|o| crate::installation_id(o).to_string() == *id);
                if !known {
                    return message(StatusCode::NOT_FOUND, "Not Found");
                }
                format!("ghs_standin_installation_{id}")
            } else {
                "ghs_standin_installation_token".to_string()
            };
            let exp = data::ts(now() + if ttl == 0 { 3600 } else { ttl as i64 });
            json_resp(
                StatusCode::CREATED,
                format!(
                    r#"{{"token":"{token}","expires_at":"{exp}","permissions":{{"pull_requests":"read","contents":"read"}},"repository_selection":"all"}}"#
                ),
            )
        }
        [kind @ ("orgs" | "users"), name, "installation"]
            if sh
                .faults
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .installation_per_org =>
        {
            let Some(o) = w.owner_index(name) else {
                return message(StatusCode::NOT_FOUND, "Not Found");
            };
            let user = !w.is_org(o)
                || sh
                    .faults
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .user_accounts
                    .iter()
                    .any(|u| u.eq_ignore_ascii_case(name));
            if *kind == "orgs" && user {
                return message(StatusCode::NOT_FOUND, "Not Found");
            }
            if !is_app_jwt(req) {
                return message(
                    StatusCode::UNAUTHORIZED,
                    "A JSON web token could not be decoded",
                );
            }
            let target = if user { "User" } else { "Organization" };
            json_resp(
                StatusCode::OK,
                format!(
                    r#"{{"id":{},"account":{},"repository_selection":"all","app_id":12345,"target_type":"{target}"}}"#,
                    crate::installation_id(o),
                    w.org_json[o]
                ),
            )
        }
        // Organisations only, as on GitHub: a user account answers 404 here.
        ["orgs", org, "repos"] => match w.owner_index(org).filter(|o| w.is_org(*o)) {
            Some(o) => org_repos(sh, req, o, q, false),
            None => message(StatusCode::NOT_FOUND, "Not Found"),
        },
        ["organizations", id, "repos"] => match w.org_ids.iter().position(|x| x.to_string() == *id)
        {
            Some(o) if w.is_org(o) => org_repos(sh, req, o, q, false),
            _ => message(StatusCode::NOT_FOUND, "Not Found"),
        },
        // Any account, organisations included (GitHub lists an organisation's repositories
        // here too); its `Link`s point at `/user/{id}/repos`.
        ["users", name, "repos"] => match w.owner_index(name) {
            Some(o) => org_repos(sh, req, o, q, true),
            None => message(StatusCode::NOT_FOUND, "Not Found"),
        },
        ["user", id, "repos"] => match w.org_ids.iter().position(|x| x.to_string() == *id) {
            Some(o) => org_repos(sh, req, o, q, true),
            None => message(StatusCode::NOT_FOUND, "Not Found"),
        },
        ["users", name] => match w.owner_index(name) {
            Some(o) => json_resp(StatusCode::OK, w.org_json[o].clone()),
            None => message(StatusCode::NOT_FOUND, "Not Found"),
        },
        ["repos", o, r, rest @ ..] => match w.repo_index(o, r) {
            Some(ri) => repo_route(sh, req, ri, rest, q),
            None => message(StatusCode::NOT_FOUND, "Not Found"),
        },
        ["repositories", id, rest @ ..] => match id.parse().ok().and_then(|id| w.repo_by_id(id)) {
            Some(ri) => repo_route(sh, req, ri, rest, q),
            None => message(StatusCode::NOT_FOUND, "Not Found"),
        },
        _ => message(StatusCode::NOT_FOUND, "Not Found"),
    }
}

fn rate_limit(sh: &Shared) -> Resp {
    let rate = sh.rate.lock().unwrap_or_else(|p| p.into_inner());
    let core = format!(
        r#"{{"limit":{},"used":{},"remaining":{},"reset":{}}}"#,
        rate.limit,
        rate.used,
        rate.limit.saturating_sub(rate.used),
        rate.reset
    );
    let graphql = sh.graphql.budget();
    json_resp(
        StatusCode::OK,
        format!(r#"{{"resources":{{"core":{core},"graphql":{graphql}}},"rate":{core}}}"#),
    )
}

fn repo_route(
    sh: &Shared,
    req: &Request<Incoming>,
    ri: usize,
    rest: &[&str],
    q: &HashMap<String, String>,
) -> Resp {
    let (missing, failing) = {
        let f = sh.faults.lock().unwrap_or_else(|p| p.into_inner());
        (f.missing_repo.clone(), f.fail_5xx_repo.clone())
    };
    if missing.as_deref() == Some(sh.world.repos[ri].name.as_str()) {
        injected(sh);
        return message(StatusCode::NOT_FOUND, "Not Found");
    }
    if failing.as_deref() == Some(sh.world.repos[ri].name.as_str()) {
        injected(sh);
        return message(StatusCode::BAD_GATEWAY, "Server Error");
    }
    match rest {
        ["pulls"] => pulls(sh, req, ri, q),
        ["pulls", number, "reviews"] => match number.parse::<usize>() {
            Ok(n) if n >= 1 && n <= sh.world.cfg.prs_per_repo => {
                reviews(sh, req, ri, sh.world.cfg.prs_per_repo - n, q)
            }
            _ => message(StatusCode::NOT_FOUND, "Not Found"),
        },
        ["commits"] => commits(sh, req, ri, q),
        ["commits", sha] => single_commit(sh, ri, sha),
        ["compare", basehead] => compare(sh, req, ri, basehead, q),
        ["deployments"] => deployments(sh, req, ri, q),
        ["deployments", id, "statuses"] => deployment_statuses(sh, req, ri, id, q),
        [] => json_resp(StatusCode::OK, repo_json(sh, ri)),
        _ => message(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// `per_page` (default 30, max 100) and `page` (from 1).
fn paging(q: &HashMap<String, String>) -> (usize, usize) {
    let per = q
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30usize)
        .clamp(1, 100);
    let page = q
        .get("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    (per, page)
}

/// A list page: body, ETag and `Link` built from the canonical id-based path.
struct Page {
    body: String,
    etag_src: String,
    canonical: String,
    page: usize,
    last: usize,
}

fn finish(sh: &Shared, req: &Request<Incoming>, q: &HashMap<String, String>, p: Page) -> Resp {
    let mut etag_src = p.etag_src;
    if sh
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .etag_per_token
    {
        etag_src.push_str(&token_of(req));
    }
    let etag = format!("W/\"{:x}\"", md5::compute(etag_src.as_bytes()));
    let inm = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok());
    let mut resp = if inm == Some(etag.as_str()) {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        ok_json(Bytes::from(p.body))
    };
    set(&mut resp, "etag", etag);
    let base = sh
        .base_url
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut keep: Vec<(&String, &String)> =
        q.iter().filter(|(k, _)| k.as_str() != "page").collect();
    keep.sort();
    let mut qs = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in keep {
        qs.append_pair(k, v);
    }
    let qs = qs.finish();
    let link = |n: usize, rel: &str| {
        format!(
            "<{base}{}?{qs}{}page={n}>; rel=\"{rel}\"",
            p.canonical,
            if qs.is_empty() { "" } else { "&" }
        )
    };
    let mut links = Vec::new();
    if p.page > 1 {
        links.push(link(p.page - 1, "prev"));
    }
    if p.page < p.last {
        links.push(link(p.page + 1, "next"));
        links.push(link(p.last, "last"));
    }
    if p.page > 1 {
        links.push(link(1, "first"));
    }
    if !links.is_empty() {
        set(&mut resp, "link", links.join(", "));
    }
    resp
}

fn last_page(total: usize, per: usize) -> usize {
    total.div_ceil(per).max(1)
}

/// The repository object as served now.
fn repo_json(sh: &Shared, ri: usize) -> String {
    let over = sh.repo_json.lock().unwrap_or_else(|p| p.into_inner());
    over[ri]
        .clone()
        .unwrap_or_else(|| sh.world.repos[ri].json.clone())
}

fn org_repos(
    sh: &Shared,
    req: &Request<Incoming>,
    o: usize,
    q: &HashMap<String, String>,
    user_path: bool,
) -> Resp {
    let w = &sh.world;
    let repos: Vec<usize> = (0..w.repos.len())
        .filter(|i| w.repos[*i].org == o)
        .collect();
    let (per, page) = paging(q);
    let mut body = String::from("[");
    let mut etag_src = format!("repos|{o}|{per}|{page}");
    for (i, ri) in repos.iter().skip((page - 1) * per).take(per).enumerate() {
        if i > 0 {
            body.push(',');
        }
        let json = repo_json(sh, *ri);
        body.push_str(&json);
        let _ = write!(etag_src, "|{ri}:{:x}", md5::compute(json.as_bytes()));
    }
    body.push(']');
    let canonical = if user_path {
        format!("/user/{}/repos", w.org_ids[o])
    } else {
        format!("/organizations/{}/repos", w.org_ids[o])
    };
    finish(
        sh,
        req,
        q,
        Page {
            body,
            etag_src,
            canonical,
            page,
            last: last_page(repos.len(), per),
        },
    )
}

fn pulls(sh: &Shared, req: &Request<Incoming>, ri: usize, q: &HashMap<String, String>) -> Resp {
    let (per, page) = paging(q);
    let facts: Vec<PrFacts> = {
        let prs = sh.prs.lock().unwrap_or_else(|p| p.into_inner());
        let rp = &prs[ri];
        rp.order
            .iter()
            .skip((page - 1) * per)
            .take(per)
            .map(|k| PrFacts {
                k: *k as usize,
                updated: rp.updated[*k as usize],
                rev: rp.rev[*k as usize],
            })
            .collect()
    };
    let mut body = String::with_capacity(facts.len() * 18_000 + 2);
    body.push('[');
    let mut etag_src = format!("pulls|{ri}|{per}|{page}");
    for (i, f) in facts.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        data::render_pr(&sh.world, ri, *f, &mut body);
        let _ = write!(etag_src, "|{}:{}:{}", f.k, f.updated, f.rev);
    }
    body.push(']');
    let canonical = format!("/repositories/{}/pulls", sh.world.repos[ri].id);
    let last = last_page(sh.world.cfg.prs_per_repo, per);
    finish(
        sh,
        req,
        q,
        Page {
            body,
            etag_src,
            canonical,
            page,
            last,
        },
    )
}

fn reviews(
    sh: &Shared,
    req: &Request<Incoming>,
    ri: usize,
    k: usize,
    q: &HashMap<String, String>,
) -> Resp {
    let (per, page) = paging(q);
    let n = sh.world.cfg.reviews_per_pr;
    let mut body = String::from("[");
    for (i, r) in (0..n).skip((page - 1) * per).take(per).enumerate() {
        if i > 0 {
            body.push(',');
        }
        data::render_review(&sh.world, ri, k, r, &mut body);
    }
    body.push(']');
    let etag_src = format!("reviews|{ri}|{k}|{per}|{page}");
    let canonical = format!(
        "/repositories/{}/pulls/{}/reviews",
        sh.world.repos[ri].id,
        sh.world.pr_number(k)
    );
    finish(
        sh,
        req,
        q,
        Page {
            body,
            etag_src,
            canonical,
            page,
            last: last_page(n, per),
        },
    )
}

/// The default branch's commits, newest first (git-log order by committer date), from
/// `since` on. A merged branch's commits come in by date, however old.
fn commits(sh: &Shared, req: &Request<Incoming>, ri: usize, q: &HashMap<String, String>) -> Resp {
    let w = &sh.world;
    let since = q
        .get("since")
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.timestamp());
    let h = sh.history.lock().unwrap_or_else(|p| p.into_inner())[ri].clone();
    let (per, page) = paging(q);
    let mut body = String::from("[");
    let total;
    if h.changed() {
        let mut all = match w.head(&h, ri) {
            Some(head) => w.reachable(&h, ri, &head),
            None => Vec::new(),
        };
        all.retain(|c| since.is_none_or(|s| c.date >= s));
        all.sort_by_key(|c| std::cmp::Reverse((c.date, c.key)));
        total = all.len();
        for (i, c) in all.iter().skip((page - 1) * per).take(per).enumerate() {
            if i > 0 {
                body.push(',');
            }
            data::render_commit(w, ri, c, &mut body);
        }
    } else {
        total = (0..w.cfg.commits_per_repo)
            .take_while(|c| since.is_none_or(|s| w.commit_date(ri, *c) >= s))
            .count();
        for (i, c) in (0..total).skip((page - 1) * per).take(per).enumerate() {
            if i > 0 {
                body.push(',');
            }
            data::render_commit(w, ri, &w.base_commit(ri, c), &mut body);
        }
    }
    body.push(']');
    let etag_src = format!("commits|{ri}|{since:?}|{per}|{page}|{total}|{}", h.version);
    let canonical = format!("/repositories/{}/commits", w.repos[ri].id);
    finish(
        sh,
        req,
        q,
        Page {
            body,
            etag_src,
            canonical,
            page,
            last: last_page(total, per),
        },
    )
}

fn single_commit(sh: &Shared, ri: usize, sha: &str) -> Resp {
    let w = &sh.world;
    let h = sh.history.lock().unwrap_or_else(|p| p.into_inner());
    match w.commit(&h[ri], ri, sha) {
        Some(c) => {
            drop(h);
            let mut body = String::new();
            data::render_commit_full(w, ri, &c, &mut body);
            ok_json(Bytes::from(body))
        }
        None => message(StatusCode::UNPROCESSABLE_ENTITY, "No commit found for SHA"),
    }
}

/// `GET .../compare/BASE...HEAD`: the commits reachable from HEAD and not from BASE
/// (`git log BASE..HEAD`), oldest first. Without `per_page`/`page` at most 250 (the
/// newest); with them, pages of up to 100 with `Link`s. 404 when either end is unknown.
fn compare(
    sh: &Shared,
    req: &Request<Incoming>,
    ri: usize,
    basehead: &str,
    q: &HashMap<String, String>,
) -> Resp {
    let w = &sh.world;
    let h = sh.history.lock().unwrap_or_else(|p| p.into_inner())[ri].clone();
    let resolve = |r: &str| {
        let sha = if r == "main" || r == "HEAD" {
            w.head(&h, ri)?
        } else {
            r.to_string()
        };
        w.commit(&h, ri, &sha)
    };
    let Some((base, head)) = basehead
        .split_once("...")
        .and_then(|(b, hd)| Some((resolve(b)?, resolve(hd)?)))
    else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let from_base = w.reachable(&h, ri, &base.sha);
    let from_head = w.reachable(&h, ri, &head.sha);
    let in_base: std::collections::HashSet<&str> =
        from_base.iter().map(|c| c.sha.as_str()).collect();
    let in_head: std::collections::HashSet<&str> =
        from_head.iter().map(|c| c.sha.as_str()).collect();
    let mut ahead: Vec<&data::CommitFacts> = from_head
        .iter()
        .filter(|c| !in_base.contains(c.sha.as_str()))
        .collect();
    ahead.sort_by_key(|c| (c.date, std::cmp::Reverse(c.key)));
    let behind = from_base
        .iter()
        .filter(|c| !in_head.contains(c.sha.as_str()))
        .count();
    let merge_base = from_base
        .iter()
        .filter(|c| in_head.contains(c.sha.as_str()))
        .max_by_key(|c| (c.date, std::cmp::Reverse(c.key)));
    let status = match (ahead.len(), behind) {
        (0, 0) => "identical",
        (_, 0) => "ahead",
        (0, _) => "behind",
        _ => "diverged",
    };
    let paged = q.contains_key("per_page") || q.contains_key("page");
    let (per, page) = if paged { paging(q) } else { (250, 1) };
    let shown: Vec<&&data::CommitFacts> = if paged {
        ahead.iter().skip((page - 1) * per).take(per).collect()
    } else {
        ahead.iter().skip(ahead.len().saturating_sub(250)).collect()
    };
    let rep = &w.repos[ri];
    let full = format!("{}/{}", rep.org_name, rep.name);
    let mut body = String::new();
    let _ = write!(
        body,
        r#"{{"url":"https://api.github.com/repos/{full}/compare/{basehead}","html_url":"https://github.com/{full}/compare/{basehead}","permalink_url":"https://github.com/{full}/compare/{o}:{b}...{o}:{hd}","diff_url":"https://github.com/{full}/compare/{basehead}.diff","patch_url":"https://github.com/{full}/compare/{basehead}.patch","base_commit":"#,
        o = rep.org_name,
        b = base.sha,
        hd = head.sha,
    );
    data::render_commit(w, ri, &base, &mut body);
    body.push_str(r#","merge_base_commit":"#);
    match merge_base {
        Some(m) => data::render_commit(w, ri, m, &mut body),
        None => body.push_str("null"),
    }
    let _ = write!(
        body,
        r#","status":"{status}","ahead_by":{},"behind_by":{behind},"total_commits":{},"commits":["#,
        ahead.len(),
        ahead.len()
    );
    for (i, c) in shown.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        data::render_commit(w, ri, c, &mut body);
    }
    // The changed files (only on the first page on GitHub) are left out: clients that
    // need them read each commit.
    body.push_str(r#"],"files":[]}"#);
    let etag_src = format!("compare|{ri}|{basehead}|{per}|{page}|{paged}|{}", h.version);
    let canonical = format!("/repositories/{}/compare/{basehead}", rep.id);
    finish(
        sh,
        req,
        q,
        Page {
            body,
            etag_src,
            canonical,
            page,
            last: if paged {
                last_page(ahead.len(), per)
            } else {
                1
            },
        },
    )
}

/// Deployments, newest first (GitHub orders them by id, descending).
fn deployments(
    sh: &Shared,
    req: &Request<Incoming>,
    ri: usize,
    q: &HashMap<String, String>,
) -> Resp {
    let (per, page) = paging(q);
    let deps = sh.deploys.lock().unwrap_or_else(|p| p.into_inner());
    let list = &deps[ri];
    let mut body = String::from("[");
    let mut etag_src = format!("deployments|{ri}|{per}|{page}");
    for (i, d) in list
        .iter()
        .rev()
        .skip((page - 1) * per)
        .take(per)
        .enumerate()
    {
        if i > 0 {
            body.push(',');
        }
        data::render_deployment(&sh.world, ri, d, &mut body);
        let _ = write!(etag_src, "|{}:{}", d.id, d.updated);
    }
    body.push(']');
    let last = last_page(list.len(), per);
    drop(deps);
    let canonical = format!("/repositories/{}/deployments", sh.world.repos[ri].id);
    finish(
        sh,
        req,
        q,
        Page {
            body,
            etag_src,
            canonical,
            page,
            last,
        },
    )
}

/// Statuses of one deployment, newest first.
fn deployment_statuses(
    sh: &Shared,
    req: &Request<Incoming>,
    ri: usize,
    id: &str,
    q: &HashMap<String, String>,
) -> Resp {
    let (per, page) = paging(q);
    let deps = sh.deploys.lock().unwrap_or_else(|p| p.into_inner());
    let Some(d) = deps[ri].iter().find(|d| d.id.to_string() == id) else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let mut body = String::from("[");
    let mut etag_src = format!("statuses|{ri}|{id}|{per}|{page}");
    for (i, s) in d
        .statuses
        .iter()
        .rev()
        .skip((page - 1) * per)
        .take(per)
        .enumerate()
    {
        if i > 0 {
            body.push(',');
        }
        data::render_deployment_status(&sh.world, ri, d, s, &mut body);
        let _ = write!(etag_src, "|{}", s.id);
    }
    body.push(']');
    let last = last_page(d.statuses.len(), per);
    let canonical = format!(
        "/repositories/{}/deployments/{id}/statuses",
        sh.world.repos[ri].id
    );
    drop(deps);
    finish(
        sh,
        req,
        q,
        Page {
            body,
            etag_src,
            canonical,
            page,
            last,
        },
    )
}
