//! Reading a spec file into a validated [`Spec`].

use super::positions::{escape_segment, Pos, Positions};
use super::{
    display_path, validate, PluginBlock, RunSettings, Spec, SpecError, SpecErrors, StateSettings,
};
use crate::plugin::PluginKind;
use serde_json::{Map, Value};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Specs are small; a cap keeps a wrong path (a log, a dump) from being parsed for long.
pub const MAX_SPEC_BYTES: u64 = 1 << 20;

/// Where errors are reported: the file and its position table.
pub(crate) struct Ctx<'a> {
    pub file: &'a Path,
    pub positions: &'a Positions,
}

impl Ctx<'_> {
    /// An error at the node `pointer` (its key when `at_key`), shown with `path`.
    pub fn err(&self, pointer: &str, at_key: bool, path: &str, message: String) -> SpecError {
        let pos = self.positions.locate(pointer, at_key);
        at(self.file, pos, path, message)
    }
}

fn at(file: &Path, pos: Pos, path: &str, message: String) -> SpecError {
    SpecError {
        file: file.to_path_buf(),
        line: pos.line,
        column: pos.column,
        path: path.to_string(),
        message,
    }
}

fn whole_file(file: &Path, message: String) -> SpecErrors {
    SpecErrors(vec![SpecError {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        path: String::new(),
        message,
    }])
}

/// Reads, interpolates (from the process environment) and validates a spec.
pub fn load_spec(path: &Path) -> Result<Spec, SpecErrors> {
    load_spec_with_env(path, &|name| std::env::var(name).ok())
}

/// [`load_spec`] with an explicit environment, for tests and embedding.
pub fn load_spec_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Spec, SpecErrors> {
    let text = read_text(path)?;
    if let Some(pos) = super::depth::too_deep(&text) {
        let msg = format!(
            "flow nesting (`[` / `{{`) deeper than {} levels; a spec needs only a few",
            super::depth::MAX_FLOW_DEPTH
        );
        return Err(SpecErrors(vec![at(path, pos, "", msg)]));
    }
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| yaml_error(path, &e))?;
    let positions = Positions::parse(&text);
    reject_tags(path, &positions)?;
    let ctx = Ctx {
        file: path,
        positions: &positions,
    };
    let mut errors = Vec::new();
    let mut doc = to_json(yaml, String::new(), &ctx, &mut errors);
    if !doc.is_object() {
        let msg = if doc.is_null() {
            "the spec is empty: expected a mapping with name, source, staging and warehouse"
        } else {
            "expected a mapping with name, source, staging and warehouse at the top level"
        };
        errors.push(ctx.err("", false, "", msg.to_string()));
        return Err(SpecErrors(errors));
    }
    for (ptr, msg) in super::interpolate::interpolate_tree(&mut doc, &positions, env) {
        errors.push(ctx.err(&ptr, false, &display_path(&ptr), msg));
    }
    errors.extend(validate::check(&doc, &ctx));
    if !errors.is_empty() {
        errors.sort_by_key(|e| (e.line, e.column));
        errors.dedup();
        return Err(SpecErrors(errors));
    }
    build(path, doc, &ctx)
}

fn read_text(path: &Path) -> Result<String, SpecErrors> {
    let fail = |what: &str, e: std::io::Error| whole_file(path, format!("cannot {what}: {e}"));
    // A FIFO or device would block `open`/`read` forever: only regular files are specs.
    match std::fs::metadata(path) {
        Ok(m) if !m.is_file() => {
            return Err(whole_file(
                path,
                "not a regular file (a spec is a YAML file)".to_string(),
            ))
        }
        Ok(_) => {}
        Err(e) => return Err(fail("open the spec", e)),
    }
    let file = std::fs::File::open(path).map_err(|e| fail("open the spec", e))?;
    let mut bytes = Vec::new();
    file.take(MAX_SPEC_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail("read the spec", e))?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(whole_file(
            path,
            format!("the spec is larger than {MAX_SPEC_BYTES} bytes; is this the right file?"),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count()
            + 1;
        SpecErrors(vec![at(
            path,
            Pos { line, column },
            "",
            "the spec is not valid UTF-8".to_string(),
        )])
    })
}

/// Explicit tags are refused: serde_yaml would quietly turn `!!binary` or
/// `!!python/object:...` into plain values, and a spec never needs one.
fn reject_tags(path: &Path, positions: &Positions) -> Result<(), SpecErrors> {
    let errors: Vec<SpecError> = positions
        .tags()
        .iter()
        .map(|(tag, pos)| at(path, *pos, "", tag_message(tag)))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(SpecErrors(errors))
    }
}

