//! Secrets: references in a spec (`{ env: NAME }`, `{ file: PATH }`,
//! `{ gcp_secret: projects/P/secrets/S/versions/V }`, `{ aws_secret: NAME }`) that are
//! resolved only when a run needs them, into a [`Secret`] whose Debug and Display print
//! `***`, so a secret never reaches logs, errors, `plan` output or panics.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a secret comes from. Exactly one key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretRef {
    /// Read from an environment variable, e.g. `{ env: GITHUB_TOKEN }`.
    Env(String),
    /// Read from a file (trailing newline trimmed), e.g. `{ file: ~/.secrets/token }`.
    File(String),
    /// GCP Secret Manager version, e.g. `{ gcp_secret: projects/p/secrets/s/versions/latest }`.
    GcpSecret(String),
    /// AWS Secrets Manager secret id or ARN, e.g. `{ aws_secret: github-token }`.
    AwsSecret(String),
}

impl fmt::Debug for SecretRef {
    // The reference itself is not secret, but keep output uniform and short.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "{{ env: {n} }}"),
            SecretRef::File(p) => write!(f, "{{ file: {p} }}"),
            SecretRef::GcpSecret(n) => write!(f, "{{ gcp_secret: {n} }}"),
            SecretRef::AwsSecret(n) => write!(f, "{{ aws_secret: {n} }}"),
        }
    }
}

/// A resolved secret value. Debug and Display print `***`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret value. Call only where it is sent to the system it authenticates to.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl SecretRef {
    /// Resolve the reference. Errors name the reference, never a value.
    pub async fn resolve(&self) -> crate::Result<Secret> {
        crate::secret_resolve::resolve(self).await
    }
}
