//! The plugin contract: three traits (Source, StagingSink, WarehouseLoader), one
//! registration type per kind, collected at link time with `inventory`.
//!
//! Data flows as Arrow `RecordBatch`es with an explicit schema per table:
//!
//! ```text
//! Source::read ──TaggedBatch──▶ StagingSink::writer ──StagedFile──▶ WarehouseLoader::load
//! ```
//!
//! A source's batches hold a stream's data columns and `_ROW_KEY`, tagged with the
//! partition they belong to (an account, a project; GitHub: an org, see
//! [`Source::partition_key`]). The engine adds the run's constant columns (`_INGESTED_AT`,
//! `_BATCH_ID`, `_SOURCE_ORG` = the partition) before staging, with
//! [`crate::meta::stage_batch`].
//!
//! A plugin crate registers itself (nothing in core changes). A source registers with
//! [`SourceRegistration::of`], which derives the schema, check and build from its config
//! type; a source that only yields rows implements [`crate::simple::SimpleSource`] (that
//! module has a complete one). Staging and warehouse plugins fill the registration's
//! fields themselves.
//!
//! ```
//! use flowctl_core::schemars::JsonSchema;
//! use flowctl_core::simple::SourceConfig;
//! use flowctl_core::{async_trait, BatchSender, ReadOutcome, ReadRequest, Result, Source};
//! use flowctl_core::{SourceRegistration, StreamInfo};
//!
//! #[derive(serde::Deserialize, JsonSchema)]
//! #[schemars(crate = "flowctl_core::schemars")]
//! #[serde(deny_unknown_fields)]
//! struct NoopConfig {}
//!
//! impl SourceConfig for NoopConfig {}
//!
//! struct Noop;
//!
//! impl From<NoopConfig> for Noop {
//!     fn from(_: NoopConfig) -> Self {
//!         Noop
//!     }
//! }
//!
//! #[async_trait]
//! impl Source for Noop {
//!     fn streams(&self) -> Vec<StreamInfo> {
//!         Vec::new()
//!     }
//!     async fn read(&self, _: ReadRequest, _: BatchSender) -> Result<ReadOutcome> {
//!         Ok(ReadOutcome::default())
//!     }
//! }
//!
//! flowctl_core::inventory::submit! {
//!     SourceRegistration::of::<NoopConfig, Noop>("noop", "Reads nothing")
//! }
//! # fn main() {
//! # let noop = flowctl_core::find_source("noop").expect("registered");
//! # assert!((noop.check)(serde_json::json!({"extra": 1})).is_err());
//! # assert!((noop.build)(serde_json::json!({})).is_ok());
//! # }
//! ```

