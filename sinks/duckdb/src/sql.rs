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

/// Quoted, validated names of one table. (DuckDB merges straight from the staged files,
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

/// The MERGE needs both; a schema without them is a source bug, caught before any SQL.
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

/// MERGE one slice of staged rows (`source`, see [`slice_source`]), deduplicated to
/// the newest `_INGESTED_AT` per `_ROW_KEY` (DuckDB's MERGE, like Snowflake's, rejects
/// duplicate source keys). A row is updated only when the staged version is strictly
/// newer: a later `_INGESTED_AT`, or the same one (two versions of a key in one run,
/// possibly in different slices) and a later `UPDATED_AT` when the table has one. So
/// re-loading changes nothing, and slices give the result of one MERGE in any order.
/// `RETURNING merge_action` (DuckDB >= 1.4) yields one row per changed row, from which
/// the loader counts inserts and updates.
pub fn merge(names: &TableNames, columns: &[(String, String)], source: &str) -> String {
    let key = format!("\"{ROW_KEY}\"");
    let ts = format!("\"{INGESTED_AT}\"");
    // The key is equal on both sides of a match, so it is not in the SET list.
    let set: Vec<String> = columns
        .iter()
        .filter(|(c, _)| *c != key)
        .map(|(c, _)| format!("{c} = s.{c}"))
        .collect();
    let cols: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
    let vals: Vec<String> = cols.iter().map(|c| format!("s.{c}")).collect();
    let has_updated_at = cols.contains(&"\"UPDATED_AT\"");
    let (tie, newer) = if has_updated_at {
        (
            ", \"UPDATED_AT\" DESC NULLS LAST",
            format!(
                "(s.{ts} > t.{ts} OR (s.{ts} = t.{ts} AND s.\"UPDATED_AT\" > t.\"UPDATED_AT\"))"
            ),
        )
    } else {
        ("", format!("s.{ts} > t.{ts}"))
    };
    format!(
        "MERGE INTO {target} AS t\n\
         USING (\n    SELECT * FROM (\n    {source}\n    )\n    QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {ts} DESC{tie}) = 1\n) AS s\n\
         ON t.{key} = s.{key}\n\
         WHEN MATCHED AND {newer} THEN UPDATE SET\n    {set}\n\
         WHEN NOT MATCHED THEN INSERT ({cols})\n    VALUES ({vals})\n\
         RETURNING merge_action",
        target = names.target,
        set = set.join(",\n    "),
        cols = cols.join(", "),
        vals = vals.join(", "),
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
    fn merge_breaks_same_run_ties_on_updated_at_and_fills_missing_columns() {
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
        let m = merge(&names, &cols, &src);
        assert!(
            m.contains(
                "s.\"_INGESTED_AT\" = t.\"_INGESTED_AT\" AND s.\"UPDATED_AT\" > t.\"UPDATED_AT\""
            ),
            "{m}"
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
