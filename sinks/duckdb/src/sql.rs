//! SQL rendering for the DuckDB loader: pure functions, golden-tested.
//!
//! Every identifier goes through [`ident`] (validated, then double-quoted) and every
//! file path through [`string_literal`] (single quotes doubled), so nothing from a spec
//! or from staged data is spliced into SQL raw.

use arrow::datatypes::{DataType, Field, Schema};
use flowctl_core::meta::{INGESTED_AT, ROW_KEY};
use flowctl_core::{PluginError, Result};
use std::collections::HashSet;

/// Whether `name` is a plain identifier (`[A-Za-z_][A-Za-z0-9_]*`). Anything else is
/// rejected rather than escaped: table and column names come from our own schemas, so
/// an odd one is a bug or an attack, never a real need.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `name` double-quoted, after validation. `what` names the thing in the error.
pub fn ident(name: &str, what: &str) -> Result<String> {
    if is_identifier(name) {
        Ok(format!("\"{name}\""))
    } else {
        Err(PluginError::config(format!(
            "{what} {name:?} is not a valid identifier: expected [A-Za-z_][A-Za-z0-9_]*"
        )))
    }
}

/// A SQL string literal with single quotes doubled.
pub fn string_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// DuckDB column type for an Arrow field. The map (also in the README):
///
/// | Arrow                         | DuckDB        |
/// |-------------------------------|---------------|
/// | Utf8, LargeUtf8, Utf8View     | VARCHAR       |
/// | `_RAW` (Utf8)                 | VARCHAR (query with `_RAW::JSON`; storing JSON would parse every document again on load) |
/// | Int8/16/32/64                 | TINYINT/SMALLINT/INTEGER/BIGINT |
/// | UInt8/16/32/64                | UTINYINT/USMALLINT/UINTEGER/UBIGINT |
/// | Float32, Float64              | FLOAT, DOUBLE |
/// | Boolean                       | BOOLEAN       |
/// | Timestamp(_, Some(tz))        | TIMESTAMPTZ   |
/// | Timestamp(_, None)            | TIMESTAMP     |
/// | Date32, Date64                | DATE          |
/// | Decimal128(p, s), p <= 38     | DECIMAL(p,s)  |
/// | Binary, LargeBinary           | BLOB          |
/// | List<T>, LargeList<T>         | T[]           |
pub fn column_type(field: &Field) -> Result<String> {
    arrow_type(field.data_type()).ok_or_else(|| {
        PluginError::config(format!(
            "column {:?}: Arrow type {} has no DuckDB mapping",
            field.name(),
            field.data_type()
        ))
    })
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn arrow_type(t: &DataType) -> Option<String> {
    let simple = match t {
        t if is_string(t) => "VARCHAR",
        DataType::Int8 => "TINYINT",
        DataType::Int16 => "SMALLINT",
        DataType::Int32 => "INTEGER",
        DataType::Int64 => "BIGINT",
        DataType::UInt8 => "UTINYINT",
        DataType::UInt16 => "USMALLINT",
        DataType::UInt32 => "UINTEGER",
        DataType::UInt64 => "UBIGINT",
        DataType::Float32 => "FLOAT",
        DataType::Float64 => "DOUBLE",
        DataType::Boolean => "BOOLEAN",
        DataType::Timestamp(_, Some(_)) => "TIMESTAMPTZ",
        DataType::Timestamp(_, None) => "TIMESTAMP",
        DataType::Date32 | DataType::Date64 => "DATE",
        DataType::Binary | DataType::LargeBinary => "BLOB",
        DataType::Decimal128(p, s) if *p <= 38 => return Some(format!("DECIMAL({p},{s})")),
        DataType::List(item) | DataType::LargeList(item) => {
            return arrow_type(item.data_type()).map(|inner| format!("{inner}[]"))
        }
        _ => return None,
    };
    Some(simple.to_string())
}

/// Quoted, validated names of one table. (DuckDB loads straight from the staged files,
/// so unlike Snowflake it needs no `<TABLE>_STAGE` table.)
#[derive(Debug, Clone)]
pub struct TableNames {
    pub schema: String,
    pub target: String,
    /// Unquoted names, for catalog lookups.
    pub schema_raw: String,
    pub target_raw: String,
}

impl TableNames {
    pub fn new(schema: &str, table: &str) -> Result<Self> {
        let q_schema = ident(schema, "schema")?;
        Ok(Self {
            target: format!("{q_schema}.{}", ident(table, "table")?),
            schema: q_schema,
            schema_raw: schema.to_string(),
            target_raw: table.to_string(),
        })
    }
}

/// `"NAME" TYPE` for every field, validated.
pub fn column_defs(schema: &Schema) -> Result<Vec<(String, String)>> {
    require_metadata(schema)?;
    schema
        .fields()
        .iter()
        .map(|f| Ok((ident(f.name(), "column")?, column_type(f)?)))
        .collect()
}

/// The load needs both; a schema without them is a source bug, caught before any SQL.
fn require_metadata(schema: &Schema) -> Result<()> {
    for col in [ROW_KEY, INGESTED_AT] {
        if schema.field_with_name(col).is_err() {
            return Err(PluginError::config(format!(
                "table schema has no {col} column; every loaded table needs {ROW_KEY} and {INGESTED_AT}"
            )));
        }
    }
    Ok(())
}

pub fn create_schema(names: &TableNames) -> String {
    format!("CREATE SCHEMA IF NOT EXISTS {}", names.schema)
}

pub fn create_table(qualified: &str, columns: &[(String, String)]) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|(n, t)| format!("    {n} {t}"))
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {qualified} (\n{}\n)",
        cols.join(",\n")
    )
}

