//! Pipeline specs: reading, `${VAR}` interpolation, validation against the schema
//! composed from the registered plugins, and the typed [`Spec`] a run works from.
//!
//! Every problem found is reported at once, each with `file:line:column`, the key path
//! and what was expected. Secret references stay unresolved here: resolving them is the
//! run's business, so `validate` and `plan` never see a secret value.

mod depth;
mod interpolate;
mod load;
mod positions;
mod schema;
mod validate;

pub use interpolate::interpolate;
pub use load::{load_spec, load_spec_with_env, MAX_SPEC_BYTES};
pub use schema::{composed_schema, plugin_schema};

use crate::plugin::PluginKind;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// A validated pipeline spec.
#[derive(Debug, Clone)]
pub struct Spec {
    pub path: PathBuf,
    pub name: String,
    pub source: PluginBlock,
    pub staging: PluginBlock,
    pub warehouse: PluginBlock,
    /// Cron expression (checked), for `flowctl serve`.
    pub schedule: Option<String>,
    pub state: StateSettings,
    pub run: RunSettings,
}

/// The optional `run:` block: how often a run checkpoints and when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSettings {
    /// Load and commit at least this often (default: the engine's 15 minutes).
    pub checkpoint_interval: Option<std::time::Duration>,
    /// Stop reading after this long (`apply --max-duration` overrides it).
    pub max_duration: Option<std::time::Duration>,
}

/// What a duration in a spec or a flag looks like (for the schema and messages).
pub const DURATION_PATTERN: &str = "^(0|([0-9]+[smh])+)$";

/// Parses `90s`, `15m`, `2h`, `1h30m` (or `0`) into a duration.
pub fn parse_duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    let bad = || format!("`{text}` is not a duration: expected e.g. 90s, 15m, 2h or 1h30m");
    let t = text.trim();
    if t == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let (mut total, mut digits, mut any) = (0u64, String::new(), false);
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
        any = true;
    }
    if !any || !digits.is_empty() {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(total))
}

/// One plugin block of a spec.
#[derive(Debug, Clone)]
pub struct PluginBlock {
    pub kind: PluginKind,
    pub type_name: String,
    /// The block without its `type` key, `${VAR}` interpolated, secret refs untouched.
    pub config: serde_json::Value,
}

/// The optional `state:` block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSettings {
    /// Override: a local directory or an `s3://` / `gs://` URI. Default: beside the
    /// staged data.
    pub location: Option<String>,
    pub lease_ttl_seconds: Option<u64>,
}

/// One problem in a spec file. `line` and `column` are 1-based; `line` 0 means the
/// problem concerns the file as a whole (unreadable, too large).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Key path, e.g. `source.orgs[0]`; empty for the document itself.
    pub path: String,
    pub message: String,
}

#[cfg(test)]
mod duration_tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "15", "m", "1.5h", "10d", "-1m", "99999999999999999999h"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("expected e.g. 90s"), "{bad}: {e}");
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a spec, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// `/source/orgs/0` -> `source.orgs[0]`.
pub fn display_path(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}
