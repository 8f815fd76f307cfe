//! The pull_request stream: the pulls list (newest updated first, stopping below the
//! cursor) into PULL_REQUEST rows; the reviews of the listed pull requests are read
//! along (see [`super::reviews`]).

use crate::config::StreamKind::{self, *};
use crate::pager::{Next, Pager};
use crate::rows::{
    append_key, append_list, each, itoa, login, opt_ts, parse_page, parse_ts, table_rows, user_id,
    BatchCtx, JsonStr, Meta, TableRows, UserRef,
};
use crate::run::{child_read, max_opt, min_opt, Cursors, OrgTables, ReadError, Run};
use crate::state::{us_to_time, RepoCursor, RepoRef, Span};
use arrow::array::{
    BooleanBuilder, Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde::Deserialize;

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    name: JsonStr<'a>,
}

/// A milestone (nullable; `{}` reads as none).
#[derive(Deserialize)]
struct Titled<'a> {
    #[serde(borrow, default)]
    title: Option<JsonStr<'a>>,
}

/// The repository of a PR's head: null when the fork was deleted (`{}` reads the same).
#[derive(Deserialize)]
struct RepoName<'a> {
    #[serde(borrow, default)]
    full_name: Option<JsonStr<'a>>,
}

#[derive(Deserialize)]
struct GitRef<'a> {
    #[serde(borrow, rename = "ref")]
    ref_: JsonStr<'a>,
    #[serde(borrow)]
    sha: JsonStr<'a>,
    #[serde(borrow, default)]
    repo: Option<RepoName<'a>>,
}

/// The fields of a pulls-list item we keep.
#[derive(Deserialize)]
pub struct PrItem<'a> {
    pub id: i64,
    pub number: i64,
    #[serde(borrow)]
    state: JsonStr<'a>,
    #[serde(default)]
    draft: Option<bool>,
    #[serde(borrow)]
    title: JsonStr<'a>,
    #[serde(borrow, default)]
    user: Option<UserRef<'a>>,
    #[serde(borrow, default)]
    author_association: Option<JsonStr<'a>>,
    #[serde(borrow)]
    created_at: JsonStr<'a>,
    #[serde(borrow)]
    pub updated_at: JsonStr<'a>,
    #[serde(borrow, default)]
    closed_at: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    merged_at: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    merge_commit_sha: Option<JsonStr<'a>>,
    #[serde(borrow)]
    base: GitRef<'a>,
    #[serde(borrow)]
    head: GitRef<'a>,
    #[serde(borrow, default)]
    merged_by: Option<UserRef<'a>>,
    #[serde(default)]
    additions: Option<i64>,
    #[serde(default)]
    deletions: Option<i64>,
    #[serde(default)]
    changed_files: Option<i64>,
    #[serde(default)]
    commits: Option<i64>,
    #[serde(borrow, default)]
    requested_reviewers: Option<Vec<UserRef<'a>>>,
    #[serde(borrow, default)]
    labels: Option<Vec<Named<'a>>>,
    #[serde(borrow, default)]
    milestone: Option<Titled<'a>>,
    #[serde(borrow)]
    html_url: JsonStr<'a>,
}

/// The PULL_REQUEST builders.
pub struct PrRows {
    schema: SchemaRef,
    id: Int64Builder,
    number: Int64Builder,
    state: StringBuilder,
    draft: BooleanBuilder,
    title: StringBuilder,
    user_login: StringBuilder,
    user_id: Int64Builder,
    assoc: StringBuilder,
    created: TimestampMicrosecondBuilder,
    updated: TimestampMicrosecondBuilder,
    closed: TimestampMicrosecondBuilder,
    merged: TimestampMicrosecondBuilder,
    merge_sha: StringBuilder,
    base_ref: StringBuilder,
    base_sha: StringBuilder,
    head_ref: StringBuilder,
    head_sha: StringBuilder,
    head_repo: StringBuilder,
    merged_by: StringBuilder,
    additions: Int64Builder,
    deletions: Int64Builder,
    changed_files: Int64Builder,
    commits: Int64Builder,
    reviewers: ListBuilder<StringBuilder>,
    labels: ListBuilder<StringBuilder>,
    milestone: StringBuilder,
    html_url: StringBuilder,
    repo_name: StringBuilder,
    org: StringBuilder,
    meta: Meta,
}

