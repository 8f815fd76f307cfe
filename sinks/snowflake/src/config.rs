//! The `warehouse:` block of a spec for `type: snowflake`.

use flowctl_core::secret::SecretRef;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Snowflake warehouse loader: speaks the SQL API v2 with key-pair (JWT) auth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SnowflakeConfig {
    /// Account identifier as in the URL: `myorg-myaccount` (organisation and account name),
    /// `xy12345.us-east-2.aws` (locator with region), or a `.global` identifier. The JWT
    /// names it the way Snowflake's connectors do: upper case, cut at the first `.` (at the
    /// first `-` for `.global`).
    pub account: String,
    /// User the public key is registered on (`ALTER USER ... SET RSA_PUBLIC_KEY`).
    pub user: String,
    /// Role for every statement; absent means the user's default role. Names here follow
    /// Snowflake's identifier rules: a plain name means its upper-case form
    /// (`flowctl_loader` is `FLOWCTL_LOADER`); write `'"Name"'` for an exact-case name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Virtual warehouse that runs COPY and MERGE; absent means the user's default.
    /// Plain name: upper-case form; `'"Name"'`: exactly that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warehouse: Option<String>,
    /// Database holding the raw tables (and the stage, unless `stage` is qualified).
    /// Plain name: upper-case form (`github_pipelines` is `GITHUB_PIPELINES`); `'"Name"'`:
    /// exactly that.
    #[serde(default = "default_database")]
    pub database: String,
    /// Schema holding the raw tables. Plain name: upper-case form; `'"Name"'`: exactly that.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Path of the PKCS#8 PEM private key (`~/` expanded). Exactly one of
    /// `private_key_path` and `private_key` must be given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_path: Option<String>,
    /// The PKCS#8 PEM private key itself, from a secret reference (for CI and cloud runs
    /// where no key file exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<SecretRef>,
    /// Passphrase of an encrypted PKCS#8 key (`BEGIN ENCRYPTED PRIVATE KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_passphrase: Option<SecretRef>,
    /// Storage integration that grants Snowflake access to the staging bucket. Given
    /// without `stage`, flowctl creates the stage itself over the staging root. Plain name:
    /// upper-case form; `'"Name"'`: exactly that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_integration: Option<String>,
    /// Name of the external stage over the staging root (created by the sql/ setup
    /// scripts): `NAME`, `SCHEMA.NAME` or `DATABASE.SCHEMA.NAME`, unqualified parts from
    /// `database` and `schema`; each part plain (upper-case form) or `"Quoted"` (exact).
    /// Default `FLOWCTL_STAGE` when flowctl creates it from `storage_integration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Server-side limit per statement, so a stuck COPY or MERGE cannot run (and bill) forever.
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout_seconds: u64,
    /// Base URL of the SQL API; default `https://{account}.snowflakecomputing.com`.
    /// Set it for PrivateLink hosts, proxies or the test emulator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// How often to poll a statement that Snowflake answered asynchronously (202).
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Tables loaded at once: each table's COPY → MERGE → TRUNCATE runs in its own
    /// statements, so a run's load phase takes about its longest table instead of the
    /// sum. 1 loads one table after the other. Tables are also prepared (CREATE IF NOT
    /// EXISTS, column check) this many at a time before the read.
    #[serde(default = "default_load_concurrency")]
    #[schemars(range(min = 1, max = 32))]
    pub load_concurrency: usize,
}

/// Stage name used when flowctl creates the stage from `storage_integration`.
pub const DEFAULT_STAGE: &str = "FLOWCTL_STAGE";

fn default_database() -> String {
    "GITHUB_PIPELINES".into()
}
fn default_schema() -> String {
    "RAW_TABLES".into()
}
fn default_statement_timeout() -> u64 {
    3600
}
fn default_poll_interval_ms() -> u64 {
    1000
}
fn default_load_concurrency() -> usize {
    4
}

impl SnowflakeConfig {
    /// The SQL API root without a trailing slash.
    pub fn base_url(&self) -> String {
        match &self.base_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("https://{}.snowflakecomputing.com", self.account),
        }
    }
}
