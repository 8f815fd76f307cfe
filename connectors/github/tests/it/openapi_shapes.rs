//! Every field the row builders read, checked against GitHub's OpenAPI description
//! (`tests/fixtures/openapi/components.json`, a trimmed copy naming its source): a field
//! the description lets GitHub omit, send as `null` or (for a nullable object) send as `{}`
//! must never fail a page, and must come out as NULL in its column.
//!
//! The cases are derived from the schema, not listed by hand: an example object is built
//! from each component, then every optional property is removed, every nullable one set to
//! null and every nullable object set to `{}`, one at a time. A field the parser starts to
//! require, or a field the description starts to allow to be missing (once the copy is
//! refreshed), fails here.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimestampMicrosecondType};
use arrow::util::display::array_value_to_string;
use flowctl_github::rows::{parse_page, BatchCtx, TableRows};
use flowctl_github::streams::commit_files::{CommitFull, FileRows};
use flowctl_github::streams::commits::{CommitItem, CommitRows};
use flowctl_github::streams::deployments::{latest_status, parse_deployments, DeploymentRows};
use flowctl_github::streams::pulls::pulls_page_to_batch;
use flowctl_github::streams::repos::{RepoItem, RepoRows};
use flowctl_github::streams::reviews::{ReviewItem, ReviewRows};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

const SCHEMA: &str = include_str!("../fixtures/openapi/components.json");

fn schemas() -> Map<String, Value> {
    let doc: Value = serde_json::from_str(SCHEMA).expect("components.json is JSON");
    let src = &doc["source"];
    assert_eq!(src["repository"], "github/rest-api-description");
    assert!(
        src["commit"].as_str().is_some_and(|c| c.len() == 40),
        "{src}"
    );
    doc["components"]["schemas"]
        .as_object()
        .expect("components.schemas")
        .clone()
}

/// The schema a node stands for, following `$ref`.
fn resolve<'a>(all: &'a Map<String, Value>, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            all.get(name)
                .unwrap_or_else(|| panic!("{r} is not in the trimmed copy"))
        }
        None => node,
    }
}

fn is_empty_object(all: &Map<String, Value>, node: &Value) -> bool {
    let n = resolve(all, node);
    n["type"] == "object" && n["properties"].as_object().is_some_and(|p| p.is_empty())
}

