//! The `snowflake` WarehouseLoader: CREATE/ALTER, then per load COPY → MERGE (newer only)
//! → TRUNCATE stage, all through the SQL API.

use crate::client::{Context, SqlApi};
use crate::config::{SnowflakeConfig, DEFAULT_STAGE};
use crate::jwt::{JwtSource, KeyPair};
use crate::sql::{self, Ident, Qualified, TableNames};
use flowctl_core::{
    async_trait, LoadStats, PluginError, Result, StagedFile, StagingLocation, TableSpec,
    WarehouseLoader,
};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

// `flowctl check` lives in its own file; a child module, so it uses the loader's fields.
#[path = "check.rs"]
mod check;

/// Loads staged Parquet into Snowflake.
#[derive(Debug)]
pub struct SnowflakeLoader {
    cfg: SnowflakeConfig,
    /// Database, schema, warehouse and role as Snowflake stores them (see `Ident::from_spec`).
    ctx: Context,
    stage: Qualified,
    /// Set when flowctl must create the stage itself.
    integration: Option<Ident>,
    api: OnceCell<SqlApi>,
    stage_ready: OnceCell<()>,
}

impl SnowflakeLoader {
    /// Validate the config; touches neither the network nor the key file.
    pub fn from_config(cfg: SnowflakeConfig) -> Result<Self> {
        match (&cfg.private_key_path, &cfg.private_key) {
            (Some(_), Some(_)) => {
                return Err(PluginError::config(
                    "snowflake: give either private_key_path or private_key, not both",
                ))
            }
            (None, None) => {
                return Err(PluginError::config(
                    "snowflake: private_key_path or private_key is required (key-pair auth)",
                ))
            }
            _ => {}
        }
        let integration = match (&cfg.stage, &cfg.storage_integration) {
            (None, None) => {
                return Err(PluginError::config(
                    "snowflake: set `stage` (created by sql/snowflake_*_stage_setup.sql) or `storage_integration` (flowctl then creates the stage)",
                ))
            }
            (None, Some(i)) => Some(Ident::from_spec(i, "storage_integration")?),
            (Some(_), _) => None,
        };
        // Resolved now, so a bad name fails at `validate`, not mid-run.
        let database = Ident::from_spec(&cfg.database, "database")?;
        let schema = Ident::from_spec(&cfg.schema, "schema")?;
        let optional = |name: &Option<String>, what: &str| {
            name.as_deref()
                .map(|n| Ident::from_spec(n, what).map(|i| i.as_str().to_string()))
                .transpose()
        };
        let ctx = Context {
            warehouse: optional(&cfg.warehouse, "warehouse")?,
            role: optional(&cfg.role, "role")?,
            database: database.as_str().to_string(),
            schema: schema.as_str().to_string(),
        };
        let stage = parse_stage(
            cfg.stage.as_deref().unwrap_or(DEFAULT_STAGE),
            &database,
            &schema,
        )?;
        Ok(SnowflakeLoader {
            cfg,
            ctx,
            stage,
            integration,
            api: OnceCell::new(),
            stage_ready: OnceCell::new(),
        })
    }

