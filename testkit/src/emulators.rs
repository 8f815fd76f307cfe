//! Emulator endpoints from the environment and names unique per run.

/// The address of an emulator from the environment variable `var` (set by
/// `scripts/with-emulators.sh`), or `None` after printing `SKIPPED: <var> not set`, so a
/// plain `cargo test` without emulators passes. With `FLOWCTL_REQUIRE_EMULATORS=1` (CI)
/// a missing emulator panics instead: a silently skipped test proves nothing.
pub fn emulator(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("FLOWCTL_REQUIRE_EMULATORS").as_deref() == Ok("1") => {
            panic!("{var} not set and FLOWCTL_REQUIRE_EMULATORS=1")
        }
        _ => {
            println!("SKIPPED: {var} not set");
            None
        }
    }
}

/// Digits only (usable in bucket, schema and file names) and different on every call,
/// in this process and across runs: emulators outlive a test process, so a name must not
/// repeat one an earlier run left behind.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}{nanos}{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
