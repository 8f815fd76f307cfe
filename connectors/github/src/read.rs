//! One read, org by org: list the repositories, read the selected ones concurrently
//! (each stream in [`crate::streams`]), offer checkpoints, and return each stream's state
//! only after its rows were sent, so state never covers rows that were not.

use crate::auth::Auth;
use crate::config::{Api, GithubConfig, StreamKind};
use crate::http::Client;
use crate::rows::BatchCtx;
use crate::run::{locked, Cursors, OrgTables, ReadError, Run, SharedRows};
use crate::state::{BranchHead, RepoRef, StreamState};
use crate::streams::{
    commit_files::FileRows, commits::CommitRows, deployments::DeploymentRows, pulls::PrRows,
    repos::RepoRows, reviews::ReviewRows,
};
use flowctl_core::progress::ProgressEvent;
use flowctl_core::{BatchSender, PluginError, ReadOutcome, ReadRequest, Result, StreamResult};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use StreamKind::*;

/// How long progress inside a repository waits before it is offered (see `Run::org`).
const PROGRESS_OFFER_DELAY: std::time::Duration = std::time::Duration::from_millis(250);

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Failures of one stream: (org/repo or org, message).
type Errors = BTreeMap<StreamKind, Vec<(String, String)>>;

/// Per-repository result: new cursor or error per stream.
struct RepoOutcome {
    key: String,
    results: Cursors,
    /// The default branch's head, for the commit streams that succeeded.
    heads: Vec<(StreamKind, BranchHead)>,
    skipped: Option<String>,
}

/// Entry point of `Source::read`.
pub async fn read(cfg: &GithubConfig, req: ReadRequest, out: BatchSender) -> Result<ReadOutcome> {
    let mut outcome = ReadOutcome::default();
    let mut kinds = BTreeSet::new();
    let mut old = BTreeMap::new();
    for s in &req.streams {
        let Some(k) = StreamKind::from_name(s) else {
            let names: Vec<&str> = StreamKind::ALL.iter().map(|k| k.name()).collect();
            let error = format!(
                "unknown stream `{s}` (the github source has: {})",
                names.join(", ")
            );
            outcome
                .streams
                .insert(s.clone(), StreamResult::Failed { error });
            continue;
        };
        match StreamState::from_value(req.state.get(s)) {
            Ok(st) => {
                kinds.insert(k);
                old.insert(k, st);
            }
            Err(e) => {
                outcome.streams.insert(
                    s.clone(),
                    StreamResult::Failed {
                        error: format!("stream {s}: {e}"),
                    },
                );
            }
        }
    }
    if kinds.is_empty() {
        return Ok(outcome);
    }
    let auth = Auth::resolve(cfg).await?;
    let api = cfg.api.resolve(matches!(auth, Auth::Anonymous));
    let client = Client::new(cfg, auth, req.progress.clone())
        .map_err(PluginError::config)?
        .with_stop(out.stop_signal());
    let run = Run {
        cfg,
        client,
        kinds,
        old,
        started_us: req.ingested_at.timestamp_micros(),
        ctx: BatchCtx {
            include_raw: cfg.include_raw,
            include_patch: cfg.include_patch,
        },
        out,
        progress: req.progress.clone(),
        floor_us: cfg
            .first_run_floor(req.ingested_at)
            .map(|t| t.timestamp_micros()),
        overlap_us: i64::try_from(cfg.cursor_overlap_seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000),
        shard: req.shard,
        gql: crate::graphql::Gql::new(cfg),
        api,
        inflight: AtomicUsize::new(0),
        unfinished: Mutex::new(BTreeSet::new()),
        partial: Mutex::new(BTreeMap::new()),
        progressed: Mutex::new(BTreeSet::new()),
        progress_made: tokio::sync::Notify::new(),
    };
    let orgs: Vec<&String> = cfg
        .orgs
        .iter()
        .filter(|o| {
            req.only_partitions.is_empty()
                || req
                    .only_partitions
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(o))
        })
        .collect();
    let mut states = run.old.clone();
    let mut errors = Errors::new();
    for org in orgs {
        crate::tokens::for_org(org, run.org(org, &mut states, &mut errors)).await?;
    }
    let unfinished = std::mem::take(&mut *locked(&run.unfinished));
    if !unfinished.is_empty() {
        let keys: Vec<&str> = unfinished.iter().map(|k| k.as_str()).collect();
        run.event(ProgressEvent::Warning {
            stream: "source".into(),
            message: format!(
                "stopped at the deadline: {} not read to the end ({}); they keep their \
                 previous cursors and the next run reads them",
                plural(keys.len(), "repository", "repositories"),
                name_list(&keys)
            ),
        });
    }
    for k in &run.kinds {
        let result = match errors.get(k) {
            Some(errs) if !errs.is_empty() => StreamResult::Failed {
                error: if errs.len() == 1 {
                    format!("{}: {}", errs[0].0, errs[0].1)
                } else {
                    let keys: Vec<&str> = errs.iter().map(|(k, _)| k.as_str()).collect();
                    format!(
                        "{} failed ({}); the others were loaded and their cursors committed; first error: {}: {}",
                        plural(errs.len(), "repository", "repositories"),
                        name_list(&keys),
                        errs[0].0,
                        errs[0].1
                    )
                },
            },
            _ => StreamResult::Done {
                state: run.with_partial(*k, states.get(k)).to_value(),
            },
        };
        outcome.streams.insert(k.name().to_string(), result);
    }
    Ok(outcome)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Up to ten names, then how many more.
