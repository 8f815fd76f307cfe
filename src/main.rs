//! `flowctl`: the thin binary over flowctl-core that links every plugin crate.

mod cli;
mod dbt;
mod inspect;
mod run;

// Links every plugin crate so `inventory` sees their registrations.
use flowctl_duckdb as _;
use flowctl_file as _;
use flowctl_github as _;
use flowctl_object_store as _;
use flowctl_snowflake as _;

use std::process::ExitCode;

/// Prints what a run of `spec` would do (used by `apply --dry-run`); no network.
pub fn plan_spec(spec: &flowctl_core::spec::Spec) -> Result<(), String> {
    inspect::plan_loaded(spec)
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::main().await
}
