//! `flowctl plugins`, `schema` (with the drift check), `plan` and secret hygiene.

use std::process::{Command, Output};

fn flowctl(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowctl"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn registry_lists_every_linked_plugin() {
    let out = flowctl(&["plugins", "--format", "json"], &[]);
    assert!(out.status.success());
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<(String, String)> = v
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().into(),
                p["type"].as_str().unwrap().into(),
            )
        })
        .collect();
    for (kind, ty) in [
        ("source", "github"),
        ("staging", "gcs"),
        ("staging", "s3"),
        ("staging", "local"),
        ("warehouse", "snowflake"),
        ("warehouse", "duckdb"),
    ] {
        assert!(
            got.contains(&(kind.into(), ty.into())),
            "{kind} {ty} missing from {got:?}"
        );
    }
    assert!(v
        .iter()
        .all(|p| !p["description"].as_str().unwrap().is_empty()));
    let text = flowctl(&["plugins"], &[]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("warehouse  duckdb"));
}

#[test]
fn checked_in_schemas_match_the_generated_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = flowctl(&["schema", "--write", dir.path().to_str().unwrap()], &[]);
    assert!(out.status.success());
    let mut drift = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let generated = std::fs::read_to_string(entry.path()).unwrap();
        let checked_in = std::fs::read_to_string(format!("schemas/{name}")).unwrap_or_default();
        if generated != checked_in {
            drift.push(name);
        }
    }
    for entry in std::fs::read_dir("schemas").unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".schema.json") && !dir.path().join(&name).exists() {
            drift.push(format!("{name} (stale)"));
        }
    }
    assert!(
        drift.is_empty(),
        "schemas/ differs from the generated schemas: {drift:?}; run `cargo run -- schema --write schemas/`"
    );
}

#[test]
fn schema_of_one_plugin_is_strict_and_has_type() {
    let out = flowctl(&["schema", "duckdb"], &[]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["properties"]["type"]["const"], "duckdb");
    assert_eq!(v["additionalProperties"], false);
    let out = flowctl(&["schema", "duckbd"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: no plugin of type `duckbd`"));
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(flowctl(&["validate"], &[]).status.code(), Some(2));
    assert_eq!(flowctl(&["frobnicate"], &[]).status.code(), Some(2));
    assert_eq!(flowctl(&["--help"], &[]).status.code(), Some(0));
}

const CANARY: &str = "CANARY-s3cr3t-7f3a9e";

/// A spec whose secrets (a token reference and an interpolated password-like value) hold
/// the canary; nothing any command prints may contain it.
fn canary_spec(dir: &std::path::Path) -> String {
    let spec = dir.join("canary.yaml");
    let text = format!(
        "name: canary\nsource:\n  type: github\n  orgs: [acme]\n  base_url: http://127.0.0.1:9\n  token: {{ env: FLOWCTL_CANARY_TOKEN }}\nstaging:\n  type: local\n  path: {}\nwarehouse:\n  type: duckdb\n  path: {}\n",
        dir.join("staging").display(),
        dir.join("w.duckdb").display()
    );
    std::fs::write(&spec, text).unwrap();
    spec.to_str().unwrap().to_string()
}

#[test]
fn canary_secret_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let spec = canary_spec(dir.path());
    let env = [("FLOWCTL_CANARY_TOKEN", CANARY), ("RUST_LOG", "trace")];
    let bad = dir.path().join("bad.yaml");
    // A secret pasted where a reference belongs must not be echoed by the error either.
    let pasted = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("{ env: FLOWCTL_CANARY_TOKEN }", CANARY);
    std::fs::write(&bad, pasted).unwrap();
    let runs = [
        flowctl(&["validate", &spec], &env),
        flowctl(
            &["validate", "--format", "json", bad.to_str().unwrap()],
            &env,
        ),
        flowctl(&["validate", bad.to_str().unwrap()], &env),
        flowctl(&["plan", &spec], &env),
        flowctl(&["apply", &spec], &env),
        flowctl(&["--log-format", "json", "apply", &spec], &env),
    ];
    for (i, out) in runs.iter().enumerate() {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains(CANARY), "run {i} leaked the secret: {all}");
    }
    assert!(runs[0].status.success());
    assert_eq!(runs[2].status.code(), Some(2));
    assert!(String::from_utf8_lossy(&runs[2].stderr).contains("source.token"));
    let plan = String::from_utf8_lossy(&runs[3].stdout);
    assert!(plan.contains("env: FLOWCTL_CANARY_TOKEN"), "{plan}");
    assert!(
        !runs[4].status.success(),
        "apply against a closed port must fail"
    );
}

#[test]
fn plan_lists_the_ordered_steps() {
    let out = flowctl(&["plan", "pipelines/quickstart.yaml"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = stdout
        .find("read stream repository -> table REPOSITORY")
        .unwrap();
    let save = stdout.find("save state").unwrap();
    assert!(read < save, "{stdout}");
    assert!(stdout.contains("type: duckdb"));
}

#[test]
fn raw_tables_sql_covers_every_github_stream() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("raw.sql");
    let out = flowctl(
        &["sql", "raw-tables", "--write", file.to_str().unwrap()],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sql = std::fs::read_to_string(file).unwrap();
    for t in [
        "PULL_REQUEST",
        "PULL_REQUEST_REVIEW",
        "COMMIT",
        "COMMIT_FILE",
        "REPOSITORY",
    ] {
        let create =
            format!("CREATE TABLE IF NOT EXISTS \"GITHUB_PIPELINES\".\"RAW_TABLES\".\"{t}\" (");
        assert!(sql.contains(&create), "{t} missing");
    }
}
