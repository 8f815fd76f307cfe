//! Explicit Arrow schemas of the five tables, with column docs and `_ROW_KEY` recipes.
//! Column order here is the order the row builders in `streams/` append in.

use crate::config::StreamKind;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use flowctl_core::meta::{self, utc_timestamp};
use flowctl_core::StreamInfo;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Column kinds used by the tables.
#[derive(Clone, Copy)]
enum T {
    I64,
    Str,
    Bool,
    Ts,
    List,
}

/// (name, kind, nullable, doc)
type Col = (&'static str, T, bool, &'static str);

const PULL_REQUEST: &[Col] = &[
    ("ID", T::I64, false, "GitHub's global id of the pull request."),
    ("NUMBER", T::I64, false, "Number of the pull request within its repository."),
    ("STATE", T::Str, false, "open or closed (a merged PR is closed with MERGED_AT set)."),
    ("DRAFT", T::Bool, true, "Whether the pull request is a draft."),
    ("TITLE", T::Str, false, "Title."),
    ("USER_LOGIN", T::Str, true, "Login of the author (null for deleted users)."),
    ("USER_ID", T::I64, true, "Id of the author."),
    ("AUTHOR_ASSOCIATION", T::Str, true, "Author's relation to the repository (MEMBER, CONTRIBUTOR...)."),
    ("CREATED_AT", T::Ts, false, "When the pull request was opened (UTC)."),
    ("UPDATED_AT", T::Ts, false, "Last update (UTC); the incremental cursor."),
    ("CLOSED_AT", T::Ts, true, "When it was closed (UTC), null while open."),
    ("MERGED_AT", T::Ts, true, "When it was merged (UTC), null if not merged."),
    ("MERGE_COMMIT_SHA", T::Str, true, "SHA of the merge (or test-merge) commit."),
    ("BASE_REF", T::Str, false, "Target branch."),
    ("BASE_SHA", T::Str, false, "Target branch SHA when the PR was last updated."),
    ("HEAD_REF", T::Str, false, "Source branch."),
    ("HEAD_SHA", T::Str, false, "Head commit SHA."),
    ("HEAD_REPO_FULL_NAME", T::Str, true, "owner/name of the head repository (null when a fork was deleted)."),
    ("MERGED_BY_LOGIN", T::Str, true, "Who merged it. Filled with api: graphql; null over REST (the list endpoint does not send it)."),
    ("ADDITIONS", T::I64, true, "Lines added. Filled with api: graphql; null over REST (the list endpoint does not send it)."),
    ("DELETIONS", T::I64, true, "Lines deleted. Filled with api: graphql; null over REST (the list endpoint does not send it)."),
    ("CHANGED_FILES", T::I64, true, "Files changed. Filled with api: graphql; null over REST (the list endpoint does not send it)."),
    ("COMMITS", T::I64, true, "Commits in the pull request. Filled with api: graphql; null over REST (the list endpoint does not send it)."),
    ("REQUESTED_REVIEWERS", T::List, true, "Logins of users whose review is requested."),
    ("LABELS", T::List, true, "Label names."),
    ("MILESTONE_TITLE", T::Str, true, "Milestone title, null without a milestone."),
    ("HTML_URL", T::Str, false, "Web URL of the pull request."),
    ("REPO_NAME", T::Str, false, "Repository name (without owner)."),
    ("ORG", T::Str, false, "Organisation (repository owner)."),
];

