//! `api: graphql` against the stand-in's `POST /graphql`, served from the same world as
//! its REST endpoints: the same rows as REST, incremental runs, and GraphQL's failure
//! shapes.

use crate::common;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, TimestampMicrosecondType};
use arrow::util::display::array_value_to_string;
use common::{run_source, Events};
use flowctl_core::{ReadOutcome, StreamResult, TaggedBatch};
use flowctl_github::GithubConfig;
use flowctl_github_standin::{Faults, GraphqlFaults, Standin, StandinConfig};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

const STREAMS: [&str; 2] = ["pull_request", "pull_request_review"];

fn config(s: &Standin, api: &str) -> GithubConfig {
    GithubConfig::from_value(json!({
        "orgs": s.org_names(),
        "base_url": s.base_url(),
        "api": api,
        "streams": STREAMS,
        "retry_backoff_ms": 1,
        "secondary_limit_wait_seconds": 0,
        "max_retries": 2,
    }))
    .unwrap()
}

struct Out {
    outcome: ReadOutcome,
    batches: Vec<TaggedBatch>,
    events: Arc<Events>,
}

impl Out {
    fn state(&self) -> BTreeMap<String, Value> {
        self.outcome
            .streams
            .iter()
            .map(|(k, r)| match r {
                StreamResult::Done { state } => (k.clone(), state.clone()),
                other => panic!("stream {k}: {other:?}"),
            })
            .collect()
    }

    /// Rows of a table by `_ROW_KEY`: column name → value as text ("" for null).
    fn table(&self, stream: &str) -> BTreeMap<String, BTreeMap<String, Option<String>>> {
        let mut out = BTreeMap::new();
        for b in self.batches.iter().filter(|b| b.stream == stream) {
            let schema = b.batch.schema();
            let keys = b.batch.column_by_name("_ROW_KEY").unwrap();
            for i in 0..b.batch.num_rows() {
                let mut row = BTreeMap::new();
                for (f, col) in schema.fields().iter().zip(b.batch.columns()) {
                    let v = (!col.is_null(i)).then(|| match col.data_type() {
                        DataType::Timestamp(..) => col
                            .as_primitive::<TimestampMicrosecondType>()
                            .value(i)
                            .to_string(),
                        _ => array_value_to_string(col, i).unwrap(),
                    });
                    row.insert(f.name().clone(), v);
                }
                let key = array_value_to_string(keys, i).unwrap();
                assert!(out.insert(key, row).is_none(), "{stream}: a row twice");
            }
        }
        out
    }

    fn rows(&self, stream: &str) -> usize {
        self.batches
            .iter()
            .filter(|b| b.stream == stream)
            .map(|b| b.batch.num_rows())
            .sum()
    }
}

async fn run(cfg: GithubConfig, state: BTreeMap<String, Value>) -> Out {
    let events = Arc::new(Events::default());
    let (res, batches) = run_source(cfg, &STREAMS, state, None, events.clone()).await;
    Out {
        outcome: res.unwrap(),
        batches,
        events,
    }
}

const ONLY_GRAPHQL: [&str; 5] = [
    "ADDITIONS",
    "DELETIONS",
    "CHANGED_FILES",
    "COMMITS",
    "MERGED_BY_LOGIN",
];
/// Differ by design: `_RAW` holds each API's own object, `_INGESTED_AT` is the run's.
const PER_RUN: [&str; 2] = ["_RAW", "_INGESTED_AT"];

