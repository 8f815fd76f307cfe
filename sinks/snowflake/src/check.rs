//! `flowctl check` for the `snowflake` warehouse. With the loader's own client, SQL and
//! session context it checks, in order:
//! - key-pair auth, and the role, warehouse, database and schema in effect
//!   (`SELECT CURRENT_ROLE(), CURRENT_WAREHOUSE(), ...`: Snowflake leaves a context object
//!   the role cannot use unset instead of failing, so a NULL is the finding);
//! - CREATE TABLE and ALTER TABLE, on a scratch pair `FLOWCTL_CHECK_<id>` and
//!   `FLOWCTL_CHECK_<id>_STAGE` in the configured schema (never the pipeline's tables);
//! - the stage: created as a run creates it (with `storage_integration`), `LIST` sees the
//!   staging probe file, and the loader's COPY reads it into the scratch stage table;
//! - MERGE, TRUNCATE and SELECT on the scratch tables (MERGE also needs a running
//!   warehouse), then DROP of both.

use super::SnowflakeLoader;
use crate::sql::{self, TableNames};
use flowctl_core::arrow::datatypes::{DataType, Field};
use flowctl_core::check::{self, CheckContext, CheckResult};
use flowctl_core::WarehouseLoader as _;

/// The role a GRANT names: the configured one, else the one in effect, else a placeholder.
fn role_of(loader: &SnowflakeLoader, current: Option<&str>) -> String {
    loader
        .cfg
        .role
        .clone()
        .or_else(|| current.map(str::to_string))
        .unwrap_or_else(|| "<ROLE>".into())
}

/// The session's context objects, as Snowflake resolved them.
#[derive(Default)]
struct Session {
    role: Option<String>,
    warehouse: Option<String>,
    database: Option<String>,
    schema: Option<String>,
}

