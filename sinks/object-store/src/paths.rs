//! Staged file names. Every segment is checked so that a partition value taken from
//! outside (an org name from an API) can never climb out of its folder or break a URI.

use flowctl_core::{PluginError, Result, StageTarget};
use object_store::path::Path as StorePath;

/// Accepts only `[A-Za-z0-9._-]`, not empty, not `.`/`..`: every value GitHub uses for
/// orgs, tables and batch ids fits, and nothing that needs escaping in a path, a URI or a
/// Snowflake `FILES=(...)` list does.
pub fn validate_segment(what: &str, value: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if value.is_empty() || value == "." || value == ".." || !value.chars().all(ok_char) {
        return Err(PluginError::data(format!(
            "staging: {what} {value:?} cannot be used in a staged file path \
             (allowed: letters, digits, '.', '_', '-'; not empty, '.' or '..')"
        )));
    }
    Ok(())
}

/// Splits a configured prefix into checked segments (`a/b/` -> `a/b`; empty is the root).
pub(crate) fn normalize_prefix(prefix: &str) -> Result<String> {
    let parts: Vec<&str> = prefix.split('/').filter(|p| !p.is_empty()).collect();
    for p in &parts {
        validate_segment("prefix segment", p)?;
    }
    Ok(parts.join("/"))
}

/// `{table}/{partition_key}={partition}/date={date}/{table}-{batch_id}-{part:05}.parquet`
/// (GitHub: `pull_request/org=acme/...`), relative to the root.
pub(crate) fn relative_file(target: &StageTarget, part: u32) -> Result<String> {
    validate_segment("table name", &target.table)?;
    validate_segment("partition key", target.partition_key)?;
    validate_segment(target.partition_key, &target.partition)?;
    validate_segment("batch id", &target.batch_id)?;
    Ok(format!(
        "{t}/{k}={p}/date={d}/{t}-{b}-{part:05}.parquet",
        t = target.table,
        k = target.partition_key,
        p = target.partition,
        d = target.date.format("%Y-%m-%d"),
        b = target.batch_id,
    ))
}

/// The store path of a file given its path relative to the staging root. Use this rather
/// than `root.child(relative)`, which would escape the `/`s of a multi-segment path.
pub fn staged_path(root: &StorePath, relative: &str) -> Result<StorePath> {
    let joined = if root.as_ref().is_empty() {
        relative.to_string()
    } else {
        format!("{}/{relative}", root.as_ref())
    };
    StorePath::parse(&joined)
        .map_err(|e| PluginError::data(format!("staging: bad staged path {joined:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use std::sync::Arc;

    fn target(org: &str) -> StageTarget {
        StageTarget {
            table: "pull_request".into(),
            partition_key: "org",
            partition: org.into(),
            date: NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
            batch_id: "b1c2".into(),
            schema: Arc::new(arrow::datatypes::Schema::empty()),
        }
    }

    #[test]
    fn file_path_is_hive_partitioned_with_zero_padded_part() {
        assert_eq!(
            relative_file(&target("acme"), 3).unwrap(),
            "pull_request/org=acme/date=2026-01-02/pull_request-b1c2-00003.parquet"
        );
    }

    #[test]
    fn unsafe_org_values_are_rejected() {
        for bad in [
            "", ".", "..", "a/b", "../x", "a\0b", "a b", "a%2F", "a\\b", "é",
        ] {
            let err = relative_file(&target(bad), 0).unwrap_err().to_string();
            assert!(err.contains("org"), "{bad:?}: {err}");
        }
        assert!(relative_file(&target("my-org.1_x"), 0).is_ok());
        let mut other = target("a");
        other.partition_key = flowctl_core::DEFAULT_PARTITION_KEY;
        assert_eq!(
            relative_file(&other, 0).unwrap(),
            "pull_request/partition=a/date=2026-01-02/pull_request-b1c2-00000.parquet"
        );
    }

    #[test]
    fn prefix_is_normalized_and_checked() {
        assert_eq!(normalize_prefix("/github/raw/").unwrap(), "github/raw");
        assert_eq!(normalize_prefix("").unwrap(), "");
        assert!(normalize_prefix("a/../b").is_err());
    }

    #[test]
    fn staged_path_keeps_slashes() {
        let root = StorePath::parse("github").unwrap();
        let p = staged_path(&root, "t/org=a/date=2026-01-02/f.parquet").unwrap();
        assert_eq!(p.as_ref(), "github/t/org=a/date=2026-01-02/f.parquet");
        assert_eq!(p.parts().count(), 5);
        let p = staged_path(&StorePath::default(), "t/f.parquet").unwrap();
        assert_eq!(p.as_ref(), "t/f.parquet");
    }
}
