//! JSON pages → Arrow rows. Each page is deserialized once with serde into borrowed,
//! typed structs holding only the fields we keep (plus `&RawValue` for `_RAW`), then
//! appended to Arrow builders. Column order follows `schema.rs`.

use crate::config::StreamKind;
use crate::schema::table_schema;
use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Int64Builder, ListBuilder, StringArray, StringBuilder,
    TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::Arc;

/// A JSON string borrowed from the page when it has no escapes, owned otherwise.
///
/// A plain `Cow<'a, str>` borrows only as a direct field with `#[serde(borrow)]`; inside
/// an `Option` or a `Vec`, serde deserializes it through `String`, one allocation and
/// copy per value. This type borrows wherever it sits.
pub struct S<'a>(Cow<'a, str>);

impl S<'_> {
    pub fn into_owned(self) -> String {
        self.0.into_owned()
    }
}

impl AsRef<str> for S<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for S<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for S<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = S<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<S<'de>, E> {
                Ok(S(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<S<'de>, E> {
                Ok(S(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<S<'de>, E> {
                Ok(S(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visit)
    }
}

/// Run-wide values of the metadata columns and output options.
#[derive(Debug, Clone)]
pub struct BatchCtx {
    pub ingested_at_us: i64,
    pub batch_id: String,
    pub include_raw: bool,
    pub include_patch: bool,
}

// ------------------------------------------------------------------ serde shapes

/// A user. GitHub's schema calls most user fields nullable, and GitHub also sends `{}`
/// (a commit's `author`/`committer` are "simple-user or empty-object"): an object
/// without `login` reads as no user, like `null`.
#[derive(Deserialize)]
pub struct UserRef<'a> {
    #[serde(borrow, default)]
    login: Option<S<'a>>,
    #[serde(default)]
    id: Option<i64>,
}

impl UserRef<'_> {
    /// (login, id) of a real user; `None` for `{}` and other objects without a login.
    fn user(&self) -> Option<(&str, Option<i64>)> {
        self.login.as_deref().map(|l| (l, self.id))
    }
}

/// The login of an optional user (`null`, `{}`, omitted: none).
fn login<'x>(u: &'x Option<UserRef<'_>>) -> Option<&'x str> {
    u.as_ref().and_then(|u| u.user()).map(|(l, _)| l)
}

fn user_id(u: &Option<UserRef<'_>>) -> Option<i64> {
    u.as_ref().and_then(|u| u.user()).and_then(|(_, id)| id)
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    name: S<'a>,
}

/// A milestone (nullable; `{}` reads as none).
#[derive(Deserialize)]
struct Titled<'a> {
    #[serde(borrow, default)]
    title: Option<S<'a>>,
}

/// The repository of a PR's head: null when the fork was deleted (`{}` reads the same).
#[derive(Deserialize)]
struct RepoName<'a> {
    #[serde(borrow, default)]
    full_name: Option<S<'a>>,
}

#[derive(Deserialize)]
struct GitRef<'a> {
    #[serde(borrow, rename = "ref")]
    ref_: S<'a>,
    #[serde(borrow)]
    sha: S<'a>,
    #[serde(borrow, default)]
    repo: Option<RepoName<'a>>,
}

/// The fields of a pulls-list item we keep.
#[derive(Deserialize)]
pub struct PrItem<'a> {
    pub id: i64,
    pub number: i64,
    #[serde(borrow)]
    state: S<'a>,
    #[serde(default)]
    draft: Option<bool>,
    #[serde(borrow)]
    title: S<'a>,
    #[serde(borrow, default)]
    user: Option<UserRef<'a>>,
    #[serde(borrow, default)]
    author_association: Option<S<'a>>,
    #[serde(borrow)]
    created_at: S<'a>,
    #[serde(borrow)]
    pub updated_at: S<'a>,
    #[serde(borrow, default)]
    closed_at: Option<S<'a>>,
    #[serde(borrow, default)]
    merged_at: Option<S<'a>>,
    #[serde(borrow, default)]
    merge_commit_sha: Option<S<'a>>,
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
    html_url: S<'a>,
}

