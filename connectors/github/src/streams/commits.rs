//! The commit stream: the default branch's commits into COMMIT rows, by date on a first
//! read and by compare from the recorded head after it; the files of each commit are
//! read along (see [`super::commit_files`]).

use crate::config::StreamKind::{self, *};
use crate::http::{Fetched, HttpError};
use crate::rows::{
    append_key, append_list, login, opt_ts, parse_page, table_rows, ts_builder, JsonStr, Meta,
    UserRef,
};
use crate::run::{keep_opt, list_cut, max_opt, Cursors, OrgTables, PageRows, ReadError, Run};
use crate::schema::table_schema;
use crate::state::{us_to_time, BranchHead, RepoCursor, RepoRef};
use arrow::array::{ListBuilder, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::SchemaRef;
use flowctl_core::progress::ProgressEvent;
use serde::Deserialize;

#[derive(Deserialize)]
struct GitActor<'a> {
    #[serde(borrow, default)]
    name: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    email: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    date: Option<JsonStr<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct CommitInner<'a> {
    #[serde(borrow, default)]
    author: Option<GitActor<'a>>,
    #[serde(borrow, default)]
    committer: Option<GitActor<'a>>,
    #[serde(borrow)]
    message: JsonStr<'a>,
}

#[derive(Deserialize)]
struct Sha<'a> {
    #[serde(borrow)]
    sha: JsonStr<'a>,
}

#[derive(Deserialize)]
pub struct CommitItem<'a> {
    #[serde(borrow)]
    pub sha: JsonStr<'a>,
    #[serde(borrow)]
    commit: CommitInner<'a>,
    #[serde(borrow, default)]
    author: Option<UserRef<'a>>,
    #[serde(borrow, default)]
    committer: Option<UserRef<'a>>,
    #[serde(borrow, default)]
    parents: Option<Vec<Sha<'a>>>,
    #[serde(borrow, default)]
    html_url: Option<JsonStr<'a>>,
}

impl CommitItem<'_> {
    /// (author date, committer date) in µs; the committer date is the commits cursor.
    pub fn dates(&self) -> Result<(Option<i64>, Option<i64>), String> {
        Ok((
            actor_date(&self.commit.author)?,
            self.commit.committer_date()?,
        ))
    }
}

impl CommitInner<'_> {
    pub(crate) fn committer_date(&self) -> Result<Option<i64>, String> {
        actor_date(&self.committer)
    }
}

fn actor_date(actor: &Option<GitActor<'_>>) -> Result<Option<i64>, String> {
    Ok(actor
        .as_ref()
        .map(|x| opt_ts(&x.date))
        .transpose()?
        .flatten())
}

pub struct CommitRows {
    schema: SchemaRef,
    sha: StringBuilder,
    author_name: StringBuilder,
    author_email: StringBuilder,
    author_date: TimestampMicrosecondBuilder,
    committer_name: StringBuilder,
    committer_email: StringBuilder,
    committer_date: TimestampMicrosecondBuilder,
    author_login: StringBuilder,
    committer_login: StringBuilder,
    message: StringBuilder,
    parents: ListBuilder<StringBuilder>,
    html_url: StringBuilder,
    repo_name: StringBuilder,
    org: StringBuilder,
    meta: Meta,
}

table_rows!(
    CommitRows,
    sha,
    author_name,
    author_email,
    author_date,
    committer_name,
    committer_email,
    committer_date,
    author_login,
    committer_login,
    message,
    parents,
    html_url,
    repo_name,
    org
);

impl CommitRows {
    pub fn new(include_raw: bool) -> Self {
        CommitRows {
            schema: table_schema(StreamKind::Commit, include_raw),
            sha: StringBuilder::new(),
            author_name: StringBuilder::new(),
            author_email: StringBuilder::new(),
            author_date: ts_builder(),
            committer_name: StringBuilder::new(),
            committer_email: StringBuilder::new(),
            committer_date: ts_builder(),
            author_login: StringBuilder::new(),
            committer_login: StringBuilder::new(),
            message: StringBuilder::new(),
            parents: ListBuilder::new(StringBuilder::new()),
            html_url: StringBuilder::new(),
            repo_name: StringBuilder::new(),
            org: StringBuilder::new(),
            meta: Meta::default(),
        }
    }

