//! The spec loader end to end (read, YAML parse, positions, interpolation, schema
//! validation): any bytes must give a spec or located errors, never a panic. The loader
//! takes a path (`read_text` is private), so each input goes through a temp file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        std::env::temp_dir().join(format!("flowctl-fuzz-spec-{}.yaml", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    if std::fs::write(path, data).is_err() {
        return;
    }
    let env = |name: &str| (name == "SET").then(|| "value: with ${braces}".to_string());
    if let Err(errors) = flowctl_core::spec::load_spec_with_env(path, &env) {
        assert!(!errors.0.is_empty(), "an error without a message");
        let _ = errors.to_string();
    }
});