#[derive(Deserialize)]
pub struct ReviewItem<'a> {
    pub id: i64,
    #[serde(borrow, default)]
    user: Option<UserRef<'a>>,
    #[serde(borrow)]
    state: S<'a>,
    #[serde(borrow, default)]
    submitted_at: Option<S<'a>>,
    #[serde(borrow, default)]
    commit_id: Option<S<'a>>,
    #[serde(borrow, default)]
    author_association: Option<S<'a>>,
    #[serde(borrow, default)]
    html_url: Option<S<'a>>,
}

#[derive(Deserialize)]
struct GitActor<'a> {
    #[serde(borrow, default)]
    name: Option<S<'a>>,
    #[serde(borrow, default)]
    email: Option<S<'a>>,
    #[serde(borrow, default)]
    date: Option<S<'a>>,
}

#[derive(Deserialize)]
struct CommitInner<'a> {
    #[serde(borrow, default)]
    author: Option<GitActor<'a>>,
    #[serde(borrow, default)]
    committer: Option<GitActor<'a>>,
    #[serde(borrow)]
    message: S<'a>,
}

#[derive(Deserialize)]
struct Sha<'a> {
    #[serde(borrow)]
    sha: S<'a>,
}

#[derive(Deserialize)]
pub struct CommitItem<'a> {
    #[serde(borrow)]
    pub sha: S<'a>,
    #[serde(borrow)]
    commit: CommitInner<'a>,
    #[serde(borrow, default)]
    author: Option<UserRef<'a>>,
    #[serde(borrow, default)]
    committer: Option<UserRef<'a>>,
    #[serde(borrow, default)]
    parents: Option<Vec<Sha<'a>>>,
    #[serde(borrow, default)]
    html_url: Option<S<'a>>,
}

impl CommitItem<'_> {
    /// (author date, committer date) in µs; the committer date is the commits cursor.
    pub fn dates(&self) -> Result<(Option<i64>, Option<i64>), String> {
        let a = self
            .commit
            .author
            .as_ref()
            .map(|x| opt_ts(&x.date))
            .transpose()?
            .flatten();
        let m = self
            .commit
            .committer
            .as_ref()
            .map(|x| opt_ts(&x.date))
            .transpose()?
            .flatten();
        Ok((a, m))
    }
}

/// The single-commit object: its files are kept raw and parsed one by one.
#[derive(Deserialize)]
pub struct CommitFull<'a> {
    #[serde(borrow)]
    pub sha: S<'a>,
    #[serde(borrow)]
    commit: CommitInner<'a>,
    #[serde(borrow, default)]
    pub files: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct FileItem<'a> {
    #[serde(borrow)]
    filename: S<'a>,
    #[serde(borrow)]
    status: S<'a>,
    #[serde(default)]
    additions: i64,
    #[serde(default)]
    deletions: i64,
    #[serde(default)]
    changes: i64,
    #[serde(borrow, default)]
    previous_filename: Option<S<'a>>,
    #[serde(borrow, default)]
    sha: Option<S<'a>>,
    #[serde(borrow, default)]
    patch: Option<S<'a>>,
}

#[derive(Deserialize)]
pub struct RepoItem<'a> {
    pub id: i64,
    #[serde(borrow)]
    pub name: S<'a>,
    #[serde(borrow)]
    full_name: S<'a>,
    #[serde(borrow, default)]
    owner: Option<UserRef<'a>>,
    #[serde(default)]
    private: Option<bool>,
    #[serde(default)]
    pub fork: Option<bool>,
    #[serde(default)]
    pub archived: Option<bool>,
    #[serde(borrow, default)]
    default_branch: Option<S<'a>>,
    #[serde(borrow, default)]
    description: Option<S<'a>>,
    #[serde(borrow, default)]
    language: Option<S<'a>>,
    #[serde(borrow, default)]
    visibility: Option<S<'a>>,
    #[serde(borrow, default)]
    topics: Option<Vec<S<'a>>>,
    #[serde(borrow, default)]
    created_at: Option<S<'a>>,
    #[serde(borrow, default)]
    updated_at: Option<S<'a>>,
    #[serde(borrow, default)]
    pushed_at: Option<S<'a>>,
    #[serde(default)]
    stargazers_count: Option<i64>,
    #[serde(default)]
    forks_count: Option<i64>,
    #[serde(default)]
    open_issues_count: Option<i64>,
    #[serde(borrow, default)]
    html_url: Option<S<'a>>,
}

