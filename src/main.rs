// Links every plugin crate so `inventory` sees their registrations.
use flowctl_duckdb as _;
use flowctl_github as _;
use flowctl_object_store as _;
use flowctl_snowflake as _;

fn main() {
    let n = flowctl_core::registered_plugins().len();
    println!("{n} plugins");
}
