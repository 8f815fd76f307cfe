//! Config parsing, defaults, the published schema and the registration.

use flowctl_snowflake::client::request_body;
use flowctl_snowflake::{SnowflakeConfig, SnowflakeLoader};
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

fn loader(v: serde_json::Value) -> flowctl_core::Result<SnowflakeLoader> {
    SnowflakeLoader::from_config(serde_json::from_value(v).unwrap())
}

/// The SQL API's `database`, `schema`, `warehouse` and `role` fields are case-sensitive
/// (Snowflake's "Submitting a request to execute SQL statements": they must match the case
/// SHOW returns), so a plain name is sent in its upper-case form, a quoted one exactly.
#[test]
fn request_fields_carry_names_as_snowflake_stores_them() {
    let mut v = base();
    v["database"] = json!("github_pipelines");
    v["schema"] = json!("Raw_Tables");
    v["warehouse"] = json!("etl_wh");
    v["role"] = json!("flowctl_loader");
    let l = loader(v).unwrap();
    let body = request_body(l.context(), "SELECT 1", 60);
    assert_eq!(body["database"], "GITHUB_PIPELINES");
    assert_eq!(body["schema"], "RAW_TABLES");
    assert_eq!(body["warehouse"], "ETL_WH");
    assert_eq!(body["role"], "FLOWCTL_LOADER");

    let mut v = base();
    v["database"] = json!("\"MixedCase\"");
    v["schema"] = json!("\"raw\"");
    v["role"] = json!("\"Loader\"");
    let l = loader(v).unwrap();
    let body = request_body(l.context(), "SELECT 1", 60);
    assert_eq!(
        (&body["database"], &body["schema"], &body["role"]),
        (&json!("MixedCase"), &json!("raw"), &json!("Loader"))
    );

    for (key, bad) in [
        ("warehouse", "etl-wh"),
        ("role", "\"open"),
        ("stage", "a.b.c.d"),
    ] {
        let mut v = base();
        v[key] = json!(bad);
        let e = loader(v).unwrap_err().to_string();
        assert!(e.contains(bad), "{key}: {e}");
    }
}

/// Unset warehouse and role are left out (Snowflake then uses the user's defaults), never
/// sent as null; every statement runs with the session time zone UTC.
#[test]
fn unset_context_is_left_out_and_time_zone_is_utc() {
    let l = loader(base()).unwrap();
    let body = request_body(l.context(), "SELECT 1", 60);
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        !keys.contains(&"warehouse") && !keys.contains(&"role"),
        "{body}"
    );
    assert!(
        body.as_object().unwrap().values().all(|v| !v.is_null()),
        "{body}"
    );
    assert_eq!(body["parameters"], json!({"timezone": "UTC"}));
    assert_eq!(body["timeout"], 60);
    assert_eq!(body["statement"], "SELECT 1");
}
