//! Golden test of the rendered SQL, and the plugin's registration and config schema.
//! Regenerate the golden file with `FLOWCTL_BLESS=1 cargo test -p flowctl-duckdb --test it plan::`.

use crate::common;

use flowctl_core::WarehouseLoader;
use flowctl_duckdb::{DuckDbConfig, DuckDbLoader};

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/pull_request_plan.sql"
);

#[test]
fn plan_matches_golden_sql() {
    let loader = DuckDbLoader::from_config(DuckDbConfig::default()).unwrap();
    let rendered = loader.plan(&common::table(true)).join(";\n\n") + ";\n";
    if std::env::var_os("FLOWCTL_BLESS").is_some() {
        std::fs::write(GOLDEN, &rendered).unwrap();
    }
    let want = std::fs::read_to_string(GOLDEN).unwrap();
    assert_eq!(rendered, want, "rendered SQL differs from {GOLDEN}");
}

#[test]
fn plan_does_not_create_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.duckdb");
    let loader = DuckDbLoader::from_config(DuckDbConfig {
        path: path.clone(),
        ..Default::default()
    })
    .unwrap();
    assert!(!loader.plan(&common::table(false)).is_empty());
    assert!(!path.exists());
}

#[test]
fn registered_as_duckdb_with_defaults_and_strict_config() {
    let reg = flowctl_core::find_warehouse("duckdb").expect("duckdb registered");
    let schema = serde_json::to_value((reg.config_schema)()).unwrap();
    let props = &schema["properties"];
    assert_eq!(props["path"]["default"], "./warehouse.duckdb");
    assert_eq!(props["schema"]["default"], "RAW_TABLES");
    assert!(props["threads"].is_object() && props["memory_limit"].is_object());
    assert_eq!(schema["additionalProperties"], false);
    assert!(
        props.get("type").is_none(),
        "`type` is added by the composed spec schema"
    );

    assert!((reg.build)(serde_json::json!({})).is_ok());
    let err = (reg.build)(serde_json::json!({ "pth": "x.duckdb" }))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("unknown field `pth`"), "{err}");
    let cfg: DuckDbConfig = serde_json::from_value(serde_json::json!({})).unwrap();
    assert_eq!(cfg, DuckDbConfig::default());
}
