//! The `WarehouseLoader` over one embedded DuckDB database.

use crate::config::{DuckDbConfig, DEFAULT_MEMORY_LIMIT};
use crate::fetch;
use crate::memory;
use crate::slices::{self, FileLayout, Slice};
use crate::sql::{self, TableNames};
use duckdb::Connection;
use flowctl_core::{
    async_trait, LoadStats, PluginError, Result, StagedFile, StagingLocation, TableSpec,
    WarehouseLoader,
};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

// `flowctl check` lives in its own file; a child module, so it uses the loader's fields.
#[path = "check.rs"]
mod check;

/// DuckDB loader. The `duckdb` crate is synchronous, so every call runs on
/// `spawn_blocking` against one connection behind a mutex: DuckDB allows a single
/// writing process per file anyway, and one connection keeps transactions simple.
pub struct DuckDbLoader {
    config: DuckDbConfig,
    /// Opened on first use, so `plan` and `validate` never create a database file.
    conn: Arc<Mutex<Option<Connection>>>,
}

impl DuckDbLoader {
    /// Checks the config; opens nothing yet.
    pub fn from_config(config: DuckDbConfig) -> Result<Self> {
        sql::ident(&config.schema, "warehouse.schema")?;
        Ok(Self {
            config,
            conn: Arc::new(Mutex::new(None)),
        })
    }

    /// Where the database lives, `~/` expanded (`:memory:` stays as is).
    pub fn database_path(&self) -> PathBuf {
        let raw = self.config.path.to_string_lossy();
        PathBuf::from(flowctl_core::expand_home(&raw))
    }

    /// Runs a query and returns its rows as text (NULL as `None`; strings, integers,
    /// floats and booleans rendered plainly, TIMESTAMPTZ in UTC; cast anything else to
    /// VARCHAR in the SQL).
    /// Lets end-to-end tests and `flowctl` check the warehouse through this loader's
    /// connection, since DuckDB lets only one process open a database file for writing.
    pub async fn query_text(&self, query: &str) -> Result<Vec<Vec<Option<String>>>> {
        let query = query.to_string();
        self.with_conn(move |conn| {
            let mut stmt = conn.prepare(&query).map_err(|e| db_err(&query, e))?;
            let mut out = Vec::new();
            for batch in stmt.query_arrow([]).map_err(|e| db_err(&query, e))? {
                rows_text(&batch, &mut out)
                    .map_err(|e| PluginError::data(format!("{query}: {e}")).with_source(e))?;
            }
            Ok(out)
        })
        .await
    }

    fn names(&self, table: &TableSpec) -> Result<TableNames> {
        TableNames::new(&self.config.schema, &table.name)
    }

    /// Runs `f` with the (lazily opened) connection on the blocking pool.
    async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let path = self.database_path();
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| {
                PluginError::other("duckdb connection poisoned by an earlier panic")
            })?;
            if guard.is_none() {
                *guard = Some(open(&path, &config)?);
            }
            match guard.as_mut() {
                Some(c) => f(c),
                None => Err(PluginError::other("duckdb connection missing after open")),
            }
        })
        .await
        .map_err(|e| PluginError::other(format!("duckdb task failed: {e}")).with_source(e))?
    }
}

/// Checkpoints before the connection closes, to say when it fails. DuckDB checkpoints on
/// close by itself (folding the WAL into the database file), but silently: under a
/// `memory_limit` too small for the checkpoint it leaves `<file>.wal` behind with no word.
/// The rows are committed either way.
impl Drop for DuckDbLoader {
    fn drop(&mut self) {
        // Busy (a statement of an interrupted run still running on the blocking pool):
        // leave the checkpoint to DuckDB's close rather than wait here.
        let Ok(mut guard) = self.conn.try_lock() else {
            return;
        };
        let Some(conn) = guard.take() else {
            return;
        };
        let path = self.database_path();
        if path.as_os_str() == ":memory:" {
            return;
        }
        if let Err(e) = conn.execute_batch("CHECKPOINT") {
            tracing::warn!(
                "duckdb: the checkpoint when closing {} failed under warehouse.memory_limit {}: {e}\n\
                 (the loaded rows are committed in its WAL, {}.wal, which DuckDB replays on \
                 every open; copy both files together, and raise warehouse.memory_limit or \
                 unset it so the next run folds the WAL into the database file)",
                path.display(),
                self.config.memory_limit(),
                path.display()
            );
        }
    }
}

