//! `POST /graphql`: the queries flowctl sends (`Pulls`, `Reviews`, `Estimate`), answered
//! from the same world as the REST endpoints. Each node is built from the REST object of
//! the same PR or review, so both APIs agree by construction; the fields REST lists lack
//! (additions, deletions, changed files, commits, merged_by) come from [`extras`].
//!
//! Not a GraphQL engine: the operation is recognised by name, the answer has every field
//! flowctl asks for (`Pulls` under each repository's alias `r0`, `r1`...). What GitHub enforces is enforced here too: `first` within 1-100,
//! the 500,000-node limit, and a point cost by GitHub's published rule, charged to a
//! budget of its own (`rateLimit`, `x-ratelimit-resource: graphql`).

use crate::data::{self, PrFacts, World};
use crate::server::{Resp, Shared};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Mutex;

/// GraphQL faults and budget (`Standin::set_graphql_faults`).
#[derive(Debug, Clone, PartialEq)]
pub struct GraphqlFaults {
    /// Points per window (GitHub gives a token 5,000 an hour).
    pub points: u64,
    /// The next N answers null one PR node (the second of the page, or its first
    /// review) and say so in `errors`, with the rest of the data.
    pub partial_next: u32,
    /// The next N answers are HTTP 200 with `errors` and no data (GitHub's answer to a
    /// query that timed out).
    pub no_data_next: u32,
    /// The next N answers are `RATE_LIMITED` errors with `x-ratelimit-remaining: 0`
    /// and a reset `rate_limited_reset_secs` from now.
    pub rate_limited_next: u32,
    pub rate_limited_reset_secs: u64,
    /// Pulls queries asking for more than this many PRs get a 502 (a heavy query timing
    /// out at GitHub's edge).
    pub heavy_over: Option<u32>,
}

impl Default for GraphqlFaults {
    fn default() -> Self {
        GraphqlFaults {
            points: 1_000_000,
            partial_next: 0,
            no_data_next: 0,
            rate_limited_next: 0,
            rate_limited_reset_secs: 1,
            heavy_over: None,
        }
    }
}

pub struct GraphqlState {
    pub faults: Mutex<GraphqlFaults>,
    /// (points used, window reset epoch seconds)
    pub used: Mutex<(u64, i64)>,
}

impl Default for GraphqlState {
    fn default() -> Self {
        GraphqlState {
            faults: Mutex::new(GraphqlFaults::default()),
            used: Mutex::new((0, now() + 3600)),
        }
    }
}

impl GraphqlState {
    /// The `graphql` entry of `GET /rate_limit`.
    pub fn budget(&self) -> String {
        let limit = self.faults.lock().unwrap_or_else(|p| p.into_inner()).points;
        let (used, reset) = *self.used.lock().unwrap_or_else(|p| p.into_inner());
        format!(
            r#"{{"limit":{limit},"used":{used},"remaining":{},"reset":{reset}}}"#,
            limit.saturating_sub(used)
        )
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Fields of a PR that GitHub's REST pulls list leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extras {
    pub additions: i64,
    pub deletions: i64,
    pub changed_files: i64,
    /// Commits in the PR (`commits { totalCount }`).
    pub commits: i64,
    /// Login of who merged it (merged PRs only).
    pub merged_by: Option<String>,
}

/// The extras of PR `k` of repository `ri` (`merged` as the REST object says).
pub fn extras(w: &World, ri: usize, k: usize, merged: bool) -> Extras {
    let id = w.pr_id(ri, k);
    let seed = w.cfg.seed;
    Extras {
        additions: (data::hash(&[seed, id, 40]) % 2000) as i64,
        deletions: (data::hash(&[seed, id, 41]) % 900) as i64,
        changed_files: 1 + (data::hash(&[seed, id, 42]) % 40) as i64,
        commits: 1 + (data::hash(&[seed, id, 44]) % 30) as i64,
        merged_by: merged.then(|| {
            w.user_logins[(data::hash(&[seed, id, 43]) % w.user_logins.len() as u64) as usize]
                .clone()
        }),
    }
}

fn resp(status: StatusCode, body: String, points: (u64, u64, i64)) -> Resp {
    let bytes = Bytes::from(body);
    let mut r = Response::new(Full::new(bytes.clone()));
    *r.status_mut() = status;
    // The body for `compress` and the statistics, as REST answers keep it.
    r.extensions_mut().insert(bytes);
    let h = r.headers_mut();
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = v.parse() {
            h.insert(k, v);
        }
    };
    put("content-type", "application/json; charset=utf-8".into());
    put("x-ratelimit-limit", points.0.to_string());
    put(
        "x-ratelimit-remaining",
        points.0.saturating_sub(points.1).to_string(),
    );
    put("x-ratelimit-used", points.1.to_string());
    put("x-ratelimit-reset", points.2.to_string());
    put("x-ratelimit-resource", "graphql".into());
    r
}

