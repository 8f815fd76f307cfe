//! The github source against recorded real api.github.com answers (PyGithub's
//! `tests/ReplayData`, github3.py's `tests/cassettes`, GitHub's OpenAPI description),
//! replayed over HTTP on 127.0.0.1 by `replay::ReplayServer`. Every table is compared,
//! column by column, with what an independent reading of the served JSON says it must
//! hold: after a first run, and after upstream changed.
//!
//! `second_run_lands_every_commit_of_a_branch_merged_with_older_dates` and
//! `second_run_keeps_a_newly_archived_repository_row_current` state behaviour the
//! commit and repository streams must have (every commit reachable from the default
//! branch lands once; REPOSITORY rows stay current when a repository is archived).

use crate::common;
use crate::replay;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type, TimestampMicrosecondType};
use common::run_source;
use flowctl_core::meta::row_key;
use flowctl_core::progress::{ProgressEvent, ProgressSink};
use flowctl_core::{ReadOutcome, StreamResult, TaggedBatch};
use flowctl_github::{GithubConfig, StreamKind};
use replay::{fixture, list_item, sha, ReplayServer, World, BIG_COMMIT_AT, EMPTY, MAIN, OLD};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

const ALL: [&str; 6] = [
    "pull_request",
    "pull_request_review",
    "commit",
    "commit_file",
    "repository",
    "deployment",
];
const BATCH_ID: &str = "00000000-0000-4000-8000-000000000001";

/// table → `_ROW_KEY` → column → value (timestamps as µs, lists as arrays).
type Tables = BTreeMap<String, BTreeMap<String, Map<String, Value>>>;

#[derive(Default)]
struct Warnings(Mutex<Vec<String>>);

impl ProgressSink for Warnings {
    fn event(&self, e: ProgressEvent) {
        if let ProgressEvent::Warning { message, .. } = e {
            self.0.lock().unwrap().push(message);
        }
    }
}

struct Run {
    outcome: ReadOutcome,
    batches: Vec<TaggedBatch>,
    warnings: Vec<String>,
}

impl Run {
    fn states(&self) -> BTreeMap<String, Value> {
        self.outcome
            .streams
            .iter()
            .map(|(k, r)| match r {
                StreamResult::Done { state } => (k.clone(), state.clone()),
                StreamResult::Failed { error } => panic!("stream {k} failed: {error}"),
            })
            .collect()
    }

    fn tables(&self) -> Tables {
        let mut t = Tables::new();
        for b in &self.batches {
            assert_eq!(b.partition, "github3py");
            let table = StreamKind::from_name(&b.stream).unwrap().table();
            let rows = t.entry(table.to_string()).or_default();
            for row in rows_of(&b.batch) {
                let key = row["_ROW_KEY"].as_str().unwrap().to_string();
                assert!(
                    rows.insert(key.clone(), row).is_none(),
                    "{table}: {key} sent twice in one run"
                );
            }
        }
        t
    }
}

fn rows_of(b: &arrow::array::RecordBatch) -> Vec<Map<String, Value>> {
    let schema = b.schema();
    (0..b.num_rows())
        .map(|i| {
            schema
                .fields()
                .iter()
                .zip(b.columns())
                .map(|(f, c)| (f.name().clone(), cell(c.as_ref(), i)))
                .collect()
        })
        .collect()
}

fn cell(c: &dyn Array, i: usize) -> Value {
    if c.is_null(i) {
        return Value::Null;
    }
    match c.data_type() {
        DataType::Int64 => json!(c.as_primitive::<Int64Type>().value(i)),
        DataType::Boolean => json!(c.as_boolean().value(i)),
        DataType::Utf8 => json!(c.as_string::<i32>().value(i)),
        DataType::Timestamp(..) => json!(c.as_primitive::<TimestampMicrosecondType>().value(i)),
        DataType::List(_) => {
            let v = c.as_list::<i32>().value(i);
            let s = v.as_string::<i32>();
            Value::Array(s.iter().map(|x| json!(x)).collect())
        }
        other => panic!("column type {other}"),
    }
}