const PULL_REQUEST_REVIEW: &[Col] = &[
    ("ID", T::I64, false, "GitHub's id of the review."),
    (
        "PULL_REQUEST_ID",
        T::I64,
        false,
        "ID of the reviewed pull request.",
    ),
    (
        "PULL_REQUEST_NUMBER",
        T::I64,
        false,
        "Number of the reviewed pull request.",
    ),
    (
        "USER_LOGIN",
        T::Str,
        true,
        "Reviewer login (null for deleted users, shown as ghost).",
    ),
    ("USER_ID", T::I64, true, "Reviewer id."),
    (
        "STATE",
        T::Str,
        false,
        "APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED or PENDING.",
    ),
    (
        "SUBMITTED_AT",
        T::Ts,
        true,
        "When the review was submitted (UTC); null while pending.",
    ),
    (
        "COMMIT_ID",
        T::Str,
        true,
        "Head SHA the review was made on.",
    ),
    (
        "AUTHOR_ASSOCIATION",
        T::Str,
        true,
        "Reviewer's relation to the repository.",
    ),
    ("HTML_URL", T::Str, true, "Web URL of the review."),
    (
        "REPO_NAME",
        T::Str,
        false,
        "Repository name (without owner).",
    ),
    ("ORG", T::Str, false, "Organisation (repository owner)."),
];

const COMMIT: &[Col] = &[
    ("SHA", T::Str, false, "Commit SHA."),
    ("AUTHOR_NAME", T::Str, true, "Git author name."),
    ("AUTHOR_EMAIL", T::Str, true, "Git author email."),
    ("AUTHOR_DATE", T::Ts, true, "Git author date (UTC)."),
    ("COMMITTER_NAME", T::Str, true, "Git committer name."),
    ("COMMITTER_EMAIL", T::Str, true, "Git committer email."),
    (
        "COMMITTER_DATE",
        T::Ts,
        true,
        "Git committer date (UTC); the incremental cursor.",
    ),
    (
        "AUTHOR_LOGIN",
        T::Str,
        true,
        "GitHub login of the author, null when the email maps to no account.",
    ),
    (
        "COMMITTER_LOGIN",
        T::Str,
        true,
        "GitHub login of the committer.",
    ),
    ("MESSAGE", T::Str, false, "Commit message."),
    (
        "PARENT_SHAS",
        T::List,
        true,
        "Parent SHAs (two or more for merges).",
    ),
    ("HTML_URL", T::Str, true, "Web URL of the commit."),
    (
        "REPO_NAME",
        T::Str,
        false,
        "Repository name (without owner).",
    ),
    ("ORG", T::Str, false, "Organisation (repository owner)."),
];

const COMMIT_FILE: &[Col] = &[
    ("COMMIT_SHA", T::Str, false, "SHA of the commit."),
    ("FILENAME", T::Str, false, "Path of the file."),
    (
        "STATUS",
        T::Str,
        false,
        "added, removed, modified, renamed, copied, changed or unchanged.",
    ),
    ("ADDITIONS", T::I64, false, "Lines added."),
    ("DELETIONS", T::I64, false, "Lines deleted."),
    ("CHANGES", T::I64, false, "Lines changed."),
    (
        "PREVIOUS_FILENAME",
        T::Str,
        true,
        "Former path of a renamed file.",
    ),
    (
        "BLOB_SHA",
        T::Str,
        true,
        "Blob SHA of the file after the commit.",
    ),
    (
        "PATCH",
        T::Str,
        true,
        "Diff text; null unless include_patch is on (and GitHub sent one).",
    ),
    (
        "COMMITTER_DATE",
        T::Ts,
        true,
        "Committer date of the commit (UTC).",
    ),
    (
        "REPO_NAME",
        T::Str,
        false,
        "Repository name (without owner).",
    ),
    ("ORG", T::Str, false, "Organisation (repository owner)."),
];

