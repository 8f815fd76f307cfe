//! End to end through the cloud path: `flowctl apply` (the real binary) from the GitHub
//! stand-in, staging Snappy Parquet on S3 (moto), loading Snowflake through the SQL API
//! v2 (the adapter over fakesnow, which COPYs from moto through a named stage that flowctl
//! creates with the storage integration). Needs FLOWCTL_TEST_S3_ENDPOINT and
//! FLOWCTL_TEST_SNOWFLAKE_URL (scripts/with-emulators.sh).

use flowctl_github_standin::{Standin, StandinConfig};
use flowctl_testkit::*;
use std::process::Command;

struct Cloud {
    dir: tempfile::TempDir,
    spec: std::path::PathBuf,
    sf_url: String,
    schema: String,
    s3: String,
}

impl Cloud {
    fn new(gh: &Standin, s3: &str, sf_url: &str) -> Cloud {
        let id = unique();
        let bucket = format!("e2e{id}");
        let status = Command::new("curl")
            .args(["-sf", "-X", "PUT", &format!("{s3}/{bucket}")])
            .status()
            .unwrap();
        assert!(status.success(), "create bucket {bucket}");
        let dir = tempfile::tempdir().unwrap();
        let schema = format!("RAW_E2E_{id}");
        let key = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sinks/snowflake/tests/fixtures/test_key.p8"
        );
        let spec = dir.path().join("cloud.yaml");
        std::fs::write(
            &spec,
            format!(
                r#"name: cloud_e2e
source:
  type: github
  base_url: {base}
  orgs: [{orgs}]
  streams: [repository, pull_request, pull_request_review]
  token: {{ env: E2E_GITHUB_TOKEN }}
  # The LIST checks below read REST-shaped `_RAW` (GraphQL's rows: graphql_standin.rs).
  api: rest
staging:
  type: s3
  bucket: {bucket}
  prefix: github
  region: us-east-1
  endpoint: {s3}
  allow_http: true
warehouse:
  type: snowflake
  account: test.us-east-1
  user: flowctl
  schema: {schema}
  private_key_path: {key}
  storage_integration: TEST_INT
  base_url: {sf_url}
"#,
                base = gh.base_url(),
                orgs = gh.org_names().join(", "),
            ),
        )
        .unwrap();
        Cloud {
            dir,
            spec,
            sf_url: sf_url.to_string(),
            schema,
            s3: s3.to_string(),
        }
    }

    fn apply(&self) -> serde_json::Value {
        let summary = self.dir.path().join(format!("s-{}.json", unique()));
        let out = flowctl()
            .arg("apply")
            .arg(&self.spec)
            .arg("--output")
            .arg(&summary)
            .env("E2E_GITHUB_TOKEN", "ghp_e2e")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "apply failed\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap()
    }

    /// One scalar from the emulator through the SQL API.
    fn scalar(&self, sql: &str) -> String {
        let body = serde_json::json!({
            "statement": sql,
            "database": "GITHUB_PIPELINES",
            "schema": self.schema,
        });
        let out = Command::new("curl")
            .args([
                "-sf",
                "-X",
                "POST",
                &format!("{}/api/v2/statements", self.sf_url),
                "-H",
                "Content-Type: application/json",
                "-H",
                "Authorization: Bearer test",
                "-H",
                "X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT",
                "-d",
                &body.to_string(),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "query {sql} failed");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["data"][0][0].as_str().unwrap_or_default().to_string()
    }

    fn count(&self, table: &str) -> i64 {
        self.scalar(&format!(
            "SELECT COUNT(*) FROM \"GITHUB_PIPELINES\".\"{}\".\"{table}\"",
            self.schema
        ))
        .parse()
        .unwrap()
    }

    fn duplicates(&self, table: &str) -> i64 {
        self.scalar(&format!(
            "SELECT COUNT(*) - COUNT(DISTINCT \"_ROW_KEY\") FROM \"GITHUB_PIPELINES\".\"{}\".\"{table}\"",
            self.schema
        ))
        .parse()
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_staging_and_snowflake_load_incrementally_without_duplicates() {
    let (Some(s3), Some(sf)) = (
        emulator("FLOWCTL_TEST_S3_ENDPOINT"),
        emulator("FLOWCTL_TEST_SNOWFLAKE_URL"),
    ) else {
        return;
    };
    let gh = Standin::start(StandinConfig {
        orgs: 2,
        repos_per_org: 2,
        prs_per_repo: 120,
        reviews_per_pr: 1,
        commits_per_repo: 5,
        files_per_commit: 1,
        latency_ms: 0,
        seed: 11,
    })
    .await
    .unwrap();
    let cloud = Cloud::new(&gh, &s3, &sf);
    let prs: usize = gh.expected().orgs.iter().map(|o| o.prs).sum();
    let reviews: usize = gh.expected().orgs.iter().map(|o| o.reviews).sum();

    let s1 = cloud.apply();
    assert_eq!(cloud.count("PULL_REQUEST"), prs as i64);
    assert_eq!(cloud.count("PULL_REQUEST_REVIEW"), reviews as i64);
    assert_eq!(cloud.count("REPOSITORY"), 4);
    assert_eq!(stream(&s1, "pull_request")["inserted"], prs);
    // One COPY, one MERGE, one TRUNCATE per table: at most 3 statements per table.
    for st in s1["streams"].as_array().unwrap() {
        assert!(st["statements"].as_u64().unwrap() <= 3, "{st}");
    }
    // Staged files really are on S3, under Hive paths.
    let listing = Command::new("curl")
        .args([
            "-sf",
            &format!(
                "{}/{}?list-type=2&prefix=github/pull_request/org=",
                cloud.s3,
                {
                    let y = std::fs::read_to_string(&cloud.spec).unwrap();
                    y.lines()
                        .find_map(|l| l.trim().strip_prefix("bucket: ").map(str::to_string))
                        .unwrap()
                }
            ),
        ])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("/date="), "{listing}");
    assert!(listing.contains(".parquet"), "{listing}");

    // No changes: nothing inserted or updated.
    let s2 = cloud.apply();
    for st in s2["streams"].as_array().unwrap() {
        assert_eq!(st["inserted"], 0, "{st}");
        assert_eq!(st["updated"], 0, "{st}");
    }
    // 50 PRs change: exactly those are updated.
    gh.touch_pull_requests(50);
    let s3r = cloud.apply();
    assert_eq!(stream(&s3r, "pull_request")["updated"], 50);
    assert_eq!(stream(&s3r, "pull_request")["inserted"], 0);
    assert_eq!(cloud.count("PULL_REQUEST"), prs as i64);
    for t in ["PULL_REQUEST", "PULL_REQUEST_REVIEW", "REPOSITORY"] {
        assert_eq!(cloud.duplicates(t), 0, "{t}");
    }
    // LIST columns arrive with their elements, not as NULL or JSON text: each PR's arrays
    // match the labels, requested reviewers and topics in the same row's `_RAW`.
    let at = |t: &str| format!("\"GITHUB_PIPELINES\".\"{}\".\"{t}\"", cloud.schema);
    let pr = at("PULL_REQUEST");
    for (table, column, raw, kinds) in [
        (
            "PULL_REQUEST",
            "LABELS",
            "labels[{i}].name",
            &["= 0", "> 1"][..],
        ),
        (
            "PULL_REQUEST",
            "REQUESTED_REVIEWERS",
            "requested_reviewers[{i}].login",
            &["= 0", "> 1"][..],
        ),
        ("REPOSITORY", "TOPICS", "topics[{i}]", &["> 1"][..]),
    ] {
        let t = at(table);
        let field = raw.split('[').next().unwrap_or_default();
        let mut differs = vec![format!(
            "NOT IS_ARRAY(\"{column}\") OR ARRAY_SIZE(\"{column}\") <> ARRAY_SIZE(\"_RAW\":{field})"
        )];
        for i in 0..2 {
            differs.push(format!(
                "COALESCE(\"{column}\"[{i}]::VARCHAR, '') <> COALESCE(\"_RAW\":{}::VARCHAR, '')",
                raw.replace("{i}", &i.to_string())
            ));
        }
        let sql = format!("SELECT COUNT(*) FROM {t} WHERE {}", differs.join(" OR "));
        assert_eq!(cloud.scalar(&sql), "0", "{column}: {sql}");
        // The stand-in serves empty and longer lists; each kind must be there.
        for cmp in kinds {
            let n: i64 = cloud
                .scalar(&format!(
                    "SELECT COUNT(*) FROM {t} WHERE ARRAY_SIZE(\"{column}\") {cmp}"
                ))
                .parse()
                .unwrap();
            assert!(n > 0, "{column}: no PR with ARRAY_SIZE {cmp}");
        }
    }
    assert_eq!(
        cloud.scalar(&format!(
            "SELECT MIN(\"LABELS\"[1]::VARCHAR) FROM {pr} WHERE ARRAY_SIZE(\"LABELS\") = 2"
        )),
        "enhancement ✨"
    );
    gh.shutdown().await;
}
