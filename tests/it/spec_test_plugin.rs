//! Spec loading against a tiny test plugin registered in this test crate (`testsrc`),
//! plus the real staging/warehouse plugins: schema composition with nested `$defs`,
//! interpolation typing and errors inside nested config structs.

use flowctl_core::schemars::{self, JsonSchema};
use flowctl_core::secret::SecretRef;
use flowctl_core::spec::{composed_schema, load_spec_with_env, plugin_schema};
use flowctl_core::{async_trait, BatchSender, ReadOutcome, ReadRequest, Source, StreamInfo};
use serde::Deserialize;
use std::path::PathBuf;

// Link the real plugins (staging `local`, warehouse `duckdb`).
use flowctl_duckdb as _;
use flowctl_object_store as _;

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "flowctl_core::schemars")]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct TestConfig {
    /// Pages to read.
    pages: u32,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    auth: Option<Auth>,
}

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "flowctl_core::schemars")]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Auth {
    user: String,
    password: SecretRef,
}

struct TestSource;

#[async_trait]
impl Source for TestSource {
    fn streams(&self) -> Vec<StreamInfo> {
        Vec::new()
    }
    async fn read(&self, _: ReadRequest, _: BatchSender) -> flowctl_core::Result<ReadOutcome> {
        Ok(ReadOutcome::default())
    }
}

flowctl_core::inventory::submit! {
    flowctl_core::SourceRegistration {
        name: "testsrc",
        description: "test-only source registered by tests/it/spec_test_plugin.rs",
        config_schema: || schemars::schema_for!(TestConfig),
        build: |_| Ok(Box::new(TestSource)),
        check: |_| Ok(()),
    }
}

fn load(text: &str, env: &[(&str, &str)]) -> Result<flowctl_core::spec::Spec, String> {
    let dir = tempfile::tempdir().unwrap();
    let p: PathBuf = dir.path().join("t.yaml");
    std::fs::write(&p, text).unwrap();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    load_spec_with_env(&p, &lookup)
        .map_err(|e| e.to_string().replace(p.to_str().unwrap(), "t.yaml"))
}

const BASE: &str = "\
name: t
source:
  type: testsrc
  pages: ${PAGES}
  label: \"${PAGES}\"
  auth:
    user: u
    password: { env: PW }
staging:
  type: local
  path: ${DIR:-./stage}
warehouse:
  type: duckdb
state:
  location: $${NOT_A_VAR}/state
  lease_ttl_seconds: 60
";

#[test]
fn nested_defs_are_hoisted_and_namespaced() {
    let schema = composed_schema();
    let defs = schema["$defs"].as_object().unwrap();
    assert!(defs.contains_key("source-testsrc"));
    assert!(
        defs.contains_key("source-testsrc.Auth"),
        "{:?}",
        defs.keys()
    );
    assert!(defs.contains_key("source-testsrc.SecretRef"));
    let text = schema.to_string();
    assert!(!text.contains("\"#/$defs/Auth\""), "unrewritten $ref");
    let one = plugin_schema("testsrc").unwrap();
    assert_eq!(one["required"][0], "type");
    assert_eq!(one["additionalProperties"], false);
}

#[test]
fn interpolation_types_plain_scalars_and_keeps_quoted_strings() {
    let spec = load(BASE, &[("PAGES", "7")]).unwrap();
    assert_eq!(spec.source.type_name, "testsrc");
    assert_eq!(spec.source.config["pages"], 7);
    assert_eq!(spec.source.config["label"], "7");
    assert!(spec.source.config.get("type").is_none());
    assert_eq!(spec.source.config["auth"]["password"]["env"], "PW");
    assert_eq!(spec.staging.config["path"], "./stage");
    assert_eq!(spec.state.location.as_deref(), Some("${NOT_A_VAR}/state"));
    assert_eq!(spec.state.lease_ttl_seconds, Some(60));
}

#[test]
fn errors_inside_nested_structs_are_located() {
    let bad = BASE.replace("    user: u\n", "    usr: u\n");
    let err = load(&bad, &[("PAGES", "7")]).unwrap_err();
    assert!(
        err.contains("t.yaml:7:5: source.auth.usr: unknown key `usr`; did you mean `user`?"),
        "{err}"
    );
    assert!(
        err.contains("t.yaml:6:3: source.auth.user: missing required key `user`"),
        "{err}"
    );
    let bad = BASE.replace("password: { env: PW }", "password: hunter2-CANARY");
    let err = load(&bad, &[("PAGES", "7")]).unwrap_err();
    assert!(
        err.contains("t.yaml:8:15: source.auth.password: expected a secret reference"),
        "{err}"
    );
    assert!(!err.contains("hunter2-CANARY"), "{err}");
}

#[test]
fn interpolated_value_that_is_not_a_number_fails_the_schema() {
    let err = load(BASE, &[("PAGES", "many")]).unwrap_err();
    assert!(
        err.contains("t.yaml:4:10: source.pages: expected integer, found string"),
        "{err}"
    );
    let err = load(BASE, &[]).unwrap_err();
    assert_eq!(
        err.matches("environment variable PAGES is not set").count(),
        2,
        "{err}"
    );
}
