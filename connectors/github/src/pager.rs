//! The paginator every REST list read shares: pages followed by their `Link` header, the
//! first one conditional on a saved ETag, each page's rows handed to the engine before
//! the next page is asked for, and an early stop once a page reaches the cursor.

use crate::config::StreamKind;
use crate::http::{Fetched, HttpError, ParseTurn};
use crate::run::{PageRows, ReadError, Run};

/// What asking for the next page gave.
pub(crate) enum Next<T> {
    /// A page (for [`Pager::next`], its rows already handed on).
    Page(T),
    /// 304 to the saved ETag: nothing changed since it was saved.
    NotModified,
    /// The first page answered an error the reader handles itself (see
    /// [`Pager::first_page_may_answer`]).
    Refused(HttpError),
    /// No page left: the last one had no `next` link, or the reader stopped.
    End,
}

/// A list read page by page for one repository (or account).
pub(crate) struct Pager<'r, 'a> {
    run: &'r Run<'a>,
    org: &'r str,
    /// The stream named in requests and progress events.
    label: &'static str,
    url: Option<String>,
    /// Sent with the first request only: later pages' URLs are not the saved one.
    if_none_match: Option<String>,
    /// The first page's ETag.
    etag: Option<String>,
    pages: u32,
    /// A 404 fails the stream instead of skipping the repository.
    not_found_fails: bool,
    /// Errors of the first page returned as [`Next::Refused`].
    refused: fn(&HttpError) -> bool,
}

impl<'r, 'a> Pager<'r, 'a> {
    /// Pages from `url`, requested as stream `label`, their rows for `org`'s tables.
    pub(crate) fn new(run: &'r Run<'a>, org: &'r str, label: &'static str, url: String) -> Self {
        Pager {
            run,
            org,
            label,
            url: Some(url),
            if_none_match: None,
            etag: None,
            pages: 0,
            not_found_fails: false,
            refused: |_| false,
        }
    }

    /// Asks for the first page only if it changed since `etag` (a 304 costs no quota).
    pub(crate) fn if_none_match(mut self, etag: Option<String>) -> Self {
        self.if_none_match = etag;
        self
    }

    /// A 404 fails the stream rather than skipping the repository: for what belongs to a
    /// listed item (the reviews of a pull request, the files of a commit).
    pub(crate) fn not_found_fails(mut self) -> Self {
        self.not_found_fails = true;
        self
    }

    /// The first page's errors that `refused` picks come back as [`Next::Refused`].
    pub(crate) fn first_page_may_answer(mut self, refused: fn(&HttpError) -> bool) -> Self {
        self.refused = refused;
        self
    }

    /// Pages fetched so far.
    pub(crate) fn pages(&self) -> u32 {
        self.pages
    }

    /// The first page's ETag.
    pub(crate) fn etag(&self) -> Option<String> {
        self.etag.clone()
    }

    /// Asks for no further page: this one reached the cursor. (A short page is not the
    /// end of a list: only the `Link` header says so.)
    pub(crate) fn stop(&mut self) {
        self.url = None;
    }

    /// The next page, parsed by `parse`, with the parse turn it holds (see [`ParseTurn`]).
    pub(crate) async fn fetch<T>(
        &mut self,
        parse: impl FnMut(&[u8]) -> Result<T, String>,
    ) -> Result<Next<(T, ParseTurn)>, ReadError> {
        let Some(url) = self.url.take() else {
            return Ok(Next::End);
        };
        let first = self.pages == 0;
        let etag = self.if_none_match.as_deref().filter(|_| first);
        let got = match self.run.client.get(self.label, &url, etag, parse).await {
            Ok(got) => got,
            Err(e) if first && (self.refused)(&e) => return Ok(Next::Refused(e)),
            Err(e) if self.not_found_fails => return Err(ReadError::of_sub_resource(e)),
            Err(e) => return Err(e.into()),
        };
        Ok(match got {
            Fetched::NotModified => Next::NotModified,
            Fetched::Page {
                data,
                etag,
                next,
                turn,
            } => {
                if first {
                    self.etag = etag;
                }
                self.pages += 1;
                self.url = next;
                Next::Page((data, turn))
            }
        })
    }

    /// The next page, its rows built by `parse` and handed on to `kind`'s table; what
    /// else `parse` took from the page.
    pub(crate) async fn next<X>(
        &mut self,
        kind: StreamKind,
        parse: impl FnMut(&[u8]) -> Result<PageRows<X>, String>,
    ) -> Result<Next<X>, ReadError> {
        Ok(match self.fetch(parse).await? {
            Next::Page((rows, turn)) => {
                Next::Page(self.run.deliver(kind, self.org, rows, turn).await?)
            }
            Next::NotModified => Next::NotModified,
            Next::Refused(e) => Next::Refused(e),
            Next::End => Next::End,
        })
    }
}
