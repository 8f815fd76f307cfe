//! What every stream's row building shares: a JSON page read into typed items borrowed
//! from the body ([`parse_page`], [`JsonStr`]), GitHub's timestamps, and the builders'
//! `_ROW_KEY` and `_RAW` (the engine adds the run's constant columns).

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMicrosecondBuilder,
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
pub struct JsonStr<'a>(Cow<'a, str>);

impl JsonStr<'_> {
    pub fn into_owned(self) -> String {
        self.0.into_owned()
    }
}

impl AsRef<str> for JsonStr<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for JsonStr<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = JsonStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<JsonStr<'de>, E> {
                Ok(JsonStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<JsonStr<'de>, E> {
                Ok(JsonStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<JsonStr<'de>, E> {
                Ok(JsonStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visit)
    }
}

/// What the row builders keep besides the table's columns.
#[derive(Debug, Clone)]
pub struct BatchCtx {
    pub include_raw: bool,
    pub include_patch: bool,
}
/// A user. GitHub's schema calls most user fields nullable, and GitHub also sends `{}`
/// (a commit's `author`/`committer` are "simple-user or empty-object"): an object
/// without `login` reads as no user, like `null`.
#[derive(Deserialize)]
pub struct UserRef<'a> {
    #[serde(borrow, default)]
    login: Option<JsonStr<'a>>,
    #[serde(default)]
    id: Option<i64>,
}

impl UserRef<'_> {
    /// (login, id) of a real user; `None` for `{}` and other objects without a login.
    pub(crate) fn user(&self) -> Option<(&str, Option<i64>)> {
        self.login.as_deref().map(|l| (l, self.id))
    }
}

/// The login of an optional user (`null`, `{}`, omitted: none).
pub(crate) fn login<'x>(u: &'x Option<UserRef<'_>>) -> Option<&'x str> {
    u.as_ref().and_then(|u| u.user()).map(|(l, _)| l)
}

