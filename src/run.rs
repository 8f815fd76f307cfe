//! `apply`, `state` and `serve`: the commands that run pipelines (owned by the engine).
//! The CLI in main.rs parses these argument structs and calls the functions below.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `flowctl apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Pipeline spec file (YAML).
    pub spec: PathBuf,
    /// Only these streams (comma-separated), e.g. `pull_request,repository`.
    #[arg(long, value_delimiter = ',')]
    pub streams: Vec<String>,
    /// Only these partitions of the source (comma-separated): orgs for GitHub.
    #[arg(long, value_delimiter = ',', visible_alias = "partitions")]
    pub orgs: Vec<String>,
    /// Ignore saved state and read everything again (MERGE keeps the warehouse exact).
    #[arg(long)]
    pub full_refresh: bool,
    /// Show what would run, like `flowctl plan`, and touch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run shard I of N (e.g. `0/4`): a deterministic split of repos; state kept per shard.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// If another apply of this pipeline holds the lease, wait for it instead of failing.
    #[arg(long)]
    pub wait_for_lease: bool,
    /// Write the end-of-run summary as JSON to this file (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub output: Option<String>,
    /// Stop reading after this long (e.g. `50m`, `2h`), load and commit what is complete,
    /// and exit 0 with `"complete": false` in the summary; the next run continues.
    /// Overrides the spec's `run.max_duration`.
    #[arg(long, value_name = "DURATION", value_parser = spec::parse_duration)]
    pub max_duration: Option<Duration>,
}

/// Arguments of `flowctl state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub command: StateCommand,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Print the saved state of a pipeline (cursors per stream, org and repo).
    Show {
        /// Pipeline spec file.
        spec: PathBuf,
        /// Shard I/N whose state to show.
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
    },
    /// Forget saved state so the next run backfills.
    Reset {
        /// Pipeline spec file.
        spec: PathBuf,
        /// Only this stream (repeatable); default all.
        #[arg(long)]
        stream: Vec<String>,
        /// Shard I/N whose state to reset.
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
    },
}

/// Arguments of `flowctl query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Pipeline spec file whose warehouse to query (DuckDB).
    pub spec: PathBuf,
    /// SQL to run, e.g. "SELECT COUNT(*) FROM RAW_TABLES.PULL_REQUEST".
    pub sql: String,
    /// DuckDB memory limit for this query, in DuckDB's syntax (`512MB`, `4GB`). The
    /// spec's `memory_limit` bounds loads; a query gets its own, since reading `_RAW`
    /// decompresses 2,048 documents at a time (~64 MB a thread with GitHub-sized JSON),
    /// which a 128MB load limit cannot hold.
    #[arg(long, value_name = "SIZE", default_value = "1GB")]
    pub memory_limit: String,
    /// DuckDB threads for this query (default: the spec's `threads`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,
}

/// Arguments of `flowctl serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Pipeline spec files; each runs at the times of its `schedule:`.
    #[arg(required = true)]
    pub specs: Vec<PathBuf>,
}

use flowctl_core::engine::{self, Plugins, RunOptions, RunSummary};
use flowctl_core::spec::{self, Spec};
use flowctl_core::state::StateStore;
use flowctl_core::{PluginError, Shard};
use std::io::IsTerminal;
use std::time::Duration;

/// Exit code for a failed run.
const EXIT_RUN_FAILED: u8 = 1;
/// Exit code for bad usage or an invalid spec.
const EXIT_USAGE: u8 = 2;

/// A failure with the exit code it maps to.
pub(crate) struct Failure {
    code: u8,
    pub(crate) message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }
    pub(crate) fn run(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_RUN_FAILED,
            message: message.into(),
        }
    }
}

pub(crate) fn exit(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

pub(crate) fn load(path: &std::path::Path) -> Result<Spec, Failure> {
    spec::load_spec(path).map_err(|errs| Failure::usage(format!("invalid spec\n{errs}")))
}

/// Parse `I/N` (0 <= I < N).
pub fn parse_shard(text: &str) -> Result<Shard, String> {
    let (i, n) = text
        .split_once('/')
        .ok_or_else(|| format!("--shard `{text}`: expected I/N, e.g. 0/4"))?;
    let index: u32 = i
        .trim()
        .parse()
        .map_err(|_| format!("--shard `{text}`: `{i}` is not a number"))?;
    let count: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("--shard `{text}`: `{n}` is not a number"))?;
    if count == 0 || index >= count {
        return Err(format!(
            "--shard `{text}`: expected 0 <= I < N (shards are numbered from 0)"
        ));
    }
    Ok(Shard { index, count })
}

