//! `flowctl check SPEC` (the real binary) against the GitHub stand-in, local folders and
//! DuckDB, and with emulators: moto (S3, and GCS through moto's XML API), the Snowflake
//! SQL API adapter over fakesnow (scripts/with-emulators.sh). Every check is shown passing,
//! and each kind of failure is shown with the fix the user is told.

use crate::common;

use common::*;
use flowctl_core::check::CheckStatus;
use flowctl_core::StagingSink;
use flowctl_github_standin::{Faults, Standin, StandinConfig};
use serde_json::Value;
use std::path::Path;

const TOKEN: &str = "ghp_check_canary_4b1d2e";
const KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/sinks/snowflake/tests/fixtures/test_key.p8"
);

fn world() -> StandinConfig {
    StandinConfig {
        orgs: 1,
        repos_per_org: 2,
        prs_per_repo: 3,
        reviews_per_pr: 1,
        commits_per_repo: 3,
        files_per_commit: 1,
        latency_ms: 0,
        seed: 3,
    }
}

fn github_block(gh: &Standin, streams: &str) -> String {
    format!(
        "source:\n  type: github\n  base_url: {}\n  orgs: [{}]\n  streams: [{streams}]\n  token: {{ env: CHECK_GITHUB_TOKEN }}\n  max_retries: 1\n  retry_backoff_ms: 10\n",
        gh.base_url(),
        gh.org_names().join(", ")
    )
}

fn local_blocks(dir: &Path) -> String {
    format!(
        "staging:\n  type: local\n  path: {d}/staging\nwarehouse:\n  type: duckdb\n  path: {d}/warehouse.duckdb\n",
        d = dir.display()
    )
}

struct Checked {
    code: i32,
    json: Value,
    /// stdout and stderr together, for the "no secret printed" assertions.
    all: String,
}

impl Checked {
    fn item(&self, name: &str) -> &Value {
        self.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name:?} in {:#}", self.json))
    }

    fn status(&self, name: &str) -> &str {
        self.item(name)["status"].as_str().unwrap()
    }

    fn fix(&self, name: &str) -> &str {
        self.item(name)["fix"].as_str().unwrap_or("")
    }

    fn failed(&self) -> Vec<String> {
        self.json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == "failed")
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    }
}

fn write_spec(dir: &Path, body: &str) -> std::path::PathBuf {
    let spec = dir.join("check.yaml");
    std::fs::write(&spec, format!("name: check_test\n{body}")).unwrap();
    spec
}

fn run_check(spec: &Path, token: &str) -> Checked {
    let out = flowctl()
        .arg("check")
        .arg(spec)
        .args(["--format", "json"])
        .env("CHECK_GITHUB_TOKEN", token)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("GITHUB_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\nstderr:\n{stderr}"));
    Checked {
        code: out.status.code().unwrap_or(-1),
        json,
        all: format!("{stdout}\n{stderr}"),
    }
}

