//! End to end: `flowctl apply` (the real binary) against the GitHub stand-in server, local
//! folder staging and embedded DuckDB. First run loads everything; a second run with no
//! changes only makes conditional requests and changes no row; after 50 PRs change on the
//! server a third run updates exactly those; runs killed mid-way converge; two shards load
//! what one unsharded run loads.

use flowctl_github_standin::{Standin, StandinConfig};
use flowctl_testkit::*;

fn small() -> StandinConfig {
    StandinConfig {
        orgs: 2,
        repos_per_org: 3,
        prs_per_repo: 130,
        reviews_per_pr: 2,
        commits_per_repo: 25,
        files_per_commit: 2,
        latency_ms: 0,
        seed: 7,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_loads_everything_second_changes_nothing_third_updates_exactly_50() {
    let gh = Standin::start(small()).await.unwrap();
    let env = Env::new(&gh, ALL_STREAMS);
    let expected = gh.expected();

    // Run 1: everything.
    let s1 = env.apply(&[]).success();
    let counts = env.table_counts();
    let total = |f: fn(&flowctl_github_standin::ExpectedOrg) -> usize| {
        expected.orgs.iter().map(f).sum::<usize>() as i64
    };
    assert_eq!(counts["PULL_REQUEST"], total(|o| o.prs));
    assert_eq!(counts["PULL_REQUEST_REVIEW"], total(|o| o.reviews));
    assert_eq!(counts["COMMIT"], total(|o| o.commits));
    assert_eq!(counts["COMMIT_FILE"], total(|o| o.commit_files));
    assert_eq!(counts["REPOSITORY"], total(|o| o.repos));
    assert_eq!(stream(&s1, "pull_request")["inserted"], total(|o| o.prs));
    // Every table is loaded in one transaction of three statements, however many files.
    for st in s1["streams"].as_array().unwrap() {
        assert_eq!(st["statements"], 3, "{st}");
    }
    env.assert_no_duplicate_keys();
    env.assert_sample_matches_server(&gh);
    let snapshot1 = env.content_snapshot();

    // Run 2: nothing changed -> only conditional requests answered 304, no row changes.
    gh.reset_stats();
    let s2 = env.apply(&[]).success();
    let stats = gh.stats();
    assert_eq!(
        stats.total, stats.not_modified,
        "second run must make only conditional requests: {stats:?}"
    );
    for st in s2["streams"].as_array().unwrap() {
        assert_eq!(st["inserted"], 0, "{st}");
        assert_eq!(st["updated"], 0, "{st}");
    }
    assert_eq!(env.content_snapshot(), snapshot1);

    // Run 3: 50 PRs change -> exactly those are updated.
    let touched = gh.touch_pull_requests(50);
    assert_eq!(touched.len(), 50);
    let s3 = env.apply(&[]).success();
    let pr = stream(&s3, "pull_request");
    assert_eq!(pr["updated"], 50, "{pr}");
    assert_eq!(pr["inserted"], 0, "{pr}");
    assert_eq!(env.table_counts()["PULL_REQUEST"], total(|o| o.prs));
    env.assert_no_duplicate_keys();
    let changed =
        env.query_i64("SELECT COUNT(*) FROM RAW_TABLES.PULL_REQUEST WHERE TITLE LIKE '%(edited %'");
    assert_eq!(changed, 50);
    gh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_load_exactly_what_one_unsharded_run_loads() {
    let gh = Standin::start(small()).await.unwrap();
    let whole = Env::new(&gh, &["pull_request", "repository"]);
    whole.apply(&[]).success();
    let sharded = Env::new(&gh, &["pull_request", "repository"]);
    sharded.apply(&["--shard", "0/2"]).success();
    sharded.apply(&["--shard", "1/2"]).success();
    assert_eq!(
        sharded.content_snapshot_of("PULL_REQUEST"),
        whole.content_snapshot_of("PULL_REQUEST")
    );
    sharded.assert_no_duplicate_keys();
    gh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_killed_mid_way_converge_to_a_clean_run() {
    let mut cfg = small();
    cfg.latency_ms = 3; // slow enough to be killed mid-fetch
    let gh = Standin::start(cfg).await.unwrap();
    let clean = Env::new(&gh, ALL_STREAMS);
    clean.apply(&[]).success();
    let want = clean.content_snapshot();

    let crashy = Env::new(&gh, ALL_STREAMS);
    // Kill at several points (fetching, staging, loading), then run to completion.
    for delay_ms in [150u64, 400, 900, 1600] {
        crashy.apply_killed_after(delay_ms);
    }
    crashy.apply(&[]).success();
    assert_eq!(crashy.content_snapshot(), want);
    crashy.assert_no_duplicate_keys();
    gh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_apply_of_the_same_pipeline_is_refused_while_the_first_runs() {
    let mut cfg = small();
    cfg.latency_ms = 20;
    let gh = Standin::start(cfg).await.unwrap();
    let env = Env::new(&gh, &["pull_request"]);
    let mut first = env.spawn_apply(&[]);
    // Wait until the first run holds the lease.
    let lease = env.staging_dir().join("_state/e2e.lease");
    wait_until(|| lease.exists(), 10_000);
    let second = env.apply(&[]);
    assert_eq!(second.code, 1, "{}", second.stderr);
    assert!(
        second.stderr.contains("already running"),
        "{}",
        second.stderr
    );
    let status = first.wait().unwrap();
    assert!(status.success());
    gh.shutdown().await;
}

/// `flowctl query` must read `_RAW` back with its defaults. DuckDB stores `_RAW` with ZSTD
/// and decompresses 2,048 documents at a time (~64 MB with these ~17 KB documents), more
/// than the 128MB load limit of the spec can hold: the query gets its own limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_reads_raw_back_from_a_table_of_full_row_groups() {
    let gh = Standin::start(StandinConfig {
        orgs: 2,
        repos_per_org: 1,
        prs_per_repo: 2_100,
        reviews_per_pr: 0,
        commits_per_repo: 0,
        files_per_commit: 0,
        latency_ms: 0,
        seed: 11,
    })
    .await
    .unwrap();
    // REST's pulls-list objects (~17 KB) make the large documents this is about.
    let env = Env::with_source_options(&gh, &["pull_request"], &[("api", "rest")]);
    env.apply(&[]).success();
    gh.shutdown().await;
    let sql = "SELECT COUNT(*), SUM(LENGTH(_RAW)) FROM RAW_TABLES.PULL_REQUEST";
    let expected_len = env.query_i64("SELECT SUM(LENGTH(_RAW)) FROM RAW_TABLES.PULL_REQUEST");
    assert!(
        expected_len > 4_200 * 10_000,
        "documents too small to test: {expected_len}"
    );
    let out = flowctl()
        .arg("query")
        .arg(&env.spec)
        .arg(sql)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "flowctl query failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), format!("4200\t{expected_len}"));
    // A bad size is refused up front, naming the flag.
    let bad = flowctl()
        .args(["query", "--memory-limit", "lots"])
        .arg(&env.spec)
        .arg("SELECT 1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && stderr.contains("--memory-limit \"lots\""),
        "{stderr}"
    );
}

/// DuckDB checkpoints (folds its WAL into the database file) when flowctl closes it. Under
/// a `memory_limit` too small for that checkpoint it can fail and leave
/// `warehouse.duckdb.wal` behind: rows safe, but replayed on every open, and missing from a
/// copy of the `.duckdb` file alone. A run must either leave no WAL or say why, naming the
/// field to raise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_leaves_no_wal_or_says_which_limit_kept_it() {
    let gh = Standin::start(StandinConfig {
        orgs: 1,
        // (a fourth repository would be archived, which the source skips by default)
        repos_per_org: 3,
        prs_per_repo: 1400,
        ..StandinConfig::default()
    })
    .await
    .unwrap();
    let env = Env::new(&gh, &["pull_request"]);
    let yaml = std::fs::read_to_string(&env.spec).unwrap();
    let yaml = yaml.replace(
        "  retry_backoff_ms: 10\n",
        "  retry_backoff_ms: 10\n  include_raw: false\n",
    ) + "  memory_limit: \"32MB\"\n";
    std::fs::write(&env.spec, yaml).unwrap();
    let wal = env.dir.path().join("warehouse.duckdb.wal");
    for run in 0..2 {
        if run == 1 {
            gh.touch_pull_requests(50);
        }
        let out = env.apply(&[]);
        assert_eq!(out.code, 0, "run {run}: {}", out.stderr);
        if wal.exists() {
            assert!(
                out.stderr.contains("warehouse.memory_limit") && out.stderr.contains("WAL"),
                "run {run} left {} without saying why: {}",
                wal.display(),
                out.stderr
            );
        }
    }
    let prs: usize = gh.expected().orgs.iter().map(|o| o.prs).sum();
    assert!(prs > 2048, "enough rows for more than one DuckDB row group");
    assert_eq!(env.table_counts()["PULL_REQUEST"], prs as i64);
}
