//! The commit stream: the default branch's commits into COMMIT rows, by date on a first
//! read and by compare from the recorded head after it; the files of each commit are
//! read along (see [`super::commit_files`]).

use crate::config::StreamKind::{self, *};
use crate::http::{Fetched, HttpError};
use crate::pager::{Next, Pager};
use crate::rows::{
    append_key, append_list, each, login, opt_ts, parse_page, table_rows, JsonStr, Meta, UserRef,
};
use crate::run::{
    child_read, max_opt, Cursors, OrgTables, PairCursors, ReadError, Run, StreamCursor,
};
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

/// A commit's git data (its `commit` object), shared with the single-commit answer.
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

/// The fields of a commits-list item we keep.
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

/// The COMMIT builders.
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
    StreamKind::Commit,
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
    fn empty_repository(&self, key: &str, pair: &PairCursors, answer: &str) -> Cursors {
        self.event(ProgressEvent::Warning {
            stream: pair.label.into(),
            message: format!("repository {key} has no commits yet, nothing to read ({answer})"),
        });
        pair.unchanged()
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
        pair: &PairCursors,
        first_listed: &mut Option<String>,
    ) -> Result<Cursors, ReadError> {
        let org = tables.org.as_str();
        let (commits, files) = (&pair.list, &pair.child);
        let saved_anchor = pair.common(|c| c.since.map(|t| t.timestamp_micros()));
        let anchor = saved_anchor.or(self.floor_us);
        let etag = if saved_anchor.is_some() || self.floor_us.is_none() {
            pair.etag.clone()
        } else {
            None
        };
        let mut query = String::from("per_page=100");
        if let Some(t) = anchor.and_then(us_to_time) {
            query.push_str(&format!("&since={}", t.format("%Y-%m-%dT%H:%M:%SZ")));
        }
        let url = self.url(&["repos", org, &r.name, "commits"], &query);
        let mut pages = Pager::new(self, org, pair.label, url)
            .if_none_match(etag)
            .first_page_may_answer(|e| matches!(e, HttpError::Conflict(_)));
        let (mut cm_max, mut cf_max, mut cf_err) = (None, None, None::<String>);
        loop {
            let page = pages
                .next(Commit, |body| {
                    let items = parse_page::<CommitItem>(body, self.ctx.include_raw)?;
                    let dates = each(&items, CommitItem::dates)?;
                    let stop = pair
                        .list_cut
                        .is_some_and(|c| dates.iter().any(|d| d.1.is_some_and(|x| x < c)));
                    let rows = items.iter().zip(&dates).filter(|(_, d)| commits.wants(d.1));
                    let page = self.fill(&tables.commits, rows, |b, ((c, raw), d)| {
                        b.append(org, &r.name, c, *d, *raw)
                    });
                    let max = dates
                        .iter()
                        .filter(|d| commits.wants(d.1))
                        .filter_map(|d| d.1)
                        .max();
                    let targets: Vec<(String, Option<i64>)> = items
                        .iter()
                        .zip(&dates)
                        .filter(|(_, d)| files.wants(d.1))
                        .map(|((c, _), d)| (c.sha.to_string(), d.1))
                        .collect();
                    let first = items.first().map(|(c, _)| c.sha.to_string());
                    Ok(page.with((stop, max, targets, first)))
                })
                .await?;
            // The page's turn went with its delivery, before the files are requested.
            let (stop, max, targets, first) = match page {
                Next::Page(x) => x,
                Next::NotModified => return Ok(pair.unchanged()),
                // GitHub answers 409 "Git Repository is empty." for a repository without
                // commits: nothing to read, and no reason to fail the org.
                Next::Refused(e) => return Ok(self.empty_repository(key, pair, &e.to_string())),
                Next::End => break,
            };
            if pages.pages() == 1 {
                *first_listed = first;
            }
            if stop {
                pages.stop();
            }
            cm_max = max_opt(cm_max, max);
            if files.want
                && cf_err.is_none()
                && child_read(self.files(tables, r, &targets).await, &mut cf_err)?
            {
                cf_max = max_opt(cf_max, targets.iter().filter_map(|t| t.1).max());
            }
        }
        let new_cursor = |c: &StreamCursor| {
            let max = if c.kind == Commit { cm_max } else { cf_max };
            max_opt(c.old.cursor_us(), max)
        };
        // Move the anchor up only when the window grew past one page; a moved anchor
        // changes the URL, so its ETag is not kept.
        let moved = pages.pages() > 1;
        let new_anchor = if moved {
            [commits, files]
                .into_iter()
                .filter(|c| c.want)
                .filter_map(new_cursor)
                .min()
                .or(anchor)
        } else {
            anchor
        };
        Ok(pair.results(|c| match (&cf_err, c.kind) {
            (Some(m), CommitFile) => Err(m.clone()),
            _ => Ok(RepoCursor {
                cursor: new_cursor(c).and_then(us_to_time),
                etag: if moved { None } else { pages.etag() },
                since: new_anchor.and_then(us_to_time),
            }),
        }))
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
    ) -> Result<Cursors, ReadError> {
        let pair = self.pair_cursors(Commit, CommitFile, key);
        if let Some(saved) = self.saved_head(key) {
            let now = match self
                .probe_head(tables, r, &pair, saved.etag.as_deref())
                .await?
            {
                Probe::Unchanged => {
                    *head = Some(saved);
                    return Ok(pair.unchanged());
                }
                // Only an emptied repository lists nothing: keep the state as it is.
                Probe::NoCommits => return Ok(pair.unchanged()),
                Probe::Head(h) => h,
            };
            if now.sha == saved.sha {
                *head = Some(now);
                return Ok(pair.unchanged());
            }
            if let Some(res) = self
                .compare_commits(tables, r, &pair, &saved.sha, &now.sha)
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
            let res = self.commits(tables, r, key, &pair, &mut None).await?;
            *head = Some(now);
            return Ok(res);
        }
        let mut listed = None;
        let res = self.commits(tables, r, key, &pair, &mut listed).await?;
        // A repository with commits (listed now, or before when the list answered 304)
        // records its head. The head the list started from is kept when the branch moved
        // meanwhile (without an ETag, so the next run reads the difference).
        let had = pair.list.old.cursor.is_some() || pair.child.old.cursor.is_some();
        if res.iter().any(|(_, r)| r.is_ok()) && (listed.is_some() || had) {
            if let Probe::Head(now) = self.probe_head(tables, r, &pair, None).await? {
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
        pair: &PairCursors,
        etag: Option<&str>,
    ) -> Result<Probe, ReadError> {
        let url = self.url(&["repos", &tables.org, &r.name, "commits"], "per_page=1");
        let got = self
            .client
            .get(pair.label, &url, etag, |body| {
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
        pair: &PairCursors,
        base: &str,
        head: &str,
    ) -> Result<Option<Cursors>, ReadError> {
        let org = tables.org.as_str();
        let (commits, files) = (&pair.list, &pair.child);
        let basehead = format!("{base}...{head}");
        let url = self.url(
            &["repos", org, &r.name, "compare", &basehead],
            "per_page=100",
        );
        let mut pages = Pager::new(self, org, pair.label, url)
            .not_found_fails()
            .first_page_may_answer(|e| matches!(e, HttpError::NotFound(_)));
        let (mut max, mut cf_err) = (None, None::<String>);
        loop {
            let page = pages
                .next(Commit, |body| {
                    let page: ComparePage =
                        serde_json::from_slice(body).map_err(|e| format!("compare answer: {e}"))?;
                    let items = parse_page::<CommitItem>(
                        page.commits.get().as_bytes(),
                        self.ctx.include_raw,
                    )?;
                    let dates = each(&items, CommitItem::dates)?;
                    let rows = items.iter().zip(&dates).filter(|_| commits.want);
                    let page = self.fill(&tables.commits, rows, |b, ((c, raw), d)| {
                        b.append(org, &r.name, c, *d, *raw)
                    });
                    let targets: Vec<(String, Option<i64>)> = items
                        .iter()
                        .zip(&dates)
                        .filter(|_| files.want)
                        .map(|((c, _), d)| (c.sha.to_string(), d.1))
                        .collect();
                    Ok(page.with((dates.iter().filter_map(|d| d.1).max(), targets)))
                })
                .await?;
            let (page_max, targets) = match page {
                Next::Page(x) => x,
                Next::Refused(_) => return Ok(None),
                Next::NotModified | Next::End => break,
            };
            max = max_opt(max, page_max);
            if files.want && cf_err.is_none() {
                child_read(self.files(tables, r, &targets).await, &mut cf_err)?;
            }
        }
        Ok(Some(pair.results(|c| match (&cf_err, c.kind) {
            (Some(m), CommitFile) => Err(m.clone()),
            _ => Ok(RepoCursor {
                cursor: max_opt(c.old.cursor_us(), max).and_then(us_to_time),
                ..c.old.clone()
            }),
        })))
    }
}

/// A compare answer: its commits are read like a commits list; its files are not used
/// (the files of each commit are read one by one, as for any commit).
#[derive(serde::Deserialize)]
struct ComparePage<'a> {
    #[serde(borrow)]
    commits: &'a serde_json::value::RawValue,
}
