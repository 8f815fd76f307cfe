//! `flowctl check` for the `duckdb` warehouse: the database file opens (or is created),
//! a scratch table `FLOWCTL_CHECK_<id>` is created in the configured schema, the staging
//! probe file is loaded into it through the loader's own load path, counted, and dropped.

use super::DuckDbLoader;
use crate::sql::TableNames;
use flowctl_core::check::{self, CheckContext, CheckResult};
use flowctl_core::{TableSpec, WarehouseLoader};

pub(crate) async fn check(loader: &DuckDbLoader, ctx: &CheckContext) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let path = loader.database_path();
    let shown = path.display().to_string();
    let folder_fix = format!(
        "make {} a writable folder and {shown} a file this user may write (no other process \
         may hold it open for writing), or change warehouse.path",
        path.parent()
            .map(|p| p.display().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| ".".into())
    );
    if let Err(e) = loader.query_text("SELECT 1").await {
        out.push(CheckResult::failed(
            "duckdb: open the database",
            e.to_string(),
            folder_fix,
        ));
        return out;
    }
    out.push(CheckResult::ok("duckdb: open the database", shown));
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let table = TableSpec {
        name: format!("FLOWCTL_CHECK_{}_{nanos}", std::process::id()),
        schema: check::probe_schema(),
    };
    let names = match TableNames::new(&loader.config.schema, &table.name) {
        Ok(n) => n,
        Err(e) => {
            out.push(CheckResult::failed(
                "duckdb: write",
                e.to_string(),
                "fix warehouse.schema",
            ));
            return out;
        }
    };
    match loader.ensure_table(&table).await {
        Ok(()) => out.push(CheckResult::ok(
            "duckdb: write",
            format!("created {} (scratch, dropped below)", names.target),
        )),
        Err(e) => {
            out.push(CheckResult::failed(
                "duckdb: write",
                e.to_string(),
                folder_fix,
            ));
            return out;
        }
    }
    out.push(match (&ctx.staging, &ctx.probe) {
        (Some(staging), Some(probe)) => {
            match loader
                .load(&table, std::slice::from_ref(probe), staging)
                .await
            {
                Ok(stats) if stats.inserted == 1 => CheckResult::ok(
                    "duckdb: load the probe file",
                    format!("loaded 1 row from {}", probe.uri),
                ),
                Ok(stats) => CheckResult::failed(
                    "duckdb: load the probe file",
                    format!("{} rows inserted, expected 1", stats.inserted),
                    "report this as a flowctl bug",
                ),
                Err(e) => CheckResult::failed(
                    "duckdb: load the probe file",
                    e.to_string(),
                    "DuckDB reads staged files with the staging block's credentials: check them, \
                     and the bucket's read permission (s3:GetObject, roles/storage.objectViewer)",
                ),
            }
        }
        _ => CheckResult::skipped(
            "duckdb: load the probe file",
            "no staging probe file (see the staging items)",
        ),
    });
    if let Err(e) = loader
        .query_text(&format!("DROP TABLE IF EXISTS {}", names.target))
        .await
    {
        out.push(CheckResult::failed(
            "duckdb: drop the scratch table",
            e.to_string(),
            format!("DROP TABLE {} by hand (flowctl query)", names.target),
        ));
    }
    out
}
