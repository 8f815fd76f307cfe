//! The root package's integration tests, one binary so that CI links flowctl, DuckDB and
//! every plugin once. To add tests: write
//! `tests/it/<name>.rs` and add `mod <name>;` below; shared helpers are in `tests/common`
//! (`use crate::common::*;`). Run one file's tests with `cargo test -p flowctl --test it <name>::`.

#[path = "../common/mod.rs"]
mod common;

mod check;
mod checkpoints;
mod cli_plugins_schema;
mod crash_convergence;
mod e2e_local_duckdb;
mod e2e_s3_snowflake;
mod e2e_state_serve;
mod e2e_tokens;
mod e2e_upstream_changes;
mod engine_concurrent_loads;
mod engine_metadata;
mod engine_org_files;
mod engine_retries;
mod faults;
mod gzip_bodies;
mod hostile_payloads;
mod hostile_specs;
mod query_types;
mod security;
mod simple_source;
mod spec_test_plugin;
mod spec_validation;
