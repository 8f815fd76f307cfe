//! Cuts a load into slices of bounded uncompressed size, along Parquet row groups
//! (`load_slice_bytes`; by default a load is one slice, one transaction).
//!
//! Every footer is read before the first slice is loaded, so a corrupt or truncated
//! file fails the load with nothing written.

use flowctl_core::{PluginError, Result};
use parquet::file::reader::{FileReader, SerializedFileReader};
use std::collections::HashSet;
use std::path::Path;

/// Rows `[start, end)` of one staged file (by `file_row_number`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Index into the load's file list.
    pub file: usize,
    pub start: i64,
    pub end: i64,
    /// The file covers all of its rows in this part: no row filter needed.
    pub whole: bool,
}

/// One transaction's worth of rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slice {
    pub parts: Vec<Part>,
    pub rows: i64,
}

/// What the footer of one staged file says.
#[derive(Debug, Clone)]
pub struct FileLayout {
    /// (rows, uncompressed bytes) of each row group, in file order.
    pub row_groups: Vec<(i64, i64)>,
    /// Top-level column names, upper-cased (DuckDB identifiers are case-insensitive).
    pub columns: HashSet<String>,
    /// The widest column's uncompressed bytes per row, in the row group where it is
    /// widest (what DuckDB's memory for a load follows, see `crate::memory`).
    pub widest_column_per_row: u64,
}

impl FileLayout {
    /// Reads the footer of `path`; `uri` names the file in errors.
    pub fn read(path: &Path, uri: &str) -> Result<Self> {
        let bad = |e: &dyn std::fmt::Display| {
            PluginError::data(format!("staged file {uri} is not readable Parquet: {e}"))
        };
        let file = std::fs::File::open(path).map_err(|e| bad(&e).with_source(e))?;
        let reader = SerializedFileReader::new(file).map_err(|e| bad(&e).with_source(e))?;
        let meta = reader.metadata();
        let row_groups = meta
            .row_groups()
            .iter()
            .map(|rg| (rg.num_rows(), rg.total_byte_size()))
            .collect();
        let widest_column_per_row = meta
            .row_groups()
            .iter()
            .filter(|rg| rg.num_rows() > 0)
            .flat_map(|rg| {
                let rows = rg.num_rows().unsigned_abs();
                rg.columns()
                    .iter()
                    .map(move |c| c.uncompressed_size().max(0).unsigned_abs() / rows)
            })
            .max()
            .unwrap_or(0);
        let columns = meta
            .file_metadata()
            .schema_descr()
            .root_schema()
            .get_fields()
            .iter()
            .map(|f| f.name().to_ascii_uppercase())
            .collect();
        Ok(Self {
            row_groups,
            columns,
            widest_column_per_row,
        })
    }

    fn rows(&self) -> i64 {
        // Footers come from files on disk: a corrupt count must not overflow.
        self.row_groups
            .iter()
            .fold(0i64, |n, (r, _)| n.saturating_add(*r))
    }
}

/// Groups row groups, in file order, into slices of at most `budget` uncompressed bytes
/// (a row group larger than the budget gets a slice of its own). `budget == 0` means
/// one slice for the whole load. Empty files contribute nothing.
pub fn plan(files: &[FileLayout], budget: u64) -> Vec<Slice> {
    let mut slices = Vec::new();
    let mut cur = Slice::default();
    let mut cur_bytes: u64 = 0;
    for (i, f) in files.iter().enumerate() {
        let mut row = 0i64;
        for &(rows, bytes) in &f.row_groups {
            let bytes = u64::try_from(bytes).unwrap_or(0);
            if budget > 0 && cur_bytes > 0 && cur_bytes.saturating_add(bytes) > budget {
                slices.push(std::mem::take(&mut cur));
                cur_bytes = 0;
            }
            let end = row.saturating_add(rows);
            extend(&mut cur, i, row, end);
            cur_bytes = cur_bytes.saturating_add(bytes);
            row = end;
        }
    }
    if !cur.parts.is_empty() {
        slices.push(cur);
    }
    for s in &mut slices {
        for p in &mut s.parts {
            p.whole = p.start == 0 && p.end == files[p.file].rows();
        }
    }
    slices
}

/// Adds rows `[start, end)` of `file` to `slice`, merging with its last part when
/// contiguous.
fn extend(slice: &mut Slice, file: usize, start: i64, end: i64) {
    slice.rows = slice.rows.saturating_add(end.saturating_sub(start));
    if let Some(last) = slice.parts.last_mut() {
        if last.file == file && last.end == start {
            last.end = end;
            return;
        }
    }
    slice.parts.push(Part {
        file,
        start,
        end,
        whole: false,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(groups: &[(i64, i64)]) -> FileLayout {
        FileLayout {
            widest_column_per_row: 0,
            row_groups: groups.to_vec(),
            columns: HashSet::new(),
        }
    }

    fn parts(s: &Slice) -> Vec<(usize, i64, i64, bool)> {
        s.parts
            .iter()
            .map(|p| (p.file, p.start, p.end, p.whole))
            .collect()
    }

    #[test]
    fn no_budget_is_one_slice_of_whole_files() {
        let files = [layout(&[(10, 100), (5, 50)]), layout(&[(3, 30)])];
        let s = plan(&files, 0);
        assert_eq!(s.len(), 1);
        assert_eq!(parts(&s[0]), [(0, 0, 15, true), (1, 0, 3, true)]);
        assert_eq!(s[0].rows, 18);
    }

    #[test]
    fn budget_cuts_along_row_groups_across_files() {
        let files = [
            layout(&[(10, 100), (10, 100), (10, 100)]),
            layout(&[(4, 40)]),
        ];
        let s = plan(&files, 200);
        let got: Vec<_> = s.iter().map(parts).collect();
        assert_eq!(
            got,
            [
                vec![(0, 0, 20, false)],
                vec![(0, 20, 30, false), (1, 0, 4, true)],
            ]
        );
        assert_eq!(s.iter().map(|s| s.rows).sum::<i64>(), 34);
    }

    #[test]
    fn oversized_row_group_gets_its_own_slice_and_empty_files_vanish() {
        let files = [layout(&[(1, 10), (100, 5000), (1, 10)]), layout(&[])];
        let s = plan(&files, 100);
        let got: Vec<_> = s.iter().map(parts).collect();
        assert_eq!(
            got,
            [
                vec![(0, 0, 1, false)],
                vec![(0, 1, 101, false)],
                vec![(0, 101, 102, false)]
            ]
        );
        assert!(plan(&[layout(&[])], 100).is_empty());
    }
}