/// A page as typed items, each with its raw JSON text when `_RAW` is kept.
///
/// The body must be UTF-8 as a whole, with or without `_RAW`: serde_json validates the
/// strings it keeps but skips ignored fields unchecked, so without this a page would be
/// accepted or refused depending on `include_raw` (found by the `json_arrow` fuzz
/// target). The check runs at memory speed on ASCII, well under 1% of parsing.
pub fn parse_page<'a, T: Deserialize<'a>>(
    body: &'a [u8],
    raw: bool,
) -> Result<Vec<(T, Option<&'a str>)>, String> {
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => return Err(format!("body is not valid UTF-8: {e}")),
    };
    if raw {
        if let Some(items) = items_with_raw(text) {
            return Ok(items);
        }
        // Anything the one-pass reader refuses goes through serde_json as a whole, so
        // errors read as before (and a body it misjudged would still parse).
        let raws: Vec<&'a RawValue> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        raws.into_iter()
            .map(|r| {
                let t = serde_json::from_str::<T>(r.get()).map_err(|e| e.to_string())?;
                Ok((t, Some(r.get())))
            })
            .collect()
    } else {
        if let Some(items) = items_with_raw(text) {
            return Ok(items.into_iter().map(|(t, _)| (t, None)).collect());
        }
        let items: Vec<T> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(items.into_iter().map(|t| (t, None)).collect())
    }
}

/// The items of a JSON list, each parsed once into `T` with its own text beside it:
/// each element is deserialized from where it starts and its end taken from
/// `byte_offset`, instead of scanning the page for `RawValue`s and parsing every
/// element again (`cargo bench --bench micro`, `pulls_page_to_arrow` `true`).
/// `None` on anything unexpected; the caller then parses the usual way for the error.
fn items_with_raw<'a, T: Deserialize<'a>>(text: &'a str) -> Option<Vec<(T, Option<&'a str>)>> {
    let b = text.as_bytes();
    let ws = |mut i: usize| {
        while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            i += 1;
        }
        i
    };
    let mut i = ws(0);
    if b.get(i) != Some(&b'[') {
        return None;
    }
    i = ws(i + 1);
    let mut out = Vec::new();
    if b.get(i) == Some(&b']') {
        i += 1;
    } else {
        loop {
            let rest = text.get(i..)?;
            let mut one = serde_json::Deserializer::from_str(rest).into_iter::<T>();
            let item = one.next()?.ok()?;
            let end = i + one.byte_offset();
            out.push((item, Some(text.get(i..end)?)));
            i = ws(end);
            match b.get(i) {
                Some(b',') => i = ws(i + 1),
                Some(b']') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (ws(i) == b.len()).then_some(out)
}

// ------------------------------------------------------------------ timestamps

/// `YYYY-MM-DDTHH:MM:SSZ` (GitHub's form) on a fast path, any RFC 3339 otherwise → µs.
pub fn parse_ts(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    if b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
    {
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let mut v = 0i64;
            for &c in &b[r] {
                if !c.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + (c - b'0') as i64;
            }
            Some(v)
        };
        if let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(se)) = (
            num(0..4),
            num(5..7),
            num(8..10),
            num(11..13),
            num(14..16),
            num(17..19),
        ) {
            if (1..=12).contains(&mo) && (1..=31).contains(&d) && h < 24 && mi < 60 && se < 61 {
                return Ok(
                    (days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se) * 1_000_000,
                );
            }
        }
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_micros())
        .map_err(|_| {
            format!(
                "invalid timestamp `{}`",
                s.chars().take(40).collect::<String>()
            )
        })
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn opt_ts(s: &Option<S<'_>>) -> Result<Option<i64>, String> {
    s.as_deref().map(parse_ts).transpose()
}

// ------------------------------------------------------------------ builders

/// Lowercase hex MD5 of the parts joined by `|` (same as `flowctl_core::meta::row_key`),
/// written without allocating.
fn append_key(b: &mut StringBuilder, parts: &[&str]) {
    let mut ctx = md5::Context::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            ctx.consume(b"|");
        }
        ctx.consume(p.as_bytes());
    }
    let d = ctx.finalize();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, byte) in d.0.iter().enumerate() {
        out[2 * i] = HEX[(byte >> 4) as usize];
        out[2 * i + 1] = HEX[(byte & 15) as usize];
    }
    b.append_value(std::str::from_utf8(&out).unwrap_or_default());
}

