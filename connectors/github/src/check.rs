//! `flowctl check` for the `github` source: the token (or App installation) is accepted,
//! a classic token has the `repo` scope, how much of the rate limit is left, and for each
//! organisation: its repositories can be listed, and the first selected repository's
//! pulls, commits (contents) and deployments can be read, as the configured streams need.
//! About six requests an organisation; `/rate_limit` costs none.

use crate::auth::Auth;
use crate::config::{GithubConfig, StreamKind, TokenRefs};
use crate::http::{describe, Client, HttpError};
use crate::tokens::{for_org, Tokens};
use flowctl_core::check::CheckResult;
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION};
use serde::Deserialize;
use std::sync::Arc;

/// Most bytes read of one answer: the probes ask for one item (or one page of repos).
const MAX_PROBE_BODY: usize = 4 << 20;

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    /// GitHub's `message` field, or the start of the body.
    fn message(&self) -> String {
        #[derive(Deserialize)]
        struct Msg {
            message: String,
        }
        serde_json::from_slice::<Msg>(&self.body)
            .map(|m| m.message)
            .unwrap_or_else(|_| {
                String::from_utf8_lossy(&self.body[..self.body.len().min(200)]).into_owned()
            })
    }
}

struct Probe {
    client: Client,
    tokens: Tokens,
}

impl Probe {
    /// One GET with the credential a run would use for it.
    async fn get(&self, path_and_query: &str) -> Result<Answer, String> {
        self.get_as(path_and_query, None).await
    }

    /// One GET with credential `slot` (a token of the list), or the one a run would use;
    /// a transport error or a 5xx is tried once more.
    async fn get_as(&self, path_and_query: &str, slot: Option<usize>) -> Result<Answer, String> {
        let url = self.client.url(path_and_query);
        let mut last = String::new();
        for _ in 0..2 {
            let mut rb = self
                .client
                .http()
                .get(&url)
                .header(ACCEPT, "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28");
            let header = match slot {
                Some(i) => self.tokens.header_of(&self.client, i).await,
                None => self.tokens.header(&self.client).await,
            };
            match header {
                Ok(Some(h)) => rb = rb.header(AUTHORIZATION, h),
                Ok(None) => {}
                // The App's installation-token exchange was refused: judged as a 401.
                Err(HttpError::Unauthorized(m)) => {
                    return Ok(Answer {
                        status: 401,
                        headers: HeaderMap::new(),
                        body: serde_json::json!({ "message": m }).to_string().into_bytes(),
                    })
                }
                Err(e) => return Err(e.to_string()),
            }
            let mut resp = match rb.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = format!("GET {url}: {}", describe(e));
                    continue;
                }
            };
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let mut body = Vec::new();
            let complete = loop {
                match resp.chunk().await {
                    Ok(Some(c)) if body.len() + c.len() <= MAX_PROBE_BODY => {
                        body.extend_from_slice(&c)
                    }
                    Ok(Some(_)) => {
                        return Err(format!("GET {url}: answer over {MAX_PROBE_BODY} bytes"))
                    }
                    Ok(None) => break true,
                    Err(e) => {
                        last = format!("GET {url}: reading the answer: {}", describe(e));
                        break false;
                    }
                }
            };
            if !complete {
                continue;
            }
            if status >= 500 {
                last = format!("GET {url}: HTTP {status}");
                continue;
            }
            return Ok(Answer {
                status,
                headers,
                body,
            });
        }
        Err(last)
    }
}

/// How the source authenticates, for messages (never the secret itself).
fn credentials(cfg: &GithubConfig) -> String {
    match (&cfg.token, &cfg.app) {
        (Some(t), _) => {
            let refs: Vec<String> = t.named().iter().map(|(_, r)| r.to_string()).collect();
            format!("the token from {}", refs.join(", "))
        }
        (None, Some(a)) => match a.installation_id {
            Some(i) => format!("GitHub App {} (installation {i})", a.app_id),
            None => format!("GitHub App {} (each organisation's installation)", a.app_id),
        },
        (None, None) if std::env::var("GITHUB_TOKEN").is_ok_and(|t| !t.trim().is_empty()) => {
            "the token in GITHUB_TOKEN".into()
        }
        (None, None) => "no credentials (anonymous)".into(),
    }
}