pub fn add_column(qualified: &str, name: &str, ty: &str) -> String {
    format!("ALTER TABLE {qualified} ADD COLUMN IF NOT EXISTS {name} {ty}")
}

/// One staged file's share of a slice: its path, the columns its footer lists
/// (upper-cased) and, unless the slice takes the whole file, the `file_row_number`
/// range `[start, end)`.
pub struct FileRead<'a> {
    pub path: &'a str,
    pub columns: &'a HashSet<String>,
    pub rows: Option<(i64, i64)>,
}

/// The rows of one slice with exactly the table's columns, in the table's order. A
/// column a file lacks (written before the column was added) reads as NULL, like
/// Snowflake's MATCH_BY_COLUMN_NAME; columns the table lacks are not read. Hive
/// partitioning is switched off: DuckDB would otherwise add `org` and `date` columns
/// from the `org=.../date=...` path segments. A row range filters on
/// `file_row_number`, which DuckDB uses to skip whole row groups.
pub fn slice_source(columns: &[(String, String)], reads: &[FileRead<'_>]) -> String {
    let selects: Vec<String> = reads
        .iter()
        .map(|r| {
            let cols: Vec<String> = columns
                .iter()
                .map(|(name, ty)| {
                    if r.columns
                        .contains(&name.trim_matches('"').to_ascii_uppercase())
                    {
                        name.clone()
                    } else {
                        format!("CAST(NULL AS {ty}) AS {name}")
                    }
                })
                .collect();
            let (numbered, filter) = match r.rows {
                Some((a, b)) => (
                    ", file_row_number = true",
                    format!(" WHERE file_row_number >= {a} AND file_row_number < {b}"),
                ),
                None => ("", String::new()),
            };
            format!(
                "SELECT {} FROM read_parquet({}, hive_partitioning = false{numbered}){filter}",
                cols.join(", "),
                string_literal(r.path)
            )
        })
        .collect();
    selects.join("\n    UNION ALL ")
}

/// The columns a load's deduplication reads: `_ROW_KEY`, `_INGESTED_AT` and, when the
/// table has it, `UPDATED_AT` (the tie-break within one run).
pub fn key_columns(columns: &[(String, String)]) -> Vec<(String, String)> {
    let wanted = [
        format!("\"{ROW_KEY}\""),
        format!("\"{INGESTED_AT}\""),
        "\"UPDATED_AT\"".to_string(),
    ];
    columns
        .iter()
        .filter(|(c, _)| wanted.contains(c))
        .cloned()
        .collect()
}

fn has_updated_at(columns: &[(String, String)]) -> bool {
    columns.iter().any(|(c, _)| c == "\"UPDATED_AT\"")
}

/// The version order of a key: newest `_INGESTED_AT` first, then (two versions in one
/// run) the later `UPDATED_AT`, a known one before an unknown one.
fn version_order(columns: &[(String, String)]) -> String {
    let ts = format!("\"{INGESTED_AT}\"");
    if has_updated_at(columns) {
        format!("{ts} DESC, \"UPDATED_AT\" DESC NULLS LAST")
    } else {
        format!("{ts} DESC")
    }
}

/// A load is three statements in one transaction, with the same result as Snowflake's
/// deduplicating MERGE (newest version of each `_ROW_KEY` wins; a staged row replaces a
/// table row only when strictly newer, so re-loading changes nothing):
///
/// 1. [`delete_superseded`]: delete the table rows a staged row is strictly newer than
///    (reads only the key columns of the staged files);
/// 2. [`insert_staged`]: append every staged row;
/// 3. [`delete_losers`]: of each staged key, keep only the first row in version order
///    (ties: the lowest `rowid`, so a row already in the table beats an equal re-load).
///
/// Why not `MERGE`: DuckDB materialises the whole source of a statement that also reads
/// its target (MERGE always does), so a MERGE of 20,000 pull requests with `_RAW` does not
/// fit in 128MB; a plain INSERT streams, its rows written out row group by row group.
///
/// After step 1 every table row left for a staged key is at least as new as all of its
/// staged versions, so step 3 deletes staged rows only: step 1's count is the rows
/// updated, and staged − step 1 − step 3 the rows inserted.
pub fn delete_superseded(names: &TableNames, columns: &[(String, String)], keys: &str) -> String {
    let key = format!("\"{ROW_KEY}\"");
    let ts = format!("\"{INGESTED_AT}\"");
    let newer = if has_updated_at(columns) {
        format!(
            "(s.{ts} > t.{ts} OR (s.{ts} = t.{ts} AND s.\"UPDATED_AT\" IS NOT NULL \
             AND (t.\"UPDATED_AT\" IS NULL OR s.\"UPDATED_AT\" > t.\"UPDATED_AT\")))"
        )
    } else {
        format!("s.{ts} > t.{ts}")
    };
    format!(
        "DELETE FROM {target} AS t\n\
         WHERE EXISTS (\n    SELECT 1 FROM (\n    {keys}\n    ) AS s\n    \
         WHERE s.{key} = t.{key} AND {newer}\n)",
        target = names.target,
    )
}

/// Step 2 of a load (see [`delete_superseded`]): every staged row, appended.
pub fn insert_staged(names: &TableNames, columns: &[(String, String)], source: &str) -> String {
    let cols: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
    format!(
        "INSERT INTO {target} ({cols})\nSELECT {cols} FROM (\n    {source}\n)",
        target = names.target,
        cols = cols.join(", "),
    )
}

/// Step 3 of a load (see [`delete_superseded`]): all but the newest row of each staged key.
pub fn delete_losers(names: &TableNames, columns: &[(String, String)], keys: &str) -> String {
    let key = format!("\"{ROW_KEY}\"");
    format!(
        "DELETE FROM {target}\n\
         WHERE rowid IN (\n    SELECT rowid FROM {target}\n    \
         WHERE {key} IN (SELECT {key} FROM (\n    {keys}\n    ))\n    \
         QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {order}, rowid) > 1\n)",
        target = names.target,
        order = version_order(columns),
    )
}

pub fn count_rows(qualified: &str) -> String {
    format!("SELECT count(*) FROM {qualified}")
}

/// Columns of a table, looked up with bound parameters.
pub const EXISTING_COLUMNS: &str = "SELECT column_name FROM information_schema.columns \
     WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ?";

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, TimeUnit};
    use std::sync::Arc;

    #[test]
    fn identifiers_are_validated_and_quoted() {
        assert_eq!(ident("PULL_REQUEST", "table").unwrap(), "\"PULL_REQUEST\"");
        assert_eq!(ident("_x1", "column").unwrap(), "\"_x1\"");
        for bad in ["", "1A", "A\"B", "A B", "A;DROP", "Ä", "a-b", "A'"] {
            let err = ident(bad, "table").unwrap_err().to_string();
            assert!(err.contains("not a valid identifier"), "{bad}: {err}");
        }
    }

    #[test]
    fn load_breaks_same_run_ties_on_updated_at_and_fills_missing_columns() {
        let names = TableNames::new("RAW_TABLES", "PULL_REQUEST").unwrap();
        let cols: Vec<(String, String)> = ["ID", "UPDATED_AT", "_ROW_KEY", "_INGESTED_AT"]
            .iter()
            .map(|c| (format!("\"{c}\""), "VARCHAR".to_string()))
            .collect();
        let have: HashSet<String> = ["ID", "_ROW_KEY", "_INGESTED_AT"]
            .iter()
            .map(|c| c.to_string())
            .collect();
        let src = slice_source(
            &cols,
            &[FileRead {
                path: "/s/a'b.parquet",
                columns: &have,
                rows: Some((10, 20)),
            }],
        );
        assert!(
            src.contains("CAST(NULL AS VARCHAR) AS \"UPDATED_AT\""),
            "{src}"
        );
        assert!(src.contains("'/s/a''b.parquet'"), "{src}");
        assert!(
            src.contains("file_row_number >= 10 AND file_row_number < 20"),
            "{src}"
        );
        let keys = slice_source(
            &key_columns(&cols),
            &[FileRead {
                path: "/s/x.parquet",
                columns: &have,
                rows: None,
            }],
        );
        assert!(
            keys.contains("CAST(NULL AS VARCHAR) AS \"UPDATED_AT\"") && !keys.contains("\"ID\""),
            "{keys}"
        );
        let d = delete_superseded(&names, &cols, &keys);
        assert!(
            d.contains("s.\"_INGESTED_AT\" = t.\"_INGESTED_AT\" AND s.\"UPDATED_AT\" IS NOT NULL"),
            "{d}"
        );
        let l = delete_losers(&names, &cols, &keys);
        assert!(
            l.contains(
                "ORDER BY \"_INGESTED_AT\" DESC, \"UPDATED_AT\" DESC NULLS LAST, rowid) > 1"
            ),
            "{l}"
        );
    }

    #[test]
    fn string_literal_doubles_quotes() {
        assert_eq!(
            string_literal("/tmp/o'brien/x.parquet"),
            "'/tmp/o''brien/x.parquet'"
        );
    }

    #[test]
    fn type_map() {
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let list = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
        let cases = [
            (Field::new("a", DataType::Utf8, true), "VARCHAR"),
            (Field::new("_RAW", DataType::Utf8, true), "VARCHAR"),
            (Field::new("a", DataType::Int64, true), "BIGINT"),
            (Field::new("a", DataType::Int32, true), "INTEGER"),
            (Field::new("a", DataType::Float64, true), "DOUBLE"),
            (Field::new("a", DataType::Boolean, true), "BOOLEAN"),
            (Field::new("a", utc, true), "TIMESTAMPTZ"),
            (Field::new("a", DataType::Date32, true), "DATE"),
            (Field::new("a", list, true), "VARCHAR[]"),
            (
                Field::new("a", DataType::Decimal128(38, 2), true),
                "DECIMAL(38,2)",
            ),
        ];
        for (field, want) in cases {
            assert_eq!(column_type(&field).unwrap(), want, "{field:?}");
        }
        let err = column_type(&Field::new("m", DataType::Duration(TimeUnit::Second), true))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"m\"") && err.contains("no DuckDB mapping"),
            "{err}"
        );
    }
}
