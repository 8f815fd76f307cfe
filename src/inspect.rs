//! Commands that inspect specs and plugins without touching the network:
//! `validate`, `plugins`, `schema`, `plan` and `sql raw-tables`.

use crate::cli::Format;
use flowctl_core::spec::{self, PluginBlock, Spec};
use flowctl_core::TableSpec;
use serde_json::{json, Value};
use std::path::Path;
use std::process::ExitCode;

const INVALID: u8 = 2;

pub fn validate(specs: &[std::path::PathBuf], format: Format) -> ExitCode {
    let mut files = Vec::new();
    let mut all_ok = true;
    for path in specs {
        let errors = match spec::load_spec(path) {
            Ok(_) => Vec::new(),
            Err(e) => e.0,
        };
        all_ok &= errors.is_empty();
        if format == Format::Text {
            if errors.is_empty() {
                println!("{}: ok", path.display());
            }
            for e in &errors {
                eprintln!("{e}");
            }
        }
        files.push(json!({"file": path, "valid": errors.is_empty(), "errors": errors}));
    }
    if format == Format::Json {
        println!("{}", json!({"valid": all_ok, "files": files}));
    } else if !all_ok {
        let bad = files.iter().filter(|f| f["valid"] == false).count();
        eprintln!("error: {bad} of {} spec(s) invalid", specs.len());
    }
    exit(all_ok)
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(INVALID)
    }
}

pub fn plugins(format: Format) -> ExitCode {
    let plugins = flowctl_core::registered_plugins();
    if format == Format::Json {
        let list: Vec<Value> = plugins
            .iter()
            .map(|p| json!({"kind": p.kind, "type": p.name, "description": p.description}))
            .collect();
        println!("{}", Value::Array(list));
        return ExitCode::SUCCESS;
    }
    let width = plugins
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:<10} {:<width$} DESCRIPTION", "KIND", "TYPE");
    for p in &plugins {
        println!(
            "{:<10} {:<width$} {}",
            p.kind.spec_key(),
            p.name,
            p.description
        );
    }
    ExitCode::SUCCESS
}

/// Pretty JSON with a trailing newline: the exact bytes checked in under schemas/.
pub fn schema_text(schema: &Value) -> String {
    let mut s = serde_json::to_string_pretty(schema).unwrap_or_default();
    s.push('\n');
    s
}

/// Every generated schema file: (file name, contents).
pub fn schema_files() -> Vec<(String, String)> {
    let mut out = vec![(
        "pipeline.schema.json".to_string(),
        schema_text(&spec::composed_schema()),
    )];
    for p in flowctl_core::registered_plugins() {
        if let Some(s) = spec::plugin_schema(p.name) {
            let name = format!("{}-{}.schema.json", p.kind.spec_key(), p.name);
            out.push((name, schema_text(&s)));
        }
    }
    out
}

pub fn schema(type_name: Option<&str>, write: Option<&Path>) -> ExitCode {
    if let Some(dir) = write {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("error: cannot create {}: {e}", dir.display());
            return ExitCode::from(1);
        }
        for (name, text) in schema_files() {
            let path = dir.join(&name);
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::from(1);
            }
            eprintln!("wrote {}", path.display());
        }
        return ExitCode::SUCCESS;
    }
    let schema = match type_name {
        None => spec::composed_schema(),
        Some(t) => match spec::plugin_schema(t) {
            Some(s) => s,
            None => {
                let names: Vec<&str> = flowctl_core::registered_plugins()
                    .iter()
                    .map(|p| p.name)
                    .collect();
                eprintln!(
                    "error: no plugin of type `{t}` is linked (linked: {})",
                    names.join(", ")
                );
                return ExitCode::from(INVALID);
            }
        },
    };
    print!("{}", schema_text(&schema));
    ExitCode::SUCCESS
}

pub fn plan(path: &Path) -> ExitCode {
    let spec = match spec::load_spec(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("error: {} is not a valid spec", path.display());
            return ExitCode::from(INVALID);
        }
    };
    match plan_loaded(&spec) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(INVALID)
        }
    }
}

/// Prints the plan of a loaded spec; the error names the spec and the plugin.
pub fn plan_loaded(spec: &Spec) -> Result<(), String> {
    // The same construction `apply` uses, so plan shows what a run would build.
    let built = crate::run::build_plugins(spec)
        .map_err(|f| format!("{}: {}", spec.path.display(), f.message))?;
    print!("{}", render_plan(spec, &built));
    Ok(())
}

