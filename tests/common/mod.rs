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
        let summary = self
            .dir
            .path()
            .join(format!("summary-{}.json", uuid_like()));
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
        self.apply_with_env(extra, &[])
    }

    pub fn spawn_apply(&self, extra: &[&str]) -> Child {
        let (mut cmd, _) = self.command(extra);
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
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
                    .query_row(
                        &format!("SELECT COUNT(*) FROM RAW_TABLES.\"{t}\""),
                        [],
                        |r| r.get(0),
                    )
                    .unwrap_or(-1);
                (t.to_string(), n)
            })
            .collect()
    }

    pub fn assert_no_duplicate_keys(&self) {
        let db = self.db();
        for t in TABLES {
            let sql = format!("SELECT COUNT(*) - COUNT(DISTINCT _ROW_KEY) FROM RAW_TABLES.\"{t}\"");
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
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}

// ---------------------------------------------------------------- source options

/// The default source options `Env::new` writes; `Env::with_source_options` overrides them.
const DEFAULT_SOURCE_OPTIONS: &[(&str, &str)] = &[("max_retries", "3"), ("retry_backoff_ms", "10")];

impl Env {
    /// Like [`Env::new`], with extra or overridden `source:` options (raw YAML values).
    pub fn with_source_options(gh: &Standin, streams: &[&str], options: &[(&str, &str)]) -> Env {
        let env = Env::new(gh, streams);
        let mut merged: Vec<(String, String)> = DEFAULT_SOURCE_OPTIONS
            .iter()
            .filter(|(k, _)| !options.iter().any(|(o, _)| o == k))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        merged.extend(options.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let text = std::fs::read_to_string(&env.spec).unwrap();
        let mut out = String::new();
        for line in text.lines() {
            if DEFAULT_SOURCE_OPTIONS
                .iter()
                .any(|(k, _)| line.starts_with(&format!("  {k}:")))
            {
                continue;
            }
            out.push_str(line);
            out.push('\n');
            if line.starts_with("  token:") {
                for (k, v) in &merged {
                    out.push_str(&format!("  {k}: {v}\n"));
                }
            }
        }
        std::fs::write(&env.spec, out).unwrap();
        env
    }

    /// `flowctl state show` parsed (the `# location` line dropped); `Null` if it failed.
    pub fn state_show(&self) -> serde_json::Value {
        self.state_show_with_env(&[])
    }

    /// [`Env::state_show`] with extra environment variables (e.g. S3 credentials).
    pub fn state_show_with_env(&self, vars: &[(&str, &str)]) -> serde_json::Value {
        let mut cmd = flowctl();
        cmd.args(["state", "show"])
            .arg(&self.spec)
            .env("E2E_GITHUB_TOKEN", "ghp_e2e_token_not_secret");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "state show failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let json: String = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        serde_json::from_str(&json).unwrap_or(serde_json::Value::Null)
    }

    /// Saved state of one stream (`Null` when none).
    pub fn stream_state(&self, stream: &str) -> serde_json::Value {
        self.state_show()["streams"][stream].clone()
    }

    pub fn duckdb_path(&self) -> PathBuf {
        self.dir.path().join("warehouse.duckdb")
    }
}

/// Rows in `want` missing from `got` and rows of `got` beyond `want` (multiset), per table.
pub fn lost_and_extra(
    want: &BTreeMap<String, Vec<String>>,
    got: &BTreeMap<String, Vec<String>>,
) -> (usize, usize) {
    let (mut lost, mut extra) = (0, 0);
    for (t, rows) in want {
        let mut counts: BTreeMap<&String, i64> = BTreeMap::new();
        for r in rows {
            *counts.entry(r).or_default() += 1;
        }
        for r in got.get(t).into_iter().flatten() {
            *counts.entry(r).or_default() -= 1;
        }
        lost += counts
            .values()
            .filter(|v| **v > 0)
            .map(|v| *v as usize)
            .sum::<usize>();
        extra += counts
            .values()
            .filter(|v| **v < 0)
            .map(|v| (-*v) as usize)
            .sum::<usize>();
    }
    (lost, extra)
}

/// Run `cmd` with a deadline; kills it (by its own PID) when the deadline passes.
/// Returns (exit code or None when killed, stdout, stderr).
pub fn run_bounded(mut cmd: Command, max: Duration) -> (Option<i32>, String, String) {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = so.read_to_end(&mut s);
        s
    });
    let t2 = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = se.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if start.elapsed() > max {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = String::from_utf8_lossy(&t1.join().unwrap()).into_owned();
    let err = String::from_utf8_lossy(&t2.join().unwrap()).into_owned();
    (code, out, err)
}

/// One request as a [`TinyServer`] saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer of a [`TinyServer`] handler.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
        }
    }
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: vec![],
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
}