use crate::progress::Progress;
use crate::Result;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use object_store::path::Path as StorePath;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Checks a config block (already validated against `config_schema`, `${VAR}`
/// interpolated) with no I/O: the error says what is wrong, naming the key.
pub type CheckFn = fn(serde_json::Value) -> Result<()>;

/// Builds a plugin from its config block (already validated against `config_schema`,
/// with `${VAR}` interpolated; secret references are still unresolved).
pub type BuildFn<T> = fn(serde_json::Value) -> Result<Box<T>>;

macro_rules! registration {
    ($(#[$doc:meta])* $name:ident, $trait:ident) => {
        $(#[$doc])*
        pub struct $name {
            /// The `type:` value that selects this plugin in a spec.
            pub name: &'static str,
            /// One line, shown by `flowctl plugins`.
            pub description: &'static str,
            /// JSON schema of the config block (schemars). Must not list `type`:
            /// the composed spec schema adds it.
            pub config_schema: fn() -> schemars::Schema,
            /// Constructor from the validated config block (without the `type` key).
            pub build: BuildFn<dyn $trait>,
            /// The config checks the JSON schema cannot express, without files, network
            /// or environment (those wait for `build` and the run). Every spec load runs
            /// it, so `flowctl validate` refuses what `apply` would.
            pub check: CheckFn,
        }
        inventory::collect!($name);
    };
}

registration!(
    /// Registration of a [`Source`] plugin.
    SourceRegistration,
    Source
);
registration!(
    /// Registration of a [`StagingSink`] plugin.
    StagingRegistration,
    StagingSink
);
registration!(
    /// Registration of a [`WarehouseLoader`] plugin.
    WarehouseRegistration,
    WarehouseLoader
);

/// The kind of plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginKind {
    Source,
    Staging,
    Warehouse,
}

impl PluginKind {
    /// The spec key that holds this kind's block.
    pub fn spec_key(self) -> &'static str {
        match self {
            PluginKind::Source => "source",
            PluginKind::Staging => "staging",
            PluginKind::Warehouse => "warehouse",
        }
    }
}

/// A uniform view of any registration, for listing and schema composition.
#[derive(Clone, Copy)]
pub struct PluginInfo {
    pub kind: PluginKind,
    pub name: &'static str,
    pub description: &'static str,
    pub config_schema: fn() -> schemars::Schema,
}

/// Every linked plugin, sorted by kind then name.
pub fn registered_plugins() -> Vec<PluginInfo> {
    let mut out: Vec<PluginInfo> = Vec::new();
    for r in inventory::iter::<SourceRegistration> {
        out.push(PluginInfo {
            kind: PluginKind::Source,
            name: r.name,
            description: r.description,
            config_schema: r.config_schema,
        });
    }
    for r in inventory::iter::<StagingRegistration> {
        out.push(PluginInfo {
            kind: PluginKind::Staging,
            name: r.name,
            description: r.description,
            config_schema: r.config_schema,
        });
    }
    for r in inventory::iter::<WarehouseRegistration> {
        out.push(PluginInfo {
            kind: PluginKind::Warehouse,
            name: r.name,
            description: r.description,
            config_schema: r.config_schema,
        });
    }
    out.sort_by(|a, b| (a.kind, a.name).cmp(&(b.kind, b.name)));
    out
}

/// Runs the `check` of the plugin a block names (nothing when no linked plugin has that
/// name: the composed schema has already refused it).
pub fn check_block(kind: PluginKind, type_name: &str, config: serde_json::Value) -> Result<()> {
    let check = match kind {
        PluginKind::Source => find_source(type_name).map(|r| r.check),
        PluginKind::Staging => find_staging(type_name).map(|r| r.check),
        PluginKind::Warehouse => find_warehouse(type_name).map(|r| r.check),
    };
    check.map_or(Ok(()), |f| f(config))
}

pub fn find_source(name: &str) -> Option<&'static SourceRegistration> {
    inventory::iter::<SourceRegistration>
        .into_iter()
        .find(|r| r.name == name)
}
pub fn find_staging(name: &str) -> Option<&'static StagingRegistration> {
    inventory::iter::<StagingRegistration>
        .into_iter()
        .find(|r| r.name == name)
}
pub fn find_warehouse(name: &str) -> Option<&'static WarehouseRegistration> {
    inventory::iter::<WarehouseRegistration>
        .into_iter()
        .find(|r| r.name == name)
}

// ---------------------------------------------------------------------------------------
// Source
// ---------------------------------------------------------------------------------------

/// A stream a source can read, and the warehouse table it lands in.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// Stream name used in specs and state (`pull_request`).
    pub name: String,
    /// Warehouse table name, UPPER_SNAKE_CASE (`PULL_REQUEST`).
    pub table: String,
    /// Explicit Arrow schema, including the metadata columns (see [`crate::meta`]).
    pub schema: SchemaRef,
    /// Human description of the `_ROW_KEY` recipe, e.g. `md5(org|repo|id)`.
    pub key_recipe: String,
    /// Column whose newer value wins in MERGE besides `_INGESTED_AT` (documentation only).
    pub cursor_field: Option<String>,
    /// One line description, used for docs and dbt sources.
    pub description: String,
    /// Column descriptions (column name -> text), for docs and dbt sources.
    pub column_docs: BTreeMap<String, String>,
}

