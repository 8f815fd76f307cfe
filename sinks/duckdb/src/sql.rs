//! SQL rendering for the DuckDB loader: pure functions, golden-tested.
//!
//! Every identifier goes through [`ident`] (validated, then double-quoted) and every
//! file path through [`string_literal`] (single quotes doubled), so nothing from a spec
//! or from staged data is spliced into SQL raw.

use arrow::datatypes::{DataType, Field, Schema};
use flowctl_core::meta::{INGESTED_AT, ROW_KEY};
use flowctl_core::{PluginError, Result};

/// Suffix of the staging table next to every target table.
pub const STAGE_SUFFIX: &str = "_STAGE";

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

/// Quoted, validated names of one table and its staging table.
#[derive(Debug, Clone)]
pub struct TableNames {
    pub schema: String,
    pub target: String,
    pub stage: String,
    /// Unquoted names, for catalog lookups.
    pub schema_raw: String,
    pub target_raw: String,
    pub stage_raw: String,
}

impl TableNames {
    pub fn new(schema: &str, table: &str) -> Result<Self> {
        let q_schema = ident(schema, "schema")?;
        let stage_raw = format!("{table}{STAGE_SUFFIX}");
        Ok(Self {
            target: format!("{q_schema}.{}", ident(table, "table")?),
            stage: format!("{q_schema}.{}", ident(&stage_raw, "table")?),
            schema: q_schema,
            schema_raw: schema.to_string(),
            target_raw: table.to_string(),
            stage_raw,
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

/// Copy this run's files into the staging table. `BY NAME` matches columns by name like
/// Snowflake's MATCH_BY_COLUMN_NAME; `union_by_name` lets files written before a column
/// was added load alongside newer ones (the missing column is NULL). Hive partitioning
/// is switched off: DuckDB would otherwise add `org` and `date` columns from the
/// `org=.../date=...` path segments, which the tables do not have.
pub fn copy_into_stage(names: &TableNames, paths: &[String]) -> String {
    let list: Vec<String> = paths.iter().map(|p| string_literal(p)).collect();
    format!(
        "INSERT INTO {} BY NAME SELECT * FROM read_parquet([{}], union_by_name = true, hive_partitioning = false)",
        names.stage,
        list.join(", ")
    )
}

/// MERGE the staged rows, deduplicated to the newest `_INGESTED_AT` per `_ROW_KEY`
/// (DuckDB's MERGE, like Snowflake's, rejects duplicate source keys), updating a row
/// only when the staged version is strictly newer, so re-loading changes nothing.
/// `RETURNING merge_action` (DuckDB >= 1.4) yields one row per changed row, from which
/// the loader counts inserts and updates.
pub fn merge(names: &TableNames, columns: &[(String, String)]) -> String {
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
    // Two versions of one key in one run share `_INGESTED_AT`; the source's own
    // UPDATED_AT, when the table has one, decides which is newer.
    let tie = if cols.contains(&"\"UPDATED_AT\"") {
        ", \"UPDATED_AT\" DESC NULLS LAST"
    } else {
        ""
    };
    format!(
        "MERGE INTO {target} AS t\n\
         USING (\n    SELECT * FROM {stage}\n    QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {ts} DESC{tie}) = 1\n) AS s\n\
         ON t.{key} = s.{key}\n\
         WHEN MATCHED AND s.{ts} > t.{ts} THEN UPDATE SET\n    {set}\n\
         WHEN NOT MATCHED THEN INSERT ({cols})\n    VALUES ({vals})\n\
         RETURNING merge_action",
        target = names.target,
        stage = names.stage,
        set = set.join(",\n    "),
        cols = cols.join(", "),
        vals = vals.join(", "),
    )
}

/// DuckDB's TRUNCATE is an alias of DELETE FROM; DELETE keeps it transactional everywhere.
pub fn empty_stage(names: &TableNames) -> String {
    format!("DELETE FROM {}", names.stage)
}

pub fn count_rows(qualified: &str) -> String {
    format!("SELECT count(*) FROM {qualified}")
}

/// Columns of a table, looked up with bound parameters.
pub const EXISTING_COLUMNS: &str = "SELECT column_name FROM information_schema.columns \
     WHERE table_schema = ? AND table_name = ?";

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