/// Syncs a world both ways and compares PULL_REQUEST and PULL_REQUEST_REVIEW column by
/// column.
async fn same_rows(cfg: StandinConfig) {
    let s = Standin::start(cfg).await.unwrap();
    let rest = run(config(&s, "rest"), BTreeMap::new()).await;
    s.reset_stats();
    let gql = run(config(&s, "graphql"), BTreeMap::new()).await;
    let expected = s.expected();
    let n_prs = expected.total_prs();
    assert_eq!(rest.rows("pull_request"), n_prs);
    assert_eq!(gql.rows("pull_request"), n_prs);
    assert_eq!(
        gql.rows("pull_request_review"),
        n_prs * cfg.reviews_per_pr,
        "every review, also past the first 100 of a PR"
    );
    let (r, g) = (rest.table("pull_request"), gql.table("pull_request"));
    assert_eq!(r.keys().collect::<Vec<_>>(), g.keys().collect::<Vec<_>>());
    let mut closed_unmerged = 0;
    for (key, rr) in &r {
        let gr = &g[key];
        assert_eq!(rr.keys().collect::<Vec<_>>(), gr.keys().collect::<Vec<_>>());
        let merged = rr["MERGED_AT"].is_some();
        let open = rr["STATE"].as_deref() == Some("open");
        for (col, rv) in rr {
            let gv = &gr[col];
            if PER_RUN.contains(&col.as_str()) {
                continue;
            }
            if ONLY_GRAPHQL.contains(&col.as_str()) {
                assert_eq!(rv, &None, "{col} is NULL over REST");
                continue;
            }
            if col == "MERGE_COMMIT_SHA" && !open && !merged {
                // GraphQL has no test-merge commit of a closed, unmerged PR.
                assert!(rv.is_some() && gv.is_none(), "{key}: {rv:?} {gv:?}");
                closed_unmerged += 1;
                continue;
            }
            assert_eq!(rv, gv, "PULL_REQUEST {key} column {col}");
        }
        let id: u64 = gr["ID"].as_deref().unwrap().parse().unwrap();
        let x = s.pr_extras(id, merged).unwrap();
        let int = |c: &str| gr[c].as_deref().map(|v| v.parse::<i64>().unwrap());
        assert_eq!(int("ADDITIONS"), Some(x.additions), "{key}");
        assert_eq!(int("DELETIONS"), Some(x.deletions), "{key}");
        assert_eq!(int("CHANGED_FILES"), Some(x.changed_files), "{key}");
        assert_eq!(int("COMMITS"), Some(x.commits), "{key}");
        assert_eq!(gr["MERGED_BY_LOGIN"], x.merged_by, "{key}");
        assert_eq!(x.merged_by.is_some(), merged);
        let raw: Value = serde_json::from_str(gr["_RAW"].as_deref().unwrap()).unwrap();
        assert!(raw.get("fullDatabaseId").is_some() && raw.get("reviews").is_none());
    }
    assert!(closed_unmerged > 0, "the world has closed, unmerged PRs");
    let (r, g) = (
        rest.table("pull_request_review"),
        gql.table("pull_request_review"),
    );
    assert_eq!(r.len(), g.len());
    let mut ghosts = 0;
    for (key, rr) in &r {
        let gr = g.get(key).unwrap_or_else(|| panic!("review {key} missing"));
        for (col, rv) in rr {
            if !PER_RUN.contains(&col.as_str()) {
                assert_eq!(rv, &gr[col], "PULL_REQUEST_REVIEW {key} column {col}");
            }
        }
        ghosts += usize::from(gr["USER_LOGIN"].is_none());
    }
    assert!(
        ghosts > 0,
        "deleted authors (author: null) come out as NULL"
    );
    // One conditional REST probe per repository, no reviews requests, and points within
    // the published rule: every query one point, for up to 49 PRs (48 when several
    // repositories share it, at least 16 each for three).
    let st = s.stats();
    assert_eq!(st.kind("reviews"), 0);
    assert_eq!(
        st.gzipped, st.by_status[&200],
        "answers come gzipped, REST's and GraphQL's"
    );
    assert_eq!(st.kind("pulls"), expected.total_repos() as u64);
    let extra_review_pages = (n_prs * (cfg.reviews_per_pr.saturating_sub(1) / 100)) as u64;
    let points = s.graphql_points() - extra_review_pages;
    assert_eq!(s.graphql_points(), st.kind("graphql"), "one point a query");
    let repos = expected.total_repos() as u64;
    let prs = cfg.prs_per_repo as u64;
    assert!(
        points >= (n_prs as u64).div_ceil(49) && points <= repos * prs.div_ceil(48 / repos),
        "{points} points for {n_prs} PRs"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn graphql_gives_the_same_rows_as_rest() {
    same_rows(StandinConfig {
        repos_per_org: 3,
        prs_per_repo: 120,
        reviews_per_pr: 3,
        ..Default::default()
    })
    .await;
}

#[tokio::test]
async fn reviews_past_the_first_hundred_are_paged() {
    same_rows(StandinConfig {
        repos_per_org: 1,
        prs_per_repo: 4,
        reviews_per_pr: 230,
        ..Default::default()
    })
    .await;
}

#[tokio::test]
async fn unchanged_costs_nothing_and_changes_cost_a_probe_and_shared_points() {
    let s = Standin::start(StandinConfig {
        repos_per_org: 3,
        prs_per_repo: 120,
        ..Default::default()
    })
    .await
    .unwrap();
    let cfg = config(&s, "graphql");
    let first = run(cfg.clone(), BTreeMap::new()).await;
    s.reset_stats();
    let p0 = s.graphql_points();
    let again = run(cfg.clone(), first.state()).await;
    assert_eq!(again.rows("pull_request"), 0);
    // The repository list and every probe answer 304.
    let st = s.stats();
    assert_eq!((st.counted(), st.kind("repos")), (0, 1));
    assert_eq!((st.kind("pulls"), st.not_modified), (3, 4));
    assert_eq!(s.graphql_points(), p0, "no query at all");
    let touched = s.touch_pull_requests(5);
    s.reset_stats();
    let inc = run(cfg.clone(), again.state()).await;
    assert_eq!(inc.rows("pull_request"), touched.len());
    assert_eq!(inc.rows("pull_request_review"), touched.len() * 2);
    let st = s.stats();
    assert_eq!(
        st.counted() - st.kind("graphql"),
        3,
        "REST: one probe per changed repository (the repository list answers 304)"
    );
    // The three changed repositories' pages share queries: one when their probes end
    // together, never more than a query each.
    let points = s.graphql_points() - p0;
    assert_eq!(points, st.kind("graphql"), "one point a query");
    assert!((1..=3).contains(&points), "{points} points");
    let mut got: Vec<String> = inc
        .table("pull_request")
        .values()
        .map(|r| r["ID"].clone().unwrap())
        .collect();
    let mut want: Vec<String> = touched.iter().map(|t| t.2.to_string()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    s.shutdown().await;
}

#[tokio::test]
async fn partial_data_keeps_the_good_nodes_names_the_skipped_and_reads_them_again() {
    let s = Standin::start(StandinConfig {
        repos_per_org: 1,
        prs_per_repo: 30,
        ..Default::default()
    })
    .await
    .unwrap();
    s.set_graphql_faults(GraphqlFaults {
        partial_next: 1,
        ..Default::default()
    });
    let cfg = config(&s, "graphql");
    let out = run(cfg.clone(), BTreeMap::new()).await;
    assert_eq!(out.rows("pull_request"), 29, "every PR but the null one");
    let w = out.events.warnings();
    assert!(
        w.iter()
            .any(|m| m.contains("repository.pullRequests.nodes.1")
                && m.contains("Something went wrong while loading this pull request")),
        "{w:?}"
    );
    // The cursor did not move: the next run reads the window again, skipped PR included.
    let st = out.state();
    assert!(st["pull_request"]["repos"]["standin-org-0/repo-0"]["cursor"].is_null());
    let again = run(cfg, st).await;
    assert_eq!(again.rows("pull_request"), 30);
    assert!(again.events.warnings().is_empty());
    s.shutdown().await;
}

#[tokio::test]
async fn repositories_read_together_share_queries_and_their_errors_stay_apart() {
    // 150 ms a request, as GitHub's answers take: the probes end together.
    let s = Standin::start(StandinConfig {
        repos_per_org: 3,
        prs_per_repo: 30,
        latency_ms: 150,
        ..Default::default()
    })
    .await
    .unwrap();
    s.set_graphql_faults(GraphqlFaults {
        partial_next: 1,
        ..Default::default()
    });
    let cfg = config(&s, "graphql");
    let out = run(cfg.clone(), BTreeMap::new()).await;
    let expected = s.expected();
    let (repos, prs) = (expected.total_repos(), expected.total_prs());
    assert!(repos >= 3, "{repos} repositories read");
    // At 48 PRs a shared point (16 a repository of three) a read of 30 PRs takes 2
    // rounds; a query per repository page would take one per repository.
    let points = s.graphql_points();
    assert!(
        (points as usize) < repos,
        "{points} points for {repos} repositories of 30 PRs"
    );
    // The null node is one repository's (its alias' error); the others are whole.
    assert_eq!(out.rows("pull_request"), prs - 1);
    let w = out.events.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("repository.pullRequests.nodes.1"), "{w:?}");
    let st = out.state();
    let repos_state = st["pull_request"]["repos"].as_object().unwrap();
    let moved = repos_state
        .values()
        .filter(|c| !c["cursor"].is_null())
        .count();
    assert_eq!(
        (repos_state.len(), moved),
        (repos, repos - 1),
        "only the repository with the skipped node reads again"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn rate_limited_and_secondary_limits_are_waited_out() {
    let s = Standin::start(StandinConfig {
        repos_per_org: 1,
        prs_per_repo: 10,
        ..Default::default()
    })
    .await
    .unwrap();
    s.set_graphql_faults(GraphqlFaults {
        rate_limited_next: 1,
        rate_limited_reset_secs: 0,
        ..Default::default()
    });
    let out = run(config(&s, "graphql"), BTreeMap::new()).await;
    assert_eq!(out.rows("pull_request"), 10);
    let waits = out.events.waits();
    assert!(
        waits.iter().any(|w| w.contains("RATE_LIMITED")),
        "{waits:?}"
    );

    // A secondary limit with Retry-After (on the first request of the run).
    let cfg = config(&s, "graphql");
    s.set_faults(Faults {
        secondary_next: 1,
        secondary_retry_after: Some(0),
        ..Default::default()
    });
    let out = run(cfg, BTreeMap::new()).await;
    assert_eq!(out.rows("pull_request"), 10);
    let waits = out.events.waits();
    assert!(
        waits.iter().any(|w| w.contains("Retry-After 0 s")),
        "{waits:?}"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn heavy_queries_are_retried_with_a_smaller_page() {
    let s = Standin::start(StandinConfig {
        repos_per_org: 1,
        prs_per_repo: 60,
        ..Default::default()
    })
    .await
    .unwrap();
    s.set_graphql_faults(GraphqlFaults {
        heavy_over: Some(20),
        no_data_next: 1,
        ..Default::default()
    });
    let out = run(config(&s, "graphql"), BTreeMap::new()).await;
    assert_eq!(out.rows("pull_request"), 60);
    assert_eq!(out.rows("pull_request_review"), 120);
    let w = out.events.warnings();
    assert!(
        w.iter()
            .any(|m| m.contains("a page of 49 pull requests failed")
                && m.contains("retrying with 24")),
        "{w:?}"
    );
    assert!(w.iter().any(|m| m.contains("retrying with 12")), "{w:?}");
    s.shutdown().await;
}

#[tokio::test]
async fn a_repository_graphql_cannot_resolve_is_skipped_like_a_rest_404() {
    let s = Standin::start(StandinConfig {
        repos_per_org: 2,
        prs_per_repo: 5,
        ..Default::default()
    })
    .await
    .unwrap();
    s.set_faults(Faults {
        missing_repo: Some("repo-1".into()),
        ..Default::default()
    });
    let out = run(config(&s, "graphql"), BTreeMap::new()).await;
    assert_eq!(out.rows("pull_request"), 5);
    assert!(out.events.warnings().iter().any(|w| w.contains("repo-1")));
    s.shutdown().await;
}

#[tokio::test]
async fn auto_reads_graphql_with_a_token_and_rest_without() {
    let s = Standin::start(StandinConfig {
        repos_per_org: 1,
        prs_per_repo: 5,
        ..Default::default()
    })
    .await
    .unwrap();
    // A token from a file: the tests share one process, so no environment variable is set.
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "ghp_auto_test_not_secret").unwrap();
    for (token, graphql) in [(true, true), (false, false)] {
        let mut v = json!({ "orgs": s.org_names(), "base_url": s.base_url(), "streams": STREAMS });
        if token {
            v["token"] = json!({ "file": token_file });
        }
        let cfg = GithubConfig::from_value(v).unwrap();
        s.reset_stats();
        let out = run(cfg, BTreeMap::new()).await;
        assert_eq!(out.rows("pull_request"), 5);
        let st = s.stats();
        assert_eq!(st.kind("graphql") > 0, graphql, "token {token}: {st:?}");
        assert_eq!(st.kind("reviews") > 0, !graphql, "token {token}: {st:?}");
    }
    s.shutdown().await;
}