fn new_token_fix(cfg: &GithubConfig) -> String {
    if cfg.app.is_some() {
        return "check source.app: app_id (App settings → App ID), installation_id (the number \
                in the installation's URL) and private_key (a current key of the App, PEM)"
            .into();
    }
    let place = match &cfg.token {
        Some(t) => {
            let refs: Vec<String> = t.named().iter().map(|(_, r)| r.to_string()).collect();
            format!("and make {} hold it", refs.join(", "))
        }
        None => "and set source.token (or GITHUB_TOKEN)".into(),
    };
    format!(
        "create a new token (classic with the `repo` scope, or fine-grained with read-only \
         Metadata, Pull requests and Contents on the organisations' repositories) {place}"
    )
}

/// The permission a stream needs, as named on GitHub's token and App settings pages.
fn permission(kind: &str) -> &'static str {
    match kind {
        "pulls" => "Pull requests",
        "commits" => "Contents",
        _ => "Deployments",
    }
}

pub(crate) async fn check(cfg: &GithubConfig) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let who = credentials(cfg);
    let auth = match Auth::resolve(cfg).await {
        Ok(a) => a,
        Err(e) => {
            out.push(CheckResult::failed(
                "github: credentials",
                e.to_string(),
                "make the secret reference resolve (set the variable, create the file or grant \
                 access to the secret)",
            ));
            return out;
        }
    };
    let anonymous = matches!(auth, Auth::Anonymous);
    let progress: flowctl_core::progress::Progress = Arc::new(flowctl_core::progress::NoProgress);
    let client = match Client::new(cfg, Auth::Anonymous, progress.clone()) {
        Ok(c) => c,
        Err(e) => {
            out.push(CheckResult::failed(
                "github: credentials",
                e,
                "fix source.base_url / source.tls_ca_file",
            ));
            return out;
        }
    };
    let probe = Probe {
        client,
        tokens: Tokens::new(auth, 0, progress),
    };
    // Each token of a list is checked on its own; an App without installation_id is
    // checked with the first organisation's installation (each org's below).
    let slots: Vec<(Option<usize>, String)> = match &cfg.token {
        Some(t @ TokenRefs::Many(list)) if list.len() > 1 => t
            .named()
            .into_iter()
            .enumerate()
            .map(|(i, (name, r))| (Some(i), format!("{name} ({r})")))
            .collect(),
        _ => vec![(None, String::new())],
    };
    let mut accepted = false;
    for (slot, name) in slots {
        let rate_limit = probe.get_as("rate_limit", slot);
        let rate = match cfg.orgs.first() {
            Some(org) if cfg.app.is_some() => for_org(org, rate_limit).await,
            _ => rate_limit.await,
        };
        let (who, label) = if name.is_empty() {
            (who.clone(), String::new())
        } else {
            (format!("{name} of {who}"), format!(" {name}"))
        };
        accepted |= token_checks(cfg, rate, &who, &label, anonymous, &mut out);
    }
    if !accepted {
        return out;
    }
    for org in &cfg.orgs {
        org_checks(cfg, &probe, org, &mut out).await;
    }
    out
}

/// The token's own checks from its `/rate_limit` answer: accepted, scopes, quota left.
/// False when the token was refused (nothing else can be checked with it).
fn token_checks(
    cfg: &GithubConfig,
    rate: Result<Answer, String>,
    who: &str,
    label: &str,
    anonymous: bool,
    out: &mut Vec<CheckResult>,
) -> bool {
    // `/rate_limit` answers 401 to a refused token and costs no quota.
    let rate = match rate {
        Err(e) => {
            out.push(CheckResult::failed(
                format!("github: token{label}"),
                format!("{who}: {e}"),
                format!(
                    "check source.base_url ({}) and this machine's access to it",
                    cfg.base_url
                ),
            ));
            return false;
        }
        Ok(a) if a.status == 401 => {
            out.push(CheckResult::failed(
                format!("github: token{label}"),
                format!("GitHub refused {who} (HTTP 401: {})", a.message()),
                new_token_fix(cfg),
            ));
            return false;
        }
        Ok(a) if a.status != 200 => {
            out.push(CheckResult::failed(
                format!("github: token{label}"),
                format!(
                    "GET /rate_limit with {who}: HTTP {}: {}",
                    a.status,
                    a.message()
                ),
                new_token_fix(cfg),
            ));
            return false;
        }
        Ok(a) => a,
    };
    let scopes = rate
        .headers
        .get("x-oauth-scopes")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    out.push(CheckResult::ok(
        format!("github: token{label}"),
        match (&scopes, anonymous) {
            (_, true) => {
                "no token: anonymous requests see public repositories only, 60 an hour".to_string()
            }
            (Some(_), _) => format!("{who} accepted (a classic token)"),
            (None, _) => format!("{who} accepted (fine-grained or App: permissions probed below)"),
        },
    ));
    out.push(scope_check(&scopes, anonymous, label));
    out.push(rate_check(&rate.body, label));
    true
}

