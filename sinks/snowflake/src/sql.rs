//! SQL rendering. Every identifier is validated and double-quoted, every value is a
//! string literal escaped here: nothing from a spec or from source data reaches SQL raw.

use arrow::datatypes::{DataType, Field, Schema};
use flowctl_core::meta::{INGESTED_AT, RAW, ROW_KEY};
use flowctl_core::{PluginError, Result, TableSpec};

/// Snowflake caps the FILES list of one COPY at 1,000 names.
pub const MAX_FILES_PER_COPY: usize = 1000;

/// A validated identifier, kept as the name Snowflake stores (what SHOW lists) and rendered
/// double-quoted, so SQL and the SQL API's case-sensitive request fields always agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident(String);

impl Ident {
    /// An exact-case name of flowctl's own (tables and columns, UPPER_SNAKE_CASE):
    /// `[A-Za-z_][A-Za-z0-9_$]*`, case kept.
    pub fn new(name: &str, what: &str) -> Result<Self> {
        if is_plain(name) {
            Ok(Ident(name.to_string()))
        } else {
            Err(PluginError::config(format!(
                "{what} {name:?} is not a valid Snowflake identifier (expected letters, digits, _ or $, not starting with a digit)"
            )))
        }
    }

    /// A name from a spec, read the way Snowflake reads an identifier: a plain name
    /// (`github_pipelines`) means its upper-case form (`GITHUB_PIPELINES`); a name in double
    /// quotes (`"MixedCase"`, `""` for a quote inside) means exactly that text.
    pub fn from_spec(name: &str, what: &str) -> Result<Self> {
        if let Some(inner) = name.strip_prefix('"') {
            let bad = |why: &str| {
                PluginError::config(format!(
                    "{what} `{name}`: {why} (a quoted Snowflake identifier is \"Name\", with \"\" for a quote inside)"
                ))
            };
            let inner = inner
                .strip_suffix('"')
                .ok_or_else(|| bad("the closing double quote is missing"))?;
            if inner.replace("\"\"", "").contains('"') {
                return Err(bad("a double quote inside must be doubled"));
            }
            let exact = inner.replace("\"\"", "\"");
            if exact.is_empty() || exact.len() > 255 || exact.chars().any(char::is_control) {
                return Err(bad("expected 1 to 255 printable characters"));
            }
            return Ok(Ident(exact));
        }
        if is_plain(name) {
            Ok(Ident(name.to_ascii_uppercase()))
        } else {
            Err(PluginError::config(format!(
                "{what} `{name}` is not a valid Snowflake identifier: a plain name has letters, digits, _ or $ and does not start with a digit (it means its upper-case form); put any other name in double quotes, e.g. '\"{name}\"', for exactly that text"
            )))
        }
    }

    /// The name as Snowflake stores it (for the SQL API's case-sensitive fields and
    /// INFORMATION_SCHEMA lookups).
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// `"NAME"`, quotes inside doubled.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0.replace('"', "\"\""))
    }
    /// The shortest form that means this name: unquoted when it is upper case and plain,
    /// quoted otherwise (for statements shown to people, such as a GRANT to run).
    pub fn display(&self) -> String {
        if is_plain(&self.0) && !self.0.chars().any(|c| c.is_ascii_lowercase()) {
            self.0.clone()
        } else {
            self.quoted()
        }
    }
}

fn is_plain(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// Split `a.b."c.d"` into its parts, dots inside double quotes kept (each part is then
/// read by [`Ident::from_spec`]).
pub fn split_qualified(name: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in name.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => {
                parts.push(&name[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&name[start..]);
    parts
}

/// A single-quoted string literal: quotes doubled and backslashes escaped (Snowflake
/// treats `\` as an escape character inside single-quoted strings).
pub fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

/// A fully qualified table or stage name, `"DB"."SCHEMA"."NAME"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qualified {
    pub database: Ident,
    pub schema: Ident,
    pub name: Ident,
}

impl Qualified {
    /// `DB.SCHEMA.NAME` in the shortest form that means it (see [`Ident::display`]).
    pub fn display(&self) -> String {
        format!(
            "{}.{}.{}",
            self.database.display(),
            self.schema.display(),
            self.name.display()
        )
    }
    pub fn quoted(&self) -> String {
        format!(
            "{}.{}.{}",
            self.database.quoted(),
            self.schema.quoted(),
            self.name.quoted()
        )
    }
}

/// Snowflake column type for an Arrow field (the documented type map).
pub fn column_type(field: &Field) -> Result<&'static str> {
    if field.name() == RAW {
        return Ok("VARIANT");
    }
    Ok(match field.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "VARCHAR",
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => "NUMBER(38,0)",
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "FLOAT",
        DataType::Boolean => "BOOLEAN",
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP_TZ",
        DataType::Timestamp(_, None) => "TIMESTAMP_NTZ",
        DataType::Date32 | DataType::Date64 => "DATE",
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => "ARRAY",
        DataType::Struct(_) | DataType::Map(_, _) => "OBJECT",
        DataType::Binary | DataType::LargeBinary => "BINARY",
        other => {
            return Err(PluginError::other(format!(
                "column {}: Arrow type {other} has no Snowflake mapping",
                field.name()
            )))
        }
    })
}