fn build_error(kind: &str, type_name: &str, e: PluginError) -> Failure {
    match e {
        PluginError::NotImplemented(m) => {
            Failure::run(format!("{kind} plugin `{type_name}` cannot run yet: {m}"))
        }
        PluginError::Config(m) => Failure::usage(format!("{kind} `{type_name}`: {m}")),
        other => Failure::run(format!("{kind} `{type_name}`: {other}")),
    }
}

/// Build the three plugins of a spec from their registrations.
pub fn build_plugins(spec: &Spec) -> Result<Plugins, Failure> {
    let unknown =
        |kind: &str, t: &str| Failure::usage(format!("{kind} type `{t}` is not registered"));
    let src = flowctl_core::find_source(&spec.source.type_name)
        .ok_or_else(|| unknown("source", &spec.source.type_name))?;
    let stg = flowctl_core::find_staging(&spec.staging.type_name)
        .ok_or_else(|| unknown("staging", &spec.staging.type_name))?;
    let wh = flowctl_core::find_warehouse(&spec.warehouse.type_name)
        .ok_or_else(|| unknown("warehouse", &spec.warehouse.type_name))?;
    Ok(Plugins {
        source: (src.build)(spec.source.config.clone())
            .map_err(|e| build_error("source", src.name, e))?,
        staging: (stg.build)(spec.staging.config.clone())
            .map_err(|e| build_error("staging", stg.name, e))?,
        warehouse: (wh.build)(spec.warehouse.config.clone())
            .map_err(|e| build_error("warehouse", wh.name, e))?,
    })
}

/// The state store of a spec: `state.location` when given, else beside the staged data.
pub fn state_store(spec: &Spec, plugins: &Plugins) -> Result<StateStore, Failure> {
    let location = match &spec.state.location {
        Some(uri) => flowctl_object_store::location_from_uri(uri, &Default::default())
            .map_err(|e| Failure::usage(format!("state.location `{uri}`: {e}")))?,
        None => plugins
            .staging
            .location()
            .map_err(|e| build_error("staging", &spec.staging.type_name, e))?,
    };
    Ok(engine::state_store_for(&location))
}

fn options(args: &ApplyArgs, spec: &Spec) -> Result<RunOptions, Failure> {
    let shard = args
        .shard
        .as_deref()
        .map(parse_shard)
        .transpose()
        .map_err(Failure::usage)?;
    Ok(RunOptions {
        streams: args.streams.clone(),
        partitions: args.orgs.clone(),
        full_refresh: args.full_refresh,
        shard,
        wait_for_lease: args
            .wait_for_lease
            .then_some(Duration::from_secs(24 * 3600)),
        lease_ttl: spec.state.lease_ttl_seconds.map(Duration::from_secs),
        progress_bars: std::io::stderr().is_terminal(),
        // Batches waiting between the source and the Parquet writer (~0.9 MB each with
        // `_RAW`). Both run on one thread, so more buys no overlap: 40k PRs on the
        // production path, 4 -> 2: anonymous peak -2 to -5 MiB, CPU within noise.
        channel_batches: 2,
        cancel: None,
        checkpoint_interval: spec.run.checkpoint_interval,
        max_duration: args.max_duration.or(spec.run.max_duration),
        retries: Default::default(),
    })
}

fn report(spec: &Spec, summary: &RunSummary, output: Option<&str>) -> Result<(), Failure> {
    println!(
        "pipeline {} run {}{}",
        summary.pipeline,
        summary.batch_id,
        summary
            .shard
            .as_ref()
            .map(|s| format!(" (shard {s})"))
            .unwrap_or_default()
    );
    print!("{}", summary.table());
    for w in &summary.warnings {
        println!("warning: {w}");
    }
    if summary.ok && !summary.complete {
        println!(
            "stopped at the deadline after {} checkpoint(s): what was read to the end is loaded \
             and committed; run again to continue (\"complete\": false in --output)",
            summary.checkpoints
        );
    }
    if let Some(out) = output {
        let json = serde_json::to_string_pretty(summary)
            .map_err(|e| Failure::run(format!("writing the summary: {e}")))?;
        if out == "-" {
            println!("{json}");
        } else {
            std::fs::write(out, json + "\n")
                .map_err(|e| Failure::run(format!("cannot write summary to {out}: {e}")))?;
        }
    }
    if summary.ok && spec.warehouse.type_name == "duckdb" {
        let path = spec
            .warehouse
            .config
            .get("path")
            .and_then(|v| v.as_str())
            .unwrap_or("./warehouse.duckdb");
        // The way this binary was invoked, so the hint works without flowctl on PATH.
        let me = std::env::args().next().unwrap_or_else(|| "flowctl".into());
        let schema = spec.warehouse.config.get("schema").and_then(|v| v.as_str());
        let table = summary.streams.first().map(|s| s.table.as_str());
        println!(
            "\nLook at the result:\n  {me} query {} \"{}\"\n  (or with the duckdb CLI: duckdb {path})",
            spec.path.display(),
            result_query(schema.unwrap_or("RAW_TABLES"), table)
        );
    }
    Ok(())
}

