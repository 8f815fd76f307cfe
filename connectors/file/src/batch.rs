//! Accumulates parsed rows into Arrow batches with the table's explicit schema.

use crate::value::Cell;
use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use flowctl_core::meta;
use flowctl_core::{PluginError, Result};
use std::sync::Arc;

enum Col {
    Str(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
    Date(Date32Builder),
}

impl Col {
    fn for_type(t: &DataType) -> Result<Col> {
        Ok(match t {
            DataType::Utf8 => Col::Str(StringBuilder::new()),
            DataType::Int64 => Col::Int(Int64Builder::new()),
            DataType::Float64 => Col::Float(Float64Builder::new()),
            DataType::Boolean => Col::Bool(BooleanBuilder::new()),
            DataType::Timestamp(_, _) => Col::Ts(TimestampMicrosecondBuilder::new()),
            DataType::Date32 => Col::Date(Date32Builder::new()),
            other => {
                return Err(PluginError::other(format!(
                    "file source: no builder for {other}"
                )))
            }
        })
    }

    /// Appends `cell`; the cell was parsed for this column's type, so a mismatch is a bug.
    fn push(&mut self, cell: &Cell) {
        match (self, cell) {
            (Col::Str(b), Cell::Str(s)) => b.append_value(s),
            (Col::Int(b), Cell::Int(v)) => b.append_value(*v),
            (Col::Float(b), Cell::Float(v)) => b.append_value(*v),
            (Col::Bool(b), Cell::Bool(v)) => b.append_value(*v),
            (Col::Ts(b), Cell::Ts(v)) => b.append_value(*v),
            (Col::Date(b), Cell::Date(v)) => b.append_value(*v),
            (col, _) => col.push_null(),
        }
    }

    fn push_null(&mut self) {
        match self {
            Col::Str(b) => b.append_null(),
            Col::Int(b) => b.append_null(),
            Col::Float(b) => b.append_null(),
            Col::Bool(b) => b.append_null(),
            Col::Ts(b) => b.append_null(),
            Col::Date(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Str(b) => Arc::new(b.finish()),
            Col::Int(b) => Arc::new(b.finish()),
            Col::Float(b) => Arc::new(b.finish()),
            Col::Bool(b) => Arc::new(b.finish()),
            Col::Ts(b) => Arc::new(b.finish().with_timezone("UTC")),
            Col::Date(b) => Arc::new(b.finish()),
        }
    }
}

/// A batch is cut once its text columns hold this much, whatever `batch_rows` says: an
/// Arrow string column holds at most 2 GiB (more panics in the builder), and a row's text
/// is at most [`MAX_ROW_TEXT_BYTES`], so a batch stays well below that.
pub const MAX_BATCH_TEXT_BYTES: usize = 256 << 20;
/// Most text one row may carry: more makes it a bad row, not a batch that cannot be built.
pub const MAX_ROW_TEXT_BYTES: usize = 1 << 30;

/// Bytes of text in a row's cells.
pub fn text_bytes(cells: &[Cell]) -> usize {
    cells
        .iter()
        .map(|c| match c {
            Cell::Str(s) => s.len(),
            _ => 0,
        })
        .fold(0, usize::saturating_add)
}

/// Data columns followed by `_ROW_KEY` (the engine adds the run's constant columns).
pub struct BatchBuilder {
    schema: SchemaRef,
    data: Vec<Col>,
    key: StringBuilder,
    rows: usize,
    /// Bytes of text in the data columns since the last `finish`.
    text_bytes: usize,
    /// `full` once `text_bytes` reaches this (see [`MAX_BATCH_TEXT_BYTES`]).
    text_limit: usize,
}

impl BatchBuilder {
    /// A builder of batches of the declared columns `data`, then `_ROW_KEY`.
    pub fn new(mut data: Vec<Field>) -> Result<Self> {
        let cols = data
            .iter()
            .map(|f| Col::for_type(f.data_type()))
            .collect::<Result<Vec<_>>>()?;
        data.push(Field::new(meta::ROW_KEY, DataType::Utf8, false));
        Ok(BatchBuilder {
            schema: Arc::new(Schema::new(data)),
            data: cols,
            key: StringBuilder::new(),
            rows: 0,
            text_bytes: 0,
            text_limit: MAX_BATCH_TEXT_BYTES,
        })
    }

    /// Appends one row of data cells (one per declared column) and its `_ROW_KEY`.
    pub fn push(&mut self, cells: &[Cell], row_key: &str) {
        for (col, cell) in self.data.iter_mut().zip(cells) {
            col.push(cell);
        }
        self.key.append_value(row_key);
        self.rows += 1;
        self.text_bytes = self.text_bytes.saturating_add(text_bytes(cells));
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Whether the batch should be handed on: `batch_rows` rows, or its text columns hold
    /// `MAX_BATCH_TEXT_BYTES`, whichever comes first.
    pub fn full(&self, batch_rows: usize) -> bool {
        self.rows >= batch_rows || self.text_bytes >= self.text_limit
    }

    /// The text bound of [`Self::full`], for tests that cannot afford 256 MiB of text.
    pub fn with_text_limit(mut self, bytes: usize) -> Self {
        self.text_limit = bytes;
        self
    }

    /// The rows so far as a batch; the builder starts over empty.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let mut arrays: Vec<ArrayRef> = self.data.iter_mut().map(Col::finish).collect();
        arrays.push(Arc::new(self.key.finish()));
        self.rows = 0;
        self.text_bytes = 0;
        Ok(RecordBatch::try_new(self.schema.clone(), arrays)?)
    }
}

#[cfg(test)]
mod tests {
    use super::{BatchBuilder, Cell};
    use arrow::datatypes::{DataType, Field};

    #[test]
    fn a_batch_is_full_at_its_rows_or_its_text_whichever_comes_first() {
        let fields = vec![
            Field::new("NAME", DataType::Utf8, true),
            Field::new("N", DataType::Int64, true),
        ];
        let mut b = BatchBuilder::new(fields).unwrap().with_text_limit(100);
        let row = |s: &str| vec![Cell::Str(s.to_string()), Cell::Int(1)];
        b.push(&row(&"x".repeat(60)), "k1");
        assert!(!b.full(10));
        b.push(&row(&"y".repeat(40)), "k2");
        assert!(b.full(10), "100 bytes of text reach the limit");
        assert_eq!(b.finish().unwrap().num_rows(), 2);
        assert!(!b.full(10), "finish starts the count over");
        b.push(&[Cell::Null, Cell::Int(2)], "k3");
        b.push(&[Cell::Null, Cell::Int(3)], "k4");
        assert!(b.full(2), "two rows reach batch_rows 2");
    }
}