/// Type of a column in `<TABLE>_STAGE`. `_RAW` arrives in Parquet as JSON text; COPY with
/// MATCH_BY_COLUMN_NAME would store it as a VARIANT *string*, so the staging table keeps
/// it as VARCHAR and the MERGE parses it into the target's VARIANT.
pub fn stage_column_type(field: &Field) -> Result<&'static str> {
    if field.name() == RAW {
        return Ok("VARCHAR");
    }
    column_type(field)
}

/// Names and quoting of one table and its staging twin.
#[derive(Debug, Clone)]
pub struct TableNames {
    pub target: Qualified,
    pub stage: Qualified,
}

impl TableNames {
    /// `database` and `schema` as a spec gives them ([`Ident::from_spec`]); `table` exact.
    pub fn new(database: &str, schema: &str, table: &str) -> Result<Self> {
        let database = Ident::from_spec(database, "database")?;
        let schema = Ident::from_spec(schema, "schema")?;
        Ok(TableNames {
            target: Qualified {
                database: database.clone(),
                schema: schema.clone(),
                name: Ident::new(table, "table")?,
            },
            stage: Qualified {
                database,
                schema,
                name: Ident::new(&format!("{table}_STAGE"), "table")?,
            },
        })
    }
}

fn columns(schema: &Schema) -> Result<Vec<(Ident, &Field)>> {
    schema
        .fields()
        .iter()
        .map(|f| Ok((Ident::new(f.name(), "column")?, f.as_ref())))
        .collect()
}

fn create_table(name: &Qualified, schema: &Schema, stage: bool) -> Result<String> {
    let mut cols = Vec::new();
    for (ident, field) in columns(schema)? {
        let ty = if stage {
            stage_column_type(field)?
        } else {
            column_type(field)?
        };
        cols.push(format!("  {} {ty}", ident.quoted()));
    }
    Ok(format!(
        "CREATE TABLE IF NOT EXISTS {} (\n{}\n)",
        name.quoted(),
        cols.join(",\n")
    ))
}

/// CREATE TABLE IF NOT EXISTS for the target.
pub fn create_target(names: &TableNames, schema: &Schema) -> Result<String> {
    create_table(&names.target, schema, false)
}

/// CREATE TABLE IF NOT EXISTS for `<TABLE>_STAGE`.
pub fn create_stage_table(names: &TableNames, schema: &Schema) -> Result<String> {
    create_table(&names.stage, schema, true)
}

/// The columns both tables have in common with the warehouse, read back from
/// INFORMATION_SCHEMA (one query for both tables).
pub fn existing_columns(names: &TableNames) -> String {
    format!(
        "SELECT TABLE_NAME, COLUMN_NAME FROM {}.INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = {} AND TABLE_NAME IN ({}, {})",
        names.target.database.quoted(),
        literal(names.target.schema.as_str()),
        literal(names.target.name.as_str()),
        literal(names.stage.name.as_str()),
    )
}

/// ALTER TABLE ... ADD COLUMN for a column new in the schema. Never drops.
pub fn add_column(table: &Qualified, field: &Field, stage: bool) -> Result<String> {
    let ty = if stage {
        stage_column_type(field)?
    } else {
        column_type(field)?
    };
    Ok(format!(
        "ALTER TABLE {} ADD COLUMN {} {ty}",
        table.quoted(),
        Ident::new(field.name(), "column")?.quoted()
    ))
}

/// The stage reference of COPY: `@"DB"."SCHEMA"."STAGE"`.
pub fn stage_ref(stage: &Qualified) -> String {
    format!("@{}", stage.quoted())
}

