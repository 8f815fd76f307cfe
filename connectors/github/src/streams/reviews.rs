//! The pull_request_review stream: the reviews of each pull request the pulls list
//! yields, into PULL_REQUEST_REVIEW rows.

use crate::config::StreamKind::{self, *};
use crate::rows::{
    append_key, itoa, login, opt_ts, parse_page, table_rows, ts_builder, user_id, JsonStr, Meta,
    UserRef,
};
use crate::run::{OrgTables, PageRows, ReadError, Run};
use crate::schema::table_schema;
use crate::state::RepoRef;
use arrow::array::{Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::SchemaRef;
use serde::Deserialize;

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
    ReviewRows, id, pr_id, pr_number, user_login, user_id, state, submitted, commit_id, assoc,
    html_url, repo_name, org
);

impl ReviewRows {
    pub fn new(include_raw: bool) -> Self {
        ReviewRows {
            schema: table_schema(StreamKind::PullRequestReview, include_raw),
            id: Int64Builder::new(),
            pr_id: Int64Builder::new(),
            pr_number: Int64Builder::new(),
            user_login: StringBuilder::new(),
            user_id: Int64Builder::new(),
            state: StringBuilder::new(),
            submitted: ts_builder(),
            commit_id: StringBuilder::new(),
            assoc: StringBuilder::new(),
            html_url: StringBuilder::new(),
            repo_name: StringBuilder::new(),
            org: StringBuilder::new(),
            meta: Meta::default(),
        }
    }

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
    ) -> std::result::Result<(), ReadError> {
        let org = tables.org.as_str();
        for (id, number, updated) in targets {
            let mut url = self.url(
                &[
                    "repos",
                    org,
                    &r.name,
                    "pulls",
                    &number.to_string(),
                    "reviews",
                ],
                "per_page=100",
            );
            loop {
                let got = self
                    .client
                    .get("pull_request_review", &url, None, |body| {
                        let items = parse_page::<ReviewItem>(body, self.ctx.include_raw)?;
                        let subs = items
                            .iter()
                            .map(|(x, _)| x.submitted())
                            .collect::<std::result::Result<Vec<_>, _>>()?;
                        let (full, fatal, n) = self.fill(
                            &tables.reviews,
                            org,
                            items.iter().zip(&subs),
                            |b, ((x, raw), s)| b.append(org, &r.name, (*id, *number), x, *s, *raw),
                        );
                        Ok(PageRows {
                            full,
                            fatal,
                            rows: n,
                            extra: (),
                        })
                    })
                    .await
                    .map_err(ReadError::of_sub_resource)?;
                match self.forward(PullRequestReview, org, got).await? {
                    Some(n) => url = n,
                    None => break,
                }
            }
            if let Some(hi) = top {
                self.progress(PullRequestReview, key, *updated, hi);
            }
        }
        Ok(())
    }
}