/// An example value with every property present and nothing null.
fn example(all: &Map<String, Value>, node: &Value) -> Value {
    let n = resolve(all, node);
    if let Some(branches) = n.get("oneOf").and_then(Value::as_array) {
        let b = branches
            .iter()
            .find(|b| !is_empty_object(all, b))
            .expect("a oneOf with a non-empty branch");
        return example(all, b);
    }
    if let Some(first) = n.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    match n["type"].as_str() {
        Some("object") => {
            let mut m = Map::new();
            for (k, p) in n["properties"].as_object().into_iter().flatten() {
                m.insert(k.clone(), example(all, p));
            }
            Value::Object(m)
        }
        Some("array") => json!([example(all, &n["items"])]),
        Some("integer") => json!(7),
        Some("boolean") => json!(true),
        // GitHub's own examples quote some dates ("\"2007-10-29T02:42:39.000-07:00\""), so
        // dates are fixed here, with an offset as git dates can have.
        Some("string") if n["format"] == "date-time" => json!("2011-01-26T12:01:12-07:00"),
        Some("string") => match n.get("example").and_then(Value::as_str) {
            Some(e) => json!(e),
            None => json!("text"),
        },
        other => panic!("type {other:?} in {n}"),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    First,
}

type Path = Vec<Seg>;

fn show(p: &Path) -> String {
    let parts: Vec<String> = p
        .iter()
        .map(|s| match s {
            Seg::Key(k) => k.clone(),
            Seg::First => "[0]".into(),
        })
        .collect();
    parts.join(".").replace(".[0]", "[0]")
}

/// What the description allows for one property.
#[derive(Debug)]
struct Field {
    path: Path,
    optional: bool,
    nullable: bool,
    /// `{}` is allowed: a nullable object, or a `oneOf` with an empty-object branch.
    empty: bool,
}

fn fields(all: &Map<String, Value>, node: &Value, at: &Path, out: &mut Vec<Field>) {
    let n = resolve(all, node);
    if let Some(branches) = n.get("oneOf").and_then(Value::as_array) {
        if let Some(b) = branches.iter().find(|b| !is_empty_object(all, b)) {
            fields(all, b, at, out);
        }
        return;
    }
    match n["type"].as_str() {
        Some("array") => {
            let mut p = at.clone();
            p.push(Seg::First);
            fields(all, &n["items"], &p, out);
        }
        Some("object") => {
            let required: Vec<&str> = n["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for (k, prop) in n["properties"].as_object().into_iter().flatten() {
                let target = resolve(all, prop);
                let nullable = prop["nullable"] == true || target["nullable"] == true;
                let one_of_empty = target
                    .get("oneOf")
                    .and_then(Value::as_array)
                    .is_some_and(|b| b.iter().any(|b| is_empty_object(all, b)));
                let object = target["type"] == "object" || target.get("oneOf").is_some();
                let mut p = at.clone();
                p.push(Seg::Key(k.clone()));
                out.push(Field {
                    path: p.clone(),
                    optional: !required.contains(&k.as_str()),
                    nullable,
                    empty: one_of_empty || (nullable && object),
                });
                fields(all, prop, &p, out);
            }
        }
        _ => {}
    }
}

/// `v` with the value at `path` replaced (`Some`) or removed (`None`).
fn with(v: &Value, path: &Path, new: Option<Value>) -> Value {
    let mut v = v.clone();
    let (last, parents) = path.split_last().expect("a non-empty path");
    let mut cur = &mut v;
    for s in parents {
        cur = match s {
            Seg::Key(k) => &mut cur[k.as_str()],
            Seg::First => &mut cur[0],
        };
    }
    let Seg::Key(k) = last else {
        panic!("a path ends in a key")
    };
    let obj = cur.as_object_mut().expect("an object");
    match new {
        Some(x) => obj.insert(k.clone(), x),
        None => obj.remove(k),
    };
    v
}

type Row = BTreeMap<String, Option<String>>;

fn row_of(b: &RecordBatch) -> Row {
    assert_eq!(b.num_rows(), 1, "one row");
    b.schema()
        .fields()
        .iter()
        .zip(b.columns())
        .map(|(f, c)| {
            let v = (!c.is_null(0)).then(|| match c.data_type() {
                // Microseconds: displaying a "UTC" zone needs chrono-tz, which arrow lacks here.
                DataType::Timestamp(..) => c
                    .as_primitive::<TimestampMicrosecondType>()
                    .value(0)
                    .to_string(),
                _ => array_value_to_string(c, 0).unwrap(),
            });
            (f.name().clone(), v)
        })
        .collect()
}

fn ctx() -> BatchCtx {
    BatchCtx {
        include_raw: true,
        include_patch: true,
    }
}

/// One way the source turns a component into a row.
struct Reader {
    name: &'static str,
    component: &'static str,
    read: fn(&Value) -> Result<Row, String>,
    /// Path in the component → the columns that must be NULL when it is missing, null or `{}`.
    null_columns: &'static [(&'static str, &'static [&'static str])],
    /// Optional or nullable paths that feed no column of their own (checked only to parse).
    no_column: &'static [&'static str],
}

fn page(item: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!([item])).unwrap()
}

fn read_pull(v: &Value) -> Result<Row, String> {
    Ok(row_of(&pulls_page_to_batch(&page(v), "o", "r", &ctx())?))
}

fn read_review(v: &Value) -> Result<Row, String> {
    let body = page(v);
    let items = parse_page::<ReviewItem>(&body, true)?;
    let mut b = ReviewRows::new(true);
    for (x, raw) in &items {
        b.append("o", "r", (1, 2), x, x.submitted()?, *raw);
    }
    Ok(row_of(&b.finish(&ctx())?))
}

fn read_commit(v: &Value) -> Result<Row, String> {
    let body = page(v);
    let items = parse_page::<CommitItem>(&body, true)?;
    let mut b = CommitRows::new(true);
    for (c, raw) in &items {
        b.append("o", "r", c, c.dates()?, *raw);
    }
    Ok(row_of(&b.finish(&ctx())?))
}

fn read_commit_files(v: &Value) -> Result<Row, String> {
    let body = serde_json::to_vec(v).unwrap();
    let c: CommitFull = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let mut b = FileRows::new(true);
    // A commit without files has no COMMIT_FILE row: every column reads as absent.
    if b.append_commit("o", "r", &c, &ctx())? == 0 {
        return Ok(Row::from([("FILENAME".to_string(), None)]));
    }
    Ok(row_of(&b.finish(&ctx())?))
}