    /// The session context every statement is sent with (names resolved as Snowflake
    /// stores them).
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Run one statement through the same client and session context as the loads (for
    /// tests and diagnostics such as `flowctl` checks of row counts).
    pub async fn execute(&self, statement: &str) -> Result<crate::client::ResultSet> {
        self.api().await?.execute(statement).await
    }

    fn names(&self, table: &TableSpec) -> Result<TableNames> {
        TableNames::new(&self.cfg.database, &self.cfg.schema, &table.name)
    }

    async fn api(&self) -> Result<&SqlApi> {
        self.api.get_or_try_init(|| self.connect()).await
    }

    async fn connect(&self) -> Result<SqlApi> {
        let (pem, origin) = read_key(&self.cfg).await?;
        let pass = match &self.cfg.private_key_passphrase {
            Some(r) => Some(r.resolve().await?),
            None => None,
        };
        let key = KeyPair::from_pem(&pem, pass.as_ref().map(|p| p.expose()), &origin)?;
        let jwt = Arc::new(JwtSource::new(key, &self.cfg.account, &self.cfg.user));
        SqlApi::new(
            self.cfg.base_url(),
            jwt,
            self.ctx.clone(),
            self.cfg.statement_timeout_seconds,
            Duration::from_millis(self.cfg.poll_interval_ms.max(10)),
        )
    }

    /// Run one statement; errors name the table.
    async fn run(
        &self,
        table: &str,
        step: &str,
        statement: &str,
    ) -> Result<crate::client::ResultSet> {
        tracing::debug!(table, step, "snowflake statement");
        self.api().await?.execute(statement).await.map_err(|e| {
            PluginError::external_from(format!("snowflake {step} for table {table}: {e}"), e)
        })
    }

    async fn ensure_stage(&self, staging: &StagingLocation) -> Result<()> {
        let Some(integration) = &self.integration else {
            return Ok(());
        };
        self.stage_ready
            .get_or_try_init(|| async {
                let ddl = sql::create_stage(&self.stage, &staging.root_uri, integration)?;
                self.run(self.stage.name.as_str(), "CREATE STAGE", &ddl)
                    .await
                    .map(|_| ())
            })
            .await
            .map(|_| ())
    }

    async fn copy(&self, names: &TableNames, files: &[StagedFile]) -> Result<u64> {
        let table = names.target.name.as_str();
        let mut loaded: u64 = 0;
        for chunk in files.chunks(sql::MAX_FILES_PER_COPY) {
            let paths: Vec<&str> = chunk.iter().map(|f| f.relative_path.as_str()).collect();
            let rs = self
                .run(
                    table,
                    "COPY INTO",
                    &sql::copy_into(names, &self.stage, &paths),
                )
                .await?;
            if let Some(bad) = rs
                .strings("status")
                .into_iter()
                .flatten()
                .find(|s| s.contains("FAILED") || s.contains("PARTIALLY"))
            {
                return Err(PluginError::external(format!(
                    "snowflake COPY INTO for table {table}: a file reported {bad} (first_error: {})",
                    rs.strings("first_error").into_iter().flatten().next().unwrap_or_default()
                )));
            }
            loaded = loaded.saturating_add(rs.sum("rows_loaded")?);
        }
        let expected: u64 = files.iter().map(|f| f.rows).sum();
        if loaded != expected {
            return Err(PluginError::external(format!(
                "snowflake COPY INTO for table {table}: loaded {loaded} rows but the {} staged files hold {expected}; not merging",
                files.len()
            )));
        }
        Ok(loaded)
    }
}

/// `NAME`, `SCHEMA.NAME` or `DB.SCHEMA.NAME` (each part plain or "quoted"), unqualified
/// parts taken from the spec's database and schema.
fn parse_stage(stage: &str, database: &Ident, schema: &Ident) -> Result<Qualified> {
    let part = |p: &str, what: &str| Ident::from_spec(p, what);
    let (database, schema, name) = match sql::split_qualified(stage).as_slice() {
        [n] => (database.clone(), schema.clone(), part(n, "stage")?),
        [s, n] => (
            database.clone(),
            part(s, "stage (schema part)")?,
            part(n, "stage")?,
        ),
        [d, s, n] => (
            part(d, "stage (database part)")?,
            part(s, "stage (schema part)")?,
            part(n, "stage")?,
        ),
        _ => {
            return Err(PluginError::config(format!(
                "snowflake: stage {stage:?} must be NAME, SCHEMA.NAME or DATABASE.SCHEMA.NAME"
            )))
        }
    };
    Ok(Qualified {
        database,
        schema,
        name,
    })
}

/// The PEM text and a description of where it came from (for errors).
async fn read_key(cfg: &SnowflakeConfig) -> Result<(String, String)> {
    if let Some(r) = &cfg.private_key {
        return Ok((r.resolve().await?.expose().to_string(), format!("{r}")));
    }
    let path = flowctl_core::expand_home(cfg.private_key_path.as_deref().unwrap_or_default());
    warn_if_readable_by_others(&path);
    let pem = tokio::fs::read_to_string(&path)
        .await
        .map_err(|e| PluginError::config(format!("snowflake private_key_path {path}: {e}")))?;
    Ok((pem, path))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o004 != 0 {
            tracing::warn!(
                path,
                "snowflake private key file is world-readable; run chmod 600 on it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &str) {}

#[async_trait]
impl WarehouseLoader for SnowflakeLoader {
    fn plan(&self, table: &TableSpec) -> Vec<String> {
        let Ok(names) = self.names(table) else {
            return vec![format!("invalid table name {}", table.name)];
        };
        let mut out = vec![sql::copy_into(&names, &self.stage, &["<this run's files>"])];
        match sql::merge(&names, &table.schema) {
            Ok(m) => out.push(m),
            Err(e) => out.push(format!("-- {e}")),
        }
        out.push(sql::truncate_stage(&names));
        out
    }

    async fn check(
        &self,
        ctx: &flowctl_core::check::CheckContext,
    ) -> Vec<flowctl_core::check::CheckResult> {
        check::check(self, ctx).await
    }

    fn max_concurrent_loads(&self) -> usize {
        self.cfg.load_concurrency.max(1)
    }

    async fn ensure_table(&self, table: &TableSpec) -> Result<()> {
        let names = self.names(table)?;
        let t = table.name.as_str();
        self.run(
            t,
            "CREATE TABLE",
            &sql::create_target(&names, &table.schema)?,
        )
        .await?;
        self.run(
            t,
            "CREATE TABLE",
            &sql::create_stage_table(&names, &table.schema)?,
        )
        .await?;
        let rs = self
            .run(t, "column listing", &sql::existing_columns(&names))
            .await?;
        let (ti, ci) = (rs.column("TABLE_NAME"), rs.column("COLUMN_NAME"));
        let mut existing = BTreeSet::new();
        for row in &rs.rows {
            if let (Some(Some(tn)), Some(Some(cn))) =
                (ti.and_then(|i| row.get(i)), ci.and_then(|i| row.get(i)))
            {
                existing.insert((tn.to_ascii_uppercase(), cn.to_ascii_uppercase()));
            }
        }
        for (qualified, stage) in [(&names.target, false), (&names.stage, true)] {
            let tname = qualified.name.as_str().to_ascii_uppercase();
            for field in table.schema.fields() {
                if !existing.contains(&(tname.clone(), field.name().to_ascii_uppercase())) {
                    let ddl = sql::add_column(qualified, field, stage)?;
                    self.run(t, "ALTER TABLE ADD COLUMN", &ddl).await?;
                }
            }
        }
        Ok(())
    }

    async fn load(
        &self,
        table: &TableSpec,
        files: &[StagedFile],
        staging: &StagingLocation,
    ) -> Result<LoadStats> {
        if files.is_empty() {
            return Ok(LoadStats::default());
        }
        let names = self.names(table)?;
        let t = table.name.as_str();
        self.ensure_stage(staging).await?;
        let merge = sql::merge(&names, &table.schema)?;
        // No TRUNCATE before the COPY: rows left in the stage table by a run that crashed
        // before its MERGE are rows GitHub really served; merging them is harmless (the
        // dedupe keeps the newest per key and MERGE only applies newer rows), and skipping
        // that statement keeps a load at one COPY, one MERGE and one TRUNCATE.
        let rows_loaded = self.copy(&names, files).await?;
        let merged = self.run(t, "MERGE", &merge).await?;
        self.run(t, "TRUNCATE", &sql::truncate_stage(&names))
            .await?;
        let copies = files.len().div_ceil(sql::MAX_FILES_PER_COPY) as u64;
        Ok(LoadStats {
            rows_loaded,
            inserted: merged.sum("number of rows inserted")?,
            updated: merged.sum("number of rows updated")?,
            statements: copies + 2,
        })
    }
}
