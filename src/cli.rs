//! Command-line parsing (clap) and dispatch. Exit codes: 0 ok, 1 a run failed,
//! 2 bad usage or an invalid spec.

use crate::{check, inspect, run, scaffold};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// Declarative, plugin-based data connectors: GitHub -> Parquet -> Snowflake/DuckDB.
#[derive(Debug, Parser)]
#[command(name = "flowctl", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr (level from RUST_LOG, default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Output format of `validate`, `plugins` and `check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check specs against the plugin schemas (no network); exit 2 if any is invalid.
    Validate(ValidateArgs),
    /// List the linked plugins: kind, type and description.
    Plugins(PluginsArgs),
    /// Print the composed pipeline schema, or one plugin's; or write them all.
    Schema(SchemaArgs),
    /// Check a spec against the real services (credentials, permissions, grants) without
    /// loading data; print a checklist with the fix for each failure; exit 1 if any failed.
    Check(check::CheckArgs),
    /// Show the resolved spec (secrets as references) and the steps a run would take.
    Plan(PlanArgs),
    /// Run a pipeline: read, stage, load, then save state.
    Apply(run::ApplyArgs),
    /// Show or reset a pipeline's saved state.
    State(run::StateArgs),
    /// Run pipelines on their `schedule:` until stopped.
    Serve(run::ServeArgs),
    /// Run SQL against a spec's DuckDB warehouse and print the rows (tab-separated).
    Query(run::QueryArgs),
    /// Generate SQL from the linked plugins.
    Sql(SqlArgs),
    /// dbt helpers.
    Dbt(DbtArgs),
    /// Write a new plugin crate into the workspace (`flowctl new source NAME`).
    New(scaffold::NewArgs),
}

#[derive(Debug, clap::Args)]
pub struct DbtArgs {
    #[command(subcommand)]
    pub command: DbtCommand,
}

#[derive(Debug, Subcommand)]
pub enum DbtCommand {
    /// Write dbt `_sources_custom.yml` (tables, typed and described columns,
    /// loaded_at_field, freshness) for the tables these specs load.
    Sources {
        /// Pipeline spec files.
        #[arg(required = true)]
        specs: Vec<PathBuf>,
        /// Write to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        write: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Spec files to check.
    #[arg(required = true)]
    pub specs: Vec<PathBuf>,
    /// `json` prints one object with every error (for CI annotations).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct PluginsArgs {
    /// `json` prints an array of {kind, type, description}.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    /// A plugin type (e.g. `github`); without it, the whole pipeline schema.
    #[arg(conflicts_with = "write")]
    pub type_name: Option<String>,
    /// Write pipeline.schema.json and <kind>-<type>.schema.json into this directory.
    #[arg(long, value_name = "DIR")]
    pub write: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Pipeline spec file.
    pub spec: PathBuf,
    /// Count the GitHub source's repositories, pull requests and commits (a few GraphQL
    /// points) and print the quota a first and an incremental sync will take.
    #[arg(long)]
    pub estimate: bool,
    /// With --estimate: pull requests and commits changed between incremental runs.
    #[arg(long, default_value_t = 50, requires = "estimate")]
    pub changed: u64,
}

#[derive(Debug, clap::Args)]
pub struct SqlArgs {
    #[command(subcommand)]
    pub command: SqlCommand,
}

#[derive(Debug, Subcommand)]
pub enum SqlCommand {
    /// CREATE TABLE statements (Snowflake) for every stream of every linked source.
    RawTables {
        /// Write to this file instead of stdout.
        #[arg(long, value_name = "FILE")]
        write: Option<PathBuf>,
        /// Database holding the raw tables.
        #[arg(long, default_value = "GITHUB_PIPELINES")]
        database: String,
        /// Schema holding the raw tables.
        #[arg(long, default_value = "RAW_TABLES")]
        schema: String,
    },
}

pub async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    // A checklist reads better without the loaders' progress lines (RUST_LOG still wins).
    let level = if matches!(cli.command, Command::Check(_)) {
        "warn"
    } else {
        "info"
    };
    init_tracing(cli.log_format, level);
    match cli.command {
        Command::Validate(a) => inspect::validate(&a.specs, a.format),
        Command::Plugins(a) => inspect::plugins(a.format),
        Command::Schema(a) => inspect::schema(a.type_name.as_deref(), a.write.as_deref()),
        Command::Plan(a) if a.estimate => crate::estimate::run(&a.spec, a.changed).await,
        Command::Plan(a) => inspect::plan(&a.spec),
        Command::Check(a) => check::check(a).await,
        Command::Sql(SqlArgs {
            command:
                SqlCommand::RawTables {
                    write,
                    database,
                    schema,
                },
        }) => inspect::raw_tables(write.as_deref(), &database, &schema),
        Command::Dbt(DbtArgs {
            command: DbtCommand::Sources { specs, write },
        }) => crate::dbt::sources_command(&specs, write.as_deref()),
        Command::Apply(a) => run::apply(a).await,
        Command::State(a) => run::state(a).await,
        Command::Serve(a) => run::serve(a).await,
        Command::Query(a) => run::query(a).await,
        Command::New(a) => scaffold::new(a),
    }
}

fn init_tracing(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
