//! Pipeline specs in a temp dir: a GitHub source (the stand-in or any server), local
//! staging and a DuckDB warehouse.

use flowctl_github_standin::Standin;
use std::path::{Path, PathBuf};

/// The default source options `Env::new` writes; `Env::with_source_options` overrides them.
const DEFAULT_SOURCE_OPTIONS: &[(&str, &str)] = &[("max_retries", "3"), ("retry_backoff_ms", "10")];

pub const ALL_STREAMS: &[&str] = &[
    "repository",
    "pull_request",
    "pull_request_review",
    "commit",
    "commit_file",
];

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

    pub fn duckdb_path(&self) -> PathBuf {
        self.dir.path().join("warehouse.duckdb")
    }

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
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