fn errors_only(msg: &str, kind: Option<&str>) -> String {
    let mut e = json!({ "message": msg });
    if let Some(k) = kind {
        e["type"] = json!(k);
    }
    json!({ "errors": [e] }).to_string()
}

/// Points and nodes by GitHub's rule for a `Pulls` query of these pages: per
/// repository one request for its PR connection plus one per PR for each of the three
/// nested connections that fetch nodes.
fn pulls_cost(firsts: &[u64]) -> (u64, u64) {
    let requests: u64 = firsts.iter().map(|f| 1 + 3 * f).sum();
    let nodes: u64 = firsts.iter().map(|f| f + f * 300).sum();
    (((requests + 50) / 100).max(1), nodes)
}

/// The repositories of a `Pulls` query: (alias, owner, name, first, after) of each
/// `r{i}: repository(owner: $owner{i}, ...)`.
fn pull_asks(vars: &Value) -> Vec<(String, String, String, u64, Option<String>)> {
    (0..)
        .map_while(|i| {
            let owner = vars.get(format!("owner{i}"))?.as_str()?.to_string();
            let get = |k: &str| vars.get(format!("{k}{i}"));
            Some((
                format!("r{i}"),
                owner,
                get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                get("first").and_then(Value::as_u64).unwrap_or(0),
                get("after").and_then(Value::as_str).map(String::from),
            ))
        })
        .collect()
}

