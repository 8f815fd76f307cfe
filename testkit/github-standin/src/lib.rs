//! A local HTTP server that behaves like GitHub's REST API for what flowctl reads:
//! org and user repos, pulls (sorted by `updated_at` desc), reviews, commits (with
//! `since`, in date order), compare `BASE...HEAD`, a single commit with files,
//! deployments and their statuses, `/rate_limit`, `/users/{name}` and the App installation-token exchange
//! (and, when switched on, each account's own installation and a quota per token).
//! Tests change it between runs: edited PRs, new deployments, merged branches with old
//! commit dates, pushes, force-pushes, archived repositories.
//!
//! It is a stand-in, not a mock: requests go over real HTTP, pages carry `Link` headers
//! pointing at `/repositories/{id}/...` (as GitHub's do), `ETag`s answer 304 to a
//! matching `If-None-Match`, every answer carries `X-RateLimit-*` headers, and faults
//! (5xx, truncated bodies, slow answers, secondary and primary rate limits, 401, 404 for
//! a repo, 403 for a missing permission) can be switched on. Data is deterministic from the seed; JSON objects have the
//! shape and size of GitHub's (nested user and repository objects, ~17 KB a PR).

pub mod data;
pub mod graphql;
mod server;
pub use graphql::{Extras, GraphqlFaults};
pub use server::DEFAULT_GZIP_LEVEL;

use hyper_util::rt::TokioIo;
use server::Shared;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Size and pace of the generated world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandinConfig {
    pub orgs: usize,
    pub repos_per_org: usize,
    pub prs_per_repo: usize,
    pub reviews_per_pr: usize,
    pub commits_per_repo: usize,
    pub files_per_commit: usize,
    /// Added to every request (simulates network round trips).
    pub latency_ms: u64,
    pub seed: u64,
}

impl Default for StandinConfig {
    fn default() -> Self {
        StandinConfig {
            orgs: 1,
            repos_per_org: 3,
            prs_per_repo: 250,
            reviews_per_pr: 2,
            commits_per_repo: 120,
            files_per_commit: 3,
            latency_ms: 0,
            seed: 42,
        }
    }
}

/// Faults to inject. Counters (`*_next`) hit the next N API requests (not `/rate_limit`);
/// rates are fractions decided by a hash of the seed and the request number.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Answer the next N requests 502.
    pub fail_5xx_next: u32,
    /// Answer every request of this kind (repos, pulls, reviews, commits, commit) 502.
    pub fail_5xx_kind: Option<String>,
    /// Fraction of requests answered 503.
    pub fail_5xx_rate: f64,
    /// Cut the body of the next N 200 answers in half (invalid JSON, correct length).
    pub truncate_next: u32,
    pub truncate_rate: f64,
    /// Fraction of requests delayed by `slow_ms` before answering.
    pub slow_rate: f64,
    pub slow_ms: u64,
    /// Answer the next N requests 403 "secondary rate limit", with `Retry-After` if set.
    pub secondary_next: u32,
    pub secondary_retry_after: Option<u64>,
    /// Answer the next N requests 403 with `X-RateLimit-Remaining: 0` and a reset
    /// `primary_reset_secs` from now.
    pub primary_exhausted_next: u32,
    pub primary_reset_secs: u64,
    /// Answer everything 401 "Bad credentials".
    pub unauthorized: bool,
    /// Answer 401 unless `Authorization` is `Bearer <t>` or `token <t>`.
    pub require_token: Option<String>,
    /// Send `X-OAuth-Scopes: <this>` with every answer, as GitHub does for a classic
    /// token (fine-grained tokens and Apps get no such header).
    pub oauth_scopes: Option<String>,
    /// Answer 403 "Resource not accessible by personal access token" to every request of
    /// this kind (`pulls`, `commits`, `deployments`...): a token lacking that permission.
    pub forbid_kind: Option<String>,
    /// Answer 404 for every request under this repository name (it is still listed).
    pub missing_repo: Option<String>,
    /// Answer 502 for every request under this repository name (it is still listed).
    pub fail_5xx_repo: Option<String>,
    /// Primary quota per window (default 1,000,000 an hour); applying faults with a
    /// quota restarts the window. Requests past it get 403 with remaining 0.
    pub quota: Option<u64>,
    /// Length of the quota window in seconds (0 = 3600).
    pub quota_window_secs: u64,
    /// A quota of its own per token (the token as sent after `Bearer `/`token `), each
    /// in a window of `quota_window_secs`, as GitHub keeps one per user or installation;
    /// other requests use the shared quota.
    pub token_quotas: BTreeMap<String, u64>,
    /// The App is installed on every org, each with its own installation
    /// ([`installation_id`]): `GET /orgs/{org}/installation` (App JWT only) names it,
    /// the exchange mints `ghs_standin_installation_{id}`, and a request about an org
    /// with another installation's token answers 404, one without any 401.
    pub installation_per_org: bool,
    /// Organisations answered as user accounts by the installation lookup: their
    /// `GET /orgs/{name}/installation` answers 404, `/users/{name}/installation` names it.
    pub user_accounts: Vec<String>,
    /// Lifetime of minted installation tokens in seconds (0 = an hour, as GitHub's).
    pub installation_token_ttl_secs: u64,
    /// ETags depend on the token as well as the page, as api.github.com's do: a
    /// conditional request answers 304 only with the token that got the ETag.
    pub etag_per_token: bool,
}

