//! The `warehouse:` block of a spec with `type: duckdb`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Embedded DuckDB warehouse: the local default, no account needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DuckDbConfig {
    /// Database file; created on first use. Relative paths resolve against the directory
    /// flowctl runs in; `~/` is expanded. `:memory:` keeps nothing after the run (for
    /// `plan` and tests).
    #[serde(default = "default_path")]
    pub path: PathBuf,
    /// Schema holding the raw tables. Same default as the Snowflake loader so the same
    /// queries run on both warehouses. Must match `[A-Za-z_][A-Za-z0-9_]*`.
    #[serde(default = "default_schema")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub schema: String,
    /// Worker threads DuckDB may use. Each decodes its own row group, so with `_RAW` every
    /// extra thread costs ~100 MB of peak memory during a load for little speed.
    /// `flowctl query --threads` sets a query's own.
    #[serde(default = "default_threads")]
    #[schemars(range(min = 1))]
    pub threads: u32,
    /// DuckDB's memory limit for loads (`512MB`, `2GB`). Unset: 128MB, raised (and logged)
    /// when the staged rows' widest column needs more. Set: a hard limit, warned about when
    /// a load needs more. `flowctl query` has its own `--memory-limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"))]
    pub memory_limit: Option<String>,
    /// Uncompressed bytes of staged rows loaded per transaction. 0 (the default): one
    /// transaction per table, all or nothing. A positive value cuts the load along Parquet
    /// row groups; a failure keeps the earlier slices and the next run converges.
    #[serde(default = "default_load_slice_bytes")]
    pub load_slice_bytes: u64,
    /// Storage format of a database flowctl creates (an existing file keeps its own).
    /// `v1.2.0` compresses long strings such as `_RAW` with ZSTD; `v1.0.0` only if DuckDB
    /// older than 1.2 must open the file.
    #[serde(default = "default_storage_version")]
    #[schemars(regex(pattern = r"^v[0-9]+\.[0-9]+\.[0-9]+$|^latest$"))]
    pub storage_version: String,
    /// Rows per DuckDB row group (DuckDB's default: 122,880; its minimum: 2048). DuckDB
    /// holds the open row group of a load in memory, so small ones keep loads of `_RAW`
    /// lean.
    #[serde(default = "default_row_group_rows")]
    #[schemars(range(min = 2048))]
    pub row_group_rows: u32,
}

fn default_row_group_rows() -> u32 {
    2048
}

fn default_storage_version() -> String {
    "v1.2.0".to_string()
}

fn default_load_slice_bytes() -> u64 {
    0
}

/// DuckDB's memory limit when `memory_limit` is unset (and no load needs more).
pub const DEFAULT_MEMORY_LIMIT: &str = "128MB";

impl DuckDbConfig {
    /// The configured limit, or the default.
    pub fn memory_limit(&self) -> &str {
        self.memory_limit.as_deref().unwrap_or(DEFAULT_MEMORY_LIMIT)
    }
}

fn default_threads() -> u32 {
    1
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
            threads: default_threads(),
            memory_limit: None,
            load_slice_bytes: default_load_slice_bytes(),
            storage_version: default_storage_version(),
            row_group_rows: default_row_group_rows(),
        }
    }
}
