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

fn main() -> ExitCode {
    tune_allocator();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(cli::main()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}

/// glibc raises its mmap threshold every time a large block is freed (up to 32 MiB);
/// after the first few, the multi-megabyte page bodies and Arrow buffers of a sync come
/// from the heap instead and freed ones stay in RSS, fragmented. A fixed threshold gives
/// them back to the OS on free: measured with `BENCH_RSS_TRACE=1 cargo bench --bench
/// e2e`, the read phase fell from ~150 to ~80 MiB (at the cost of page faults: about half
/// of flowctl's CPU on the S3 + Snowflake path is system time, BENCHMARKS.md). Set before
/// any thread exists (hence no `#[tokio::main]`). libduckdb brings its own jemalloc, so
/// DuckDB's memory is not affected. glibc's own `MALLOC_MMAP_THRESHOLD_`, when set, wins.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only changes allocator parameters; called before other threads.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 1024 * 1024;