pub(super) async fn check(loader: &SnowflakeLoader, ctx: &CheckContext) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let cfg = &loader.cfg;
    let (db, schema) = (cfg.database.as_str(), cfg.schema.as_str());
    let session = match loader
        .execute(
            "SELECT CURRENT_ROLE() AS R, CURRENT_WAREHOUSE() AS W, CURRENT_DATABASE() AS D, CURRENT_SCHEMA() AS S",
        )
        .await
    {
        Ok(rs) => {
            let get = |c: &str| {
                rs.column(c)
                    .and_then(|i| rs.rows.first().and_then(|r| r.get(i).cloned().flatten()))
            };
            Session {
                role: get("R"),
                warehouse: get("W"),
                database: get("D"),
                schema: get("S"),
            }
        }
        Err(e) => {
            let text = e.to_string();
            // Snowflake checks the role named in a request after the JWT (its login
            // error 390189: "Role 'X' specified in the connect string is not granted").
            let role_refused = text.contains("refused the key-pair JWT")
                && text
                    .split(". Check account")
                    .next()
                    .is_some_and(|m| m.to_lowercase().contains("role"));
            if !text.contains("snowflake statement failed") && !role_refused {
                out.push(auth_failure(loader, &text));
                return out;
            }
            // The statement reached Snowflake and was refused: auth works, and the
            // message names the context object it could not use.
            out.push(CheckResult::ok(
                "snowflake: key-pair auth",
                format!("user {} at {}", cfg.user, cfg.base_url()),
            ));
            out.push(context_failure(loader, &text));
            return out;
        }
    };
    out.push(CheckResult::ok(
        "snowflake: key-pair auth",
        format!("user {} at {}", cfg.user, cfg.base_url()),
    ));
    let role = role_of(loader, session.role.as_deref());
    let user = &cfg.user;
    out.push(match (&cfg.role, &session.role) {
        (Some(want), Some(got)) if want.eq_ignore_ascii_case(got) => {
            CheckResult::ok("snowflake: role", format!("{got} in effect"))
        }
        (Some(want), got) => CheckResult::failed(
            "snowflake: role",
            format!(
                "role {want} is not in effect (the session has {})",
                got.as_deref().unwrap_or("none")
            ),
            format!("GRANT ROLE {want} TO USER {user};"),
        ),
        (None, Some(got)) => CheckResult::ok(
            "snowflake: role",
            format!("{got} (the user's default role)"),
        ),
        (None, None) => CheckResult::failed(
            "snowflake: role",
            "no role in effect",
            format!("set warehouse.role, or ALTER USER {user} SET DEFAULT_ROLE = <ROLE>;"),
        ),
    });
    out.push(match (&session.warehouse, &cfg.warehouse) {
        (Some(w), _) => CheckResult::ok("snowflake: warehouse", format!("{w} usable")),
        (None, Some(w)) => CheckResult::failed(
            "snowflake: warehouse",
            format!("warehouse {w} does not exist or role {role} may not use it"),
            format!("GRANT USAGE ON WAREHOUSE {w} TO ROLE {role};"),
        ),
        (None, None) => CheckResult::failed(
            "snowflake: warehouse",
            "no warehouse in effect: none configured and the user has no default",
            format!("set warehouse.warehouse, or ALTER USER {user} SET DEFAULT_WAREHOUSE = <WAREHOUSE>;"),
        ),
    });
    let db_ok = session.database.is_some();
    out.push(if db_ok {
        CheckResult::ok("snowflake: database", format!("{db} usable"))
    } else {
        CheckResult::failed(
            "snowflake: database",
            format!("database {db} does not exist or role {role} may not use it"),
            format!("GRANT USAGE ON DATABASE {db} TO ROLE {role}; (or CREATE DATABASE {db}; as its owner)"),
        )
    });
    let schema_ok = db_ok && session.schema.is_some();
    out.push(if schema_ok {
        CheckResult::ok("snowflake: schema", format!("{db}.{schema} usable"))
    } else if !db_ok {
        CheckResult::skipped("snowflake: schema", "the database is not usable")
    } else {
        CheckResult::failed(
            "snowflake: schema",
            format!("schema {db}.{schema} does not exist or role {role} may not use it"),
            format!("GRANT USAGE ON SCHEMA {db}.{schema} TO ROLE {role}; (or CREATE SCHEMA {db}.{schema}; as the database's owner)"),
        )
    });
    if !schema_ok {
        out.push(CheckResult::skipped(
            "snowflake: tables, stage and load",
            "the schema is not usable",
        ));
        return out;
    }
    scratch(loader, ctx, &role, &mut out).await;
    out
}

/// The connection or the JWT failed before any statement ran.
fn auth_failure(loader: &SnowflakeLoader, text: &str) -> CheckResult {
    let cfg = &loader.cfg;
    let fix = if text.contains("refused the key-pair JWT") {
        let fp = text
            .split("RSA_PUBLIC_KEY_FP equals ")
            .nth(1)
            .map(|f| {
                format!(
                    " (DESC USER {} must show RSA_PUBLIC_KEY_FP = {f})",
                    cfg.user
                )
            })
            .unwrap_or_default();
        format!(
            "register this key's public half on the user: ALTER USER {} SET RSA_PUBLIC_KEY='<base64 of openssl rsa -in KEY -pubout>';{fp}; and check account `{}`",
            cfg.user, cfg.account
        )
    } else if text.contains("private key")
        || text.contains("private_key")
        || text.contains("passphrase")
        || text.contains("secret")
    {
        "give a readable PKCS#8 PEM private key (openssl genrsa 2048 | openssl pkcs8 -topk8 -nocrypt -out rsa_key.p8) in private_key_path or private_key, and its passphrase if encrypted".into()
    } else {
        format!(
            "check warehouse.account `{}` (and base_url) and this machine's access to {}",
            cfg.account,
            cfg.base_url()
        )
    };
    CheckResult::failed("snowflake: key-pair auth", text.to_string(), fix)
}

