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
    /// Worker threads DuckDB may use. Each thread decodes its own row group of the
    /// staged files, so with `_RAW` every extra thread costs ~100 MB of peak RSS during a
    /// load for little speed (a load is mostly serial; with `memory_limit` unset flowctl
    /// sizes the limit for it). `flowctl query --threads` sets a query's own.
    #[serde(default = "default_threads")]
    #[schemars(range(min = 1))]
    pub threads: u32,
    /// Upper bound on DuckDB's memory, in DuckDB's own syntax (`2GB`, `512MB`); DuckDB's
    /// own default, 80% of RAM, fills with cached blocks during a large load. Unset
    /// (the default): 128MB, or what a load's staged rows need if that is more (DuckDB
    /// pins ~1.5 row groups of `row_group_rows` rows of the widest column while it
    /// appends, and ~100 MB more per extra thread: ~90 MB for 19 KB `_RAW`, ~260 MB for
    /// 75 KB commit patches; the raise is logged). With 128MB, 4,000 to 400,000 pull
    /// requests with `_RAW` load in one transaction at 190-290 MB of RSS (see
    /// BENCHMARKS.md). Set, it is a hard limit;
    /// a load whose rows need more gets a warning first, and may fail "Out of Memory".
    /// Loads only: `flowctl query` has its own `--memory-limit` (default 1GB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"))]
    pub memory_limit: Option<String>,
    /// Uncompressed bytes of staged rows loaded per transaction. 0 (the default) loads
    /// all of a table's staged files in one transaction: all or nothing, three statements,
    /// memory bounded (the rows are streamed into the table and written out row group by
    /// row group; 175-300 MB of RSS measured from 4,000 to 400,000 pull requests). A positive value cuts the load along Parquet row groups
    /// into transactions of about that size, three statements each (a failure then keeps
    /// the slices loaded before it; the next run converges).
    #[serde(default = "default_load_slice_bytes")]
    pub load_slice_bytes: u64,
    /// DuckDB storage format of a database flowctl creates (an existing file keeps its
    /// own, whatever this says). The default `v1.2.0` compresses long strings with ZSTD:
    /// `_RAW` takes ~40x less disk than in DuckDB's backward-compatible `v1.0.0` format,
    /// which you need only if DuckDB older than 1.2 must open the file.
    #[serde(default = "default_storage_version")]
    #[schemars(regex(pattern = r"^v[0-9]+\.[0-9]+\.[0-9]+$|^latest$"))]
    pub storage_version: String,
    /// Rows per DuckDB row group for what this run writes (DuckDB's default is 122,880).
    /// DuckDB holds a transaction's appended rows in memory until a row group is full and
    /// rewrites the open one at every commit: with `_RAW` (~19 KB a row) small row groups
    /// keep a load's memory and CPU down (BENCHMARKS.md). 2048 is DuckDB's minimum.
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
