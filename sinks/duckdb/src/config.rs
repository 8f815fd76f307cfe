//! The `warehouse:` block of a spec with `type: duckdb`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Embedded DuckDB warehouse: the local default, no account needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DuckDbConfig {
    /// Database file; created on first use. Relative paths are resolved against the
    /// directory flowctl runs in, so the quickstart works from a fresh clone. `~/` is
    /// expanded. `:memory:` keeps everything in memory (useful for `plan` and tests only:
    /// nothing survives the run).
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// Schema holding the raw tables. Same default as the Snowflake loader so the same
    /// queries run on both warehouses. Must match `[A-Za-z_][A-Za-z0-9_]*`.
    #[serde(default = "default_schema")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub schema: String,
    /// Worker threads DuckDB may use; unset lets DuckDB pick (all cores). Lower it when
    /// flowctl shares a small machine with other jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub threads: Option<u32>,
    /// Upper bound on DuckDB's memory, in DuckDB's own syntax (`2GB`, `512MB`). DuckDB's
    /// own default is 80% of RAM, which it fills with cached blocks during a large load;
    /// 256MB keeps a sync of any size at a flat few hundred MB of RSS (see
    /// BENCHMARKS.md). Raise it for heavy `flowctl query` work on large tables.
    #[serde(default = "default_memory_limit")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"))]
    pub memory_limit: String,
    /// Uncompressed bytes of staged rows merged per transaction. DuckDB holds a
    /// transaction's new rows in memory until it commits, so a large load is merged in
    /// slices (cut along Parquet row groups) to keep memory flat however much was
    /// staged. 0 merges everything in one transaction (all or nothing, memory grows with
    /// the load).
    #[serde(default = "default_load_slice_bytes")]
    pub load_slice_bytes: u64,
}

fn default_load_slice_bytes() -> u64 {
    32 * 1024 * 1024
}

fn default_memory_limit() -> String {
    "256MB".to_string()
}

fn default_path() -> PathBuf {
    PathBuf::from("./warehouse.duckdb")
}

fn default_schema() -> String {
    "RAW_TABLES".to_string()
}

impl Default for DuckDbConfig {
    fn default() -> Self {
        Self {
            path: default_path(),
            schema: default_schema(),
            threads: None,
            memory_limit: default_memory_limit(),
            load_slice_bytes: default_load_slice_bytes(),
        }
    }
}