/// A refused session statement: which context object, and its GRANT.
fn context_failure(loader: &SnowflakeLoader, text: &str) -> CheckResult {
    let cfg = &loader.cfg;
    let role = role_of(loader, None);
    // Judge by Snowflake's message, not the statement quoted after it (which names roles).
    let lower = text
        .split("; statement:")
        .next()
        .unwrap_or_default()
        .to_lowercase();
    let (db, schema, user) = (&cfg.database, &cfg.schema, &cfg.user);
    if lower.contains("role") {
        let want = cfg.role.as_deref().unwrap_or("<ROLE>");
        CheckResult::failed(
            "snowflake: role",
            text.to_string(),
            format!("GRANT ROLE {want} TO USER {user};"),
        )
    } else if lower.contains("warehouse") {
        let wh = cfg.warehouse.as_deref().unwrap_or("<WAREHOUSE>");
        CheckResult::failed(
            "snowflake: warehouse",
            text.to_string(),
            format!("GRANT USAGE ON WAREHOUSE {wh} TO ROLE {role};"),
        )
    } else if lower.contains("database") {
        CheckResult::failed(
            "snowflake: database",
            text.to_string(),
            format!("GRANT USAGE ON DATABASE {db} TO ROLE {role}; (or CREATE DATABASE {db}; as its owner)"),
        )
    } else if lower.contains("schema") {
        CheckResult::failed(
            "snowflake: schema",
            text.to_string(),
            format!("GRANT USAGE ON SCHEMA {db}.{schema} TO ROLE {role};"),
        )
    } else {
        CheckResult::failed(
            "snowflake: session",
            text.to_string(),
            format!("check role, warehouse, database and schema in the spec; each needs USAGE granted to role {role}"),
        )
    }
}

/// The privilege checks on a scratch table pair, dropped at the end whatever happened.
async fn scratch(
    loader: &SnowflakeLoader,
    ctx: &CheckContext,
    role: &str,
    out: &mut Vec<CheckResult>,
) {
    let cfg = &loader.cfg;
    let (db, schema) = (cfg.database.as_str(), cfg.schema.as_str());
    let table = format!(
        "FLOWCTL_CHECK_{}",
        uuid::Uuid::new_v4().simple().to_string()[..12].to_ascii_uppercase()
    );
    let names = match TableNames::new(db, schema, &table) {
        Ok(n) => n,
        Err(e) => {
            out.push(CheckResult::failed(
                "snowflake: create tables",
                e.to_string(),
                "fix database/schema",
            ));
            return;
        }
    };
    let spec = flowctl_core::TableSpec {
        name: table.clone(),
        schema: check::probe_schema(),
    };
    let on_schema = format!("{db}.{schema}");
    let created = loader.ensure_table(&spec).await;
    let created_ok = created.is_ok();
    match created {
        Ok(()) => out.push(CheckResult::ok(
            "snowflake: create tables",
            format!("created {on_schema}.{table} and its _STAGE twin (scratch, dropped below)"),
        )),
        Err(e) => out.push(CheckResult::failed(
            "snowflake: create tables",
            e.to_string(),
            format!("GRANT CREATE TABLE ON SCHEMA {on_schema} TO ROLE {role};"),
        )),
    }
    if created_ok {
        load_steps(loader, ctx, role, &names, &spec, out).await;
    } else {
        out.push(CheckResult::skipped(
            "snowflake: alter, stage and load",
            "no scratch table to work on",
        ));
    }
    // Dropped even after a failure above; IF EXISTS covers a half-made pair.
    let mut left = Vec::new();
    for q in [&names.target, &names.stage] {
        if loader
            .execute(&format!("DROP TABLE IF EXISTS {}", q.quoted()))
            .await
            .is_err()
        {
            left.push(q.display());
        }
    }
    if created_ok && !left.is_empty() {
        out.push(CheckResult::failed(
            "snowflake: drop the scratch tables",
            format!("could not drop {}", left.join(", ")),
            format!(
                "DROP TABLE {}; as a role that owns them",
                left.join("; DROP TABLE ")
            ),
        ));
    } else if created_ok {
        out.push(CheckResult::ok(
            "snowflake: drop the scratch tables",
            "dropped",
        ));
    }
}

