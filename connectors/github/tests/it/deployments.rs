//! The `deployment` stream against the GitHub stand-in server (real HTTP on 127.0.0.1;
//! the stand-in is the only fake, because there is no GitHub here).

use crate::common;

use arrow::array::AsArray;
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use common::run_source;
use flowctl_core::meta::row_key;
use flowctl_core::{ReadOutcome, StreamResult, TaggedBatch};
use flowctl_github::streams::deployments::latest_status;
use flowctl_github::{GithubConfig, StreamKind};
use flowctl_github_standin::{Faults, Standin, StandinConfig};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const ORG: &str = "standin-org-0";

fn world() -> StandinConfig {
    StandinConfig {
        orgs: 1,
        repos_per_org: 2,
        prs_per_repo: 3,
        reviews_per_pr: 1,
        commits_per_repo: 5,
        files_per_commit: 1,
        latency_ms: 0,
        seed: 11,
    }
}

fn config(s: &Standin, extra: Value) -> GithubConfig {
    let mut v = json!({
        "orgs": s.org_names(),
        "base_url": s.base_url(),
        "streams": ["deployment"],
        "retry_backoff_ms": 1,
        "secondary_limit_wait_seconds": 0,
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    GithubConfig::from_value(v).unwrap()
}

/// (repo, status state, status created µs, environment URL)
type Row = (String, Option<String>, Option<i64>, Option<String>);

struct Output {
    outcome: ReadOutcome,
    batches: Vec<TaggedBatch>,
}

impl Output {
    fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.batch.num_rows()).sum()
    }
    fn state(&self) -> BTreeMap<String, Value> {
        match self.outcome.streams.get("deployment") {
            Some(StreamResult::Done { state }) => {
                BTreeMap::from([("deployment".into(), state.clone())])
            }
            other => panic!("deployment: {other:?}"),
        }
    }
    fn strings(&self, col: &str) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for b in &self.batches {
            let a = b.batch.column_by_name(col).unwrap().as_string::<i32>();
            out.extend(a.iter().map(|v| v.map(String::from)));
        }
        out
    }
    fn ints(&self, col: &str) -> Vec<Option<i64>> {
        let mut out = Vec::new();
        for b in &self.batches {
            let a = b.batch.column_by_name(col).unwrap();
            out.extend(a.as_primitive::<Int64Type>().iter());
        }
        out
    }
    fn times(&self, col: &str) -> Vec<Option<i64>> {
        let mut out = Vec::new();
        for b in &self.batches {
            let a = b.batch.column_by_name(col).unwrap();
            out.extend(a.as_primitive::<TimestampMicrosecondType>().iter());
        }
        out
    }
    /// One row per id: (repo, state, status created µs, env url).
    fn by_id(&self) -> BTreeMap<i64, Row> {
        let (ids, repos, st, sc, url) = (
            self.ints("ID"),
            self.strings("REPO_NAME"),
            self.strings("STATUS_STATE"),
            self.times("STATUS_CREATED_AT"),
            self.strings("STATUS_ENVIRONMENT_URL"),
        );
        (0..ids.len())
            .map(|i| {
                let r = repos[i].clone().unwrap();
                (ids[i].unwrap(), (r, st[i].clone(), sc[i], url[i].clone()))
            })
            .collect()
    }
}

async fn read(cfg: GithubConfig, streams: &[&str], state: BTreeMap<String, Value>) -> Output {
    let progress = std::sync::Arc::new(flowctl_core::progress::NoProgress);
    let (result, batches) = run_source(cfg, streams, state, None, progress).await;
    Output {
        outcome: result.unwrap(),
        batches,
    }
}

#[test]
fn deployment_is_opt_in_and_has_the_documented_columns() {
    let c = GithubConfig::from_value(json!({"orgs": ["a"]})).unwrap();
    assert!(!c.streams.contains(&StreamKind::Deployment));
    let c = GithubConfig::from_value(json!({"orgs": ["a"], "streams": ["deployment"]})).unwrap();
    assert_eq!(c.streams, vec![StreamKind::Deployment]);
    assert_eq!(c.deployment_status_window_days, 7);
    let info = flowctl_github::schema::stream_info(StreamKind::Deployment, true);
    assert_eq!(info.table, "DEPLOYMENT");
    let names: Vec<&str> = info
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(
        names,
        [
            "ID",
            "ORG",
            "REPO_NAME",
            "SHA",
            "REF",
            "TASK",
            "ENVIRONMENT",
            "DESCRIPTION",
            "CREATOR_LOGIN",
            "CREATED_AT",
            "UPDATED_AT",
            "STATUS_STATE",
            "STATUS_CREATED_AT",
            "STATUS_ENVIRONMENT_URL",
            "_ROW_KEY",
            "_INGESTED_AT",
            "_SOURCE_ORG",
            "_BATCH_ID",
            "_RAW"
        ]
    );
    for n in names {
        assert!(info.column_docs.contains_key(n), "{n} undocumented");
    }
}