    /// `dates` = (author date, committer date) from [`CommitItem::dates`].
    pub fn append(
        &mut self,
        org: &str,
        repo: &str,
        c: &CommitItem<'_>,
        dates: (Option<i64>, Option<i64>),
        raw: Option<&str>,
    ) {
        let a = c.commit.author.as_ref();
        let m = c.commit.committer.as_ref();
        let (adate, mdate) = dates;
        self.sha.append_value(&c.sha);
        self.author_name
            .append_option(a.and_then(|x| x.name.as_deref()));
        self.author_email
            .append_option(a.and_then(|x| x.email.as_deref()));
        self.author_date.append_option(adate);
        self.committer_name
            .append_option(m.and_then(|x| x.name.as_deref()));
        self.committer_email
            .append_option(m.and_then(|x| x.email.as_deref()));
        self.committer_date.append_option(mdate);
        self.author_login.append_option(login(&c.author));
        self.committer_login.append_option(login(&c.committer));
        self.message.append_value(&c.commit.message);
        append_list(
            &mut self.parents,
            c.parents.as_ref().map(|v| v.iter().map(|p| &*p.sha)),
        );
        self.html_url.append_option(c.html_url.as_deref());
        self.repo_name.append_value(repo);
        self.org.append_value(org);
        append_key(&mut self.meta.keys, &[org, repo, &c.sha]);
        self.meta.raw(raw);
    }
}

/// What `commits?per_page=1` said about the default branch.
enum Probe {
    Unchanged,
    Head(BranchHead),
    NoCommits,
}

