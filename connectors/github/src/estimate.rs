//! `flowctl plan --estimate`: what a first and an incremental sync will cost, before
//! paying it. Repositories, pull requests and default-branch commits are counted with
//! GraphQL `totalCount` (2 points per 100 repositories); the token's limits come from
//! `GET /rate_limit`, which costs nothing.
//!
//! The incremental figure assumes `changed` PRs and `changed` new commits spread over
//! as many repositories as possible (the costliest spread); unchanged repositories cost
//! nothing (304). GraphQL points assume `max_concurrency` repositories read at a time,
//! sharing their queries.

use crate::auth::Auth;
use crate::config::{Api, GithubConfig, StreamKind};
use crate::graphql::shared::shared_points;
use crate::graphql::{query, Gql, GqlFail};
use crate::http::{Client, Fetched};
use flowctl_core::{PluginError, Result};
use serde_json::{json, Value};
use std::sync::Arc;

/// Counts of one selected repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoCount {
    pub org: String,
    pub name: String,
    pub prs: u64,
    pub commits: u64,
}

/// Cost of one stream (or pair of streams read together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub stream: &'static str,
    /// REST requests and GraphQL points of a first sync.
    pub first: (u64, u64),
    /// ... and of an incremental sync.
    pub incremental: (u64, u64),
}

#[derive(Debug, Clone)]
pub struct Estimate {
    pub api: Api,
    pub orgs: Vec<String>,
    pub listed: u64,
    pub repos: Vec<RepoCount>,
    pub changed: u64,
    /// Hourly limits: REST requests, GraphQL points.
    pub limits: (u64, u64),
    pub lines: Vec<Line>,
    /// GraphQL points the counting itself spent.
    pub counting_points: u64,
}

/// Early-stopping pages of `per` for `changed` items: the page holding the first older
/// item ends the read, so `changed / per + 1` pages (none past the repo's total).
fn stop_pages(changed: u64, total: u64, per: u64) -> u64 {
    if changed >= total {
        total.div_ceil(per).max(1)
    } else {
        changed / per + 1
    }
}

impl Estimate {
    pub fn totals(&self) -> ((u64, u64), (u64, u64)) {
        let sum = |f: fn(&Line) -> (u64, u64)| {
            self.lines
                .iter()
                .map(f)
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
        };
        (sum(|l| l.first), sum(|l| l.incremental))
    }