table_rows!(
    PrRows,
    StreamKind::PullRequest,
    id,
    number,
    state,
    draft,
    title,
    user_login,
    user_id,
    assoc,
    created,
    updated,
    closed,
    merged,
    merge_sha,
    base_ref,
    base_sha,
    head_ref,
    head_sha,
    head_repo,
    merged_by,
    additions,
    deletions,
    changed_files,
    commits,
    reviewers,
    labels,
    milestone,
    html_url,
    repo_name,
    org
);

impl PrRows {
    /// Append one PR whose timestamps were parsed by [`PrItem::times`] (appending
    /// cannot fail, so a page is appended whole or not at all).
    pub fn append(
        &mut self,
        org: &str,
        repo: &str,
        p: &PrItem<'_>,
        t: &PrTimes,
        raw: Option<&str>,
    ) {
        let PrTimes {
            created,
            updated: updated_us,
            closed,
            merged,
        } = *t;
        self.id.append_value(p.id);
        self.number.append_value(p.number);
        self.state.append_value(&p.state);
        self.draft.append_option(p.draft);
        self.title.append_value(&p.title);
        self.user_login.append_option(login(&p.user));
        self.user_id.append_option(user_id(&p.user));
        self.assoc.append_option(p.author_association.as_deref());
        self.created.append_value(created);
        self.updated.append_value(updated_us);
        self.closed.append_option(closed);
        self.merged.append_option(merged);
        self.merge_sha.append_option(p.merge_commit_sha.as_deref());
        self.base_ref.append_value(&p.base.ref_);
        self.base_sha.append_value(&p.base.sha);
        self.head_ref.append_value(&p.head.ref_);
        self.head_sha.append_value(&p.head.sha);
        self.head_repo
            .append_option(p.head.repo.as_ref().and_then(|r| r.full_name.as_deref()));
        self.merged_by.append_option(login(&p.merged_by));
        self.additions.append_option(p.additions);
        self.deletions.append_option(p.deletions);
        self.changed_files.append_option(p.changed_files);
        self.commits.append_option(p.commits);
        append_list(
            &mut self.reviewers,
            p.requested_reviewers
                .as_ref()
                .map(|v| v.iter().filter_map(|u| u.user()).map(|(l, _)| l)),
        );
        append_list(
            &mut self.labels,
            p.labels.as_ref().map(|v| v.iter().map(|l| &*l.name)),
        );
        self.milestone
            .append_option(p.milestone.as_ref().and_then(|m| m.title.as_deref()));
        self.html_url.append_value(&p.html_url);
        self.repo_name.append_value(repo);
        self.org.append_value(org);
        append_key(&mut self.meta.keys, &[org, repo, itoa(p.id).as_str()]);
        self.meta.raw(raw);
    }
}

/// The parsed timestamps of a PR.
#[derive(Debug, Clone, Copy)]
pub struct PrTimes {
    pub created: i64,
    pub updated: i64,
    pub closed: Option<i64>,
    pub merged: Option<i64>,
}

impl PrItem<'_> {
    pub fn times(&self) -> Result<PrTimes, String> {
        Ok(PrTimes {
            created: parse_ts(&self.created_at)?,
            updated: parse_ts(&self.updated_at)?,
            closed: opt_ts(&self.closed_at)?,
            merged: opt_ts(&self.merged_at)?,
        })
    }
}

/// Parse one pulls page straight into a batch (benchmarks, fuzzing). The reader does the
/// same through its shared per-org builders.
pub fn pulls_page_to_batch(
    body: &[u8],
    org: &str,
    repo: &str,
    ctx: &BatchCtx,
) -> Result<RecordBatch, String> {
    let items = parse_page::<PrItem>(body, ctx.include_raw)?;
    let times = each(&items, PrItem::times)?;
    let mut b = PrRows::new(ctx.include_raw);
    for ((p, raw), t) in items.iter().zip(&times) {
        b.append(org, repo, p, t, *raw);
    }
    b.finish(ctx)
}

