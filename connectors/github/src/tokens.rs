//! Which credential each request uses, and what each has left.
//!
//! Every credential (a token of the spec's list, an App installation, or anonymous
//! access) has its own rate budget, read from the `X-RateLimit-*` headers of its answers.
//! A request goes to its repository's home token unless that token is below the reserve
//! or has less than half the budget of the richest token; it then goes to the richest.
//! Homes are stable across runs because GitHub's ETags are specific to the token: a
//! conditional request answers 304 (free) only when sent with the token that got the
//! ETag. A request waits for a reset only when every candidate is low. An App without
//! `installation_id` has one candidate per org: the org's own installation.

use crate::auth::Auth;
use crate::http::{Client, HttpError};
use flowctl_core::progress::{Progress, ProgressEvent};
use flowctl_core::secret::SecretRef;
use reqwest::header::HeaderMap;
use std::future::Future;
use std::sync::Mutex;

tokio::task_local! {
    static SCOPE: Scope;
}

/// The org (and repository) the requests of a task are for.
#[derive(Clone)]
struct Scope {
    org: String,
    repo: Option<String>,
}

/// Runs `f` with its requests made for `org` (its App installation, its home token).
pub fn for_org<F: Future>(org: &str, f: F) -> impl Future<Output = F::Output> {
    let scope = Scope {
        org: org.to_string(),
        repo: None,
    };
    SCOPE.scope(scope, f)
}

/// Runs `f` with its requests made for repository `org/repo`.
pub fn for_repo<F: Future>(org: &str, repo: &str, f: F) -> impl Future<Output = F::Output> {
    let scope = Scope {
        org: org.to_string(),
        repo: Some(repo.to_string()),
    };
    SCOPE.scope(scope, f)
}

/// The org of a request and the key its home token is chosen by: the task's scope, else
/// what the URL path names (`/repos/{o}/{r}`, `/orgs/{o}`, `/users/{o}`), else the path.
fn scope_of(url: &str) -> (Option<String>, String) {
    if let Ok((org, repo)) = SCOPE.try_with(|s| (s.org.clone(), s.repo.clone())) {
        let key = match repo {
            Some(r) => format!("{org}/{r}"),
            None => org.clone(),
        };
        return (Some(org), key.to_ascii_lowercase());
    }
    let path = url::Url::parse(url)
        .map(|u| u.path().to_string())
        .unwrap_or_default();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for (i, s) in segs.iter().enumerate() {
        match (*s, segs.get(i + 1), segs.get(i + 2)) {
            ("repos", Some(o), Some(r)) => {
                return (Some(o.to_string()), format!("{o}/{r}").to_ascii_lowercase())
            }
            ("orgs" | "users", Some(o), _) => return (Some(o.to_string()), o.to_ascii_lowercase()),
            _ => {}
        }
    }
    (None, path)
}

#[derive(Clone, Copy, PartialEq)]
enum Id {
    Anonymous,
    Token(usize),
    Installation(u64),
}

struct Slot {
    id: Id,
    /// Shown in messages and the run summary; never the secret.
    name: String,
    /// What homes are hashed by: the secret reference, so reordering the list keeps them.
    home_id: String,
    remaining: Option<u64>,
    reset: Option<i64>,
    limit: Option<u64>,
    /// Answers this run that counted against the quota (not 304s, not refusals).
    used: u64,
    resting: bool,
}

impl Slot {
    fn new(id: Id, name: String, home_id: String) -> Slot {
        Slot {
            id,
            name,
            home_id,
            remaining: None,
            reset: None,
            limit: None,
            used: 0,
            resting: false,
        }
    }

    /// What is left, as far as known: `None` before the first answer and once the reset
    /// has passed (a fresh window).
    fn left(&self, now: i64) -> Option<u64> {
        match (self.remaining, self.reset) {
            (Some(r), Some(t)) if t > now => Some(r),
            (Some(r), None) => Some(r),
            _ => None,
        }
    }
}

/// The credentials a request may use, and its home key.
pub struct Candidates {
    slots: Vec<usize>,
    key: String,
}

