//! Simple sources: a source that only yields its rows, and the typed registration that
//! derives a plugin's schema, build and config check from its config type.
//!
//! A [`SimpleSource`] declares its [`Table`]s and, for one table and one partition at a
//! time, pushes its rows as JSON objects into [`Rows`]. Everything else of the [`Source`]
//! contract is done here: only the requested streams, partitions (`--partitions`) and
//! shard are read; rows become Arrow batches with their `_ROW_KEY` (the engine adds the
//! run's constant columns); each partition is declared done when read; and every stream
//! returns a result and a state, `{}` when the source keeps no cursor.
//!
//! State is kept per stream as `{"<partition>": <what rows() returned>}`, and `rows()`
//! receives its partition's entry.
//!
//! `flowctl new source NAME` writes a crate from this complete source (the doctest below
//! builds it through its registration and reads it):
//!
//! ```
// The scaffolded crate's own test is part of the text; the lines after it test the source.
#![allow(clippy::test_attr_in_doctest)]
#![doc = include_str!("../templates/source.rs")]
//! # fn main() {
//! # let reg = flowctl_core::find_source("inline").expect("registered");
//! # let cfg = serde_json::json!({"rows": [{"id": 1, "name": "one"}]});
//! # (reg.check)(cfg.clone()).unwrap();
//! # let source = (reg.build)(cfg).unwrap();
//! # let (batches, outcome) = flowctl_core::simple::read_all(source.as_ref(), &["item"]).unwrap();
//! # assert_eq!(batches.iter().map(|b| b.batch.num_rows()).sum::<usize>(), 1);
//! # assert!(matches!(outcome.streams["item"], flowctl_core::StreamResult::Done { .. }));
//! # assert!((reg.check)(serde_json::json!({"rows": 3})).is_err());
//! # }
//! ```

use crate::meta;
use crate::{
    async_trait, batch_channel, BatchSender, PluginError, ReadOutcome, ReadRequest, Result, Source,
    SourceRegistration, StreamInfo, StreamResult, TaggedBatch,
};
use arrow::array::{make_array, Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::json::ReaderBuilder;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Rows per batch sent to the engine: bounded memory whatever a partition holds.
const BATCH_ROWS: usize = 1000;

/// The partition of a source that does not declare any.
pub const DEFAULT_PARTITION: &str = "default";

/// One stream of a simple source and the warehouse table it lands in.
#[derive(Debug, Clone)]
pub struct Table {
    name: String,
    columns: Vec<(String, DataType)>,
    key: Vec<String>,
    description: String,
}

impl Table {
    /// Stream `name` (snake_case), landing in table `NAME`. `columns` are the keys of the
    /// rows and their Arrow types (timestamps: [`meta::utc_timestamp`], RFC 3339 strings in
    /// the rows); every column is nullable, and the table's are upper-cased.
    pub fn new(name: &str, columns: &[(&str, DataType)]) -> Self {
        Table {
            name: name.to_string(),
            columns: columns
                .iter()
                .map(|(c, t)| (c.to_string(), t.clone()))
                .collect(),
            key: columns
                .first()
                .map(|(c, _)| c.to_string())
                .into_iter()
                .collect(),
            description: String::new(),
        }
    }

    /// The columns whose values make `_ROW_KEY`, the MERGE key (default: the first column).
    pub fn key(mut self, columns: &[&str]) -> Self {
        self.key = columns.iter().map(|c| c.to_string()).collect();
        self
    }

    /// One line for docs and dbt sources.
    pub fn describe(mut self, text: &str) -> Self {
        self.description = text.to_string();
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stream as the engine sees it: upper-cased columns, then the metadata columns.
    pub fn info(&self) -> StreamInfo {
        let mut fields: Vec<Field> = self
            .columns
            .iter()
            .map(|(c, t)| Field::new(c.to_ascii_uppercase(), t.clone(), true))
            .collect();
        fields.extend(meta::metadata_fields());
        StreamInfo {
            name: self.name.clone(),
            table: self.name.to_ascii_uppercase(),
            schema: Arc::new(Schema::new(fields)),
            key_recipe: format!("md5({})", self.key.join("|")),
            cursor_field: None,
            description: self.description.clone(),
            column_docs: BTreeMap::new(),
        }
    }

    /// The columns a batch of this table carries: the declared ones, upper-cased, then
    /// `_ROW_KEY` (the engine adds the rest).
    fn batch_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .columns
            .iter()
            .map(|(c, t)| Field::new(c.to_ascii_uppercase(), t.clone(), true))
            .collect();
        fields.push(Field::new(meta::ROW_KEY, DataType::Utf8, false));
        Arc::new(Schema::new(fields))
    }

    /// Why `_ROW_KEY` cannot be made, if it cannot: every row would share one key.
    fn key_problem(&self) -> Option<String> {
        let declared = |k: &String| self.columns.iter().any(|(c, _)| c == k);
        match self.key.iter().find(|k| !declared(k)) {
            _ if self.key.is_empty() => Some(format!("table `{}` has no key column", self.name)),
            Some(k) => Some(format!(
                "table `{}`: key column `{k}` is not one of its columns",
                self.name
            )),
            None => None,
        }
    }

    /// The columns as they are named in the rows. The JSON decoder knows zones by offset
    /// only: `UTC` is read as `+00:00`, then given its declared name back.
    fn row_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|(c, t)| match t {
                DataType::Timestamp(unit, Some(tz)) if tz.as_ref() == "UTC" => {
                    Field::new(c, DataType::Timestamp(*unit, Some("+00:00".into())), true)
                }
                _ => Field::new(c, t.clone(), true),
            })
            .collect();
        Arc::new(Schema::new(fields))
    }
}