fn ts_builder() -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::new().with_timezone("UTC")
}

fn append_list<'x>(
    b: &mut ListBuilder<StringBuilder>,
    items: Option<impl Iterator<Item = &'x str>>,
) {
    match items {
        Some(it) => {
            for s in it {
                b.values().append_value(s);
            }
            b.append(true);
        }
        None => b.append(false),
    }
}

/// `_ROW_KEY` and `_RAW`, appended per row; the constant metadata is added at finish.
#[derive(Default)]
struct Meta {
    keys: StringBuilder,
    raw: StringBuilder,
}

impl Meta {
    fn finish(
        &mut self,
        mut cols: Vec<ArrayRef>,
        schema: &SchemaRef,
        org: &str,
        ctx: &BatchCtx,
    ) -> Result<RecordBatch, String> {
        let n = self.keys.len();
        cols.push(Arc::new(self.keys.finish()));
        cols.push(Arc::new(
            TimestampMicrosecondArray::from(vec![ctx.ingested_at_us; n]).with_timezone("UTC"),
        ));
        cols.push(Arc::new(StringArray::from_iter_values(
            std::iter::repeat_n(org, n),
        )));
        cols.push(Arc::new(StringArray::from_iter_values(
            std::iter::repeat_n(ctx.batch_id.as_str(), n),
        )));
        let raw = self.raw.finish();
        if ctx.include_raw {
            cols.push(Arc::new(raw));
        }
        RecordBatch::try_new(schema.clone(), cols).map_err(|e| format!("building Arrow batch: {e}"))
    }

    fn raw_bytes(&self) -> usize {
        self.raw.values_slice().len()
    }

    fn text_bytes(&self) -> usize {
        self.raw_bytes().max(self.keys.values_slice().len())
    }

    fn reserve_raw(&mut self, bytes: usize) {
        if self.raw.is_empty() {
            self.raw = StringBuilder::with_capacity(64, bytes);
        }
    }

    fn raw(&mut self, raw: Option<&str>) {
        match raw {
            Some(r) => self.raw.append_value(r),
            None => self.raw.append_null(),
        }
    }
}

/// Builders of one table; `rows()` and `finish()` are what the accumulator needs.
pub trait TableRows: Send {
    fn rows(&self) -> usize;
    /// Bytes of `_RAW` text buffered (0 without `_RAW`): what makes a batch large.
    fn raw_bytes(&self) -> usize;
    /// Size the `_RAW` buffer of a batch that has no rows yet (no-op once it has some), so
    /// it is allocated once instead of grown by doubling, each step a copy.
    fn reserve_raw(&mut self, bytes: usize);
    /// Bytes of text in the fullest string column: an Arrow string column holds at most
    /// 2 GiB (the builder panics past it), so batches are cut at [`MAX_BATCH_TEXT_BYTES`].
    fn text_bytes(&self) -> usize;
    fn finish(&mut self, org: &str, ctx: &BatchCtx) -> Result<RecordBatch, String>;
}

/// A batch is cut once one of its string columns holds this much text, whatever
/// `batch_rows` says. A row's text comes from one response body of at most 512 MiB
/// (`http::MAX_BODY`; strings only shrink when JSON is decoded), so a column stays under
/// 768 MiB, far from Arrow's 2 GiB. Real GitHub data never comes near: a batch of 1,000
/// pull requests holds a few MB.
pub const MAX_BATCH_TEXT_BYTES: usize = 256 << 20;

/// Text bytes a builder holds (0 for builders of numbers, times and booleans).
trait TextBytes {
    fn text_bytes(&self) -> usize {
        0
    }
}

impl TextBytes for StringBuilder {
    fn text_bytes(&self) -> usize {
        self.values_slice().len()
    }
}

impl TextBytes for ListBuilder<StringBuilder> {
    fn text_bytes(&self) -> usize {
        self.values_ref().values_slice().len()
    }
}

impl TextBytes for Int64Builder {}
impl TextBytes for BooleanBuilder {}
impl TextBytes for TimestampMicrosecondBuilder {}

