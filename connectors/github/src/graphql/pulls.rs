//! `api: graphql` for pull_request and pull_request_review: the REST path's batching,
//! cursors and early stop ([`crate::run`]), with pages from GraphQL.
//!
//! GraphQL has no conditional requests, so each repository starts with a conditional
//! REST request for the newest updated PR (`per_page=1`, its ETag kept in state): a 304,
//! or a newest PR older than the cursor, means no query at all.

use crate::config::StreamKind::*;
use crate::graphql::rows::{parse_pulls, parse_reviews};
use crate::graphql::shared::PageAsk;
use crate::graphql::{query, GqlFail};
use crate::http::{Fetched, ParseTurn};
use crate::rows::parse_page;
use crate::run::{max_opt, Cursors, OrgTables, ReadError, Run};
use crate::state::{us_to_time, RepoCursor, RepoRef};
use crate::streams::{pulls::PrItem, reviews::ReviewItem};
use flowctl_core::progress::ProgressEvent;
use serde_json::json;

/// Smallest page a heavy query is shrunk to before the stream fails.
const MIN_FIRST: u32 = 5;

impl From<GqlFail> for ReadError {
    fn from(e: GqlFail) -> Self {
        match e {
            GqlFail::Heavy(m) => ReadError::Failed(m),
            GqlFail::Http(h) => ReadError::from(h),
        }
    }
}

