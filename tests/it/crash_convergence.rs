//! Crash convergence: `flowctl apply` (the real binary) is killed with SIGKILL at
//! pseudo-random points (seeded, so a failure replays) while it reads from the GitHub
//! stand-in, stages to a local folder and loads DuckDB; after every kill the next
//! complete run must leave the warehouse equal to a clean run: nothing missing, nothing
//! doubled. Between kills some PRs change on the server, so runs also crash mid-update.

use flowctl_github_standin::{Standin, StandinConfig};
use flowctl_testkit::*;

/// splitmix64: a tiny deterministic generator, enough for kill points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn world() -> StandinConfig {
    StandinConfig {
        orgs: 1,
        repos_per_org: 2,
        prs_per_repo: 40,
        reviews_per_pr: 1,
        commits_per_repo: 8,
        files_per_commit: 2,
        latency_ms: 1,
        seed: 21,
    }
}

fn slice_finely(env: &Env) {
    let spec = std::fs::read_to_string(&env.spec).unwrap();
    let edited = spec
        .replace(
            "  retry_backoff_ms: 10\n",
            "  retry_backoff_ms: 10\n  batch_rows: 10\n",
        )
        .replace("/staging\n", "/staging\n  row_group_rows: 10\n")
        + "  load_slice_bytes: 1\n";
    assert!(edited.contains("batch_rows: 10") && edited.contains("row_group_rows: 10"));
    std::fs::write(&env.spec, edited).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sigkills_at_seeded_points_each_converge_to_a_clean_run() {
    converge(0x5eed, 20, false).await;
}

/// With a checkpoint at every finished repository, kills also land between a
/// checkpoint's load and its commit, and between the checkpoints of one run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_between_checkpoints_each_converge_to_a_clean_run() {
    converge(0xc4ec, 12, true).await;
}

async fn converge(default_seed: u64, rounds: u64, checkpoint_always: bool) {
    let seed: u64 = std::env::var("FLOWCTL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_seed);
    let mut rng = Rng(seed);
    let gh = Standin::start(world()).await.unwrap();
    // The crashed pipeline loads DuckDB in many small slices (a batch, a row group and a
    // load transaction every 10 rows), so kills also land between committed slices of
    // one load; the reference loads each table in one transaction.
    let crashy = Env::new(&gh, ALL_STREAMS);
    slice_finely(&crashy);
    if checkpoint_always {
        let spec = std::fs::read_to_string(&crashy.spec).unwrap();
        std::fs::write(&crashy.spec, spec + "run:\n  checkpoint_interval: 0s\n").unwrap();
    }
    // Measure how long a full run takes here, so kill points spread over all phases.
    let started = std::time::Instant::now();
    let reference = Env::new(&gh, ALL_STREAMS);
    reference.apply(&[]).success();
    let full_ms = (started.elapsed().as_millis() as u64).max(200);
    eprintln!("crash convergence: seed {seed:#x}, clean run {full_ms} ms");

    let mut want = reference.content_snapshot();
    // Uncrashed, the finely sliced pipeline lands exactly the reference's rows, in many
    // statements.
    let sliced = Env::new(&gh, ALL_STREAMS);
    slice_finely(&sliced);
    let summary = sliced.apply(&[]).success();
    let statements = stream(&summary, "pull_request")["statements"].as_u64();
    assert!(statements.is_some_and(|n| n >= 8), "{summary}");
    assert_eq!(sliced.content_snapshot(), want);
    for round in 0..rounds {
        if round % 4 == 3 {
            gh.touch_pull_requests(7);
            // The uncrashed pipeline, run again, is the reference for the new data.
            reference.apply(&[]).success();
            want = reference.content_snapshot();
        }
        let kill_at = 20 + rng.next() % full_ms;
        crashy.apply_killed_after(kill_at);
        let out = crashy.apply(&[]);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert_eq!(
            out.code, 0,
            "round {round} (killed at {kill_at} ms, seed {seed:#x}): the next run failed:\n{}",
            out.stderr
        );
        let got = crashy.content_snapshot();
        let (lost, dup) = lost_and_extra(&want, &got);
        eprintln!(
            "round {round:>2}: killed at {kill_at:>5} ms; rows lost {lost}, duplicates {dup}"
        );
        assert_eq!((lost, dup), (0, 0), "round {round}, seed {seed:#x}");
        assert_eq!(got, want, "round {round}, seed {seed:#x}");
        crashy.assert_no_duplicate_keys();
    }
    gh.shutdown().await;
}
