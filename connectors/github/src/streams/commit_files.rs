//! The commit_file stream: each listed commit's files (one request per commit) into
//! COMMIT_FILE rows.

use super::commits::CommitInner;
use crate::config::StreamKind::{self, *};
use crate::pager::{Next, Pager};
use crate::rows::{
    append_key, table_rows, BatchCtx, JsonStr, Meta, TableRows, MAX_BATCH_TEXT_BYTES,
};
use crate::run::{OrgTables, PageRows, ReadError, Run};
use crate::state::RepoRef;
use arrow::array::{Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::SchemaRef;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The single-commit object: its files are kept raw and parsed one by one.
#[derive(Deserialize)]
pub struct CommitFull<'a> {
    #[serde(borrow)]
    pub sha: JsonStr<'a>,
    #[serde(borrow)]
    commit: CommitInner<'a>,
    #[serde(borrow, default)]
    pub files: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct FileItem<'a> {
    #[serde(borrow)]
    filename: JsonStr<'a>,
    #[serde(borrow)]
    status: JsonStr<'a>,
    #[serde(default)]
    additions: i64,
    #[serde(default)]
    deletions: i64,
    #[serde(default)]
    changes: i64,
    #[serde(borrow, default)]
    previous_filename: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    sha: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    patch: Option<JsonStr<'a>>,
}

/// The COMMIT_FILE builders.
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
    StreamKind::CommitFile,
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
    /// Append every file of one commit. Parses all files first so a bad one appends nothing.
    pub fn append_commit(
        &mut self,
        org: &str,
        repo: &str,
        c: &CommitFull<'_>,
        ctx: &BatchCtx,
    ) -> Result<usize, String> {
        let files = c.parse_files(ctx)?;
        Ok(self.append_files(org, repo, c, files, ctx))
    }

    /// Append a commit's files from [`CommitFull::parse_files`] (appending cannot fail).
    fn append_files(
        &mut self,
        org: &str,
        repo: &str,
        c: &CommitFull<'_>,
        files: CommitFiles<'_>,
        ctx: &BatchCtx,
    ) -> usize {
        let CommitFiles { date, files } = files;
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
        files.len()
    }
}

/// A commit's files, parsed, with the `_RAW` text each keeps.
struct CommitFiles<'a> {
    date: Option<i64>,
    files: Vec<(FileItem<'a>, Option<String>)>,
}

impl<'a> CommitFull<'a> {
    /// Every file parsed, so that a bad one fails the commit before anything is appended.
    fn parse_files(&self, ctx: &BatchCtx) -> Result<CommitFiles<'a>, String> {
        let date = self.commit.committer_date()?;
        let mut files = Vec::with_capacity(self.files.len());
        for raw in &self.files {
            let f: FileItem = serde_json::from_str(raw.get())
                .map_err(|e| format!("commit {} file: {e}", &*self.sha))?;
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
        Ok(CommitFiles { date, files })
    }
}

impl Run<'_> {
    /// The files of each commit in `targets` (sha, committer date).
    pub(crate) async fn files(
        &self,
        tables: &OrgTables,
        r: &RepoRef,
        targets: &[(String, Option<i64>)],
    ) -> Result<(), ReadError> {
        let org = tables.org.as_str();
        for (sha, _) in targets {
            let url = self.url(&["repos", org, &r.name, "commits", sha], "");
            let mut pages = Pager::new(self, org, "commit_file", url).not_found_fails();
            while let Next::Page(()) = pages
                .next(CommitFile, |body| {
                    let c: CommitFull = serde_json::from_slice(body).map_err(|e| e.to_string())?;
                    // Parsed before a batch is cut: a refused body then leaves no cut batch
                    // behind, which would be lost with it.
                    let files = c.parse_files(&self.ctx)?;
                    let mut rows = tables.commit_files.lock();
                    let mut page = PageRows::default();
                    // Cut before a commit that would overflow the batch, so batches stay
                    // within batch_rows unless one commit alone has more files.
                    let limit = self.cfg.batch_rows;
                    if rows.rows() > 0 && rows.rows() + c.files.len() > limit {
                        page.fatal = self.cut_batch(&mut *rows, &mut page.full).err();
                    }
                    page.rows = rows.append_files(org, &r.name, &c, files, &self.ctx) as u64;
                    let full_now =
                        rows.rows() >= limit || rows.text_bytes() >= MAX_BATCH_TEXT_BYTES;
                    if page.fatal.is_none() && full_now {
                        page.fatal = self.cut_batch(&mut *rows, &mut page.full).err();
                    }
                    Ok(page)
                })
                .await?
            {}
        }
        Ok(())
    }
}
