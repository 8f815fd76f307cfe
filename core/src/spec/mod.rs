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