impl Run<'_> {
    /// The commit streams of a repository without commits: its cursors stay as they were
    /// (the stream still succeeds) and one warning says why nothing was read.
    fn empty_repository(
        &self,
        key: &str,
        olds: &[(StreamKind, &RepoCursor)],
        answer: &str,
    ) -> Vec<(StreamKind, std::result::Result<RepoCursor, String>)> {
        self.event(ProgressEvent::Warning {
            stream: if self.want(Commit) {
                "commit"
            } else {
                "commit_file"
            }
            .into(),
            message: format!("repository {key} has no commits yet, nothing to read ({answer})"),
        });
        olds.iter()
            .filter(|(k, _)| self.want(*k))
            .map(|(k, c)| (*k, Ok((*c).clone())))
            .collect()
    }

    /// Commits of the default branch, newest first. The URL's `since` is an anchor kept in
    /// state (the first run's floor, moved up to the cursor after a run that needed more
    /// than one page), so an unchanged repository answers 304 to the saved ETag. Paging
    /// stops after the first page that reaches the cursor. Files are read for commits
    /// newer than the commit_file cursor.
    async fn commits(
        &self,
        tables: &OrgTables,
        r: &RepoRef,
        key: &str,
        first_listed: &mut Option<String>,
    ) -> std::result::Result<Vec<(StreamKind, std::result::Result<RepoCursor, String>)>, ReadError>
    {
        let org = tables.org.as_str();
        let (cm_want, cf_want) = (self.want(Commit), self.want(CommitFile));
        let (old_cm, old_cf) = (self.cursor(Commit, key), self.cursor(CommitFile, key));
        let (cut_cm, cut_cf) = (self.cut(&old_cm), self.cut(&old_cf));
        let list_cut = list_cut((cm_want, cut_cm), (cf_want, cut_cf));
        let olds = [(Commit, &old_cm), (CommitFile, &old_cf)];
        let saved_anchor = self.common(&olds, |c| c.since.map(|t| t.timestamp_micros()));
        let anchor = saved_anchor.or(self.floor_us);
        let etag = if saved_anchor.is_some() || self.floor_us.is_none() {
            self.common_etag(&olds)
        } else {
            None
        };
        let label = if cm_want { "commit" } else { "commit_file" };
        let mut query = String::from("per_page=100");
        if let Some(t) = anchor.and_then(us_to_time) {
            query.push_str(&format!("&since={}", t.format("%Y-%m-%dT%H:%M:%SZ")));
        }
        let mut url = self.url(&["repos", org, &r.name, "commits"], &query);
        let (mut pages, mut new_etag, mut cm_max, mut cf_max, mut cf_err) =
            (0u32, None, None, None, None::<String>);
        loop {
            let got = self
                .client
                .get(
                    label,
                    &url,
                    if pages == 0 { etag.as_deref() } else { None },
                    |body| {
                        let items = parse_page::<CommitItem>(body, self.ctx.include_raw)?;
                        let dates = items
                            .iter()
                            .map(|(c, _)| c.dates())
                            .collect::<std::result::Result<Vec<_>, _>>()?;
                        // A short page is not the end: only the Link header says so.
                        let stop = list_cut
                            .is_some_and(|c| dates.iter().any(|d| d.1.is_some_and(|x| x < c)));
                        let rows = items
                            .iter()
                            .zip(&dates)
                            .filter(|(_, d)| cm_want && keep_opt(d.1, cut_cm));
                        let (full, fatal, n) =
                            self.fill(&tables.commits, org, rows, |b, ((c, raw), d)| {
                                b.append(org, &r.name, c, *d, *raw)
                            });
                        let max = dates
                            .iter()
                            .filter(|d| cm_want && keep_opt(d.1, cut_cm))
                            .filter_map(|d| d.1)
                            .max();
                        let targets: Vec<(String, Option<i64>)> = items
                            .iter()
                            .zip(&dates)
                            .filter(|(_, d)| cf_want && keep_opt(d.1, cut_cf))
                            .map(|((c, _), d)| (c.sha.to_string(), d.1))
                            .collect();
                        let first = items.first().map(|(c, _)| c.sha.to_string());
                        Ok(PageRows {
                            full,
                            fatal,
                            rows: n,
                            extra: (stop, max, targets, first),
                        })
                    },
                )
                .await;
            // GitHub answers 409 "Git Repository is empty." for a repository without
            // commits: nothing to read, and no reason to fail the org.
            let got = match got {
                Err(HttpError::Conflict(m)) if pages == 0 => {
                    return Ok(self.empty_repository(key, &olds, &m));
                }
                got => got?,
            };
            let Fetched::Page {
                data,
                etag: etag_now,
                next,
                turn,
            } = got
            else {
                return Ok(olds
                    .into_iter()
                    .filter(|(k, _)| self.want(*k))
                    .map(|(k, c)| (k, Ok(c.clone())))
                    .collect());
            };
            if pages == 0 {
                new_etag = etag_now;
            }
            // The turn goes with the delivery, before the files are requested.
            let (stop, max, targets, first) = self.deliver(Commit, org, data, turn).await?;
            if pages == 0 {
                *first_listed = first;
            }
            pages += 1;
            cm_max = max_opt(cm_max, max);
            if cf_want && cf_err.is_none() {
                match self.files(tables, r, &targets).await {
                    Ok(()) => cf_max = max_opt(cf_max, targets.iter().filter_map(|t| t.1).max()),
                    Err(ReadError::Failed(m)) => cf_err = Some(m),
                    Err(e) => return Err(e),
                }
            }
            match next {
                Some(n) if !stop => url = n,
                _ => break,
            }
        }
        let mut res = Vec::new();
        let new_cursors = [
            (Commit, max_opt(old_cm.cursor_us(), cm_max)),
            (CommitFile, max_opt(old_cf.cursor_us(), cf_max)),
        ];
        // Move the anchor up only when the window grew past one page; a moved anchor
        // changes the URL, so its ETag is not kept.
        let moved = pages > 1;
        let new_anchor = if moved {
            new_cursors
                .iter()
                .filter(|(k, _)| self.want(*k))
                .filter_map(|(_, c)| *c)
                .min()
                .or(anchor)
        } else {
            anchor
        };
        for (k, cur) in new_cursors {
            if !self.want(k) {
                continue;
            }
            let c = RepoCursor {
                cursor: cur.and_then(us_to_time),
                etag: if moved { None } else { new_etag.clone() },
                since: new_anchor.and_then(us_to_time),
            };
            let r = if k == CommitFile {
                cf_err.clone().map_or(Ok(c.clone()), Err)
            } else {
                Ok(c)
            };
            res.push((k, r));
        }
        Ok(res)
    }
}