/// What one run asks a source for.
#[derive(Clone)]
pub struct ReadRequest {
    /// Streams to read, in the order the spec / flags give them.
    pub streams: Vec<String>,
    /// Saved state per stream (absent: first run or `--full-refresh`).
    pub state: BTreeMap<String, serde_json::Value>,
    /// UUID of this run, the value of `_BATCH_ID` (the engine writes that column).
    pub batch_id: String,
    /// One timestamp per run, the value of `_INGESTED_AT` (the engine writes that column).
    pub ingested_at: DateTime<Utc>,
    /// Restrict to these partitions (GitHub: orgs; see [`Source::partition_key`]); empty =
    /// all configured.
    pub only_partitions: Vec<String>,
    /// Deterministic split: read only the sub-units (GitHub: repos) with `hash % count == index`.
    pub shard: Option<Shard>,
    /// Where to report requests, pages, waits and warnings.
    pub progress: Progress,
}

impl std::fmt::Debug for ReadRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadRequest")
            .field("streams", &self.streams)
            .field("batch_id", &self.batch_id)
            .field("only_partitions", &self.only_partitions)
            .field("shard", &self.shard)
            .finish_non_exhaustive()
    }
}

/// `--shard I/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Whether the unit named `key` (e.g. `org/repo`) belongs to this shard. Stable across
    /// runs, machines and versions (MD5, not the std hasher).
    pub fn owns(&self, key: &str) -> bool {
        let digest = md5::compute(key.as_bytes());
        let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        n % self.count == self.index
    }
}

/// A batch of rows of one stream, tagged with its partition.
///
/// The batch holds the stream's data columns, `_ROW_KEY` (and `_RAW` where the schema has
/// it), found by name; the engine adds the run's constant columns (`_INGESTED_AT`,
/// `_BATCH_ID`, `_SOURCE_ORG`) and puts the columns in the declared order (see
/// [`crate::meta::stage_batch`]). Values a source still sends for those three are replaced.
#[derive(Debug, Clone)]
pub struct TaggedBatch {
    pub stream: String,
    /// The partition the rows belong to (GitHub: the org): the value of `_SOURCE_ORG` and of
    /// the `<partition_key>=` segment of staged paths.
    pub partition: String,
    pub batch: RecordBatch,
}

/// What a source sends to the engine.
#[derive(Debug)]
pub enum SourceMessage {
    Batch(TaggedBatch),
    /// The source sends no more batches for this partition (in any stream) during this
    /// read. The engine then completes the partition's staged files at once instead of
    /// holding their open row groups and upload buffers until the whole read ends, so
    /// memory does not grow with the number of partitions. A batch for the partition after
    /// this is an error.
    PartitionDone(String),
    /// Every row that `state` covers was sent before this message: the engine may load
    /// what it has staged for `stream` and then commit `state` (see [`BatchSender::checkpoint`]).
    Checkpoint {
        stream: String,
        state: serde_json::Value,
    },
}

/// The engine's request that a source stop early (a run's deadline), readable from any
/// task of the source.
#[derive(Debug, Clone)]
pub struct StopSignal(tokio::sync::watch::Receiver<bool>);

impl StopSignal {
    /// A signal that never fires (tests, tools that read outside the engine).
    pub fn never() -> StopSignal {
        // A dropped sender keeps reading `false`, and `wait` never resolves.
        StopSignal(tokio::sync::watch::channel(false).1)
    }