/// Catalog name the warehouse file is attached under (`USE`d, so queries need no prefix).
const CATALOG: &str = "warehouse";

fn open(path: &std::path::Path, config: &DuckDbConfig) -> Result<Connection> {
    let shown = path.display();
    let mut settings = duckdb::Config::default();
    let n = config.threads;
    settings = settings
        .threads(i64::from(n))
        .map_err(|e| PluginError::config(format!("duckdb threads {n}: {e}")))?;
    let limit = config.memory_limit();
    settings = settings
        .max_memory(limit)
        .map_err(|e| PluginError::config(format!("duckdb memory_limit {limit:?}: {e}")))?;
    let conn = Connection::open_in_memory_with_flags(settings)
        .map_err(|e| PluginError::external(format!("cannot start duckdb: {e}")).with_source(e))?;
    // Loads never depend on row order; without this DuckDB buffers whole inputs to keep it,
    // which made memory grow with the size of a load.
    conn.execute_batch("SET preserve_insertion_order = false")
        .map_err(|e| db_err("SET preserve_insertion_order", e))?;
    if path.as_os_str() == ":memory:" {
        return Ok(conn);
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            PluginError::external(format!("cannot create directory {}: {e}", parent.display()))
                .with_source(e)
        })?;
    }
    let attach = attach_sql(path, config)?;
    conn.execute_batch(&attach).map_err(|e| {
        PluginError::external(format!("cannot open duckdb database {shown}: {e}")).with_source(e)
    })?;
    Ok(conn)
}

/// `ATTACH` of the warehouse file, `USE` it, and spill beside it: an in-memory DuckDB
/// spills to `./.tmp` of whatever directory flowctl runs in, while a file database's own
/// default is `<file>.tmp`.
/// - `ROW_GROUP_SIZE`: DuckDB keeps a transaction's appended rows in memory until a row
///   group (122,880 rows by default) is full, and a commit rewrites the open row group;
///   with `_RAW` that is gigabytes. Small row groups are written out as they fill.
/// - `STORAGE_VERSION` only when creating the file: attaching an existing file with it
///   would upgrade the file's format, which older DuckDB could then no longer open.
fn attach_sql(path: &std::path::Path, config: &DuckDbConfig) -> Result<String> {
    let Some(text) = path.to_str() else {
        return Err(PluginError::config(format!(
            "duckdb path {} is not valid UTF-8",
            path.display()
        )));
    };
    let mut options = vec![format!("ROW_GROUP_SIZE {}", config.row_group_rows)];
    if !path.exists() {
        options.push(format!(
            "STORAGE_VERSION {}",
            crate::sql::string_literal(&config.storage_version)
        ));
    }
    Ok(format!(
        "ATTACH {} AS {CATALOG} ({}); USE {CATALOG}; SET temp_directory = {};",
        crate::sql::string_literal(text),
        options.join(", "),
        crate::sql::string_literal(&format!("{text}.tmp"))
    ))
}

/// Sizes DuckDB's memory for this load from the staged footers (see [`crate::memory`]):
/// with `memory_limit` unset, raises the default for rows too wide for it and returns
/// true (the caller restores it); with it set, keeps it and warns if the rows need more.
fn size_memory_limit(
    conn: &Connection,
    config: &DuckDbConfig,
    names: &TableNames,
    layouts: &[FileLayout],
) -> Result<bool> {
    let need = memory::load_need(layouts, config.row_group_rows, config.threads);
    let shown = memory::megabytes(need);
    let rows = config.row_group_rows;
    if let Some(set) = &config.memory_limit {
        if memory::parse_size(set).is_some_and(|limit| need > limit) {
            tracing::warn!(
                table = %names.target,
                "duckdb: the staged rows are wide: DuckDB needs ~{shown} to append them (it \
                 pins row groups of {rows} rows of the widest column), more than \
                 warehouse.memory_limit {set}; the load may fail \"Out of Memory\" (raise \
                 memory_limit, or unset it to let flowctl size it)"
            );
        }
        return Ok(false);
    }
    let default = memory::parse_size(DEFAULT_MEMORY_LIMIT).unwrap_or(0);
    if need <= default {
        return Ok(false);
    }
    tracing::info!(
        table = %names.target,
        "duckdb: the staged rows are wide: DuckDB needs ~{shown} to append them (it pins \
         row groups of {rows} rows of the widest column); memory limit {shown} for this \
         load instead of {DEFAULT_MEMORY_LIMIT}"
    );
    set_memory_limit(conn, &shown)?;
    Ok(true)
}