pub async fn serve(sh: &Shared, req: Request<Incoming>) -> Resp {
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let st = &sh.graphql;
    let faults = st.faults.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (used, reset) = {
        let mut u = st.used.lock().unwrap_or_else(|p| p.into_inner());
        if now() >= u.1 {
            *u = (0, now() + 3600);
        }
        *u
    };
    let limit = faults.points;
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return resp(
                StatusCode::BAD_REQUEST,
                errors_only(&format!("Problems parsing JSON: {e}"), None),
                (limit, used, reset),
            )
        }
    };
    let doc = v.get("query").and_then(Value::as_str).unwrap_or("");
    let vars = v.get("variables").cloned().unwrap_or(Value::Null);
    let op = ["Pulls", "Reviews", "Estimate"]
        .into_iter()
        .find(|o| doc.trim_start().starts_with(&format!("query {o}(")));
    let Some(op) = op else {
        return resp(
            StatusCode::OK,
            errors_only(
                "The stand-in answers only flowctl's queries (Pulls, Reviews, Estimate)",
                None,
            ),
            (limit, used, reset),
        );
    };
    // Fault counters, in the order a client meets them.
    {
        let mut f = st.faults.lock().unwrap_or_else(|p| p.into_inner());
        if f.rate_limited_next > 0 {
            f.rate_limited_next -= 1;
            let at = now() + f.rate_limited_reset_secs as i64;
            return resp(
                StatusCode::OK,
                errors_only(
                    "API rate limit exceeded for user ID 1.",
                    Some("RATE_LIMITED"),
                ),
                (limit, limit, at),
            );
        }
        if f.no_data_next > 0 {
            f.no_data_next -= 1;
            return resp(
                StatusCode::OK,
                errors_only("Something went wrong while executing your query. This may be the result of a timeout, or it could be a GitHub bug. Please include `0000:0000:0000000:0000000:00000000` when reporting this issue.", None),
                (limit, used, reset),
            );
        }
    }
    let asks = pull_asks(&vars);
    let (cost, nodes) = match op {
        "Pulls" => {
            if asks.is_empty() {
                return resp(
                    StatusCode::OK,
                    errors_only(
                        "Pulls asks for no repository (variables owner0, name0, first0, after0...)",
                        None,
                    ),
                    (limit, used, reset),
                );
            }
            if let Some(first) = asks.iter().map(|a| a.3).find(|f| !(1..=100).contains(f)) {
                return resp(
                    StatusCode::OK,
                    errors_only(&format!("Requesting {first} records on the `pullRequests` connection is outside the limit of 1 to 100 records."), Some("EXCESSIVE_PAGINATION")),
                    (limit, used, reset),
                );
            }
            let total: u64 = asks.iter().map(|a| a.3).sum();
            if faults.heavy_over.is_some_and(|h| total > u64::from(h)) {
                return resp(
                    StatusCode::BAD_GATEWAY,
                    r#"{"message":"Server Error"}"#.into(),
                    (limit, used, reset),
                );
            }
            pulls_cost(&asks.iter().map(|a| a.3).collect::<Vec<_>>())
        }
        "Reviews" => (1, 100),
        _ => (2, 300),
    };
    if nodes > 500_000 {
        return resp(
            StatusCode::OK,
            errors_only(&format!("This query requests up to {nodes} possible nodes which exceeds the maximum allowed, 500,000."), Some("MAX_NODE_LIMIT_EXCEEDED")),
            (limit, used, reset),
        );
    }
    if used + cost > limit {
        return resp(
            StatusCode::OK,
            errors_only(
                "API rate limit exceeded for user ID 1.",
                Some("RATE_LIMITED"),
            ),
            (limit, used, reset),
        );
    }
    let used = {
        let mut u = st.used.lock().unwrap_or_else(|p| p.into_inner());
        u.0 += cost;
        u.0
    };
    let rate = json!({ "cost": cost, "remaining": limit - used, "resetAt": data::ts(reset), "limit": limit });
    let owner = vars.get("owner").and_then(Value::as_str).unwrap_or("");
    let name = vars.get("name").and_then(Value::as_str).unwrap_or("");
    let after = vars.get("after").and_then(Value::as_str);
    let offset = after
        .and_then(|a| a.strip_prefix("cursor:"))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let mut errors = Vec::new();
    let data = match op {
        "Pulls" => {
            let mut data = json!({ "rateLimit": rate });
            let mut partial_left = {
                let mut f = st.faults.lock().unwrap_or_else(|p| p.into_inner());
                let n = f.partial_next > 0;
                if n {
                    f.partial_next -= 1;
                }
                n
            };
            for (alias, owner, name, first, after) in &asks {
                let offset = after
                    .as_deref()
                    .and_then(|a| a.strip_prefix("cursor:"))
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(0);
                data[alias.as_str()] = match sh.world.repo_index(owner, name) {
                    None => {
                        errors.push(not_found(alias, owner, name));
                        Value::Null
                    }
                    Some(ri) => {
                        let mut conn = pulls_page(sh, ri, offset, *first as usize);
                        if partial_left && partial(&mut conn, alias, &mut errors) {
                            partial_left = false;
                        }
                        json!({ "pullRequests": conn })
                    }
                };
            }
            data
        }
        "Reviews" => {
            let number = vars.get("number").and_then(Value::as_u64).unwrap_or(0) as usize;
            let n = sh.world.cfg.prs_per_repo;
            match sh.world.repo_index(owner, name) {
                Some(ri) if (1..=n).contains(&number) => {
                    let reviews = reviews_page(&sh.world, ri, n - number, offset);
                    json!({ "rateLimit": rate, "repository": { "pullRequest": { "reviews": reviews } } })
                }
                Some(_) => {
                    errors.push(json!({ "type": "NOT_FOUND", "path": ["repository", "pullRequest"], "message": format!("Could not resolve to a PullRequest with the number of {number}.") }));
                    json!({ "rateLimit": rate, "repository": { "pullRequest": null } })
                }
                None => {
                    errors.push(not_found("repository", owner, name));
                    json!({ "rateLimit": rate, "repository": null })
                }
            }
        }
        _ => estimate(sh, owner, offset, rate, &mut errors),
    };
    let mut out = json!({ "data": data });
    if !errors.is_empty() {
        out["errors"] = Value::Array(errors);
    }
    resp(StatusCode::OK, out.to_string(), (limit, used, reset))
}

