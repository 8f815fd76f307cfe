//! flowctl-duckdb: the embedded DuckDB warehouse loader (`type: duckdb`).
//!
//! Same tables and the same MERGE semantics as the Snowflake loader, so the same
//! downstream queries run on both: staged Parquet is read with `read_parquet`,
//! deduplicated to the newest `_INGESTED_AT` per `_ROW_KEY` and applied to `<TABLE>`
//! (replace only when the staged row is newer). There is no `<TABLE>_STAGE` table: the
//! load reads the files directly, in three statements and one transaction per table
//! (see `sql::delete_superseded`), the rows streamed into the table, so memory stays
//! bounded however much a run staged.

mod config;
mod fetch;
mod loader;
pub mod memory;
mod slices;
pub mod sql;

pub use config::DuckDbConfig;
pub use loader::DuckDbLoader;

inventory::submit! {
    flowctl_core::WarehouseRegistration {
        name: "duckdb",
        description: "Embedded DuckDB: the local default warehouse, no account needed",
        config_schema: || flowctl_core::schemars::schema_for!(DuckDbConfig),
        build: |cfg| {
            let config: DuckDbConfig = serde_json::from_value(cfg)
                .map_err(|e| flowctl_core::PluginError::config(format!("warehouse (duckdb): {e}")))?;
            Ok(Box::new(DuckDbLoader::from_config(config)?))
        },
        // `from_config` opens nothing (the database opens at the first statement).
        check: |cfg| {
            let config: DuckDbConfig = serde_json::from_value(cfg)
                .map_err(|e| flowctl_core::PluginError::config(format!("warehouse (duckdb): {e}")))?;
            DuckDbLoader::from_config(config).map(drop)
        },
    }
}