/// A classic token needs `repo`: without it GitHub lists only public repositories,
/// silently, so no probe below would notice.
fn scope_check(scopes: &Option<String>, anonymous: bool, label: &str) -> CheckResult {
    let name = format!("github: token scopes{label}");
    let Some(scopes) = scopes else {
        return CheckResult::skipped(
            name,
            if anonymous {
                "no token"
            } else {
                "not a classic token (no X-OAuth-Scopes): its permissions are probed per organisation"
            },
        );
    };
    let list: Vec<&str> = scopes
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if list.contains(&"repo") {
        CheckResult::ok(name, format!("scopes: {}", list.join(", ")))
    } else {
        CheckResult::failed(
            name,
            format!(
                "scopes: {} — without `repo` GitHub lists only public repositories, and no error says so",
                if list.is_empty() { "(none)".to_string() } else { list.join(", ") }
            ),
            "edit the classic token (GitHub → Settings → Developer settings → Personal access \
             tokens) and tick the `repo` scope, or use a fine-grained token",
        )
    }
}

fn rate_check(body: &[u8], label: &str) -> CheckResult {
    #[derive(Deserialize)]
    struct Core {
        limit: u64,
        remaining: u64,
        reset: i64,
    }
    #[derive(Deserialize)]
    struct Resources {
        core: Core,
    }
    #[derive(Deserialize)]
    struct RateLimit {
        resources: Resources,
    }
    let name = format!("github: rate limit{label}");
    let core = match serde_json::from_slice::<RateLimit>(body) {
        Ok(r) => r.resources.core,
        Err(e) => {
            return CheckResult::failed(
                name,
                format!("GET /rate_limit: unexpected answer: {e}"),
                "check that source.base_url is the REST API root (https://HOST/api/v3 on GitHub Enterprise Server)",
            )
        }
    };
    let reset = chrono::DateTime::from_timestamp(core.reset, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| core.reset.to_string());
    let detail = format!(
        "{} of {} requests left this hour, resets at {reset}",
        core.remaining, core.limit
    );
    if core.remaining == 0 {
        CheckResult::failed(
            name,
            detail,
            format!("wait until {reset}, or use another token or a GitHub App (installations get up to 15,000 an hour)"),
        )
    } else {
        CheckResult::ok(name, detail)
    }
}

#[derive(Deserialize)]
struct RepoItem {
    name: String,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    fork: bool,
}

