//! `flowctl`: the thin binary over flowctl-core that links every plugin crate.

mod check;
mod cli;
mod dbt;
mod estimate;
mod inspect;
mod run;
mod scaffold;

// Links every plugin crate so `inventory` sees their registrations.
#[cfg(feature = "duckdb")]
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
    start_heap_trimmer();
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

/// glibc raises its mmap threshold every time a large block is freed, after which a
/// sync's multi-megabyte buffers come from the heap and stay in RSS when freed; a fixed
/// threshold gives them back to the OS (BENCHMARKS.md). Set before any thread exists
/// (hence no `#[tokio::main]`); glibc's own `MALLOC_MMAP_THRESHOLD_`, when set, wins.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        // SAFETY: mallopt only changes allocator parameters; called before other threads.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}

/// Returns glibc's free heap pages to the OS once a second (`FLOWCTL_TRIM_MS` sets the
/// period, 0 turns it off): buffers under the mmap threshold still come from the heap,
/// and freed ones in the middle of it stay in RSS until trimmed (BENCHMARKS.md).
fn start_heap_trimmer() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let ms: u64 = match std::env::var("FLOWCTL_TRIM_MS") {
            Err(_) => 1000,
            Ok(v) => v.trim().parse().unwrap_or_else(|_| {
                eprintln!(
                    "warning: FLOWCTL_TRIM_MS={v:?} is not a whole number of milliseconds; using 1000"
                );
                1000
            }),
        };
        if ms > 0 {
            std::thread::spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                // SAFETY: malloc_trim only releases free memory; it is thread-safe.
                unsafe {
                    libc::malloc_trim(0);
                }
            });
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 1024 * 1024;
