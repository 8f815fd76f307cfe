//! Several tokens and App installations against the GitHub stand-in: requests spread
//! over the tokens by budget, a spent token rests while the others carry on, each org
//! uses its own App installation, and the figures reach the run summary without any
//! secret in them.

use crate::common;

use common::{run_source, Events};
use flowctl_core::progress::ProgressEvent;
use flowctl_core::{ReadOutcome, StreamResult, TaggedBatch};
use flowctl_github::GithubConfig;
use flowctl_github_standin::{installation_id, Faults, Standin, StandinConfig};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

struct Output {
    result: flowctl_core::Result<ReadOutcome>,
    batches: Vec<TaggedBatch>,
    events: Arc<Events>,
}

impl Output {
    fn rows(&self, stream: &str) -> usize {
        self.batches
            .iter()
            .filter(|b| b.stream == stream)
            .map(|b| b.batch.num_rows())
            .sum()
    }

    fn done(&self, stream: &str) -> Value {
        match self.result.as_ref().unwrap().streams.get(stream) {
            Some(StreamResult::Done { state }) => state.clone(),
            other => panic!("stream {stream}: {other:?}"),
        }
    }

    fn waits(&self) -> Vec<String> {
        let events = self.events.0.lock().unwrap();
        events
            .iter()
            .filter_map(|e| match e {
                ProgressEvent::RateLimitWait { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }

    /// (credential, used, remaining) of each Quota event.
    fn quota(&self) -> Vec<(String, u64, Option<u64>)> {
        let events = self.events.0.lock().unwrap();
        events
            .iter()
            .filter_map(|e| match e {
                ProgressEvent::Quota {
                    credential,
                    used,
                    remaining,
                    ..
                } => Some((credential.clone(), *used, *remaining)),
                _ => None,
            })
            .collect()
    }

    /// Everything the read said: events, outcome and error.
    fn said(&self) -> String {
        format!("{:?} {:?}", self.events.0.lock().unwrap(), self.result)
    }
}

async fn read(cfg: GithubConfig, streams: &[&str], state: BTreeMap<String, Value>) -> Output {
    let events = Arc::new(Events::default());
    let (result, batches) = run_source(cfg, streams, state, None, events.clone()).await;
    Output {
        result,
        batches,
        events,
    }
}

const TOKEN_A: &str = "ghp_CANARY_token_a_0123456789";
const TOKEN_B: &str = "ghp_CANARY_token_b_9876543210";
/// Named by environment variables: homes are hashed by the reference, so fixed names
/// give the same homes on every run of the tests. Every test sets the same values.
const ENV_A: &str = "FLOWCTL_TOKENS_TEST_A";
const ENV_B: &str = "FLOWCTL_TOKENS_TEST_B";

struct Fixture {
    standin: Standin,
    dir: tempfile::TempDir,
}

impl Fixture {
    async fn start(cfg: StandinConfig) -> Fixture {
        let standin = Standin::start(cfg).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var(ENV_A, TOKEN_A);
        std::env::set_var(ENV_B, TOKEN_B);
        Fixture { standin, dir }
    }

    fn config(&self, extra: Value) -> GithubConfig {
        let mut v = json!({
            "orgs": self.standin.org_names(),
            "base_url": self.standin.base_url(),
            "token": [{"env": ENV_A}, {"env": ENV_B}],
            // The budgets asserted are the REST quota's (GraphQL has its own).
            "api": "rest",
            "retry_backoff_ms": 1,
            "secondary_limit_wait_seconds": 0,
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        GithubConfig::from_value(v).unwrap()
    }

    fn budgets(&self, a: u64, b: u64, window_secs: u64, extra: Faults) {
        self.standin.set_faults(Faults {
            token_quotas: BTreeMap::from([(TOKEN_A.to_string(), a), (TOKEN_B.to_string(), b)]),
            quota_window_secs: window_secs,
            ..extra
        });
    }

    fn used(&self, token: &str) -> u64 {
        self.standin
            .stats()
            .by_token
            .get(token)
            .copied()
            .unwrap_or(0)
    }
}

fn world() -> StandinConfig {
    StandinConfig {
        orgs: 1,
        repos_per_org: 6,
        prs_per_repo: 12,
        reviews_per_pr: 1,
        commits_per_repo: 5,
        files_per_commit: 1,
        latency_ms: 0,
        seed: 11,
    }
}

fn assert_no_secret(out: &Output, secrets: &[&str]) {
    let said = out.said();
    for s in secrets {
        assert!(!said.contains(s), "a secret in the output: {said}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tokens_share_the_work_by_budget() {
    let fx = Fixture::start(world()).await;
    // 1 repo list + 6 pulls pages + 72 review lists = 79 requests: more than either
    // token's 60, less than both.
    fx.budgets(60, 50, 3600, Faults::default());
    let cfg = fx.config(
        json!({"rate_limit_reserve": 5, "max_rate_limit_wait_seconds": 5,
        "max_concurrency": 1}),
    );
    let out = read(
        cfg,
        &["pull_request", "pull_request_review"],
        BTreeMap::new(),
    )
    .await;
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(out.rows("pull_request"), 72);
    assert_eq!(out.rows("pull_request_review"), 72);
    let (a, b) = (fx.used(TOKEN_A), fx.used(TOKEN_B));
    assert_eq!(a + b, 79, "every request counted against one of the tokens");
    assert!(a >= 20 && b >= 20, "spread: A made {a}, B {b}");
    let st = fx.standin.stats();
    assert_eq!(st.by_status.get(&403), None, "{st:?}");
    assert_eq!(out.waits(), Vec::<String>::new());
    assert_eq!(
        out.quota(),
        vec![
            (format!("token[0] (env {ENV_A})"), a, Some(60 - a)),
            (format!("token[1] (env {ENV_B})"), b, Some(50 - b)),
        ]
    );
    assert_no_secret(&out, &[TOKEN_A, TOKEN_B]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refused_as_spent_rests_and_the_other_carries_on_without_a_wait() {
    let fx = Fixture::start(world()).await;
    // The first request's token is refused as spent for two minutes (another job used
    // it up): waiting would fail the run (max_rate_limit_wait_seconds 5).
    let faults = Faults {
        primary_exhausted_next: 1,
        primary_reset_secs: 120,
        ..Default::default()
    };
    fx.budgets(5000, 5000, 3600, faults);
    let cfg = fx.config(json!({"max_rate_limit_wait_seconds": 5}));
    let out = read(
        cfg,
        &["pull_request", "pull_request_review"],
        BTreeMap::new(),
    )
    .await;
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(out.rows("pull_request_review"), 72);
    assert_eq!(fx.standin.stats().by_status.get(&403), Some(&1));
    assert_eq!(out.waits(), Vec::<String>::new());
    let (a, b) = (fx.used(TOKEN_A), fx.used(TOKEN_B));
    assert_eq!((a.min(b), a.max(b)), (0, 79), "A made {a}, B {b}");
    let quota = out.quota();
    let rested: Vec<_> = quota.iter().filter(|q| q.2 == Some(0)).collect();
    assert_eq!(rested.len(), 1, "{quota:?}");
    assert_eq!(rested[0].1, 0, "a refused request does not count");
    assert_no_secret(&out, &[TOKEN_A, TOKEN_B]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_token_is_low_the_run_waits_for_the_first_reset() {
    let fx = Fixture::start(StandinConfig {
        repos_per_org: 1,
        ..world()
    })
    .await;
    // 1 + 1 + 12 = 14 requests; 2 tokens × (5 - reserve 2) per 2-second window.
    fx.budgets(5, 5, 2, Faults::default());
    let cfg = fx.config(
        json!({"rate_limit_reserve": 2, "max_rate_limit_wait_seconds": 10,
        "max_concurrency": 1}),
    );
    let out = read(
        cfg,
        &["pull_request", "pull_request_review"],
        BTreeMap::new(),
    )
    .await;
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(out.rows("pull_request_review"), 12);
    let waits = out.waits();
    assert!(!waits.is_empty());
    assert!(
        waits.iter().all(|w| w.contains("on every token")),
        "{waits:?}"
    );
    assert!(fx.used(TOKEN_A) > 0 && fx.used(TOKEN_B) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_repository_keeps_its_token_so_etags_answer_304() {
    let fx = Fixture::start(world()).await;
    // ETags specific to the token, as api.github.com's are.
    let faults = Faults {
        etag_per_token: true,
        ..Default::default()
    };
    fx.budgets(5000, 5000, 3600, faults);
    let cfg = fx.config(json!({}));
    let streams = ["pull_request", "commit", "repository"];
    let first = read(cfg.clone(), &streams, BTreeMap::new()).await;
    assert!(first.result.is_ok(), "{:?}", first.result);
    assert!(
        fx.used(TOKEN_A) > 0 && fx.used(TOKEN_B) > 0,
        "both tokens used"
    );
    let state: BTreeMap<String, Value> = streams
        .iter()
        .map(|s| (s.to_string(), first.done(s)))
        .collect();
    fx.standin.reset_stats();
    let second = read(cfg, &streams, state).await;
    assert!(second.result.is_ok(), "{:?}", second.result);
    let st = fx.standin.stats();
    // The repo list, and pulls and commits of 6 repositories: all unchanged.
    assert_eq!((st.total, st.not_modified), (13, 13), "{st:?}");
}

fn app_key(dir: &std::path::Path) -> Option<String> {
    let key = dir.join("app.pem");
    let ok = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then(|| key.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_uses_each_orgs_own_installation() {
    let fx = Fixture::start(StandinConfig {
        orgs: 2,
        repos_per_org: 2,
        ..world()
    })
    .await;
    let Some(key) = app_key(fx.dir.path()) else {
        println!("SKIPPED: openssl genrsa not available");
        return;
    };
    // The second is a user account: its installation is found under /users/.
    let orgs = fx.standin.org_names();
    fx.standin.set_faults(Faults {
        installation_per_org: true,
        user_accounts: vec![orgs[1].clone()],
        ..Default::default()
    });
    let mut cfg = fx.config(json!({}));
    cfg.token = None;
    cfg.app = Some(
        serde_json::from_value(json!({"app_id": 12345, "private_key": {"file": key}})).unwrap(),
    );
    let out = read(
        cfg.clone(),
        &["pull_request", "repository"],
        BTreeMap::new(),
    )
    .await;
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(out.rows("pull_request"), 2 * 2 * 12);
    assert_eq!(out.rows("repository"), 4);
    let st = fx.standin.stats();
    // One lookup for the org, two for the user account (/orgs/ answers 404).
    assert_eq!((st.kind("installation"), st.kind("app_token")), (3, 2));
    // Every request about an org carried that org's installation token.
    let by_org: Vec<(String, String)> = st.by_org_token.keys().cloned().collect();
    let want: Vec<(String, String)> = (0..2)
        .map(|o| {
            let token = format!("ghs_standin_installation_{}", installation_id(o));
            (orgs[o].clone(), token)
        })
        .collect();
    assert_eq!(by_org, want);
    let names: Vec<String> = out.quota().into_iter().map(|q| q.0).collect();
    assert_eq!(
        names,
        (0..2)
            .map(|o| format!("App installation {} ({})", installation_id(o), orgs[o]))
            .collect::<Vec<_>>()
    );
    assert_no_secret(&out, &["ghs_standin_installation_", "BEGIN RSA"]);

    // Installation tokens with less than five minutes left are replaced before use.
    fx.standin.set_faults(Faults {
        installation_per_org: true,
        user_accounts: vec![orgs[1].clone()],
        installation_token_ttl_secs: 200,
        ..Default::default()
    });
    fx.standin.reset_stats();
    let out = read(
        cfg.clone(),
        &["pull_request", "repository"],
        BTreeMap::new(),
    )
    .await;
    assert!(out.result.is_ok(), "{:?}", out.result);
    let st = fx.standin.stats();
    let api: u64 = st.by_org_token.values().sum();
    assert_eq!(
        st.kind("app_token"),
        api,
        "one fresh token per request: {st:?}"
    );

    // One installation for both orgs cannot see the second (the stand-in hides it).
    let mut fixed = cfg;
    if let Some(app) = fixed.app.as_mut() {
        app.installation_id = Some(installation_id(0));
    }
    let out = read(fixed, &["pull_request", "repository"], BTreeMap::new()).await;
    let e = out.result.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains(&orgs[1]) && e.contains("not found"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_is_named_by_its_reference() {
    let fx = Fixture::start(world()).await;
    // Only A is a valid token: a request sent with B is refused.
    fx.standin.set_faults(Faults {
        require_token: Some(TOKEN_A.into()),
        ..Default::default()
    });
    let out = read(fx.config(json!({})), &["pull_request"], BTreeMap::new()).await;
    let e = out
        .result
        .as_ref()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("token rejected") && e.contains(&format!("token[1] (env {ENV_B})")),
        "{e}"
    );
    assert_no_secret(&out, &[TOKEN_A, TOKEN_B]);
}