async fn load_steps(
    loader: &SnowflakeLoader,
    ctx: &CheckContext,
    role: &str,
    names: &TableNames,
    spec: &flowctl_core::TableSpec,
    out: &mut Vec<CheckResult>,
) {
    let cfg = &loader.cfg;
    let on_schema = format!("{}.{}", cfg.database, cfg.schema);
    let owner_fix = format!(
        "the loader's role must own the raw tables: GRANT OWNERSHIP ON ALL TABLES IN SCHEMA {on_schema} TO ROLE {role} COPY CURRENT GRANTS;"
    );
    // ALTER TABLE ADD COLUMN, as a run does for a column new in the schema.
    let added = Field::new("FLOWCTL_CHECK_ADDED", DataType::Utf8, true);
    let alter = match sql::add_column(&names.target, &added, false) {
        Ok(ddl) => loader.execute(&ddl).await.map(drop),
        Err(e) => Err(e),
    };
    out.push(match alter {
        Ok(()) => CheckResult::ok("snowflake: alter tables", "ALTER TABLE ... ADD COLUMN"),
        Err(e) => CheckResult::failed("snowflake: alter tables", e.to_string(), owner_fix.clone()),
    });

    let copied = stage_steps(loader, ctx, role, names, out).await;
    if !copied {
        // No probe to COPY: an INSERT puts the row the MERGE below needs.
        let insert = format!(
            "INSERT INTO {} (\"{}\", \"_ROW_KEY\", \"_INGESTED_AT\", \"_SOURCE_ORG\", \"_BATCH_ID\") SELECT 'flowctl check', 'flowctl-check', CURRENT_TIMESTAMP(), 'flowctl-check', 'flowctl-check'",
            names.stage.quoted(),
            check::PROBE_COLUMN
        );
        out.push(match loader.execute(&insert).await {
            Ok(_) => CheckResult::ok("snowflake: insert", "INSERT INTO the scratch _STAGE table"),
            Err(e) => CheckResult::failed("snowflake: insert", e.to_string(), owner_fix.clone()),
        });
    }
    let merged = match sql::merge(names, &spec.schema) {
        Ok(m) => loader.execute(&m).await,
        Err(e) => Err(e),
    };
    let wh_fix = match &cfg.warehouse {
        Some(w) => format!(
            "GRANT USAGE ON WAREHOUSE {w} TO ROLE {role}; (a MERGE needs a running warehouse)"
        ),
        None => "set warehouse.warehouse to a warehouse the role may use".into(),
    };
    out.push(match merged {
        Ok(rs) => match rs.sum("number of rows inserted") {
            Ok(1) => CheckResult::ok("snowflake: merge", "MERGE inserted the probe row"),
            Ok(n) => CheckResult::failed(
                "snowflake: merge",
                format!("MERGE reported {n} rows inserted, expected 1"),
                "report this as a flowctl bug, with the Snowflake edition",
            ),
            Err(e) => CheckResult::failed(
                "snowflake: merge",
                e.to_string(),
                "report this as a flowctl bug",
            ),
        },
        Err(e) => {
            let text = e.to_string();
            let fix = if text.to_lowercase().contains("warehouse") {
                wh_fix
            } else {
                owner_fix.clone()
            };
            CheckResult::failed("snowflake: merge", text, fix)
        }
    });
    out.push(match loader.execute(&sql::truncate_stage(names)).await {
        Ok(_) => CheckResult::ok(
            "snowflake: truncate",
            "TRUNCATE TABLE the scratch _STAGE table",
        ),
        Err(e) => CheckResult::failed("snowflake: truncate", e.to_string(), owner_fix.clone()),
    });
    let count = loader
        .execute(&format!(
            "SELECT COUNT(*) AS N FROM {}",
            names.target.quoted()
        ))
        .await;
    out.push(match count {
        Ok(rs) => match rs.sum("N") {
            Ok(1) => CheckResult::ok("snowflake: select", "SELECT sees the merged row"),
            Ok(n) => CheckResult::failed(
                "snowflake: select",
                format!("SELECT COUNT(*) = {n}, expected 1 (the MERGE did not land)"),
                "see the merge item above",
            ),
            Err(e) => CheckResult::failed(
                "snowflake: select",
                e.to_string(),
                "report this as a flowctl bug",
            ),
        },
        Err(e) => CheckResult::failed("snowflake: select", e.to_string(), owner_fix),
    });
}

