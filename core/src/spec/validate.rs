//! Checks of an interpolated spec document: the composed JSON schema (errors mapped back
//! to YAML positions and rephrased without echoing values, which may be secrets), plugin
//! `type`s with suggestions, and the cron schedule.

use super::load::Ctx;
use super::positions::escape_segment;
use super::schema::{composed_schema, KINDS};
use super::{display_path, SpecError};
use crate::plugin::registered_plugins;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::ValidationError;
use serde_json::Value;
use std::sync::OnceLock;

struct Compiled {
    schema: Value,
    validator: Result<jsonschema::Validator, String>,
}

/// The registry is fixed at link time, so the schema is composed and compiled once.
fn compiled() -> &'static Compiled {
    static C: OnceLock<Compiled> = OnceLock::new();
    C.get_or_init(|| {
        let schema = composed_schema();
        // `format` (e.g. `date` for `start_date`) is only annotated by default in
        // 2020-12; asserting it catches `2024-13-45` at validate instead of at apply.
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .map_err(|e| format!("the composed plugin schema is invalid (a plugin bug): {e}"));
        Compiled { schema, validator }
    })
}

pub(crate) fn check(doc: &Value, ctx: &Ctx) -> Vec<SpecError> {
    let mut errors = check_types(doc, ctx);
    errors.extend(check_schedule(doc, ctx));
    let c = compiled();
    match &c.validator {
        Ok(v) => {
            for e in v.iter_errors(doc) {
                errors.extend(map_error(&e, doc, &c.schema, ctx));
            }
        }
        Err(msg) => errors.push(ctx.err("", false, "", msg.clone())),
    }
    errors
}

/// Unknown `type`: list the registered ones and suggest the nearest.
fn check_types(doc: &Value, ctx: &Ctx) -> Vec<SpecError> {
    let plugins = registered_plugins();
    let mut errors = Vec::new();
    for kind in KINDS {
        let key = kind.spec_key();
        let Some(ty) = doc.get(key).and_then(|b| b.get("type")) else {
            continue;
        };
        let names: Vec<&str> = plugins
            .iter()
            .filter(|p| p.kind == kind)
            .map(|p| p.name)
            .collect();
        let ptr = format!("/{key}/type");
        let Some(given) = ty.as_str() else {
            // A list or mapping selects no schema branch, so nothing else would object.
            let msg = format!(
                "expected a string plugin name (one of: {}), found {}",
                list_or_none(&names),
                json_kind(ty)
            );
            errors.push(ctx.err(&ptr, false, &display_path(&ptr), msg));
            continue;
        };
        if names.contains(&given) {
            continue;
        }
        let mut msg = format!("unknown {key} type `{given}`");
        if let Some(s) = nearest(given, names.iter().copied()) {
            msg.push_str(&format!("; did you mean `{s}`?"));
        }
        msg.push_str(&format!(" (registered: {})", list_or_none(&names)));
        errors.push(ctx.err(&ptr, false, &display_path(&ptr), msg));
    }
    errors
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none linked".to_string()
    } else {
        names.join(", ")
    }
}

/// The closest candidate by edit distance, if close enough to be a plausible typo.
fn nearest<'a>(given: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::damerau_levenshtein(given, c), c))
        .filter(|(d, c)| *d <= 1.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn check_schedule(doc: &Value, ctx: &Ctx) -> Option<SpecError> {
    let expr = doc.get("schedule")?.as_str()?;
    let msg = cron_problem(expr)?;
    Some(ctx.err("/schedule", false, "schedule", msg))
}

/// Why `expr` is not a usable cron expression (5 fields, or 6 with seconds first).
pub fn cron_problem(expr: &str) -> Option<String> {
    let fields = expr.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Some(format!(
            "invalid cron expression `{expr}`: expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, found {fields}"
        ));
    }
    let parser = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .year(croner::parser::Year::Disallowed)
        .build();
    parser
        .parse(expr)
        .err()
        .map(|e| format!("invalid cron expression `{expr}`: {e}"))
}