    /// Whether the engine asked the source to stop.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the engine asks the source to stop (never, if it does not).
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The sending half a source writes its batches into (bounded: `send` waits while the
/// engine is behind). Cloneable; the read is over when every clone is dropped.
#[derive(Debug, Clone)]
pub struct BatchSender {
    tx: tokio::sync::mpsc::Sender<SourceMessage>,
    stop: StopSignal,
}

/// The engine closed its end: the source should stop and return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the engine stopped accepting batches")]
pub struct ChannelClosed;

impl BatchSender {
    async fn message(&self, m: SourceMessage) -> std::result::Result<(), ChannelClosed> {
        self.tx.send(m).await.map_err(|_| ChannelClosed)
    }

    /// Send one batch, waiting while the channel is full.
    pub async fn send(&self, batch: TaggedBatch) -> std::result::Result<(), ChannelClosed> {
        self.message(SourceMessage::Batch(batch)).await
    }

    /// Declare that no more batches of `partition` follow in this read (see
    /// [`SourceMessage::PartitionDone`]). Optional: a source that never calls it has its
    /// files completed when the read ends.
    pub async fn partition_done(&self, partition: &str) -> std::result::Result<(), ChannelClosed> {
        self.message(SourceMessage::PartitionDone(partition.to_string()))
            .await
    }

    /// Offer `state` as `stream`'s state once what was sent so far is loaded: every row
    /// it covers must have been sent before this call. It is the stream's whole state
    /// (units finished so far updated, the others as they were), and it may cover less
    /// than the final `StreamResult`. Optional: without it, state commits at the end.
    pub async fn checkpoint(
        &self,
        stream: &str,
        state: serde_json::Value,
    ) -> std::result::Result<(), ChannelClosed> {
        self.message(SourceMessage::Checkpoint {
            stream: stream.to_string(),
            state,
        })
        .await
    }

    /// The engine's stop request (a deadline). A source that honours it stops between
    /// requests and returns its streams as `Done` with state covering the finished units.
    pub fn stop_signal(&self) -> StopSignal {
        self.stop.clone()
    }
}

/// The engine's end of a [`batch_channel`].
#[derive(Debug)]
pub struct BatchReceiver {
    rx: tokio::sync::mpsc::Receiver<SourceMessage>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl BatchReceiver {
    /// The next message, `None` once every sender is dropped.
    pub async fn recv_message(&mut self) -> Option<SourceMessage> {
        self.rx.recv().await
    }

    /// The next batch, skipping other messages (for tests and tools that only collect rows).
    pub async fn recv(&mut self) -> Option<TaggedBatch> {
        loop {
            if let SourceMessage::Batch(b) = self.rx.recv().await? {
                return Some(b);
            }
        }
    }

    /// The next message if one is waiting, without waiting.
    pub fn try_recv_message(&mut self) -> Option<SourceMessage> {
        self.rx.try_recv().ok()
    }

    /// Ask the source to stop early (see [`BatchSender::stop_signal`]).
    pub fn request_stop(&self) {
        self.stop.send_replace(true);
    }
}

/// A bounded channel of `capacity` messages from a source to the engine.
pub fn batch_channel(capacity: usize) -> (BatchSender, BatchReceiver) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    (
        BatchSender {
            tx,
            stop: StopSignal(stop_rx),
        },
        BatchReceiver { rx, stop },
    )
}

/// How one stream's read ended.
#[derive(Debug, Clone)]
pub enum StreamResult {
    /// Everything yielded; `state` is the new cursor to save once the rows are merged.
    /// It never covers rows that were not yielded.
    Done { state: serde_json::Value },
    /// The stream failed; its state must not advance. The message is user-facing.
    Failed { error: String },
}

/// Outcome of [`Source::read`]: one result per requested stream.
#[derive(Debug, Clone, Default)]
pub struct ReadOutcome {
    pub streams: BTreeMap<String, StreamResult>,
}

/// A data source. Reads several streams at once (so, e.g., reviews can be fetched for
/// the pull requests just listed without listing them again) and sends bounded batches
/// into `out` as it goes; the engine stages them while the source keeps fetching.
#[async_trait]
pub trait Source: Send + Sync {
    /// The streams this configured source will read by default (spec `streams:`), with
    /// schemas. Must not touch the network.
    fn streams(&self) -> Vec<StreamInfo>;

    /// Every stream the plugin supports (for docs, `dbt sources`, raw_tables.sql).
    fn all_streams(&self) -> Vec<StreamInfo> {
        self.streams()
    }

    /// Human-readable lines describing what a read would do (for `plan`). No network.
    fn plan(&self) -> Vec<String> {
        Vec::new()
    }

    /// What one partition of this source is called (GitHub: `org`): the key of the
    /// `<key>=<value>` segment of staged paths and the word for it in messages. A
    /// lower-case word of `[a-z0-9_]`.
    fn partition_key(&self) -> &'static str {
        DEFAULT_PARTITION_KEY
    }

    /// Read the requested streams: only those in `request.streams`, only the partitions in
    /// `request.only_partitions` (all when empty) and the share of `request.shard`. Each
    /// batch carries data columns and `_ROW_KEY`; the engine adds the constant metadata
    /// columns. Returns per-stream results, each `Done` with a state (`{}` when the
    /// source keeps no cursor); an `Err` means the whole source failed before any stream
    /// could be judged (bad credentials, partition not found).
    /// If `out` is closed (the engine gave up), return promptly.
    async fn read(&self, request: ReadRequest, out: BatchSender) -> Result<ReadOutcome>;

    /// `flowctl check`: verify credentials and access against the real service, reading
    /// as little as possible and nothing into staging. Empty: the plugin checks nothing.
    async fn check(&self) -> Vec<crate::check::CheckResult> {
        Vec::new()
    }
}

// ---------------------------------------------------------------------------------------
// Staging
// ---------------------------------------------------------------------------------------

/// The partition key of a source that does not name its own ([`Source::partition_key`]).
pub const DEFAULT_PARTITION_KEY: &str = "partition";

/// Where staged files of one table and partition go.
#[derive(Debug, Clone)]
pub struct StageTarget {
    /// Table name in lower case as used in paths (`pull_request`).
    pub table: String,
    /// The source's [`Source::partition_key`]: staged paths hold `<partition_key>=<partition>`.
    pub partition_key: &'static str,
    /// The partition value (GitHub: the org).
    pub partition: String,
    /// The run's UTC date (the `date=` path segment).
    pub date: NaiveDate,
    pub batch_id: String,
    pub schema: SchemaRef,
}

/// One file written to staging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedFile {
    /// Full URI: `gs://bucket/prefix/...`, `s3://bucket/prefix/...`, `file:///abs/path`.
    pub uri: String,
    /// Path relative to the staging root (`{prefix}/`), e.g.
    /// `pull_request/org=acme/date=2026-01-02/pull_request-<batch>-00000.parquet`.
    /// This is what a Snowflake stage over the root sees.
    pub relative_path: String,
    pub rows: u64,
    pub bytes: u64,
}

