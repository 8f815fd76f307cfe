//! Shapes every real org has, against the GitHub stand-in: a branch merged with old
//! commit dates, a repository archived after it was loaded, a user account in `orgs:`.

use crate::common;

use arrow::array::AsArray;
use common::{run_source, Events};
use flowctl_core::{ReadOutcome, StreamResult, TaggedBatch};
use flowctl_github::GithubConfig;
use flowctl_github_standin::{Standin, StandinConfig};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

struct Output {
    result: flowctl_core::Result<ReadOutcome>,
    batches: Vec<TaggedBatch>,
    events: Arc<Events>,
}

impl Output {
    fn state(&self, stream: &str) -> Value {
        match self.result.as_ref().unwrap().streams.get(stream) {
            Some(StreamResult::Done { state }) => state.clone(),
            other => panic!("stream {stream}: {other:?}"),
        }
    }
    fn states(&self, streams: &[&str]) -> BTreeMap<String, Value> {
        streams
            .iter()
            .map(|s| (s.to_string(), self.state(s)))
            .collect()
    }
    fn strings(&self, stream: &str, col: &str) -> Vec<String> {
        let mut out = Vec::new();
        for b in self.batches.iter().filter(|b| b.stream == stream) {
            let a = b.batch.column_by_name(col).unwrap().as_string::<i32>();
            out.extend(a.iter().map(|v| v.unwrap_or("").to_string()));
        }
        out
    }
    fn bools(&self, stream: &str, col: &str) -> Vec<Option<bool>> {
        let mut out = Vec::new();
        for b in self.batches.iter().filter(|b| b.stream == stream) {
            let a = b.batch.column_by_name(col).unwrap().as_boolean();
            out.extend(a.iter());
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

fn config(gh: &Standin, orgs: &[String], extra: Value) -> GithubConfig {
    let mut v = json!({
        "orgs": orgs,
        "base_url": gh.base_url(),
        "retry_backoff_ms": 1,
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    GithubConfig::from_value(v).unwrap()
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

fn world() -> StandinConfig {
    StandinConfig {
        orgs: 1,
        repos_per_org: 2,
        prs_per_repo: 3,
        reviews_per_pr: 0,
        commits_per_repo: 150,
        files_per_commit: 2,
        latency_ms: 0,
        seed: 5,
    }
}

const COMMITS: &[&str] = &["commit", "commit_file"];

type CommitKey = (String, String);
type FileKey = (String, String, String);

/// (repo, sha) of every COMMIT row, and (repo, sha, filename) of every COMMIT_FILE row.
fn commit_keys(out: &Output) -> (Vec<CommitKey>, Vec<FileKey>) {
    let c = out
        .strings("commit", "REPO_NAME")
        .into_iter()
        .zip(out.strings("commit", "SHA"))
        .collect();
    let f = out
        .strings("commit_file", "REPO_NAME")
        .into_iter()
        .zip(out.strings("commit_file", "COMMIT_SHA"))
        .zip(out.strings("commit_file", "FILENAME"))
        .map(|((r, s), n)| (r, s, n))
        .collect();
    (c, f)
}

fn assert_unique<T: Ord + Clone + std::fmt::Debug>(all: &[T]) -> BTreeSet<T> {
    let set: BTreeSet<T> = all.iter().cloned().collect();
    assert_eq!(set.len(), all.len(), "duplicates among {} rows", all.len());
    set
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_merged_with_old_dates_lands_once_with_its_files_and_a_rerun_adds_nothing() {
    let gh = Standin::start(world()).await.unwrap();
    let org = gh.org_names()[0].clone();
    let cfg = || config(&gh, &gh.org_names(), json!({}));

    // Run 1: the whole history; each repository's head is recorded.
    let r1 = read(cfg(), COMMITS, BTreeMap::new()).await;
    let (c1, f1) = commit_keys(&r1);
    assert_eq!(c1.len(), 2 * 150);
    assert_eq!(f1.len(), 2 * 150 * 2);
    let heads = &r1.state("commit")["heads"];
    assert_eq!(heads, &r1.state("commit_file")["heads"]);
    assert_eq!(
        heads[format!("{org}/repo-0")]["sha"],
        gh.branch_commits(&org, "repo-0")
            .into_iter()
            .find(|s| s.ends_with("00000000"))
            .unwrap()
            .as_str()
    );

    // Run 2, nothing changed: the repository list and one conditional head request per
    // repository, all answered 304.
    gh.reset_stats();
    let r2 = read(cfg(), COMMITS, r1.states(COMMITS)).await;
    let st = gh.stats();
    assert_eq!((r2.rows("commit"), r2.rows("commit_file")), (0, 0));
    assert_eq!(
        (st.kind("commits"), st.not_modified, st.total),
        (2, 3, 3),
        "{st:?}"
    );

    // Upstream: repo-0 merges a branch of 120 commits dated 30 days before everything
    // loaded (older than the cursor, and more than a compare page); repo-1 gets one
    // ordinary new commit.
    let merged = gh
        .merge_branch_with_old_dates(&org, "repo-0", 120, 30)
        .unwrap();
    let pushed = gh.push_commits(&org, "repo-1", 1).unwrap();
    // The list by date has them deep down, past the cursor where a read by date stops.
    gh.reset_stats();
    let r3 = read(cfg(), COMMITS, r2.states(COMMITS)).await;
    let (c3, f3) = commit_keys(&r3);
    let got: BTreeSet<String> = assert_unique(&c3).into_iter().map(|(_, s)| s).collect();
    let want: BTreeSet<String> = merged.iter().chain(&pushed).cloned().collect();
    assert_eq!(
        got, want,
        "exactly the new commits, old-dated ones included"
    );
    assert_unique(&f3);
    assert_eq!(f3.len(), want.len() * 2, "each new commit's files");
    assert!(f3.iter().all(|(_, s, _)| want.contains(s)));
    // Per repo: a head request, compare pages (120 + merge = 121 commits: 2 pages for
    // repo-0, 1 for repo-1) and one request per new commit's files.
    let st = gh.stats();
    assert_eq!(
        (st.kind("commits"), st.kind("compare"), st.kind("commit")),
        (2, 3, 122),
        "{st:?}"
    );

    // Everything loaded so far is exactly the branch, each commit once.
    let mut all_c = c1.clone();
    all_c.extend(c3.clone());
    let loaded = assert_unique(&all_c);
    for repo in ["repo-0", "repo-1"] {
        let branch: BTreeSet<(String, String)> = gh
            .branch_commits(&org, repo)
            .into_iter()
            .map(|s| (repo.to_string(), s))
            .collect();
        let mine: BTreeSet<(String, String)> =
            loaded.iter().filter(|(r, _)| r == repo).cloned().collect();
        assert_eq!(mine, branch, "{repo}");
    }
    let mut all_f = f1.clone();
    all_f.extend(f3.clone());
    assert_unique(&all_f);

    // Run 4: rerun without changes adds nothing and costs nothing.
    gh.reset_stats();
    let r4 = read(cfg(), COMMITS, r3.states(COMMITS)).await;
    let st = gh.stats();
    assert_eq!((r4.rows("commit"), r4.rows("commit_file")), (0, 0));
    assert_eq!(
        (st.kind("commits"), st.not_modified, st.total),
        (2, 3, 3),
        "{st:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_force_push_that_drops_the_saved_head_falls_back_to_reading_by_date() {
    let gh = Standin::start(world()).await.unwrap();
    let org = gh.org_names()[0].clone();
    let cfg = || config(&gh, &gh.org_names(), json!({}));
    let r1 = read(cfg(), &["commit"], BTreeMap::new()).await;
    assert_eq!(r1.rows("commit"), 300);
    let head = gh.force_push(&org, "repo-0").unwrap();
    let r2 = read(cfg(), &["commit"], r1.states(&["commit"])).await;
    assert_eq!(r2.strings("commit", "SHA"), vec![head.clone()]);
    let w = r2.events.warnings();
    assert!(
        w.len() == 1 && w[0].contains("repo-0") && w[0].contains("is gone"),
        "{w:?}"
    );
    assert_eq!(
        r2.state("commit")["heads"][format!("{org}/repo-0")]["sha"],
        head.as_str()
    );
    // And from the new head on, compare again.
    let more = gh.push_commits(&org, "repo-0", 2).unwrap();
    let r3 = read(cfg(), &["commit"], r2.states(&["commit"])).await;
    assert_eq!(
        r3.strings("commit", "SHA")
            .into_iter()
            .collect::<BTreeSet<_>>(),
        more.into_iter().collect()
    );
    assert!(r3.events.warnings().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_without_heads_still_loads_and_records_the_head_without_reading_again() {
    let gh = Standin::start(world()).await.unwrap();
    let org = gh.org_names()[0].clone();
    let cfg = || config(&gh, &gh.org_names(), json!({}));
    let r1 = read(cfg(), COMMITS, BTreeMap::new()).await;
    // State as an earlier version saved it: no `heads`.
    let mut old = r1.states(COMMITS);
    for v in old.values_mut() {
        v.as_object_mut().unwrap().remove("heads");
    }
    gh.reset_stats();
    let r2 = read(cfg(), COMMITS, old).await;
    let st = gh.stats();
    assert_eq!((r2.rows("commit"), r2.rows("commit_file")), (0, 0));
    // The list by date as before, then one head request per repository records the head.
    assert_eq!(st.kind("commits"), 4, "{st:?}");
    assert!(r2.state("commit")["heads"][format!("{org}/repo-1")]["sha"].is_string());
    let merged = gh
        .merge_branch_with_old_dates(&org, "repo-1", 3, 60)
        .unwrap();
    let r3 = read(cfg(), COMMITS, r2.states(COMMITS)).await;
    assert_eq!(
        r3.strings("commit", "SHA")
            .into_iter()
            .collect::<BTreeSet<_>>(),
        merged.into_iter().collect()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repo_archived_after_loading_has_its_row_updated_and_is_no_longer_read() {
    let gh = Standin::start(world()).await.unwrap();
    let org = gh.org_names()[0].clone();
    let cfg = || config(&gh, &gh.org_names(), json!({}));
    let streams = &["repository", "pull_request"];
    let r1 = read(cfg(), streams, BTreeMap::new()).await;
    assert_eq!(r1.bools("repository", "ARCHIVED"), vec![Some(false); 2]);
    assert_eq!(r1.rows("pull_request"), 6);
    assert!(gh.archive_repo(&org, "repo-1"));
    // One PR changes in each repository.
    assert_eq!(gh.touch_pull_requests(2).len(), 2);
    let r2 = read(cfg(), streams, r1.states(streams)).await;
    let names = r2.strings("repository", "NAME");
    let archived = r2.bools("repository", "ARCHIVED");
    let row = names
        .iter()
        .position(|n| n == "repo-1")
        .expect("repo-1 row");
    assert_eq!(archived[row], Some(true));
    // UPDATED_AT is the new one.
    let b = r2
        .batches
        .iter()
        .find(|b| b.stream == "repository")
        .unwrap();
    let upd = b
        .batch
        .column_by_name("UPDATED_AT")
        .unwrap()
        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
    let before = r1
        .batches
        .iter()
        .find(|b| b.stream == "repository")
        .unwrap()
        .batch
        .column_by_name("UPDATED_AT")
        .unwrap()
        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
        .value(row);
    assert!(upd.value(row) > before, "UPDATED_AT moved on");
    // Its pull requests are no longer read (include_archived is off); its state is kept.
    assert_eq!(r2.strings("pull_request", "REPO_NAME"), vec!["repo-0"]);
    assert!(r2.state("pull_request")["repos"]
        .get(format!("{org}/repo-1"))
        .is_some());
    // With include_archived its PRs are read again.
    let r3 = read(
        config(&gh, &gh.org_names(), json!({"include_archived": true})),
        &["pull_request"],
        BTreeMap::new(),
    )
    .await;
    assert_eq!(r3.rows("pull_request"), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_account_is_read_through_users_and_remembered_as_one() {
    let gh = Standin::start_with_user_accounts(world(), 1).await.unwrap();
    let orgs = vec![gh.org_names()[0].clone(), "standin-user-0".to_string()];
    let cfg = || config(&gh, &orgs, json!({}));
    let streams = &["repository", "commit"];
    let r1 = read(cfg(), streams, BTreeMap::new()).await;
    let owners: BTreeSet<String> = r1.strings("repository", "FULL_NAME").into_iter().collect();
    assert_eq!(owners.len(), 4, "{owners:?}");
    assert!(owners.contains("standin-user-0/repo-1"), "{owners:?}");
    let commit_orgs = r1.strings("commit", "ORG");
    assert_eq!(
        commit_orgs
            .iter()
            .filter(|o| *o == "standin-user-0")
            .count(),
        300
    );
    let st = r1.state("repository");
    assert_eq!(st["orgs"]["standin-user-0"]["user"], true);
    assert!(st["orgs"][gh.org_names()[0].as_str()].get("user").is_none());
    // Next run: the user path straight away, answered 304 (no 404 first).
    gh.reset_stats();
    let r2 = read(cfg(), streams, r1.states(streams)).await;
    let s = gh.stats();
    assert_eq!(r2.rows("repository"), 0);
    assert_eq!(s.by_status.get(&404), None, "{s:?}");
    assert_eq!(
        (s.kind("repos"), s.not_modified, s.total),
        (2, 6, 6),
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_account_with_many_repositories_is_remembered_too() {
    let gh = Standin::start_with_user_accounts(
        StandinConfig {
            orgs: 0,
            repos_per_org: 101,
            prs_per_repo: 0,
            commits_per_repo: 0,
            ..world()
        },
        1,
    )
    .await
    .unwrap();
    let orgs = vec!["standin-user-0".to_string()];
    let r1 = read(
        config(&gh, &orgs, json!({})),
        &["repository"],
        BTreeMap::new(),
    )
    .await;
    assert_eq!(r1.rows("repository"), 101);
    let st = r1.state("repository");
    assert_eq!(st["orgs"]["standin-user-0"]["user"], true);
    assert!(st["orgs"]["standin-user-0"].get("etag").is_none());
    gh.reset_stats();
    let r2 = read(
        config(&gh, &orgs, json!({})),
        &["repository"],
        r1.states(&["repository"]),
    )
    .await;
    assert_eq!(r2.rows("repository"), 101);
    assert_eq!(gh.stats().by_status.get(&404), None);
}