type Handler = dyn Fn(&SeenRequest) -> Reply + Send + Sync;

/// A tiny real HTTP/1.1 server on 127.0.0.1 (one thread per connection, `Connection:
/// close`), recording every request; for payloads and redirects the stand-in cannot serve.
pub struct TinyServer {
    pub base_url: String,
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<SeenRequest>>>,
}

impl TinyServer {
    pub fn start(handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static) -> TinyServer {
        Self::start_on("127.0.0.1", handler)
    }

    pub fn start_on(
        host: &str,
        handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
    ) -> TinyServer {
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind((host, 0)).unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<SeenRequest>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (h, s) = (handler.clone(), s2.clone());
                std::thread::spawn(move || serve_conn(conn, &*h, &s));
            }
        });
        TinyServer { base_url, seen }
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_conn(
    mut conn: std::net::TcpStream,
    handler: &Handler,
    seen: &std::sync::Mutex<Vec<SeenRequest>>,
) {
    use std::io::{BufRead, BufReader, Write};
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_lowercase(), v.trim().to_string()));
        }
    }
    let req = SeenRequest {
        method,
        target,
        headers,
    };
    seen.lock().unwrap().push(req.clone());
    let reply = handler(&req);
    let mut head = format!("HTTP/1.1 {} X\r\n", reply.status);
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.body.len()
    ));
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(&reply.body);
    let _ = conn.flush();
}

/// A minimal GitHub repository object (fields the source reads, GitHub's shapes).
pub fn repo_json(org: &str, name: &str, id: i64) -> String {
    format!(
        r#"{{"id":{id},"name":"{name}","full_name":"{org}/{name}","owner":{{"login":"{org}","id":1,"type":"Organization"}},"private":false,"fork":false,"archived":false,"default_branch":"main","created_at":"2024-01-01T00:00:00Z","updated_at":"2024-06-01T00:00:00Z","pushed_at":"2024-06-01T00:00:00Z"}}"#
    )
}

/// A minimal pull request object; `title` is inserted as raw JSON text.
pub fn pr_json(org: &str, repo: &str, id: i64, number: i64, title_json: &str) -> String {
    format!(
        r#"{{"id":{id},"number":{number},"state":"open","draft":false,"title":{title_json},"user":{{"login":"dev","id":7}},"created_at":"2024-05-01T00:00:00Z","updated_at":"2024-05-0{d}T00:00:00Z","closed_at":null,"merged_at":null,"base":{{"ref":"main","sha":"aaa","repo":{{"name":"{repo}","full_name":"{org}/{repo}"}}}},"head":{{"ref":"f{number}","sha":"bbb"}},"html_url":"https://github.com/{org}/{repo}/pull/{number}"}}"#,
        d = 1 + (number % 9)
    )
}

impl Env {
    /// A pipeline reading `base_url` (any GitHub-like server) for `orgs`; `source_extra`
    /// is appended to the `source:` block as raw YAML lines (two-space indented).
    pub fn for_server(base_url: &str, orgs: &[&str], streams: &[&str], source_extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("e2e.yaml");
        let orgs: Vec<String> = orgs
            .iter()
            .map(|o| serde_json::to_string(o).unwrap())
            .collect();
        let yaml = format!(
            "name: e2e\nsource:\n  type: github\n  base_url: {base_url}\n  orgs: [{orgs}]\n  streams: [{streams}]\n  token: {{ env: E2E_GITHUB_TOKEN }}\n  max_retries: 1\n  retry_backoff_ms: 5\n  request_timeout_seconds: 5\n{source_extra}staging:\n  type: local\n  path: {dir}/staging\nwarehouse:\n  type: duckdb\n  path: {dir}/warehouse.duckdb\n",
            orgs = orgs.join(", "),
            streams = streams.join(", "),
            dir = dir.path().display()
        );
        std::fs::write(&spec, yaml).unwrap();
        Env { dir, spec }
    }

    /// `apply` with extra environment variables and arguments.
    pub fn apply_with_env(&self, extra: &[&str], vars: &[(&str, &str)]) -> Output {
        let (mut cmd, summary) = self.command(extra);
        for (k, v) in vars {
            cmd.env(k, v);
        }
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
}

#[allow(unused_imports)] // not every test binary that includes this module needs it
pub use flowctl_core::testing::{emulator, unique};
