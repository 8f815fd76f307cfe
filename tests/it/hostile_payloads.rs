//! Hostile payloads: `flowctl apply` (the real binary) against a tiny real HTTP server in
//! this test that serves pulls pages GitHub would never send. The documented policy
//! (docs/RELIABILITY.md): a page that does not parse into the typed record (a required
//! field missing or null, a wrong type, invalid JSON or an invalid escape) is treated like
//! a truncated body: retried `max_retries` times, then that repository's stream fails
//! with a message naming the URL; the run exits 1, state for the stream is not advanced.
//! Optional fields may be null. Oversized strings load as they are. A record repeated
//! across pages is one row (MERGE keeps one row per `_ROW_KEY`). Never a panic.

use flowctl_testkit::*;
use std::sync::Arc;

const ORG: &str = "hostile";
const REPO: &str = "r";

/// Serve the org's one repository and two pulls pages built by `pages`.
fn server(pages: [String; 2]) -> TinyServer {
    let pages = Arc::new(pages);
    let base = Arc::new(std::sync::OnceLock::<String>::new());
    let b2 = base.clone();
    let srv = TinyServer::start(move |req| {
        let t = req.target.as_str();
        if t.starts_with(&format!("/orgs/{ORG}/repos")) {
            Reply::json(format!("[{}]", repo_json(ORG, REPO, 1)))
        } else if t.starts_with(&format!("/repos/{ORG}/{REPO}/pulls")) && t.contains("page=2") {
            Reply::json(pages[1].clone())
        } else if t.starts_with(&format!("/repos/{ORG}/{REPO}/pulls")) {
            let next = format!(
                "<{}/repos/{ORG}/{REPO}/pulls?state=all&per_page=100&page=2>; rel=\"next\"",
                b2.get().map(String::as_str).unwrap_or("")
            );
            Reply::json(pages[0].clone()).header("Link", &next)
        } else {
            Reply::status(404)
        }
    });
    let _ = base.set(srv.base_url.clone());
    srv
}

fn run(pages: [String; 2]) -> (Env, Output) {
    let srv = server(pages);
    // The tiny server speaks REST only.
    let env = Env::for_server(
        &srv.base_url,
        &[ORG],
        &["repository", "pull_request"],
        "  api: rest\n",
    );
    let out = env.apply(&[]);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    (env, out)
}

fn page(items: &[String]) -> String {
    format!("[{}]", items.join(","))
}

fn pr(id: i64, title_json: &str) -> String {
    pr_json(ORG, REPO, id, id, title_json)
}

/// The record-level policy: the stream fails cleanly, naming the URL, state unadvanced.
fn assert_stream_failed(env: &Env, out: &Output, what: &str) {
    assert_eq!(out.code, 1, "{what}: {}", out.stderr);
    assert!(
        out.stderr.contains("pull_request") && out.stderr.contains("/pulls"),
        "{what}: message should name the stream and URL: {}",
        out.stderr
    );
    assert!(
        env.stream_state("pull_request").is_null(),
        "{what}: state advanced"
    );
    assert!(
        !env.stream_state("repository").is_null(),
        "{what}: repository stream should load"
    );
}

#[test]
fn missing_required_fields_fail_the_stream_cleanly() {
    let broken = r#"{"id": 5, "number": 5, "state": "open"}"#.to_string();
    let (env, out) = run([page(&[pr(1, "\"ok\""), broken]), page(&[])]);
    assert_stream_failed(&env, &out, "missing fields");
}

#[test]
fn wrong_types_fail_the_stream_cleanly() {
    let wrong = pr(2, "\"x\"").replace("\"id\":2", "\"id\":\"two\"");
    let (env, out) = run([page(&[wrong]), page(&[])]);
    assert_stream_failed(&env, &out, "id as string");
    let wrong = pr(3, "{\"nested\": [1, 2]}");
    let (env, out) = run([page(&[wrong]), page(&[])]);
    assert_stream_failed(&env, &out, "title as object");
    let (env, out) = run([r#"{"message": "not a list"}"#.to_string(), page(&[])]);
    assert_stream_failed(&env, &out, "object instead of list");
}

#[test]
fn nulls_everywhere_fail_the_stream_and_nulls_in_optional_fields_load() {
    let all_null = r#"{"id":null,"number":null,"state":null,"title":null,"user":null,"created_at":null,"updated_at":null,"base":null,"head":null}"#;
    let (env, out) = run([page(&[all_null.to_string()]), page(&[])]);
    assert_stream_failed(&env, &out, "nulls everywhere");

    let optional_null = pr(4, "\"t\"")
        .replace("\"user\":{\"login\":\"dev\",\"id\":7}", "\"user\":null")
        .replace("\"draft\":false", "\"draft\":null");
    let (env, out) = run([page(&[optional_null]), page(&[])]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(env.table_counts()["PULL_REQUEST"], 1);
}

#[test]
fn a_ten_megabyte_title_loads_intact() {
    let big = "x".repeat(10 << 20);
    let (env, out) = run([page(&[pr(6, &format!("\"{big}\""))]), page(&[])]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let len = env.query_i64("SELECT length(TITLE) FROM RAW_TABLES.PULL_REQUEST");
    assert_eq!(len, 10 << 20);
}

#[test]
fn invalid_unicode_escapes_and_bytes_fail_the_stream_cleanly() {
    let (env, out) = run([page(&[pr(7, r#""lone \udc00 surrogate""#)]), page(&[])]);
    assert_stream_failed(&env, &out, "lone surrogate escape");
    let mut bytes = page(&[pr(8, "\"PLACEHOLDER\"")]);
    bytes = bytes.replace("PLACEHOLDER", "\u{fffd}");
    let raw = bytes.replace('\u{fffd}', "\\u00ff\\ud800");
    let (env, out) = run([raw, page(&[])]);
    assert_stream_failed(&env, &out, "high surrogate without low");
}

#[test]
fn a_record_repeated_across_pages_is_one_row() {
    // Full pages as GitHub sends them: 100 PRs, then the last
    // of them again (it moved while paging) and 50 more.
    let p1: Vec<String> = (1..=100).map(|i| pr(i, "\"a\"")).collect();
    let mut p2: Vec<String> = vec![pr(100, "\"a\"")];
    p2.extend((101..=150).map(|i| pr(i, "\"b\"")));
    let (env, out) = run([page(&p1), page(&p2)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(env.table_counts()["PULL_REQUEST"], 150);
    env.assert_no_duplicate_keys();
}

/// A page with fewer than 100 items does not end paging when its `Link` header has a
/// `rel="next"` (connectors/github/src/pager.rs): only `Link` says where the end is,
/// and rows behind a short page would otherwise be lost.
#[test]
fn a_short_page_with_a_next_link_is_followed() {
    let (env, out) = run([
        page(&[pr(1, "\"a\""), pr(2, "\"b\"")]),
        page(&[pr(3, "\"c\"")]),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(env.table_counts()["PULL_REQUEST"], 3);
}