    fn compute(&mut self, cfg: &GithubConfig) {
        let want = |k| cfg.streams.contains(&k);
        let repos = &self.repos;
        let n = repos.len() as u64;
        // Changed items spread over the most repositories: `changed` of them, one each,
        // or all of them sharing.
        let spread = |total_of: fn(&RepoCount) -> u64, per: u64| -> (u64, u64) {
            if n == 0 || self.changed == 0 {
                return (0, 0);
            }
            let hit = n.min(self.changed);
            let (base, extra) = (self.changed / hit, self.changed % hit);
            let mut pages = 0;
            for (i, r) in repos.iter().take(hit as usize).enumerate() {
                let c = base + u64::from((i as u64) < extra);
                pages += stop_pages(c, total_of(r), per);
            }
            (hit, pages)
        };
        let mut lines = Vec::new();
        let list = self.listed.div_ceil(100).max(1) * self.orgs.len().max(1) as u64;
        // The org's repository list is read whether or not REPOSITORY is a stream; it is
        // conditional (free when unchanged) only with the repository stream.
        let list_inc = if want(StreamKind::Repository) {
            0
        } else {
            list
        };
        lines.push(Line {
            stream: "repository",
            first: (list, 0),
            incremental: (list_inc, 0),
        });
        let (pr, rv) = (
            want(StreamKind::PullRequest),
            want(StreamKind::PullRequestReview),
        );
        if pr || rv {
            let prs: u64 = repos.iter().map(|r| r.prs).sum();
            let hit = if self.changed == 0 {
                0
            } else {
                n.min(self.changed)
            };
            // PRs each changed repository reads: its changed ones and the older one that
            // stops the read (or all of them).
            let stop_needs = || -> Vec<u64> {
                let Some((base, extra)) =
                    (hit > 0).then(|| (self.changed / hit, self.changed % hit))
                else {
                    return Vec::new();
                };
                repos
                    .iter()
                    .take(hit as usize)
                    .enumerate()
                    .map(|(i, r)| {
                        let c = base + u64::from((i as u64) < extra);
                        if c >= r.prs {
                            r.prs
                        } else {
                            c + 1
                        }
                    })
                    .collect()
            };
            let (rest_hit, rest_pages) = spread(|r| r.prs, 100);
            let line = match self.api {
                Api::Graphql => {
                    // Repositories read at the same time share queries
                    // (`graphql::shared`): points go by rounds, not by repository.
                    let all: Vec<u64> = repos.iter().map(|r| r.prs).collect();
                    Line {
                        stream: "pull_request + pull_request_review",
                        first: (n, shared_points(&all, cfg.max_concurrency)),
                        incremental: (hit, shared_points(&stop_needs(), cfg.max_concurrency)),
                    }
                }
                Api::Rest | Api::Auto => {
                    let pages_first: u64 = repos.iter().map(|r| r.prs.div_ceil(100).max(1)).sum();
                    let reviews = |x: u64| if rv { x } else { 0 };
                    Line {
                        stream: "pull_request + pull_request_review",
                        first: (pages_first + reviews(prs), 0),
                        incremental: (rest_pages.max(rest_hit) + reviews(self.changed.min(prs)), 0),
                    }
                }
            };
            lines.push(line);
        }
        let (cm, cf) = (want(StreamKind::Commit), want(StreamKind::CommitFile));
        if cm || cf {
            let (hit, pages) = spread(|r| r.commits, 100);
            lines.push(Line {
                stream: "commit",
                first: (
                    repos.iter().map(|r| r.commits.div_ceil(100).max(1)).sum(),
                    0,
                ),
                incremental: (pages.max(hit), 0),
            });
        }
        if cf {
            let commits: u64 = repos.iter().map(|r| r.commits).sum();
            lines.push(Line {
                stream: "commit_file",
                first: (commits, 0),
                incremental: (self.changed.min(commits), 0),
            });
        }
        self.lines = lines;
    }

    pub fn render(&self) -> String {
        let prs: u64 = self.repos.iter().map(|r| r.prs).sum();
        let commits: u64 = self.repos.iter().map(|r| r.commits).sum();
        let api = match self.api {
            Api::Graphql => "graphql",
            Api::Rest | Api::Auto => "rest",
        };
        let mut out = format!(
            "github: orgs {} (api: {api})\n{} repositories selected of {} listed, {prs} pull requests, {commits} default-branch commits (counting cost {} GraphQL points)\nquota per hour: {} REST requests, {} GraphQL points (GET /rate_limit)\n\n",
            self.orgs.join(", "),
            self.repos.len(),
            self.listed,
            self.counting_points,
            self.limits.0,
            self.limits.1,
        );
        let cell = |(r, p): (u64, u64)| {
            if p == 0 {
                format!("{r} requests")
            } else {
                format!("{r} requests + {p} points")
            }
        };
        out.push_str(&format!(
            "{:<36} {:<28} incremental ({} PRs and {} commits changed)\n",
            "stream", "first sync", self.changed, self.changed
        ));
        for l in &self.lines {
            out.push_str(&format!(
                "{:<36} {:<28} {}\n",
                l.stream,
                cell(l.first),
                cell(l.incremental)
            ));
        }
        let (first, inc) = self.totals();
        let hours = |(r, p): (u64, u64)| {
            let h = |x: u64, lim: u64| x as f64 / lim.max(1) as f64;
            // The two budgets are spent side by side: the larger share is the wait.
            h(r, self.limits.0).max(h(p, self.limits.1))
        };
        out.push_str(&format!(
            "{:<36} {:<28} {}\n",
            "total",
            cell(first),
            cell(inc)
        ));
        out.push_str(&format!(
            "{:<36} {:<28} {:.2} h\n",
            "hours of quota",
            format!("{:.2} h", hours(first)),
            hours(inc)
        ));
        if self.lines.iter().any(|l| l.stream == "commit_file") {
            out.push_str(
                "\ncommit_file costs one REST request per commit (GET /repos/{owner}/{repo}/commits/{sha}); \
                 GitHub offers no cheaper way (neither the commits list nor GraphQL gives a commit's files).\n",
            );
        }
        out.push_str(
            "Counts are of all history: start_date or lookback make a first sync cheaper. \
             Reviews past a PR's first 100 cost a point (GraphQL) or a request (REST) per 100 more.\n",
        );
        out
    }
}