pub(crate) fn user_id(u: &Option<UserRef<'_>>) -> Option<i64> {
    u.as_ref().and_then(|u| u.user()).and_then(|(_, id)| id)
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

/// What `f` reads from each item of a page (a bad value, such as a timestamp, fails the
/// page).
pub(crate) fn each<T, U>(
    items: &[(T, Option<&str>)],
    f: impl Fn(&T) -> Result<U, String>,
) -> Result<Vec<U>, String> {
    items.iter().map(|(t, _)| f(t)).collect()
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

pub(crate) fn opt_ts(s: &Option<JsonStr<'_>>) -> Result<Option<i64>, String> {
    s.as_deref().map(parse_ts).transpose()
}

// ------------------------------------------------------------------ builders

/// Lowercase hex MD5 of the parts joined by `|` (same as `flowctl_core::meta::row_key`),
/// written without allocating.
pub(crate) fn append_key(b: &mut StringBuilder, parts: &[&str]) {
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

pub(crate) fn append_list<'x>(
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

/// `_ROW_KEY` and `_RAW`, appended per row; the engine adds the run's constant columns.
#[derive(Default)]
pub(crate) struct Meta {
    pub(crate) keys: StringBuilder,
    pub(crate) raw: StringBuilder,
}

impl Meta {
    pub(crate) fn finish(
        &mut self,
        mut cols: Vec<ArrayRef>,
        schema: &SchemaRef,
        ctx: &BatchCtx,
    ) -> Result<RecordBatch, String> {
        cols.push(Arc::new(self.keys.finish()));
        let raw = self.raw.finish();
        if ctx.include_raw {
            cols.push(Arc::new(raw));
        }
        RecordBatch::try_new(schema.clone(), cols).map_err(|e| format!("building Arrow batch: {e}"))
    }

    pub(crate) fn rows(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn raw_bytes(&self) -> usize {
        self.raw.values_slice().len()
    }

    pub(crate) fn text_bytes(&self) -> usize {
        self.raw_bytes().max(self.keys.values_slice().len())
    }

    pub(crate) fn reserve_raw(&mut self, bytes: usize) {
        if self.raw.is_empty() {
            self.raw = StringBuilder::with_capacity(64, bytes);
        }
    }

    pub(crate) fn raw(&mut self, raw: Option<&str>) {
        match raw {
            Some(r) => self.raw.append_value(r),
            None => self.raw.append_null(),
        }
    }
}

/// The builders of one table, filled and cut into batches by the reader.
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
    fn finish(&mut self, ctx: &BatchCtx) -> Result<RecordBatch, String>;
}

/// A batch is cut once one of its string columns holds this much text, whatever
/// `batch_rows` says. A row's text comes from one response body of at most 512 MiB
/// (`http::MAX_BODY`; strings only shrink when JSON is decoded), so a column stays under
/// 768 MiB, far from Arrow's 2 GiB. Real GitHub data never comes near: a batch of 1,000
/// pull requests holds a few MB.
pub const MAX_BATCH_TEXT_BYTES: usize = 256 << 20;

/// A column's builder: how a batch starts it, and the text it holds (0 for builders of
/// numbers, times and booleans).
pub(crate) trait Column {
    fn empty() -> Self;
    fn text_bytes(&self) -> usize {
        0
    }
}

impl Column for StringBuilder {
    fn empty() -> Self {
        StringBuilder::new()
    }
    fn text_bytes(&self) -> usize {
        self.values_slice().len()
    }
}

impl Column for ListBuilder<StringBuilder> {
    fn empty() -> Self {
        ListBuilder::new(StringBuilder::new())
    }
    fn text_bytes(&self) -> usize {
        self.values_ref().values_slice().len()
    }
}

impl Column for Int64Builder {
    fn empty() -> Self {
        Int64Builder::new()
    }
}

impl Column for BooleanBuilder {
    fn empty() -> Self {
        BooleanBuilder::new()
    }
}

/// Every GitHub time is kept in UTC.
impl Column for TimestampMicrosecondBuilder {
    fn empty() -> Self {
        TimestampMicrosecondBuilder::new().with_timezone("UTC")
    }
}

/// A table's builder struct (`schema`, one field per column in `schema.rs`'s order,
/// `meta`): its `new` and its [`TableRows`].
macro_rules! table_rows {
    ($t:ident, $kind:path, $($f:ident),+) => {
        impl $t {
            pub fn new(include_raw: bool) -> Self {
                $t {
                    schema: $crate::schema::sent_schema($kind, include_raw),
                    $($f: $crate::rows::Column::empty(),)+
                    meta: $crate::rows::Meta::default(),
                }
            }
        }

        impl $crate::rows::TableRows for $t {
            fn rows(&self) -> usize {
                self.meta.rows()
            }
            fn raw_bytes(&self) -> usize {
                self.meta.raw_bytes()
            }
            fn reserve_raw(&mut self, bytes: usize) {
                self.meta.reserve_raw(bytes)
            }
            fn text_bytes(&self) -> usize {
                self.meta.text_bytes()$(.max($crate::rows::Column::text_bytes(&self.$f)))+
            }
            fn finish(
                &mut self,
                ctx: &$crate::rows::BatchCtx,
            ) -> Result<arrow::record_batch::RecordBatch, String> {
                let cols: Vec<arrow::array::ArrayRef> =
                    vec![$(std::sync::Arc::new(self.$f.finish())),+];
                self.meta.finish(cols, &self.schema, ctx)
            }
        }
    };
}
pub(crate) use table_rows;

pub(crate) fn itoa(v: i64) -> String {
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::pulls::tests::MIN_PR;

    /// `JsonStr` borrows from the page inside an `Option` and a `Vec` too (a `Cow<str>` there
    /// would always be an owned copy), and owns only a string with escapes.
    #[test]
    fn strings_borrow_from_the_page_wherever_they_sit() {
        #[derive(Deserialize)]
        struct T<'a> {
            #[serde(borrow)]
            direct: JsonStr<'a>,
            #[serde(borrow, default)]
            opt: Option<JsonStr<'a>>,
            #[serde(borrow)]
            list: Vec<JsonStr<'a>>,
            #[serde(borrow)]
            escaped: Option<JsonStr<'a>>,
        }
        let page = r#"{"direct":"a","opt":"b","list":["c","d"],"escaped":"e\nf"}"#;
        let t: T = serde_json::from_str(page).unwrap();
        let borrowed = |s: &JsonStr| matches!(s.0, Cow::Borrowed(_));
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