fn name_list(names: &[&str]) -> String {
    let mut s = names
        .iter()
        .take(10)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 10 {
        s.push_str(&format!(" and {} more", names.len() - 10));
    }
    s
}

impl Run<'_> {
    async fn org(
        &self,
        org: &str,
        states: &mut BTreeMap<StreamKind, StreamState>,
        errors: &mut Errors,
    ) -> Result<()> {
        let raw = self.cfg.include_raw;
        let mut changed = BTreeSet::new();
        let tables = OrgTables {
            org: org.to_string(),
            pulls: SharedRows::new(PullRequest, PrRows::new(raw)),
            reviews: SharedRows::new(PullRequestReview, ReviewRows::new(raw)),
            commits: SharedRows::new(Commit, CommitRows::new(raw)),
            commit_files: SharedRows::new(CommitFile, FileRows::new(raw)),
            repos: SharedRows::new(Repository, RepoRows::new(raw)),
            deployments: SharedRows::new(Deployment, DeploymentRows::new(raw)),
        };
        let repos = match self.list_repos(&tables).await {
            Ok((repos, listing)) => {
                let k = self.listing_stream();
                let st = states.entry(k).or_default();
                let before = st.orgs.get(org).cloned();
                match listing {
                    Some(l) => st.orgs.insert(org.to_string(), l),
                    None => st.orgs.remove(org),
                };
                if st.orgs.get(org) != before.as_ref() || k == Repository {
                    changed.insert(k);
                }
                repos
            }
            Err(ReadError::Fatal(e)) => return Err(e),
            Err(ReadError::NotFound(m)) => {
                return Err(PluginError::external(format!(
                    "source.orgs: `{org}` is neither an organisation nor a user account at {} \
                     (its repository list answered 404: {m})",
                    self.cfg.base_url
                )))
            }
            Err(ReadError::Failed(m)) => {
                self.failed(errors, self.kinds.iter().copied(), org, m);
                Vec::new()
            }
        };
        self.offer(&tables, states, &mut changed, false).await?;
        let selected: Vec<RepoRef> = repos
            .into_iter()
            .filter(|r| self.selected(org, r))
            .collect();
        // Futures collected first: a closure in the stream's type trips the Send check of
        // the async-trait future (higher-ranked lifetime inference).
        let futs: Vec<_> = selected
            .iter()
            .map(|r| Box::pin(crate::tokens::for_repo(org, &r.name, self.repo(&tables, r))))
            .collect();
        let mut tasks = futures::stream::iter(futs).buffer_unordered(self.cfg.max_concurrency);
        // Progress inside repositories still being read is offered too, a moment after
        // it is made (coalescing a burst of pages into one offer).
        let mut offer_at: Option<tokio::time::Instant> = None;
        loop {
            let res = tokio::select! {
                res = tasks.next() => match res {
                    Some(res) => res,
                    None => break,
                },
                _ = sleep_until(offer_at), if offer_at.is_some() => {
                    offer_at = None;
                    self.offer(&tables, states, &mut changed, false).await?;
                    continue;
                }
                _ = self.progress_made.notified(), if offer_at.is_none() => {
                    offer_at = Some(tokio::time::Instant::now() + PROGRESS_OFFER_DELAY);
                    continue;
                }
            };
            let o = res?;
            if let Some(m) = o.skipped {
                self.event(ProgressEvent::Warning {
                    stream: "repository".into(),
                    message: m,
                });
                continue;
            }
            for (k, r) in o.results {
                match r {
                    Ok(c) => {
                        let st = states.entry(k).or_default();
                        let cut_short = st.partial.remove(&o.key).is_some();
                        locked(&self.partial).remove(&(k, o.key.clone()));
                        if st.repos.insert(o.key.clone(), c.clone()).as_ref() != Some(&c)
                            || cut_short
                        {
                            changed.insert(k);
                        }
                    }
                    Err(m) => self.failed(errors, [k], &o.key, m),
                }
            }
            for (k, h) in o.heads {
                let st = states.entry(k).or_default();
                if st.heads.insert(o.key.clone(), h.clone()).as_ref() != Some(&h) {
                    changed.insert(k);
                }
            }
            self.offer(&tables, states, &mut changed, false).await?;
        }
        drop(tasks);
        self.flush(&tables.repos, org).await?;
        self.flush(&tables.pulls, org).await?;
        self.flush(&tables.reviews, org).await?;
        self.flush(&tables.commits, org).await?;
        self.flush(&tables.commit_files, org).await?;
        self.flush(&tables.deployments, org).await?;
        self.offer(&tables, states, &mut changed, true).await?;
        // Orgs are read one after another: the engine can complete this org's staged
        // files now rather than hold them open while the next org is read.
        self.out
            .partition_done(org)
            .await
            .map_err(|e| PluginError::other(e.to_string()))?;
        Ok(())
    }

    /// Records a failure of `key` (org/repo, or org) for `kinds`; after the engine's stop
    /// request it is only unfinished work, which the next run picks up.
    fn failed(
        &self,
        errors: &mut Errors,
        kinds: impl IntoIterator<Item = StreamKind>,
        key: &str,
        m: String,
    ) {
        if self.client.stopped() {
            let mut unfinished = locked(&self.unfinished);
            unfinished.insert(key.to_string());
            return;
        }
        for k in kinds {
            errors
                .entry(k)
                .or_default()
                .push((key.to_string(), m.clone()));
        }
    }

    /// Offers the engine a checkpoint for each stream in `changed` (a repository finished
    /// since the last one): the rows still in that stream's builder are sent first. Waits
    /// while a full batch is cut but not yet sent (it may hold rows of a finished
    /// repository); the next finished repository, or the end of the org (`settled`: no
    /// repository task is left), offers then.
    async fn offer(
        &self,
        tables: &OrgTables,
        states: &BTreeMap<StreamKind, StreamState>,
        changed: &mut BTreeSet<StreamKind>,
        settled: bool,
    ) -> Result<()> {
        if !settled && self.inflight.load(Ordering::SeqCst) > 0 {
            return Ok(());
        }
        changed.extend(std::mem::take(&mut *locked(&self.progressed)));
        let org = tables.org.as_str();
        for k in std::mem::take(changed) {
            match k {
                PullRequest => self.flush(&tables.pulls, org).await?,
                PullRequestReview => self.flush(&tables.reviews, org).await?,
                Commit => self.flush(&tables.commits, org).await?,
                CommitFile => self.flush(&tables.commit_files, org).await?,
                Repository => self.flush(&tables.repos, org).await?,
                Deployment => self.flush(&tables.deployments, org).await?,
            }
            let state = self.with_partial(k, states.get(&k)).to_value();
            self.out
                .checkpoint(k.name(), state)
                .await
                .map_err(|e| PluginError::other(e.to_string()))?;
        }
        Ok(())
    }

    async fn repo(&self, tables: &OrgTables, r: &RepoRef) -> Result<RepoOutcome> {
        let key = format!("{}/{}", tables.org, r.name);
        let mut out = RepoOutcome {
            key: key.clone(),
            results: Vec::new(),
            heads: Vec::new(),
            skipped: None,
        };
        let gone = |m: String| {
            format!(
                "repository {key} skipped: it answered 404 (deleted, renamed or no longer \
                 visible since it was listed): {m}"
            )
        };
        let mut head = None;
        for (list, child) in [(PullRequest, PullRequestReview), (Commit, CommitFile)] {
            if !(self.want(list) || self.want(child)) {
                continue;
            }
            let res = match list {
                PullRequest if self.api == Api::Graphql => {
                    self.pulls_graphql(tables, r, &key).await
                }
                PullRequest => self.pulls(tables, r, &key).await,
                _ => self.branch_commits(tables, r, &key, &mut head).await,
            };
            match res {
                Ok(mut v) => out.results.append(&mut v),
                Err(ReadError::Fatal(e)) => return Err(e),
                Err(ReadError::NotFound(m)) => {
                    out.skipped = Some(gone(m));
                    out.results.clear();
                    return Ok(out);
                }
                Err(ReadError::Failed(m)) => {
                    for k in [list, child].into_iter().filter(|k| self.want(*k)) {
                        out.results.push((k, Err(m.clone())));
                    }
                }
            }
        }
        if let Some(h) = head {
            for (k, res) in &out.results {
                if matches!(k, Commit | CommitFile) && res.is_ok() {
                    out.heads.push((*k, h.clone()));
                }
            }
        }
        if self.want(Deployment) {
            match self.deployments(tables, r, &key).await {
                Ok(c) => out.results.push((Deployment, Ok(c))),
                Err(ReadError::Fatal(e)) => return Err(e),
                Err(ReadError::NotFound(m)) => {
                    out.skipped = Some(gone(m));
                    out.results.clear();
                    out.heads.clear();
                }
                Err(ReadError::Failed(m)) => out.results.push((Deployment, Err(m))),
            }
        }
        Ok(out)
    }
}
