//! The deployment stream (opt-in): each repository's deployments with their latest
//! status into DEPLOYMENT rows.

use crate::config::StreamKind::{self, *};
use crate::http::{Fetched, ParseTurn};
use crate::pager::{Next, Pager};
use crate::rows::{
    append_key, itoa, login, opt_ts, parse_page, parse_ts, table_rows, JsonStr, Meta, UserRef,
};
use crate::run::{max_opt, OrgTables, ReadError, Run};
use crate::state::{us_to_time, RepoCursor, RepoRef};
use arrow::array::{Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::SchemaRef;
use serde::Deserialize;

/// The fields of a deployments-list item we keep.
#[derive(Deserialize)]
struct DeploymentItem<'a> {
    id: i64,
    #[serde(borrow)]
    sha: JsonStr<'a>,
    #[serde(borrow, default, rename = "ref")]
    ref_: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    task: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    environment: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    description: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    creator: Option<UserRef<'a>>,
    #[serde(borrow)]
    created_at: JsonStr<'a>,
    #[serde(borrow)]
    updated_at: JsonStr<'a>,
}

/// One deployment, owned: its latest status is fetched (another request) before the
/// row is appended, so it must outlive the list page's body.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub id: i64,
    pub sha: String,
    pub ref_: Option<String>,
    pub task: Option<String>,
    pub environment: Option<String>,
    pub description: Option<String>,
    pub creator: Option<String>,
    /// µs; the stream's cursor.
    pub created: i64,
    pub updated: i64,
    pub raw: Option<String>,
}

