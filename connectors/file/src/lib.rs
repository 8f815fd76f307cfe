//! flowctl source `file`: CSV or JSON Lines files (a local path, a local glob, or an
//! object-store URL, optionally with a glob) into one warehouse table with an explicit,
//! declared schema — e.g. USER_LOOKUP, the GitHub login → LDAP identity map.
//!
//! State (per stream): `{"files": {"<name>": {"size", "last_modified", "etag"}}}`. A file
//! whose fingerprint equals the saved one is not read again: its rows were merged by the
//! run that saved the state, and MERGE never deletes, so re-reading would change nothing.
//! `--full-refresh` (no state) reads everything. Rows removed from a file are NOT deleted
//! from the warehouse.
//!
//! A new source is one crate like this one plus one `inventory::submit!`: `flowctl-core`
//! names no source.

pub mod batch;
mod check;
pub mod config;
pub mod locate;
pub mod parse;
pub mod value;

pub use config::{ColumnSpec, ColumnType, CsvOptions, FileConfig, Format, OnBadRow};

use arrow::datatypes::{DataType, Field, Schema};
use batch::BatchBuilder;
use flowctl_core::meta;
use flowctl_core::progress::ProgressEvent;
use flowctl_core::{
    async_trait, BatchSender, PluginError, ReadOutcome, ReadRequest, Result, Source, StreamInfo,
    StreamResult, TaggedBatch,
};
use locate::FileRef;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The configured file source.
pub struct FileSource {
    cfg: FileConfig,
}

impl FileSource {
    pub fn from_config(cfg: FileConfig) -> Result<Self> {
        cfg.check()?;
        Ok(FileSource { cfg })
    }

    fn data_type(kind: ColumnType) -> DataType {
        match kind {
            ColumnType::String => DataType::Utf8,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Timestamp => meta::utc_timestamp(),
            ColumnType::Date => DataType::Date32,
        }
    }

    fn key_recipe(&self) -> String {
        let names: Vec<String> = self
            .cfg
            .primary_key
            .iter()
            .map(|k| k.to_ascii_lowercase())
            .collect();
        format!("md5({})", names.join("|"))
    }

    /// The declared columns, UPPER_SNAKE_CASE, in table order.
    fn data_fields(&self) -> Vec<Field> {
        self.cfg
            .columns
            .iter()
            .map(|c| {
                Field::new(
                    c.name.to_ascii_uppercase(),
                    Self::data_type(c.kind),
                    c.nullable,
                )
            })
            .collect()
    }

    /// The one stream: declared columns (UPPER_SNAKE_CASE) then the metadata columns.
    pub fn stream_info(&self) -> StreamInfo {
        let mut fields = self.data_fields();
        fields.extend(meta::metadata_fields());
        let mut docs: BTreeMap<String, String> = self
            .cfg
            .columns
            .iter()
            .filter_map(|c| Some((c.name.to_ascii_uppercase(), c.description.clone()?)))
            .collect();
        docs.insert(
            meta::ROW_KEY.into(),
            format!("Merge key: lowercase hex {}.", self.key_recipe()),
        );
        docs.insert(
            meta::INGESTED_AT.into(),
            "When the run that wrote the row started (UTC).".into(),
        );
        docs.insert(
            meta::SOURCE_ORG.into(),
            "The `partition` of the file source config.".into(),
        );
        docs.insert(
            meta::BATCH_ID.into(),
            "UUID of the run that wrote the row.".into(),
        );
        let format = match self.cfg.format {
            Format::Csv => "CSV",
            Format::Jsonl => "JSON Lines",
        };
        StreamInfo {
            name: self.cfg.stream_name(),
            table: self.cfg.table_name(),
            schema: Arc::new(Schema::new(fields)),
            key_recipe: self.key_recipe(),
            cursor_field: None,
            description: format!("{format} file(s) loaded from {}.", self.cfg.path),
            column_docs: docs,
        }
    }
}