fn config(s: &ReplayServer) -> GithubConfig {
    GithubConfig::from_value(json!({
        "orgs": ["github3py"],
        "base_url": s.base_url,
        "streams": ALL,
        "include_patch": true,
        "retry_backoff_ms": 1,
        "secondary_limit_wait_seconds": 0,
        "max_concurrency": 2,
    }))
    .unwrap()
}

async fn run(s: &ReplayServer, state: BTreeMap<String, Value>) -> Run {
    let sink = Arc::new(Warnings::default());
    let (result, batches) = run_source(config(s), &ALL, state, None, sink.clone()).await;
    let warnings = sink.0.lock().unwrap().clone();
    Run {
        outcome: result.unwrap(),
        batches,
        warnings,
    }
}

// ------------------------------------------------------------------ the oracle
// What each table must hold, read from the served JSON independently of the source's
// parsing: the mapping the README and the column docs describe.

fn text(v: &Value) -> Value {
    if v.is_string() {
        v.clone()
    } else {
        Value::Null
    }
}

fn int(v: &Value) -> Value {
    if v.is_i64() {
        v.clone()
    } else {
        Value::Null
    }
}

fn boolean(v: &Value) -> Value {
    if v.is_boolean() {
        v.clone()
    } else {
        Value::Null
    }
}

fn time(v: &Value) -> Value {
    match v.as_str() {
        Some(t) => json!(chrono::DateTime::parse_from_rfc3339(t)
            .unwrap_or_else(|e| panic!("{t}: {e}"))
            .timestamp_micros()),
        None => Value::Null,
    }
}

/// A user's login; `null`, `{}` and a missing user all mean none.
fn login(u: &Value) -> Value {
    text(&u["login"])
}

fn user_id(u: &Value) -> Value {
    if u["login"].is_string() {
        int(&u["id"])
    } else {
        Value::Null
    }
}

fn strings(v: &Value, key: Option<&str>) -> Value {
    match v.as_array() {
        Some(items) => Value::Array(
            items
                .iter()
                .map(|x| match key {
                    Some(k) => &x[k],
                    None => x,
                })
                .filter(|x| x.is_string())
                .cloned()
                .collect(),
        ),
        None => Value::Null,
    }
}

