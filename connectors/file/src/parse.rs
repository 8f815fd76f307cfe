//! Row iterators over one file's bytes: each item is a line number and either the row's
//! typed cells (one per declared column) or a message saying what is wrong with it.

use crate::config::{ColumnSpec, FileConfig, Format};
use crate::value::{parse_json, parse_text, Cell};
use flowctl_core::{PluginError, Result};
use serde_json::Value;

/// One row of a file, or why it is bad. `line` is 1-based.
pub struct Row {
    pub line: u64,
    pub cells: Result<Vec<Cell>, String>,
}

pub type Rows<'a> = Box<dyn Iterator<Item = Row> + Send + 'a>;

/// Rows of `bytes`, read as the config's format. `file` names the file in errors about the
/// file as a whole (a CSV header without a declared column).
pub fn rows<'a>(bytes: &'a [u8], cfg: &'a FileConfig, file: &str) -> Result<Rows<'a>> {
    match cfg.format {
        Format::Csv => csv_rows(bytes, cfg, file),
        Format::Jsonl => Ok(jsonl_rows(bytes, &cfg.columns)),
    }
}

/// Enforces `nullable`.
fn check_required(cells: Vec<Cell>, columns: &[ColumnSpec]) -> Result<Vec<Cell>, String> {
    for (cell, col) in cells.iter().zip(columns) {
        if *cell == Cell::Null && !col.nullable {
            return Err(format!("column {}: a value is required", col.name));
        }
    }
    Ok(cells)
}

fn csv_rows<'a>(bytes: &'a [u8], cfg: &'a FileConfig, file: &str) -> Result<Rows<'a>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(cfg.csv.header)
        .delimiter(cfg.delimiter_byte()?)
        .flexible(true)
        .from_reader(bytes);
    let (indexes, width) = if cfg.csv.header {
        let header = reader.headers().map_err(|e| {
            PluginError::data(format!("{file}: cannot read the CSV header: {e}")).with_source(e)
        })?;
        (header_indexes(header, &cfg.columns, file)?, header.len())
    } else {
        ((0..cfg.columns.len()).collect(), cfg.columns.len())
    };
    let columns = &cfg.columns;
    Ok(Box::new(reader.into_records().map(move |rec| match rec {
        Ok(rec) => Row {
            line: rec.position().map(|p| p.line()).unwrap_or(0),
            cells: csv_cells(&rec, &indexes, width, columns),
        },
        Err(e) => Row {
            line: e.position().map(|p| p.line()).unwrap_or(0),
            cells: Err(format!("not valid CSV: {e}")),
        },
    })))
}

fn header_indexes(
    header: &csv::StringRecord,
    columns: &[ColumnSpec],
    file: &str,
) -> Result<Vec<usize>> {
    columns
        .iter()
        .map(|c| {
            header
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(&c.name))
                .ok_or_else(|| {
                    let have: Vec<&str> = header.iter().collect();
                    PluginError::data(format!(
                        "{file}: the CSV header has no column `{}` (it has: {})",
                        c.name,
                        have.join(", ")
                    ))
                })
        })
        .collect()
}

fn csv_cells(
    rec: &csv::StringRecord,
    indexes: &[usize],
    width: usize,
    columns: &[ColumnSpec],
) -> Result<Vec<Cell>, String> {
    if rec.len() != width {
        return Err(format!("expected {width} fields, found {}", rec.len()));
    }
    let cells = indexes
        .iter()
        .zip(columns)
        .map(|(i, col)| {
            parse_text(rec.get(*i).unwrap_or(""), col.kind)
                .map_err(|e| format!("column {}: {e}", col.name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_required(cells, columns)
}

fn jsonl_rows<'a>(bytes: &'a [u8], columns: &'a [ColumnSpec]) -> Rows<'a> {
    Box::new(
        bytes
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
            .map(move |(i, l)| Row {
                line: i as u64 + 1,
                cells: json_cells(l, columns),
            }),
    )
}

fn json_cells(line: &[u8], columns: &[ColumnSpec]) -> Result<Vec<Cell>, String> {
    let value: Value = serde_json::from_slice(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("expected a JSON object".into());
    };
    let cells = columns
        .iter()
        .map(|col| {
            let v = obj.get(&col.name).or_else(|| {
                obj.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&col.name))
                    .map(|(_, v)| v)
            });
            parse_json(v.unwrap_or(&Value::Null), col.kind)
                .map_err(|e| format!("column {}: {e}", col.name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_required(cells, columns)
}