fn map_error(e: &ValidationError, doc: &Value, schema: &Value, ctx: &Ctx) -> Vec<SpecError> {
    let ptr = e.instance_path().as_str().to_string();
    let path = display_path(&ptr);
    let one = |msg: String| vec![ctx.err(&ptr, false, &path, msg)];
    match e.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = allowed_keys(schema, doc, &ptr);
            unexpected
                .iter()
                .map(|k| {
                    let child = format!("{ptr}/{}", escape_segment(k));
                    ctx.err(
                        &child,
                        true,
                        &display_path(&child),
                        unknown_key(k, &allowed),
                    )
                })
                .collect()
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let child = format!("{ptr}/{}", escape_segment(name));
            let mut msg = format!("missing required key `{name}`");
            if name == "type" {
                if let Some(kind) = KINDS.iter().find(|k| ptr == format!("/{}", k.spec_key())) {
                    let names: Vec<&str> = registered_plugins()
                        .into_iter()
                        .filter(|p| p.kind == *kind)
                        .map(|p| p.name)
                        .collect();
                    msg.push_str(&format!(" (one of: {})", list_or_none(&names)));
                }
            }
            vec![ctx.err(&ptr, true, &display_path(&child), msg)]
        }
        // Reported by check_types with a suggestion.
        ValidationErrorKind::Enum { .. } if is_block_type(&ptr) => Vec::new(),
        ValidationErrorKind::Pattern { .. } if ptr == "/name" => {
            one("expected lower-case letters, digits, `_` and `-` only".to_string())
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => t.to_string(),
                TypeKind::Multiple(set) => set
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            one(format!(
                "expected {expected}, found {}",
                json_kind(e.instance())
            ))
        }
        ValidationErrorKind::Enum { options } => one(format!("expected one of {options}")),
        ValidationErrorKind::Format { format } => one(format_hint(format)),
        ValidationErrorKind::Constant { expected_value } => {
            one(format!("expected {expected_value}"))
        }
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            match best_branch(context, &ptr) {
                Some(branch) => branch
                    .iter()
                    .flat_map(|b| map_error(b, doc, schema, ctx))
                    .collect(),
                None if about_secret_ref(e) => one(secret_ref_hint()),
                None => {
                    one(one_of_consts(context, e.instance()).unwrap_or_else(|| redacted_message(e)))
                }
            }
        }
        _ => one(redacted_message(e)),
    }
}

/// The one alternative of an `anyOf`/`oneOf` that the value was evidently meant for
/// (e.g. the struct of an `Option<Struct>`): the only branch that did not fail on the
/// value's type alone. Its errors say what is actually wrong.
fn best_branch<'a>(
    context: &'a [Vec<ValidationError<'static>>],
    ptr: &str,
) -> Option<&'a Vec<ValidationError<'static>>> {
    let mut candidates = context.iter().filter(|errs| !type_only(errs, ptr));
    let first = candidates.next()?;
    candidates.next().is_none().then_some(first)
}

/// Whether every error of a branch is about the value's type at `ptr`, counting nested
/// alternatives that all failed on the type (a list given where a `oneOf` of mappings
/// is one branch, a list of them the other).
fn type_only(errs: &[ValidationError], ptr: &str) -> bool {
    errs.iter().all(|e| {
        e.instance_path().as_str() == ptr
            && match e.kind() {
                ValidationErrorKind::Type { .. } | ValidationErrorKind::Constant { .. } => true,
                ValidationErrorKind::OneOfNotValid { context }
                | ValidationErrorKind::AnyOf { context } => {
                    context.iter().all(|c| type_only(c, ptr))
                }
                _ => false,
            }
    })
}

/// Whether a failed alternative offered a secret reference (directly or nested).
fn about_secret_ref(e: &ValidationError) -> bool {
    e.schema_path().as_str().contains("SecretRef")
        || match e.kind() {
            ValidationErrorKind::OneOfNotValid { context }
            | ValidationErrorKind::AnyOf { context } => {
                context.iter().flatten().any(about_secret_ref)
            }
            _ => false,
        }
}

