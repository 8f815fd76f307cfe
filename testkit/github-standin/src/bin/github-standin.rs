//! `github-standin`: serve the GitHub stand-in until SIGTERM or ctrl-c. The first stdout
//! line is `GITHUB_API_URL=http://127.0.0.1:PORT`, so scripts can read it and go.

use clap::Parser;
use flowctl_github_standin::{Standin, StandinConfig, DEFAULT_GZIP_LEVEL};
use std::io::Write;

#[derive(Parser)]
#[command(about = "A local stand-in for the GitHub REST API")]
struct Args {
    #[arg(long, default_value_t = 1)]
    orgs: usize,
    #[arg(long, default_value_t = 3)]
    repos: usize,
    #[arg(long, default_value_t = 250)]
    prs: usize,
    #[arg(long, default_value_t = 2)]
    reviews: usize,
    #[arg(long, default_value_t = 120)]
    commits: usize,
    #[arg(long, default_value_t = 3)]
    files: usize,
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// gzip level for clients that send `Accept-Encoding: gzip`, as api.github.com
    /// compresses (0 = never).
    #[arg(long, default_value_t = DEFAULT_GZIP_LEVEL)]
    gzip_level: u32,
    /// 0 picks a free port.
    #[arg(long, default_value_t = 0)]
    port: u16,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let a = Args::parse();
    let cfg = StandinConfig {
        orgs: a.orgs,
        repos_per_org: a.repos,
        prs_per_repo: a.prs,
        reviews_per_pr: a.reviews,
        commits_per_repo: a.commits,
        files_per_commit: a.files,
        latency_ms: a.latency_ms,
        seed: a.seed,
    };
    let s = Standin::start_on(cfg, a.port).await?;
    s.set_gzip_level(a.gzip_level);
    // One write: a reader that takes only the first line and closes the pipe must not
    // make a second write fail (and stop the server).
    let banner = format!(
        "GITHUB_API_URL={}\nGITHUB_ORGS={}\n",
        s.base_url(),
        s.org_names().join(",")
    );
    let mut out = std::io::stdout();
    let _ = out.write_all(banner.as_bytes()).and_then(|_| out.flush());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let st = s.stats();
    eprintln!(
        "github-standin: {} requests ({} not modified)",
        st.total, st.not_modified
    );
    s.shutdown().await;
    Ok(())
}