const REPOSITORY: &[Col] = &[
    ("ID", T::I64, false, "GitHub's id of the repository."),
    ("NAME", T::Str, false, "Repository name."),
    ("FULL_NAME", T::Str, false, "owner/name."),
    ("OWNER_LOGIN", T::Str, true, "Owner login."),
    (
        "PRIVATE",
        T::Bool,
        true,
        "Whether the repository is private.",
    ),
    ("FORK", T::Bool, true, "Whether it is a fork."),
    ("ARCHIVED", T::Bool, true, "Whether it is archived."),
    ("DEFAULT_BRANCH", T::Str, true, "Default branch."),
    ("DESCRIPTION", T::Str, true, "Description."),
    ("LANGUAGE", T::Str, true, "Main language."),
    ("VISIBILITY", T::Str, true, "public, private or internal."),
    ("TOPICS", T::List, true, "Topics."),
    ("CREATED_AT", T::Ts, true, "Creation time (UTC)."),
    (
        "UPDATED_AT",
        T::Ts,
        true,
        "Last update of the repository object (UTC).",
    ),
    ("PUSHED_AT", T::Ts, true, "Last push (UTC)."),
    ("STARGAZERS_COUNT", T::I64, true, "Stars."),
    ("FORKS_COUNT", T::I64, true, "Forks."),
    (
        "OPEN_ISSUES_COUNT",
        T::I64,
        true,
        "Open issues and pull requests.",
    ),
    ("HTML_URL", T::Str, true, "Web URL."),
    (
        "ORG",
        T::Str,
        false,
        "Organisation the repository was listed under.",
    ),
];

const DEPLOYMENT: &[Col] = &[
    ("ID", T::I64, false, "GitHub's id of the deployment."),
    ("ORG", T::Str, false, "Organisation (repository owner)."),
    ("REPO_NAME", T::Str, false, "Repository name (without owner)."),
    ("SHA", T::Str, false, "Commit SHA that was deployed."),
    ("REF", T::Str, true, "Branch, tag or SHA the deployment was requested for."),
    ("TASK", T::Str, true, "Task name (`deploy`, `deploy:migrations`...)."),
    ("ENVIRONMENT", T::Str, true, "Target environment (e.g. production, staging)."),
    ("DESCRIPTION", T::Str, true, "Description given when the deployment was created."),
    ("CREATOR_LOGIN", T::Str, true, "Login of who created the deployment (null for deleted users)."),
    ("CREATED_AT", T::Ts, false, "When the deployment was created (UTC); the incremental cursor."),
    ("UPDATED_AT", T::Ts, false, "Last update of the deployment object (UTC)."),
    ("STATUS_STATE", T::Str, true, "State of the latest deployment status: success, failure, error, inactive, in_progress, queued or pending; null without any status."),
    ("STATUS_CREATED_AT", T::Ts, true, "When the latest status was created (UTC): for `success`, when the deployment went live."),
    ("STATUS_ENVIRONMENT_URL", T::Str, true, "URL of the deployed environment from the latest status; null when the status has none (GitHub sends an empty string then)."),
];

fn columns(kind: StreamKind) -> &'static [Col] {
    match kind {
        StreamKind::PullRequest => PULL_REQUEST,
        StreamKind::PullRequestReview => PULL_REQUEST_REVIEW,
        StreamKind::Commit => COMMIT,
        StreamKind::CommitFile => COMMIT_FILE,
        StreamKind::Repository => REPOSITORY,
        StreamKind::Deployment => DEPLOYMENT,
    }
}

fn data_type(t: T) -> DataType {
    match t {
        T::I64 => DataType::Int64,
        T::Str => DataType::Utf8,
        T::Bool => DataType::Boolean,
        T::Ts => utc_timestamp(),
        T::List => DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
    }
}

/// The table's schema: data columns, metadata columns, then `_RAW` when enabled.
pub fn table_schema(kind: StreamKind, include_raw: bool) -> SchemaRef {
    let mut fields: Vec<Field> = columns(kind)
        .iter()
        .map(|(n, t, null, _)| Field::new(*n, data_type(*t), *null))
        .collect();
    fields.extend(meta::metadata_fields());
    if include_raw {
        fields.push(Field::new(meta::RAW, DataType::Utf8, true));
    }
    Arc::new(Schema::new(fields))
}

/// The columns the source sends a batch of `kind` with: the table's without the run's
/// constant columns, which the engine adds (`flowctl_core::meta::stage_batch`).
pub fn sent_schema(kind: StreamKind, include_raw: bool) -> SchemaRef {
    let constant = [meta::INGESTED_AT, meta::BATCH_ID, meta::SOURCE_ORG];
    let table = table_schema(kind, include_raw);
    let fields: Vec<Field> = table
        .fields()
        .iter()
        .filter(|f| !constant.contains(&f.name().as_str()))
        .map(|f| f.as_ref().clone())
        .collect();
    Arc::new(Schema::new(fields))
}