/// The staging root, for loaders that read staged files and for the state store.
#[derive(Clone)]
pub struct StagingLocation {
    /// `local`, `s3` or `gcs`.
    pub kind: String,
    /// URI of the root: `s3://bucket/prefix/`, `gs://bucket/prefix/`, `file:///abs/dir/`.
    pub root_uri: String,
    /// Store holding the files, and the root path inside it. A staged file is at
    /// `Path::parse(format!("{root}/{relative_path}"))` (not `root.child(..)`, which would
    /// escape the `/`s); `flowctl_object_store::staged_path` does this.
    pub store: Arc<dyn ObjectStore>,
    pub root: StorePath,
    /// For `local`: the absolute directory of the root on this machine.
    pub local_dir: Option<std::path::PathBuf>,
    /// For `s3`: endpoint/region settings a loader may need to read the files directly.
    pub options: BTreeMap<String, String>,
}

impl std::fmt::Debug for StagingLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagingLocation")
            .field("kind", &self.kind)
            .field("root_uri", &self.root_uri)
            .finish_non_exhaustive()
    }
}

/// Writes batches of one table/partition as Parquet files and returns them.
#[async_trait]
pub trait StagedWriter: Send {
    /// Append a batch (schema equal to the target's). Data may be uploaded as it comes.
    async fn write(&mut self, batch: &RecordBatch) -> Result<()>;
    /// Flush and complete every upload; returns the files written (none if no rows).
    async fn finish(self: Box<Self>) -> Result<Vec<StagedFile>>;
    /// Abandon: abort uploads in flight, leave nothing half-written visible.
    async fn abort(self: Box<Self>);
}