/// Whether `GET /users/{name}` names a user account (not an organisation).
async fn is_user(probe: &Probe, name: &str) -> bool {
    #[derive(Deserialize)]
    struct Account {
        #[serde(rename = "type")]
        kind: String,
    }
    match probe.get(&format!("users/{}", enc(name))).await {
        Ok(a) if a.status == 200 => {
            serde_json::from_slice::<Account>(&a.body).is_ok_and(|u| u.kind == "User")
        }
        _ => false,
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn org_checks(cfg: &GithubConfig, probe: &Probe, org: &str, out: &mut Vec<CheckResult>) {
    let name = format!("github: organisation {org}");
    let path = format!("orgs/{}/repos?type=all&per_page=100", enc(org));
    let mut account = "";
    let repos: Vec<RepoItem> = match probe.get(&path).await {
        Err(e) => {
            out.push(CheckResult::failed(
                name,
                e,
                "check source.base_url and the network",
            ));
            return;
        }
        Ok(a) if a.status == 200 => match serde_json::from_slice(&a.body) {
            Ok(r) => r,
            Err(e) => {
                out.push(CheckResult::failed(
                    name,
                    format!("GET /{path}: unexpected answer: {e}"),
                    "check that source.base_url is the REST API root",
                ));
                return;
            }
        },
        // A user account: its public repositories are read from /users/{name}/repos.
        Ok(a) if a.status == 404 && is_user(probe, org).await => {
            let user_path = format!("users/{}/repos?type=owner&per_page=100", enc(org));
            match probe.get(&user_path).await {
                Ok(u) if u.status == 200 => match serde_json::from_slice(&u.body) {
                    Ok(r) => {
                        account = "user account, ";
                        r
                    }
                    Err(e) => {
                        out.push(CheckResult::failed(
                            name,
                            format!("GET /{user_path}: unexpected answer: {e}"),
                            "check that source.base_url is the REST API root",
                        ));
                        return;
                    }
                },
                other => {
                    let why = match other {
                        Ok(u) => format!("HTTP {}: {}", u.status, u.message()),
                        Err(e) => e,
                    };
                    out.push(CheckResult::failed(
                        name,
                        format!("`{org}` is a user account and GET /{user_path} failed: {why}"),
                        "check source.base_url and the token",
                    ));
                    return;
                }
            }
        }
        Ok(a) => {
            let fix = match a.status {
                404 => format!(
                    "check the name `{org}` in source.orgs (an organisation or a user account); a \
                     private organisation is visible only when the token's owner is a member, \
                     or the App is installed on it"
                ),
                401 => new_token_fix(cfg),
                _ => format!(
                    "fine-grained token: choose `{org}` as its resource owner with read-only \
                     Metadata; classic token: authorise it for the organisation's SAML SSO \
                     (Settings → Personal access tokens → Configure SSO)"
                ),
            };
            out.push(CheckResult::failed(
                name,
                format!("GET /{path}: HTTP {}: {}", a.status, a.message()),
                fix,
            ));
            return;
        }
    };
    let chosen = repos.iter().find(|r| {
        cfg.repo_selected(&r.name)
            && (cfg.include_archived || !r.archived)
            && (cfg.include_forks || !r.fork)
    });
    out.push(CheckResult::ok(
        name,
        format!(
            "{account}{} repositories on the first page{}",
            repos.len(),
            chosen
                .map(|r| format!("; probing {org}/{}", r.name))
                .unwrap_or_default()
        ),
    ));
    let wants = |k: &[StreamKind]| cfg.streams.iter().any(|s| k.contains(s));
    let mut probes = Vec::new();
    if wants(&[StreamKind::PullRequest, StreamKind::PullRequestReview]) {
        probes.push(("pulls", "pulls?state=all&per_page=1"));
    }
    if wants(&[StreamKind::Commit, StreamKind::CommitFile]) {
        probes.push(("commits", "commits?per_page=1"));
    }
    if wants(&[StreamKind::Deployment]) {
        probes.push(("deployments", "deployments?per_page=1"));
    }
    for (kind, query) in probes {
        let perm = permission(kind);
        let name = format!("github: {org} {kind} ({perm})");
        let Some(repo) = chosen else {
            out.push(CheckResult::skipped(
                name,
                "no selected repository on the first page to probe (see include/exclude)",
            ));
            continue;
        };
        let path = format!("repos/{}/{}/{query}", enc(org), enc(&repo.name));
        let detail = format!("GET /{path}");
        match probe.get(&path).await {
            Err(e) => out.push(CheckResult::failed(name, e, "check the network")),
            // 409: an empty repository's commits; readable, just nothing there.
            Ok(a) if a.status == 200 || (a.status == 409 && kind == "commits") => out.push(
                CheckResult::ok(name, format!("{detail}: HTTP {}", a.status)),
            ),
            Ok(a) => out.push(CheckResult::failed(
                name,
                format!("{detail}: HTTP {}: {}", a.status, a.message()),
                format!(
                    "fine-grained token or GitHub App: grant `{perm}: Read-only` on {org}'s \
                     repositories (for an App, the organisation must accept the new \
                     permission); classic token: the `repo` scope"
                ),
            )),
        }
    }
}
