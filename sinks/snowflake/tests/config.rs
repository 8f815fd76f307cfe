//! Config parsing, defaults, the published schema and the registration.

use flowctl_snowflake::SnowflakeConfig;
use serde_json::json;

fn base() -> serde_json::Value {
    json!({"account": "xy12345.us-east-1", "user": "svc", "private_key_path": "~/k.p8", "stage": "GH"})
}

#[test]
fn defaults_apply() {
    let c: SnowflakeConfig = serde_json::from_value(base()).unwrap();
    assert_eq!(c.database, "GITHUB_PIPELINES");
    assert_eq!(c.schema, "RAW_TABLES");
    assert_eq!(
        c.base_url(),
        "https://xy12345.us-east-1.snowflakecomputing.com"
    );
    assert!(c.statement_timeout_seconds > 0 && c.poll_interval_ms > 0);
}

#[test]
fn unknown_keys_are_rejected() {
    let mut v = base();
    v["passwrd"] = json!("x");
    let e = serde_json::from_value::<SnowflakeConfig>(v)
        .unwrap_err()
        .to_string();
    assert!(e.contains("passwrd"), "{e}");
}

#[test]
fn registration_builds_and_checks_key_and_stage() {
    let reg = flowctl_core::find_warehouse("snowflake").expect("snowflake registered");
    let schema = serde_json::to_value((reg.config_schema)()).unwrap();
    assert_eq!(schema["additionalProperties"], json!(false));
    assert!(schema["properties"]["private_key"].is_object());
    assert!(!schema["properties"]
        .as_object()
        .unwrap()
        .contains_key("type"));
    assert!((reg.build)(base()).is_ok());

    let mut both = base();
    both["private_key"] = json!({"env": "SF_KEY"});
    let e = (reg.build)(both).err().unwrap().to_string();
    assert!(e.contains("not both"), "{e}");

    let mut no_stage = base();
    no_stage.as_object_mut().unwrap().remove("stage");
    let e = (reg.build)(no_stage).err().unwrap().to_string();
    assert!(e.contains("storage_integration"), "{e}");

    let mut bad = base();
    bad["schema"] = json!("RAW; DROP");
    let e = (reg.build)(bad).err().unwrap().to_string();
    assert!(e.contains("RAW; DROP"), "{e}");
}
