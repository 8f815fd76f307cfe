//! This crate's integration tests, one binary (each test binary links the crate and its
//! dependencies again). To add tests: write `tests/it/<name>.rs` and add `mod <name>;` below;
//! run one file's tests with `cargo test -p flowctl-github --test it <name>::`.

#[path = "../common/mod.rs"]
mod common;
#[path = "../replay/mod.rs"]
mod replay;

mod branch_and_accounts;
mod deployments;
mod graphql_estimate;
mod graphql_schema;
mod graphql_standin;
mod http_client;
mod openapi_shapes;
mod replay_corpus;
mod standin_read;
mod tokens;