/// A source that only yields its rows; [`Source`] comes with it.
#[async_trait]
pub trait SimpleSource: Send + Sync {
    /// The streams this configured source reads. No network.
    fn tables(&self) -> Vec<Table>;

    /// The partitions (accounts, projects...) read one after the other; each becomes the
    /// `_SOURCE_ORG` of its rows, the `<partition_key>=` segment of staged paths and a
    /// value of `--partitions`.
    fn partitions(&self) -> Vec<String> {
        vec![DEFAULT_PARTITION.to_string()]
    }

    /// What one partition is called (see [`Source::partition_key`]).
    fn partition_key(&self) -> &'static str {
        crate::DEFAULT_PARTITION_KEY
    }

    /// Push the rows of `out.table()` in `out.partition()` newer than `out.state()`, and
    /// return the new state (`None`: no cursor). An error fails the stream, and its state
    /// does not advance.
    async fn rows(&self, out: &mut Rows<'_>) -> Result<Option<Value>>;
}

/// What [`SimpleSource::rows`] reads, and where it pushes the rows (sent in batches).
pub struct Rows<'a> {
    table: &'a Table,
    schema: SchemaRef,
    partition: &'a str,
    state: Option<Value>,
    out: &'a BatchSender,
    pending: Vec<Value>,
}

impl<'a> Rows<'a> {
    /// The stream being read.
    pub fn table(&self) -> &str {
        &self.table.name
    }

    /// The partition being read.
    pub fn partition(&self) -> &str {
        self.partition
    }

    /// This partition's state from the last successful run (`None` on the first run and
    /// with `--full-refresh`).
    pub fn state(&self) -> Option<&Value> {
        self.state.as_ref()
    }

    /// One row: a JSON object whose keys are the table's columns (missing keys are null,
    /// unknown keys are ignored).
    pub async fn push(&mut self, row: impl Into<Value>) -> Result<()> {
        self.pending.push(row.into());
        if self.pending.len() >= BATCH_ROWS {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.pending);
        let batch = self.to_batch(&rows)?;
        let tagged = TaggedBatch {
            stream: self.table.name.clone(),
            partition: self.partition.to_string(),
            batch,
        };
        self.out
            .send(tagged)
            .await
            .map_err(|e| PluginError::other(e.to_string()).with_source(e))
    }