/// The App installation id of org `o` when [`Faults::installation_per_org`] is on.
pub fn installation_id(o: usize) -> u64 {
    70_000 + o as u64
}

/// What the server has answered since start or the last `reset_stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestStats {
    pub total: u64,
    pub not_modified: u64,
    /// By kind: repos, pulls, reviews, commits, commit, deployments, deployment_statuses,
    /// rate_limit, app_token, other.
    pub by_kind: BTreeMap<String, u64>,
    pub by_status: BTreeMap<u16, u64>,
    pub faults_injected: u64,
    /// Bytes of 200 bodies as sent (gzipped or not) and as JSON before compression.
    pub body_bytes: u64,
    pub json_bytes: u64,
    /// 200 answers sent gzipped (the client sent `Accept-Encoding: gzip`).
    pub gzipped: u64,
    /// Requests counted against each token's quota (the token as sent), as
    /// [`RequestStats::counted`] does for all of them.
    pub by_token: BTreeMap<String, u64>,
    /// Requests about each org (repos lists and repository routes), by token.
    pub by_org_token: BTreeMap<(String, String), u64>,
}

impl RequestStats {
    pub fn kind(&self, k: &str) -> u64 {
        self.by_kind.get(k).copied().unwrap_or(0)
    }
    /// Requests that count against GitHub's primary rate limit (not 304, not /rate_limit).
    pub fn counted(&self) -> u64 {
        self.total - self.not_modified - self.kind("rate_limit")
    }
}

/// Expected row counts of one org.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectedOrg {
    pub org: String,
    pub repos: usize,
    pub prs: usize,
    pub reviews: usize,
    pub commits: usize,
    pub commit_files: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectedData {
    pub orgs: Vec<ExpectedOrg>,
}

impl ExpectedData {
    pub fn total_prs(&self) -> usize {
        self.orgs.iter().map(|o| o.prs).sum()
    }
    pub fn total_repos(&self) -> usize {
        self.orgs.iter().map(|o| o.repos).sum()
    }
}

