//! `flowctl validate` on good and bad specs: every error names file:line:column, the key
//! and what was expected. Runs the real binary with the real plugins linked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn flowctl(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowctl"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn write_spec(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Validates `text`; returns (exit code, stderr).
fn check(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = write_spec(dir.path(), "spec.yaml", text);
    let out = flowctl(&["validate", p.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (
        out.status.code().unwrap(),
        stderr.replace(p.to_str().unwrap(), "spec.yaml"),
    )
}

const GOOD: &str = "\
name: demo
source:
  type: github
  orgs: [acme]
  token: { env: GITHUB_TOKEN }
staging:
  type: local
  path: ./staging
warehouse:
  type: duckdb
  path: ./w.duckdb
";

#[test]
fn example_pipelines_are_valid() {
    let out = flowctl(
        &[
            "validate",
            "pipelines/github_pr.yaml",
            "pipelines/github_pr_aws.yaml",
            "pipelines/quickstart.yaml",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["github_pr.yaml", "github_pr_aws.yaml", "quickstart.yaml"] {
        let text = std::fs::read_to_string(Path::new("pipelines").join(f)).unwrap();
        assert!(text.starts_with("# yaml-language-server: $schema=../schemas/pipeline.schema.json"));
    }
}

#[test]
fn good_spec_is_valid() {
    let (code, stderr) = check(GOOD);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn yaml_syntax_error_is_located() {
    let (code, stderr) = check("name: demo\nsource:\n  type: github\n  orgs: [acme\n");
    assert_eq!(code, 2);
    assert!(
        stderr.contains("spec.yaml:5:1: YAML syntax error"),
        "{stderr}"
    );
}

#[test]
fn wrong_type_is_located_at_the_value() {
    let (code, stderr) = check(&GOOD.replace("orgs: [acme]", "orgs: acme"));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("spec.yaml:4:9: source.orgs: expected array, found string"),
        "{stderr}"
    );
}

#[test]
fn missing_required_key_is_located_at_its_parent() {
    let (code, stderr) = check(&GOOD.replace("  path: ./staging\n", ""));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("spec.yaml:6:1: staging.path: missing required key `path`"),
        "{stderr}"
    );
}

#[test]
fn misspelled_key_is_an_error_with_a_suggestion() {
    let (code, stderr) = check(&GOOD.replace("  orgs: [acme]", "  orgz: [acme]\n  orgs: [acme]"));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("spec.yaml:4:3: source.orgz: unknown key `orgz`; did you mean `orgs`?"),
        "{stderr}"
    );
}

#[test]
fn bad_cron_is_an_error() {
    let (code, stderr) = check(&format!("{GOOD}schedule: \"0 25 * * *\"\n"));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("spec.yaml:12:11: schedule: invalid cron expression `0 25 * * *`"),
        "{stderr}"
    );
    let (code, _) = check(&format!("{GOOD}schedule: \"*/15 * * * *\"\n"));
    assert_eq!(code, 0);
}

#[test]
fn unknown_plugin_type_lists_registered_and_suggests() {
    let (code, stderr) = check(&GOOD.replace("type: duckdb", "type: duckbd"));
    assert_eq!(code, 2);
    assert!(stderr.contains("spec.yaml:10:9: warehouse.type: unknown warehouse type `duckbd`; did you mean `duckdb`?"), "{stderr}");
    assert!(stderr.contains("registered: duckdb, snowflake"), "{stderr}");
}

#[test]
fn missing_env_var_names_it_and_where() {
    let (code, stderr) =
        check(&GOOD.replace("./w.duckdb", "${FLOWCTL_TEST_SURELY_UNSET}/w.duckdb"));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("spec.yaml:11:9: warehouse.path: environment variable FLOWCTL_TEST_SURELY_UNSET is not set"),
        "{stderr}"
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let bad = GOOD
        .replace("name: demo", "name: Demo!")
        .replace("orgs: [acme]", "orgs: [acme]\n  colour: blue")
        .replace("type: duckdb", "type: nope");
    let (code, stderr) = check(&bad);
    assert_eq!(code, 2);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("spec.yaml:"))
        .collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with("spec.yaml:1:7: name: expected lower-case"),
        "{stderr}"
    );
}

#[test]
fn hostile_inputs_fail_cleanly() {
    let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n";
    let deep = format!("name: {}{}\n", "[".repeat(5000), "]".repeat(5000));
    let huge = format!("name: x\n#{}\n", "x".repeat(2 << 20));
    for (text, want) in [
        ("", "spec.yaml:1:1: the spec is empty"),
        (bomb, "YAML syntax error"),
        (
            deep.as_str(),
            "spec.yaml:1:135: flow nesting (`[` / `{`) deeper than 128 levels",
        ),
        (huge.as_str(), "the spec is larger than 1048576 bytes"),
        ("- a\n- b\n", "expected a mapping"),
    ] {
        let (code, stderr) = check(text);
        assert_eq!(code, 2, "{want}: {stderr}");
        assert!(stderr.contains(want), "want {want:?} in {stderr}");
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bin.yaml");
    std::fs::write(&p, b"name: ok\nsource: \xff\xfe\n").unwrap();
    let out = flowctl(&["validate", p.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(":2:9: the spec is not valid UTF-8"));
}

#[test]
fn json_format_lists_errors_for_ci() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_spec(
        dir.path(),
        "s.yaml",
        &GOOD.replace("type: duckdb", "type: duckbd"),
    );
    let out = flowctl(&["validate", "--format", "json", p.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let e = &v["files"][0]["errors"][0];
    assert_eq!(
        (e["line"].as_u64(), e["column"].as_u64()),
        (Some(10), Some(9))
    );
    assert_eq!(e["path"], "warehouse.type");
}

#[test]
fn token_takes_one_reference_or_a_list_and_errors_name_the_item() {
    let with = |token: &str| GOOD.replace("{ env: GITHUB_TOKEN }", token);
    for ok in [
        "[{ env: GITHUB_TOKEN_1 }, { file: /run/secrets/t2 }]",
        "\n    - { env: GITHUB_TOKEN_1 }\n    - { aws_secret: github-token-2 }",
    ] {
        let (code, stderr) = check(&with(ok));
        assert_eq!(code, 0, "{ok}: {stderr}");
    }
    for (bad, at) in [
        (
            "ghp_pasted_CANARY",
            "spec.yaml:5:10: source.token: expected a secret reference",
        ),
        (
            "[{ env: A }, ghp_pasted_CANARY]",
            "spec.yaml:5:23: source.token[1]: expected a secret reference",
        ),
        (
            "[{ env: A }, { envv: B }]",
            "spec.yaml:5:23: source.token[1]: expected a secret reference",
        ),
        ("[]", "source.token: value has less than 1 item"),
        (
            "[{ env: A }, { env: A }]",
            "source.token[1]: { env: A } is listed twice",
        ),
    ] {
        let (code, stderr) = check(&with(bad));
        assert_eq!(code, 2, "{bad}: {stderr}");
        assert!(stderr.contains(at), "{bad}: {stderr}");
        assert!(!stderr.contains("CANARY"), "{stderr}");
    }
    let app = GOOD.replace(
        "token: { env: GITHUB_TOKEN }",
        "app: { app_id: 1, private_key: { file: app.pem } }",
    );
    let (code, stderr) = check(&app);
    assert_eq!(code, 0, "an App without installation_id: {stderr}");
}
