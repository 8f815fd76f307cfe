//! The whole-spec JSON schema, composed from the registered plugins: each plugin block
//! (`source`, `staging`, `warehouse`) picks its branch by `type` with `if`/`then`, so
//! editors complete keys and a validator reports errors inside the chosen plugin's config
//! (a `oneOf` would only say "not valid under any schema").

use crate::plugin::{registered_plugins, PluginInfo, PluginKind};
use serde_json::{json, Map, Value};

const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";
pub(crate) const KINDS: [PluginKind; 3] = [
    PluginKind::Source,
    PluginKind::Staging,
    PluginKind::Warehouse,
];

/// Key of a plugin's branch in the composed schema's `$defs`.
pub(crate) fn branch_key(kind: PluginKind, name: &str) -> String {
    format!("{}-{name}", kind.spec_key())
}

/// The standalone schema of one plugin's block (its config plus `type`), or `None` when
/// no plugin of that type is linked. A type registered for several kinds yields the
/// first (source, then staging, then warehouse).
pub fn plugin_schema(type_name: &str) -> Option<Value> {
    let info = registered_plugins()
        .into_iter()
        .find(|p| p.name == type_name)?;
    Some(standalone(&info))
}

/// A plugin's block schema with `$schema` and a title, keeping its own `$defs`.
pub(crate) fn standalone(info: &PluginInfo) -> Value {
    let mut schema = branch(info);
    if let Value::Object(obj) = &mut schema {
        obj.insert("$schema".into(), Value::from(DRAFT));
        obj.insert(
            "title".into(),
            Value::from(format!("flowctl {} `{}`", info.kind.spec_key(), info.name)),
        );
    }
    schema
}

/// The config schema with `type: const` added to `properties` and `required`, strict
/// (additionalProperties false) unless the plugin composes its root from subschemas.
fn branch(info: &PluginInfo) -> Value {
    let mut schema = (info.config_schema)().to_value();
    let Value::Object(obj) = &mut schema else {
        return json!({"type": "object", "properties": {"type": {"const": info.name}}});
    };
    let props = obj
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(props) = props {
        props.insert(
            "type".into(),
            json!({"const": info.name, "description": info.description}),
        );
    }
    let required = obj.entry("required").or_insert_with(|| json!([]));
    if let Value::Array(req) = required {
        if !req.iter().any(|r| r == "type") {
            req.insert(0, Value::from("type"));
        }
    }
    let composite = ["oneOf", "anyOf", "allOf"]
        .iter()
        .any(|k| obj.contains_key(*k));
    if !composite && !obj.contains_key("additionalProperties") {
        obj.insert("additionalProperties".into(), Value::Bool(false));
    }
    obj.entry("type").or_insert_with(|| Value::from("object"));
    schema
}

/// The whole-spec schema (what `schemas/pipeline.schema.json` holds).
pub fn composed_schema() -> Value {
    let plugins = registered_plugins();
    let mut defs = Map::new();
    for info in &plugins {
        hoist(info, &mut defs);
    }
    let mut props = Map::new();
    props.insert(
        "name".into(),
        json!({
            "type": "string",
            "pattern": "^[a-z0-9_-]+$",
            "description": "Pipeline name: lower-case letters, digits, _ and -. Names state and locks."
        }),
    );
    for kind in KINDS {
        let of_kind: Vec<&PluginInfo> = plugins.iter().filter(|p| p.kind == kind).collect();
        props.insert(kind.spec_key().into(), block_schema(kind, &of_kind));
    }
    props.insert(
        "schedule".into(),
        json!({
            "type": "string",
            "description": "Cron expression (5 fields, or 6 with seconds first) for `flowctl serve`, in UTC."
        }),
    );
    props.insert("state".into(), state_schema());
    props.insert("run".into(), run_schema());
    json!({
        "$schema": DRAFT,
        "$id": "https://flowctl.dev/schemas/pipeline.schema.json",
        "title": "flowctl pipeline spec",
        "type": "object",
        "additionalProperties": false,
        "required": ["name", "source", "staging", "warehouse"],
        "properties": props,
        "$defs": defs,
    })
}