/// Mutable state of one stream read.
struct ReadRun<'a> {
    src: &'a FileSource,
    req: &'a ReadRequest,
    out: &'a BatchSender,
    builder: BatchBuilder,
    stream: String,
    keys: Vec<usize>,
    /// Where each `_ROW_KEY` of this run was first seen: a repeated key is a bad row, so the
    /// first occurrence wins deterministically (MERGE could pick either).
    seen: HashMap<String, (usize, u64)>,
    file_index: usize,
}

/// Why a read stopped early.
enum Stop {
    Failed(String),
    Closed,
}

impl From<PluginError> for Stop {
    fn from(e: PluginError) -> Self {
        Stop::Failed(e.to_string())
    }
}

/// A row's text is bounded, so a batch's text columns stay within Arrow's 2 GiB.
fn check_row_text(cells: &[value::Cell]) -> Result<(), String> {
    let n = batch::text_bytes(cells);
    if n > batch::MAX_ROW_TEXT_BYTES {
        return Err(format!(
            "the row holds {n} bytes of text, more than the {} a row may hold",
            batch::MAX_ROW_TEXT_BYTES
        ));
    }
    Ok(())
}

impl ReadRun<'_> {
    async fn flush(&mut self) -> Result<(), Stop> {
        if self.builder.rows() == 0 {
            return Ok(());
        }
        let batch = self.builder.finish()?;
        let rows = batch.num_rows() as u64;
        let tagged = TaggedBatch {
            stream: self.stream.clone(),
            partition: self.src.cfg.partition.clone(),
            batch,
        };
        self.out.send(tagged).await.map_err(|_| Stop::Closed)?;
        self.req.progress.event(ProgressEvent::Page {
            stream: self.stream.clone(),
            rows,
        });
        Ok(())
    }

    fn row_key(&self, cells: &[value::Cell]) -> String {
        let parts: Vec<String> = self.keys.iter().map(|i| cells[*i].key_text()).collect();
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        meta::row_key(&refs)
    }

    /// Reads one file; bad rows fail the read or are counted, per `on_bad_row`.
    async fn read_file(&mut self, file: &FileRef) -> Result<(), Stop> {
        let bytes = file.bytes().await?;
        let mut bad: Vec<(u64, String)> = Vec::new();
        for row in parse::rows(&bytes, &self.src.cfg, &file.name)? {
            let checked = row.cells.and_then(|cells| {
                check_row_text(&cells)?;
                self.check_key_present(&cells)?;
                let key = self.row_key(&cells);
                self.check_unique(&key, row.line)?;
                Ok((cells, key))
            });
            match checked {
                Ok((cells, key)) => {
                    self.builder.push(&cells, &key);
                    if self.builder.full(self.src.cfg.batch_rows) {
                        self.flush().await?;
                    }
                }
                Err(msg) if self.src.cfg.on_bad_row == OnBadRow::Fail => {
                    return Err(Stop::Failed(format!("{}:{}: {msg}", file.name, row.line)));
                }
                Err(msg) => bad.push((row.line, msg)),
            }
        }
        self.warn_skipped(file, &bad);
        Ok(())
    }

    fn check_key_present(&self, cells: &[value::Cell]) -> Result<(), String> {
        match self.keys.iter().find(|i| cells[**i] == value::Cell::Null) {
            Some(i) => Err(format!(
                "primary key column {} is empty",
                self.src.cfg.columns[*i].name
            )),
            None => Ok(()),
        }
    }

    fn check_unique(&mut self, key: &str, line: u64) -> Result<(), String> {
        match self.seen.get(key) {
            Some((f, l)) => Err(format!(
                "duplicate primary key ({}), first seen {}{l}",
                self.src.cfg.primary_key.join(", "),
                if *f == self.file_index {
                    "at line "
                } else {
                    "in an earlier file, line "
                }
            )),
            None => {
                self.seen.insert(key.to_string(), (self.file_index, line));
                Ok(())
            }
        }
    }

    fn warn_skipped(&self, file: &FileRef, bad: &[(u64, String)]) {
        let Some((line, first)) = bad.first() else {
            return;
        };
        let lines: Vec<String> = bad.iter().take(10).map(|(l, _)| l.to_string()).collect();
        let more = if bad.len() > 10 { ", ..." } else { "" };
        let message = format!(
            "{}: skipped {} bad row(s) (lines {}{more}); first, line {line}: {first}",
            file.name,
            bad.len(),
            lines.join(", ")
        );
        tracing::warn!("{message}");
        self.req.progress.event(ProgressEvent::Warning {
            stream: self.stream.clone(),
            message,
        });
    }

    /// Reads every changed file; returns the new `files` state map.
    async fn run(
        &mut self,
        files: Vec<FileRef>,
        previous: Map<String, Value>,
    ) -> Result<Map<String, Value>, Stop> {
        let mut state = Map::new();
        for file in files {
            let owned = self.req.shard.is_none_or(|s| s.owns(&file.name));
            let unchanged = previous.get(&file.name) == Some(&file.fingerprint);
            if !owned || unchanged {
                if let Some(p) = previous.get(&file.name) {
                    state.insert(file.name.clone(), p.clone());
                }
                continue;
            }
            self.file_index += 1;
            self.read_file(&file).await?;
            state.insert(file.name.clone(), file.fingerprint.clone());
        }
        self.flush().await?;
        Ok(state)
    }
}