/// A running stand-in server.
pub struct Standin {
    shared: Arc<Shared>,
    base_url: String,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Standin {
    /// Bind 127.0.0.1 on a free port and serve.
    pub async fn start(cfg: StandinConfig) -> std::io::Result<Standin> {
        Self::start_on(cfg, 0).await
    }

    /// Bind 127.0.0.1:`port` (0 = any free port) and serve.
    pub async fn start_on(cfg: StandinConfig, port: u16) -> std::io::Result<Standin> {
        Self::serve(data::World::new(cfg), port).await
    }

    /// Also serve `accounts` user accounts (`standin-user-0`, ...), each owning
    /// `repos_per_org` repositories: `/users/{name}/repos` lists them and
    /// `/orgs/{name}/repos` answers 404, as GitHub does for a user.
    pub async fn start_with_user_accounts(
        cfg: StandinConfig,
        accounts: usize,
    ) -> std::io::Result<Standin> {
        Self::serve(data::World::with_user_accounts(cfg, accounts), 0).await
    }

    async fn serve(world: data::World, port: u16) -> std::io::Result<Standin> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared::new(world));
        *shared.base_url.lock().unwrap_or_else(|p| p.into_inner()) = base_url.clone();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let sh = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    acc = listener.accept() => {
                        let Ok((stream, _)) = acc else { continue };
                        let sh = sh.clone();
                        tokio::spawn(async move {
                            let svc = hyper::service::service_fn(move |req| server::handle(sh.clone(), req));
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                    _ = stopped.changed() => break,
                }
            }
        });
        Ok(Standin {
            shared,
            base_url,
            stop,
            task,
        })
    }

    /// `http://127.0.0.1:PORT` (use as the source's `base_url`).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    pub fn stats(&self) -> RequestStats {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// gzip level for clients that accept gzip (0 = never compress; default
    /// [`DEFAULT_GZIP_LEVEL`], as api.github.com compresses).
    pub fn set_gzip_level(&self, level: u32) {
        self.shared
            .gzip_level
            .store(level.min(9), std::sync::atomic::Ordering::Relaxed);
    }

    pub fn reset_stats(&self) {
        *self.shared.stats.lock().unwrap_or_else(|p| p.into_inner()) = RequestStats::default();
    }

    pub fn set_faults(&self, f: Faults) {
        if let Some(limit) = f.quota {
            let window = if f.quota_window_secs == 0 {
                3600
            } else {
                f.quota_window_secs as i64
            };
            *self.shared.rate.lock().unwrap_or_else(|p| p.into_inner()) =
                server::RateState::new(limit, window);
        }
        let window = match f.quota_window_secs {
            0 => 3600,
            w => w as i64,
        };
        *self
            .shared
            .token_rates
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = f
            .token_quotas
            .iter()
            .map(|(t, limit)| (t.clone(), server::RateState::new(*limit, window)))
            .collect();
        *self.shared.faults.lock().unwrap_or_else(|p| p.into_inner()) = f;
    }

    /// GraphQL's point budget and faults (see [`GraphqlFaults`]); restarts its window.
    pub fn set_graphql_faults(&self, f: GraphqlFaults) {
        let g = &self.shared.graphql;
        *g.faults.lock().unwrap_or_else(|p| p.into_inner()) = f;
        *g.used.lock().unwrap_or_else(|p| p.into_inner()) =
            (0, chrono::Utc::now().timestamp() + 3600);
    }

    /// GraphQL points spent in the current window.
    pub fn graphql_points(&self) -> u64 {
        let g = &self.shared.graphql;
        g.used.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// The fields the REST pulls list lacks, of the PR with this id, as `POST /graphql`
    /// serves them (`merged`: whether the PR is merged).
    pub fn pr_extras(&self, pr_id: u64, merged: bool) -> Option<Extras> {
        let w = &self.shared.world;
        let rel = pr_id.checked_sub(w.pr_id(0, 0))?;
        let (ri, k) = ((rel / 10_000_000) as usize, (rel % 10_000_000) as usize);
        (ri < w.repos.len() && k < w.cfg.prs_per_repo).then(|| graphql::extras(w, ri, k, merged))
    }

    pub fn config(&self) -> StandinConfig {
        self.shared.world.cfg
    }

    /// Bump `updated_at` to now (strictly increasing) and change the title of `n` PRs,
    /// spread round-robin over all repos. Returns (org, repo, pr id) of each.
    pub fn touch_pull_requests(&self, n: usize) -> Vec<(String, String, u64)> {
        let w = &self.shared.world;
        let mut prs = self.shared.prs.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        let nrepos = w.repos.len();
        let per = w.cfg.prs_per_repo;
        if nrepos == 0 || per == 0 {
            return out;
        }
        let mut touched = std::collections::BTreeSet::new();
        for i in 0..n.min(nrepos * per) {
            let ri = i % nrepos;
            let seq = self.shared.touch_seq.fetch_add(1, Ordering::SeqCst);
            let mut k = (data::hash(&[w.cfg.seed, seq]) % per as u64) as usize;
            while !touched.insert((ri, k)) {
                k = (k + 1) % per;
            }
            let now = chrono::Utc::now().timestamp().max(data::T0) + seq as i64 + 1;
            prs[ri].updated[k] = now;
            prs[ri].rev[k] += 1;
            out.push((
                w.repos[ri].org_name.clone(),
                w.repos[ri].name.clone(),
                w.pr_id(ri, k),
            ));
        }
        for ri in touched
            .iter()
            .map(|(r, _)| *r)
            .collect::<std::collections::BTreeSet<_>>()
        {
            let rp = &mut prs[ri];
            let upd = rp.updated.clone();
            rp.order
                .sort_by_key(|k| std::cmp::Reverse(upd[*k as usize]));
        }
        out
    }

    /// Regenerate every repository's deployments with `n` each (default
    /// [`data::DEFAULT_DEPLOYMENTS`]); over 100 makes the list paginate.
    pub fn set_deployments_per_repo(&self, n: usize) {
        let w = &self.shared.world;
        *self
            .shared
            .deploys
            .lock()
            .unwrap_or_else(|p| p.into_inner()) =
            (0..w.repos.len()).map(|ri| w.deployments(ri, n)).collect();
    }

    /// The deployments of `org/repo` as served (oldest first), for expectations.
    pub fn deployments(&self, org: &str, repo: &str) -> Vec<data::Deploy> {
        let Some(ri) = self.shared.world.repo_index(org, repo) else {
            return Vec::new();
        };
        self.shared
            .deploys
            .lock()
            .unwrap_or_else(|p| p.into_inner())[ri]
            .clone()
    }

    /// "Now" for a new deployment or status, but after `after` (the previous one), so
    /// times never go backwards. Not in the future unless `after` is.
    fn next_time(&self, after: i64) -> i64 {
        chrono::Utc::now().timestamp().max(after + 1)
    }

    /// Create a deployment of `org/repo`'s newest commit to `environment`, created now
    /// with one `queued` status. Returns its id (None for an unknown repo).
    pub fn add_deployment(&self, org: &str, repo: &str, environment: &str) -> Option<u64> {
        let w = &self.shared.world;
        let ri = w.repo_index(org, repo)?;
        let mut deps = self
            .shared
            .deploys
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let list = &mut deps[ri];
        let created = self.next_time(list.last().map_or(0, |d| d.created));
        let id = list.last().map_or(4_000_000_000, |d| d.id) + 1;
        list.push(data::Deploy {
            id,
            sha: w.commit_sha(ri, 0),
            environment: environment.to_string(),
            description: Some("added by a test".into()),
            creator: Some(1),
            created,
            updated: created,
            statuses: vec![data::DeployStatus {
                id: 6_000_000_000 + id,
                state: "queued".into(),
                created,
            }],
        });
        Some(id)
    }

    /// Add a status (newest) to deployment `id` of `org/repo`, created now. The
    /// deployments list is left as it was (its ETag too): the hard case for a reader, as
    /// nothing in the list shows the change. Returns false when there is no such deployment.
    pub fn add_deployment_status(&self, org: &str, repo: &str, id: u64, state: &str) -> bool {
        let Some(ri) = self.shared.world.repo_index(org, repo) else {
            return false;
        };
        let mut deps = self
            .shared
            .deploys
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let Some(d) = deps[ri].iter_mut().find(|d| d.id == id) else {
            return false;
        };
        let last = d.statuses.last().map_or(d.created, |s| s.created);
        let created = self.next_time(last);
        d.statuses.push(data::DeployStatus {
            id: 7_000_000_000 + (d.id % 1_000_000_000) * 64 + d.statuses.len() as u64,
            state: state.to_string(),
            created,
        });
        true
    }

    /// Archive `org/repo` now: `archived` becomes true and `updated_at` now, in the
    /// repository lists and objects. False for an unknown repository.
    pub fn archive_repo(&self, org: &str, repo: &str) -> bool {
        let w = &self.shared.world;
        let Some(ri) = w.repo_index(org, repo) else {
            return false;
        };
        let mut over = self
            .shared
            .repo_json
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let json = over[ri].clone().unwrap_or_else(|| w.repos[ri].json.clone());
        let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&json) else {
            return false;
        };
        v["archived"] = true.into();
        v["updated_at"] = data::ts(self.next_time(data::T0)).into();
        over[ri] = Some(v.to_string());
        true
    }

    /// Change `org/repo`'s default branch with `f` (None for an unknown repository).
    fn change_history<T>(
        &self,
        org: &str,
        repo: &str,
        f: impl FnOnce(&data::World, usize, &mut server::History) -> T,
    ) -> Option<T> {
        let w = &self.shared.world;
        let ri = w.repo_index(org, repo)?;
        let mut all = self
            .shared
            .history
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let h = &mut all[ri];
        h.version += 1;
        Some(f(w, ri, h))
    }

    /// A new commit of `repo` with the next added key.
    fn added_commit(
        w: &data::World,
        ri: usize,
        h: &server::History,
        date: i64,
        parents: Vec<String>,
    ) -> data::CommitFacts {
        let key = data::ADDED_KEY + h.added.len() + h.gone.len();
        data::CommitFacts {
            key,
            sha: w.commit_sha(ri, key),
            date,
            parents,
        }
    }

    /// Merge into `org/repo`'s default branch a branch of `n` commits whose dates are
    /// `age_days` days before the generated history's newest commit (forked from
    /// generated commit 3, or the oldest), with a merge commit dated now. The branch's
    /// commits come in by date, deep in the commit list, like on GitHub. Returns the
    /// new commits' SHAs, merge commit last.
    pub fn merge_branch_with_old_dates(
        &self,
        org: &str,
        repo: &str,
        n: usize,
        age_days: i64,
    ) -> Option<Vec<String>> {
        let now = self.next_time(data::T0);
        self.change_history(org, repo, |w, ri, h| {
            let fork = w.cfg.commits_per_repo.min(4).checked_sub(1);
            let mut parent = fork.map(|c| w.commit_sha(ri, c));
            let mut out = Vec::new();
            for i in 0..n {
                let date = data::T0 - age_days * 86_400 + i as i64 * 60;
                let c = Self::added_commit(w, ri, h, date, parent.iter().cloned().collect());
                parent = Some(c.sha.clone());
                out.push(c.sha.clone());
                h.added.push(c);
            }
            let last = h.added.last().map_or(now, |c| c.date);
            let parents = w.head(h, ri).into_iter().chain(parent).collect();
            let m = Self::added_commit(w, ri, h, now.max(last + 1), parents);
            out.push(m.sha.clone());
            h.head = Some(m.sha.clone());
            h.added.push(m);
            out
        })
    }

    /// Push `n` new commits, dated now, onto `org/repo`'s default branch. Returns their
    /// SHAs, oldest first.
    pub fn push_commits(&self, org: &str, repo: &str, n: usize) -> Option<Vec<String>> {
        let now = self.next_time(data::T0);
        self.change_history(org, repo, |w, ri, h| {
            let mut out = Vec::new();
            for i in 0..n {
                let parents = w.head(h, ri).into_iter().collect();
                let c = Self::added_commit(w, ri, h, now + i as i64, parents);
                out.push(c.sha.clone());
                h.head = Some(c.sha.clone());
                h.added.push(c);
            }
            out
        })
    }

    /// Force-push `org/repo`'s default branch: its head becomes a new commit (dated now)
    /// on generated commit 2, and every commit no longer reachable is gone (as after
    /// garbage collection: compare and the single-commit endpoint answer 404/422 for
    /// them). Returns the new head.
    pub fn force_push(&self, org: &str, repo: &str) -> Option<String> {
        let now = self.next_time(data::T0);
        self.change_history(org, repo, |w, ri, h| {
            let keep = w.cfg.commits_per_repo.min(3).checked_sub(1);
            let old: Vec<String> = match w.head(h, ri) {
                Some(head) => w
                    .reachable(h, ri, &head)
                    .into_iter()
                    .map(|c| c.sha)
                    .collect(),
                None => Vec::new(),
            };
            let parents: Vec<String> = keep.map(|c| w.commit_sha(ri, c)).into_iter().collect();
            let c = Self::added_commit(w, ri, h, now, parents);
            let head = c.sha.clone();
            h.head = Some(head.clone());
            h.added.push(c);
            let live: std::collections::HashSet<String> = w
                .reachable(h, ri, &head)
                .into_iter()
                .map(|c| c.sha)
                .collect();
            h.gone.extend(old.into_iter().filter(|s| !live.contains(s)));
            h.added.retain(|c| live.contains(&c.sha));
            head
        })
    }

    /// The SHAs of every commit reachable from `org/repo`'s default branch now.
    pub fn branch_commits(&self, org: &str, repo: &str) -> Vec<String> {
        let w = &self.shared.world;
        let Some(ri) = w.repo_index(org, repo) else {
            return Vec::new();
        };
        let all = self
            .shared
            .history
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let h = &all[ri];
        match w.head(h, ri) {
            Some(head) => w
                .reachable(h, ri, &head)
                .into_iter()
                .map(|c| c.sha)
                .collect(),
            None => Vec::new(),
        }
    }

    pub fn expected(&self) -> ExpectedData {
        let c = self.shared.world.cfg;
        ExpectedData {
            orgs: (0..c.orgs)
                .map(|o| ExpectedOrg {
                    org: data::org_name(o),
                    repos: c.repos_per_org,
                    prs: c.repos_per_org * c.prs_per_repo,
                    reviews: c.repos_per_org * c.prs_per_repo * c.reviews_per_pr,
                    commits: c.repos_per_org * c.commits_per_repo,
                    commit_files: c.repos_per_org * c.commits_per_repo * c.files_per_commit,
                })
                .collect(),
        }
    }

    /// Org names, in order.
    pub fn org_names(&self) -> Vec<String> {
        (0..self.shared.world.cfg.orgs)
            .map(data::org_name)
            .collect()
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// A full-size pulls page (as served for page 1 of the first repo), for benchmarks.
pub fn sample_pulls_page(prs: usize, seed: u64) -> Vec<u8> {
    let cfg = StandinConfig {
        orgs: 1,
        repos_per_org: 1,
        prs_per_repo: prs,
        seed,
        ..Default::default()
    };
    let w = data::World::new(cfg);
    let mut body = String::from("[");
    for k in 0..prs {
        if k > 0 {
            body.push(',');
        }
        let f = data::PrFacts {
            k,
            updated: w.pr_initial_updated(0, k),
            rev: 0,
        };
        data::render_pr(&w, 0, f, &mut body);
    }
    body.push(']');
    body.into_bytes()
}