impl Run<'_> {
    /// Pull requests (newest updated first, stopping below the cursor) and the reviews of
    /// PRs updated after the review cursor.
    pub(crate) async fn pulls(
        &self,
        tables: &OrgTables,
        r: &RepoRef,
        key: &str,
    ) -> Result<Cursors, ReadError> {
        let org = tables.org.as_str();
        let pair = self.pair_cursors(PullRequest, PullRequestReview, key);
        let url = self.url(
            &["repos", org, &r.name, "pulls"],
            "state=all&sort=updated&direction=desc&per_page=100",
        );
        let mut pages = Pager::new(self, org, pair.label, url).if_none_match(pair.etag.clone());
        let (mut pr_max, mut rv_max, mut rv_err) = (None, None, None::<String>);
        // Rows within what an earlier read cut short had covered are not sent again.
        let (span_pr, span_rv) = (
            self.span(PullRequest, key),
            self.span(PullRequestReview, key),
        );
        let fresh = |span: Option<Span>, u: i64| span.is_none_or(|s| !s.contains_us(u));
        let want_pr = |u: i64| pair.list.wants(Some(u)) && fresh(span_pr, u);
        let want_rv = |u: i64| pair.child.wants(Some(u)) && fresh(span_rv, u);
        // The newest and oldest `updated_at` listed so far in this read.
        let (mut top, mut low) = (None::<i64>, None::<i64>);
        loop {
            let page = pages
                .next(PullRequest, |body| {
                    let items = parse_page::<PrItem>(body, self.ctx.include_raw)?;
                    let times = each(&items, PrItem::times)?;
                    let stop = pair
                        .list_cut
                        .is_some_and(|c| times.iter().any(|t| t.updated < c));
                    let rows = items.iter().zip(&times).filter(|(_, t)| want_pr(t.updated));
                    let page = self.fill(&tables.pulls, rows, |b, ((p, raw), t)| {
                        b.append(org, &r.name, p, t, *raw)
                    });
                    let pmax = times
                        .iter()
                        .map(|t| t.updated)
                        .filter(|u| want_pr(*u))
                        .max();
                    let targets: Vec<(i64, i64, i64)> = items
                        .iter()
                        .zip(&times)
                        .filter(|(_, t)| want_rv(t.updated))
                        .map(|((p, _), t)| (p.id, p.number, t.updated))
                        .collect();
                    let listed = (
                        times.iter().map(|t| t.updated).min(),
                        times.iter().map(|t| t.updated).max(),
                    );
                    Ok(page.with((stop, pmax, targets, listed)))
                })
                .await?;
            // The page's turn went with its delivery, before the reviews are requested.
            let (stop, pmax, targets, (page_low, page_top)) = match page {
                Next::Page(x) => x,
                Next::NotModified => return Ok(pair.unchanged()),
                _ => break,
            };
            if stop {
                pages.stop();
            }
            pr_max = max_opt(pr_max, pmax);
            top = max_opt(top, page_top);
            low = min_opt(low, page_low);
            // Every pull request listed so far is sent: a read cut short from here on
            // keeps them (see `StreamState::partial`).
            if let (true, Some(lo), Some(hi)) = (pair.list.want, low, top) {
                self.progress(PullRequest, key, lo, hi);
            }
            if pair.child.want
                && rv_err.is_none()
                && child_read(
                    self.reviews(tables, r, &targets, key, top).await,
                    &mut rv_err,
                )?
            {
                rv_max = max_opt(rv_max, targets.iter().map(|t| t.2).max());
            }
        }
        let span_end = |s: Option<Span>| s.map(|s| s.to.timestamp_micros());
        Ok(pair.results(|c| {
            let (max, span, err) = match c.kind {
                PullRequest => (pr_max, span_pr, None),
                _ => (rv_max, span_rv, rv_err.clone()),
            };
            let cursor = max_opt(max_opt(c.old.cursor_us(), max), span_end(span));
            err.map_or(
                Ok(RepoCursor {
                    cursor: cursor.and_then(us_to_time),
                    etag: pages.etag(),
                    since: None,
                }),
                Err,
            )
        }))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use arrow::array::StringArray;

    fn ctx(raw: bool) -> BatchCtx {
        BatchCtx {
            include_raw: raw,
            include_patch: false,
        }
    }

    /// The smallest pulls-list item the parser accepts.
    pub(crate) const MIN_PR: &str = r#"{"id":3000000001,"number":1,"state":"open","title":"t","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","base":{"ref":"main","sha":"a"},"head":{"ref":"f","sha":"b"},"html_url":"u"}"#;

    #[test]
    fn reserving_raw_never_drops_rows_already_appended() {
        let body = format!("[{MIN_PR}]");
        let items = parse_page::<PrItem>(body.as_bytes(), true).unwrap();
        let (p, raw) = &items[0];
        let t = p.times().unwrap();
        let mut b = PrRows::new(true);
        b.reserve_raw(1 << 16);
        b.append("o", "r", p, &t, *raw);
        b.reserve_raw(1 << 16); // a batch with rows: no-op
        b.append("o", "r", p, &t, *raw);
        let batch = b.finish(&ctx(true)).unwrap();
        let col = batch.column_by_name(flowctl_core::meta::RAW).unwrap();
        let col = col.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(arrow::array::Array::len(col), 2);
        assert!(col.iter().all(|v| v == Some(MIN_PR)), "{col:?}");
        // After finish the builder is empty again and takes a new reservation.
        b.reserve_raw(1 << 16);
        assert_eq!((b.rows(), b.raw_bytes()), (0, 0));
    }

    #[test]
    fn text_bytes_is_the_fullest_string_column_without_raw_too() {
        let title = "x".repeat(5_000);
        let pr = MIN_PR.replace(r#""title":"t""#, &format!(r#""title":"{title}""#));
        let body = format!("[{pr},{pr}]");
        let items = parse_page::<PrItem>(body.as_bytes(), false).unwrap();
        let mut b = PrRows::new(false);
        assert_eq!(b.text_bytes(), 0);
        for (p, raw) in &items {
            b.append("o", "r", p, &p.times().unwrap(), *raw);
        }
        // Two 5,000-byte titles; no _RAW, so raw_bytes alone would never cut this batch.
        assert_eq!((b.raw_bytes(), b.text_bytes()), (0, 10_000));
        b.finish(&ctx(false)).unwrap();
        assert_eq!(b.text_bytes(), 0);
    }

    #[test]
    fn nulls_everywhere_optional_is_fine() {
        let pr = MIN_PR.replace(r#""html_url":"u""#, r#""html_url":"u","user":null,"draft":null,"labels":null,"requested_reviewers":null,"milestone":null,"closed_at":null,"merged_at":null,"merge_commit_sha":null,"author_association":null"#);
        for raw in [false, true] {
            let b = pulls_page_to_batch(format!("[{pr}]").as_bytes(), "o", "r", &ctx(raw)).unwrap();
            assert_eq!(b.num_rows(), 1);
            assert_eq!(b.column_by_name("USER_LOGIN").unwrap().null_count(), 1);
        }
    }

    #[test]
    fn hostile_pages_are_errors_not_panics() {
        let cases = [
            MIN_PR.replace(r#""title":"t","#, ""),
            MIN_PR.replace(r#""id":3000000001"#, r#""id":"x""#),
            MIN_PR.replace(r#""title":"t""#, r#""title":"\ud800""#),
            MIN_PR.replace("2026-01-01T00:00:00Z", "not a time"),
            MIN_PR[..40].to_string(),
        ];
        for c in &cases {
            for raw in [false, true] {
                assert!(
                    pulls_page_to_batch(format!("[{c}]").as_bytes(), "o", "r", &ctx(raw)).is_err(),
                    "{c}"
                );
            }
        }
        assert!(pulls_page_to_batch(br#"{"message":"x"}"#, "o", "r", &ctx(false)).is_err());
        // Invalid UTF-8 inside a field we do not type: refused in both modes (the
        // json_arrow fuzz target found it accepted without `_RAW`).
        let mut bad = format!(
            "[{}]",
            MIN_PR.replace(r#""html_url":"u""#, r#""html_url":"u","extra":{"kXy":1}"#)
        )
        .into_bytes();
        let at = bad.windows(3).position(|w| w == b"kXy").unwrap() + 1;
        bad[at] = 0x93;
        for raw in [false, true] {
            let err = pulls_page_to_batch(&bad, "o", "r", &ctx(raw)).unwrap_err();
            assert!(err.to_string().contains("UTF-8"), "{err}");
        }
        let huge = MIN_PR.replace(
            r#""title":"t""#,
            &format!(r#""title":"{}""#, "x".repeat(10 << 20)),
        );
        let b = pulls_page_to_batch(
            format!("[{huge},{MIN_PR}]").as_bytes(),
            "o",
            "r",
            &ctx(false),
        )
        .unwrap();
        assert_eq!(b.num_rows(), 2, "10 MB strings are kept");
    }
}
