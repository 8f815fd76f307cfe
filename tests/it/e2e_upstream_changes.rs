//! End to end (stand-in → local staging → DuckDB): upstream changes that a read by date or
//! a filtered repository list would miss land in the tables.

use flowctl_github_standin::{Standin, StandinConfig};
use flowctl_testkit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_old_dated_commits_land_once_and_an_archived_repo_row_is_updated() {
    let gh = Standin::start(StandinConfig {
        orgs: 1,
        repos_per_org: 2,
        prs_per_repo: 4,
        reviews_per_pr: 1,
        commits_per_repo: 40,
        files_per_commit: 2,
        latency_ms: 0,
        seed: 3,
    })
    .await
    .unwrap();
    let org = gh.org_names()[0].clone();
    let env = Env::new(&gh, ALL_STREAMS);
    env.apply(&[]).success();
    assert_eq!(env.table_counts()["COMMIT"], 80);

    // Upstream: a branch of 5 commits dated 20 days before anything loaded is merged into
    // repo-0, and repo-1 is archived.
    let merged = gh
        .merge_branch_with_old_dates(&org, "repo-0", 5, 20)
        .unwrap();
    assert!(gh.archive_repo(&org, "repo-1"));
    let s2 = env.apply(&[]).success();
    assert_eq!(stream(&s2, "commit")["inserted"], 6, "{s2}");
    assert_eq!(stream(&s2, "commit_file")["inserted"], 12, "{s2}");
    env.assert_no_duplicate_keys();
    // Every commit of each default branch is in COMMIT once, with its files.
    for repo in ["repo-0", "repo-1"] {
        let branch = gh.branch_commits(&org, repo);
        let q = |t: &str, col: &str| {
            env.query_i64(&format!(
                "SELECT COUNT(DISTINCT {col}) FROM RAW_TABLES.{t} WHERE REPO_NAME = '{repo}'"
            ))
        };
        assert_eq!(q("COMMIT", "SHA"), branch.len() as i64, "{repo}");
        assert_eq!(
            q("COMMIT_FILE", "COMMIT_SHA"),
            branch.len() as i64,
            "{repo}"
        );
    }
    for sha in &merged {
        let n = env.query_i64(&format!(
            "SELECT COUNT(*) FROM RAW_TABLES.COMMIT_FILE WHERE COMMIT_SHA = '{sha}'"
        ));
        assert_eq!(n, 2, "{sha}");
    }
    assert_eq!(
        env.query_i64(
            "SELECT COUNT(*) FROM RAW_TABLES.REPOSITORY WHERE NAME = 'repo-1' AND ARCHIVED \
             AND UPDATED_AT > TIMESTAMPTZ '2026-01-01 00:00:00+00'"
        ),
        1
    );

    // A rerun changes nothing.
    let s3 = env.apply(&[]).success();
    for st in s3["streams"].as_array().unwrap() {
        assert_eq!(
            (&st["inserted"], &st["updated"]),
            (&0.into(), &0.into()),
            "{st}"
        );
    }
    gh.shutdown().await;
}
