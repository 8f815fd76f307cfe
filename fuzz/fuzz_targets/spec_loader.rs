//! The spec loader end to end (read, YAML parse, positions, interpolation, schema
//! validation): any bytes must give a spec or located errors, never a panic. The loader
//! takes a path (`read_text` is private), so each input goes through a temp file. A valid
//! github spec also goes through the source's own checks.
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
    match flowctl_core::spec::load_spec_with_env(path, &env) {
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error without a message");
            let _ = errors.to_string();
        }
        // A valid spec goes on to what a run derives from it before any request: the
        // github source's checks and its first-run floor (a `lookback` of 100,000,000
        // days once passed validation and panicked here).
        Ok(spec) if spec.source.type_name == "github" => {
            if let Ok(cfg) = flowctl_github::GithubConfig::from_value(spec.source.config) {
                if cfg.check().is_ok() {
                    let _ = cfg.first_run_floor(chrono::Utc::now());
                }
            }
        }
        Ok(_) => {}
    }
});
