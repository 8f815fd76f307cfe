//! Metadata columns every row carries, and the `_ROW_KEY` recipe.
//!
//! A source sends `_ROW_KEY` (and `_RAW` where its schema has it) with its data columns;
//! the engine adds the run's constant columns (`_INGESTED_AT`, `_BATCH_ID`, `_SOURCE_ORG`)
//! with [`stage_batch`].
//!
//! `_ROW_KEY` is the lowercase hex MD5 of the key parts joined with `|`
//! (for a pull request: `org|repo|id`). It is the MERGE key in the warehouse.

use crate::{PluginError, Result};
use arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// The MERGE key, sent by the source.
pub const ROW_KEY: &str = "_ROW_KEY";
/// When the run that wrote the row started (UTC); written by the engine.
pub const INGESTED_AT: &str = "_INGESTED_AT";
/// The source's partition value of the row (GitHub: the org); written by the engine. The
/// name predates partitions and stays, so warehouse tables keep their columns.
pub const SOURCE_ORG: &str = "_SOURCE_ORG";
/// UUID of the run that wrote the row; written by the engine.
pub const BATCH_ID: &str = "_BATCH_ID";
/// The source's raw JSON document of the row, where the schema has it.
pub const RAW: &str = "_RAW";

/// Arrow type of every timestamp column: microseconds, UTC.
pub fn utc_timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The four metadata fields, in the order they are appended to every table schema.
pub fn metadata_fields() -> Vec<Field> {
    vec![
        Field::new(ROW_KEY, DataType::Utf8, false),
        Field::new(INGESTED_AT, utc_timestamp(), false),
        Field::new(SOURCE_ORG, DataType::Utf8, false),
        Field::new(BATCH_ID, DataType::Utf8, false),
    ]
}

/// The values of a run's constant columns for the rows of one partition.
#[derive(Debug, Clone, Copy)]
pub struct RunColumns<'a> {
    /// `_INGESTED_AT`: one timestamp per run.
    pub ingested_at: DateTime<Utc>,
    /// `_BATCH_ID`: the run's id.
    pub batch_id: &'a str,
    /// `_SOURCE_ORG`: the partition the rows belong to.
    pub partition: &'a str,
}

/// `batch` of `stream` as its table declares it (`schema`, in its column order): data
/// columns, `_ROW_KEY` and `_RAW` are taken from `batch` by name, the run's constant
/// columns are built from `run` (replacing any the source sent). Columns of `batch` the
/// schema does not declare are left out. A declared column the batch lacks, or holds with
/// another type, is an error naming the stream and the column.
pub fn stage_batch(
    stream: &str,
    schema: &SchemaRef,
    batch: &RecordBatch,
    run: &RunColumns<'_>,
) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let name = field.name().as_str();
        let column: ArrayRef = match name {
            INGESTED_AT => Arc::new(
                TimestampMicrosecondArray::from_value(run.ingested_at.timestamp_micros(), n)
                    .with_timezone_opt(timestamp_zone(field.data_type())),
            ),
            BATCH_ID => constant_text(run.batch_id, n),
            SOURCE_ORG => constant_text(run.partition, n),
            _ => {
                let Some(column) = batch.column_by_name(name) else {
                    return Err(PluginError::other(format!(
                        "stream `{stream}`: the source sent a batch without column `{name}`, \
                         which the stream's schema declares"
                    )));
                };
                if column.data_type() != field.data_type() {
                    return Err(PluginError::other(format!(
                        "stream `{stream}`: column `{name}` is {} in the source's batch, \
                         but the stream's schema declares {}",
                        column.data_type(),
                        field.data_type()
                    )));
                }
                column.clone()
            }
        };
        columns.push(column);
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| {
        PluginError::other(format!(
            "stream `{stream}`: the source's batch does not fit the stream's schema: {e}"
        ))
        .with_source(e)
    })
}

/// The zone of a declared timestamp type (`_INGESTED_AT` is declared in UTC).
fn timestamp_zone(t: &DataType) -> Option<Arc<str>> {
    match t {
        DataType::Timestamp(_, zone) => zone.clone(),
        _ => None,
    }
}

fn constant_text(value: &str, n: usize) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(std::iter::repeat_n(value, n)))
}