#[test]
fn latest_status_is_the_newest_by_time_not_by_position() {
    let body = br#"[
        {"id": 1, "state": "queued", "created_at": "2026-01-01T00:00:10Z", "environment_url": ""},
        {"id": 3, "state": "success", "created_at": "2026-01-01T00:05:00Z", "environment_url": "https://x"},
        {"id": 2, "state": "in_progress", "created_at": "2026-01-01T00:00:20Z"}
    ]"#;
    let s = latest_status(body).unwrap().unwrap();
    assert_eq!(s.state, "success");
    assert_eq!(s.environment_url.as_deref(), Some("https://x"));
    assert_eq!(s.created, Some(1_767_225_900_000_000));
    let q = latest_status(br#"[{"id": 1, "state": "queued", "environment_url": ""}]"#).unwrap();
    assert_eq!(q.unwrap().environment_url, None, "empty URL becomes null");
    assert_eq!(latest_status(b"[]").unwrap(), None);
    assert!(latest_status(br#"[{"id": 1, "state": "x", "created_at": "nope"}]"#).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_carry_keys_latest_status_and_exact_requests() {
    let s = Standin::start(world()).await.unwrap();
    let out = read(config(&s, json!({})), &["deployment"], BTreeMap::new()).await;
    assert_eq!(out.rows(), 12, "6 deployments in each of 2 repos");
    let got = out.by_id();
    for repo in ["repo-0", "repo-1"] {
        for d in s.deployments(ORG, repo) {
            let (r, state, created, url) = &got[&(d.id as i64)];
            assert_eq!(r, repo);
            let last = d.statuses.last();
            assert_eq!(state.as_deref(), last.map(|x| x.state.as_str()), "{}", d.id);
            assert_eq!(*created, last.map(|x| x.created * 1_000_000));
            assert_eq!(url.is_some(), state.as_deref() == Some("success"));
        }
    }
    let states: Vec<Option<String>> = got.values().map(|v| v.1.clone()).collect();
    for want in ["success", "failure", "error"] {
        assert!(states.contains(&Some(want.into())), "{want} in {states:?}");
    }
    assert!(states.contains(&None), "a deployment without status");
    let envs = out.strings("ENVIRONMENT");
    assert!(envs.contains(&Some("staging".into())) && envs.contains(&Some("production".into())));
    let (ids, repos, keys) = (
        out.ints("ID"),
        out.strings("REPO_NAME"),
        out.strings("_ROW_KEY"),
    );
    for i in 0..ids.len() {
        let id = ids[i].unwrap().to_string();
        let want = row_key(&[ORG, repos[i].as_deref().unwrap(), &id]);
        assert_eq!(keys[i].as_deref(), Some(want.as_str()));
    }
    let shas = out.strings("SHA");
    assert!(shas
        .iter()
        .all(|s| s.as_ref().is_some_and(|s| s.len() == 40)));
    assert!(out
        .strings("_RAW")
        .iter()
        .all(|r| r.as_ref().is_some_and(|r| r.contains("statuses_url"))));
    let st = s.stats();
    assert_eq!(st.kind("repos"), 1);
    assert_eq!(st.kind("deployments"), 2);
    assert_eq!(st.kind("deployment_statuses"), 12);
    assert_eq!(st.total, 15);
    assert!(out
        .batches
        .iter()
        .all(|b| b.stream == "deployment" && b.partition == ORG));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_streams_make_no_deployment_requests() {
    let s = Standin::start(world()).await.unwrap();
    let mut cfg = config(&s, json!({}));
    cfg.streams = GithubConfig::from_value(json!({"orgs": ["a"]}))
        .unwrap()
        .streams;
    let names: Vec<&str> = cfg.streams.iter().map(|k| k.name()).collect();
    let out = read(cfg.clone(), &names, BTreeMap::new()).await;
    assert!(out.batches.iter().all(|b| b.stream != "deployment"));
    assert_eq!(s.stats().kind("deployments"), 0);
    assert_eq!(s.stats().kind("deployment_statuses"), 0);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_pages_follow_link_next() {
    let s = Standin::start(StandinConfig {
        repos_per_org: 1,
        ..world()
    })
    .await
    .unwrap();
    s.set_deployments_per_repo(130);
    let out = read(
        config(&s, json!({"batch_rows": 50})),
        &["deployment"],
        BTreeMap::new(),
    )
    .await;
    assert_eq!(out.rows(), 130);
    let ids: std::collections::BTreeSet<_> = out.ints("ID").into_iter().collect();
    assert_eq!(ids.len(), 130, "no duplicates across pages");
    assert!(out.batches.iter().all(|b| b.batch.num_rows() <= 50));
    let st = s.stats();
    assert_eq!(st.kind("deployments"), 2, "2 pages of 100");
    assert_eq!(st.kind("deployment_statuses"), 130);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_second_run_is_a_304_per_repo() {
    let s = Standin::start(world()).await.unwrap();
    let first = read(config(&s, json!({})), &["deployment"], BTreeMap::new()).await;
    let state = first.state();
    let cursor = &state["deployment"]["repos"]["standin-org-0/repo-0"];
    assert!(
        cursor["etag"].is_string() && cursor["cursor"].is_string(),
        "{cursor}"
    );
    s.reset_stats();
    let second = read(config(&s, json!({})), &["deployment"], state.clone()).await;
    assert_eq!(second.rows(), 0);
    let st = s.stats();
    assert_eq!(st.kind("deployments"), 2);
    // Both repositories and the repository list.
    assert_eq!(st.not_modified, 3);
    assert_eq!(st.kind("deployment_statuses"), 0);
    assert_eq!(second.state(), state, "a 304 keeps the state");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_deployment_and_later_status_change_are_picked_up() {
    let s = Standin::start(world()).await.unwrap();
    let r1 = read(config(&s, json!({})), &["deployment"], BTreeMap::new()).await;
    let id = s.add_deployment(ORG, "repo-0", "production").unwrap();
    s.reset_stats();
    let r2 = read(config(&s, json!({})), &["deployment"], r1.state()).await;
    assert_eq!(
        r2.ints("ID"),
        vec![Some(id as i64)],
        "only the new deployment"
    );
    assert_eq!(r2.strings("STATUS_STATE"), vec![Some("queued".into())]);
    let st = s.stats();
    assert_eq!(
        (st.kind("deployments"), st.not_modified),
        (2, 2),
        "the repository list and repo-1 answer 304"
    );
    assert_eq!(st.kind("deployment_statuses"), 1);

    // The list does not change when a status is added; the window re-reads it anyway.
    assert!(s.add_deployment_status(ORG, "repo-0", id, "success"));
    s.reset_stats();
    let r3 = read(config(&s, json!({})), &["deployment"], r2.state()).await;
    assert_eq!(r3.ints("ID"), vec![Some(id as i64)]);
    assert_eq!(r3.strings("STATUS_STATE"), vec![Some("success".into())]);
    let success_at = s
        .deployments(ORG, "repo-0")
        .last()
        .unwrap()
        .statuses
        .last()
        .unwrap()
        .created;
    assert_eq!(
        r3.times("STATUS_CREATED_AT"),
        vec![Some(success_at * 1_000_000)]
    );
    let st = s.stats();
    // repo-1 and the repository list answer 304.
    assert_eq!((st.kind("deployments"), st.not_modified), (2, 2));
    assert_eq!(st.kind("deployment_statuses"), 1);

    // With no window, a known deployment is never re-read: the change is missed (the
    // trade-off the window exists for).
    assert!(s.add_deployment_status(ORG, "repo-0", id, "inactive"));
    s.reset_stats();
    let cfg0 = config(&s, json!({"deployment_status_window_days": 0}));
    let r4 = read(cfg0, &["deployment"], r3.state()).await;
    assert_eq!(r4.rows(), 0);
    assert_eq!(s.stats().kind("deployment_statuses"), 0);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_statuses_fail_only_the_deployment_stream_and_keep_its_state() {
    let s = Standin::start(world()).await.unwrap();
    s.set_faults(Faults {
        fail_5xx_kind: Some("deployment_statuses".into()),
        ..Default::default()
    });
    let cfg = config(&s, json!({"max_retries": 0}));
    let out = read(cfg, &["deployment", "repository"], BTreeMap::new()).await;
    match &out.outcome.streams["deployment"] {
        StreamResult::Failed { error } => assert!(error.contains("statuses"), "{error}"),
        other => panic!("deployment should fail: {other:?}"),
    }
    assert!(matches!(
        out.outcome.streams["repository"],
        StreamResult::Done { .. }
    ));
    assert_eq!(
        out.batches
            .iter()
            .filter(|b| b.stream == "deployment")
            .count(),
        0
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repo_without_deployments_is_asked_conditionally_and_answers_304() {
    let s = Standin::start(world()).await.unwrap();
    s.set_deployments_per_repo(0);
    let first = read(config(&s, json!({})), &["deployment"], BTreeMap::new()).await;
    assert_eq!(first.rows(), 0);
    let state = first.state();
    let cursor = &state["deployment"]["repos"]["standin-org-0/repo-0"];
    assert!(
        cursor["etag"].is_string() && cursor.get("cursor").is_none(),
        "{cursor}"
    );
    s.reset_stats();
    let second = read(config(&s, json!({})), &["deployment"], state.clone()).await;
    assert_eq!(second.rows(), 0);
    let st = s.stats();
    assert_eq!(
        (st.kind("deployments"), st.not_modified),
        (2, 3),
        "the repository list and both repos answer 304: no quota used"
    );
    assert_eq!(second.state(), state);
    // A first deployment shows up at once: the list changed, so it is not a 304.
    s.add_deployment(ORG, "repo-0", "production").unwrap();
    s.reset_stats();
    let third = read(config(&s, json!({})), &["deployment"], state).await;
    assert_eq!(third.rows(), 1);
    // The repository list and repo-1.
    assert_eq!(s.stats().not_modified, 2);
    s.shutdown().await;
}
