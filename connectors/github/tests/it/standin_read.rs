//! The github source against the GitHub stand-in server (real HTTP on 127.0.0.1; the
//! stand-in is the only fake, because there is no GitHub here).

use crate::common;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use common::{run_source, Events};
use flowctl_core::progress::ProgressEvent;
use flowctl_core::{ReadOutcome, Shard, StreamResult, TaggedBatch};
use flowctl_github::GithubConfig;
use flowctl_github_standin::{Faults, Standin, StandinConfig};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

const TOKEN: &str = "ghp_CANARY_test_token_0123456789";

struct Fixture {
    standin: Standin,
    _dir: tempfile::TempDir,
    token_file: String,
}

async fn fixture(cfg: StandinConfig) -> Fixture {
    let standin = Standin::start(cfg).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token").display().to_string();
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    standin.set_faults(Faults {
        require_token: Some(TOKEN.into()),
        ..Default::default()
    });
    Fixture {
        standin,
        _dir: dir,
        token_file,
    }
}

impl Fixture {
    fn config(&self, extra: Value) -> GithubConfig {
        let mut v = json!({
            "orgs": self.standin.org_names(),
            "base_url": self.standin.base_url(),
            "token": {"file": self.token_file},
            "retry_backoff_ms": 1,
            "secondary_limit_wait_seconds": 0,
            // These tests count the REST path's requests; graphql_*.rs test the other.
            "api": "rest",
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        GithubConfig::from_value(v).unwrap()
    }

    fn faults(&self, f: Faults) {
        self.standin.set_faults(Faults {
            require_token: Some(TOKEN.into()),
            ..f
        });
    }
}

struct Output {
    result: flowctl_core::Result<ReadOutcome>,
    batches: Vec<TaggedBatch>,
    events: Arc<Events>,
}

impl Output {
    fn outcome(&self) -> &ReadOutcome {
        self.result.as_ref().unwrap()
    }
    fn rows(&self, stream: &str) -> usize {
        self.batches
            .iter()
            .filter(|b| b.stream == stream)
            .map(|b| b.batch.num_rows())
            .sum()
    }
    fn state(&self, stream: &str) -> Value {
        match self.outcome().streams.get(stream) {
            Some(StreamResult::Done { state }) => state.clone(),
            other => panic!("stream {stream}: {other:?}"),
        }
    }
    fn failed(&self, stream: &str) -> String {
        match self.outcome().streams.get(stream) {
            Some(StreamResult::Failed { error }) => error.clone(),
            other => panic!("stream {stream} should have failed: {other:?}"),
        }
    }
    fn strings(&self, stream: &str, col: &str) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for b in self.batches.iter().filter(|b| b.stream == stream) {
            let a = b.batch.column_by_name(col).unwrap().as_string::<i32>();
            out.extend(a.iter().map(|v| v.map(String::from)));
        }
        out
    }
    fn ints(&self, stream: &str, col: &str) -> Vec<Option<i64>> {
        let mut out = Vec::new();
        for b in self.batches.iter().filter(|b| b.stream == stream) {
            let a = b
                .batch
                .column_by_name(col)
                .unwrap()
                .as_primitive::<Int64Type>();
            out.extend(a.iter());
        }
        out
    }
    fn nulls(&self, stream: &str, col: &str) -> usize {
        self.batches
            .iter()
            .filter(|b| b.stream == stream)
            .map(|b| b.batch.column_by_name(col).unwrap().null_count())
            .sum()
    }
}

async fn read(
    cfg: GithubConfig,
    streams: &[&str],
    state: BTreeMap<String, Value>,
    shard: Option<Shard>,
) -> Output {
    let events = Arc::new(Events::default());
    let (result, batches) = run_source(cfg, streams, state, shard, events.clone()).await;
    Output {
        result,
        batches,
        events,
    }
}

fn states(out: &Output, streams: &[&str]) -> BTreeMap<String, Value> {
    streams
        .iter()
        .map(|s| (s.to_string(), out.state(s)))
        .collect()
}

fn small() -> StandinConfig {
    StandinConfig {
        orgs: 1,
        repos_per_org: 2,
        prs_per_repo: 250,
        reviews_per_pr: 2,
        commits_per_repo: 120,
        files_per_commit: 3,
        latency_ms: 0,
        seed: 7,
    }
}

const ALL: &[&str] = &[
    "pull_request",
    "pull_request_review",
    "commit",
    "commit_file",
    "repository",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_reads_every_row_with_exact_requests() {
    let fx = fixture(small()).await;
    let out = read(
        fx.config(json!({"batch_rows": 128})),
        ALL,
        BTreeMap::new(),
        None,
    )
    .await;
    let exp = &fx.standin.expected().orgs[0];
    assert_eq!(out.rows("pull_request"), exp.prs);
    assert_eq!(out.rows("pull_request_review"), exp.reviews);
    assert_eq!(out.rows("commit"), exp.commits);
    assert_eq!(out.rows("commit_file"), exp.commit_files);
    assert_eq!(out.rows("repository"), exp.repos);
    // 1 repo page + 2 repos × 3 pulls pages + 500 PRs' reviews + 2 × (2 commit pages + 1
    // head request) + 240 commits' files.
    let st = fx.standin.stats();
    assert_eq!(st.kind("repos"), 1);
    assert_eq!(
        st.kind("pulls"),
        6,
        "pages followed via Link to /repositories/{{id}}/pulls"
    );
    assert_eq!(st.kind("reviews"), 500);
    assert_eq!(st.kind("commits"), 6);
    assert_eq!(st.kind("commit"), 240);
    assert_eq!(st.total, 753);
    assert!(out
        .batches
        .iter()
        .all(|b| b.batch.num_rows() <= 128 && b.batch.num_rows() > 0));
    assert!(out.batches.iter().all(|b| b.partition == "standin-org-0"));
    for s in ALL {
        assert!(
            matches!(out.outcome().streams[*s], StreamResult::Done { .. }),
            "{s}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_carry_keys_big_ids_unicode_and_nulls() {
    let fx = fixture(small()).await;
    let out = read(
        fx.config(json!({})),
        &["pull_request", "pull_request_review", "commit_file"],
        BTreeMap::new(),
        None,
    )
    .await;
    let ids = out.ints("pull_request", "ID");
    let repos = out.strings("pull_request", "REPO_NAME");
    let keys = out.strings("pull_request", "_ROW_KEY");
    for i in 0..ids.len() {
        let id = ids[i].unwrap();
        assert!(id > i64::from(i32::MAX), "ids above 2^31");
        let want = format!(
            "{:x}",
            md5::compute(format!(
                "standin-org-0|{}|{id}",
                repos[i].as_deref().unwrap()
            ))
        );
        assert_eq!(keys[i].as_deref(), Some(want.as_str()));
    }
    let titles = out.strings("pull_request", "TITLE");
    assert!(titles.iter().any(|t| t
        .as_deref()
        .unwrap()
        .contains("🐛 in the naïve “parser” — \"quotes\" \\ back\\slash 日本語")));
    assert!(
        out.nulls("pull_request", "MERGED_AT") > 0
            && out.nulls("pull_request", "MERGED_AT") < ids.len()
    );
    assert!(out.nulls("pull_request", "MILESTONE_TITLE") > 0);
    assert!(
        out.nulls("pull_request", "HEAD_REPO_FULL_NAME") > 0,
        "deleted forks"
    );
    assert_eq!(
        out.nulls("pull_request", "MERGED_BY_LOGIN"),
        ids.len(),
        "list endpoint has no merged_by"
    );
    assert!(
        out.nulls("pull_request_review", "USER_LOGIN") > 0,
        "ghost reviewers"
    );
    assert!(
        out.nulls("pull_request_review", "SUBMITTED_AT") > 0,
        "pending reviews"
    );
    let raw = out.strings("pull_request", "_RAW");
    let first: Value = serde_json::from_str(raw[0].as_deref().unwrap()).unwrap();
    assert_eq!(first["id"].as_i64(), ids[0]);
    assert!(
        out.nulls("commit_file", "PATCH") == out.rows("commit_file"),
        "patch off by default"
    );
    assert!(!out.strings("commit_file", "_RAW")[0]
        .as_deref()
        .unwrap()
        .contains("\"patch\""));
    let fkeys = out.strings("commit_file", "_ROW_KEY");
    let shas = out.strings("commit_file", "COMMIT_SHA");
    let names = out.strings("commit_file", "FILENAME");
    let r = out.strings("commit_file", "REPO_NAME");
    let want = format!(
        "{:x}",
        md5::compute(format!(
            "standin-org-0|{}|{}|{}",
            r[0].as_deref().unwrap(),
            shas[0].as_deref().unwrap(),
            names[0].as_deref().unwrap()
        ))
    );
    assert_eq!(fkeys[0].as_deref(), Some(want.as_str()));
    assert!(names
        .iter()
        .any(|n| n.as_deref().unwrap().contains("ünïcode")));
}

/// Without the `repository` stream the repository list is kept by the first stream read,
/// so an unchanged list still answers 304 and an unchanged sync costs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_repository_stream_an_unchanged_list_answers_304() {
    let fx = fixture(small()).await;
    let cfg = fx.config(json!({"cursor_overlap_seconds": 0}));
    let s = &["pull_request", "pull_request_review"];
    let first = read(cfg.clone(), s, BTreeMap::new(), None).await;
    let st1 = states(&first, s);
    assert_eq!(
        st1["pull_request"]["orgs"]["standin-org-0"]["repos"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    fx.standin.reset_stats();
    let second = read(cfg.clone(), s, st1.clone(), None).await;
    let st = fx.standin.stats();
    assert_eq!(st.kind("repos"), 1, "{st:?}");
    assert_eq!((st.counted(), st.not_modified), (0, st.total), "{st:?}");
    assert_eq!(second.rows("pull_request"), 0);
    assert_eq!(states(&second, s), st1, "nothing changed, state unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_uses_304_and_stops_early() {
    let fx = fixture(small()).await;
    let cfg = fx.config(json!({"cursor_overlap_seconds": 0}));
    let s = &["pull_request", "repository"];
    let first = read(cfg.clone(), s, BTreeMap::new(), None).await;
    assert_eq!(first.rows("pull_request"), 500);
    let st1 = states(&first, s);
    assert!(st1["pull_request"]["repos"]["standin-org-0/repo-0"]["etag"].is_string());
    assert!(
        st1["repository"]["orgs"]["standin-org-0"]["repos"]
            .as_array()
            .unwrap()
            .len()
            == 2
    );

    fx.standin.reset_stats();
    let second = read(cfg.clone(), s, st1.clone(), None).await;
    let st = fx.standin.stats();
    assert_eq!(
        (st.total, st.not_modified, st.counted()),
        (3, 3, 0),
        "repo list and both first pulls pages answer 304"
    );
    assert_eq!(second.rows("pull_request"), 0);
    assert_eq!(
        second
            .events
            .count(|e| matches!(e, ProgressEvent::NotModified { .. })),
        3
    );
    assert_eq!(states(&second, s), st1, "nothing changed, state unchanged");

    let touched = fx.standin.touch_pull_requests(3);
    fx.standin.reset_stats();
    let third = read(cfg, s, st1, None).await;
    let st = fx.standin.stats();
    assert_eq!(st.kind("pulls"), 2, "one page per repo, then stop");
    assert_eq!(st.counted(), 2);
    let ids = third.ints("pull_request", "ID");
    for (_, _, id) in &touched {
        assert!(ids.contains(&Some(*id as i64)), "touched PR {id} re-read");
    }
    assert_eq!(
        ids.len(),
        touched.len(),
        "only rows newer than the cursor are yielded"
    );
    assert!(third
        .strings("pull_request", "TITLE")
        .iter()
        .any(|t| t.as_deref().unwrap().contains("(edited 1)")));
    let c3 = third.state("pull_request");
    assert_ne!(
        c3["repos"]["standin-org-0/repo-0"]["cursor"],
        first.state("pull_request")["repos"]["standin-org-0/repo-0"]["cursor"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_incremental_uses_since_and_files_only_for_new_commits() {
    let fx = fixture(small()).await;
    let cfg = fx.config(json!({}));
    let s = &["commit", "commit_file"];
    let first = read(cfg.clone(), s, BTreeMap::new(), None).await;
    assert_eq!(first.rows("commit_file"), 720);
    fx.standin.reset_stats();
    let second = read(cfg.clone(), s, states(&first, s), None).await;
    let st = fx.standin.stats();
    assert_eq!(
        st.kind("commit"),
        0,
        "no file requests for commits already read"
    );
    assert_eq!((st.kind("commits"), st.total), (2, 3));
    assert_eq!(second.rows("commit_file"), 0);
    // Run 1 read two pages, so the `since` anchor moved to the cursor: one 200 page.
    assert_eq!(second.rows("commit"), 0);
    // Third run: same `since`, same first page → the saved ETag answers 304.
    fx.standin.reset_stats();
    let third = read(cfg, s, states(&second, s), None).await;
    let st = fx.standin.stats();
    assert_eq!((st.total, st.not_modified), (3, 3));
    assert_eq!(third.rows("commit"), 0);
    assert_eq!(states(&third, s), states(&second, s));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_limit_is_waited_out() {
    let fx = fixture(small()).await;
    fx.faults(Faults {
        primary_exhausted_next: 1,
        primary_reset_secs: 1,
        ..Default::default()
    });
    let out = read(
        fx.config(json!({})),
        &["pull_request"],
        BTreeMap::new(),
        None,
    )
    .await;
    assert_eq!(out.rows("pull_request"), 500);
    assert_eq!(fx.standin.stats().total, 1 + 1 + 6);
    let waits = out.events.waits();
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert!(
        waits[0].contains("primary rate limit, resets at"),
        "{waits:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_limit_past_max_wait_fails_naming_reset_time() {
    let fx = fixture(small()).await;
    fx.faults(Faults {
        primary_exhausted_next: 5,
        primary_reset_secs: 120,
        ..Default::default()
    });
    let out = read(
        fx.config(json!({"max_rate_limit_wait_seconds": 5})),
        &["pull_request"],
        BTreeMap::new(),
        None,
    )
    .await;
    let e = out.failed("pull_request");
    assert!(
        e.contains("rate limit exhausted; it resets at")
            && e.contains("max_rate_limit_wait_seconds = 5"),
        "{e}"
    );
    assert_eq!(fx.standin.stats().total, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secondary_limit_honours_retry_after_then_backs_off() {
    let fx = fixture(small()).await;
    fx.faults(Faults {
        secondary_next: 1,
        secondary_retry_after: Some(1),
        ..Default::default()
    });
    let out = read(
        fx.config(json!({})),
        &["pull_request"],
        BTreeMap::new(),
        None,
    )
    .await;
    assert_eq!(out.rows("pull_request"), 500);
    assert_eq!(fx.standin.stats().total, 8);
    assert!(
        out.events.waits()[0].contains("Retry-After 1 s"),
        "{:?}",
        out.events.waits()
    );

    fx.faults(Faults {
        secondary_next: 2,
        secondary_retry_after: None,
        ..Default::default()
    });
    fx.standin.reset_stats();
    let out = read(
        fx.config(json!({})),
        &["pull_request"],
        BTreeMap::new(),
        None,
    )
    .await;
    assert_eq!(out.rows("pull_request"), 500);
    assert_eq!(fx.standin.stats().total, 9);
    assert_eq!(
        out.events.waits(),
        vec!["secondary rate limit".to_string(); 2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_then_succeed() {
    let fx = fixture(small()).await;
    fx.faults(Faults {
        fail_5xx_next: 2,
        ..Default::default()
    });
    let out = read(
        fx.config(json!({})),
        &["pull_request"],
        BTreeMap::new(),
        None,
    )
    .await;
    assert_eq!(out.rows("pull_request"), 500);
    assert_eq!(fx.standin.stats().total, 7 + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_until_retries_run_out_fail_clearly() {
    let fx = fixture(small()).await;
    fx.faults(Faults {
        fail_5xx_next: 1000,
        ..Default::default()
    });
    let out = read(
        fx.config(json!({"max_retries": 2})),
        &["pull_request", "commit"],
        BTreeMap::new(),
        None,
    )
    .await;
    let e = out.failed("pull_request");
    let url = format!(
        "GET {}/orgs/standin-org-0/repos?type=all&per_page=100",
        fx.standin.base_url()
    );
    assert!(
        e.contains(&url)
            && e.contains("HTTP 502")
            && e.contains("gave up after 3 attempts")
            && e.contains("Server Error"),
        "{e}"
    );
    assert!(!e.contains(TOKEN));
    assert_eq!(out.failed("commit"), e);
    assert_eq!(fx.standin.stats().total, 3);
    assert_eq!(out.rows("pull_request"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_stream_does_not_take_others_down() {
    let fx = fixture(small()).await;
    fx.faults(Faults {
        fail_5xx_kind: Some("reviews".into()),
        ..Default::default()
    });
    let s = &["pull_request", "pull_request_review", "commit"];
    let out = read(
        fx.config(json!({"max_retries": 1})),
        s,
        BTreeMap::new(),
        None,
    )
    .await;
    let e = out.failed("pull_request_review");
    assert!(e.contains("/reviews") && e.contains("HTTP 502"), "{e}");
    assert_eq!(out.rows("pull_request"), 500);
    assert_eq!(out.rows("commit"), 240);
    assert!(out.state("pull_request")["repos"]["standin-org-0/repo-1"]["cursor"].is_string());
    assert!(out.state("commit")["repos"]["standin-org-0/repo-1"]["cursor"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_json_is_retried() {
    let fx = fixture(small()).await;
    fx.faults(Faults {
        truncate_next: 2,
        ..Default::default()
    });
    let out = read(
        fx.config(json!({})),
        &["pull_request"],
        BTreeMap::new(),
        None,
    )
    .await;
    assert_eq!(out.rows("pull_request"), 500);
    assert_eq!(fx.standin.stats().total, 7 + 2);
    let ids = out.ints("pull_request", "ID");
    let unique: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 500, "no row appended twice by a retried page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_token_fails_at_once() {
    let fx = fixture(small()).await;
    fx.faults(Faults {
        unauthorized: true,
        ..Default::default()
    });
    let out = read(
        fx.config(json!({})),
        &["pull_request"],
        BTreeMap::new(),
        None,
    )
    .await;
    let e = out.result.as_ref().err().unwrap().to_string();
    assert!(
        e.contains("token rejected") && e.contains("Bad credentials"),
        "{e}"
    );
    assert!(!e.contains(TOKEN));
    assert_eq!(fx.standin.stats().total, 1, "401 is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_token_is_rejected_by_the_standin() {
    let fx = fixture(small()).await;
    let mut cfg = fx.config(json!({}));
    cfg.token = None;
    let out = read(cfg, &["pull_request"], BTreeMap::new(), None).await;
    assert!(out.result.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repo_answering_404_is_skipped_with_a_warning() {
    let fx = fixture(small()).await;
    fx.faults(Faults {
        missing_repo: Some("repo-1".into()),
        ..Default::default()
    });
    let out = read(
        fx.config(json!({})),
        &["pull_request", "commit"],
        BTreeMap::new(),
        None,
    )
    .await;
    assert_eq!(out.rows("pull_request"), 250);
    let w = out.events.warnings();
    assert_eq!(w.len(), 1);
    assert!(
        w[0].contains("standin-org-0/repo-1 skipped") && w[0].contains("404"),
        "{w:?}"
    );
    let st = out.state("pull_request");
    assert!(
        st["repos"].get("standin-org-0/repo-0").is_some()
            && st["repos"].get("standin-org-0/repo-1").is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_org_is_a_clear_error() {
    let fx = fixture(small()).await;
    let mut cfg = fx.config(json!({}));
    cfg.orgs = vec!["no-such-org".into()];
    let out = read(cfg, &["pull_request"], BTreeMap::new(), None).await;
    let e = out.result.as_ref().err().unwrap().to_string();
    assert!(
        e.contains("`no-such-org` is neither an organisation nor a user account"),
        "{e}"
    );
    // Both paths were asked, once each.
    let st = fx.standin.stats();
    assert_eq!((st.kind("repos"), st.total), (2, 2), "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_split_repos_without_overlap() {
    let fx = fixture(StandinConfig {
        repos_per_org: 6,
        prs_per_repo: 10,
        ..small()
    })
    .await;
    let mut seen = Vec::new();
    for index in 0..2 {
        let out = read(
            fx.config(json!({})),
            &["pull_request"],
            BTreeMap::new(),
            Some(Shard { index, count: 2 }),
        )
        .await;
        seen.extend(
            out.strings("pull_request", "REPO_NAME")
                .into_iter()
                .flatten(),
        );
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6);
    assert_eq!(fx.standin.stats().kind("pulls"), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_exclude_globs_select_repos() {
    let fx = fixture(StandinConfig {
        repos_per_org: 4,
        prs_per_repo: 5,
        ..small()
    })
    .await;
    let out = read(
        fx.config(json!({"include": ["repo-*"], "exclude": ["repo-3", "repo-0"]})),
        &["pull_request", "repository"],
        BTreeMap::new(),
        None,
    )
    .await;
    let mut names = out
        .strings("repository", "NAME")
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    names.sort();
    assert_eq!(names, vec!["repo-1", "repo-2"]);
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(out.rows("pull_request"), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_app_auth_exchanges_a_jwt_for_an_installation_token() {
    let fx = fixture(StandinConfig {
        prs_per_repo: 5,
        ..small()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app.pem");
    let ok = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        println!("SKIPPED: openssl genrsa not available");
        return;
    }
    fx.standin.set_faults(Faults {
        require_token: Some("ghs_standin_installation_token".into()),
        ..Default::default()
    });
    let mut cfg = fx.config(json!({}));
    cfg.token = None;
    cfg.app = Some(serde_json::from_value(json!({"app_id": 12345, "private_key": {"file": key.display().to_string()}, "installation_id": 99})).unwrap());
    let out = read(cfg, &["pull_request"], BTreeMap::new(), None).await;
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(out.rows("pull_request"), 10);
    assert_eq!(
        fx.standin.stats().kind("app_token"),
        1,
        "token cached across requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_run_without_changes_makes_only_conditional_requests() {
    let fx = fixture(StandinConfig {
        commits_per_repo: 25,
        ..small()
    })
    .await;
    let cfg = fx.config(json!({}));
    let first = read(cfg.clone(), ALL, BTreeMap::new(), None).await;
    fx.standin.reset_stats();
    let second = read(cfg, ALL, states(&first, ALL), None).await;
    let st = fx.standin.stats();
    assert_eq!(
        (st.total, st.not_modified),
        (5, 5),
        "repo list + pulls and commits per repo: {st:?}"
    );
    assert!(second.batches.is_empty());
    assert_eq!(states(&second, ALL), states(&first, ALL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_reserve_the_source_waits_for_the_reset() {
    let fx = fixture(StandinConfig {
        repos_per_org: 1,
        prs_per_repo: 450,
        ..small()
    })
    .await;
    // 4 requests a 2-second window; keep 2 in reserve: after 2 requests the source waits.
    fx.standin.set_faults(Faults {
        require_token: Some(TOKEN.into()),
        quota: Some(4),
        quota_window_secs: 2,
        ..Default::default()
    });
    let out = read(
        fx.config(json!({"rate_limit_reserve": 2, "max_concurrency": 1})),
        &["pull_request"],
        BTreeMap::new(),
        None,
    )
    .await;
    assert_eq!(out.rows("pull_request"), 450);
    let st = fx.standin.stats();
    assert_eq!(st.total, 1 + 5, "no request was refused: {st:?}");
    let waits = out.events.waits();
    assert!(
        !waits.is_empty() && waits[0].contains("(reserve 2)"),
        "{waits:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_alone_list_pulls_once_and_files_alone_list_commits_once() {
    let fx = fixture(small()).await;
    let s = &["pull_request_review", "commit_file"];
    let out = read(fx.config(json!({})), s, BTreeMap::new(), None).await;
    let exp = &fx.standin.expected().orgs[0];
    assert_eq!(out.rows("pull_request_review"), exp.reviews);
    assert_eq!(out.rows("commit_file"), exp.commit_files);
    assert_eq!(out.rows("pull_request") + out.rows("commit"), 0);
    let st = fx.standin.stats();
    assert_eq!(
        (
            st.kind("pulls"),
            st.kind("reviews"),
            st.kind("commits"),
            st.kind("commit")
        ),
        // Commits: 2 pages and the head request per repository.
        (6, 500, 6, 240)
    );
    let keys = out.strings("pull_request_review", "_ROW_KEY");
    let ids = out.ints("pull_request_review", "ID");
    let repos = out.strings("pull_request_review", "REPO_NAME");
    let want = format!(
        "{:x}",
        md5::compute(format!(
            "standin-org-0|{}|{}",
            repos[0].as_deref().unwrap(),
            ids[0].unwrap()
        ))
    );
    assert_eq!(keys[0].as_deref(), Some(want.as_str()));
    assert!(
        out.state("pull_request_review")["repos"]["standin-org-0/repo-0"]["cursor"].is_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_past_the_max_wait_fails_the_stream() {
    let fx = fixture(small()).await;
    fx.faults(Faults {
        secondary_next: 1,
        secondary_retry_after: Some(600),
        ..Default::default()
    });
    let out = read(
        fx.config(json!({"max_rate_limit_wait_seconds": 10})),
        &["pull_request"],
        BTreeMap::new(),
        None,
    )
    .await;
    let e = out.failed("pull_request");
    assert!(e.contains("Retry-After") && e.contains("600"), "{e}");
}

/// Without `Retry-After` the secondary-limit backoff doubles; once the next wait would
/// pass `max_rate_limit_wait_seconds` the stream fails instead of sleeping on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secondary_backoff_past_the_max_wait_fails_the_stream() {
    let fx = fixture(small()).await;
    fx.faults(Faults {
        secondary_next: 5,
        secondary_retry_after: None,
        ..Default::default()
    });
    let out = read(
        fx.config(json!({"secondary_limit_wait_seconds": 1, "max_rate_limit_wait_seconds": 1})),
        &["pull_request"],
        BTreeMap::new(),
        None,
    )
    .await;
    let e = out.failed("pull_request");
    assert!(
        e.contains("next backoff (2 s)") && e.contains("max_rate_limit_wait_seconds = 1"),
        "{e}"
    );
    assert_eq!(out.events.waits(), vec!["secondary rate limit".to_string()]);
    assert_eq!(fx.standin.stats().total, 2);
}

/// api.github.com gzips bodies for clients that ask (`Accept-Encoding: gzip`), ~10x fewer
/// bytes for pull request pages. The source must ask, and read the same rows either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_come_gzipped_and_read_the_same_as_plain_json() {
    let fx = fixture(small()).await;
    let zipped = read(
        fx.config(json!({})),
        &["pull_request"],
        BTreeMap::new(),
        None,
    )
    .await;
    let st = fx.standin.stats();
    let answered = st.total - st.not_modified;
    assert_eq!(st.gzipped, answered, "every 200 was sent gzipped: {st:?}");
    assert!(
        st.body_bytes * 4 < st.json_bytes,
        "{} bytes on the wire for {} of JSON",
        st.body_bytes,
        st.json_bytes
    );

    fx.standin.set_gzip_level(0);
    fx.standin.reset_stats();
    let plain = read(
        fx.config(json!({})),
        &["pull_request"],
        BTreeMap::new(),
        None,
    )
    .await;
    let st = fx.standin.stats();
    assert_eq!((st.gzipped, st.body_bytes), (0, st.json_bytes));
    assert_eq!(zipped.rows("pull_request"), 500);
    // Repositories are read concurrently: compare (ID, NUMBER) pairs in order.
    let pairs = |o: &Output| {
        let mut v: Vec<_> = o
            .ints("pull_request", "ID")
            .into_iter()
            .zip(o.ints("pull_request", "NUMBER"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(pairs(&zipped), pairs(&plain));
}
