//! How much memory DuckDB needs for a load, from the staged files' footers.
//!
//! DuckDB appends a load row group by row group (`row_group_rows`, at least 2,048 rows)
//! and keeps what it fills and what it writes out pinned, so a load needs about 1.5 row
//! groups of its widest column plus headroom, and one row group plus ~96 MiB more for each
//! further thread, whatever `memory_limit` says. The fit and its measurements:
//! docs/memory.md. flowctl's default limit follows this need (`DuckDbConfig::memory_limit`).

use crate::slices::FileLayout;

/// Headroom beside the pinned row groups: reader state, the statement's own buffers.
const HEADROOM: u64 = 32 << 20;

/// What each thread beyond the first adds besides its row group (fitted, see above).
const PER_EXTRA_THREAD: u64 = 96 << 20;

/// Bytes DuckDB needs to append the staged rows with `threads` threads:
/// (threads + 0.5) row groups of the widest staged column, plus headroom, plus
/// [`PER_EXTRA_THREAD`] for each thread beyond the first.
pub fn load_need(layouts: &[FileLayout], row_group_rows: u32, threads: u32) -> u64 {
    let widest = layouts
        .iter()
        .map(|l| l.widest_column_per_row)
        .max()
        .unwrap_or(0);
    let threads = u64::from(threads.max(1));
    let row_group = widest.saturating_mul(u64::from(row_group_rows));
    let halves = threads.saturating_mul(2).saturating_add(1);
    (row_group.saturating_mul(halves) / 2)
        .saturating_add(HEADROOM)
        .saturating_add(PER_EXTRA_THREAD.saturating_mul(threads - 1))
}

/// A DuckDB memory size (`128MB`, `1.5GB`, `512MiB`, `1000B`) in bytes; `None` for
/// anything else. KB/MB/GB/TB are powers of 1000 and KiB/MiB/GiB/TiB of 1024, as in
/// DuckDB.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "b" | "" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = number * factor;
    // `as` saturates for values beyond u64 and maps NaN to 0; both are caught here.
    (bytes.is_finite() && bytes >= 0.0).then_some(bytes as u64)
}

/// Whether a DuckDB error is about memory ("Out of Memory Error: …", or a commit that
/// "failed to pin block").
pub fn is_out_of_memory(error: &str) -> bool {
    [
        "Out of Memory",
        "failed to pin block",
        "could not allocate block",
    ]
    .iter()
    .any(|m| error.contains(m))
}

/// `bytes` in DuckDB's syntax, rounded up to whole megabytes.
pub fn megabytes(bytes: u64) -> String {
    format!("{}MB", bytes.div_ceil(1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn layout(widest_column_per_row: u64) -> FileLayout {
        FileLayout {
            row_groups: vec![(1, 1)],
            columns: HashSet::new(),
            widest_column_per_row,
        }
    }

    #[test]
    fn sizes_in_duckdb_syntax() {
        assert_eq!(parse_size("128MB"), Some(128_000_000));
        assert_eq!(parse_size("1.5GB"), Some(1_500_000_000));
        assert_eq!(parse_size(" 512MiB "), Some(512 << 20));
        assert_eq!(parse_size("2 GiB"), Some(2 << 30));
        assert_eq!(parse_size("1000B"), Some(1000));
        assert_eq!(parse_size("64kb"), Some(64_000));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("12XB"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(megabytes(128_000_000), "128MB");
        assert_eq!(megabytes(128_000_001), "129MB");
    }

    #[test]
    fn need_follows_the_widest_column_and_the_threads() {
        let one_group = 2048 * 19_000;
        let files = [layout(500), layout(19_000)];
        assert_eq!(load_need(&files, 2048, 1), one_group * 3 / 2 + HEADROOM);
        assert_eq!(
            load_need(&files, 2048, 2),
            one_group * 5 / 2 + HEADROOM + PER_EXTRA_THREAD
        );
        // The measured two-thread failures are covered: 19 KB failed at 160MB.
        assert!(load_need(&files, 2048, 2) > 160_000_000);
        assert_eq!(load_need(&files, 4096, 1), one_group * 3 + HEADROOM);
        // The default 128MB holds 19 KB `_RAW` (the stand-in's) and 25 KB (GitHub's
        // pull requests) with one thread; 75 KB values need more.
        let default = parse_size(crate::config::DEFAULT_MEMORY_LIMIT).unwrap();
        assert!(load_need(&[layout(25_000)], 2048, 1) <= default);
        assert!(load_need(&[layout(75_000)], 2048, 1) > default);
        // Nothing staged: just the headroom.
        assert_eq!(load_need(&[], 2048, 1), HEADROOM);
        assert_eq!(load_need(&[layout(0)], 2048, 1), HEADROOM);
    }
}