/// CREATE STAGE over the staging root, for specs that give `storage_integration` but no
/// stage. `root_uri` is the staging root (`gs://` is spelled `gcs://` in Snowflake).
pub fn create_stage(stage: &Qualified, root_uri: &str, integration: &Ident) -> Result<String> {
    let url = if let Some(rest) = root_uri.strip_prefix("gs://") {
        format!("gcs://{rest}")
    } else if root_uri.starts_with("s3://") || root_uri.starts_with("gcs://") {
        root_uri.to_string()
    } else {
        return Err(PluginError::config(format!(
            "snowflake: staging root {root_uri} cannot back a Snowflake stage; use s3 or gcs staging"
        )));
    };
    let url = if url.ends_with('/') {
        url
    } else {
        format!("{url}/")
    };
    Ok(format!(
        "CREATE STAGE IF NOT EXISTS {} URL={} STORAGE_INTEGRATION={}",
        stage.quoted(),
        literal(&url),
        integration.quoted()
    ))
}

/// COPY INTO the staging table, naming exactly this run's files (relative to the stage).
/// FORCE=TRUE: after a crash or a retry between COPY and the end of the load the same
/// files must load again, and Snowflake's load history would otherwise skip them. Reloading
/// is safe: the MERGE keeps the newest row per key and applies only strictly newer rows.
pub fn copy_into(names: &TableNames, stage: &Qualified, files: &[&str]) -> String {
    let list: Vec<String> = files.iter().map(|f| literal(f)).collect();
    format!(
        "COPY INTO {} FROM {} FILES=({}) FILE_FORMAT=(TYPE=PARQUET USE_LOGICAL_TYPE=TRUE) MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE FORCE=TRUE",
        names.stage.quoted(),
        stage_ref(stage),
        list.join(", ")
    )
}

/// MERGE the staged rows, deduplicated to the newest `_INGESTED_AT` per `_ROW_KEY`, into
/// the target; a matched row is updated only when the staged version is strictly newer.
pub fn merge(names: &TableNames, schema: &Schema) -> Result<String> {
    let cols = columns(schema)?;
    for required in [ROW_KEY, INGESTED_AT] {
        if !cols.iter().any(|(c, _)| c.as_str() == required) {
            return Err(PluginError::other(format!(
                "table {}: schema has no {required} column, which MERGE needs",
                names.target.name.as_str()
            )));
        }
    }
    let key = Ident::new(ROW_KEY, "column")?.quoted();
    let at = Ident::new(INGESTED_AT, "column")?.quoted();
    let names_list: Vec<String> = cols.iter().map(|(c, _)| c.quoted()).collect();
    // _RAW is parsed inside the USING query, so the MERGE clauses move plain columns.
    let select: Vec<String> = cols
        .iter()
        .map(|(c, f)| {
            if f.name() == RAW {
                format!("PARSE_JSON({0}) AS {0}", c.quoted())
            } else {
                c.quoted()
            }
        })
        .collect();
    let sets: Vec<String> = names_list.iter().map(|c| format!("{c} = s.{c}")).collect();
    let values: Vec<String> = names_list.iter().map(|c| format!("s.{c}")).collect();
    // Two versions of one key in one run share `_INGESTED_AT`; the source's own
    // UPDATED_AT, when the table has one, decides which is newer.
    let tie = if cols.iter().any(|(_, f)| f.name() == "UPDATED_AT") {
        ", \"UPDATED_AT\" DESC NULLS LAST"
    } else {
        ""
    };
    Ok(format!(
        "MERGE INTO {target} AS t\nUSING (\n  SELECT {select} FROM {stage}\n  QUALIFY ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY {at} DESC{tie}) = 1\n) AS s\nON t.{key} = s.{key}\nWHEN MATCHED AND s.{at} > t.{at} THEN UPDATE SET {sets}\nWHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})",
        target = names.target.quoted(),
        stage = names.stage.quoted(),
        select = select.join(", "),
        names = names_list.join(", "),
        sets = sets.join(", "),
        values = values.join(", "),
    ))
}

/// TRUNCATE TABLE `<TABLE>_STAGE`.
pub fn truncate_stage(names: &TableNames) -> String {
    format!("TRUNCATE TABLE {}", names.stage.quoted())
}

/// The CREATE TABLE IF NOT EXISTS DDL of every table and its staging twin (for
/// `flowctl sql raw-tables` and sql/raw_tables.sql).
pub fn try_raw_tables_sql(tables: &[TableSpec], database: &str, schema: &str) -> Result<String> {
    let mut out = String::from(
        "-- Generated by `flowctl sql raw-tables`: do not edit by hand.\n-- Raw tables and their <TABLE>_STAGE twins (COPY target, truncated after every MERGE).\n",
    );
    for t in tables {
        let names = TableNames::new(database, schema, &t.name)?;
        out.push_str(&format!("\n{};\n", create_target(&names, &t.schema)?));
        out.push_str(&format!("\n{};\n", create_stage_table(&names, &t.schema)?));
    }
    Ok(out)
}