impl FileSource {
    async fn read_stream(&self, req: &ReadRequest, out: &BatchSender) -> StreamResult {
        let stream = self.cfg.stream_name();
        let previous = req
            .state
            .get(&stream)
            .and_then(|s| s.get("files"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let builder = match BatchBuilder::new(self.data_fields()) {
            Ok(b) => b,
            Err(e) => {
                return StreamResult::Failed {
                    error: e.to_string(),
                }
            }
        };
        let files = match locate::locate(&self.cfg.path, &self.cfg.storage_options).await {
            Ok(f) => f,
            Err(e) => {
                return StreamResult::Failed {
                    error: e.to_string(),
                }
            }
        };
        let mut run = ReadRun {
            src: self,
            req,
            out,
            builder,
            stream,
            keys: self.cfg.key_indexes(),
            seen: HashMap::new(),
            file_index: 0,
        };
        match run.run(files, previous).await {
            Ok(files) => StreamResult::Done {
                state: json!({ "files": files }),
            },
            Err(Stop::Failed(error)) => StreamResult::Failed { error },
            Err(Stop::Closed) => StreamResult::Failed {
                error: "file source: the engine stopped taking batches".into(),
            },
        }
    }
}

#[async_trait]
impl Source for FileSource {
    fn streams(&self) -> Vec<StreamInfo> {
        vec![self.stream_info()]
    }

    fn plan(&self) -> Vec<String> {
        vec![format!(
            "file: {:?} {} → {} (key {}, bad rows: {:?})",
            self.cfg.format,
            self.cfg.path,
            self.cfg.table_name(),
            self.key_recipe(),
            self.cfg.on_bad_row
        )]
    }

    async fn check(&self) -> Vec<flowctl_core::check::CheckResult> {
        check::check(&self.cfg).await
    }

    async fn read(&self, request: ReadRequest, out: BatchSender) -> Result<ReadOutcome> {
        let stream = self.cfg.stream_name();
        let mut outcome = ReadOutcome::default();
        if !request.streams.is_empty() && !request.streams.contains(&stream) {
            return Ok(outcome);
        }
        let wanted = &request.only_partitions;
        let result = if !wanted.is_empty() && !wanted.contains(&self.cfg.partition) {
            let state = request
                .state
                .get(&stream)
                .cloned()
                .unwrap_or_else(|| json!({"files": {}}));
            StreamResult::Done { state }
        } else {
            self.read_stream(&request, &out).await
        };
        outcome.streams.insert(stream, result);
        Ok(outcome)
    }
}

fn build(value: Value) -> Result<Box<dyn Source>> {
    Ok(Box::new(FileSource::from_config(FileConfig::from_value(
        value,
    )?)?))
}

inventory::submit! {
    flowctl_core::SourceRegistration {
        name: "file",
        description: "CSV or JSON Lines files (local path, glob, s3:// gs:// file:// URL) into one table",
        config_schema: || schemars::schema_for!(FileConfig),
        build,
        check: |cfg| FileConfig::from_value(cfg).map(drop),
    }
}