/// The commit streams follow the default branch's head. Once a run has recorded it,
/// the next asks `commits?per_page=1` conditionally (304: the branch did not move, no
/// quota) and reads what is new with compare `{old head}...{new head}`: every commit
/// reachable from the new head and not from the old, whatever its dates, so a merged
/// branch's old-dated commits are read too, each once. Without a recorded head (first
/// run, state of an earlier version), or when the old head is gone (a force-push; compare
/// answers 404), commits are read by date as `commits` does, and the head recorded.
impl Run<'_> {
    pub(crate) async fn branch_commits(
        &self,
        tables: &OrgTables,
        r: &RepoRef,
        key: &str,
        head: &mut Option<BranchHead>,
    ) -> std::result::Result<Cursors, ReadError> {
        let olds = [
            (Commit, self.cursor(Commit, key)),
            (CommitFile, self.cursor(CommitFile, key)),
        ];
        let unchanged = || -> Cursors {
            olds.iter()
                .filter(|(k, _)| self.want(*k))
                .map(|(k, c)| (*k, Ok(c.clone())))
                .collect()
        };
        if let Some(saved) = self.saved_head(key) {
            let now = match self.probe_head(tables, r, saved.etag.as_deref()).await? {
                Probe::Unchanged => {
                    *head = Some(saved);
                    return Ok(unchanged());
                }
                // Only an emptied repository lists nothing: keep the state as it is.
                Probe::NoCommits => return Ok(unchanged()),
                Probe::Head(h) => h,
            };
            if now.sha == saved.sha {
                *head = Some(now);
                return Ok(unchanged());
            }
            if let Some(res) = self
                .compare_commits(tables, r, &olds, &saved.sha, &now.sha)
                .await?
            {
                *head = Some(now);
                return Ok(res);
            }
            self.event(ProgressEvent::Warning {
                stream: "commit".into(),
                message: format!(
                    "{key}: the default branch's previous head {} is gone (force-push?); \
                     reading commits by date from the saved cursor",
                    saved.sha
                ),
            });
            let res = self.commits(tables, r, key, &mut None).await?;
            *head = Some(now);
            return Ok(res);
        }
        let mut listed = None;
        let res = self.commits(tables, r, key, &mut listed).await?;
        // A repository with commits (listed now, or before when the list answered 304)
        // records its head. The head the list started from is kept when the branch moved
        // meanwhile (without an ETag, so the next run reads the difference).
        let had = olds.iter().any(|(_, c)| c.cursor.is_some());
        if res.iter().any(|(_, r)| r.is_ok()) && (listed.is_some() || had) {
            if let Probe::Head(now) = self.probe_head(tables, r, None).await? {
                *head = Some(match listed {
                    Some(sha) if sha != now.sha => BranchHead { sha, etag: None },
                    _ => now,
                });
            }
        }
        Ok(res)
    }

    /// The head every wanted commit stream recorded, when they agree.
    fn saved_head(&self, key: &str) -> Option<BranchHead> {
        let heads: Vec<Option<&BranchHead>> = [Commit, CommitFile]
            .into_iter()
            .filter(|k| self.want(*k))
            .map(|k| self.old.get(&k).and_then(|s| s.heads.get(key)))
            .collect();
        let first = (*heads.first()?)?;
        heads
            .iter()
            .all(|h| h.is_some_and(|h| h.sha == first.sha))
            .then(|| BranchHead {
                sha: first.sha.clone(),
                etag: heads
                    .iter()
                    .all(|h| h.is_some_and(|h| h.etag == first.etag))
                    .then(|| first.etag.clone())
                    .flatten(),
            })
    }

    /// `GET .../commits?per_page=1`: the default branch's head (its newest commit).
    async fn probe_head(
        &self,
        tables: &OrgTables,
        r: &RepoRef,
        etag: Option<&str>,
    ) -> std::result::Result<Probe, ReadError> {
        let label = if self.want(Commit) {
            "commit"
        } else {
            "commit_file"
        };
        let url = self.url(&["repos", &tables.org, &r.name, "commits"], "per_page=1");
        let got = self
            .client
            .get(label, &url, etag, |body| {
                let items = parse_page::<CommitItem>(body, false)?;
                Ok(items.first().map(|(c, _)| c.sha.to_string()))
            })
            .await;
        let got = match got {
            // A repository emptied since its head was recorded (deleted and created again).
            Err(HttpError::Conflict(_)) => return Ok(Probe::NoCommits),
            other => other?,
        };
        Ok(match got {
            Fetched::NotModified => Probe::Unchanged,
            Fetched::Page { data, etag, .. } => match data {
                Some(sha) => Probe::Head(BranchHead { sha, etag }),
                None => Probe::NoCommits,
            },
        })
    }

    /// Commits reachable from `head` and not from `base` (compare, pages of 100, oldest
    /// first), all yielded with their files. None when compare answers 404 on its first
    /// page (`base` no longer exists).
    async fn compare_commits(
        &self,
        tables: &OrgTables,
        r: &RepoRef,
        olds: &[(StreamKind, RepoCursor); 2],
        base: &str,
        head: &str,
    ) -> std::result::Result<Option<Cursors>, ReadError> {
        let org = tables.org.as_str();
        let (cm_want, cf_want) = (self.want(Commit), self.want(CommitFile));
        let label = if cm_want { "commit" } else { "commit_file" };
        let basehead = format!("{base}...{head}");
        let mut url = self.url(
            &["repos", org, &r.name, "compare", &basehead],
            "per_page=100",
        );
        let (mut first, mut max, mut cf_err) = (true, None, None::<String>);
        loop {
            let got = self
                .client
                .get(label, &url, None, |body| {
                    let page: ComparePage =
                        serde_json::from_slice(body).map_err(|e| format!("compare answer: {e}"))?;
                    let items = parse_page::<CommitItem>(
                        page.commits.get().as_bytes(),
                        self.ctx.include_raw,
                    )?;
                    let dates = items
                        .iter()
                        .map(|(c, _)| c.dates())
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    let rows = items.iter().zip(&dates).filter(|_| cm_want);
                    let (full, fatal, n) =
                        self.fill(&tables.commits, org, rows, |b, ((c, raw), d)| {
                            b.append(org, &r.name, c, *d, *raw)
                        });
                    let targets: Vec<(String, Option<i64>)> = items
                        .iter()
                        .zip(&dates)
                        .filter(|_| cf_want)
                        .map(|((c, _), d)| (c.sha.to_string(), d.1))
                        .collect();
                    Ok(PageRows {
                        full,
                        fatal,
                        rows: n,
                        extra: (dates.iter().filter_map(|d| d.1).max(), targets),
                    })
                })
                .await;
            let got = match got {
                Err(HttpError::NotFound(_)) if first => return Ok(None),
                other => other.map_err(ReadError::of_sub_resource)?,
            };
            let Fetched::Page {
                data, next, turn, ..
            } = got
            else {
                break;
            };
            first = false;
            let (page_max, targets) = self.deliver(Commit, org, data, turn).await?;
            max = max_opt(max, page_max);
            if cf_want && cf_err.is_none() {
                match self.files(tables, r, &targets).await {
                    Ok(()) => {}
                    Err(ReadError::Failed(m)) => cf_err = Some(m),
                    Err(e) => return Err(e),
                }
            }
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        let res = olds
            .iter()
            .filter(|(k, _)| self.want(*k))
            .map(|(k, old)| {
                let c = RepoCursor {
                    cursor: max_opt(old.cursor_us(), max).and_then(us_to_time),
                    ..old.clone()
                };
                match (&cf_err, k) {
                    (Some(m), CommitFile) => (*k, Err(m.clone())),
                    _ => (*k, Ok(c)),
                }
            })
            .collect();
        Ok(Some(res))
    }
}

/// A compare answer: its commits are read like a commits list; its files are not used
/// (the files of each commit are read one by one, as for any commit).
#[derive(serde::Deserialize)]
struct ComparePage<'a> {
    #[serde(borrow)]
    commits: &'a serde_json::value::RawValue,
}