fn set_memory_limit(conn: &Connection, limit: &str) -> Result<()> {
    let set = format!("SET memory_limit = {}", sql::string_literal(limit));
    conn.execute_batch(&set).map_err(|e| db_err(&set, e))
}

/// DuckDB's "Out of Memory" advice names its own SET statements; say which spec field.
fn memory_hint(e: PluginError, config: &DuckDbConfig) -> PluginError {
    let text = e.to_string();
    if memory::is_out_of_memory(&text) {
        PluginError::external(format!(
            "{text}\n(flowctl: raise warehouse.memory_limit, now {}, or lower warehouse.threads, now {})",
            config.memory_limit(),
            config.threads
        ))
        .with_source(e)
    } else {
        e
    }
}

fn db_err(what: &str, e: duckdb::Error) -> PluginError {
    PluginError::external(format!("duckdb: {what}: {e}")).with_source(e)
}

#[async_trait]
impl WarehouseLoader for DuckDbLoader {
    async fn check(
        &self,
        ctx: &flowctl_core::check::CheckContext,
    ) -> Vec<flowctl_core::check::CheckResult> {
        check::check(self, ctx).await
    }

    fn plan(&self, table: &TableSpec) -> Vec<String> {
        match self
            .names(table)
            .and_then(|names| render_plan(&names, table, self.config.load_slice_bytes))
        {
            Ok(lines) => lines,
            Err(e) => vec![format!("-- cannot plan table {}: {e}", table.name)],
        }
    }

    async fn ensure_table(&self, table: &TableSpec) -> Result<()> {
        let names = self.names(table)?;
        let columns = sql::column_defs(&table.schema)?;
        self.with_conn(move |conn| ensure(conn, &names, &columns))
            .await
    }

    async fn load(
        &self,
        table: &TableSpec,
        files: &[StagedFile],
        staging: &StagingLocation,
    ) -> Result<LoadStats> {
        let names = self.names(table)?;
        let columns = sql::column_defs(&table.schema)?;
        if files.is_empty() {
            return Ok(LoadStats::default());
        }
        let local = fetch::localize(files, staging).await?;
        let paths: Vec<String> = local
            .paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let uris: Vec<String> = files.iter().map(|f| f.uri.clone()).collect();
        let config = self.config.clone();
        let stats = self
            .with_conn(move |conn| {
                let layouts = paths
                    .iter()
                    .zip(&uris)
                    .map(|(p, u)| FileLayout::read(std::path::Path::new(p), u))
                    .collect::<Result<Vec<_>>>()?;
                let load = Load {
                    names: &names,
                    columns: &columns,
                    paths: &paths,
                    uris: &uris,
                    layouts: &layouts,
                };
                let raised = size_memory_limit(conn, &config, &names, &layouts)?;
                let result = load.run(conn, &slices::plan(&layouts, config.load_slice_bytes));
                if raised {
                    // The load's own outcome matters more than the setting after it.
                    if let Err(e) = set_memory_limit(conn, config.memory_limit()) {
                        tracing::warn!("{e}");
                    }
                }
                result.map_err(|e| memory_hint(e, &config))
            })
            .await;
        drop(local);
        stats
    }
}

/// The SQL a run issues for `table`; the staged files are shown as a placeholder
/// because `plan` runs before anything is staged.
fn render_plan(names: &TableNames, table: &TableSpec, budget: u64) -> Result<Vec<String>> {
    let columns = sql::column_defs(&table.schema)?;
    let files = if budget == 0 {
        "all staged files of this run".to_string()
    } else {
        format!(
            "one slice of about {} MiB of the staged files (a transaction each)",
            budget >> 20
        )
    };
    let keys = format!("<{} of {files}>", key_list(&columns));
    Ok(vec![
        sql::create_schema(names),
        sql::create_table(&names.target, &columns),
        "BEGIN TRANSACTION".to_string(),
        sql::delete_superseded(names, &columns, &keys),
        sql::insert_staged(names, &columns, &format!("<{files}>")),
        sql::delete_losers(names, &columns, &keys),
        "COMMIT".to_string(),
    ])
}