macro_rules! table_rows {
    ($t:ident, $($f:ident),+) => {
        impl TableRows for $t {
            fn rows(&self) -> usize {
                self.meta.keys.len()
            }
            fn raw_bytes(&self) -> usize {
                self.meta.raw_bytes()
            }
            fn reserve_raw(&mut self, bytes: usize) {
                self.meta.reserve_raw(bytes)
            }
            fn text_bytes(&self) -> usize {
                self.meta.text_bytes()$(.max(TextBytes::text_bytes(&self.$f)))+
            }
            fn finish(&mut self, org: &str, ctx: &BatchCtx) -> Result<RecordBatch, String> {
                let cols: Vec<ArrayRef> = vec![$(Arc::new(self.$f.finish())),+];
                self.meta.finish(cols, &self.schema, org, ctx)
            }
        }
    };
}

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
    pub fn new(include_raw: bool) -> Self {
        PrRows {
            schema: table_schema(StreamKind::PullRequest, include_raw),
            id: Int64Builder::new(),
            number: Int64Builder::new(),
            state: StringBuilder::new(),
            draft: BooleanBuilder::new(),
            title: StringBuilder::new(),
            user_login: StringBuilder::new(),
            user_id: Int64Builder::new(),
            assoc: StringBuilder::new(),
            created: ts_builder(),
            updated: ts_builder(),
            closed: ts_builder(),
            merged: ts_builder(),
            merge_sha: StringBuilder::new(),
            base_ref: StringBuilder::new(),
            base_sha: StringBuilder::new(),
            head_ref: StringBuilder::new(),
            head_sha: StringBuilder::new(),
            head_repo: StringBuilder::new(),
            merged_by: StringBuilder::new(),
            additions: Int64Builder::new(),
            deletions: Int64Builder::new(),
            changed_files: Int64Builder::new(),
            commits: Int64Builder::new(),
            reviewers: ListBuilder::new(StringBuilder::new()),
            labels: ListBuilder::new(StringBuilder::new()),
            milestone: StringBuilder::new(),
            html_url: StringBuilder::new(),
            repo_name: StringBuilder::new(),
            org: StringBuilder::new(),
            meta: Meta::default(),
        }
    }

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

impl ReviewItem<'_> {
    pub fn submitted(&self) -> Result<Option<i64>, String> {
        opt_ts(&self.submitted_at)
    }
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

