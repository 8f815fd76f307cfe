//! Gzip bodies as the GitHub client meets them on a socket: [`TinyServer`] answers each
//! request with the next canned reply (status, headers, body bytes), as GitHub or a proxy
//! in front of it could. The stand-in only gzips 200s; these are the other cases.

use flate2::write::GzEncoder;
use flowctl_core::progress::NoProgress;
use flowctl_core::secret::Secret;
use flowctl_github::auth::Auth;
use flowctl_github::http::{Client, Fetched, HttpError};
use flowctl_github::GithubConfig;
use flowctl_testkit::{Reply, TinyServer};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn encoded(status: u16, encoding: &str, body: Vec<u8>) -> Reply {
    Reply {
        status,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Content-Encoding".into(), encoding.into()),
        ],
        body,
    }
}

fn gzipped(status: u16, json: &str) -> Reply {
    encoded(status, "gzip", gz(json.as_bytes()))
}

/// Serves `replies` in order (a 500 once they run out).
fn serve(replies: Vec<Reply>) -> TinyServer {
    let queue = Mutex::new(VecDeque::from(replies));
    TinyServer::start(move |_| {
        let next = queue.lock().unwrap().pop_front();
        next.unwrap_or_else(|| Reply::status(500))
    })
}

fn client(s: &TinyServer) -> Client {
    let cfg = GithubConfig::from_value(serde_json::json!({
        "orgs": ["acme"],
        "base_url": s.base_url,
        "max_retries": 1,
        "retry_backoff_ms": 1,
        "secondary_limit_wait_seconds": 1,
    }))
    .unwrap();
    Client::new(
        &cfg,
        Auth::Token(Secret::new("ghp_x")),
        Arc::new(NoProgress),
    )
    .unwrap()
}

async fn get(s: &TinyServer) -> Result<Fetched<String>, HttpError> {
    let url = format!("{}/repos/acme/a/pulls", s.base_url);
    client(s)
        .get("x", &url, None, |b| {
            String::from_utf8(b.to_vec()).map_err(|e| e.to_string())
        })
        .await
}

fn page(r: Result<Fetched<String>, HttpError>) -> String {
    match r {
        Ok(Fetched::Page { data, .. }) => data,
        Ok(Fetched::NotModified) => panic!("304"),
        Err(e) => panic!("{e}"),
    }
}

fn failure(r: Result<Fetched<String>, HttpError>) -> String {
    match r {
        Err(HttpError::Failed(m)) => m,
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("expected a failure"),
    }
}

#[tokio::test]
async fn a_gzipped_page_arrives_inflated_and_gzip_was_asked_for() {
    let s = serve(vec![gzipped(200, r#"[{"id":1}]"#)]);
    assert_eq!(page(get(&s).await), r#"[{"id":1}]"#);
    let seen = s.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("accept-encoding"), Some("gzip"));
}

#[tokio::test]
async fn a_gzipped_secondary_limit_body_is_read_as_one() {
    // No Retry-After: only the (gzipped) message says it is a secondary limit. Read as
    // gzip bytes it would be a plain 403 and fail.
    let s = serve(vec![
        gzipped(
            403,
            r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}"#,
        ),
        gzipped(200, "[]"),
    ]);
    assert_eq!(page(get(&s).await), "[]");
    assert_eq!(s.requests().len(), 2, "waited, then asked again");
}

#[tokio::test]
async fn a_corrupt_gzip_body_is_retried_then_named() {
    let mut bad = gz(br#"[{"id":1},{"id":2},{"id":3}]"#);
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    let s = serve(vec![
        encoded(200, "gzip", bad.clone()),
        encoded(200, "gzip", bad),
    ]);
    let m = failure(get(&s).await);
    assert!(m.contains("does not inflate"), "{m}");
    assert!(m.contains("gave up after 2 attempts"), "{m}");
    assert_eq!(s.requests().len(), 2);
}

#[tokio::test]
async fn an_encoding_not_asked_for_fails_a_page_but_not_an_error_answer() {
    let br = || b"\x0b\x02\x80[]\x03".to_vec();
    // A 200 in an encoding flowctl cannot read: named, not retried.
    let s = serve(vec![encoded(200, "br", br())]);
    let m = failure(get(&s).await);
    assert!(m.contains("Content-Encoding `br`"), "{m}");
    assert_eq!(s.requests().len(), 1);
    // A 502 from a proxy, whatever its encoding, is still a 5xx: retried.
    let s = serve(vec![encoded(502, "br", br()), gzipped(200, "[]")]);
    assert_eq!(page(get(&s).await), "[]");
    assert_eq!(s.requests().len(), 2);
}

#[tokio::test]
async fn an_error_answer_whose_body_does_not_inflate_is_judged_by_its_status() {
    // A proxy's plain 404 page marked gzip: not found, at once (not retried as corrupt).
    let s = serve(vec![encoded(
        404,
        "gzip",
        b"<html>Not Found</html>".to_vec(),
    )]);
    match get(&s).await {
        Err(HttpError::NotFound(m)) => {
            assert!(m.contains("HTTP 404") && m.contains("Not Found"), "{m}")
        }
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("a 404 read as a page"),
    }
    assert_eq!(s.requests().len(), 1);
}