/// The query the hint after a DuckDB run suggests: rows per partition of the run's first
/// table (every table has `_SOURCE_ORG`; `SELECT *` would print whole `_RAW` documents).
fn result_query(schema: &str, table: Option<&str>) -> String {
    match table {
        Some(t) => {
            format!("SELECT _SOURCE_ORG, COUNT(*) FROM {schema}.{t} GROUP BY ALL ORDER BY ALL")
        }
        None => "SELECT table_name FROM information_schema.tables".to_string(),
    }
}

async fn apply_inner(args: ApplyArgs) -> Result<(), Failure> {
    let spec = load(&args.spec)?;
    if args.dry_run {
        return crate::plan_spec(&spec).map_err(Failure::run);
    }
    let mut opts = options(&args, &spec)?;
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    opts.cancel = Some(cancel_rx);
    // Ctrl-C: tell the engine, which drops work in flight (cancelling a warehouse
    // statement being polled) and releases the lease before we exit.
    let interrupt = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: cancelling (Ctrl-C again to exit at once)");
            let _ = cancel_tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let plugins = build_plugins(&spec)?;
    let store = state_store(&spec, &plugins)?;
    let result = engine::run(&spec.name, &plugins, &store, &opts).await;
    interrupt.abort();
    if opts.cancel.as_ref().is_some_and(|c| *c.borrow()) {
        // Give cancel requests spawned by dropped work a moment to reach the warehouse.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let summary = result.map_err(|e| Failure::run(format!("pipeline {}: {e}", spec.name)))?;
    report(&spec, &summary, args.output.as_deref())?;
    if summary.ok {
        Ok(())
    } else {
        let failed: Vec<String> = summary
            .failures()
            .into_iter()
            .map(|(s, e)| format!("  {s}: {e}"))
            .collect();
        Err(Failure::run(format!(
            "pipeline {}: {} stream(s) failed (what finished was loaded and its state committed; \
             what failed keeps its previous state):\n{}",
            spec.name,
            failed.len(),
            failed.join("\n")
        )))
    }
}

pub async fn apply(args: ApplyArgs) -> ExitCode {
    exit(apply_inner(args).await)
}

async fn state_inner(args: StateArgs) -> Result<(), Failure> {
    let (path, shard) = match &args.command {
        StateCommand::Show { spec, shard } | StateCommand::Reset { spec, shard, .. } => {
            (spec, shard)
        }
    };
    let spec = load(path)?;
    let shard = shard
        .as_deref()
        .map(parse_shard)
        .transpose()
        .map_err(Failure::usage)?;
    let plugins = build_plugins(&spec)?;
    let store = state_store(&spec, &plugins)?;
    let mut state = store
        .load(&spec.name, shard)
        .await
        .map_err(|e| Failure::run(e.to_string()))?;
    match args.command {
        StateCommand::Show { .. } => {
            let json = serde_json::to_string_pretty(&state)
                .map_err(|e| Failure::run(format!("state: {e}")))?;
            println!("# {}", store.display());
            println!("{json}");
        }
        StateCommand::Reset { stream, .. } => {
            if stream.is_empty() {
                store
                    .delete(&spec.name, shard)
                    .await
                    .map_err(|e| Failure::run(e.to_string()))?;
                println!(
                    "state of {} reset: the next run backfills every stream",
                    spec.name
                );
            } else {
                for s in &stream {
                    if state.streams.remove(s).is_none() {
                        eprintln!("note: stream {s} had no saved state");
                    }
                }
                store
                    .save(&spec.name, shard, &state)
                    .await
                    .map_err(|e| Failure::run(e.to_string()))?;
                println!(
                    "state of {} reset for {}: the next run backfills them",
                    spec.name,
                    stream.join(", ")
                );
            }
        }
    }
    Ok(())
}

#[cfg(not(feature = "duckdb"))]
async fn query_inner(args: QueryArgs) -> Result<(), Failure> {
    Err(Failure::usage(format!(
        "query {}: this flowctl was built without DuckDB (cargo feature `duckdb`); \
         use a default build to query DuckDB warehouses",
        args.spec.display()
    )))
}

#[cfg(feature = "duckdb")]
async fn query_inner(args: QueryArgs) -> Result<(), Failure> {
    let spec = load(&args.spec)?;
    if spec.warehouse.type_name != "duckdb" {
        return Err(Failure::usage(format!(
            "query: the warehouse of {} is `{}`; `flowctl query` reads DuckDB warehouses \
             (query Snowflake with its own tools)",
            args.spec.display(),
            spec.warehouse.type_name
        )));
    }
    let mut cfg: flowctl_duckdb::DuckDbConfig =
        serde_json::from_value(spec.warehouse.config.clone())
            .map_err(|e| Failure::usage(format!("warehouse: {e}")))?;
    if flowctl_duckdb::memory::parse_size(&args.memory_limit).is_none() {
        return Err(Failure::usage(format!(
            "query: --memory-limit {:?}: expected a size such as 512MB, 2GB or 1GiB",
            args.memory_limit
        )));
    }
    let limit = args.memory_limit.clone();
    cfg.memory_limit = Some(args.memory_limit);
    if let Some(n) = args.threads {
        cfg.threads = n;
    }
    let db =
        flowctl_duckdb::DuckDbLoader::from_config(cfg).map_err(|e| Failure::run(e.to_string()))?;
    let rows = db.query_text(&args.sql).await.map_err(|e| {
        let text = e.to_string();
        if flowctl_duckdb::memory::is_out_of_memory(&text) {
            Failure::run(format!(
                "{text}\n(this query ran with --memory-limit {}; raise it)",
                limit
            ))
        } else {
            Failure::run(text)
        }
    })?;
    for row in rows {
        let cells: Vec<String> = row
            .into_iter()
            .map(|c| c.unwrap_or_else(|| "NULL".into()))
            .collect();
        println!("{}", cells.join("\t"));
    }
    Ok(())
}

/// `flowctl query SPEC SQL`.
pub async fn query(args: QueryArgs) -> ExitCode {
    exit(query_inner(args).await)
}

pub async fn state(args: StateArgs) -> ExitCode {
    exit(state_inner(args).await)
}

/// Run one pipeline at the times of its schedule until `stop` flips. Runs of one
/// pipeline are sequential here (and the lease guards against other processes).
async fn serve_one(spec: Spec, mut stop: tokio::sync::watch::Receiver<bool>) {
    use std::str::FromStr;
    let Some(expr) = spec.schedule.clone() else {
        return;
    };
    let cron = match croner::Cron::from_str(&expr) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(pipeline = %spec.name, "schedule `{expr}`: {e}");
            return;
        }
    };
    loop {
        let now = chrono::Utc::now();
        let next = match cron.find_next_occurrence(&now, false) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(pipeline = %spec.name, "schedule `{expr}`: {e}");
                return;
            }
        };
        tracing::info!(pipeline = %spec.name, next = %next.to_rfc3339(), "next run scheduled");
        let wait = (next - now).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        let args = ApplyArgs {
            spec: spec.path.clone(),
            streams: vec![],
            orgs: vec![],
            full_refresh: false,
            dry_run: false,
            shard: None,
            wait_for_lease: false,
            output: None,
            max_duration: None,
        };
        // A run in progress finishes even when SIGTERM arrives: stopping mid-run would
        // be safe (state commits after MERGE) but wasteful.
        // Each run is a task of its own: should a run panic, the panic ends that run (it
        // commits nothing, as any failed run), is logged, and the schedule goes on.
        match tokio::spawn(apply_inner(args)).await {
            Ok(Ok(())) => {}
            Ok(Err(f)) => tracing::error!(pipeline = %spec.name, "run failed: {}", f.message),
            Err(e) => tracing::error!(pipeline = %spec.name, "run failed: it panicked ({e})"),
        }
        if *stop.borrow() {
            return;
        }
    }
}