fn itoa(v: i64) -> String {
    v.to_string()
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

pub struct FileRows {
    schema: SchemaRef,
    sha: StringBuilder,
    filename: StringBuilder,
    status: StringBuilder,
    additions: Int64Builder,
    deletions: Int64Builder,
    changes: Int64Builder,
    previous: StringBuilder,
    blob: StringBuilder,
    patch: StringBuilder,
    committer_date: TimestampMicrosecondBuilder,
    repo_name: StringBuilder,
    org: StringBuilder,
    meta: Meta,
}

table_rows!(
    FileRows,
    sha,
    filename,
    status,
    additions,
    deletions,
    changes,
    previous,
    blob,
    patch,
    committer_date,
    repo_name,
    org
);

impl FileRows {
    pub fn new(include_raw: bool) -> Self {
        FileRows {
            schema: table_schema(StreamKind::CommitFile, include_raw),
            sha: StringBuilder::new(),
            filename: StringBuilder::new(),
            status: StringBuilder::new(),
            additions: Int64Builder::new(),
            deletions: Int64Builder::new(),
            changes: Int64Builder::new(),
            previous: StringBuilder::new(),
            blob: StringBuilder::new(),
            patch: StringBuilder::new(),
            committer_date: ts_builder(),
            repo_name: StringBuilder::new(),
            org: StringBuilder::new(),
            meta: Meta::default(),
        }
    }

    /// Append every file of one commit. Parses all files first so a bad one appends nothing.
    pub fn append_commit(
        &mut self,
        org: &str,
        repo: &str,
        c: &CommitFull<'_>,
        ctx: &BatchCtx,
    ) -> Result<usize, String> {
        let date = c
            .commit
            .committer
            .as_ref()
            .map(|x| opt_ts(&x.date))
            .transpose()?
            .flatten();
        let mut files = Vec::with_capacity(c.files.len());
        for raw in &c.files {
            let f: FileItem = serde_json::from_str(raw.get())
                .map_err(|e| format!("commit {} file: {e}", &*c.sha))?;
            let raw_text = if !ctx.include_raw {
                None
            } else if ctx.include_patch || f.patch.is_none() {
                Some(raw.get().to_string())
            } else {
                let mut v: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
                v.remove("patch");
                Some(serde_json::Value::Object(v).to_string())
            };
            files.push((f, raw_text));
        }
        for (f, raw) in &files {
            self.sha.append_value(&c.sha);
            self.filename.append_value(&f.filename);
            self.status.append_value(&f.status);
            self.additions.append_value(f.additions);
            self.deletions.append_value(f.deletions);
            self.changes.append_value(f.changes);
            self.previous.append_option(f.previous_filename.as_deref());
            self.blob.append_option(f.sha.as_deref());
            self.patch.append_option(if ctx.include_patch {
                f.patch.as_deref()
            } else {
                None
            });
            self.committer_date.append_option(date);
            self.repo_name.append_value(repo);
            self.org.append_value(org);
            append_key(&mut self.meta.keys, &[org, repo, &c.sha, &f.filename]);
            self.meta.raw(raw.as_deref());
        }
        Ok(files.len())
    }
}

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
    pub fn new(include_raw: bool) -> Self {
        RepoRows {
            schema: table_schema(StreamKind::Repository, include_raw),
            id: Int64Builder::new(),
            name: StringBuilder::new(),
            full_name: StringBuilder::new(),
            owner: StringBuilder::new(),
            private: BooleanBuilder::new(),
            fork: BooleanBuilder::new(),
            archived: BooleanBuilder::new(),
            default_branch: StringBuilder::new(),
            description: StringBuilder::new(),
            language: StringBuilder::new(),
            visibility: StringBuilder::new(),
            topics: ListBuilder::new(StringBuilder::new()),
            created: ts_builder(),
            updated: ts_builder(),
            pushed: ts_builder(),
            stars: Int64Builder::new(),
            forks: Int64Builder::new(),
            open_issues: Int64Builder::new(),
            html_url: StringBuilder::new(),
            org: StringBuilder::new(),
            meta: Meta::default(),
        }
    }

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

// ------------------------------------------------------------------ deployments

/// The fields of a deployments-list item we keep.
#[derive(Deserialize)]
struct DeploymentItem<'a> {
    id: i64,
    #[serde(borrow)]
    sha: S<'a>,
    #[serde(borrow, default, rename = "ref")]
    ref_: Option<S<'a>>,
    #[serde(borrow, default)]
    task: Option<S<'a>>,
    #[serde(borrow, default)]
    environment: Option<S<'a>>,
    #[serde(borrow, default)]
    description: Option<S<'a>>,
    #[serde(borrow, default)]
    creator: Option<UserRef<'a>>,
    #[serde(borrow)]
    created_at: S<'a>,
    #[serde(borrow)]
    updated_at: S<'a>,
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
                ref_: d.ref_.map(S::into_owned),
                task: d.task.map(S::into_owned),
                environment: d.environment.map(S::into_owned),
                description: d.description.map(S::into_owned),
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
    state: S<'a>,
    #[serde(borrow, default)]
    created_at: Option<S<'a>>,
    #[serde(borrow, default)]
    environment_url: Option<S<'a>>,
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
    pub fn new(include_raw: bool) -> Self {
        DeploymentRows {
            schema: table_schema(StreamKind::Deployment, include_raw),
            id: Int64Builder::new(),
            org: StringBuilder::new(),
            repo_name: StringBuilder::new(),
            sha: StringBuilder::new(),
            ref_: StringBuilder::new(),
            task: StringBuilder::new(),
            environment: StringBuilder::new(),
            description: StringBuilder::new(),
            creator: StringBuilder::new(),
            created: ts_builder(),
            updated: ts_builder(),
            status_state: StringBuilder::new(),
            status_created: ts_builder(),
            status_env_url: StringBuilder::new(),
            meta: Meta::default(),
        }
    }

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

/// Parse one pulls page straight into a batch (benchmarks, fuzzing). The reader does the
/// same through its shared per-org builders.
pub fn pulls_page_to_batch(
    body: &[u8],
    org: &str,
    repo: &str,
    ctx: &BatchCtx,
) -> Result<RecordBatch, String> {
    let items = parse_page::<PrItem>(body, ctx.include_raw)?;
    let times = items
        .iter()
        .map(|(p, _)| p.times())
        .collect::<Result<Vec<_>, _>>()?;
    let mut b = PrRows::new(ctx.include_raw);
    for ((p, raw), t) in items.iter().zip(&times) {
        b.append(org, repo, p, t, *raw);
    }
    b.finish(org, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `S` borrows from the page inside an `Option` and a `Vec` too (a `Cow<str>` there
    /// would always be an owned copy), and owns only a string with escapes.
    #[test]
    fn strings_borrow_from_the_page_wherever_they_sit() {
        #[derive(Deserialize)]
        struct T<'a> {
            #[serde(borrow)]
            direct: S<'a>,
            #[serde(borrow, default)]
            opt: Option<S<'a>>,
            #[serde(borrow)]
            list: Vec<S<'a>>,
            #[serde(borrow)]
            escaped: Option<S<'a>>,
        }
        let page = r#"{"direct":"a","opt":"b","list":["c","d"],"escaped":"e\nf"}"#;
        let t: T = serde_json::from_str(page).unwrap();
        let borrowed = |s: &S| matches!(s.0, Cow::Borrowed(_));
        assert!(borrowed(&t.direct) && t.opt.as_ref().is_some_and(borrowed));
        assert!(t.list.iter().all(borrowed));
        let e = t.escaped.unwrap();
        assert!(!borrowed(&e) && &*e == "e\nf", "{}", &*e);
        assert_eq!(
            [
                &*t.direct,
                t.opt.as_deref().unwrap(),
                &t.list[0],
                &t.list[1]
            ],
            ["a", "b", "c", "d"]
        );
        assert!(serde_json::from_str::<T>(r#"{"direct":1,"list":[]}"#).is_err());
    }

    #[test]
    fn timestamps_fast_path_matches_chrono() {
        for s in [
            "2026-01-01T00:00:00Z",
            "1999-02-28T23:59:59Z",
            "2024-02-29T12:34:56Z",
            "1970-01-01T00:00:00Z",
        ] {
            let want = chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .timestamp_micros();
            assert_eq!(parse_ts(s).unwrap(), want, "{s}");
        }
        assert_eq!(
            parse_ts("2026-01-01T01:00:00+01:00").unwrap(),
            parse_ts("2026-01-01T00:00:00Z").unwrap()
        );
        assert!(parse_ts("2026-13-01T00:00:00Z").is_err());
        assert!(parse_ts("yesterday").is_err());
    }

    fn ctx(raw: bool) -> BatchCtx {
        BatchCtx {
            ingested_at_us: 0,
            batch_id: "b".into(),
            include_raw: raw,
            include_patch: false,
        }
    }

    const MIN_PR: &str = r#"{"id":3000000001,"number":1,"state":"open","title":"t","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","base":{"ref":"main","sha":"a"},"head":{"ref":"f","sha":"b"},"html_url":"u"}"#;

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
        let batch = b.finish("o", &ctx(true)).unwrap();
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
        b.finish("o", &ctx(false)).unwrap();
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

    #[test]
    fn one_pass_raw_items_equal_raw_values() {
        let pages = [
            format!("[{MIN_PR}]"),
            format!(" \n[ {MIN_PR} ,\r\n\t{MIN_PR}\n] \n"),
            "[]".to_string(),
            " [ ] ".to_string(),
        ];
        for page in &pages {
            let fast = items_with_raw::<serde_json::Value>(page).unwrap();
            let raws: Vec<&RawValue> = serde_json::from_str(page).unwrap();
            let want: Vec<&str> = raws.iter().map(|r| r.get()).collect();
            let got: Vec<&str> = fast.iter().map(|(_, r)| r.unwrap()).collect();
            assert_eq!(got, want, "{page:?}");
        }
        for bad in ["", "[", "[1,]", "[{}", "[{}] x", "{}", "[{} {}]", "[,]"] {
            assert!(
                items_with_raw::<serde_json::Value>(bad).is_none(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn row_key_matches_core_recipe() {
        let mut b = StringBuilder::new();
        append_key(&mut b, &["acme", "repo-0", "2500000000"]);
        let a = b.finish();
        assert_eq!(
            a.value(0),
            flowctl_core::meta::row_key(&["acme", "repo-0", "2500000000"])
        );
    }
}
