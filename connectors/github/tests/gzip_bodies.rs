//! Gzip bodies as the client meets them on a socket: a local HTTP server answers each
//! request with the next canned response (status, headers, body bytes), as GitHub or a
//! proxy in front of it could. The stand-in only gzips 200s; these are the other cases.

use flate2::write::GzEncoder;
use flowctl_core::progress::NoProgress;
use flowctl_core::secret::Secret;
use flowctl_github::auth::Auth;
use flowctl_github::http::{Client, Fetched, HttpError};
use flowctl_github::GithubConfig;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct Canned {
    status: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gzipped(status: &'static str, json: &str) -> Canned {
    Canned {
        status,
        headers: vec![("Content-Encoding", "gzip".into())],
        body: gz(json.as_bytes()),
    }
}

/// Serves `answers` in order, one per connection; returns the base URL and a log of the
/// requests' `Accept-Encoding` headers.
async fn serve(answers: Vec<Canned>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let queue = Arc::new(Mutex::new(VecDeque::from(answers)));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&head).to_lowercase();
            let accept = text
                .lines()
                .find_map(|l| l.strip_prefix("accept-encoding:"))
                .unwrap_or("")
                .trim()
                .to_string();
            log.lock().unwrap().push(accept);
            let Some(a) = queue.lock().unwrap().pop_front() else {
                return;
            };
            let mut out = format!(
                "HTTP/1.1 {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                a.status,
                a.body.len()
            );
            for (k, v) in &a.headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            let _ = sock.write_all(out.as_bytes()).await;
            let _ = sock.write_all(&a.body).await;
            let _ = sock.shutdown().await;
        }
    });
    (base, seen)
}

fn client(base: &str) -> Client {
    let cfg = GithubConfig::from_value(serde_json::json!({
        "orgs": ["acme"],
        "base_url": base,
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

async fn get(c: &Client, base: &str) -> Result<Fetched<String>, HttpError> {
    c.get("x", &format!("{base}/repos/acme/a/pulls"), None, |b| {
        String::from_utf8(b.to_vec()).map_err(|e| e.to_string())
    })
    .await
}

#[tokio::test]
async fn a_gzipped_page_arrives_inflated_and_gzip_was_asked_for() {
    let (base, seen) = serve(vec![gzipped("200 OK", r#"[{"id":1}]"#)]).await;
    match get(&client(&base), &base).await {
        Ok(Fetched::Page { data, .. }) => assert_eq!(data, r#"[{"id":1}]"#),
        other => panic!("{:?}", other.err()),
    }
    assert_eq!(*seen.lock().unwrap(), vec!["gzip".to_string()]);
}

#[tokio::test]
async fn a_gzipped_secondary_limit_body_is_read_as_one() {
    // No Retry-After: only the (gzipped) message says it is a secondary limit. Read as
    // gzip bytes it would be a plain 403 and fail.
    let (base, seen) = serve(vec![
        gzipped(
            "403 Forbidden",
            r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}"#,
        ),
        gzipped("200 OK", "[]"),
    ])
    .await;
    match get(&client(&base), &base).await {
        Ok(Fetched::Page { data, .. }) => assert_eq!(data, "[]"),
        other => panic!("{:?}", other.err()),
    }
    assert_eq!(seen.lock().unwrap().len(), 2, "waited, then asked again");
}

#[tokio::test]
async fn a_corrupt_gzip_body_is_retried_then_named() {
    let mut bad = gz(br#"[{"id":1},{"id":2},{"id":3}]"#);
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    let corrupt = || Canned {
        status: "200 OK",
        headers: vec![("Content-Encoding", "gzip".into())],
        body: bad.clone(),
    };
    let (base, seen) = serve(vec![corrupt(), corrupt()]).await;
    match get(&client(&base), &base).await {
        Err(HttpError::Failed(m)) => {
            assert!(m.contains("does not inflate"), "{m}");
            assert!(m.contains("gave up after 2 attempts"), "{m}");
        }
        other => panic!("expected a failure, got {:?}", other.ok().is_some()),
    }
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn an_encoding_not_asked_for_fails_a_page_but_not_an_error_answer() {
    let br = |status| Canned {
        status,
        headers: vec![("Content-Encoding", "br".into())],
        body: b"\x0b\x02\x80[]\x03".to_vec(),
    };
    // A 200 in an encoding flowctl cannot read: named, not retried.
    let (base, seen) = serve(vec![br("200 OK")]).await;
    match get(&client(&base), &base).await {
        Err(HttpError::Failed(m)) => assert!(m.contains("Content-Encoding `br`"), "{m}"),
        other => panic!("expected a failure, got {:?}", other.ok().is_some()),
    }
    assert_eq!(seen.lock().unwrap().len(), 1);
    // A 502 from a proxy, whatever its encoding, is still a 5xx: retried.
    let (base, seen) = serve(vec![br("502 Bad Gateway"), gzipped("200 OK", "[]")]).await;
    match get(&client(&base), &base).await {
        Ok(Fetched::Page { data, .. }) => assert_eq!(data, "[]"),
        other => panic!("{:?}", other.err()),
    }
    assert_eq!(seen.lock().unwrap().len(), 2);
}