fn read_repo(v: &Value) -> Result<Row, String> {
    let body = page(v);
    let items = parse_page::<RepoItem>(&body, true)?;
    let mut b = RepoRows::new(true);
    for (r, raw) in &items {
        b.append("o", r, r.times()?, *raw);
    }
    Ok(row_of(&b.finish(&ctx())?))
}

fn read_deployment(v: &Value) -> Result<Row, String> {
    let mut b = DeploymentRows::new(true);
    for d in parse_deployments(&page(v), true)? {
        b.append("o", "r", &d, None);
    }
    Ok(row_of(&b.finish(&ctx())?))
}

fn read_status(v: &Value) -> Result<Row, String> {
    let s = latest_status(&page(v))?.ok_or("no status")?;
    Ok(Row::from([
        ("STATE".to_string(), Some(s.state)),
        ("CREATED".to_string(), s.created.map(|t| t.to_string())),
        ("ENVIRONMENT_URL".to_string(), s.environment_url),
    ]))
}

const READERS: &[Reader] = &[
    Reader {
        name: "pulls list item",
        component: "pull-request-simple",
        read: read_pull,
        null_columns: &[
            ("user", &["USER_LOGIN", "USER_ID"]),
            ("milestone", &["MILESTONE_TITLE"]),
            ("closed_at", &["CLOSED_AT"]),
            ("merged_at", &["MERGED_AT"]),
            ("merge_commit_sha", &["MERGE_COMMIT_SHA"]),
            ("requested_reviewers", &["REQUESTED_REVIEWERS"]),
            ("draft", &["DRAFT"]),
        ],
        no_column: &[],
    },
    Reader {
        name: "review",
        component: "pull-request-review",
        read: read_review,
        null_columns: &[
            ("user", &["USER_LOGIN", "USER_ID"]),
            ("submitted_at", &["SUBMITTED_AT"]),
            ("commit_id", &["COMMIT_ID"]),
        ],
        no_column: &[],
    },
    Reader {
        name: "commits list item",
        component: "commit",
        read: read_commit,
        null_columns: &[
            ("author", &["AUTHOR_LOGIN"]),
            ("committer", &["COMMITTER_LOGIN"]),
            (
                "commit.author",
                &["AUTHOR_NAME", "AUTHOR_EMAIL", "AUTHOR_DATE"],
            ),
            ("commit.author.name", &["AUTHOR_NAME"]),
            ("commit.author.email", &["AUTHOR_EMAIL"]),
            ("commit.author.date", &["AUTHOR_DATE"]),
            (
                "commit.committer",
                &["COMMITTER_NAME", "COMMITTER_EMAIL", "COMMITTER_DATE"],
            ),
            ("commit.committer.name", &["COMMITTER_NAME"]),
            ("commit.committer.email", &["COMMITTER_EMAIL"]),
            ("commit.committer.date", &["COMMITTER_DATE"]),
        ],
        // A list item carries no files; the single commit's files are read below.
        no_column: &[
            "files",
            "files[0].sha",
            "files[0].patch",
            "files[0].previous_filename",
        ],
    },
    Reader {
        name: "single commit with files",
        component: "commit",
        read: read_commit_files,
        null_columns: &[
            ("files", &["FILENAME"]),
            ("files[0].sha", &["BLOB_SHA"]),
            ("files[0].patch", &["PATCH"]),
            ("files[0].previous_filename", &["PREVIOUS_FILENAME"]),
            ("commit.committer", &["COMMITTER_DATE"]),
            ("commit.committer.date", &["COMMITTER_DATE"]),
        ],
        // Fields of the commit that COMMIT_FILE does not carry.
        no_column: &[
            "author",
            "committer",
            "commit.author",
            "commit.author.name",
            "commit.author.email",
            "commit.author.date",
            "commit.committer.name",
            "commit.committer.email",
        ],
    },
    Reader {
        name: "repositories list item",
        component: "minimal-repository",
        read: read_repo,
        null_columns: &[
            ("description", &["DESCRIPTION"]),
            ("language", &["LANGUAGE"]),
            ("forks_count", &["FORKS_COUNT"]),
            ("stargazers_count", &["STARGAZERS_COUNT"]),
            ("open_issues_count", &["OPEN_ISSUES_COUNT"]),
            ("default_branch", &["DEFAULT_BRANCH"]),
            ("topics", &["TOPICS"]),
            ("archived", &["ARCHIVED"]),
            ("visibility", &["VISIBILITY"]),
            ("pushed_at", &["PUSHED_AT"]),
            ("created_at", &["CREATED_AT"]),
            ("updated_at", &["UPDATED_AT"]),
        ],
        no_column: &[],
    },
    Reader {
        name: "deployments list item",
        component: "deployment",
        read: read_deployment,
        null_columns: &[
            ("description", &["DESCRIPTION"]),
            ("creator", &["CREATOR_LOGIN"]),
        ],
        no_column: &[],
    },
    Reader {
        name: "deployment status",
        component: "deployment-status",
        read: read_status,
        null_columns: &[("environment_url", &["ENVIRONMENT_URL"])],
        no_column: &[],
    },
];

