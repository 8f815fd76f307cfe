//! The `file` source's config block.

use flowctl_core::{PluginError, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Reads CSV or JSON Lines files into one warehouse table (e.g. USER_LOOKUP).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// A local path, a local glob (`data/*.csv`), or an object-store URL (`s3://bucket/dir/*.csv`,
    /// `gs://bucket/file.jsonl`, `file:///abs/path`). Relative local paths resolve against the
    /// working directory of `flowctl`, because a source is not told where its spec lives.
    pub path: String,
    /// How the files are encoded.
    pub format: Format,
    /// Warehouse table name, UPPER_SNAKE_CASE (e.g. `USER_LOOKUP`).
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub table: String,
    /// Stream name in state and `--stream` flags; defaults to the table name in lower case.
    #[serde(default)]
    pub stream: Option<String>,
    /// The columns, in table order. A CSV header must name each of them (case-insensitively),
    /// so a typo fails loudly instead of loading nulls; a key missing from a JSON line is null.
    #[schemars(length(min = 1))]
    pub columns: Vec<ColumnSpec>,
    /// Columns whose values, joined with `|` and MD5-hashed, make `_ROW_KEY` (the MERGE key).
    #[schemars(length(min = 1))]
    pub primary_key: Vec<String>,
    /// The partition the rows belong to, e.g. where the data comes from (`ldap`): the value
    /// of `_SOURCE_ORG` and of the `partition=` segment of staged paths.
    #[serde(default = "default_partition")]
    pub partition: String,
    /// What a row that does not parse does: fail the stream (naming file and line) or be
    /// counted, reported as a warning and skipped.
    #[serde(default)]
    pub on_bad_row: OnBadRow,
    /// CSV options (ignored for JSON Lines).
    #[serde(default)]
    pub csv: CsvOptions,
    /// Extra object-store settings (e.g. `aws_endpoint`, `aws_region`) on top of the
    /// `AWS_*` / `GOOGLE_*` environment variables.
    #[serde(default)]
    pub storage_options: BTreeMap<String, String>,
    /// Rows per Arrow batch handed to staging; bounds memory.
    #[serde(default = "default_batch_rows")]
    #[schemars(range(min = 1))]
    pub batch_rows: usize,
}

/// File encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma (or `csv.delimiter`) separated values.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// One declared column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Name in the file (CSV header or JSON key, case-insensitive); the warehouse column is
    /// its UPPER_SNAKE_CASE form.
    pub name: String,
    /// Value type; values that do not parse as it make the row bad.
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// Whether empty values are allowed (an empty CSV field or a missing/null JSON key).
    #[serde(default = "default_true")]
    pub nullable: bool,
    /// Description for docs and dbt sources.
    #[serde(default)]
    pub description: Option<String>,
}

/// Column value types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    Int64,
    Float64,
    Boolean,
    /// RFC 3339, or `YYYY-MM-DD HH:MM:SS[.f]` read as UTC.
    Timestamp,
    /// `YYYY-MM-DD`.
    Date,
}

/// Bad-row policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnBadRow {
    #[default]
    Fail,
    Skip,
}

/// CSV dialect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CsvOptions {
    /// One ASCII character.
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// Whether the first line names the columns. Without a header, fields are taken in the
    /// order of `columns`.
    #[serde(default = "default_true")]
    pub header: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: default_delimiter(),
            header: true,
        }
    }
}

fn default_partition() -> String {
    flowctl_core::simple::DEFAULT_PARTITION.into()
}
fn default_true() -> bool {
    true
}
fn default_delimiter() -> String {
    ",".into()
}
fn default_batch_rows() -> usize {
    10_000
}

impl FileConfig {
    pub fn from_value(value: serde_json::Value) -> Result<Self> {
        let cfg: FileConfig = serde_json::from_value(value)
            .map_err(|e| PluginError::config(format!("file source: {e}")))?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Checks the schema cannot express.
    pub fn check(&self) -> Result<()> {
        self.delimiter_byte()?;
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.columns {
            if !seen.insert(c.name.to_ascii_uppercase()) {
                return Err(PluginError::config(format!(
                    "file source: column `{}` is declared twice",
                    c.name
                )));
            }
        }
        for k in &self.primary_key {
            if !seen.contains(&k.to_ascii_uppercase()) {
                return Err(PluginError::config(format!(
                    "file source: primary_key `{k}` is not one of the declared columns"
                )));
            }
        }
        if self.batch_rows == 0 {
            return Err(PluginError::config(
                "file source: batch_rows must be at least 1",
            ));
        }
        Ok(())
    }

    pub fn stream_name(&self) -> String {
        self.stream
            .clone()
            .unwrap_or_else(|| self.table.to_ascii_lowercase())
    }

    pub fn table_name(&self) -> String {
        self.table.to_ascii_uppercase()
    }

    pub fn delimiter_byte(&self) -> Result<u8> {
        match self.csv.delimiter.as_bytes() {
            [b] if b.is_ascii() => Ok(*b),
            _ if self.csv.delimiter == "\\t" => Ok(b'\t'),
            _ => Err(PluginError::config(format!(
                "file source: csv.delimiter must be one ASCII character, got {:?}",
                self.csv.delimiter
            ))),
        }
    }

    /// Indexes of the primary-key columns in `columns`.
    pub fn key_indexes(&self) -> Vec<usize> {
        self.primary_key
            .iter()
            .filter_map(|k| {
                self.columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(k))
            })
            .collect()
    }
}
