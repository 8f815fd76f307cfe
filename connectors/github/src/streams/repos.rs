//! The repository stream and the repository list every other stream starts from: each
//! account's repositories (conditional on the saved ETag) into REPOSITORY rows.

use crate::config::StreamKind::{self, *};
use crate::http::HttpError;
use crate::pager::{Next, Pager};
use crate::rows::{
    append_key, append_list, each, itoa, login, opt_ts, parse_page, table_rows, JsonStr, Meta,
    UserRef,
};
use crate::run::{OrgTables, ReadError, Run};
use crate::state::{OrgListing, RepoRef};
use arrow::array::{
    BooleanBuilder, Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::SchemaRef;
use serde::Deserialize;

/// The fields of a repository-list item we keep.
#[derive(Deserialize)]
pub struct RepoItem<'a> {
    pub id: i64,
    #[serde(borrow)]
    pub name: JsonStr<'a>,
    #[serde(borrow)]
    full_name: JsonStr<'a>,
    #[serde(borrow, default)]
    owner: Option<UserRef<'a>>,
    #[serde(default)]
    private: Option<bool>,
    #[serde(default)]
    pub fork: Option<bool>,
    #[serde(default)]
    pub archived: Option<bool>,
    #[serde(borrow, default)]
    default_branch: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    description: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    language: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    visibility: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    topics: Option<Vec<JsonStr<'a>>>,
    #[serde(borrow, default)]
    created_at: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    updated_at: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    pushed_at: Option<JsonStr<'a>>,
    #[serde(default)]
    stargazers_count: Option<i64>,
    #[serde(default)]
    forks_count: Option<i64>,
    #[serde(default)]
    open_issues_count: Option<i64>,
    #[serde(borrow, default)]
    html_url: Option<JsonStr<'a>>,
}

impl RepoItem<'_> {
    pub fn times(&self) -> Result<[Option<i64>; 3], String> {
        Ok([
            opt_ts(&self.created_at)?,
            opt_ts(&self.updated_at)?,
            opt_ts(&self.pushed_at)?,
        ])
    }
}

/// The REPOSITORY builders.
pub struct RepoRows {
    schema: SchemaRef,
    id: Int64Builder,
    name: StringBuilder,
    full_name: StringBuilder,
    owner: StringBuilder,
    private: BooleanBuilder,
    fork: BooleanBuilder,
    archived: BooleanBuilder,
    default_branch: StringBuilder,
    description: StringBuilder,
    language: StringBuilder,
    visibility: StringBuilder,
    topics: ListBuilder<StringBuilder>,
    created: TimestampMicrosecondBuilder,
    updated: TimestampMicrosecondBuilder,
    pushed: TimestampMicrosecondBuilder,
    stars: Int64Builder,
    forks: Int64Builder,
    open_issues: Int64Builder,
    html_url: StringBuilder,
    org: StringBuilder,
    meta: Meta,
}

table_rows!(
    RepoRows,
    StreamKind::Repository,
    id,
    name,
    full_name,
    owner,
    private,
    fork,
    archived,
    default_branch,
    description,
    language,
    visibility,
    topics,
    created,
    updated,
    pushed,
    stars,
    forks,
    open_issues,
    html_url,
    org
);

impl RepoRows {
    pub fn append(&mut self, org: &str, r: &RepoItem<'_>, t: [Option<i64>; 3], raw: Option<&str>) {
        let [c, u, p] = t;
        self.id.append_value(r.id);
        self.name.append_value(&r.name);
        self.full_name.append_value(&r.full_name);
        self.owner.append_option(login(&r.owner));
        self.private.append_option(r.private);
        self.fork.append_option(r.fork);
        self.archived.append_option(r.archived);
        self.default_branch
            .append_option(r.default_branch.as_deref());
        self.description.append_option(r.description.as_deref());
        self.language.append_option(r.language.as_deref());
        self.visibility.append_option(r.visibility.as_deref());
        append_list(
            &mut self.topics,
            r.topics.as_ref().map(|v| v.iter().map(|t| &**t)),
        );
        self.created.append_option(c);
        self.updated.append_option(u);
        self.pushed.append_option(p);
        self.stars.append_option(r.stargazers_count);
        self.forks.append_option(r.forks_count);
        self.open_issues.append_option(r.open_issues_count);
        self.html_url.append_option(r.html_url.as_deref());
        self.org.append_value(org);
        append_key(&mut self.meta.keys, &[org, &r.name, itoa(r.id).as_str()]);
        self.meta.raw(raw);
    }
}