#[test]
fn every_field_github_may_omit_null_or_empty_reads_as_null() {
    let all = schemas();
    let mut checked = 0;
    for r in READERS {
        let component = &all[r.component];
        let base = example(&all, component);
        let full = (r.read)(&base)
            .unwrap_or_else(|e| panic!("{}: the full example fails: {e}\n{base}", r.name));
        let mut fs = Vec::new();
        fields(&all, component, &Vec::new(), &mut fs);
        for f in fs.iter().filter(|f| f.optional || f.nullable || f.empty) {
            let path = show(&f.path);
            let cols = r
                .null_columns
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, c)| *c);
            assert!(
                cols.is_some() || r.no_column.contains(&path.as_str()),
                "{} ({}): `{path}` may be missing, null or {{}} per the description; \
                 say which column it feeds",
                r.name,
                r.component
            );
            let mut variants = Vec::new();
            if f.optional {
                variants.push(("omitted", with(&base, &f.path, None)));
            }
            if f.nullable {
                variants.push(("null", with(&base, &f.path, Some(Value::Null))));
            }
            if f.empty {
                variants.push(("{}", with(&base, &f.path, Some(json!({})))));
            }
            for (how, v) in variants {
                let row = (r.read)(&v).unwrap_or_else(|e| {
                    panic!(
                        "{} ({}): `{path}` {how} fails the page: {e}\n{v}",
                        r.name, r.component
                    )
                });
                for c in cols.unwrap_or_default() {
                    assert!(
                        full[*c].is_some(),
                        "{}: {c} set in the full example",
                        r.name
                    );
                    assert_eq!(row[*c], None, "{}: `{path}` {how} → {c}", r.name);
                }
                checked += 1;
            }
        }
    }
    // The trimmed copy yields this many omitted/null/{} cases: a change here means the
    // copy or the readers changed, and the list above should be looked at again.
    assert_eq!(checked, 69, "cases derived from the trimmed description");
}

/// Required, non-nullable fields stay required: a page missing one is refused (and the
/// stream fails naming it) rather than loaded with a hole.
#[test]
fn a_required_field_missing_is_an_error_naming_it() {
    let all = schemas();
    let pr = example(&all, &all["pull-request-simple"]);
    let err = read_pull(&with(&pr, &vec![Seg::Key("updated_at".into())], None)).unwrap_err();
    assert!(err.contains("updated_at"), "{err}");
    let c = example(&all, &all["commit"]);
    let no_msg = with(
        &c,
        &vec![Seg::Key("commit".into()), Seg::Key("message".into())],
        None,
    );
    let err = read_commit(&no_msg).unwrap_err();
    assert!(err.contains("message"), "{err}");
}

#[test]
fn the_copy_keeps_what_github_calls_nullable() {
    // Spot checks against the source, so that a careless refresh of the copy is noticed.
    let all = schemas();
    assert_eq!(all["diff-entry"]["properties"]["sha"]["nullable"], true);
    assert_eq!(all["nullable-git-user"]["nullable"], true);
    assert_eq!(all["commit"]["properties"]["author"]["nullable"], true);
    let branches = all["commit"]["properties"]["author"]["oneOf"].to_string();
    assert!(branches.contains("empty-object"), "{branches}");
    assert!(all["pull-request-review"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r != "submitted_at"));
}