/// Lowercase hex MD5 of `parts` joined with `|`, without allocating the joined string.
pub fn row_key(parts: &[&str]) -> String {
    let mut ctx = md5::Context::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            ctx.consume(b"|");
        }
        ctx.consume(p.as_bytes());
    }
    format!("{:x}", ctx.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, Int64Array};
    use arrow::datatypes::{Schema, TimestampMicrosecondType};

    fn declared() -> SchemaRef {
        let mut fields = vec![Field::new("ID", DataType::Int64, false)];
        fields.extend(metadata_fields());
        fields.push(Field::new(RAW, DataType::Utf8, true));
        Arc::new(Schema::new(fields))
    }

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    const RUN: RunColumns<'static> = RunColumns {
        ingested_at: DateTime::from_timestamp_micros(1_767_323_045_000_000).unwrap(),
        batch_id: "run-1",
        partition: "acme",
    };

    #[test]
    fn the_run_columns_are_added_in_the_declared_order_and_replace_the_sources() {
        let key: ArrayRef = Arc::new(StringArray::from(vec!["k1", "k2"]));
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        let raw: ArrayRef = Arc::new(StringArray::from(vec![Some("{}"), None]));
        // Out of order, without the constants, with a column the schema does not have.
        let sent = batch(vec![
            (ROW_KEY, key.clone()),
            ("EXTRA", ids.clone()),
            (RAW, raw.clone()),
            ("ID", ids.clone()),
        ]);
        let staged = stage_batch("t", &declared(), &sent, &RUN).unwrap();
        assert_eq!(staged.schema(), declared());
        assert_eq!(staged.column(0).as_ref(), ids.as_ref());
        assert_eq!(
            staged.column_by_name(ROW_KEY).unwrap().as_ref(),
            key.as_ref()
        );
        assert_eq!(staged.column_by_name(RAW).unwrap().as_ref(), raw.as_ref());
        let at = staged.column_by_name(INGESTED_AT).unwrap();
        let at = at.as_primitive::<TimestampMicrosecondType>();
        assert_eq!(at.timezone(), Some("UTC"));
        assert_eq!(at.values(), &[1_767_323_045_000_000; 2]);
        let text = |c: &str| {
            let a = staged.column_by_name(c).unwrap().as_string::<i32>().clone();
            (0..a.len())
                .map(|i| a.value(i).to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(text(BATCH_ID), ["run-1", "run-1"]);
        assert_eq!(text(SOURCE_ORG), ["acme", "acme"]);

        // A source that still sends its own constants gets the run's.
        let old: ArrayRef = Arc::new(StringArray::from(vec!["old", "old"]));
        let zero: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![0, 0]));
        let sent = batch(vec![
            ("ID", ids),
            (ROW_KEY, key),
            (INGESTED_AT, zero),
            (SOURCE_ORG, old.clone()),
            (BATCH_ID, old),
            (RAW, raw),
        ]);
        let again = stage_batch("t", &declared(), &sent, &RUN).unwrap();
        assert_eq!(again, staged);
    }

    #[test]
    fn a_missing_or_mistyped_column_is_an_error_naming_stream_and_column() {
        let key: ArrayRef = Arc::new(StringArray::from(vec!["k1"]));
        let raw: ArrayRef = Arc::new(StringArray::from(vec!["{}"]));
        let sent = batch(vec![(ROW_KEY, key.clone()), (RAW, raw.clone())]);
        let err = stage_batch("pull_request", &declared(), &sent, &RUN).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stream `pull_request`: the source sent a batch without column `ID`, \
             which the stream's schema declares"
        );
        let text_id: ArrayRef = Arc::new(StringArray::from(vec!["1"]));
        let sent = batch(vec![
            ("ID", text_id),
            (ROW_KEY, key.clone()),
            (RAW, raw.clone()),
        ]);
        let err = stage_batch("pull_request", &declared(), &sent, &RUN).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stream `pull_request`: column `ID` is Utf8 in the source's batch, \
             but the stream's schema declares Int64"
        );
        let null_id: ArrayRef = Arc::new(Int64Array::from(vec![None]));
        let sent = batch(vec![("ID", null_id), (ROW_KEY, key), (RAW, raw)]);
        let err = stage_batch("pull_request", &declared(), &sent, &RUN).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("stream `pull_request`: the source's batch does not fit")
                && msg.contains("ID"),
            "{msg}"
        );
    }

    #[test]
    fn row_key_is_md5_of_joined_parts() {
        // md5("acme|widgets|42") computed independently (python hashlib).
        assert_eq!(
            row_key(&["acme", "widgets", "42"]),
            format!("{:x}", md5::compute("acme|widgets|42"))
        );
        assert_eq!(row_key(&["a"]), "0cc175b9c0f1b6a831c399e269772661");
        assert_ne!(
            row_key(&["a|b", "c"]),
            row_key(&["a", "b|c"]).replace('x', "y") + "z"
        );
    }
}