/// The stage: created as a run creates it, LIST sees the probe, COPY reads it. True when
/// the COPY loaded the probe row into the scratch stage table.
async fn stage_steps(
    loader: &SnowflakeLoader,
    ctx: &CheckContext,
    role: &str,
    names: &TableNames,
    out: &mut Vec<CheckResult>,
) -> bool {
    let cfg = &loader.cfg;
    let stage = loader.stage.display();
    let on_schema = format!("{}.{}", cfg.database, cfg.schema);
    let (Some(staging), Some(probe)) = (&ctx.staging, &ctx.probe) else {
        out.push(CheckResult::skipped(
            "snowflake: stage",
            "no staging probe file to list (see the staging items)",
        ));
        return false;
    };
    if staging.local_dir.is_some() {
        out.push(CheckResult::failed(
            "snowflake: stage",
            format!(
                "staging is a local folder ({}): Snowflake cannot read it",
                staging.root_uri
            ),
            "stage on s3 or gcs (staging.type), with a stage or storage integration over it",
        ));
        return false;
    }
    let integration_fix = match &loader.integration {
        Some(i) => format!(
            "GRANT CREATE STAGE ON SCHEMA {on_schema} TO ROLE {role}; GRANT USAGE ON INTEGRATION {} TO ROLE {role};",
            i.as_str()
        ),
        None => format!("GRANT USAGE ON STAGE {stage} TO ROLE {role};"),
    };
    if let Err(e) = loader.ensure_stage(staging).await {
        out.push(CheckResult::failed(
            "snowflake: stage",
            e.to_string(),
            integration_fix,
        ));
        return false;
    }
    out.push(CheckResult::ok(
        "snowflake: stage",
        match &loader.integration {
            Some(i) => format!(
                "{stage} (created if missing, with integration {})",
                i.as_str()
            ),
            None => format!("{stage} usable"),
        },
    ));
    let file_name = probe.relative_path.rsplit('/').next().unwrap_or_default();
    let list = format!(
        "LIST {} PATTERN={}",
        sql::stage_ref(&loader.stage),
        sql::literal(&format!(".*{file_name}"))
    );
    let cloud_fix = cloud_read_fix(loader, staging);
    match loader.execute(&list).await {
        Ok(rs) => {
            let seen = rs
                .strings("name")
                .into_iter()
                .flatten()
                .any(|n| n.ends_with(&probe.relative_path));
            if seen {
                out.push(CheckResult::ok(
                    "snowflake: stage lists the staging prefix",
                    format!("LIST @{stage} sees {}", probe.relative_path),
                ));
            } else {
                let url = staging.root_uri.replacen("gs://", "gcs://", 1);
                out.push(CheckResult::failed(
                    "snowflake: stage lists the staging prefix",
                    format!(
                        "LIST @{stage} does not show {} ({} files matched): the stage's URL is not the staging root {}",
                        probe.relative_path,
                        rs.rows.len(),
                        staging.root_uri
                    ),
                    format!(
                        "CREATE OR REPLACE STAGE {stage} URL='{url}' STORAGE_INTEGRATION = <INTEGRATION>; (DESC STAGE {stage} shows its URL)"
                    ),
                ));
                return false;
            }
        }
        Err(e) => {
            let text = e.to_string();
            let fix = if cloud_refused(&text) {
                cloud_fix
            } else {
                format!("GRANT USAGE ON STAGE {stage} TO ROLE {role};")
            };
            out.push(CheckResult::failed(
                "snowflake: stage lists the staging prefix",
                text,
                fix,
            ));
            return false;
        }
    }
    let copy = sql::copy_into(names, &loader.stage, &[probe.relative_path.as_str()]);
    match loader.execute(&copy).await {
        Ok(rs) => match rs.sum("rows_loaded") {
            Ok(1) => {
                out.push(CheckResult::ok(
                    "snowflake: read the probe file (COPY INTO)",
                    format!("COPY loaded the probe row from {}", probe.uri),
                ));
                true
            }
            other => {
                out.push(CheckResult::failed(
                    "snowflake: read the probe file (COPY INTO)",
                    format!(
                        "COPY reported {other:?} rows loaded, expected 1: {:?}",
                        rs.strings("first_error")
                    ),
                    cloud_fix,
                ));
                false
            }
        },
        Err(e) => {
            out.push(CheckResult::failed(
                "snowflake: read the probe file (COPY INTO)",
                e.to_string(),
                cloud_fix,
            ));
            false
        }
    }
}