    fn to_batch(&self, rows: &[Value]) -> Result<arrow::record_batch::RecordBatch> {
        let table = &self.table.name;
        let bad = |e: &dyn std::fmt::Display| {
            PluginError::data(format!(
                "stream `{table}`, partition `{}`: a row does not fit the declared columns: {e}",
                self.partition
            ))
        };
        let mut keys = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let Some(obj) = row.as_object() else {
                return Err(bad(&format!("row {i} is not a JSON object")));
            };
            keys.push(
                row_key(obj, &self.table.key)
                    .map_err(|c| bad(&format!("row {i} has no value for its key column `{c}`")))?,
            );
        }
        let mut decoder = ReaderBuilder::new(self.table.row_schema())
            .with_batch_size(rows.len())
            .build_decoder()
            .map_err(|e| bad(&e))?;
        decoder.serialize(rows).map_err(|e| bad(&e))?;
        let data = decoder
            .flush()
            .map_err(|e| bad(&e))?
            .ok_or_else(|| bad(&"no rows decoded"))?;
        let mut columns = Vec::with_capacity(data.num_columns() + 1);
        for (column, (_, declared)) in data.columns().iter().zip(&self.table.columns) {
            if column.data_type() == declared {
                columns.push(column.clone());
            } else {
                let data = column.to_data().into_builder().data_type(declared.clone());
                columns.push(make_array(data.build()?));
            }
        }
        columns.push(Arc::new(StringArray::from(keys)));
        Ok(arrow::record_batch::RecordBatch::try_new(
            self.schema.clone(),
            columns,
        )?)
    }
}

/// `_ROW_KEY` of a row, or the name of the key column it lacks.
fn row_key(row: &Map<String, Value>, key: &[String]) -> std::result::Result<String, String> {
    let mut parts = Vec::with_capacity(key.len());
    for column in key {
        match row.get(column) {
            None | Some(Value::Null) => return Err(column.clone()),
            Some(Value::String(s)) => parts.push(s.clone()),
            Some(other) => parts.push(other.to_string()),
        }
    }
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    Ok(meta::row_key(&refs))
}

#[async_trait]
impl<T: SimpleSource> Source for T {
    fn streams(&self) -> Vec<StreamInfo> {
        self.tables().iter().map(Table::info).collect()
    }

    fn plan(&self) -> Vec<String> {
        vec![format!(
            "{}s: {}",
            SimpleSource::partition_key(self),
            self.partitions().join(", ")
        )]
    }