fn render_plan(spec: &Spec, built: &flowctl_core::engine::Plugins) -> String {
    let mut out = format!("pipeline {} ({})\n", spec.name, spec.path.display());
    if let Some(s) = &spec.schedule {
        out.push_str(&format!("schedule: {s}\n"));
    }
    out.push_str("\nresolved spec (secrets shown as references):\n");
    for b in [&spec.source, &spec.staging, &spec.warehouse] {
        out.push_str(&render_block(b));
    }
    out.push_str("\nsteps:\n");
    let mut steps = Vec::new();
    let refs = secret_refs(spec);
    if !refs.is_empty() {
        steps.push(format!("resolve secrets: {}", refs.join(", ")));
    }
    steps.extend(built.source.plan());
    let streams = built.source.streams();
    for s in &streams {
        steps.push(format!("read stream {} -> table {}", s.name, s.table));
    }
    steps.extend(built.staging.plan());
    for s in &streams {
        let table = TableSpec {
            name: s.table.clone(),
            schema: s.schema.clone(),
        };
        steps.extend(built.warehouse.plan(&table));
    }
    steps.push("save state for the streams that loaded".to_string());
    for (i, s) in steps.iter().enumerate() {
        let s = s.replace('\n', "\n     ");
        out.push_str(&format!("{:>3}. {s}\n", i + 1));
    }
    out
}

fn render_block(b: &PluginBlock) -> String {
    let mut config = b.config.clone();
    redact(&mut config, None);
    let mut v = serde_json::Map::new();
    v.insert("type".into(), Value::from(b.type_name.clone()));
    if let Value::Object(m) = config {
        v.extend(m);
    }
    let mut doc = serde_json::Map::new();
    doc.insert(b.kind.spec_key().into(), Value::Object(v));
    serde_yaml::to_string(&Value::Object(doc)).unwrap_or_default()
}

/// A secret reference's shape: exactly one of the reference keys.
fn is_secret_ref(v: &Value) -> bool {
    v.as_object().is_some_and(|m| {
        m.len() == 1
            && m.keys()
                .all(|k| matches!(k.as_str(), "env" | "file" | "gcp_secret" | "aws_secret"))
    })
}

/// Plain strings under secret-sounding keys are masked (a value interpolated from the
/// environment may be one); secret references are kept, they name no value.
fn redact(v: &mut Value, key: Option<&str>) {
    if is_secret_ref(v) {
        return;
    }
    match v {
        Value::String(s) if key.is_some_and(secret_key) => *s = "***".into(),
        Value::Object(m) => m.iter_mut().for_each(|(k, c)| redact(c, Some(k))),
        Value::Array(a) => a.iter_mut().for_each(|c| redact(c, key)),
        _ => {}
    }
}

fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    !k.ends_with("_path")
        && !k.ends_with("_file")
        && [
            "password",
            "token",
            "secret",
            "passphrase",
            "private_key",
            "credential",
        ]
        .iter()
        .any(|w| k.contains(w))
}

fn secret_refs(spec: &Spec) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        if is_secret_ref(v) {
            if let Ok(r) = serde_json::from_value::<flowctl_core::secret::SecretRef>(v.clone()) {
                out.push(r.to_string());
            }
            return;
        }
        match v {
            Value::Object(m) => m.values().for_each(|c| walk(c, out)),
            Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for b in [&spec.source, &spec.staging, &spec.warehouse] {
        walk(&b.config, &mut out);
    }
    out
}

/// A config with a placeholder for each required key, so a source can be built just to
/// list its streams.
fn minimal_config(schema: &Value) -> Value {
    let mut cfg = serde_json::Map::new();
    let props = schema.get("properties");
    for key in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(key) = key.as_str() else { continue };
        let ty = props
            .and_then(|p| p.get(key))
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str);
        let placeholder = match ty {
            Some("array") => json!(["example"]),
            Some("integer") | Some("number") => json!(1),
            Some("boolean") => json!(false),
            Some("object") => json!({}),
            _ => json!("example"),
        };
        cfg.insert(key.to_string(), placeholder);
    }
    Value::Object(cfg)
}

pub fn raw_tables(write: Option<&Path>, database: &str, schema: &str) -> ExitCode {
    let mut tables = Vec::new();
    for reg in flowctl_core::inventory::iter::<flowctl_core::SourceRegistration> {
        let cfg = minimal_config(&(reg.config_schema)().to_value());
        match (reg.build)(cfg) {
            Ok(source) => tables.extend(source.all_streams().into_iter().map(|s| TableSpec {
                name: s.table,
                schema: s.schema,
            })),
            // A source whose tables come from its config (e.g. `file`) has no fixed set.
            Err(e) => eprintln!(
                "note: skipped source `{}`: its tables depend on its config ({e})",
                reg.name
            ),
        }
    }
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    tables.dedup_by(|a, b| a.name == b.name);
    let sql = flowctl_snowflake::raw_tables_sql(&tables, database, schema);
    match write {
        None => print!("{sql}"),
        Some(path) => {
            if let Err(e) = std::fs::write(path, &sql) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}
