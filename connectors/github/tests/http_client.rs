//! The HTTP client's host discipline against the GitHub stand-in: the token never
//! leaves the configured origin (redirects and `Link` targets to another host are refused).

use flowctl_core::progress::NoProgress;
use flowctl_core::secret::Secret;
use flowctl_github::auth::Auth;
use flowctl_github::http::{Client, Fetched, HttpError};
use flowctl_github::GithubConfig;
use flowctl_github_standin::{Standin, StandinConfig};
use std::sync::Arc;

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
    let s = Standin::start(StandinConfig {
        prs_per_repo: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let c = client(&s).await;
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
    let s = Standin::start(StandinConfig {
        prs_per_repo: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let c = client(&s).await;
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
