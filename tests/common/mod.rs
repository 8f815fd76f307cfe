//! Helpers for end-to-end tests of the `flowctl` binary.
#![allow(dead_code)]

use flowctl_github_standin::Standin;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ALL_STREAMS: &[&str] = &[
    "repository",
    "pull_request",
    "pull_request_review",
    "commit",
    "commit_file",
];

pub const TABLES: &[&str] = &[
    "PULL_REQUEST",
    "PULL_REQUEST_REVIEW",
    "COMMIT",
    "COMMIT_FILE",
    "REPOSITORY",
];

pub fn flowctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowctl"))
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub summary: serde_json::Value,
}

impl Output {
    pub fn success(self) -> serde_json::Value {
        assert_eq!(
            self.code, 0,
            "flowctl failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self.summary
    }
}

/// A pipeline in a temp dir: spec, local staging, DuckDB warehouse.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub spec: PathBuf,
}

impl Env {
    pub fn new(gh: &Standin, streams: &[&str]) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let orgs: Vec<String> = gh.org_names();
        let spec = dir.path().join("e2e.yaml");
        let yaml = format!(
            r#"name: e2e
source:
  type: github
  base_url: {base}
  orgs: [{orgs}]
  streams: [{streams}]
  token: {{ env: E2E_GITHUB_TOKEN }}
  max_retries: 3
  retry_backoff_ms: 10
staging:
  type: local
  path: {dir}/staging
warehouse:
  type: duckdb
  path: {dir}/warehouse.duckdb
"#,
            base = gh.base_url(),
            orgs = orgs.join(", "),
            streams = streams.join(", "),
            dir = dir.path().display()
        );
        std::fs::write(&spec, yaml).unwrap();
        Env { dir, spec }
    }

    pub fn staging_dir(&self) -> PathBuf {
        self.dir.path().join("staging")
    }

    fn command(&self, extra: &[&str]) -> (Command, PathBuf) {
        let summary = self.dir.path().join(format!(
            "summary-{}.json",
            uuid_like()
        ));
        let mut cmd = flowctl();
        cmd.arg("apply")
            .arg(&self.spec)
            .arg("--output")
            .arg(&summary)
            .args(extra)
            .env("E2E_GITHUB_TOKEN", "ghp_e2e_token_not_secret")
            .env("RUST_LOG", "warn");
        (cmd, summary)
    }

    pub fn apply(&self, extra: &[&str]) -> Output {
        let (mut cmd, summary) = self.command(extra);
        let out = cmd.output().unwrap();
        let summary = std::fs::read_to_string(&summary)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null);
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            summary,
        }
    }

    pub fn spawn_apply(&self, extra: &[&str]) -> Child {
        let (mut cmd, _) = self.command(extra);
        cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
    }

    /// Start a run and SIGKILL it after `ms` milliseconds (if still running).
    pub fn apply_killed_after(&self, ms: u64) {
        let mut child = self.spawn_apply(&[]);
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
    }

    fn db(&self) -> duckdb::Connection {
        duckdb::Connection::open(self.dir.path().join("warehouse.duckdb")).unwrap()
    }

    pub fn query_i64(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    pub fn table_counts(&self) -> BTreeMap<String, i64> {
        let db = self.db();
        TABLES
            .iter()
            .map(|t| {
                let n: i64 = db
                    .query_row(&format!("SELECT COUNT(*) FROM RAW_TABLES.\"{t}\""), [], |r| {
                        r.get(0)
                    })
                    .unwrap_or(-1);
                (t.to_string(), n)
            })
            .collect()
    }

    pub fn assert_no_duplicate_keys(&self) {
        let db = self.db();
        for t in TABLES {
            let sql = format!(
                "SELECT COUNT(*) - COUNT(DISTINCT _ROW_KEY) FROM RAW_TABLES.\"{t}\""
            );
            if let Ok(d) = db.query_row(&sql, [], |r| r.get::<_, i64>(0)) {
                assert_eq!(d, 0, "duplicate _ROW_KEY in {t}");
            }
        }
    }

    /// Every table's rows without the per-run metadata columns, sorted: two warehouses
    /// holding the same data give equal snapshots.
    pub fn content_snapshot(&self) -> BTreeMap<String, Vec<String>> {
        TABLES
            .iter()
            .map(|t| (t.to_string(), self.content_snapshot_of(t)))
            .collect()
    }

    pub fn content_snapshot_of(&self, table: &str) -> Vec<String> {
        let db = self.db();
        let sql = format!(
            "SELECT CAST(COLUMNS(* EXCLUDE (_INGESTED_AT, _BATCH_ID)) AS VARCHAR) FROM RAW_TABLES.\"{table}\""
        );
        let Ok(mut stmt) = db.prepare(&sql) else {
            return vec![];
        };
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let n = r.as_ref().column_count();
                let mut parts = Vec::with_capacity(n);
                for i in 0..n {
                    parts.push(r.get::<_, Option<String>>(i)?.unwrap_or_default());
                }
                Ok(parts.join("\u{1f}"))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        rows.sort();
        rows
    }

    /// Compare a sample of loaded pull requests with what the server serves.
    pub fn assert_sample_matches_server(&self, gh: &Standin) {
        let db = self.db();
        let world = flowctl_github_standin::data::World::new(gh.config());
        let repo0 = &world.repos[0];
        for k in [0usize, 13, 42] {
            let (org, repo) = (repo0.org_name.clone(), repo0.name.clone());
            let number = world.pr_number(k);
            let title = flowctl_github_standin::data::pr_title(k, 0);
            let got: String = db
                .query_row(
                    "SELECT TITLE FROM RAW_TABLES.PULL_REQUEST WHERE ORG = ? AND REPO_NAME = ? AND NUMBER = ?",
                    duckdb::params![org, repo, number as i64],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(got, title, "{org}/{repo}#{number}");
        }
    }
}

pub fn stream<'a>(summary: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    summary["streams"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["stream"] == name))
        .unwrap_or_else(|| panic!("no stream {name} in summary {summary}"))
}

pub fn wait_until(mut cond: impl FnMut() -> bool, max_ms: u64) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_millis(max_ms),
            "condition not met in {max_ms} ms"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