/// A deployments page → owned deployments (a bad timestamp makes the page malformed).
pub fn parse_deployments(body: &[u8], raw: bool) -> Result<Vec<Deployment>, String> {
    parse_page::<DeploymentItem>(body, raw)?
        .into_iter()
        .map(|(d, r)| {
            Ok(Deployment {
                id: d.id,
                sha: d.sha.into_owned(),
                ref_: d.ref_.map(JsonStr::into_owned),
                task: d.task.map(JsonStr::into_owned),
                environment: d.environment.map(JsonStr::into_owned),
                description: d.description.map(JsonStr::into_owned),
                creator: login(&d.creator).map(String::from),
                created: parse_ts(&d.created_at)?,
                updated: parse_ts(&d.updated_at)?,
                raw: r.map(String::from),
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct StatusItem<'a> {
    id: i64,
    #[serde(borrow)]
    state: JsonStr<'a>,
    #[serde(borrow, default)]
    created_at: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    environment_url: Option<JsonStr<'a>>,
}

/// The latest status of a deployment (the STATUS_* columns).
#[derive(Debug, Clone, PartialEq)]
pub struct LatestStatus {
    pub state: String,
    pub created: Option<i64>,
    pub environment_url: Option<String>,
}

/// The newest status of a statuses page, by (created_at, id): GitHub lists newest first,
/// but the order is not documented, so it is not relied on.
pub fn latest_status(body: &[u8]) -> Result<Option<LatestStatus>, String> {
    let items = parse_page::<StatusItem>(body, false)?;
    let mut best: Option<(Option<i64>, i64, &StatusItem)> = None;
    for (s, _) in &items {
        let t = opt_ts(&s.created_at)?;
        if best.as_ref().is_none_or(|b| (t, s.id) > (b.0, b.1)) {
            best = Some((t, s.id, s));
        }
    }
    Ok(best.map(|(t, _, s)| LatestStatus {
        state: s.state.to_string(),
        created: t,
        // GitHub sends "" when no environment URL was set.
        environment_url: s
            .environment_url
            .as_deref()
            .filter(|u| !u.is_empty())
            .map(String::from),
    }))
}

/// The DEPLOYMENT builders.
pub struct DeploymentRows {
    schema: SchemaRef,
    id: Int64Builder,
    org: StringBuilder,
    repo_name: StringBuilder,
    sha: StringBuilder,
    ref_: StringBuilder,
    task: StringBuilder,
    environment: StringBuilder,
    description: StringBuilder,
    creator: StringBuilder,
    created: TimestampMicrosecondBuilder,
    updated: TimestampMicrosecondBuilder,
    status_state: StringBuilder,
    status_created: TimestampMicrosecondBuilder,
    status_env_url: StringBuilder,
    meta: Meta,
}

table_rows!(
    DeploymentRows,
    StreamKind::Deployment,
    id,
    org,
    repo_name,
    sha,
    ref_,
    task,
    environment,
    description,
    creator,
    created,
    updated,
    status_state,
    status_created,
    status_env_url
);

impl DeploymentRows {
    pub fn append(&mut self, org: &str, repo: &str, d: &Deployment, s: Option<&LatestStatus>) {
        self.id.append_value(d.id);
        self.org.append_value(org);
        self.repo_name.append_value(repo);
        self.sha.append_value(&d.sha);
        self.ref_.append_option(d.ref_.as_deref());
        self.task.append_option(d.task.as_deref());
        self.environment.append_option(d.environment.as_deref());
        self.description.append_option(d.description.as_deref());
        self.creator.append_option(d.creator.as_deref());
        self.created.append_value(d.created);
        self.updated.append_value(d.updated);
        self.status_state.append_option(s.map(|s| s.state.as_str()));
        self.status_created.append_option(s.and_then(|s| s.created));
        self.status_env_url
            .append_option(s.and_then(|s| s.environment_url.as_deref()));
        append_key(&mut self.meta.keys, &[org, repo, itoa(d.id).as_str()]);
        self.meta.raw(d.raw.as_deref());
    }
}

/// The deployment stream. GitHub lists deployments newest first (by id, i.e. creation)
/// and a deployment's status changes after it was created (queued → in_progress →
/// success, later inactive), which the list does not reflect. So:
/// * the cursor is the newest `created_at` read;
/// * deployments created after the cursor (minus the overlap), and every deployment
///   created within `deployment_status_window_days` of the run's start, are yielded with
///   their latest status (one statuses request each); paging stops after the first page
///   reaching a deployment older than both;
/// * the first page is conditional when the cursor is older than the window, or when
///   there is no cursor yet (a repository without deployments): then nothing known needs
///   its status re-checked and a 304 really means "nothing new".
impl Run<'_> {
    pub(crate) async fn deployments(
        &self,
        tables: &OrgTables,
        r: &RepoRef,
        key: &str,
    ) -> Result<RepoCursor, ReadError> {
        let org = tables.org.as_str();
        let old = self.cursor(Deployment, key);
        let window_us =
            i64::from(self.cfg.deployment_status_window_days).saturating_mul(86_400_000_000);
        let window_start = self.started_us.saturating_sub(window_us);
        let bound = match old.cursor_us() {
            Some(_) => self.cut(&old).map(|c| c.min(window_start)),
            None => self.floor_us,
        };
        // Without a cursor nothing was yielded (no deployments, or none after the first
        // run's floor), so nothing needs a re-check either.
        let etag = match old.cursor_us() {
            Some(c) if c >= window_start => None,
            _ => old.etag.clone(),
        };
        let url = self.url(&["repos", org, &r.name, "deployments"], "per_page=100");
        let mut pages = Pager::new(self, org, "deployment", url).if_none_match(etag);
        let mut max = old.cursor_us();
        loop {
            let page = pages
                .fetch(|body| {
                    let items = parse_deployments(body, self.ctx.include_raw)?;
                    let stop = bound.is_some_and(|b| items.iter().any(|d| d.created < b));
                    let keep: Vec<_> = items
                        .into_iter()
                        .filter(|d| bound.is_none_or(|b| d.created >= b))
                        .collect();
                    Ok((stop, keep))
                })
                .await?;
            let (stop, keep) = match page {
                // Each deployment's status is a request of its own, which needs the turn,
                // and the rows are built after them: give it up now.
                Next::Page((page, turn)) => {
                    drop(turn);
                    page
                }
                Next::NotModified => return Ok(old),
                _ => break,
            };
            if stop {
                pages.stop();
            }
            let mut rows = Vec::with_capacity(keep.len());
            for d in keep {
                let s = self.deployment_status(org, r, d.id).await?;
                rows.push((d, s));
            }
            max = max_opt(max, rows.iter().map(|(d, _)| d.created).max());
            let page = self.fill(&tables.deployments, rows.iter(), |b, (d, s)| {
                b.append(org, &r.name, d, s.as_ref())
            });
            self.deliver(Deployment, org, page, ParseTurn::none())
                .await?;
        }
        Ok(RepoCursor {
            cursor: max.and_then(us_to_time),
            etag: pages.etag(),
            since: None,
        })
    }

    /// The latest status of one deployment, from the first statuses page (GitHub lists
    /// them newest first). A 404 (deployment deleted meanwhile) fails the stream for the
    /// repository, like a vanished PR's reviews; the next run will not list it.
    async fn deployment_status(
        &self,
        org: &str,
        r: &RepoRef,
        id: i64,
    ) -> Result<Option<LatestStatus>, ReadError> {
        let id = id.to_string();
        let segs = ["repos", org, &r.name, "deployments", &id, "statuses"];
        let url = self.url(&segs, "per_page=100");
        let got = self
            .client
            .get("deployment", &url, None, latest_status)
            .await
            .map_err(ReadError::of_sub_resource)?;
        match got {
            Fetched::Page { data, .. } => Ok(data),
            Fetched::NotModified => Ok(None),
        }
    }
}
