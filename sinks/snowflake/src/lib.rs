//! flowctl-snowflake: the `snowflake` warehouse loader, speaking Snowflake's SQL API v2
//! directly (reqwest) with key-pair JWT auth.
//!
//! Why not the `snowflake-api` crate: it hard-codes `https://{account}.snowflakecomputing.com`
//! (no emulator, proxy or PrivateLink host), pins a second arrow/reqwest/object_store next
//! to ours, and never polls statements Snowflake turns asynchronous (long COPY/MERGE).

pub mod client;
pub mod config;
pub mod jwt;
pub mod loader;
pub mod sql;

pub use config::SnowflakeConfig;
pub use loader::SnowflakeLoader;

use flowctl_core::{PluginError, TableSpec};

/// CREATE TABLE IF NOT EXISTS DDL of every table and its `<TABLE>_STAGE` twin, for
/// `flowctl sql raw-tables` (sql/raw_tables.sql). A table that cannot be rendered shows
/// up as an `-- ERROR` comment, so drift checks fail loudly.
pub fn raw_tables_sql(tables: &[TableSpec], database: &str, schema: &str) -> String {
    sql::try_raw_tables_sql(tables, database, schema).unwrap_or_else(|e| format!("-- ERROR: {e}\n"))
}

flowctl_core::inventory::submit! {
    flowctl_core::WarehouseRegistration {
        name: "snowflake",
        description: "Snowflake via the SQL API v2 (key-pair JWT): COPY INTO <TABLE>_STAGE, MERGE newer rows, TRUNCATE",
        config_schema: || flowctl_core::schemars::schema_for!(SnowflakeConfig),
        build: |cfg| {
            let cfg: SnowflakeConfig = serde_json::from_value(cfg)
                .map_err(|e| PluginError::config(format!("warehouse (snowflake): {e}")))?;
            Ok(Box::new(SnowflakeLoader::from_config(cfg)?))
        },
        // `from_config` reads no key and opens no connection (both wait for the first
        // statement), so it is the check.
        check: |cfg| {
            let cfg: SnowflakeConfig = serde_json::from_value(cfg)
                .map_err(|e| PluginError::config(format!("warehouse (snowflake): {e}")))?;
            SnowflakeLoader::from_config(cfg).map(drop)
        },
    }
}
