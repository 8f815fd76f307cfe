//! GraphQL nodes → the REST shapes the row builders read, so both paths fill every
//! column by the same code. `_RAW` keeps the node as GitHub sent it (a PR without its
//! nested reviews, which have rows and `_RAW` of their own).

use super::GqlError;
use serde_json::{json, Map, Value};

/// Reviews as (REST shape, raw node).
pub type Reviews = Vec<(String, String)>;

/// One pull request of a page.
pub struct PrNode {
    pub number: i64,
    /// The PR as the REST pulls list shapes it (plus the fields the list lacks).
    pub rest: String,
    pub raw: String,
    /// Its first page of reviews: (REST shape, raw node).
    pub reviews: Reviews,
    /// The cursor after them when the PR has more.
    pub reviews_after: Option<String>,
}

pub struct PullsPage {
    pub nodes: Vec<PrNode>,
    /// What GitHub could not resolve (`null` nodes named by `errors`), for a warning.
    pub skipped: Vec<String>,
    pub end_cursor: Option<String>,
    pub has_next: bool,
    /// `repository` was null: the repository is gone or invisible to the token.
    pub no_repository: bool,
}

fn s(v: &Value, k: &str) -> Value {
    v.get(k).cloned().unwrap_or(Value::Null)
}

fn oid(v: &Value, k: &str) -> Value {
    v.get(k)
        .and_then(|c| c.get("oid"))
        .cloned()
        .unwrap_or(Value::Null)
}

/// REST spells a bot's login `name[bot]`; GraphQL gives `name` on a `Bot`.
fn login(actor: &Value) -> Option<String> {
    let l = actor.get("login")?.as_str()?;
    Some(match actor.get("__typename").and_then(Value::as_str) {
        Some("Bot") if !l.ends_with("[bot]") => format!("{l}[bot]"),
        _ => l.to_string(),
    })
}

/// A REST user object (`login`, `id`) from a GraphQL actor; `null` for a deleted
/// account (GraphQL `author: null`).
fn user(actor: &Value) -> Value {
    match login(actor) {
        Some(l) => {
            json!({ "login": l, "id": actor.get("databaseId").cloned().unwrap_or(Value::Null) })
        }
        None => Value::Null,
    }
}

/// `fullDatabaseId` is a BigInt, sent as a string.
fn big_id(v: &Value, what: &str) -> Result<i64, String> {
    match v.get("fullDatabaseId") {
        Some(Value::String(x)) => x
            .parse()
            .map_err(|_| format!("{what}: fullDatabaseId `{x}` is not an integer")),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("{what}: fullDatabaseId {n} is not an integer")),
        _ => Err(format!("{what}: fullDatabaseId is missing")),
    }
}

pub fn review_rest(r: &Value) -> Result<String, String> {
    let id = big_id(r, "review")?;
    Ok(json!({
        "id": id,
        "user": r.get("author").map(user).unwrap_or(Value::Null),
        "state": s(r, "state"),
        "submitted_at": s(r, "submittedAt"),
        "commit_id": oid(r, "commit"),
        "author_association": s(r, "authorAssociation"),
        "html_url": s(r, "url"),
    })
    .to_string())
}