/// A listed repository: name, archived, fork, pull requests, default-branch commits.
type Counted = (String, bool, bool, u64, u64);

fn count_page(v: &Value) -> std::result::Result<(Vec<Counted>, Option<String>), String> {
    let conn = v
        .pointer("/repositoryOwner/repositories")
        .filter(|c| !c.is_null())
        .ok_or("repositoryOwner is null (no such organisation or user)")?;
    let mut out = Vec::new();
    for n in conn
        .get("nodes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|n| !n.is_null())
    {
        let name = n
            .get("name")
            .and_then(Value::as_str)
            .ok_or("a repository without a name")?;
        out.push((
            name.to_string(),
            n.get("isArchived")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            n.get("isFork").and_then(Value::as_bool).unwrap_or(false),
            n.pointer("/pullRequests/totalCount")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            n.pointer("/defaultBranchRef/target/history/totalCount")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        ));
    }
    let next = (conn.pointer("/pageInfo/hasNextPage") == Some(&Value::Bool(true)))
        .then(|| {
            conn.pointer("/pageInfo/endCursor")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .flatten();
    Ok((out, next))
}

/// Counts the configured orgs and prices a first and an incremental sync.
pub async fn estimate(cfg: &GithubConfig, changed: u64) -> Result<Estimate> {
    let auth = Auth::resolve(cfg).await?;
    let api = cfg.api.resolve(matches!(auth, Auth::Anonymous));
    let progress: flowctl_core::progress::Progress = Arc::new(flowctl_core::progress::NoProgress);
    let client = Client::new(cfg, auth, progress).map_err(PluginError::config)?;
    let gql = Gql::new(cfg);
    let err = |e: GqlFail| match e {
        GqlFail::Heavy(m) => PluginError::external(m),
        GqlFail::Http(h) => PluginError::external(h.to_string()),
    };
    let mut est = Estimate {
        api,
        orgs: cfg.orgs.clone(),
        listed: 0,
        repos: Vec::new(),
        changed,
        limits: (5000, 5000),
        lines: Vec::new(),
        counting_points: 0,
    };
    for org in &cfg.orgs {
        let mut after: Option<String> = None;
        loop {
            let vars = json!({ "owner": org, "after": after });
            let ans = gql
                .query(
                    &client,
                    "estimate",
                    &query::estimate(),
                    vars,
                    u64::from(query::ESTIMATE_COST),
                )
                .await
                .map_err(err)?;
            let v: Value = serde_json::from_str(&ans.data)
                .map_err(|e| PluginError::external(e.to_string()))?;
            let (repos, next) = count_page(&v)
                .map_err(|e| PluginError::external(format!("estimate of `{org}`: {e}")))?;
            for (name, archived, fork, prs, commits) in repos {
                est.listed += 1;
                let selected = cfg.repo_selected(&name)
                    && (cfg.include_archived || !archived)
                    && (cfg.include_forks || !fork);
                if selected {
                    est.repos.push(RepoCount {
                        org: org.clone(),
                        name,
                        prs,
                        commits,
                    });
                }
            }
            match next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
    }
    est.counting_points = gql.spent();
    let url = client.url("rate_limit");
    if let Ok(Fetched::Page { data, turn, .. }) = client
        .get("estimate", &url, None, |b| {
            serde_json::from_slice::<Value>(b).map_err(|e| e.to_string())
        })
        .await
    {
        drop(turn);
        let lim = |k: &str, d: u64| {
            data.pointer(&format!("/resources/{k}/limit"))
                .and_then(Value::as_u64)
                .unwrap_or(d)
        };
        est.limits = (lim("core", 5000), lim("graphql", 5000));
    }
    est.compute(cfg);
    Ok(est)
}
