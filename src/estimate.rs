//! `flowctl plan --estimate SPEC`: the quota a first and an incremental sync of the
//! spec's GitHub source will take, counted cheaply before paying it.

use flowctl_core::spec;
use std::path::Path;
use std::process::ExitCode;

const INVALID: u8 = 2;
const FAILED: u8 = 1;

pub async fn run(path: &Path, changed: u64) -> ExitCode {
    let spec = match spec::load_spec(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("error: {} is not a valid spec", path.display());
            return ExitCode::from(INVALID);
        }
    };
    if spec.source.type_name != "github" {
        eprintln!(
            "error: {}: --estimate prices a `github` source; this spec's source is `{}`",
            path.display(),
            spec.source.type_name
        );
        return ExitCode::from(INVALID);
    }
    let cfg = match flowctl_github::GithubConfig::from_value(spec.source.config.clone()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::from(INVALID);
        }
    };
    match flowctl_github::estimate::estimate(&cfg, changed).await {
        Ok(est) => {
            print!("{}", est.render());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: estimating {}: {e}", path.display());
            ExitCode::from(FAILED)
        }
    }
}