    fn partition_key(&self) -> &'static str {
        SimpleSource::partition_key(self)
    }

    async fn read(&self, request: ReadRequest, out: BatchSender) -> Result<ReadOutcome> {
        let tables = self.tables();
        let partitions: Vec<String> = self
            .partitions()
            .into_iter()
            .filter(|p| request.only_partitions.is_empty() || request.only_partitions.contains(p))
            .filter(|p| request.shard.is_none_or(|s| s.owns(p)))
            .collect();
        // Partitions not read this time keep their saved state.
        let mut states: BTreeMap<&str, Map<String, Value>> = request
            .streams
            .iter()
            .map(|s| {
                let saved = request.state.get(s).and_then(Value::as_object).cloned();
                (s.as_str(), saved.unwrap_or_default())
            })
            .collect();
        let mut failed: BTreeMap<&str, String> = BTreeMap::new();
        for stream in &request.streams {
            let problem = match tables.iter().find(|t| &t.name == stream) {
                None => {
                    let known: Vec<&str> = tables.iter().map(Table::name).collect();
                    Some(format!(
                        "no stream `{stream}` (streams: {})",
                        known.join(", ")
                    ))
                }
                Some(t) => t.key_problem(),
            };
            if let Some(msg) = problem {
                failed.insert(stream, msg);
            }
        }
        for partition in &partitions {
            for table in tables.iter().filter(|t| request.streams.contains(&t.name)) {
                if failed.contains_key(table.name.as_str()) {
                    continue;
                }
                let stream = table.name.as_str();
                let mut rows = Rows {
                    table,
                    schema: table.batch_schema(),
                    partition,
                    state: states.get(stream).and_then(|s| s.get(partition)).cloned(),
                    out: &out,
                    pending: Vec::new(),
                };
                let result = match self.rows(&mut rows).await {
                    Ok(state) => rows.flush().await.map(|()| state),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(Some(state)) => {
                        states
                            .entry(stream)
                            .or_default()
                            .insert(partition.clone(), state);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        failed.insert(stream, format!("partition `{partition}`: {e}"));
                    }
                }
            }
            if out.partition_done(partition).await.is_err() {
                break;
            }
        }
        let streams = request
            .streams
            .iter()
            .map(|s| {
                let result = match failed.remove(s.as_str()) {
                    Some(error) => StreamResult::Failed { error },
                    None => StreamResult::Done {
                        state: Value::Object(states.remove(s.as_str()).unwrap_or_default()),
                    },
                };
                (s.clone(), result)
            })
            .collect();
        Ok(ReadOutcome { streams })
    }
}