fn row(pairs: Vec<(&str, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn put(t: &mut Tables, table: &str, key: String, r: Map<String, Value>) {
    let rows = t.entry(table.to_string()).or_default();
    assert!(rows.insert(key.clone(), r).is_none(), "{table} {key} twice");
}

fn expected(w: &World) -> Tables {
    let org = w.org.as_str();
    let mut t = Tables::new();
    for r in &w.listing {
        let (name, id) = (r["name"].as_str().unwrap(), r["id"].as_i64().unwrap());
        let key = row_key(&[org, name, &id.to_string()]);
        let cols = vec![
            ("ID", json!(id)),
            ("NAME", text(&r["name"])),
            ("FULL_NAME", text(&r["full_name"])),
            ("OWNER_LOGIN", login(&r["owner"])),
            ("PRIVATE", boolean(&r["private"])),
            ("FORK", boolean(&r["fork"])),
            ("ARCHIVED", boolean(&r["archived"])),
            ("DEFAULT_BRANCH", text(&r["default_branch"])),
            ("DESCRIPTION", text(&r["description"])),
            ("LANGUAGE", text(&r["language"])),
            ("VISIBILITY", text(&r["visibility"])),
            ("TOPICS", strings(&r["topics"], None)),
            ("CREATED_AT", time(&r["created_at"])),
            ("UPDATED_AT", time(&r["updated_at"])),
            ("PUSHED_AT", time(&r["pushed_at"])),
            ("STARGAZERS_COUNT", int(&r["stargazers_count"])),
            ("FORKS_COUNT", int(&r["forks_count"])),
            ("OPEN_ISSUES_COUNT", int(&r["open_issues_count"])),
            ("HTML_URL", text(&r["html_url"])),
            ("ORG", json!(org)),
            ("_ROW_KEY", json!(key)),
            ("_RAW", r.clone()),
        ];
        put(&mut t, "REPOSITORY", key, row(cols));
    }
    for repo in &w.repos {
        let archived = w
            .listing
            .iter()
            .any(|r| r["name"] == repo.name.as_str() && r["archived"] == true);
        if archived {
            // include_archived is off: an archived repository's content is not read.
            continue;
        }
        let name = repo.name.as_str();
        for p in &repo.pulls {
            let key = row_key(&[org, name, &p["id"].to_string()]);
            let cols = vec![
                ("ID", int(&p["id"])),
                ("NUMBER", int(&p["number"])),
                ("STATE", text(&p["state"])),
                ("DRAFT", boolean(&p["draft"])),
                ("TITLE", text(&p["title"])),
                ("USER_LOGIN", login(&p["user"])),
                ("USER_ID", user_id(&p["user"])),
                ("AUTHOR_ASSOCIATION", text(&p["author_association"])),
                ("CREATED_AT", time(&p["created_at"])),
                ("UPDATED_AT", time(&p["updated_at"])),
                ("CLOSED_AT", time(&p["closed_at"])),
                ("MERGED_AT", time(&p["merged_at"])),
                ("MERGE_COMMIT_SHA", text(&p["merge_commit_sha"])),
                ("BASE_REF", text(&p["base"]["ref"])),
                ("BASE_SHA", text(&p["base"]["sha"])),
                ("HEAD_REF", text(&p["head"]["ref"])),
                ("HEAD_SHA", text(&p["head"]["sha"])),
                ("HEAD_REPO_FULL_NAME", text(&p["head"]["repo"]["full_name"])),
                ("MERGED_BY_LOGIN", login(&p["merged_by"])),
                ("ADDITIONS", int(&p["additions"])),
                ("DELETIONS", int(&p["deletions"])),
                ("CHANGED_FILES", int(&p["changed_files"])),
                ("COMMITS", int(&p["commits"])),
                (
                    "REQUESTED_REVIEWERS",
                    strings(&p["requested_reviewers"], Some("login")),
                ),
                ("LABELS", strings(&p["labels"], Some("name"))),
                ("MILESTONE_TITLE", text(&p["milestone"]["title"])),
                ("HTML_URL", text(&p["html_url"])),
                ("REPO_NAME", json!(name)),
                ("ORG", json!(org)),
                ("_ROW_KEY", json!(key)),
                ("_RAW", p.clone()),
            ];
            put(&mut t, "PULL_REQUEST", key, row(cols));
            let number = p["number"].as_i64().unwrap();
            for r in repo.reviews.get(&number).into_iter().flatten() {
                let key = row_key(&[org, name, &r["id"].to_string()]);
                let cols = vec![
                    ("ID", int(&r["id"])),
                    ("PULL_REQUEST_ID", int(&p["id"])),
                    ("PULL_REQUEST_NUMBER", json!(number)),
                    ("USER_LOGIN", login(&r["user"])),
                    ("USER_ID", user_id(&r["user"])),
                    ("STATE", text(&r["state"])),
                    ("SUBMITTED_AT", time(&r["submitted_at"])),
                    ("COMMIT_ID", text(&r["commit_id"])),
                    ("AUTHOR_ASSOCIATION", text(&r["author_association"])),
                    ("HTML_URL", text(&r["html_url"])),
                    ("REPO_NAME", json!(name)),
                    ("ORG", json!(org)),
                    ("_ROW_KEY", json!(key)),
                    ("_RAW", r.clone()),
                ];
                put(&mut t, "PULL_REQUEST_REVIEW", key, row(cols));
            }
        }
        for c in repo.commits.iter().flatten() {
            let s = sha(c);
            let key = row_key(&[org, name, &s]);
            let (a, m) = (&c["commit"]["author"], &c["commit"]["committer"]);
            let cols = vec![
                ("SHA", json!(s)),
                ("AUTHOR_NAME", text(&a["name"])),
                ("AUTHOR_EMAIL", text(&a["email"])),
                ("AUTHOR_DATE", time(&a["date"])),
                ("COMMITTER_NAME", text(&m["name"])),
                ("COMMITTER_EMAIL", text(&m["email"])),
                ("COMMITTER_DATE", time(&m["date"])),
                ("AUTHOR_LOGIN", login(&c["author"])),
                ("COMMITTER_LOGIN", login(&c["committer"])),
                ("MESSAGE", text(&c["commit"]["message"])),
                ("PARENT_SHAS", strings(&c["parents"], Some("sha"))),
                ("HTML_URL", text(&c["html_url"])),
                ("REPO_NAME", json!(name)),
                ("ORG", json!(org)),
                ("_ROW_KEY", json!(key)),
                ("_RAW", c.clone()),
            ];
            put(&mut t, "COMMIT", key, row(cols));
            for f in repo.files.get(&s).into_iter().flatten() {
                let file = f["filename"].as_str().unwrap();
                let key = row_key(&[org, name, &s, file]);
                let cols = vec![
                    ("COMMIT_SHA", json!(s)),
                    ("FILENAME", json!(file)),
                    ("STATUS", text(&f["status"])),
                    ("ADDITIONS", int(&f["additions"])),
                    ("DELETIONS", int(&f["deletions"])),
                    ("CHANGES", int(&f["changes"])),
                    ("PREVIOUS_FILENAME", text(&f["previous_filename"])),
                    ("BLOB_SHA", text(&f["sha"])),
                    ("PATCH", text(&f["patch"])),
                    ("COMMITTER_DATE", time(&m["date"])),
                    ("REPO_NAME", json!(name)),
                    ("ORG", json!(org)),
                    ("_ROW_KEY", json!(key)),
                    ("_RAW", f.clone()),
                ];
                put(&mut t, "COMMIT_FILE", key, row(cols));
            }
        }
        for d in &repo.deployments {
            let id = d["id"].as_i64().unwrap();
            let key = row_key(&[org, name, &id.to_string()]);
            // The latest status: newest by (created_at, id).
            let latest = repo
                .statuses
                .get(&id)
                .into_iter()
                .flatten()
                .max_by_key(|s| (time(&s["created_at"]).as_i64(), s["id"].as_i64()));
            let none = Value::Null;
            let s = latest.unwrap_or(&none);
            let url = match text(&s["environment_url"]) {
                Value::String(u) if u.is_empty() => Value::Null,
                u => u,
            };
            let cols = vec![
                ("ID", json!(id)),
                ("ORG", json!(org)),
                ("REPO_NAME", json!(name)),
                ("SHA", text(&d["sha"])),
                ("REF", text(&d["ref"])),
                ("TASK", text(&d["task"])),
                ("ENVIRONMENT", text(&d["environment"])),
                ("DESCRIPTION", text(&d["description"])),
                ("CREATOR_LOGIN", login(&d["creator"])),
                ("CREATED_AT", time(&d["created_at"])),
                ("UPDATED_AT", time(&d["updated_at"])),
                ("STATUS_STATE", text(&s["state"])),
                ("STATUS_CREATED_AT", time(&s["created_at"])),
                ("STATUS_ENVIRONMENT_URL", url),
                ("_ROW_KEY", json!(key)),
                ("_RAW", d.clone()),
            ];
            put(&mut t, "DEPLOYMENT", key, row(cols));
        }
    }
    t
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 300 {
        format!("{}… ({} bytes)", &s[..s.floor_char_boundary(300)], s.len())
    } else {
        s
    }
}

/// Every expected row is there with every column equal, and nothing else is.
fn assert_tables(got: &Tables, want: &Tables, tables: &[&str]) {
    let mut problems = Vec::new();
    for table in tables {
        let empty = BTreeMap::new();
        let g = got.get(*table).unwrap_or(&empty);
        let w = want.get(*table).unwrap_or(&empty);
        for k in w.keys().filter(|k| !g.contains_key(*k)) {
            problems.push(format!(
                "{table}: row missing: {}",
                short(&Value::Object(w[k].clone()))
            ));
        }
        for k in g.keys().filter(|k| !w.contains_key(*k)) {
            problems.push(format!(
                "{table}: unexpected row: {}",
                short(&Value::Object(g[k].clone()))
            ));
        }
        for (k, wr) in w {
            let Some(gr) = g.get(k) else { continue };
            for (col, wv) in wr {
                let gv = gr
                    .get(col)
                    .unwrap_or_else(|| panic!("{table} has no column {col}"));
                let gv = if col == "_RAW" {
                    // _RAW is the object as GitHub sent it: same JSON, byte order aside.
                    serde_json::from_str(gv.as_str().expect("_RAW text")).unwrap()
                } else {
                    gv.clone()
                };
                if &gv != wv {
                    problems.push(format!(
                        "{table} {k} {col}: got {} want {}",
                        short(&gv),
                        short(wv)
                    ));
                }
            }
            // Every column of the table is compared (the metadata ones just below).
            for col in gr.keys() {
                assert!(
                    wr.contains_key(col)
                        || ["_INGESTED_AT", "_SOURCE_ORG", "_BATCH_ID"].contains(&col.as_str()),
                    "{table}.{col} is not compared"
                );
            }
            assert_eq!(gr["_SOURCE_ORG"], "github3py");
            assert_eq!(gr["_BATCH_ID"], BATCH_ID);
            assert!(gr["_INGESTED_AT"].is_i64());
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

const TABLES: [&str; 6] = [
    "REPOSITORY",
    "PULL_REQUEST",
    "PULL_REQUEST_REVIEW",
    "COMMIT",
    "COMMIT_FILE",
    "DEPLOYMENT",
];

/// Rows of a later run replace those with the same key (what MERGE does).
fn merged(mut base: Tables, later: Tables) -> Tables {
    for (table, rows) in later {
        base.entry(table).or_default().extend(rows);
    }
    base
}

fn count(t: &Tables, table: &str) -> usize {
    t.get(table).map_or(0, |r| r.len())
}

fn cell_of<'a>(t: &'a Tables, table: &str, key: &[&str], col: &str) -> &'a Value {
    &t[table][&row_key(key)][col]
}

// ------------------------------------------------------------------ upstream changes

/// A PR edited, a review added to another (which updates it), a commit pushed.
fn edit_review_and_push(w: &mut World) {
    let main = w.repo_mut(MAIN);
    for p in main.pulls.iter_mut() {
        match p["number"].as_i64() {
            Some(1033) => {
                let title = format!("{} (edited)", p["title"].as_str().unwrap());
                p["title"] = json!(title);
                p["updated_at"] = json!("2021-10-01T00:00:00Z");
            }
            Some(1008) => p["updated_at"] = json!("2021-10-02T10:00:00Z"),
            _ => {}
        }
    }
    main.reviews
        .entry(1008)
        .or_default()
        .push(fixture("review_new_1008.json"));
    let pushed = fixture("new_commit_github3.py.json");
    main.files
        .insert(sha(&pushed), replay::list(pushed["files"].clone()));
    main.commits.as_mut().unwrap().insert(0, list_item(&pushed));
    let r = w.listed_mut(MAIN);
    r.insert("pushed_at".into(), json!("2025-09-08T06:01:05Z"));
    r.insert("updated_at".into(), json!("2025-09-08T06:01:05Z"));
}

// ------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_loads_every_recorded_shape_column_by_column() {
    let s = ReplayServer::start(World::recorded());
    let r = run(&s, BTreeMap::new()).await;
    let states = r.states();
    let got = r.tables();
    let w = s.world();
    assert_tables(&got, &expected(&w), &TABLES);

    let org = "github3py";
    // The empty repository: zero commits, said once, the org's other commits loaded and
    // both commit streams' state saved.
    let empty: Vec<&String> = r.warnings.iter().filter(|m| m.contains(EMPTY)).collect();
    assert_eq!(empty.len(), 1, "{:?}", r.warnings);
    assert!(empty[0].contains("no commits"), "{}", empty[0]);
    for st in ["commit", "commit_file"] {
        let repos = &states[st]["repos"];
        assert!(
            repos[format!("{org}/{MAIN}")]["cursor"].is_string(),
            "{st}: {repos}"
        );
        assert!(
            repos[format!("{org}/{OLD}")]["cursor"].is_string(),
            "{st}: {repos}"
        );
    }
    assert_eq!(count(&got, "COMMIT"), 101 + 60);

    // The shapes the corpus is for, as loaded.
    let pr = |n: i64, col: &str| {
        let p = w
            .repo(MAIN)
            .pulls
            .iter()
            .find(|p| p["number"] == n)
            .unwrap();
        cell_of(
            &got,
            "PULL_REQUEST",
            &[org, MAIN, &p["id"].to_string()],
            col,
        )
        .clone()
    };
    assert_eq!(pr(1008, "USER_LOGIN"), Value::Null, "ghost user");
    assert_eq!(pr(927, "DRAFT"), json!(true));
    assert_eq!(
        pr(1033, "MILESTONE_TITLE"),
        "Version 1.0: coherent public interface"
    );
    assert_eq!(pr(932, "HEAD_REPO_FULL_NAME"), Value::Null, "deleted fork");
    let raw_1033: Value = serde_json::from_str(pr(1033, "_RAW").as_str().unwrap()).unwrap();
    assert_eq!(raw_1033["auto_merge"]["merge_method"], "squash");
    assert_eq!(raw_1033["requested_teams"][0]["name"], "Members");
    let raw_985 = pr(985, "_RAW");
    assert!(raw_985.as_str().unwrap().len() > 200 * 1024);
    assert!(pr(985, "TITLE").as_str().unwrap().contains("ünïcødé 🚀"));
    let reviews = &got["PULL_REQUEST_REVIEW"];
    let pending: Vec<_> = reviews
        .values()
        .filter(|r| r["STATE"] == "PENDING")
        .collect();
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().all(|r| r["SUBMITTED_AT"].is_null()));
    assert!(reviews.values().any(|r| r["STATE"] == "DISMISSED"));

    let commits = &got["COMMIT"];
    assert_eq!(
        commits
            .values()
            .filter(|c| c["AUTHOR_LOGIN"].is_null()
                && c["_RAW"].as_str().unwrap().contains(r#""author":{}"#))
            .count(),
        1,
        "author: {{}}"
    );
    // 2012-05-25T10:14:34-07:00 is 17:14:34 UTC.
    let old_head = cell_of(
        &got,
        "COMMIT",
        &[org, OLD, "ecda065e01876209d2bdf5fe4e91cee8ffaa9ff7"],
        "COMMITTER_DATE",
    );
    assert_eq!(old_head, &json!(1_337_966_074_000_000i64));

    let files = &got["COMMIT_FILE"];
    let big = sha(&w.repo(MAIN).commits.as_ref().unwrap()[BIG_COMMIT_AT]);
    assert_eq!(
        files
            .values()
            .filter(|f| f["COMMIT_SHA"] == big.as_str())
            .count(),
        306
    );
    assert!(files.values().any(|f| f["BLOB_SHA"].is_null()), "sha: null");
    assert!(files
        .values()
        .any(|f| f["STATUS"] == "renamed" && f["PREVIOUS_FILENAME"].is_string()));
    let binary = cell_of(
        &got,
        "COMMIT_FILE",
        &[org, MAIN, &big, "docs/img/gh3-logo-transparent.png"],
        "PATCH",
    );
    assert_eq!(binary, &Value::Null, "binary file: no patch");
    let too_large = &got["COMMIT_FILE"]
        [&row_key(&[org, MAIN, &big, "example-notebooks/all_repositories.ipynb"])];
    assert_eq!(
        (too_large["CHANGES"].clone(), too_large["PATCH"].clone()),
        (json!(6383), Value::Null)
    );

    let deploys = &got["DEPLOYMENT"];
    assert_eq!(deploys.len(), 4);
    let d = |id: &str| &deploys[&row_key(&[org, MAIN, id])];
    assert_eq!(d("263877258")["STATUS_STATE"], "queued");
    assert_eq!(
        d("263877258")["STATUS_ENVIRONMENT_URL"],
        Value::Null,
        "\"\" is NULL"
    );
    assert_eq!(d("262350588")["STATUS_STATE"], Value::Null, "no status");
    assert_eq!(d("801")["STATUS_STATE"], "success");

    // GitHub's paging: lists and a commit's files continued at /repositories/{id}/….
    let seen = s.seen();
    let id = w.repo(MAIN).id;
    assert!(seen
        .iter()
        .any(|x| x.path == format!("/repositories/{id}/commits") && x.query.contains("page=2")));
    assert!(seen.iter().any(
        |x| x.path == format!("/repositories/{id}/commits/{big}") && x.query.contains("page=2")
    ));
    assert!(
        seen.iter()
            .all(|x| x.status == 200 || (x.status == 409 && x.path.contains(EMPTY))),
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|x| x.gzip && !x.conditional),
        "a first run asks for gzip and sends no If-None-Match"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_run_after_an_edited_pr_a_new_review_and_a_new_commit() {
    let s = ReplayServer::start(World::recorded());
    let r1 = run(&s, BTreeMap::new()).await;
    s.change(edit_review_and_push);
    s.forget();
    let r2 = run(&s, r1.states()).await;
    let w = s.world();
    let sent = r2.tables();
    assert_tables(&merged(r1.tables(), sent.clone()), &expected(&w), &TABLES);

    // Only what changed is sent again.
    assert_eq!(count(&sent, "PULL_REQUEST"), 2);
    assert_eq!(count(&sent, "PULL_REQUEST_REVIEW"), 5 + 1);
    assert_eq!(count(&sent, "COMMIT"), 1);
    let pushed = fixture("new_commit_github3.py.json");
    assert_eq!(
        count(&sent, "COMMIT_FILE"),
        pushed["files"].as_array().unwrap().len()
    );
    assert_eq!(count(&sent, "DEPLOYMENT"), 0);

    let seen = s.seen();
    let at = |repo: &str, tail: &str| -> Vec<replay::Seen> {
        seen.iter()
            .filter(|x| x.path == format!("/repos/github3py/{repo}/{tail}"))
            .cloned()
            .collect()
    };
    // A repository without deployments, like one whose deployments did not change, is
    // asked conditionally: 304, no quota, no status requests.
    for repo in [MAIN, OLD, EMPTY] {
        let d = at(repo, "deployments");
        assert_eq!(d.len(), 1, "{repo}: {d:?}");
        assert!(d[0].conditional && d[0].status == 304, "{repo}: {d:?}");
    }
    assert!(!seen.iter().any(|x| x.path.ends_with("/statuses")));
    for repo in [OLD, EMPTY] {
        let p = at(repo, "pulls");
        assert!(p.len() == 1 && p[0].status == 304, "{repo}: {p:?}");
    }
    let c = at(OLD, "commits");
    assert!(c.len() == 1 && c[0].status == 304, "{c:?}");
    let c = at(EMPTY, "commits");
    assert!(c.len() == 1 && c[0].status == 409, "{c:?}");
    // The default branch moved: a conditional head check, then what is new since the old head.
    let c = at(MAIN, "commits");
    assert!(
        c.len() == 1 && c[0].conditional && c[0].status == 200 && c[0].query == "per_page=1",
        "{c:?}"
    );
    let compare: Vec<_> = seen
        .iter()
        .filter(|x| {
            x.path
                .starts_with(&format!("/repos/github3py/{MAIN}/compare/"))
        })
        .collect();
    assert!(
        compare.len() == 1 && compare[0].status == 200,
        "{compare:?}"
    );
}

/// A branch whose commits are dated before the first run is merged after it: the merge
/// and every commit it brings in must land, with their files, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_run_lands_every_commit_of_a_branch_merged_with_older_dates() {
    let s = ReplayServer::start(World::recorded());
    let r1 = run(&s, BTreeMap::new()).await;
    let m = fixture("merge_fork_this.json");
    s.change(|w| {
        let pool = replay::list(fixture("commit_files_pool.json"));
        let repo = w.repo_mut(OLD);
        let commits = repo.commits.as_mut().unwrap();
        commits.insert(0, m["merge"].clone());
        // Older than everything listed before: git-log order puts them last.
        commits.extend(replay::list(m["branch"].clone()));
        for (i, c) in [&m["merge"], &m["branch"][0], &m["branch"][1]]
            .into_iter()
            .enumerate()
        {
            repo.files
                .insert(sha(c), vec![pool[i % pool.len()].clone()]);
        }
        w.listed_mut(OLD)
            .insert("pushed_at".into(), json!("2021-10-03T00:00:00Z"));
    });
    let r2 = run(&s, r1.states()).await;
    let got = merged(r1.tables(), r2.tables());
    let w = s.world();
    for c in [&m["merge"], &m["branch"][0], &m["branch"][1]] {
        assert!(
            got["COMMIT"].contains_key(&row_key(&["github3py", OLD, &sha(c)])),
            "commit {} ({}) was not loaded",
            sha(c),
            c["commit"]["committer"]["date"]
        );
    }
    assert_tables(&got, &expected(&w), &["COMMIT", "COMMIT_FILE"]);
}

/// A repository archived after it was loaded: its REPOSITORY row must say so (and carry
/// its new UPDATED_AT), while its pull requests and commits are no longer read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_run_keeps_a_newly_archived_repository_row_current() {
    let s = ReplayServer::start(World::recorded());
    let r1 = run(&s, BTreeMap::new()).await;
    s.change(|w| {
        let r = w.listed_mut(OLD);
        r.insert("archived".into(), json!(true));
        r.insert("updated_at".into(), json!("2021-10-04T00:00:00Z"));
    });
    s.forget();
    let r2 = run(&s, r1.states()).await;
    let got = merged(r1.tables(), r2.tables());
    let w = s.world();
    let key = ["github3py", OLD, &w.repo(OLD).id.to_string()];
    assert_eq!(cell_of(&got, "REPOSITORY", &key, "ARCHIVED"), &json!(true));
    assert_tables(&got, &expected(&w), &["REPOSITORY"]);
    let id = w.repo(OLD).id;
    let read = s.seen().into_iter().filter(|x| {
        (x.path.starts_with(&format!("/repos/github3py/{OLD}/"))
            || x.path.starts_with(&format!("/repositories/{id}/")))
            && (x.path.contains("/pulls") || x.path.contains("/commits"))
    });
    assert_eq!(
        read.count(),
        0,
        "an archived repository's PRs and commits are not read"
    );
}

/// A repository emptied after its head was recorded (deleted and created again under the
/// same name) answers the head check with 409: zero commits, the other streams go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_emptied_after_a_run_counts_as_zero_commits() {
    let s = ReplayServer::start(World::recorded());
    let r1 = run(&s, BTreeMap::new()).await;
    s.change(|w| w.repo_mut(OLD).commits = None);
    s.forget();
    let r2 = run(&s, r1.states()).await;
    // Every stream succeeds (states() panics on a failed one) and nothing is re-sent.
    let states = r2.states();
    assert_eq!(count(&r2.tables(), "COMMIT"), 0);
    assert_eq!(count(&r2.tables(), "COMMIT_FILE"), 0);
    assert_eq!(states["commit"], r1.states()["commit"]);
    let head_checks: Vec<_> = s
        .seen()
        .into_iter()
        .filter(|x| x.path == format!("/repos/github3py/{OLD}/commits"))
        .collect();
    assert!(
        head_checks.len() == 1 && head_checks[0].status == 409,
        "{head_checks:?}"
    );
}

/// A commit whose files cannot be read fails commit_file for its repository, and the file
/// rows read before it are still sent: the batch cut to make room for it is not dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_with_unreadable_files_loses_no_file_row_read_before_it() {
    let mut w = World::recorded();
    let main = w.repo_mut(MAIN);
    let commits = main.commits.clone().unwrap();
    let (first, second) = (sha(&commits[0]), sha(&commits[1]));
    let filename = main.files[&first][0]["filename"]
        .as_str()
        .unwrap()
        .to_string();
    // More files than the batch has room for after the first commit's, none readable.
    let mut broken = main.files[&second][0].clone();
    broken.as_object_mut().unwrap().remove("filename");
    main.files.insert(second, vec![broken; 10]);
    let s = ReplayServer::start(w);
    let cfg = GithubConfig::from_value(json!({
        "orgs": ["github3py"],
        "base_url": s.base_url,
        "streams": ["commit_file"],
        "batch_rows": 10,
        "max_retries": 1,
        "retry_backoff_ms": 1,
        "max_concurrency": 1,
    }))
    .unwrap();
    let sink = Arc::new(Warnings::default());
    let (result, batches) = run_source(cfg, &["commit_file"], BTreeMap::new(), None, sink).await;
    match &result.unwrap().streams["commit_file"] {
        StreamResult::Failed { error } => {
            assert!(
                error.contains(MAIN) && error.contains("filename"),
                "{error}"
            )
        }
        other => panic!("commit_file must fail for {MAIN}: {other:?}"),
    }
    let key = row_key(&["github3py", MAIN, &first, &filename]);
    let sent = batches
        .iter()
        .flat_map(|b| rows_of(&b.batch))
        .filter(|r| r["_ROW_KEY"] == key.as_str())
        .count();
    assert_eq!(sent, 1, "the first commit's file row is sent once");
}
