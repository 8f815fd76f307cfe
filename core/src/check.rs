//! `flowctl check`: what each plugin verifies against the real services before a first
//! run, as a checklist. A failed item says what to change (`fix`): the GRANT to run, the
//! token scope or bucket permission to add. Checks load no data and print no secrets.

use crate::meta;
use crate::plugin::{StagedFile, StagingLocation};
use arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;

/// How one item of the checklist ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    Failed,
    /// Not applicable, or not testable because an earlier item failed.
    Skipped,
}

/// One item of the checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// What was checked, e.g. `github: token` or `snowflake: stage lists the staging prefix`.
    pub name: String,
    pub status: CheckStatus,
    /// What was found (the answer's gist, counts, the object probed). Never a secret.
    pub detail: String,
    /// For a failure: what to change, as exactly as it can be said (a GRANT, a scope).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl CheckResult {
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(name, CheckStatus::Ok, detail, None)
    }

    pub fn failed(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(name, CheckStatus::Failed, detail, Some(fix.into()))
    }

    pub fn skipped(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(name, CheckStatus::Skipped, detail, None)
    }

    fn new(
        name: impl Into<String>,
        status: CheckStatus,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        CheckResult {
            name: name.into(),
            status,
            detail: detail.into(),
            fix,
        }
    }

    pub fn is_failed(&self) -> bool {
        self.status == CheckStatus::Failed
    }
}

/// What the staging checks leave for the warehouse's: the staging root and a probe file
/// written there, so the warehouse can show that it lists and reads what staging writes.
#[derive(Debug, Clone, Default)]
pub struct CheckContext {
    pub staging: Option<StagingLocation>,
    pub probe: Option<StagedFile>,
}

/// The staging sink's results, and the probe file it left for the warehouse (removed
/// afterwards with `StagingSink::remove_probe`).
#[derive(Debug, Clone, Default)]
pub struct StagingCheck {
    pub results: Vec<CheckResult>,
    pub probe: Option<StagedFile>,
}

/// Stream name of the probe file (its path segment under the staging root).
pub const PROBE_STREAM: &str = "flowctl_check";
/// The probe's data column, besides the metadata columns.
pub const PROBE_COLUMN: &str = "PROBE";

/// Schema of the probe file: the metadata columns every table has, and one text column.
pub fn probe_schema() -> SchemaRef {
    let mut fields = vec![Field::new(PROBE_COLUMN, DataType::Utf8, true)];
    fields.extend(meta::metadata_fields());
    Arc::new(Schema::new(fields))
}

/// The one row of the probe file.
pub fn probe_batch(batch_id: &str, at: DateTime<Utc>) -> RecordBatch {
    let text = |s: &str| -> ArrayRef { Arc::new(StringArray::from(vec![s.to_string()])) };
    let columns = vec![
        text("written by flowctl check"),
        text(&meta::row_key(&["flowctl-check", batch_id])),
        Arc::new(TimestampMicrosecondArray::from(vec![at.timestamp_micros()]).with_timezone("UTC"))
            as ArrayRef,
        text("flowctl-check"),
        text(batch_id),
    ];
    // The columns match `probe_schema` by construction.
    RecordBatch::try_new(probe_schema(), columns)
        .unwrap_or_else(|_| RecordBatch::new_empty(probe_schema()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_batch_has_one_row_of_the_probe_schema() {
        let b = probe_batch("b1", Utc::now());
        assert_eq!(b.num_rows(), 1);
        assert_eq!(b.schema(), probe_schema());
    }

    #[test]
    fn results_serialise_without_an_empty_fix() {
        let ok = serde_json::to_value(CheckResult::ok("a", "fine")).unwrap();
        assert_eq!(
            ok,
            serde_json::json!({"name": "a", "status": "ok", "detail": "fine"})
        );
        let bad = serde_json::to_value(CheckResult::failed("b", "no", "GRANT X")).unwrap();
        assert_eq!(bad["status"], "failed");
        assert_eq!(bad["fix"], "GRANT X");
    }
}