fn not_found(alias: &str, owner: &str, name: &str) -> Value {
    json!({ "type": "NOT_FOUND", "path": [alias], "locations": [{ "line": 3, "column": 3 }],
            "message": format!("Could not resolve to a Repository with the name '{owner}/{name}'.") })
}

/// Null the second PR of the page (or, on a one-PR page, its first review), as GitHub
/// does for a node it could not load, and say so in `errors`. Whether it did.
fn partial(conn: &mut Value, alias: &str, errors: &mut Vec<Value>) -> bool {
    let Some(nodes) = conn.get_mut("nodes").and_then(Value::as_array_mut) else {
        return false;
    };
    if nodes.len() > 1 {
        nodes[1] = Value::Null;
        errors.push(
            json!({ "type": "INTERNAL", "path": [alias, "pullRequests", "nodes", 1],
                            "message": "Something went wrong while loading this pull request." }),
        );
        true
    } else if let Some(r) = nodes
        .first_mut()
        .and_then(|p| p.pointer_mut("/reviews/nodes/0"))
    {
        *r = Value::Null;
        errors.push(json!({ "type": "INTERNAL", "path": [alias, "pullRequests", "nodes", 0, "reviews", "nodes", 0],
                            "message": "Something went wrong while loading this review." }));
        true
    } else {
        false
    }
}

fn actor(u: &Value) -> Value {
    if u.is_null() {
        return Value::Null;
    }
    let login = u.get("login").and_then(Value::as_str).unwrap_or("");
    match u.get("type").and_then(Value::as_str) {
        Some("Bot") => {
            json!({ "__typename": "Bot", "login": login.trim_end_matches("[bot]"), "databaseId": u["id"] })
        }
        _ => json!({ "__typename": "User", "login": login, "databaseId": u["id"] }),
    }
}

fn review_node(rest: &Value) -> Value {
    json!({
        "fullDatabaseId": rest["id"].to_string(),
        "author": actor(&rest["user"]),
        "state": rest["state"],
        "submittedAt": rest.get("submitted_at").cloned().unwrap_or(Value::Null),
        "commit": rest.get("commit_id").filter(|c| !c.is_null()).map(|c| json!({ "oid": c })),
        "authorAssociation": rest["author_association"],
        "url": rest["html_url"],
    })
}

/// A page of 100 reviews of PR `k`, from `offset`.
fn reviews_page(w: &World, ri: usize, k: usize, offset: usize) -> Value {
    let n = w.cfg.reviews_per_pr;
    let mut nodes = Vec::new();
    for r in (0..n).skip(offset).take(100) {
        let mut s = String::new();
        data::render_review(w, ri, k, r, &mut s);
        if let Ok(v) = serde_json::from_str::<Value>(&s) {
            nodes.push(review_node(&v));
        }
    }
    let end = offset + nodes.len();
    json!({
        "pageInfo": { "hasNextPage": end < n, "endCursor": format!("cursor:{end}") },
        "nodes": nodes,
    })
}