fn state_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": "Where run state (cursors, lease) is kept. Default: beside the staged data.",
        "properties": {
            "location": {
                "type": "string",
                "description": "A local directory, or an s3:// or gs:// URI."
            },
            "lease_ttl_seconds": {
                "type": "integer",
                "minimum": 1,
                "maximum": crate::state::MAX_LEASE_TTL.as_secs(),
                "description": "How long a run's lease lasts without renewal before another run may take over (at most 365 days)."
            }
        }
    })
}

fn run_schema() -> Value {
    let duration = |description: &str| {
        json!({
            "type": "string",
            "pattern": super::DURATION_PATTERN,
            "description": description,
        })
    };
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": "How a run checkpoints and when it stops. Durations: 90s, 15m, 2h, 1h30m.",
        "properties": {
            "checkpoint_interval": duration(
                "Load what was read and commit its state at least this often (default 15m; \
                 also before a rate-limit wait of a minute or more, and at the end). A run \
                 killed later re-reads only what came after its last checkpoint. On \
                 Snowflake each checkpoint resumes the warehouse (60 s minimum billing): \
                 see the README. 0: at every checkpoint the source offers (each finished repository)."
            ),
            "max_duration": duration(
                "Stop reading this long after the start, load and commit what is complete, \
                 release the lease and exit 0 with `complete: false` in the summary; the \
                 next run continues. For `serve` and CronJobs; `apply --max-duration` overrides it."
            )
        }
    })
}

fn block_schema(kind: PluginKind, plugins: &[&PluginInfo]) -> Value {
    let names: Vec<&str> = plugins.iter().map(|p| p.name).collect();
    let type_schema = if names.is_empty() {
        json!({"type": "string"})
    } else {
        json!({"enum": names, "description": format!("Which {} plugin", kind.spec_key())})
    };
    let branches: Vec<Value> = plugins
        .iter()
        .map(|p| {
            json!({
                "if": {"properties": {"type": {"const": p.name}}, "required": ["type"]},
                "then": {"$ref": format!("#/$defs/{}", branch_key(kind, p.name))}
            })
        })
        .collect();
    let mut block = json!({
        "type": "object",
        "required": ["type"],
        "properties": {"type": type_schema},
    });
    if !branches.is_empty() {
        block["allOf"] = Value::Array(branches);
    }
    block
}

/// Moves a plugin's branch into `defs`, namespacing its own `$defs` as
/// `<kind>-<type>.<Name>` and rewriting its `$ref`s, so two plugins may both define
/// e.g. `SecretRef` without clashing.
fn hoist(info: &PluginInfo, defs: &mut Map<String, Value>) {
    let key = branch_key(info.kind, info.name);
    let mut schema = branch(info);
    let mut own = Map::new();
    if let Value::Object(obj) = &mut schema {
        obj.remove("$schema");
        obj.remove("$id");
        for k in ["$defs", "definitions"] {
            if let Some(Value::Object(d)) = obj.remove(k) {
                own.extend(d);
            }
        }
    }
    rewrite_refs(&mut schema, &key);
    defs.insert(key.clone(), schema);
    for (name, mut def) in own {
        rewrite_refs(&mut def, &key);
        defs.insert(format!("{key}.{name}"), def);
    }
}

fn rewrite_refs(v: &mut Value, ns: &str) {
    match v {
        Value::Object(obj) => {
            if let Some(Value::String(r)) = obj.get_mut("$ref") {
                if let Some(rest) = r
                    .strip_prefix("#/$defs/")
                    .or_else(|| r.strip_prefix("#/definitions/"))
                {
                    *r = format!("#/$defs/{ns}.{rest}");
                } else if r == "#" {
                    *r = format!("#/$defs/{ns}");
                }
            }
            obj.values_mut().for_each(|c| rewrite_refs(c, ns));
        }
        Value::Array(items) => items.iter_mut().for_each(|c| rewrite_refs(c, ns)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_are_namespaced() {
        let mut v = json!({"a": {"$ref": "#/$defs/SecretRef"}, "b": [{"$ref": "#"}]});
        rewrite_refs(&mut v, "source-x");
        assert_eq!(v["a"]["$ref"], "#/$defs/source-x.SecretRef");
        assert_eq!(v["b"][0]["$ref"], "#/$defs/source-x");
    }
}