/// A staging sink (object storage or a local folder).
#[async_trait]
pub trait StagingSink: Send + Sync {
    /// Where files go (and where the default state store lives). No network.
    fn location(&self) -> Result<StagingLocation>;

    /// Lines for `plan`. No network.
    fn plan(&self) -> Vec<String> {
        Vec::new()
    }

    /// Open a writer for one table and partition.
    async fn writer(&self, target: StageTarget) -> Result<Box<dyn StagedWriter>>;

    /// Called once files are no longer needed: after a successful load with the files
    /// just loaded, or after a stream failed with the files it staged (never reused: the
    /// next run stages its rows again). Deletes them when the config says
    /// `cleanup: delete_after_load`.
    async fn after_load(&self, files: &[StagedFile]) -> Result<()>;

    /// `flowctl check`: write a probe file under the root and read it back, leaving it
    /// for the warehouse's check. Empty: the plugin checks nothing.
    async fn check(&self) -> crate::check::StagingCheck {
        crate::check::StagingCheck::default()
    }

    /// `flowctl check`: delete the probe file [`StagingSink::check`] left.
    async fn remove_probe(&self, probe: &StagedFile) -> Vec<crate::check::CheckResult> {
        let _ = probe;
        Vec::new()
    }
}

// ---------------------------------------------------------------------------------------
// Warehouse
// ---------------------------------------------------------------------------------------

/// A table to load: name and Arrow schema (with metadata columns).
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// UPPER_SNAKE_CASE table name (`PULL_REQUEST`); the staging table is `<TABLE>_STAGE`.
    pub name: String,
    pub schema: SchemaRef,
}

/// Counts reported by a load, from the warehouse's own statement results.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadStats {
    /// Rows copied into the staging table.
    pub rows_loaded: u64,
    pub inserted: u64,
    pub updated: u64,
    /// Statements sent (excluding DDL), for the benchmark's statement count.
    pub statements: u64,
}

/// A warehouse loader: ensures tables, then COPY → MERGE (newer only) → TRUNCATE.
#[async_trait]
pub trait WarehouseLoader: Send + Sync {
    /// Lines for `plan` (the SQL a run would issue for `table`, without secrets). No network.
    fn plan(&self, table: &TableSpec) -> Vec<String> {
        let _ = table;
        Vec::new()
    }

    /// CREATE TABLE IF NOT EXISTS target and `<TABLE>_STAGE`; ALTER TABLE ADD COLUMN for
    /// columns new in the schema (never drop).
    async fn ensure_table(&self, table: &TableSpec) -> Result<()>;

    /// How many tables the engine may load (and, before the read, prepare with
    /// `ensure_table`) at once. 1 (the default) takes them one after the other; a
    /// warehouse that runs statements of different tables in parallel (Snowflake) says
    /// more, so the load phase of a run takes about its longest table.
    fn max_concurrent_loads(&self) -> usize {
        1
    }

    /// Load exactly `files` (all of this run's files for the table) from `staging`:
    /// one COPY, one MERGE (staged rows deduplicated to the newest `_INGESTED_AT` per
    /// `_ROW_KEY`, update only when the staged row is newer), one TRUNCATE of staging.
    /// Loading the same files twice changes nothing.
    async fn load(
        &self,
        table: &TableSpec,
        files: &[StagedFile],
        staging: &StagingLocation,
    ) -> Result<LoadStats>;

    /// `flowctl check`: verify the connection, the objects a load uses and the privileges
    /// it needs, without touching the pipeline's tables; `ctx` holds the staging probe
    /// file to list and read. Empty: the plugin checks nothing.
    async fn check(&self, ctx: &crate::check::CheckContext) -> Vec<crate::check::CheckResult> {
        let _ = ctx;
        Vec::new()
    }
}