/// A documented enum is a `oneOf` of `const`s: list them and suggest the nearest.
fn one_of_consts(context: &[Vec<ValidationError<'static>>], given: &Value) -> Option<String> {
    let mut names = Vec::new();
    for errs in context {
        for e in errs {
            if let ValidationErrorKind::Constant { expected_value } = e.kind() {
                names.push(expected_value.as_str()?.to_string());
            }
        }
    }
    if names.is_empty() {
        return None;
    }
    let mut msg = format!("expected one of: {}", names.join(", "));
    if let Some(s) = given
        .as_str()
        .and_then(|g| nearest(g, names.iter().map(String::as_str)))
    {
        msg.push_str(&format!("; did you mean `{s}`?"));
    }
    Some(msg)
}

fn is_block_type(ptr: &str) -> bool {
    KINDS
        .iter()
        .any(|k| ptr == format!("/{}/type", k.spec_key()))
}

/// What a `format` asks for, with an example; the value itself is not echoed.
fn format_hint(format: &str) -> String {
    let example = match format {
        "date" => " such as 2024-01-31",
        "date-time" => " such as 2024-01-31T09:30:00Z",
        "time" => " such as 09:30:00Z",
        _ => "",
    };
    format!("expected a valid {format}{example}")
}

fn secret_ref_hint() -> String {
    "expected a secret reference: { env: NAME }, { file: PATH }, { gcp_secret: projects/P/secrets/S/versions/V } or { aws_secret: NAME }; never the secret itself".to_string()
}

fn unknown_key(key: &str, allowed: &[String]) -> String {
    let mut msg = format!("unknown key `{key}`");
    if let Some(s) = nearest(key, allowed.iter().map(String::as_str)) {
        msg.push_str(&format!("; did you mean `{s}`?"));
    }
    if !allowed.is_empty() {
        msg.push_str(&format!(" (allowed: {})", allowed.join(", ")));
    }
    msg
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "mapping",
    }
}

/// jsonschema's message without the offending value (which might be a pasted secret).
fn redacted_message(e: &ValidationError) -> String {
    let msg = e.to_string();
    let inst = e.instance();
    let rendered = inst.to_string();
    let mut out = msg.replace(&rendered, "value");
    if let Value::String(s) = inst.as_ref() {
        if !s.is_empty() {
            out = out.replace(s.as_str(), "…");
        }
    }
    out
}

/// Keys the schema allows at `ptr`, following `$ref`s and the `type`-selected branch.
fn allowed_keys(root: &Value, doc: &Value, ptr: &str) -> Vec<String> {
    let mut cur = root;
    let mut inst = doc;
    let segs: Vec<String> = ptr
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    for seg in &segs {
        cur = resolve(root, cur, inst);
        let next = cur
            .get("properties")
            .and_then(|p| p.get(seg.as_str()))
            .or_else(|| cur.get("items"));
        let Some(next) = next else {
            return Vec::new();
        };
        cur = next;
        inst = match inst {
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => inst.get(seg.as_str()),
        }
        .unwrap_or(&Value::Null);
    }
    let cur = resolve(root, cur, inst);
    cur.get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// Follows `$ref` and, for a plugin block, the branch its `type` selects.
fn resolve<'a>(root: &'a Value, mut cur: &'a Value, inst: &Value) -> &'a Value {
    for _ in 0..16 {
        if let Some(r) = cur.get("$ref").and_then(Value::as_str) {
            match r.strip_prefix('#').and_then(|p| root.pointer(p)) {
                Some(t) => cur = t,
                None => return cur,
            }
            continue;
        }
        let ty = inst.get("type").and_then(Value::as_str);
        let branch = cur.get("allOf").and_then(Value::as_array).and_then(|bs| {
            bs.iter().find(|b| {
                b.pointer("/if/properties/type/const")
                    .and_then(Value::as_str)
                    == ty
                    && ty.is_some()
            })
        });
        // `Option<Struct>` is `anyOf: [{$ref: Struct}, {type: null}]`: take the struct.
        let object_alt = ["anyOf", "oneOf"]
            .iter()
            .filter_map(|k| cur.get(*k).and_then(Value::as_array))
            .flatten()
            .find(|alt| alt.get("$ref").is_some() || alt.get("properties").is_some());
        match branch.and_then(|b| b.get("then")).or(object_alt) {
            Some(t) => cur = t,
            None => return cur,
        }
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_accepts_five_and_six_fields() {
        assert_eq!(cron_problem("0 * * * *"), None);
        assert_eq!(cron_problem("30 0 6 * * MON-FRI"), None);
        assert!(cron_problem("0 25 * * *").unwrap().contains("invalid cron"));
        assert!(cron_problem("daily").unwrap().contains("found 1"));
    }

    #[test]
    fn suggests_near_names_only() {
        let c = ["github", "file"];
        assert_eq!(nearest("githb", c.iter().copied()), Some("github"));
        assert_eq!(nearest("snowflake", c.iter().copied()), None);
    }
}