fn key_list(columns: &[(String, String)]) -> String {
    sql::key_columns(columns)
        .iter()
        .map(|(c, _)| c.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// CREATE SCHEMA / TABLE IF NOT EXISTS, then ADD COLUMN for
/// columns the schema gained since the tables were created (never drops).
fn ensure(conn: &mut Connection, names: &TableNames, columns: &[(String, String)]) -> Result<()> {
    let ddl = |stmt: &str| conn.execute_batch(stmt).map_err(|e| db_err(stmt, e));
    ddl(&sql::create_schema(names))?;
    ddl(&sql::create_table(&names.target, columns))?;
    let existing = existing_columns(conn, &names.schema_raw, &names.target_raw)?;
    for (name, ty) in columns {
        if !existing.contains(&name.trim_matches('"').to_ascii_uppercase()) {
            let stmt = sql::add_column(&names.target, name, ty);
            conn.execute_batch(&stmt).map_err(|e| db_err(&stmt, e))?;
            tracing::info!(table = %names.target, column = %name, "added column");
        }
    }
    Ok(())
}

/// Upper-cased, because DuckDB identifiers are case-insensitive.
fn existing_columns(conn: &Connection, schema: &str, table: &str) -> Result<HashSet<String>> {
    let what = format!("list columns of {schema}.{table}");
    let mut stmt = conn
        .prepare(sql::EXISTING_COLUMNS)
        .map_err(|e| db_err(&what, e))?;
    let rows = stmt
        .query_map([schema, table], |r| r.get::<_, String>(0))
        .map_err(|e| db_err(&what, e))?;
    rows.map(|r| {
        r.map(|c| c.to_ascii_uppercase())
            .map_err(|e| db_err(&what, e))
    })
    .collect()
}

/// One load: the table, the local copies of its staged files and their footers.
struct Load<'a> {
    names: &'a TableNames,
    columns: &'a [(String, String)],
    paths: &'a [String],
    uris: &'a [String],
    layouts: &'a [FileLayout],
}

impl Load<'_> {
    /// One transaction per slice (by default the whole load is one slice), each the three
    /// statements of [`sql::delete_superseded`]. A failure rolls back its own slice only;
    /// slices loaded before it stay, which is safe because the stream's state is not
    /// advanced and a load is idempotent: the next run stages the same rows again and
    /// converges, with no duplicate and no loss.
    fn run(&self, conn: &mut Connection, slices: &[Slice]) -> Result<LoadStats> {
        let mut stats = LoadStats::default();
        for (i, slice) in slices.iter().enumerate() {
            let (inserted, updated) = self.load_slice(conn, slice).map_err(|e| {
                let done = if i == 0 {
                    String::new()
                } else {
                    format!(" ({i} of {} slices were loaded before it)", slices.len())
                };
                PluginError::external(format!(
                    "duckdb: load into {} from {} failed, nothing of it applied{done}: {e}",
                    self.names.target,
                    self.slice_uris(slice).join(", ")
                ))
                .with_source(e)
            })?;
            stats.rows_loaded += u64::try_from(slice.rows).unwrap_or(0);
            stats.inserted += inserted;
            stats.updated += updated;
            stats.statements += 3;
        }
        Ok(stats)
    }

    /// The three statements of one slice in one transaction; returns (inserted, updated).
    fn load_slice(&self, conn: &mut Connection, slice: &Slice) -> duckdb::Result<(u64, u64)> {
        let reads: Vec<sql::FileRead<'_>> = slice
            .parts
            .iter()
            .map(|p| sql::FileRead {
                path: &self.paths[p.file],
                columns: &self.layouts[p.file].columns,
                rows: (!p.whole).then_some((p.start, p.end)),
            })
            .collect();
        let keys = sql::slice_source(&sql::key_columns(self.columns), &reads);
        let source = sql::slice_source(self.columns, &reads);
        let table = &self.names.target;
        let timed = |what: &str, run: &dyn Fn() -> duckdb::Result<usize>| {
            let started = std::time::Instant::now();
            let n = count(run()?);
            let ms = elapsed_ms(started);
            tracing::info!(%table, rows = n, ms, "duckdb: {what}");
            Ok::<u64, duckdb::Error>(n)
        };
        let tx = conn.transaction()?;
        let updated = timed("deleted rows superseded by staged ones", &|| {
            tx.execute(&sql::delete_superseded(self.names, self.columns, &keys), [])
        })?;
        let staged = timed("appended staged rows", &|| {
            tx.execute(&sql::insert_staged(self.names, self.columns, &source), [])
        })?;
        let losers = timed("deleted older versions of staged keys", &|| {
            tx.execute(&sql::delete_losers(self.names, self.columns, &keys), [])
        })?;
        let started = std::time::Instant::now();
        tx.commit()?;
        let ms = elapsed_ms(started);
        tracing::info!(%table, ms, "duckdb: committed");
        Ok((staged.saturating_sub(updated + losers), updated))
    }

    fn slice_uris(&self, slice: &Slice) -> Vec<String> {
        let mut seen = Vec::new();
        for p in &slice.parts {
            if !seen.contains(&self.uris[p.file]) {
                seen.push(self.uris[p.file].clone());
            }
        }
        seen
    }
}