async fn serve_inner(args: ServeArgs) -> Result<(), Failure> {
    let mut specs = Vec::new();
    for path in &args.specs {
        let spec = load(path)?;
        if spec.schedule.is_none() {
            return Err(Failure::usage(format!(
                "{}: no `schedule:` (a cron expression) — `serve` runs pipelines at their schedule",
                path.display()
            )));
        }
        specs.push(spec);
    }
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for spec in specs {
        tasks.spawn(serve_one(spec, rx.clone()));
    }
    wait_for_shutdown().await;
    tracing::info!("shutting down: waiting for runs in progress to finish");
    let _ = tx.send(true);
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            tracing::error!("a pipeline's schedule ended: {e}");
        }
    }
    Ok(())
}

async fn wait_for_shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

pub async fn serve(args: ServeArgs) -> ExitCode {
    exit(serve_inner(args).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_parsing() {
        assert_eq!(parse_shard("1/4").unwrap(), Shard { index: 1, count: 4 });
        assert!(parse_shard("4/4").unwrap_err().contains("0 <= I < N"));
        assert!(parse_shard("x/4").unwrap_err().contains("not a number"));
        assert!(parse_shard("3").unwrap_err().contains("expected I/N"));
    }

    #[test]
    fn the_result_hint_queries_the_runs_first_table() {
        assert_eq!(
            result_query("RAW_TABLES", Some("ITEM")),
            "SELECT _SOURCE_ORG, COUNT(*) FROM RAW_TABLES.ITEM GROUP BY ALL ORDER BY ALL"
        );
        assert!(result_query("RAW_TABLES", None).contains("information_schema.tables"));
    }
}