impl Candidates {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// Every candidate is below the reserve: the one that resets first.
pub struct Low {
    pub remaining: u64,
    pub reset: i64,
    pub slot: usize,
    /// `" on every token (token[1] (env B) resets first)"` when there were several.
    pub which: String,
}

/// The credentials of a read with their rate budgets (see the module docs).
pub struct Tokens {
    auth: Auth,
    reserve: u64,
    progress: Progress,
    slots: Mutex<Vec<Slot>>,
}

fn shown(r: &SecretRef) -> String {
    match r {
        SecretRef::Env(n) => format!("env {n}"),
        SecretRef::File(p) => format!("file {p}"),
        SecretRef::GcpSecret(n) => format!("gcp_secret {n}"),
        SecretRef::AwsSecret(n) => format!("aws_secret {n}"),
    }
}

fn home_score(key: &str, id: &str) -> u64 {
    let d = md5::compute(format!("{key}\n{id}").as_bytes());
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl Tokens {
    pub fn new(auth: Auth, reserve: u64, progress: Progress) -> Tokens {
        let slots = match &auth {
            Auth::Anonymous => vec![Slot::new(
                Id::Anonymous,
                "anonymous".into(),
                "anonymous".into(),
            )],
            Auth::Token(_) => vec![Slot::new(Id::Token(0), "token".into(), "token".into())],
            Auth::Tokens(list) => list
                .iter()
                .enumerate()
                .map(|(i, (name, r, _))| {
                    Slot::new(
                        Id::Token(i),
                        format!("{name} ({})", shown(r)),
                        r.to_string(),
                    )
                })
                .collect(),
            Auth::App(_) => Vec::new(),
        };
        Tokens {
            auth,
            reserve,
            progress,
            slots: Mutex::new(slots),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The credentials a request to `url` may use: every token, or the App installation
    /// of the request's org (looked up on first use).
    pub async fn candidates(&self, client: &Client, url: &str) -> Result<Candidates, HttpError> {
        let (org, key) = scope_of(url);
        let slots = match &self.auth {
            Auth::Anonymous | Auth::Token(_) => vec![0],
            Auth::Tokens(list) => (0..list.len()).collect(),
            Auth::App(app) => {
                let id = app.installation(client, org.as_deref()).await?;
                let mut slots = self.lock();
                let at = match slots.iter().position(|s| s.id == Id::Installation(id)) {
                    Some(i) => i,
                    None => {
                        let name = match (&org, app.discovers()) {
                            (Some(o), true) => format!("App installation {id} ({o})"),
                            _ => format!("App installation {id}"),
                        };
                        slots.push(Slot::new(Id::Installation(id), name, id.to_string()));
                        slots.len() - 1
                    }
                };
                vec![at]
            }
        };
        Ok(Candidates { slots, key })
    }

    /// The credential for the next request, or [`Low`] when every candidate is below the
    /// reserve.
    pub fn choose(&self, c: &Candidates) -> Result<usize, Low> {
        let now = chrono::Utc::now().timestamp();
        let mut slots = self.lock();
        let usable = |s: &Slot| s.left(now).is_none_or(|l| l >= self.reserve);
        let home = c
            .slots
            .iter()
            .copied()
            .max_by_key(|i| home_score(&c.key, &slots[*i].home_id));
        let richest = c
            .slots
            .iter()
            .copied()
            .filter(|i| usable(&slots[*i]))
            .max_by_key(|i| {
                (
                    slots[*i].left(now).unwrap_or(u64::MAX),
                    std::cmp::Reverse(*i),
                )
            });
        let best_known = c
            .slots
            .iter()
            .filter_map(|i| slots[*i].left(now).filter(|_| usable(&slots[*i])))
            .max();
        for i in &c.slots {
            let s = &mut slots[*i];
            let low = !usable(s);
            if low && !s.resting && c.slots.len() > 1 {
                tracing::info!(
                    "{}: {} requests left (reserve {}): resting it until its reset; the other tokens carry on",
                    s.name,
                    s.remaining.unwrap_or(0),
                    self.reserve
                );
            }
            s.resting = low;
        }
        match (home, richest) {
            (Some(h), Some(r)) => {
                let keep_home = usable(&slots[h])
                    && match (slots[h].left(now), best_known) {
                        (Some(l), Some(b)) => l.saturating_mul(2) >= b,
                        _ => true,
                    };
                Ok(if keep_home { h } else { r })
            }
            _ => {
                let first = c
                    .slots
                    .iter()
                    .copied()
                    .min_by_key(|i| slots[*i].reset.unwrap_or(i64::MAX))
                    .unwrap_or(0);
                let s = slots.get(first);
                Err(Low {
                    remaining: s.and_then(|s| s.remaining).unwrap_or(0),
                    reset: s.and_then(|s| s.reset).unwrap_or(now),
                    slot: first,
                    which: match s {
                        Some(s) if c.slots.len() > 1 => {
                            format!(" on every token ({} resets first)", s.name)
                        }
                        _ => String::new(),
                    },
                })
            }
        }
    }

    /// Whether a candidate other than `slot` has budget (a refused request can go there).
    pub fn another_usable(&self, slot: usize, c: &Candidates) -> bool {
        let now = chrono::Utc::now().timestamp();
        let slots = self.lock();
        c.slots
            .iter()
            .any(|i| *i != slot && slots[*i].left(now).is_none_or(|l| l >= self.reserve))
    }

    /// How `slot` is shown in messages (never its secret).
    pub fn name(&self, slot: usize) -> String {
        self.lock()
            .get(slot)
            .map(|s| s.name.clone())
            .unwrap_or_default()
    }

    /// After waiting for `slot`'s reset: its budget is unknown until its next answer.
    pub fn refilled(&self, slot: usize) {
        if let Some(s) = self.lock().get_mut(slot) {
            s.remaining = None;
        }
    }

    /// Records what an answer to a request made with `slot` says of its budget.
    pub fn note(&self, slot: usize, status: u16, h: &HeaderMap) {
        // Other resources (search, graphql) have budgets of their own.
        if h.get("x-ratelimit-resource")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|r| r != "core")
        {
            return;
        }
        let (rem, reset, limit) = (
            header_u64(h, "x-ratelimit-remaining"),
            header_u64(h, "x-ratelimit-reset"),
            header_u64(h, "x-ratelimit-limit"),
        );
        let mut slots = self.lock();
        let Some(s) = slots.get_mut(slot) else {
            return;
        };
        let refused = matches!(status, 403 | 429) && rem == Some(0);
        if status != 304 && !refused {
            s.used += 1;
        }
        let reset = reset.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        // Concurrent answers arrive out of order; within one window the budget only falls.
        s.remaining = match (rem, s.remaining) {
            (Some(r), Some(before)) if reset.is_none() || reset == s.reset => Some(r.min(before)),
            (r, before) => r.or(before),
        };
        s.reset = reset.or(s.reset);
        s.limit = limit.or(s.limit);
    }

    /// The `Authorization` header of `slot`.
    pub async fn header_of(
        &self,
        client: &Client,
        slot: usize,
    ) -> Result<Option<String>, HttpError> {
        let id = self.lock().get(slot).map(|s| s.id);
        match (&self.auth, id) {
            (Auth::Token(secret), Some(Id::Token(_))) => {
                Ok(Some(format!("Bearer {}", secret.expose())))
            }
            (Auth::Tokens(list), Some(Id::Token(i))) => Ok(list
                .get(i)
                .map(|(_, _, secret)| format!("Bearer {}", secret.expose()))),
            (Auth::App(app), Some(Id::Installation(id))) => app.header(client, id).await.map(Some),
            _ => Ok(None),
        }
    }

    /// The `Authorization` header for a request of the current task outside
    /// [`Client::get`] (which also waits for budget): the credential that would be chosen.
    pub async fn header(&self, client: &Client) -> Result<Option<String>, HttpError> {
        let c = self.candidates(client, client.base().as_str()).await?;
        let slot = self.choose(&c).unwrap_or_else(|low| low.slot);
        self.header_of(client, slot).await
    }
}

fn fmt_time(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_else(|| epoch.to_string())
}

/// The run summary shows each credential's figures once its read is over (whichever
/// way it ends).
impl Drop for Tokens {
    fn drop(&mut self) {
        for s in self.lock().iter() {
            if s.used == 0 && s.remaining.is_none() {
                continue;
            }
            self.progress.event(ProgressEvent::Quota {
                credential: s.name.clone(),
                used: s.used,
                remaining: s.remaining,
                limit: s.limit,
                resets_at: s.reset.map(fmt_time),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_of_a_request_without_a_task_scope_comes_from_its_path() {
        let (org, key) = scope_of("https://ghe.example/api/v3/repos/Acme/Api/pulls?page=2");
        assert_eq!((org.as_deref(), key.as_str()), (Some("Acme"), "acme/api"));
        let (org, key) = scope_of("https://api.github.com/orgs/acme/repos");
        assert_eq!((org.as_deref(), key.as_str()), (Some("acme"), "acme"));
        let (org, key) = scope_of("https://api.github.com/repositories/12/pulls");
        assert_eq!((org, key.as_str()), (None, "/repositories/12/pulls"));
    }

    fn two_tokens(reserve: u64) -> Tokens {
        let t = |n: &str| {
            (
                n.to_string(),
                SecretRef::Env(n.to_uppercase()),
                flowctl_core::secret::Secret::new(format!("secret-{n}")),
            )
        };
        Tokens::new(
            Auth::Tokens(vec![t("a"), t("b")]),
            reserve,
            std::sync::Arc::new(flowctl_core::progress::NoProgress),
        )
    }

    fn answer(remaining: u64) -> HeaderMap {
        answer_in(remaining, 3600)
    }

    /// An answer whose window resets `reset_in` seconds after the test began.
    fn answer_in(remaining: u64, reset_in: i64) -> HeaderMap {
        static T0: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
        let mut h = HeaderMap::new();
        let reset = *T0.get_or_init(|| chrono::Utc::now().timestamp()) + reset_in;
        h.insert("x-ratelimit-remaining", remaining.into());
        h.insert("x-ratelimit-reset", reset.into());
        h.insert("x-ratelimit-limit", 5000u64.into());
        h
    }

    #[test]
    fn a_repository_keeps_its_home_token_until_it_is_low_or_much_poorer() {
        let t = two_tokens(50);
        let cands = |key: &str| Candidates {
            slots: vec![0, 1],
            key: key.into(),
        };
        // Homes spread over both tokens and do not change between calls.
        let homes: Vec<usize> = (0..40)
            .map(|i| t.choose(&cands(&format!("acme/r{i}"))).ok().unwrap())
            .collect();
        assert!(homes.contains(&0) && homes.contains(&1), "{homes:?}");
        let again: Vec<usize> = (0..40)
            .map(|i| t.choose(&cands(&format!("acme/r{i}"))).ok().unwrap())
            .collect();
        assert_eq!(homes, again);
        let key = (0..40).find(|i| homes[*i] == 0).unwrap();
        let key = format!("acme/r{key}");
        t.note(0, 200, &answer(3000));
        t.note(1, 200, &answer(4000));
        assert_eq!(
            t.choose(&cands(&key)).ok(),
            Some(0),
            "3000 is not under half of 4000"
        );
        t.note(0, 200, &answer(1999));
        assert_eq!(
            t.choose(&cands(&key)).ok(),
            Some(1),
            "the richer token takes over"
        );
        t.note(1, 200, &answer(90));
        t.note(0, 200, &answer(49));
        assert_eq!(
            t.choose(&cands(&key)).ok(),
            Some(1),
            "below the reserve, the home token rests"
        );
        t.note(1, 200, &answer(10));
        let low = t.choose(&cands(&key)).err().unwrap();
        assert!(low.which.contains("on every token"), "{}", low.which);
        assert!(!t.another_usable(0, &cands(&key)));
        // An answer of the same window that came late does not raise the budget...
        t.note(1, 200, &answer(80));
        assert!(t.choose(&cands(&key)).is_err());
        // ...a new window does.
        t.note(1, 304, &answer_in(4000, 7200));
        assert_eq!(t.choose(&cands(&key)).ok(), Some(1));
        assert!(t.another_usable(0, &cands(&key)));
        let used: Vec<u64> = t.lock().iter().map(|s| s.used).collect();
        assert_eq!(used, vec![3, 4], "304s do not count");
    }
}