fn count(rows: usize) -> u64 {
    u64::try_from(rows).unwrap_or(u64::MAX)
}

/// Appends `batch`'s rows as text. Strings, integers, floats and booleans are rendered
/// plainly; any other type (times, dates, decimals, lists, ...) as Arrow displays it. This
/// reads the Arrow result rather than duckdb's row values, which panic on some types a
/// user's `flowctl query` may return (`TIME_NS`).
fn rows_text(
    batch: &arrow::record_batch::RecordBatch,
    out: &mut Vec<Vec<Option<String>>>,
) -> std::result::Result<(), arrow::error::ArrowError> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType as T, Float32Type, Float64Type};
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default();
    let columns = batch
        .columns()
        .iter()
        .map(|c| match utc_labelled(c.data_type()) {
            Some(t) => arrow::compute::cast(c, &t),
            None => Ok(c.clone()),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let formatters = columns
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    for row in 0..batch.num_rows() {
        let cells = columns
            .iter()
            .zip(&formatters)
            .map(|(c, f)| {
                if c.is_null(row) {
                    return None;
                }
                Some(match c.data_type() {
                    T::Utf8 => c.as_string::<i32>().value(row).to_string(),
                    T::LargeUtf8 => c.as_string::<i64>().value(row).to_string(),
                    T::Float32 => c.as_primitive::<Float32Type>().value(row).to_string(),
                    T::Float64 => c.as_primitive::<Float64Type>().value(row).to_string(),
                    _ => f.value(row).to_string(),
                })
            })
            .collect();
        out.push(cells);
    }
    Ok(())
}

/// The type with every zoned timestamp labelled `+00:00`, or None when there is none.
/// DuckDB labels TIMESTAMPTZ with its session zone (`Etc/UTC`, `Europe/Berlin`), which
/// arrow can only print with its `chrono-tz` feature; the values are UTC instants, so
/// relabelling changes no value and prints them in UTC.
fn utc_labelled(t: &arrow::datatypes::DataType) -> Option<arrow::datatypes::DataType> {
    use arrow::datatypes::{DataType as T, Field, Fields};
    use std::sync::Arc;
    let field = |f: &Field| utc_labelled(f.data_type()).map(|t| f.clone().with_data_type(t));
    match t {
        T::Timestamp(_, Some(tz)) if tz.as_ref() == "+00:00" => None,
        T::Timestamp(u, Some(_)) => Some(T::Timestamp(*u, Some("+00:00".into()))),
        T::List(f) => field(f).map(|f| T::List(Arc::new(f))),
        T::LargeList(f) => field(f).map(|f| T::LargeList(Arc::new(f))),
        T::FixedSizeList(f, n) => field(f).map(|f| T::FixedSizeList(Arc::new(f), *n)),
        T::Struct(fs) => {
            let new: Vec<Option<Field>> = fs.iter().map(|f| field(f)).collect();
            new.iter().any(Option::is_some).then(|| {
                T::Struct(Fields::from(
                    fs.iter()
                        .zip(new)
                        .map(|(f, n)| n.unwrap_or_else(|| f.as_ref().clone()))
                        .collect::<Vec<_>>(),
                ))
            })
        }
        _ => None,
    }
}

/// Whole milliseconds since `started`, for the statement timings in the log (an `f32` of
/// seconds logs as twenty digits).
fn elapsed_ms(started: std::time::Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
