//! This crate's integration tests, one binary (each test binary links the crate and its
//! dependencies again). To add tests: write `tests/it/<name>.rs` and add `mod <name>;` below;
//! run one file's tests with `cargo test -p flowctl-snowflake --test it <name>::`.

mod config;
mod emulator;
mod jwt;
mod setup_scripts;
mod sql_golden;