fn tag_message(tag: &str) -> String {
    let shown = match tag.strip_prefix("tag:yaml.org,2002:") {
        Some(core) => format!("!!{core}"),
        None => tag.to_string(),
    };
    let shown: String = shown.chars().take(60).collect();
    format!("YAML tags such as `{shown}` are not supported: write the plain value")
}

fn yaml_error(path: &Path, e: &serde_yaml::Error) -> SpecErrors {
    let pos = e.location().map_or(Pos::START, |l| Pos {
        line: l.line(),
        column: l.column(),
    });
    // serde_yaml appends " at line L column C"; the location is already in front.
    let msg = e.to_string();
    let msg = match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    };
    SpecErrors(vec![at(path, pos, "", format!("YAML syntax error: {msg}"))])
}

/// serde_yaml -> serde_json, reporting what JSON cannot hold (tags, complex keys, NaN).
fn to_json(v: serde_yaml::Value, ptr: String, ctx: &Ctx, errors: &mut Vec<SpecError>) -> Value {
    use serde_yaml::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => number(&n).unwrap_or_else(|| {
            let msg = format!("the number {n} cannot be represented; quote it if it is text");
            errors.push(ctx.err(&ptr, false, &display_path(&ptr), msg));
            Value::Null
        }),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| to_json(item, format!("{ptr}/{i}"), ctx, errors))
                .collect(),
        ),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    _ => {
                        let msg = "mapping keys must be plain text".to_string();
                        errors.push(ctx.err(&ptr, false, &display_path(&ptr), msg));
                        continue;
                    }
                };
                let child = format!("{ptr}/{}", escape_segment(&key));
                out.insert(key, to_json(v, child, ctx, errors));
            }
            Value::Object(out)
        }
        Y::Tagged(t) => {
            let msg = tag_message(&t.tag.to_string());
            errors.push(ctx.err(&ptr, false, &display_path(&ptr), msg));
            Value::Null
        }
    }
}

fn number(n: &serde_yaml::Number) -> Option<Value> {
    if let Some(i) = n.as_i64() {
        return Some(Value::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Some(Value::from(u));
    }
    n.as_f64()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
}

fn build(path: &Path, mut doc: Value, ctx: &Ctx) -> Result<Spec, SpecErrors> {
    let mut take_block = |kind: PluginKind| -> PluginBlock {
        let mut config = doc
            .get_mut(kind.spec_key())
            .map(Value::take)
            .unwrap_or(Value::Null);
        let type_name = config
            .as_object_mut()
            .and_then(|o| o.remove("type"))
            .and_then(|t| t.as_str().map(str::to_string))
            .unwrap_or_default();
        PluginBlock {
            kind,
            type_name,
            config,
        }
    };
    let source = take_block(PluginKind::Source);
    let staging = take_block(PluginKind::Staging);
    let warehouse = take_block(PluginKind::Warehouse);
    // What the schema cannot say (two keys that exclude each other, an org listed twice,
    // ...), checked by each plugin without I/O, located at its block.
    let mut errors = Vec::new();
    for b in [&source, &staging, &warehouse] {
        let key = b.kind.spec_key();
        if let Err(e) = crate::plugin::check_block(b.kind, &b.type_name, b.config.clone()) {
            let msg = match e {
                crate::PluginError::Config(m) => m,
                other => other.to_string(),
            };
            errors.push(ctx.err(&format!("/{key}"), true, key, msg));
        }
    }
    if !errors.is_empty() {
        return Err(SpecErrors(errors));
    }
    let state = match doc.get("state") {
        None | Some(Value::Null) => StateSettings::default(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| SpecErrors(vec![ctx.err("/state", true, "state", e.to_string())]))?,
    };
    let mut run = RunSettings::default();
    for (key, slot) in [
        ("checkpoint_interval", &mut run.checkpoint_interval),
        ("max_duration", &mut run.max_duration),
    ] {
        if let Some(text) = doc
            .get("run")
            .and_then(|r| r.get(key))
            .and_then(Value::as_str)
        {
            let at = format!("/run/{key}");
            let d = super::parse_duration(text)
                .map_err(|e| SpecErrors(vec![ctx.err(&at, false, &format!("run.{key}"), e)]))?;
            *slot = Some(d);
        }
    }
    Ok(Spec {
        path: PathBuf::from(path),
        name: doc["name"].as_str().unwrap_or_default().to_string(),
        source,
        staging,
        warehouse,
        schedule: doc
            .get("schedule")
            .and_then(Value::as_str)
            .map(str::to_string),
        state,
        run,
    })
}