fn assert_no_probe_left(staging: &Path) {
    let left: Vec<_> = walk(staging)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("flowctl_check"))
        .collect();
    assert!(left.is_empty(), "probe files or folders left: {left:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            out.push(e.path());
            out.extend(walk(&e.path()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_shape_passes_and_leaves_nothing_behind() {
    let gh = Standin::start(world()).await.unwrap();
    gh.set_faults(Faults {
        require_token: Some(TOKEN.into()),
        oauth_scopes: Some("repo, read:org".into()),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let body = github_block(&gh, "pull_request, commit, deployment") + &local_blocks(dir.path());
    let spec = write_spec(dir.path(), &body);
    let c = run_check(&spec, TOKEN);
    assert_eq!(c.code, 0, "{:#}", c.json);
    assert_eq!(c.json["ok"], true);
    let org = &gh.org_names()[0];
    for name in [
        "github: token",
        "github: token scopes",
        "github: rate limit",
        &format!("github: organisation {org}"),
        &format!("github: {org} pulls (Pull requests)"),
        &format!("github: {org} commits (Contents)"),
        &format!("github: {org} deployments (Deployments)"),
        "staging (local): write a probe file",
        "staging (local): read the probe file back",
        "state: write and delete under _state/",
        "duckdb: open the database",
        "duckdb: write",
        "duckdb: load the probe file",
        "staging (local): delete the probe file",
    ] {
        assert_eq!(c.status(name), "ok", "{name}: {:#}", c.item(name));
    }
    assert!(c.item("github: token scopes")["detail"]
        .as_str()
        .unwrap()
        .contains("repo"));
    assert!(!c.all.contains(TOKEN), "the token was printed");
    assert_no_probe_left(&dir.path().join("staging"));
    // The scratch table is gone from the warehouse.
    let db = duckdb::Connection::open(dir.path().join("warehouse.duckdb")).unwrap();
    let left: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name LIKE 'FLOWCTL_CHECK%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
    drop(db);

    // The text checklist says the same, one line per item.
    let out = flowctl()
        .arg("check")
        .arg(&spec)
        .env("CHECK_GITHUB_TOKEN", TOKEN)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("  ok      github: token: "), "{text}");
    assert!(text.contains(" 0 failed"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_token_fails_with_the_token_fix_and_stops_the_github_checks() {
    let gh = Standin::start(world()).await.unwrap();
    gh.set_faults(Faults {
        require_token: Some("ghp_the_right_one".into()),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &(github_block(&gh, "pull_request") + &local_blocks(dir.path())),
    );
    let c = run_check(&spec, TOKEN);
    assert_eq!(c.code, 1);
    assert_eq!(c.json["ok"], false);
    assert_eq!(c.failed(), vec!["github: token".to_string()]);
    assert!(c.item("github: token")["detail"]
        .as_str()
        .unwrap()
        .contains("HTTP 401: Bad credentials"));
    assert!(c.fix("github: token").contains("create a new token"));
    assert!(c
        .fix("github: token")
        .contains("{ env: CHECK_GITHUB_TOKEN }"));
    assert!(!c.all.contains(TOKEN), "the token was printed");
    // The other blocks are still checked.
    assert_eq!(c.status("duckdb: write"), "ok");
}

/// A token list: each token is checked on its own and a refused one is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_token_of_a_list_is_checked() {
    let gh = Standin::start(world()).await.unwrap();
    gh.set_faults(Faults {
        require_token: Some(TOKEN.into()),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("second-token");
    std::fs::write(&wrong, "ghp_refused_second_token").unwrap();
    let body = github_block(&gh, "pull_request").replace(
        "token: { env: CHECK_GITHUB_TOKEN }",
        &format!(
            "token: [{{ env: CHECK_GITHUB_TOKEN }}, {{ file: {} }}]",
            wrong.display()
        ),
    ) + &local_blocks(dir.path());
    let c = run_check(&write_spec(dir.path(), &body), TOKEN);
    assert_eq!(c.code, 1);
    let first = "github: token token[0] ({ env: CHECK_GITHUB_TOKEN })";
    assert_eq!(c.status(first), "ok");
    let second = c
        .failed()
        .into_iter()
        .find(|n| n.starts_with("github: token token[1]"))
        .expect("the second token's check");
    assert!(c.item(&second)["detail"]
        .as_str()
        .unwrap()
        .contains("HTTP 401"));
    assert!(
        !c.all.contains("ghp_refused_second_token"),
        "a token was printed"
    );
    assert!(!c.all.contains(TOKEN), "a token was printed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_token_without_repo_scope_fails_the_scope_check() {
    let gh = Standin::start(world()).await.unwrap();
    gh.set_faults(Faults {
        oauth_scopes: Some("read:org, gist".into()),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &(github_block(&gh, "pull_request") + &local_blocks(dir.path())),
    );
    let c = run_check(&spec, TOKEN);
    assert_eq!(c.code, 1);
    assert_eq!(c.failed(), vec!["github: token scopes".to_string()]);
    assert!(c.fix("github: token scopes").contains("`repo` scope"));
    assert!(c.item("github: token scopes")["detail"]
        .as_str()
        .unwrap()
        .contains("read:org, gist"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_without_a_permission_fails_that_probe_only() {
    let gh = Standin::start(world()).await.unwrap();
    gh.set_faults(Faults {
        forbid_kind: Some("pulls".into()),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &(github_block(&gh, "pull_request, pull_request_review, commit_file")
            + &local_blocks(dir.path())),
    );
    let c = run_check(&spec, TOKEN);
    let org = &gh.org_names()[0];
    assert_eq!(c.code, 1);
    let pulls = format!("github: {org} pulls (Pull requests)");
    assert_eq!(c.failed(), vec![pulls.clone()]);
    assert!(c.item(&pulls)["detail"]
        .as_str()
        .unwrap()
        .contains("HTTP 403: Resource not accessible by personal access token"));
    assert!(c.fix(&pulls).contains("`Pull requests: Read-only`"));
    assert_eq!(c.status(&format!("github: {org} commits (Contents)")), "ok");
    assert_eq!(c.status("github: token scopes"), "skipped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_org_and_spent_rate_limit_fail_with_their_fixes() {
    let gh = Standin::start(world()).await.unwrap();
    gh.set_faults(Faults {
        quota: Some(1),
        quota_window_secs: 3600,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let body = github_block(&gh, "pull_request").replace(
        &format!("orgs: [{}]", gh.org_names()[0]),
        "orgs: [no-such-org]",
    ) + &local_blocks(dir.path());
    let spec = write_spec(dir.path(), &body);
    // The first check spends the quota of 1 on its organisation listing (a 404).
    let first = run_check(&spec, TOKEN);
    assert_eq!(first.status("github: organisation no-such-org"), "failed");
    assert!(first
        .fix("github: organisation no-such-org")
        .contains("check the name `no-such-org` in source.orgs"));
    let second = run_check(&spec, TOKEN);
    // The first check spent the quota on the listing; the user lookup after it was refused.
    assert_eq!(
        first.item("github: organisation no-such-org")["detail"],
        "GET /orgs/no-such-org/repos?type=all&per_page=100: HTTP 404: Not Found"
    );
    assert_eq!(second.status("github: rate limit"), "failed");
    assert!(second.item("github: rate limit")["detail"]
        .as_str()
        .unwrap()
        .starts_with("0 of 1 requests left"));
    assert!(second.fix("github: rate limit").starts_with("wait until "));
}

#[test]
fn file_source_path_readable_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("users.csv");
    std::fs::write(&csv, "id,name\n1,ada\n").unwrap();
    let source = |path: &Path| {
        format!(
            "source:\n  type: file\n  path: {}\n  format: csv\n  table: USERS\n  columns:\n    - {{ name: id, type: int64 }}\n    - {{ name: name, type: string }}\n  primary_key: [id]\n",
            path.display()
        )
    };
    let spec = write_spec(dir.path(), &(source(&csv) + &local_blocks(dir.path())));
    let c = run_check(&spec, TOKEN);
    let name = format!("file: read {}", csv.display());
    assert_eq!(c.status(&name), "ok", "{:#}", c.json);
    assert_eq!(c.code, 0);

    let missing = dir.path().join("nope.csv");
    let spec = write_spec(dir.path(), &(source(&missing) + &local_blocks(dir.path())));
    let c = run_check(&spec, TOKEN);
    assert_eq!(c.code, 1);
    assert_eq!(
        c.status(&format!("file: read {}", missing.display())),
        "failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_local_folders_fail_staging_state_and_duckdb() {
    let gh = Standin::start(world()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A path under a plain file can never become a folder (permission bits would not
    // stop a test running as root).
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let spec = write_spec(
        dir.path(),
        &(github_block(&gh, "pull_request") + &local_blocks(&file)),
    );
    let c = run_check(&spec, TOKEN);
    assert_eq!(c.code, 1);
    assert_eq!(
        c.failed(),
        vec![
            "staging (local): write a probe file".to_string(),
            "state: write and delete under _state/".to_string(),
            "duckdb: open the database".to_string(),
        ]
    );
    let staging = file.join("staging");
    assert!(c
        .fix("staging (local): write a probe file")
        .starts_with(&format!(
            "make {} a folder this user may write in",
            staging.display()
        )));
    assert!(c
        .fix("state: write and delete under _state/")
        .starts_with(&format!(
            "make {} a folder",
            staging.join("_state").display()
        )));
    assert!(c
        .fix("duckdb: open the database")
        .contains("warehouse.path"));
    assert!(!c.all.contains("panicked"), "{}", c.all);
}

#[test]
fn bad_spec_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(dir.path(), "source: {type: github}\n");
    let out = flowctl().arg("check").arg(&spec).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid spec"));
    let out = flowctl()
        .arg("check")
        .arg(&spec)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().contains("invalid spec"), "{v}");
}

// ---------------------------------------------------------------------------------------
// With emulators
// ---------------------------------------------------------------------------------------

fn create_bucket(s3: &str, bucket: &str) {
    let status = std::process::Command::new("curl")
        .args(["-sf", "-X", "PUT", &format!("{s3}/{bucket}")])
        .status()
        .unwrap();
    assert!(status.success(), "create bucket {bucket}");
}

fn s3_block(s3: &str, bucket: &str) -> String {
    format!(
        "staging:\n  type: s3\n  bucket: {bucket}\n  prefix: github\n  region: us-east-1\n  endpoint: {s3}\n  allow_http: true\n"
    )
}

fn snowflake_block(sf: &str, database: &str, schema: &str, role: &str) -> String {
    format!(
        "warehouse:\n  type: snowflake\n  account: test.us-east-1\n  user: FLOWCTL\n  role: {role}\n  warehouse: LOAD_WH\n  database: {database}\n  schema: {schema}\n  private_key_path: {KEY}\n  storage_integration: TEST_INT\n  base_url: {sf}\n"
    )
}

/// Refusal rules in the Snowflake adapter, scoped by names unique to one test.
fn add_rules(sf: &str, rules: Value) {
    let out = std::process::Command::new("curl")
        .args([
            "-sf",
            "-o",
            "/dev/null",
            "-X",
            "POST",
            &format!("{sf}/flowctl-test/rules"),
            "-H",
            "Content-Type: application/json",
            "-d",
            &rules.to_string(),
        ])
        .status()
        .unwrap();
    assert!(out.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_and_snowflake_pass_every_check() {
    let (Some(s3), Some(sf)) = (
        flowctl_core::testing::emulator("FLOWCTL_TEST_S3_ENDPOINT"),
        flowctl_core::testing::emulator("FLOWCTL_TEST_SNOWFLAKE_URL"),
    ) else {
        return;
    };
    let gh = Standin::start(world()).await.unwrap();
    let id = flowctl_core::testing::unique();
    let bucket = format!("check{id}");
    create_bucket(&s3, &bucket);
    let dir = tempfile::tempdir().unwrap();
    let schema = format!("RAW_CHECK_{id}");
    let body = github_block(&gh, "pull_request")
        + &s3_block(&s3, &bucket)
        + &snowflake_block(&sf, "GITHUB_PIPELINES", &schema, "LOADER");
    let spec = write_spec(dir.path(), &body);
    let c = run_check(&spec, TOKEN);
    assert_eq!(c.code, 0, "{:#}", c.json);
    for name in [
        "staging (s3): write a probe file",
        "staging (s3): read the probe file back",
        "state: write and delete under _state/",
        "snowflake: key-pair auth",
        "snowflake: role",
        "snowflake: warehouse",
        "snowflake: database",
        "snowflake: schema",
        "snowflake: create tables",
        "snowflake: alter tables",
        "snowflake: stage",
        "snowflake: stage lists the staging prefix",
        "snowflake: read the probe file (COPY INTO)",
        "snowflake: merge",
        "snowflake: truncate",
        "snowflake: select",
        "snowflake: drop the scratch tables",
        "staging (s3): delete the probe file",
    ] {
        assert_eq!(c.status(name), "ok", "{name}: {:#}", c.item(name));
    }
    assert!(c.item("snowflake: role")["detail"]
        .as_str()
        .unwrap()
        .contains("LOADER"));
    // Nothing left in the bucket but what a run keeps (the state folder is empty too).
    let list = std::process::Command::new("curl")
        .args(["-sf", &format!("{s3}/{bucket}?list-type=2")])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(!listing.contains("<Key>"), "objects left: {listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bucket_fails_staging_and_state_with_the_bucket_fix() {
    let Some(s3) = flowctl_core::testing::emulator("FLOWCTL_TEST_S3_ENDPOINT") else {
        return;
    };
    let gh = Standin::start(world()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bucket = format!("nobucket{}", flowctl_core::testing::unique());
    let body = github_block(&gh, "pull_request")
        + &s3_block(&s3, &bucket)
        + &format!(
            "warehouse:\n  type: duckdb\n  path: {}/w.duckdb\n",
            dir.path().display()
        );
    let spec = write_spec(dir.path(), &body);
    let c = run_check(&spec, TOKEN);
    assert_eq!(c.code, 1);
    let write = "staging (s3): write a probe file";
    assert_eq!(c.status(write), "failed");
    assert!(c.item(write)["detail"]
        .as_str()
        .unwrap()
        .contains(&format!("bucket `{bucket}`")));
    assert_eq!(
        c.fix(write),
        format!("create the bucket (aws s3 mb s3://{bucket}) or fix staging.bucket")
    );
    assert_eq!(c.status("state: write and delete under _state/"), "failed");
    assert_eq!(c.status("duckdb: load the probe file"), "skipped");
    assert!(!c.all.contains("testing\""), "credentials printed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_probe_round_trip_and_missing_bucket() {
    use flowctl_core::object_store::gcp::{GcpCredential, GoogleCloudStorageBuilder};
    use flowctl_core::object_store::StaticCredentialProvider;
    let Some(s3) = flowctl_core::testing::emulator("FLOWCTL_TEST_S3_ENDPOINT") else {
        return;
    };
    // object_store's GCS backend speaks XML, which moto serves (fake-gcs-server rejects
    // XML writes): the bearer is fixed and non-empty, the bucket alphanumeric.
    let builder = || {
        GoogleCloudStorageBuilder::new().with_credentials(std::sync::Arc::new(
            StaticCredentialProvider::new(GcpCredential {
                bearer: "testing".into(),
            }),
        ))
    };
    let config = |bucket: &str| {
        serde_json::from_value(
            serde_json::json!({"bucket": bucket, "base_url": s3, "prefix": "gh"}),
        )
        .unwrap()
    };
    let bucket = format!("checkgcs{}", flowctl_core::testing::unique());
    create_bucket(&s3, &bucket);
    let sink = flowctl_object_store::build_gcs_from(builder(), config(&bucket)).unwrap();
    let staged = sink.check().await;
    let statuses: Vec<_> = staged.results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        vec![CheckStatus::Ok, CheckStatus::Ok],
        "{:?}",
        staged.results
    );
    let probe = staged.probe.expect("a probe file");
    assert!(probe
        .uri
        .starts_with(&format!("gs://{bucket}/gh/flowctl_check/")));
    let removed = sink.remove_probe(&probe).await;
    assert_eq!(removed[0].status, CheckStatus::Ok, "{removed:?}");
    // Gone: a second delete's HEAD finds nothing either, and the read-back check fails.
    let loc = sink.location().unwrap();
    let path = flowctl_object_store::staged_path(&loc.root, &probe.relative_path).unwrap();
    assert!(
        flowctl_core::object_store::ObjectStoreExt::head(&*loc.store, &path)
            .await
            .is_err()
    );

    let missing = format!("nogcs{}", flowctl_core::testing::unique());
    let sink = flowctl_object_store::build_gcs_from(builder(), config(&missing)).unwrap();
    let staged = sink.check().await;
    assert!(staged.probe.is_none());
    assert_eq!(staged.results[0].status, CheckStatus::Failed);
    let fix = staged.results[0].fix.clone().unwrap_or_default();
    assert!(
        fix.contains(&format!("gs://{missing}")),
        "{:?}",
        staged.results
    );
    assert_eq!(staged.results[1].status, CheckStatus::Skipped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snowflake_refusals_name_their_grant() {
    let (Some(s3), Some(sf)) = (
        flowctl_core::testing::emulator("FLOWCTL_TEST_S3_ENDPOINT"),
        flowctl_core::testing::emulator("FLOWCTL_TEST_SNOWFLAKE_URL"),
    ) else {
        return;
    };
    let gh = Standin::start(world()).await.unwrap();
    let id = flowctl_core::testing::unique();
    let bucket = format!("checkref{id}");
    create_bucket(&s3, &bucket);
    let (no_db, no_create, no_stage) = (
        format!("MISSING_DB_{id}"),
        format!("NO_CREATE_{id}"),
        format!("NO_STAGE_{id}"),
    );
    let schema = format!("RAW_CHECK_{id}");
    // As Snowflake answers: an unusable database in the request, and the access-control
    // errors of a role without CREATE TABLE on the schema or USAGE on the stage.
    add_rules(
        &sf,
        serde_json::json!([
            {"database": no_db, "code": "002003", "sqlState": "02000",
             "message": format!("SQL compilation error:\nDatabase '{no_db}' does not exist or not authorized.")},
            {"role": no_create, "statement": "CREATE TABLE", "code": "003001", "sqlState": "42501",
             "message": format!("SQL access control error:\nInsufficient privileges to operate on schema '{schema}'")},
            {"role": no_stage, "statement": "LIST", "code": "002003", "sqlState": "02000",
             "message": "SQL compilation error:\nStage 'GITHUB_PIPELINES.X.FLOWCTL_STAGE' does not exist or not authorized."},
        ]),
    );
    let dir = tempfile::tempdir().unwrap();
    let spec_for = |database: &str, role: &str| {
        write_spec(
            dir.path(),
            &(github_block(&gh, "pull_request")
                + &s3_block(&s3, &bucket)
                + &snowflake_block(&sf, database, &schema, role)),
        )
    };

    let c = run_check(&spec_for(&no_db, "LOADER"), TOKEN);
    assert_eq!(c.code, 1);
    assert_eq!(c.status("snowflake: key-pair auth"), "ok");
    assert_eq!(c.failed(), vec!["snowflake: database".to_string()]);
    assert_eq!(
        c.fix("snowflake: database"),
        format!("GRANT USAGE ON DATABASE {no_db} TO ROLE LOADER; (or CREATE DATABASE {no_db}; as its owner)")
    );

    let c = run_check(&spec_for("GITHUB_PIPELINES", &no_create), TOKEN);
    assert_eq!(c.code, 1);
    assert_eq!(c.failed(), vec!["snowflake: create tables".to_string()]);
    assert_eq!(
        c.fix("snowflake: create tables"),
        format!("GRANT CREATE TABLE ON SCHEMA GITHUB_PIPELINES.{schema} TO ROLE {no_create};")
    );
    assert!(c.item("snowflake: create tables")["detail"]
        .as_str()
        .unwrap()
        .contains("Insufficient privileges"));
    assert_eq!(c.status("snowflake: alter, stage and load"), "skipped");

    let c = run_check(&spec_for("GITHUB_PIPELINES", &no_stage), TOKEN);
    assert_eq!(c.code, 1);
    let list = "snowflake: stage lists the staging prefix";
    assert_eq!(c.failed(), vec![list.to_string()]);
    assert_eq!(
        c.fix(list),
        format!("GRANT USAGE ON STAGE GITHUB_PIPELINES.{schema}.FLOWCTL_STAGE TO ROLE {no_stage};")
    );
    // Without the probe's COPY the load privileges are still shown, through an INSERT.
    assert_eq!(c.status("snowflake: insert"), "ok");
    assert_eq!(c.status("snowflake: merge"), "ok");
    assert_eq!(c.status("snowflake: drop the scratch tables"), "ok");

    // A stage over another prefix lists, but not the staging root's files.
    let sql = format!(
        "CREATE STAGE GITHUB_PIPELINES.{schema}.ELSEWHERE URL='s3://{bucket}/other/' STORAGE_INTEGRATION=TEST_INT"
    );
    let created = std::process::Command::new("curl")
        .args([
            "-sf",
            "-o",
            "/dev/null",
            "-X",
            "POST",
            &format!("{sf}/api/v2/statements"),
        ])
        .args([
            "-H",
            "Content-Type: application/json",
            "-H",
            "Authorization: Bearer test",
        ])
        .args([
            "-H",
            "X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT",
            "-d",
        ])
        .arg(
            serde_json::json!({"statement": sql, "database": "GITHUB_PIPELINES", "schema": schema})
                .to_string(),
        )
        .status()
        .unwrap();
    assert!(created.success());
    let body = github_block(&gh, "pull_request")
        + &s3_block(&s3, &bucket)
        + &snowflake_block(&sf, "GITHUB_PIPELINES", &schema, "LOADER")
            .replace("  storage_integration: TEST_INT\n", "  stage: ELSEWHERE\n")
            .replace("  warehouse: LOAD_WH\n", "");
    let c = run_check(&write_spec(dir.path(), &body), TOKEN);
    assert_eq!(c.code, 1);
    assert_eq!(
        c.failed(),
        vec!["snowflake: warehouse".to_string(), list.to_string()]
    );
    assert_eq!(
        c.fix("snowflake: warehouse"),
        "set warehouse.warehouse, or ALTER USER FLOWCTL SET DEFAULT_WAREHOUSE = <WAREHOUSE>;"
    );
    assert!(c.item(list)["detail"].as_str().unwrap().contains(&format!(
        "the stage's URL is not the staging root s3://{bucket}/github/"
    )));
    assert_eq!(
        c.fix(list),
        format!("CREATE OR REPLACE STAGE GITHUB_PIPELINES.{schema}.ELSEWHERE URL='s3://{bucket}/github/' STORAGE_INTEGRATION = <INTEGRATION>; (DESC STAGE GITHUB_PIPELINES.{schema}.ELSEWHERE shows its URL)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snowflake_refused_jwt_names_the_public_key_fix() {
    let Some(s3) = flowctl_core::testing::emulator("FLOWCTL_TEST_S3_ENDPOINT") else {
        return;
    };
    // Snowflake's answer to a JWT it does not accept (error 390144).
    let sf = TinyServer::start(|_| {
        let mut r = Reply::json(
            r#"{"code":"390144","message":"JWT token is invalid. [a1b2c3]"}"#.as_bytes(),
        );
        r.status = 401;
        r
    });
    let gh = Standin::start(world()).await.unwrap();
    let bucket = format!("checkjwt{}", flowctl_core::testing::unique());
    create_bucket(&s3, &bucket);
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        &(github_block(&gh, "pull_request")
            + &s3_block(&s3, &bucket)
            + &snowflake_block(&sf.base_url, "GITHUB_PIPELINES", "RAW", "LOADER")),
    );
    let c = run_check(&spec, TOKEN);
    assert_eq!(c.code, 1);
    assert_eq!(c.failed(), vec!["snowflake: key-pair auth".to_string()]);
    let fix = c.fix("snowflake: key-pair auth");
    assert!(
        fix.contains("ALTER USER FLOWCTL SET RSA_PUBLIC_KEY="),
        "{fix}"
    );
    assert!(fix.contains("RSA_PUBLIC_KEY_FP = SHA256:"), "{fix}");
    // The key never appears, nor the JWT sent.
    let key = std::fs::read_to_string(KEY).unwrap();
    let body_line = key.lines().nth(1).unwrap();
    assert!(!c.all.contains(body_line));
    let jwt = sf.requests()[0]
        .header("authorization")
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_string();
    assert!(!c.all.contains(&jwt));
    // The probe file was still removed.
    assert_eq!(c.status("staging (s3): delete the probe file"), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_app_installation_accepted_or_refused() {
    let gh = Standin::start(world()).await.unwrap();
    gh.set_faults(Faults {
        require_token: Some("ghs_standin_installation_token".into()),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    // Any RSA key signs the App JWT the stand-in exchanges (PKCS#8, as GitHub also accepts).
    let app = format!(
        "  app: {{ app_id: 12345, installation_id: 99, private_key: {{ file: {KEY} }} }}\n"
    );
    let body = github_block(&gh, "pull_request, commit")
        .replace("  token: { env: CHECK_GITHUB_TOKEN }\n", &app)
        + &local_blocks(dir.path());
    let spec = write_spec(dir.path(), &body);
    let c = run_check(&spec, TOKEN);
    assert_eq!(c.code, 0, "{:#}", c.json);
    assert!(c.item("github: token")["detail"]
        .as_str()
        .unwrap()
        .starts_with("GitHub App 12345 (installation 99) accepted"));
    assert_eq!(gh.stats().kind("app_token"), 1, "one installation token");

    gh.set_faults(Faults {
        unauthorized: true,
        ..Default::default()
    });
    let c = run_check(&spec, TOKEN);
    assert_eq!(c.code, 1);
    assert_eq!(c.failed(), vec!["github: token".to_string()]);
    assert!(c.item("github: token")["detail"]
        .as_str()
        .unwrap()
        .contains("App JWT rejected"));
    assert!(c
        .fix("github: token")
        .starts_with("check source.app: app_id"));
}

/// The staging writer's own failure path, which the check's probe takes through `apply`
/// too: a local upload that cannot complete is an error, not a panic of the abort after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_local_upload_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let cfg = serde_json::from_value(serde_json::json!({"path": file.join("staging")})).unwrap();
    let sink = flowctl_object_store::build_local(cfg).unwrap();
    let now = chrono::Utc::now();
    let target = flowctl_core::StageTarget {
        table: "t".into(),
        partition_key: "org",
        partition: "o".into(),
        date: now.date_naive(),
        batch_id: "b".into(),
        schema: flowctl_core::check::probe_schema(),
    };
    let mut w = sink.writer(target).await.unwrap();
    w.write(&flowctl_core::check::probe_batch("b", now))
        .await
        .unwrap();
    let err = w.finish().await.unwrap_err().to_string();
    assert!(err.contains("Not a directory"), "{err}");
}

#[test]
fn snowflake_key_that_cannot_be_read_fails_auth_locally() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-key.p8");
    let body = local_blocks(dir.path()).split("warehouse:").next().unwrap().to_string()
        + &snowflake_block("http://127.0.0.1:9", "GITHUB_PIPELINES", "RAW", "LOADER")
            .replace(KEY, &missing.display().to_string())
        + "source:\n  type: file\n  path: /dev/null\n  format: csv\n  table: T\n  columns: [{ name: id, type: int64 }]\n  primary_key: [id]\n";
    let c = run_check(&write_spec(dir.path(), &body), TOKEN);
    assert_eq!(c.code, 1);
    let auth = "snowflake: key-pair auth";
    assert_eq!(c.status(auth), "failed");
    assert!(c.item(auth)["detail"]
        .as_str()
        .unwrap()
        .contains(&missing.display().to_string()));
    assert!(c
        .fix(auth)
        .starts_with("give a readable PKCS#8 PEM private key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snowflake_role_not_granted_names_the_role_grant() {
    // Snowflake's login error for a role the user was not granted (code 390189), as an
    // HTTP 403: authentication itself worked.
    let sf = TinyServer::start(|_| {
        let mut r = Reply::json(
            r#"{"code":"390189","message":"Role 'LOADER' specified in the connect string is not granted to this user. Contact your local system administrator, or attempt to login with another role, e.g. PUBLIC."}"#
                .as_bytes(),
        );
        r.status = 403;
        r
    });
    let dir = tempfile::tempdir().unwrap();
    let body = local_blocks(dir.path()).split("warehouse:").next().unwrap().to_string()
        + &snowflake_block(&sf.base_url, "GITHUB_PIPELINES", "RAW", "LOADER")
        + "source:\n  type: file\n  path: /dev/null\n  format: csv\n  table: T\n  columns: [{ name: id, type: int64 }]\n  primary_key: [id]\n";
    let c = run_check(&write_spec(dir.path(), &body), TOKEN);
    assert_eq!(c.code, 1);
    assert_eq!(c.status("snowflake: key-pair auth"), "ok");
    assert_eq!(c.failed(), vec!["snowflake: role".to_string()]);
    assert_eq!(
        c.fix("snowflake: role"),
        "GRANT ROLE LOADER TO USER FLOWCTL;"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_account_in_orgs_passes_and_an_unknown_name_fails() {
    let gh = Standin::start_with_user_accounts(world(), 1).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let org = gh.org_names()[0].clone();
    let body = github_block(&gh, "pull_request").replace(
        &format!("orgs: [{org}]"),
        &format!("orgs: [{org}, standin-user-0, ghost-org]"),
    ) + &local_blocks(dir.path());
    let c = run_check(&write_spec(dir.path(), &body), TOKEN);
    assert_eq!(c.code, 1);
    assert_eq!(
        c.failed(),
        vec!["github: organisation ghost-org".to_string()]
    );
    assert_eq!(c.status("github: organisation standin-user-0"), "ok");
    assert!(c.item("github: organisation standin-user-0")["detail"]
        .as_str()
        .unwrap()
        .starts_with("user account, "));
    assert_eq!(
        c.status("github: standin-user-0 pulls (Pull requests)"),
        "ok"
    );
    assert!(c
        .fix("github: organisation ghost-org")
        .starts_with("check the name `ghost-org`"));
    assert_eq!(c.status(&format!("github: organisation {org}")), "ok");
}
