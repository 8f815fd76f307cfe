//! This crate's integration tests, one binary (each test binary links the crate and its
//! dependencies again). To add tests: write `tests/it/<name>.rs` and add `mod <name>;` below;
//! run one file's tests with `cargo test -p flowctl-duckdb --test it <name>::`.

#[path = "../common/mod.rs"]
mod common;

mod load;
mod plan;
mod s3;