fn pr_rest(p: &Value) -> Result<String, String> {
    let id = big_id(p, "pull request")?;
    let state = match p.get("state").and_then(Value::as_str) {
        Some("OPEN") => "open",
        Some("CLOSED" | "MERGED") => "closed",
        other => return Err(format!("pull request {id}: unknown state {other:?}")),
    };
    // REST's merge_commit_sha is the merge commit once merged and the test merge commit
    // while open; GraphQL names them apart.
    let merge_sha = match oid(p, "mergeCommit") {
        Value::Null => oid(p, "potentialMergeCommit"),
        v => v,
    };
    let head_repo = p
        .get("headRepository")
        .and_then(|r| r.get("nameWithOwner"))
        .map(|n| json!({ "full_name": n }))
        .unwrap_or(Value::Null);
    let names = |conn: &str, f: &dyn Fn(&Value) -> Option<Value>| -> Vec<Value> {
        p.get(conn)
            .and_then(|c| c.get("nodes"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(f).collect())
            .unwrap_or_default()
    };
    let reviewers = names("reviewRequests", &|n| {
        login(n.get("requestedReviewer")?).map(|l| json!({ "login": l }))
    });
    let labels = names("labels", &|n| Some(json!({ "name": n.get("name")? })));
    Ok(json!({
        "id": id,
        "number": s(p, "number"),
        "state": state,
        "draft": s(p, "isDraft"),
        "title": s(p, "title"),
        "user": p.get("author").map(user).unwrap_or(Value::Null),
        "author_association": s(p, "authorAssociation"),
        "created_at": s(p, "createdAt"),
        "updated_at": s(p, "updatedAt"),
        "closed_at": s(p, "closedAt"),
        "merged_at": s(p, "mergedAt"),
        "merge_commit_sha": merge_sha,
        "base": { "ref": s(p, "baseRefName"), "sha": s(p, "baseRefOid") },
        "head": { "ref": s(p, "headRefName"), "sha": s(p, "headRefOid"), "repo": head_repo },
        "merged_by": p.get("mergedBy").map(user).unwrap_or(Value::Null),
        "additions": s(p, "additions"),
        "deletions": s(p, "deletions"),
        "changed_files": s(p, "changedFiles"),
        "commits": p.get("commits").map(|c| s(c, "totalCount")).unwrap_or(Value::Null),
        "requested_reviewers": reviewers,
        "labels": labels,
        "milestone": p.get("milestone").filter(|m| !m.is_null()).map(|m| json!({ "title": s(m, "title") })).unwrap_or(Value::Null),
        "html_url": s(p, "url"),
    })
    .to_string())
}

/// What the errors say about the node at `path` (and below it).
fn explain(errors: &[GqlError], path: &str) -> String {
    let msgs: Vec<&str> = errors
        .iter()
        .filter(|e| e.where_().starts_with(path))
        .map(|e| e.message.as_str())
        .collect();
    if msgs.is_empty() {
        format!("{path} (null, no error given)")
    } else {
        format!("{path} ({})", msgs.join("; "))
    }
}

/// A connection's `nodes` with `pageInfo`, keeping the good nodes and naming the null ones.
fn connection(
    conn: &Value,
    path: &str,
    errors: &[GqlError],
    skipped: &mut Vec<String>,
) -> (Vec<Value>, Option<String>, bool) {
    let mut out = Vec::new();
    if let Some(nodes) = conn.get("nodes").and_then(Value::as_array) {
        for (i, n) in nodes.iter().enumerate() {
            if n.is_null() {
                skipped.push(explain(errors, &format!("{path}.nodes.{i}")));
            } else {
                out.push(n.clone());
            }
        }
    }
    let info = conn.get("pageInfo");
    let has_next = info
        .and_then(|i| i.get("hasNextPage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let end = info
        .and_then(|i| i.get("endCursor"))
        .and_then(Value::as_str)
        .map(String::from);
    (out, end, has_next)
}

fn reviews_of(
    conn: &Value,
    path: &str,
    errors: &[GqlError],
    skipped: &mut Vec<String>,
) -> Result<(Reviews, Option<String>), String> {
    let (nodes, end, more) = connection(conn, path, errors, skipped);
    let mut out = Vec::with_capacity(nodes.len());
    for r in &nodes {
        out.push((review_rest(r)?, r.to_string()));
    }
    Ok((out, end.filter(|_| more)))
}

/// The `data` of a `Pulls` query.
pub fn parse_pulls(data: &str, errors: &[GqlError]) -> Result<PullsPage, String> {
    let v: Value = serde_json::from_str(data).map_err(|e| e.to_string())?;
    let Some(conn) = v
        .get("repository")
        .filter(|r| !r.is_null())
        .map(|r| s(r, "pullRequests"))
    else {
        return Ok(PullsPage {
            nodes: Vec::new(),
            skipped: Vec::new(),
            end_cursor: None,
            has_next: false,
            no_repository: true,
        });
    };
    let mut skipped = Vec::new();
    let path = "repository.pullRequests";
    let (nodes, end_cursor, has_next) = connection(&conn, path, errors, &mut skipped);
    let mut out = Vec::with_capacity(nodes.len());
    for (i, mut p) in nodes.into_iter().enumerate() {
        let number = p
            .get("number")
            .and_then(Value::as_i64)
            .ok_or("pull request without a number")?;
        let rv = p
            .as_object_mut()
            .and_then(|o: &mut Map<String, Value>| o.remove("reviews"))
            .unwrap_or(Value::Null);
        let (reviews, reviews_after) = reviews_of(
            &rv,
            &format!("{path}.nodes.{i}.reviews"),
            errors,
            &mut skipped,
        )?;
        out.push(PrNode {
            number,
            rest: pr_rest(&p)?,
            raw: p.to_string(),
            reviews,
            reviews_after,
        });
    }
    Ok(PullsPage {
        nodes: out,
        skipped,
        end_cursor,
        has_next,
        no_repository: false,
    })
}

/// The `data` of a `Reviews` query: reviews, the cursor after them when there are more,
/// and what was skipped.
pub fn parse_reviews(
    data: &str,
    errors: &[GqlError],
) -> Result<(Reviews, Option<String>, Vec<String>), String> {
    let v: Value = serde_json::from_str(data).map_err(|e| e.to_string())?;
    let conn = v
        .get("repository")
        .and_then(|r| r.get("pullRequest"))
        .map(|p| s(p, "reviews"))
        .ok_or("the pull request is gone (repository.pullRequest is null)")?;
    let mut skipped = Vec::new();
    let (r, after) = reviews_of(
        &conn,
        "repository.pullRequest.reviews",
        errors,
        &mut skipped,
    )?;
    Ok((r, after, skipped))
}