impl Run<'_> {
    /// The stream whose state keeps each account's repository list and its ETag: the
    /// `repository` stream when read, else the first stream read, so that an unchanged
    /// list answers 304 whichever streams a spec reads.
    pub(crate) fn listing_stream(&self) -> StreamKind {
        if self.want(Repository) {
            return Repository;
        }
        self.kinds.iter().next().copied().unwrap_or(Repository)
    }

    /// Repositories whose PRs, commits and deployments are read.
    pub(crate) fn selected(&self, org: &str, r: &RepoRef) -> bool {
        self.has_row(org, r) && (self.cfg.include_archived || !r.archived)
    }

    /// Repositories with a REPOSITORY row: archived ones too, so that a repository
    /// archived after it was loaded has its row updated.
    fn has_row(&self, org: &str, r: &RepoRef) -> bool {
        self.cfg.repo_selected(&r.name)
            && (self.cfg.include_forks || !r.fork)
            && self
                .shard
                .is_none_or(|s| s.owns(&format!("{org}/{}", r.name)))
    }

    /// The account's repositories (all pages); REPOSITORY rows for those with a row.
    /// An account saved as a user is listed at /users/{name}/repos; otherwise
    /// /orgs/{name}/repos is asked first and a 404 there tries the user path.
    pub(crate) async fn list_repos(
        &self,
        tables: &OrgTables,
    ) -> Result<(Vec<RepoRef>, Option<OrgListing>), ReadError> {
        let saved = self
            .old
            .get(&self.listing_stream())
            .and_then(|s| s.orgs.get(&tables.org));
        let user = saved.is_some_and(|l| l.user);
        match self.list_account_repos(tables, user).await {
            Err(ReadError::NotFound(_)) if !user => self.list_account_repos(tables, true).await,
            r => r,
        }
    }

    async fn list_account_repos(
        &self,
        tables: &OrgTables,
        user: bool,
    ) -> Result<(Vec<RepoRef>, Option<OrgListing>), ReadError> {
        let org = tables.org.as_str();
        let cached = self
            .old
            .get(&self.listing_stream())
            .and_then(|s| s.orgs.get(org))
            .filter(|l| l.etag.is_some() && !l.repos.is_empty() && l.user == user);
        let want = self.want(Repository);
        // A user's `type=all` would add repositories of other owners it collaborates on.
        let url = if user {
            self.url(&["users", org, "repos"], "type=owner&per_page=100")
        } else {
            self.url(&["orgs", org, "repos"], "type=all&per_page=100")
        };
        let mut pages = Pager::new(self, org, "repository", url)
            .if_none_match(cached.and_then(|c| c.etag.clone()))
            // Only the first page decides what kind of account this is.
            .first_page_may_answer(|e| matches!(e, HttpError::NotFound(_)))
            .not_found_fails();
        let mut repos = Vec::new();
        loop {
            let page = pages
                .next(Repository, |body| {
                    let items = parse_page::<RepoItem>(body, self.ctx.include_raw)?;
                    let times = each(&items, RepoItem::times)?;
                    let refs: Vec<RepoRef> = items
                        .iter()
                        .map(|(r, _)| RepoRef {
                            name: r.name.to_string(),
                            id: r.id,
                            archived: r.archived.unwrap_or(false),
                            fork: r.fork.unwrap_or(false),
                        })
                        .collect();
                    let rows = items
                        .iter()
                        .zip(&times)
                        .zip(&refs)
                        .filter(|(_, rf)| want && self.has_row(org, rf));
                    let page = self.fill(&tables.repos, rows, |b, (((r, raw), t), _)| {
                        b.append(org, r, *t, *raw)
                    });
                    Ok(page.with(refs))
                })
                .await?;
            match page {
                Next::Page(refs) => repos.extend(refs),
                Next::NotModified => {
                    let c = cached.cloned().unwrap_or_default();
                    return Ok((c.repos.clone(), Some(c)));
                }
                Next::Refused(e) => return Err(e.into()),
                Next::End => break,
            }
        }
        let listing = if pages.pages() == 1 {
            Some(OrgListing {
                etag: pages.etag(),
                repos: repos.clone(),
                user,
            })
        } else {
            // Larger lists are not cached, but a user account is remembered as one.
            user.then(|| OrgListing {
                user,
                ..OrgListing::default()
            })
        };
        Ok((repos, listing))
    }
}