/// The `_ROW_KEY` recipe of a table, as documented.
pub fn key_recipe(kind: StreamKind) -> &'static str {
    match kind {
        StreamKind::PullRequest | StreamKind::PullRequestReview | StreamKind::Deployment => {
            "md5(org|repo|id)"
        }
        StreamKind::Commit => "md5(org|repo|sha)",
        StreamKind::CommitFile => "md5(org|repo|sha|filename)",
        StreamKind::Repository => "md5(org|repo|repo_id)",
    }
}

fn description(kind: StreamKind) -> &'static str {
    match kind {
        StreamKind::PullRequest => "Pull requests (GET /repos/{owner}/{repo}/pulls?state=all).",
        StreamKind::PullRequestReview => {
            "Pull request reviews (GET /repos/{owner}/{repo}/pulls/{number}/reviews)."
        }
        StreamKind::Commit => "Commits of the default branch (GET /repos/{owner}/{repo}/commits).",
        StreamKind::CommitFile => {
            "Files changed per commit (GET /repos/{owner}/{repo}/commits/{sha})."
        }
        StreamKind::Repository => "Repositories of the organisation (GET /orgs/{org}/repos).",
        StreamKind::Deployment => {
            "Deployments with their latest status (GET /repos/{owner}/{repo}/deployments and .../deployments/{id}/statuses)."
        }
    }
}

fn cursor_field(kind: StreamKind) -> Option<&'static str> {
    match kind {
        StreamKind::PullRequest | StreamKind::Repository => Some("UPDATED_AT"),
        StreamKind::PullRequestReview => Some("SUBMITTED_AT"),
        StreamKind::Commit | StreamKind::CommitFile => Some("COMMITTER_DATE"),
        StreamKind::Deployment => Some("CREATED_AT"),
    }
}

/// Everything the engine and docs need about one stream.
pub fn stream_info(kind: StreamKind, include_raw: bool) -> StreamInfo {
    let mut docs: BTreeMap<String, String> = columns(kind)
        .iter()
        .map(|(n, _, _, d)| (n.to_string(), d.to_string()))
        .collect();
    docs.insert(
        meta::ROW_KEY.into(),
        format!("Merge key: lowercase hex {}.", key_recipe(kind)),
    );
    docs.insert(
        meta::INGESTED_AT.into(),
        "When the run that wrote the row started (UTC).".into(),
    );
    docs.insert(
        meta::SOURCE_ORG.into(),
        "Organisation the row was read from.".into(),
    );
    docs.insert(
        meta::BATCH_ID.into(),
        "UUID of the run that wrote the row.".into(),
    );
    if include_raw {
        docs.insert(
            meta::RAW.into(),
            "The full JSON object as GitHub sent it.".into(),
        );
    }
    StreamInfo {
        name: kind.name().into(),
        table: kind.table().into(),
        schema: table_schema(kind, include_raw),
        key_recipe: key_recipe(kind).into(),
        cursor_field: cursor_field(kind).map(String::from),
        description: description(kind).into(),
        column_docs: docs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_is_documented_and_upper_snake_case() {
        for k in StreamKind::ALL {
            let info = stream_info(k, true);
            let names: Vec<&str> = info
                .schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            println!("{}: {}", info.table, names.join(", "));
            for n in &names {
                assert!(info.column_docs.contains_key(*n), "{} {n}", info.table);
                assert!(
                    n.chars()
                        .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()),
                    "{n}"
                );
            }
            assert_eq!(names.last(), Some(&"_RAW"));
            assert!(!stream_info(k, false)
                .schema
                .fields()
                .iter()
                .any(|f| f.name() == "_RAW"));
        }
    }
}
