//! `flowctl check SPEC`: each plugin of a spec checks its access to the real services
//! (source, staging with a probe file, state location, warehouse reading that probe), and
//! the results print as a checklist. Exit 0 when nothing failed, 1 otherwise, 2 for a bad
//! spec. No data is loaded; the probe file and scratch tables are removed again.

use crate::cli::Format;
use crate::run::{self, build_plugins, Failure};
use flowctl_core::check::{CheckContext, CheckResult, CheckStatus};
use flowctl_core::object_store::{ObjectStoreExt, PutPayload};
use flowctl_core::spec::Spec;
use flowctl_core::StagingLocation;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `flowctl check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Pipeline spec file.
    pub spec: PathBuf,
    /// `json` prints one object: {spec, ok, checks: [{name, status, detail, fix?}]}, or
    /// {spec, ok: false, error} for a spec that cannot be checked.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub async fn check(args: CheckArgs) -> ExitCode {
    match check_inner(&args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(f) => {
            if args.format == Format::Json {
                println!(
                    "{}",
                    json!({"spec": args.spec, "ok": false, "error": f.message})
                );
            }
            run::exit(Err(f))
        }
    }
}

/// "nothing to check" for a plugin that has no checks, so every block shows up.
fn or_nothing(mut results: Vec<CheckResult>, kind: &str, type_name: &str) -> Vec<CheckResult> {
    if results.is_empty() {
        results.push(CheckResult::skipped(
            format!("{kind} ({type_name})"),
            "this plugin has no checks",
        ));
    }
    results
}

async fn check_inner(args: &CheckArgs) -> Result<bool, Failure> {
    let spec = run::load(&args.spec)?;
    let plugins = build_plugins(&spec)?;
    let mut results = or_nothing(
        plugins.source.check().await,
        "source",
        &spec.source.type_name,
    );
    let staged = plugins.staging.check().await;
    let probe = staged.probe.clone();
    results.extend(or_nothing(
        staged.results,
        "staging",
        &spec.staging.type_name,
    ));
    results.push(state_check(&spec, &plugins).await);
    let ctx = CheckContext {
        staging: plugins.staging.location().ok(),
        probe: probe.clone(),
    };
    results.extend(or_nothing(
        plugins.warehouse.check(&ctx).await,
        "warehouse",
        &spec.warehouse.type_name,
    ));
    if let Some(p) = &probe {
        results.extend(plugins.staging.remove_probe(p).await);
    }
    let ok = !results.iter().any(CheckResult::is_failed);
    match args.format {
        Format::Json => println!(
            "{}",
            json!({"spec": args.spec, "ok": ok, "checks": results})
        ),
        Format::Text => print_text(&args.spec, &results),
    }
    Ok(ok)
}

fn print_text(spec: &std::path::Path, results: &[CheckResult]) {
    println!("flowctl check {}", spec.display());
    let count = |s: CheckStatus| results.iter().filter(|r| r.status == s).count();
    for r in results {
        let mark = match r.status {
            CheckStatus::Ok => "ok     ",
            CheckStatus::Failed => "FAILED ",
            CheckStatus::Skipped => "skipped",
        };
        println!("  {mark} {}: {}", r.name, r.detail);
        if let Some(fix) = &r.fix {
            println!("          fix: {fix}");
        }
    }
    println!(
        "{} ok, {} failed, {} skipped",
        count(CheckStatus::Ok),
        count(CheckStatus::Failed),
        count(CheckStatus::Skipped)
    );
}

/// The state location takes a document and gives it up again, as every run's state and
/// lease need.
async fn state_check(spec: &Spec, plugins: &flowctl_core::engine::Plugins) -> CheckResult {
    let name = "state: write and delete under _state/";
    let location: StagingLocation = match &spec.state.location {
        Some(uri) => match flowctl_object_store::location_from_uri(uri, &Default::default()) {
            Ok(l) => l,
            Err(e) => {
                return CheckResult::failed(name, e.to_string(), "fix state.location in the spec")
            }
        },
        None => match plugins.staging.location() {
            Ok(l) => l,
            Err(e) => return CheckResult::failed(name, e.to_string(), "fix the staging block"),
        },
    };
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%9f");
    let relative = format!("_state/flowctl-check-{stamp}.json");
    let shown = format!("{}/{relative}", location.root_uri.trim_end_matches('/'));
    let path = match flowctl_object_store::staged_path(&location.root, &relative) {
        Ok(p) => p,
        Err(e) => return CheckResult::failed(name, e.to_string(), "fix state.location"),
    };
    let fix = match (&location.local_dir, &spec.state.location) {
        (Some(dir), _) => format!(
            "make {} a folder this user may write in, or change {}",
            dir.join("_state").display(),
            if spec.state.location.is_some() { "state.location" } else { "staging.path" }
        ),
        (None, Some(_)) => "give the credentials write and delete access to state.location (the same permissions as staging needs), or change it".into(),
        (None, None) => "give the staging credentials write and delete access under the staging prefix (see the staging items)".into(),
    };
    let put = location
        .store
        .put(&path, PutPayload::from(b"{}".to_vec()))
        .await;
    if let Err(e) = put {
        return CheckResult::failed(name, format!("writing {shown}: {e}"), fix.clone());
    }
    match location.store.delete(&path).await {
        Ok(()) => CheckResult::ok(name, format!("{} writable", state_dir(&location))),
        Err(e) => CheckResult::failed(name, format!("deleting {shown}: {e}"), fix),
    }
}

fn state_dir(location: &StagingLocation) -> String {
    format!("{}/_state/", location.root_uri.trim_end_matches('/'))
}