/// Whether a failed statement says the cloud storage refused Snowflake (an AWS or GCS
/// 403), not that the role lacks a Snowflake privilege ("SQL access control error").
/// Only the error's own words count: the statement and handle after them hold ids.
fn cloud_refused(error: &str) -> bool {
    let said = error
        .split(" (code ")
        .next()
        .unwrap_or(error)
        .to_lowercase();
    ["access denied", "status code: 403", "403 forbidden"]
        .iter()
        .any(|w| said.contains(w))
}

/// What the cloud side must allow the stage's integration, per staging kind.
fn cloud_read_fix(loader: &SnowflakeLoader, staging: &flowctl_core::StagingLocation) -> String {
    let integration = loader
        .integration
        .as_ref()
        .map(|i| i.as_str().to_string())
        .unwrap_or_else(|| "<the stage's integration>".into());
    let bucket_path = staging
        .root_uri
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/').to_string())
        .unwrap_or_default();
    let bucket = bucket_path.split('/').next().unwrap_or_default();
    match staging.kind.as_str() {
        "s3" => format!(
            "DESC INTEGRATION {integration}; then allow its STORAGE_AWS_IAM_USER_ARN (through the \
             role in STORAGE_AWS_ROLE_ARN) s3:GetObject on arn:aws:s3:::{bucket_path}/* and \
             s3:ListBucket on arn:aws:s3:::{bucket}"
        ),
        _ => format!(
            "DESC INTEGRATION {integration}; then grant its STORAGE_GCP_SERVICE_ACCOUNT \
             roles/storage.objectViewer on gs://{bucket}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::cloud_refused;

    #[test]
    fn only_the_clouds_refusal_asks_for_a_cloud_fix() {
        let missing = "snowflake statement failed: SQL compilation error:\nStage 'DB.X.S' does \
                       not exist or not authorized. (code 002003, SQLSTATE 02000, handle \
                       9403a-1); statement: LIST @\"DB\".\"RAW_4033\".\"S\" PATTERN='.*403.*'";
        assert!(!cloud_refused(missing));
        let privilege = "snowflake statement failed: SQL access control error:\nInsufficient \
                         privileges to operate on stage 'S' (code 003001, SQLSTATE 42501, handle h)";
        assert!(!cloud_refused(privilege));
        let s3 = "snowflake statement failed: Failure using stage area. Cause: [Access Denied \
                  (Status Code: 403; Error Code: AccessDenied)] (code 091003, SQLSTATE 22000, \
                  handle h); statement: LIST @S";
        assert!(cloud_refused(s3));
    }
}