/// Reads `streams` of `source` as a run would (all partitions, no saved state) and
/// returns every batch as the engine stages it (with the run's constant columns, see
/// [`meta::stage_batch`]) with the outcome: for a source's own tests.
pub fn read_all(source: &dyn Source, streams: &[&str]) -> Result<(Vec<TaggedBatch>, ReadOutcome)> {
    let schemas: BTreeMap<String, SchemaRef> = source
        .streams()
        .into_iter()
        .map(|s| (s.name, s.schema))
        .collect();
    let request = ReadRequest {
        streams: streams.iter().map(|s| s.to_string()).collect(),
        state: BTreeMap::new(),
        batch_id: uuid::Uuid::new_v4().to_string(),
        ingested_at: chrono::Utc::now(),
        only_partitions: Vec::new(),
        shard: None,
        progress: Arc::new(crate::progress::NoProgress),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| PluginError::other(format!("cannot start a runtime: {e}")).with_source(e))?;
    let (batch_id, ingested_at) = (request.batch_id.clone(), request.ingested_at);
    let (batches, outcome) = runtime.block_on(async {
        let (tx, mut rx) = batch_channel(2);
        let collect = async {
            let mut batches = Vec::new();
            while let Some(b) = rx.recv().await {
                batches.push(b);
            }
            batches
        };
        let (outcome, batches) = tokio::join!(source.read(request, tx), collect);
        (batches, outcome)
    });
    let outcome = outcome?;
    let staged = batches
        .into_iter()
        .map(|mut tb| {
            let Some(schema) = schemas.get(&tb.stream) else {
                return Err(PluginError::other(format!(
                    "the source sent a batch for stream `{}`, which it does not declare",
                    tb.stream
                )));
            };
            let run = meta::RunColumns {
                ingested_at,
                batch_id: &batch_id,
                partition: &tb.partition,
            };
            tb.batch = meta::stage_batch(&tb.stream, schema, &tb.batch, &run)?;
            Ok(tb)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((staged, outcome))
}

/// The config of a source registered with [`SourceRegistration::of`].
pub trait SourceConfig: DeserializeOwned + schemars::JsonSchema {
    /// The checks the JSON schema cannot express, without I/O; the error names the key.
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

impl From<std::convert::Infallible> for PluginError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl SourceRegistration {
    /// The registration of source `S`, built from config `C`: the schema is `C`'s, the
    /// check deserializes the block and runs [`SourceConfig::check`], the build then
    /// converts the config with `S::try_from` (or `From`).
    pub const fn of<C, S>(name: &'static str, description: &'static str) -> Self
    where
        C: SourceConfig,
        S: Source + TryFrom<C> + 'static,
        PluginError: From<S::Error>,
    {
        SourceRegistration {
            name,
            description,
            config_schema: schema_of::<C>,
            build: build_of::<C, S>,
            check: check_of::<C>,
        }
    }
}

fn schema_of<C: SourceConfig>() -> schemars::Schema {
    schemars::schema_for!(C)
}

fn parse<C: SourceConfig>(block: Value) -> Result<C> {
    let config: C =
        serde_json::from_value(block).map_err(|e| PluginError::config(e.to_string()))?;
    config.check()?;
    Ok(config)
}

fn check_of<C: SourceConfig>(block: Value) -> Result<()> {
    parse::<C>(block).map(drop)
}

fn build_of<C, S>(block: Value) -> Result<Box<dyn Source>>
where
    C: SourceConfig,
    S: Source + TryFrom<C> + 'static,
    PluginError: From<S::Error>,
{
    Ok(Box::new(S::try_from(parse::<C>(block)?)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Shard, SourceMessage};
    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    use serde_json::json;

    /// Two partitions; `event` yields `count` rows per partition after the saved cursor,
    /// `broken` fails in partition `b`.
    struct Events {
        count: i64,
    }

    #[async_trait]
    impl SimpleSource for Events {
        fn tables(&self) -> Vec<Table> {
            vec![
                Table::new(
                    "event",
                    &[("id", DataType::Int64), ("at", meta::utc_timestamp())],
                )
                .key(&["id"]),
                Table::new("broken", &[("id", DataType::Int64)]),
            ]
        }
        fn partitions(&self) -> Vec<String> {
            vec!["a".into(), "b".into()]
        }
        async fn rows(&self, out: &mut Rows<'_>) -> Result<Option<Value>> {
            if out.table() == "broken" {
                if out.partition() == "b" {
                    return Err(PluginError::external("the service said no"));
                }
                return Ok(None);
            }
            let after = out.state().and_then(|s| s["last"].as_i64()).unwrap_or(0);
            for id in after + 1..=after + self.count {
                out.push(json!({"id": id, "at": "2026-01-02T03:04:05Z"}))
                    .await?;
            }
            Ok(Some(json!({"last": after + self.count})))
        }
    }

    fn request(streams: &[&str]) -> ReadRequest {
        ReadRequest {
            streams: streams.iter().map(|s| s.to_string()).collect(),
            state: BTreeMap::new(),
            batch_id: "batch-1".into(),
            ingested_at: "2026-05-06T07:08:09Z".parse().unwrap(),
            only_partitions: Vec::new(),
            shard: None,
            progress: Arc::new(crate::progress::NoProgress),
        }
    }

    async fn run(source: &dyn Source, req: ReadRequest) -> (Vec<SourceMessage>, ReadOutcome) {
        let (tx, mut rx) = batch_channel(1);
        let collect = async {
            let mut out = Vec::new();
            while let Some(m) = rx.recv_message().await {
                out.push(m);
            }
            out
        };
        let (outcome, messages) = tokio::join!(source.read(req, tx), collect);
        (messages, outcome.unwrap())
    }

    fn state(outcome: &ReadOutcome, stream: &str) -> Value {
        match &outcome.streams[stream] {
            StreamResult::Done { state } => state.clone(),
            StreamResult::Failed { error } => panic!("{stream} failed: {error}"),
        }
    }

    #[tokio::test]
    async fn rows_get_their_row_key_and_each_partition_is_declared_done() {
        let (messages, outcome) = run(&Events { count: 2 }, request(&["event"])).await;
        let info = &Events { count: 0 }.streams()[0];
        let mut seen = Vec::new();
        for m in &messages {
            match m {
                SourceMessage::Batch(b) => {
                    let batch = &b.batch;
                    let names: Vec<&str> = batch
                        .schema_ref()
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect();
                    // The run's constant columns are the engine's to add.
                    assert_eq!(names, ["ID", "AT", meta::ROW_KEY]);
                    let ids = batch
                        .column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .unwrap();
                    let keys = batch.column_by_name(meta::ROW_KEY).unwrap();
                    let keys = keys.as_any().downcast_ref::<StringArray>().unwrap();
                    assert_eq!(keys.value(1), meta::row_key(&[&ids.value(1).to_string()]));
                    let row_at = batch.column_by_name("AT").unwrap();
                    let row_at = row_at.as_any().downcast_ref::<TimestampMicrosecondArray>();
                    // 2026-01-02T03:04:05Z
                    assert_eq!(row_at.unwrap().value(0), 1_767_323_045_000_000);
                    let run = meta::RunColumns {
                        ingested_at: "2026-05-06T07:08:09Z".parse().unwrap(),
                        batch_id: "batch-1",
                        partition: &b.partition,
                    };
                    let staged = meta::stage_batch("event", &info.schema, batch, &run).unwrap();
                    assert_eq!(staged.schema(), info.schema);
                    seen.push(format!("{}:{}", b.partition, batch.num_rows()));
                }
                SourceMessage::PartitionDone(p) => seen.push(format!("done {p}")),
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
        assert_eq!(seen, ["a:2", "done a", "b:2", "done b"]);
        assert_eq!(
            state(&outcome, "event"),
            json!({"a": {"last": 2}, "b": {"last": 2}})
        );
    }

    #[tokio::test]
    async fn only_the_requested_partitions_and_shard_are_read_and_others_keep_their_state() {
        let mut req = request(&["event"]);
        req.only_partitions = vec!["b".into()];
        req.state
            .insert("event".into(), json!({"a": {"last": 7}, "b": {"last": 3}}));
        let (messages, outcome) = run(&Events { count: 1 }, req).await;
        let partitions: Vec<&str> = messages
            .iter()
            .filter_map(|m| match m {
                SourceMessage::Batch(b) => Some(b.partition.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(partitions, ["b"]);
        assert_eq!(
            state(&outcome, "event"),
            json!({"a": {"last": 7}, "b": {"last": 4}})
        );

        let shard = Shard { index: 0, count: 2 };
        let mut req = request(&["event"]);
        req.shard = Some(shard);
        let (_, outcome) = run(&Events { count: 1 }, req).await;
        let read: Vec<String> = state(&outcome, "event")
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let owned: Vec<&str> = ["a", "b"].into_iter().filter(|p| shard.owns(p)).collect();
        assert_eq!(read, owned);
        assert!(
            owned.len() < 2,
            "the test needs a shard that leaves a partition out"
        );
    }

    #[tokio::test]
    async fn a_failing_or_unknown_stream_fails_alone_and_no_cursor_saves_an_empty_state() {
        let (_, outcome) = run(&Events { count: 0 }, request(&["broken", "nope", "event"])).await;
        let StreamResult::Failed { error } = &outcome.streams["broken"] else {
            panic!("broken should fail");
        };
        assert_eq!(error, "partition `b`: the service said no");
        let StreamResult::Failed { error } = &outcome.streams["nope"] else {
            panic!("nope should fail");
        };
        assert_eq!(error, "no stream `nope` (streams: event, broken)");
        assert_eq!(
            state(&outcome, "event"),
            json!({"a": {"last": 0}, "b": {"last": 0}})
        );

        struct NoCursor;
        #[async_trait]
        impl SimpleSource for NoCursor {
            fn tables(&self) -> Vec<Table> {
                vec![Table::new("t", &[("id", DataType::Utf8)])]
            }
            async fn rows(&self, out: &mut Rows<'_>) -> Result<Option<Value>> {
                out.push(json!({"id": "x"})).await?;
                Ok(None)
            }
        }
        let (messages, outcome) = run(&NoCursor, request(&["t"])).await;
        assert_eq!(
            Table::new("t", &[]).key_problem().unwrap(),
            "table `t` has no key column"
        );
        let typo = Table::new("t", &[("id", DataType::Utf8)]).key(&["ID"]);
        let problem = typo.key_problem().unwrap();
        assert_eq!(
            problem,
            "table `t`: key column `ID` is not one of its columns"
        );
        assert!(matches!(&messages[1], SourceMessage::PartitionDone(p) if p == DEFAULT_PARTITION));
        assert_eq!(state(&outcome, "t"), json!({}));
    }

    #[tokio::test]
    async fn rows_are_sent_in_bounded_batches_and_bad_rows_fail_their_stream() {
        let (messages, _) = run(&Events { count: 2500 }, request(&["event"])).await;
        let sizes: Vec<usize> = messages
            .iter()
            .filter_map(|m| match m {
                SourceMessage::Batch(b) if b.partition == "a" => Some(b.batch.num_rows()),
                _ => None,
            })
            .collect();
        assert_eq!(sizes, [1000, 1000, 500]);

        struct Bad(Value);
        #[async_trait]
        impl SimpleSource for Bad {
            fn tables(&self) -> Vec<Table> {
                vec![Table::new("t", &[("id", DataType::Int64)])]
            }
            async fn rows(&self, out: &mut Rows<'_>) -> Result<Option<Value>> {
                out.push(self.0.clone()).await?;
                Ok(None)
            }
        }
        for (row, expected) in [
            (
                json!({"id": "seven"}),
                "stream `t`, partition `default`: a row does not fit",
            ),
            (
                json!({"name": 1}),
                "row 0 has no value for its key column `id`",
            ),
            (json!([1]), "row 0 is not a JSON object"),
        ] {
            let (_, outcome) = run(&Bad(row), request(&["t"])).await;
            let StreamResult::Failed { error } = &outcome.streams["t"] else {
                panic!("{expected}: should fail");
            };
            assert!(error.contains(expected), "{error}");
        }
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        /// How many rows.
        count: i64,
    }
    impl SourceConfig for Cfg {
        fn check(&self) -> Result<()> {
            if self.count < 0 {
                return Err(PluginError::config("`count` must be 0 or more"));
            }
            Ok(())
        }
    }
    impl From<Cfg> for Events {
        fn from(cfg: Cfg) -> Self {
            Events { count: cfg.count }
        }
    }

    #[test]
    fn a_typed_registration_derives_schema_check_and_build_from_the_config() {
        let reg = SourceRegistration::of::<Cfg, Events>("events", "Test events");
        let schema = serde_json::to_value((reg.config_schema)()).unwrap();
        assert_eq!(
            schema["properties"]["count"]["description"],
            "How many rows."
        );
        let err = |v: Value| (reg.check)(v).unwrap_err().to_string();
        assert!(err(json!({"count": 1, "cont": 2})).contains("unknown field `cont`"));
        assert_eq!(
            err(json!({"count": -1})),
            "invalid config: `count` must be 0 or more"
        );
        let source = (reg.build)(json!({"count": 3})).unwrap();
        let (batches, outcome) = read_all(source.as_ref(), &["event"]).unwrap();
        assert_eq!(
            state(&outcome, "event"),
            json!({"a": {"last": 3}, "b": {"last": 3}})
        );
        assert_eq!(batches.iter().map(|b| b.batch.num_rows()).sum::<usize>(), 6);
        // `read_all` returns the batches as the engine stages them.
        let declared = &source.streams()[0].schema;
        for b in &batches {
            assert_eq!(&b.batch.schema(), declared);
            let org = b.batch.column_by_name(meta::SOURCE_ORG).unwrap();
            let org = org.as_any().downcast_ref::<StringArray>().unwrap();
            assert!(org.iter().all(|v| v == Some(b.partition.as_str())));
        }
        assert_eq!(
            state(&outcome, "event"),
            json!({"a": {"last": 3}, "b": {"last": 3}})
        );
        assert!((reg.build)(json!({"count": -1})).is_err());
    }
}
