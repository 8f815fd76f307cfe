//! flowctl source `github`: pull requests, reviews, commits, commit files, repositories
//! and (opt-in) deployments
//! from the GitHub REST API, incremental (cursors + ETags in state), conditional
//! (If-None-Match → 304 costs no quota) and rate-limit aware.
//!
//! State per stream (the JSON handed back in `StreamResult::Done`) is documented in
//! [`state`].

pub mod auth;
mod check;
pub mod config;
pub mod estimate;
pub mod graphql;
pub mod gunzip;
pub mod http;
mod pager;
mod read;
pub mod rows;
mod run;
pub mod schema;
pub mod state;
pub mod streams;
pub mod tokens;

pub use config::{AppAuth, GithubConfig, StreamKind, TokenRefs};

use flowctl_core::{
    async_trait, BatchSender, ReadOutcome, ReadRequest, Result, Source, StreamInfo,
};

/// The configured GitHub source.
pub struct GithubSource {
    cfg: GithubConfig,
}

impl GithubSource {
    pub fn from_config(cfg: GithubConfig) -> Result<Self> {
        cfg.check()?;
        Ok(GithubSource { cfg })
    }

    pub fn config(&self) -> &GithubConfig {
        &self.cfg
    }
}

#[async_trait]
impl Source for GithubSource {
    fn streams(&self) -> Vec<StreamInfo> {
        self.cfg
            .streams
            .iter()
            .map(|k| schema::stream_info(*k, self.cfg.include_raw))
            .collect()
    }

    fn all_streams(&self) -> Vec<StreamInfo> {
        StreamKind::ALL
            .iter()
            .map(|k| schema::stream_info(*k, self.cfg.include_raw))
            .collect()
    }

    fn plan(&self) -> Vec<String> {
        let streams: Vec<&str> = self.cfg.streams.iter().map(|s| s.name()).collect();
        vec![format!(
            "github: orgs {} at {} — streams {}",
            self.cfg.orgs.join(", "),
            self.cfg.base_url,
            streams.join(", ")
        )]
    }

    /// A partition is an org: staged paths hold `org=<org>`, and `--orgs` selects them.
    fn partition_key(&self) -> &'static str {
        "org"
    }

    async fn read(&self, request: ReadRequest, out: BatchSender) -> Result<ReadOutcome> {
        read::read(&self.cfg, request, out).await
    }

    async fn check(&self) -> Vec<flowctl_core::check::CheckResult> {
        check::check(&self.cfg).await
    }
}

fn build(value: serde_json::Value) -> Result<Box<dyn Source>> {
    Ok(Box::new(GithubSource::from_config(
        GithubConfig::from_value(value)?,
    )?))
}

inventory::submit! {
    flowctl_core::SourceRegistration {
        name: "github",
        description: "GitHub REST API: pull requests, reviews, commits, commit files, repositories, deployments",
        config_schema: || schemars::schema_for!(GithubConfig),
        build,
        check: |cfg| GithubConfig::from_value(cfg).map(drop),
    }
}