impl Run<'_> {
    pub(crate) async fn pulls_graphql(
        &self,
        tables: &OrgTables,
        r: &RepoRef,
        key: &str,
    ) -> Result<Cursors, ReadError> {
        let org = tables.org.as_str();
        let pair = self.pair_cursors(PullRequest, PullRequestReview, key);
        let label = pair.label;

        // The probe: the newest updated PR, conditional on the saved ETag.
        let url = self.url(
            &["repos", org, &r.name, "pulls"],
            "state=all&sort=updated&direction=desc&per_page=1",
        );
        let got = self
            .client
            .get(label, &url, pair.etag.as_deref(), |body| {
                let items = parse_page::<PrItem>(body, false)?;
                items
                    .first()
                    .map(|(p, _)| p.times().map(|t| t.updated))
                    .transpose()
            })
            .await?;
        let (newest, probe_etag) = match got {
            Fetched::NotModified => return Ok(pair.unchanged()),
            Fetched::Page {
                data, etag, turn, ..
            } => {
                drop(turn);
                (data, etag)
            }
        };
        let nothing_new = match (newest, pair.list_cut) {
            (None, _) => true,
            (Some(u), Some(c)) => u < c,
            (Some(_), None) => false,
        };
        if nothing_new {
            return Ok(pair.results(|c| {
                Ok(RepoCursor {
                    etag: probe_etag.clone(),
                    ..c.old.clone()
                })
            }));
        }

        // The page size is what this repository may get at most; a query shared with
        // other repositories (`graphql::shared`) may give it fewer.
        let mut max = query::cheapest_first();
        let (mut after, mut pr_max, mut rv_max): (Option<String>, _, _) = (None, None, None);
        let mut skipped_any = false;
        loop {
            let ask = PageAsk {
                owner: org.to_string(),
                name: r.name.clone(),
                after: after.clone(),
                max,
            };
            let ans = match self.gql.pulls_page(&self.client, label, ask).await {
                Ok((a, _)) => a,
                Err((GqlFail::Heavy(m), first)) if first > MIN_FIRST => {
                    // Timeouts and 5xx on a heavy query: the same page, smaller.
                    self.event(ProgressEvent::Warning {
                        stream: label.into(),
                        message: format!(
                            "{key}: a page of {first} pull requests failed ({m}); retrying with {}",
                            (first / 2).max(MIN_FIRST)
                        ),
                    });
                    max = (first / 2).max(MIN_FIRST);
                    continue;
                }
                Err((e, _)) => return Err(e.into()),
            };
            let page = parse_pulls(&ans.data, &ans.errors)
                .map_err(|e| ReadError::Failed(format!("{key}: GraphQL pulls page: {e}")))?;
            if page.no_repository {
                return Err(ReadError::NotFound(format!(
                    "GraphQL repository {key} is null ({})",
                    ans.errors
                        .iter()
                        .map(|e| e.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                )));
            }
            if !page.skipped.is_empty() {
                skipped_any = true;
                self.event(ProgressEvent::Warning {
                    stream: label.into(),
                    message: format!(
                        "{key}: GitHub could not return {} node(s), kept the rest of the page; the cursor stays put so the next run reads them again: {}",
                        page.skipped.len(),
                        page.skipped.join(", ")
                    ),
                });
            }
            // REST shapes first (the builders borrow from them), then timestamps.
            let items: Vec<PrItem> = page
                .nodes
                .iter()
                .map(|n| serde_json::from_str(&n.rest))
                .collect::<Result<_, _>>()
                .map_err(|e| ReadError::Failed(format!("{key}: GraphQL pull request: {e}")))?;
            let times = items
                .iter()
                .map(|p| p.times())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ReadError::Failed(format!("{key}: {e}")))?;
            let stop = pair
                .list_cut
                .is_some_and(|c| times.iter().any(|t| t.updated < c));
            let raw = self.ctx.include_raw;
            let rows = page
                .nodes
                .iter()
                .zip(&items)
                .zip(&times)
                .filter(|(_, t)| pair.list.wants(Some(t.updated)));
            let rows = self.fill(&tables.pulls, rows, |b, ((node, p), t)| {
                b.append(org, &r.name, p, t, raw.then_some(node.raw.as_str()))
            });
            pr_max = max_opt(
                pr_max,
                times
                    .iter()
                    .filter(|t| pair.list.wants(Some(t.updated)))
                    .map(|t| t.updated)
                    .max(),
            );
            self.deliver(PullRequest, org, rows, ParseTurn::none())
                .await?;
            if pair.child.want {
                for ((node, p), t) in page.nodes.iter().zip(&items).zip(&times) {
                    if !pair.child.wants(Some(t.updated)) {
                        continue;
                    }
                    skipped_any |= self
                        .graphql_reviews(tables, r, key, label, node, (p.id, p.number))
                        .await?;
                    rv_max = max_opt(rv_max, Some(t.updated));
                }
            }
            match page.end_cursor {
                Some(c) if page.has_next && !stop => after = Some(c),
                _ => break,
            }
        }
        Ok(pair.results(|c| {
            let max = if c.kind == PullRequest {
                pr_max
            } else {
                rv_max
            };
            // With nodes skipped, neither cursor nor ETag moves: the next run reads
            // this window again (rows already sent are merged, not duplicated).
            Ok(if skipped_any {
                RepoCursor {
                    etag: None,
                    ..c.old.clone()
                }
            } else {
                RepoCursor {
                    cursor: max_opt(c.old.cursor_us(), max).and_then(us_to_time),
                    etag: probe_etag.clone(),
                    since: None,
                }
            })
        }))
    }

    /// Appends a PR's reviews: the page that came with it, then further pages. Returns
    /// whether any review node was skipped.
    async fn graphql_reviews(
        &self,
        tables: &OrgTables,
        r: &RepoRef,
        key: &str,
        label: &str,
        node: &crate::graphql::rows::PrNode,
        pr: (i64, i64),
    ) -> Result<bool, ReadError> {
        let org = tables.org.as_str();
        let mut page = node.reviews.clone();
        let mut after = node.reviews_after.clone();
        let mut skipped_any = false;
        loop {
            let items: Vec<ReviewItem> = page
                .iter()
                .map(|(rest, _)| serde_json::from_str(rest))
                .collect::<Result<_, _>>()
                .map_err(|e| ReadError::Failed(format!("{key}: GraphQL review: {e}")))?;
            let subs = items
                .iter()
                .map(|x| x.submitted())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ReadError::Failed(format!("{key}: {e}")))?;
            let raw = self.ctx.include_raw;
            let rows = page.iter().zip(&items).zip(&subs);
            let rows = self.fill(&tables.reviews, rows, |b, (((_, rawv), x), s)| {
                b.append(org, &r.name, pr, x, *s, raw.then_some(rawv.as_str()))
            });
            self.deliver(PullRequestReview, org, rows, ParseTurn::none())
                .await?;
            let Some(cursor) = after.take() else {
                return Ok(skipped_any);
            };
            let vars = json!({ "owner": org, "name": r.name, "number": pr.1, "after": cursor });
            let ans = self
                .gql
                .query(&self.client, label, &query::reviews(), vars, 1)
                .await
                .map_err(ReadError::of_sub_resource)?;
            let (next, more, skipped) = parse_reviews(&ans.data, &ans.errors)
                .map_err(|e| ReadError::Failed(format!("{key} #{}: {e}", pr.1)))?;
            if !skipped.is_empty() {
                skipped_any = true;
                self.event(ProgressEvent::Warning {
                    stream: "pull_request_review".into(),
                    message: format!(
                        "{key} #{}: GitHub could not return {} review(s), kept the rest: {}",
                        pr.1,
                        skipped.len(),
                        skipped.join(", ")
                    ),
                });
            }
            page = next;
            after = more;
        }
    }
}
