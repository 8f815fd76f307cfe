//! Typed cells parsed from CSV text or JSON values, and their canonical text for `_ROW_KEY`.
//!
//! CSV `42` and JSON `42` (or `"42"`) give the same cell, hence the same row key: the key is
//! computed from the parsed value, not the raw text.

use crate::config::ColumnType;
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde_json::Value;

/// One parsed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Microseconds since the epoch, UTC.
    Ts(i64),
    /// Days since the epoch.
    Date(i32),
}

impl Cell {
    /// Canonical text, used in `_ROW_KEY`.
    pub fn key_text(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Str(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => f.to_string(),
            Cell::Bool(b) => b.to_string(),
            Cell::Ts(us) => DateTime::<Utc>::from_timestamp_micros(*us)
                .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                .unwrap_or_default(),
            Cell::Date(d) => epoch()
                .checked_add_signed(chrono::Duration::days(i64::from(*d)))
                .map(|d| d.to_string())
                .unwrap_or_default(),
        }
    }
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

/// Parses CSV text as `kind`. An empty field is null.
pub fn parse_text(text: &str, kind: ColumnType) -> Result<Cell, String> {
    if text.is_empty() {
        return Ok(Cell::Null);
    }
    let t = text.trim();
    match kind {
        ColumnType::String => Ok(Cell::Str(text.to_string())),
        ColumnType::Int64 => t
            .parse::<i64>()
            .map(Cell::Int)
            .map_err(|_| format!("expected an integer, got {text:?}")),
        ColumnType::Float64 => t
            .parse::<f64>()
            .map(Cell::Float)
            .map_err(|_| format!("expected a number, got {text:?}")),
        ColumnType::Boolean => parse_bool(t),
        ColumnType::Timestamp => parse_timestamp(t),
        ColumnType::Date => NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .map(|d| Cell::Date((d - epoch()).num_days() as i32))
            .map_err(|_| format!("expected a date YYYY-MM-DD, got {text:?}")),
    }
}

/// Parses a JSON value as `kind`. Strings are parsed like CSV text, so `"42"` is an integer.
pub fn parse_json(value: &Value, kind: ColumnType) -> Result<Cell, String> {
    match (value, kind) {
        (Value::Null, _) => Ok(Cell::Null),
        (Value::String(s), ColumnType::String) => Ok(Cell::Str(s.clone())),
        (Value::String(s), _) => parse_text(s, kind),
        (Value::Number(n), ColumnType::Int64) => n
            .as_i64()
            .map(Cell::Int)
            .ok_or_else(|| format!("expected an integer, got {n}")),
        (Value::Number(n), ColumnType::Float64) => n
            .as_f64()
            .map(Cell::Float)
            .ok_or_else(|| format!("expected a number, got {n}")),
        (Value::Number(n), ColumnType::String) => Ok(Cell::Str(n.to_string())),
        (Value::Bool(b), ColumnType::Boolean) => Ok(Cell::Bool(*b)),
        (Value::Bool(b), ColumnType::String) => Ok(Cell::Str(b.to_string())),
        (other, kind) => Err(format!("expected {}, got {other}", kind_name(kind))),
    }
}

fn kind_name(kind: ColumnType) -> &'static str {
    match kind {
        ColumnType::String => "a string",
        ColumnType::Int64 => "an integer",
        ColumnType::Float64 => "a number",
        ColumnType::Boolean => "a boolean",
        ColumnType::Timestamp => "a timestamp string",
        ColumnType::Date => "a date string",
    }
}

fn parse_bool(t: &str) -> Result<Cell, String> {
    match t.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Ok(Cell::Bool(true)),
        "false" | "f" | "no" | "n" | "0" => Ok(Cell::Bool(false)),
        _ => Err(format!("expected a boolean (true/false), got {t:?}")),
    }
}

fn parse_timestamp(t: &str) -> Result<Cell, String> {
    if let Ok(ts) = DateTime::parse_from_rfc3339(t) {
        return Ok(Cell::Ts(ts.with_timezone(&Utc).timestamp_micros()));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(ts) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(Cell::Ts(ts.and_utc().timestamp_micros()));
        }
    }
    Err(format!(
        "expected a timestamp (RFC 3339 or YYYY-MM-DD HH:MM:SS, UTC), got {t:?}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_and_json_agree_on_keys() {
        let a = parse_text("42", ColumnType::Int64).unwrap();
        let b = parse_json(&json!(42), ColumnType::Int64).unwrap();
        let c = parse_json(&json!("42"), ColumnType::Int64).unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert_eq!(a.key_text(), "42");
    }

    #[test]
    fn timestamps_are_utc_micros() {
        let a = parse_text("2024-01-02T03:04:05+01:00", ColumnType::Timestamp).unwrap();
        let b = parse_text("2024-01-02 02:04:05", ColumnType::Timestamp).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.key_text(), "2024-01-02T02:04:05Z");
    }

    #[test]
    fn dates_and_bools() {
        assert_eq!(
            parse_text("1970-01-11", ColumnType::Date).unwrap(),
            Cell::Date(10)
        );
        assert_eq!(Cell::Date(10).key_text(), "1970-01-11");
        assert_eq!(
            parse_text("Yes", ColumnType::Boolean).unwrap(),
            Cell::Bool(true)
        );
        assert!(parse_text("maybe", ColumnType::Boolean).is_err());
    }

    #[test]
    fn type_errors_say_what_was_expected() {
        let e = parse_text("abc", ColumnType::Int64).unwrap_err();
        assert!(
            e.contains("expected an integer") && e.contains("abc"),
            "{e}"
        );
        let e = parse_json(&json!([1]), ColumnType::Float64).unwrap_err();
        assert!(e.contains("expected a number"), "{e}");
        assert_eq!(parse_text("", ColumnType::Int64).unwrap(), Cell::Null);
    }
}
