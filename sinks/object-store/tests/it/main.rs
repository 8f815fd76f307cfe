//! This crate's integration tests, one binary (each test binary links the crate and its
//! dependencies again). To add tests: write `tests/it/<name>.rs` and add `mod <name>;` below;
//! run one file's tests with `cargo test -p flowctl-object-store --test it <name>::`.

#[path = "../common/mod.rs"]
mod common;

mod gcs;
mod local;
mod s3_moto;
