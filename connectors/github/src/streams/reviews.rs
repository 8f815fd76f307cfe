//! The pull_request_review stream: the reviews of each pull request the pulls list
//! yields, into PULL_REQUEST_REVIEW rows.

use crate::config::StreamKind::{self, *};
use crate::pager::{Next, Pager};
use crate::rows::{
    append_key, each, itoa, login, opt_ts, parse_page, table_rows, user_id, JsonStr, Meta, UserRef,
};
use crate::run::{OrgTables, ReadError, Run};
use crate::state::RepoRef;
use arrow::array::{Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::SchemaRef;
use serde::Deserialize;

/// The fields of a reviews-list item we keep.
#[derive(Deserialize)]
pub struct ReviewItem<'a> {
    pub id: i64,
    #[serde(borrow, default)]
    user: Option<UserRef<'a>>,
    #[serde(borrow)]
    state: JsonStr<'a>,
    #[serde(borrow, default)]
    submitted_at: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    commit_id: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    author_association: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    html_url: Option<JsonStr<'a>>,
}

impl ReviewItem<'_> {
    pub fn submitted(&self) -> Result<Option<i64>, String> {
        opt_ts(&self.submitted_at)
    }
}

/// The PULL_REQUEST_REVIEW builders.
pub struct ReviewRows {
    schema: SchemaRef,
    id: Int64Builder,
    pr_id: Int64Builder,
    pr_number: Int64Builder,
    user_login: StringBuilder,
    user_id: Int64Builder,
    state: StringBuilder,
    submitted: TimestampMicrosecondBuilder,
    commit_id: StringBuilder,
    assoc: StringBuilder,
    html_url: StringBuilder,
    repo_name: StringBuilder,
    org: StringBuilder,
    meta: Meta,
}

table_rows!(
    ReviewRows,
    StreamKind::PullRequestReview,
    id,
    pr_id,
    pr_number,
    user_login,
    user_id,
    state,
    submitted,
    commit_id,
    assoc,
    html_url,
    repo_name,
    org
);

impl ReviewRows {
    pub fn append(
        &mut self,
        org: &str,
        repo: &str,
        pr: (i64, i64),
        r: &ReviewItem<'_>,
        submitted: Option<i64>,
        raw: Option<&str>,
    ) {
        self.id.append_value(r.id);
        self.pr_id.append_value(pr.0);
        self.pr_number.append_value(pr.1);
        self.user_login.append_option(login(&r.user));
        self.user_id.append_option(user_id(&r.user));
        self.state.append_value(&r.state);
        self.submitted.append_option(submitted);
        self.commit_id.append_option(r.commit_id.as_deref());
        self.assoc.append_option(r.author_association.as_deref());
        self.html_url.append_option(r.html_url.as_deref());
        self.repo_name.append_value(repo);
        self.org.append_value(org);
        append_key(&mut self.meta.keys, &[org, repo, itoa(r.id).as_str()]);
        self.meta.raw(raw);
    }
}

impl Run<'_> {
    /// The reviews of `targets` (id, number, updated_at; newest first). After each pull
    /// request's, the reviews of every one listed from `top` down to it are sent.
    pub(crate) async fn reviews(
        &self,
        tables: &OrgTables,
        r: &RepoRef,
        targets: &[(i64, i64, i64)],
        key: &str,
        top: Option<i64>,
    ) -> Result<(), ReadError> {
        let org = tables.org.as_str();
        for (id, number, updated) in targets {
            let number_text = number.to_string();
            let segs = ["repos", org, &r.name, "pulls", &number_text, "reviews"];
            let url = self.url(&segs, "per_page=100");
            let mut pages = Pager::new(self, org, "pull_request_review", url).not_found_fails();
            while let Next::Page(()) = pages
                .next(PullRequestReview, |body| {
                    let items = parse_page::<ReviewItem>(body, self.ctx.include_raw)?;
                    let subs = each(&items, ReviewItem::submitted)?;
                    let rows = items.iter().zip(&subs);
                    Ok(self.fill(&tables.reviews, rows, |b, ((x, raw), s)| {
                        b.append(org, &r.name, (*id, *number), x, *s, *raw)
                    }))
                })
                .await?
            {}
            if let Some(hi) = top {
                self.progress(PullRequestReview, key, *updated, hi);
            }
        }
        Ok(())
    }
}
