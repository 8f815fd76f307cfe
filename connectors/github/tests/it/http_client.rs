//! The HTTP client against the GitHub stand-in and a tiny server: the token never leaves
//! the configured origin (redirects and `Link` targets to another host are refused), and
//! only transient answers are asked again.

use flowctl_core::progress::NoProgress;
use flowctl_core::secret::Secret;
use flowctl_github::auth::Auth;
use flowctl_github::http::{Client, Fetched, HttpError};
use flowctl_github::GithubConfig;
use flowctl_github_standin::{Standin, StandinConfig};
use flowctl_testkit::{Reply, TinyServer};
use std::sync::Arc;

/// A one-PR stand-in and a client pointed at it.
async fn standin_and_client() -> (Standin, Client) {
    let s = Standin::start(StandinConfig {
        prs_per_repo: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let c = client(&s).await;
    (s, c)
}

async fn client(s: &Standin) -> Client {
    let cfg =
        GithubConfig::from_value(serde_json::json!({"orgs": ["acme"], "base_url": s.base_url()}))
            .unwrap();
    Client::new(
        &cfg,
        Auth::Token(Secret::new("ghp_CANARY")),
        Arc::new(NoProgress),
    )
    .unwrap()
}

#[tokio::test]
async fn cross_host_redirect_is_refused_and_same_host_followed() {
    let (s, c) = standin_and_client().await;
    let port = s.base_url().rsplit(':').next().unwrap().to_string();
    // localhost is another origin than 127.0.0.1, though it reaches the same server.
    let away = format!(
        "{}/__redirect?to=http://localhost:{port}/rate_limit",
        s.base_url()
    );
    let err = match c.get("x", &away, None, |b| Ok(b.len())).await {
        Err(HttpError::Failed(m)) => m,
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("cross-host redirect was followed"),
    };
    assert!(err.contains("redirect refused"), "{err}");
    assert!(!err.contains("CANARY"));
    assert_eq!(
        s.stats().kind("rate_limit"),
        0,
        "the other host was never asked"
    );

    let home = format!("{}/__redirect?to={}/rate_limit", s.base_url(), s.base_url());
    assert!(matches!(
        c.get("x", &home, None, |b| Ok(b.len())).await,
        Ok(Fetched::Page { .. })
    ));
    assert_eq!(s.stats().kind("rate_limit"), 1);
}

#[tokio::test]
async fn link_to_another_host_is_not_followed() {
    let (s, c) = standin_and_client().await;
    let port = s.base_url().rsplit(':').next().unwrap().to_string();
    let foreign = format!("http://localhost:{port}/repositories/1/pulls?page=2");
    match c.get("x", &foreign, None, |b| Ok(b.len())).await {
        Err(HttpError::Failed(m)) => assert!(
            m.contains("refusing to follow a link to another host"),
            "{m}"
        ),
        _ => panic!("a foreign link was followed"),
    }
    assert_eq!(s.stats().total, 0);
}

/// A successful body is inflated and parsed only once the page before it has given its
/// turn up (`http::ParseTurn`): a request that finishes meanwhile is answered, then waits
/// with its body as it came. Error answers need no turn.
#[tokio::test]
async fn a_body_is_parsed_only_after_the_page_before_gave_its_turn_up() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    let (s, c) = standin_and_client().await;
    let url = format!("{}/rate_limit", s.base_url());
    let Ok(Fetched::Page { turn, .. }) = c.get("x", &url, None, |b| Ok(b.len())).await else {
        panic!("no page");
    };
    assert!(turn.is_held(), "a successful page comes with the turn");

    // An error answer is judged without waiting for the turn.
    let gone = format!("{}/repos/acme/no-such-repo/pulls", s.base_url());
    let judged = tokio::time::timeout(
        Duration::from_secs(10),
        c.get("x", &gone, None, |b| Ok(b.len())),
    )
    .await;
    assert!(
        matches!(judged, Ok(Err(HttpError::NotFound(_)))),
        "a 404 waited for the turn or was not a 404"
    );

    let parsed = AtomicBool::new(false);
    let second = c.get("x", &url, None, |b| {
        parsed.store(true, Ordering::SeqCst);
        Ok(b.len())
    });
    tokio::pin!(second);
    let early = tokio::time::timeout(Duration::from_millis(500), &mut second).await;
    assert!(
        early.is_err(),
        "the second page came back while the first held the turn"
    );
    assert_eq!(
        s.stats().total,
        3,
        "the second request was answered meanwhile"
    );
    assert!(
        !parsed.load(Ordering::SeqCst),
        "parsed while the first page held the turn"
    );

    drop(turn);
    let Ok(Fetched::Page { turn, .. }) = second.await else {
        panic!("no second page");
    };
    assert!(parsed.load(Ordering::SeqCst));
    assert!(turn.is_held());
}

#[tokio::test]
async fn a_body_past_the_bound_fails_the_request_without_being_held_whole() {
    let s = Standin::start(StandinConfig {
        prs_per_repo: 30,
        ..Default::default()
    })
    .await
    .unwrap();
    let url = format!(
        "{}/repos/standin-org-0/repo-0/pulls?state=all&per_page=100",
        s.base_url()
    );
    let whole = match client(&s).await.get("x", &url, None, |b| Ok(b.len())).await {
        Ok(Fetched::Page { data, .. }) => data,
        _ => panic!("no page under the default bound"),
    };
    assert!(whole > 100_000, "30 PRs inflate to {whole} bytes");
    // 1,000 bytes is far under what comes over the wire (the page comes gzipped): refused
    // while it streams in. One byte under the inflated page: refused as it inflates.
    for (bound, want) in [
        (1_000, "the response body is over 1000 bytes".to_string()),
        (
            whole - 1,
            format!("inflates to more than {} bytes", whole - 1),
        ),
    ] {
        let c = client(&s).await.with_max_body(bound);
        match c.get("x", &url, None, |b| Ok(b.len())).await {
            Err(HttpError::Failed(m)) => assert!(m.contains(&want) && !m.contains("CANARY"), "{m}"),
            Err(e) => panic!("bound {bound}: unexpected error {e}"),
            Ok(_) => panic!("bound {bound}: a body over the bound was parsed"),
        }
    }
    // Refused at once, not retried: a body that large will come again.
    assert_eq!(s.stats().kind("pulls"), 3, "{:?}", s.stats());
}

/// Core's one rule decides what is asked again: 408, 429 without a spent quota, and 5xx
/// may succeed on a retry; any other 4xx fails at once, after one request.
#[tokio::test]
async fn transient_answers_are_asked_again_and_others_fail_at_once() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let srv = TinyServer::start(move |_| match seen.fetch_add(1, Ordering::SeqCst) {
        0 => Reply::status(408),
        1 => Reply::status(503),
        _ => Reply::json("[]"),
    });
    let c = client_of(&srv.base_url);
    let url = format!("{}/repos/acme/widgets/pulls", srv.base_url);
    let got = c.get("x", &url, None, |b| Ok(b.len())).await;
    assert!(matches!(got, Ok(Fetched::Page { .. })), "{:?}", got.err());
    assert_eq!(srv.requests().len(), 3, "408 and 503 were each asked again");

    let srv = TinyServer::start(|_| Reply::status(400));
    let url = format!("{}/repos/acme/widgets/pulls", srv.base_url);
    match client_of(&srv.base_url)
        .get("x", &url, None, |b| Ok(b.len()))
        .await
    {
        Err(HttpError::Failed(m)) => assert!(m.contains("HTTP 400"), "{m}"),
        other => panic!("a 400 did not fail: {:?}", other.err()),
    }
    assert_eq!(srv.requests().len(), 1, "a 400 is not asked again");
}

fn client_of(base_url: &str) -> Client {
    let cfg = GithubConfig::from_value(serde_json::json!({
        "orgs": ["acme"],
        "base_url": base_url,
        "max_retries": 3,
        "retry_backoff_ms": 1,
    }))
    .unwrap();
    Client::new(
        &cfg,
        Auth::Token(Secret::new("ghp_CANARY")),
        Arc::new(NoProgress),
    )
    .unwrap()
}