fn pr_node(w: &World, ri: usize, f: PrFacts) -> Option<Value> {
    let mut s = String::new();
    data::render_pr(w, ri, f, &mut s);
    let p: Value = serde_json::from_str(&s).ok()?;
    let merged = !p["merged_at"].is_null();
    let open = p["state"] == "open";
    let x = extras(w, ri, f.k, merged);
    let sha = p.get("merge_commit_sha").filter(|v| !v.is_null());
    let names = |list: &Value, key: &str| -> Vec<Value> {
        list.as_array()
            .map(|a| a.iter().map(|i| json!({ key: i[key] })).collect())
            .unwrap_or_default()
    };
    Some(json!({
        "fullDatabaseId": p["id"].to_string(),
        "number": p["number"],
        "state": if open { "OPEN" } else if merged { "MERGED" } else { "CLOSED" },
        "isDraft": p["draft"],
        "title": p["title"],
        "author": actor(&p["user"]),
        "authorAssociation": p["author_association"],
        "createdAt": p["created_at"],
        "updatedAt": p["updated_at"],
        "closedAt": p["closed_at"],
        "mergedAt": p["merged_at"],
        // GitHub's GraphQL names the merge commit (merged) and the test merge commit
        // (open); a closed, unmerged PR has neither.
        "mergeCommit": sha.filter(|_| merged).map(|s| json!({ "oid": s })),
        "potentialMergeCommit": sha.filter(|_| open).map(|s| json!({ "oid": s })),
        "baseRefName": p["base"]["ref"],
        "baseRefOid": p["base"]["sha"],
        "headRefName": p["head"]["ref"],
        "headRefOid": p["head"]["sha"],
        "headRepository": p["head"]["repo"].get("full_name").map(|n| json!({ "nameWithOwner": n })),
        "mergedBy": x.merged_by.map(|l| json!({ "__typename": "User", "login": l })),
        "additions": x.additions,
        "deletions": x.deletions,
        "changedFiles": x.changed_files,
        "commits": { "totalCount": x.commits },
        "reviewRequests": { "nodes": p["requested_reviewers"].as_array().map(|a| a.iter().map(|u| json!({ "requestedReviewer": actor(u) })).collect::<Vec<_>>()).unwrap_or_default() },
        "labels": { "nodes": names(&p["labels"], "name") },
        "milestone": p["milestone"].get("title").map(|t| json!({ "title": t })),
        "url": p["html_url"],
        "reviews": reviews_page(w, ri, f.k, 0),
    }))
}

fn pulls_page(sh: &Shared, ri: usize, offset: usize, first: usize) -> Value {
    let facts: Vec<PrFacts> = {
        let prs = sh.prs.lock().unwrap_or_else(|p| p.into_inner());
        let rp = &prs[ri];
        rp.order
            .iter()
            .skip(offset)
            .take(first)
            .map(|k| PrFacts {
                k: *k as usize,
                updated: rp.updated[*k as usize],
                rev: rp.rev[*k as usize],
            })
            .collect()
    };
    let nodes: Vec<Value> = facts
        .iter()
        .filter_map(|f| pr_node(&sh.world, ri, *f))
        .collect();
    let end = offset + nodes.len();
    json!({
        "pageInfo": { "hasNextPage": end < sh.world.cfg.prs_per_repo, "endCursor": format!("cursor:{end}") },
        "nodes": nodes,
    })
}

fn estimate(
    sh: &Shared,
    owner: &str,
    offset: usize,
    rate: Value,
    errors: &mut Vec<Value>,
) -> Value {
    let w = &sh.world;
    let Some(o) = (0..w.cfg.orgs).find(|i| data::org_name(*i).eq_ignore_ascii_case(owner)) else {
        errors.push(json!({ "type": "NOT_FOUND", "path": ["repositoryOwner"], "message": format!("Could not resolve to a RepositoryOwner with the login of '{owner}'.") }));
        return json!({ "rateLimit": rate, "repositoryOwner": null });
    };
    let repos: Vec<&data::RepoData> = w.repos.iter().filter(|r| r.org == o).collect();
    let nodes: Vec<Value> = repos
        .iter()
        .skip(offset)
        .take(100)
        .map(|r| {
            json!({ "name": r.name, "isArchived": r.archived, "isFork": r.fork,
                    "pullRequests": { "totalCount": w.cfg.prs_per_repo },
                    "defaultBranchRef": { "target": { "history": { "totalCount": w.cfg.commits_per_repo } } } })
        })
        .collect();
    let end = offset + nodes.len();
    json!({ "rateLimit": rate, "repositoryOwner": { "repositories": {
        "pageInfo": { "hasNextPage": end < repos.len(), "endCursor": format!("cursor:{end}") },
        "nodes": nodes } } })
}
