//! `${VAR}` / `${VAR:-default}` interpolation in string scalars; `$${` is a literal `${`.
//!
//! Done on parsed values rather than on the raw text, so a variable's value can never
//! change the YAML structure (a value holding `: ` or a newline stays one string).

use super::positions::{escape_segment, Positions};
use serde_json::Value;

/// A problem found while interpolating: the JSON pointer of the scalar and the message.
pub type InterpError = (String, String);

/// Interpolates every string in `value` in place; collects all problems.
pub fn interpolate_tree(
    value: &mut Value,
    positions: &Positions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<InterpError> {
    let mut errors = Vec::new();
    walk(value, String::new(), positions, env, &mut errors);
    errors
}

fn walk(
    value: &mut Value,
    ptr: String,
    positions: &Positions,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<InterpError>,
) {
    match value {
        Value::String(s) if s.contains('$') => match interpolate(s, env) {
            Ok(out) => {
                let plain = positions.get(&ptr).is_some_and(|p| p.plain);
                *value = retype(out, plain && s.contains("${"));
            }
            Err(msgs) => errors.extend(msgs.into_iter().map(|m| (ptr.clone(), m))),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, format!("{ptr}/{i}"), positions, env, errors);
            }
        }
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let child = format!("{ptr}/{}", escape_segment(k));
                walk(v, child, positions, env, errors);
            }
        }
        _ => {}
    }
}

/// An unquoted `port: ${PORT}` becomes a number or boolean when the text is one, as if
/// the value had been written there; quoted scalars always stay strings.
fn retype(text: String, plain: bool) -> Value {
    if plain {
        match serde_yaml::from_str::<serde_yaml::Value>(&text) {
            Ok(serde_yaml::Value::Bool(b)) => return Value::Bool(b),
            Ok(serde_yaml::Value::Number(n)) => {
                if let Some(i) = n.as_i64() {
                    return Value::from(i);
                }
                if let Some(u) = n.as_u64() {
                    return Value::from(u);
                }
            }
            _ => {}
        }
    }
    Value::String(text)
}

/// Interpolates one string. All problems in it are reported.
pub fn interpolate(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(s.len());
    let mut errors = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(body) = tail.strip_prefix("${") {
            let Some(end) = body.find('}') else {
                errors.push(
                    "unterminated `${`: expected `${NAME}` (write `$${` for a literal `${`)"
                        .to_string(),
                );
                return Err(errors);
            };
            match expand(&body[..end], env) {
                Ok(v) => out.push_str(&v),
                Err(e) => errors.push(e),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// `NAME` or `NAME:-default` (default used when NAME is unset or empty, as in sh).
fn expand(expr: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let (name, default) = match expr.split_once(":-") {
        Some((n, d)) => (n, Some(d)),
        None => (expr, None),
    };
    if !valid_name(name) {
        return Err(format!(
            "invalid variable reference `${{{expr}}}`: expected `${{NAME}}` or `${{NAME:-default}}` with NAME of letters, digits and _"
        ));
    }
    match (
        env(name).filter(|v| default.is_none() || !v.is_empty()),
        default,
    ) {
        (Some(v), _) => Ok(v),
        (None, Some(d)) => Ok(d.to_string()),
        (None, None) => Err(format!(
            "environment variable {name} is not set (write `${{{name}:-default}}` for a fallback)"
        )),
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_defaults_and_escapes() {
        assert_eq!(interpolate("x-${A}-y", &env).unwrap(), "x-alpha-y");
        assert_eq!(
            interpolate("${B:-https://h:1}", &env).unwrap(),
            "https://h:1"
        );
        assert_eq!(interpolate("${EMPTY:-d}", &env).unwrap(), "d");
        assert_eq!(interpolate("${EMPTY}", &env).unwrap(), "");
        assert_eq!(interpolate("$${A} $5 $", &env).unwrap(), "${A} $5 $");
    }

    #[test]
    fn reports_every_missing_variable() {
        let errs = interpolate("${B}/${C}", &env).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert!(errs[0].contains("environment variable B is not set"));
        assert!(errs[1].contains("environment variable C is not set"));
        assert!(interpolate("${1x}", &env).unwrap_err()[0].contains("invalid variable"));
        assert!(interpolate("${A", &env).unwrap_err()[0].contains("unterminated"));
    }
}
