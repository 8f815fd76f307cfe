//! The stand-in behaves like GitHub where clients depend on it: Link pagination to
//! /repositories/{id}, ETag/304, rate-limit headers, sorting by updated_at, faults.

use flowctl_github_standin::{Faults, Standin, StandinConfig};
use serde_json::{json, Value};

fn cfg() -> StandinConfig {
    StandinConfig {
        orgs: 2,
        repos_per_org: 2,
        prs_per_repo: 150,
        ..Default::default()
    }
}

async fn get(url: &str, etag: Option<&str>) -> reqwest::Response {
    let mut rb = reqwest::Client::new().get(url);
    if let Some(e) = etag {
        rb = rb.header("if-none-match", e);
    }
    rb.send().await.unwrap()
}

fn next(r: &reqwest::Response) -> Option<String> {
    let link = r.headers().get("link")?.to_str().ok()?;
    link.split(',')
        .find(|p| p.contains("rel=\"next\""))
        .map(|p| {
            p.trim()
                .split(';')
                .next()
                .unwrap()
                .trim_matches(|c| c == '<' || c == '>' || c == ' ')
                .to_string()
        })
}

#[tokio::test]
async fn pulls_paginate_via_repositories_links_sorted_by_updated() {
    let s = Standin::start(cfg()).await.unwrap();
    let url = format!(
        "{}/repos/standin-org-0/repo-1/pulls?state=all&sort=updated&direction=desc&per_page=100",
        s.base_url()
    );
    let r = get(&url, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ratelimit-limit"], "1000000");
    assert!(r.headers().contains_key("x-ratelimit-reset"));
    let n = next(&r).unwrap();
    assert!(
        n.contains("/repositories/3000000001/pulls?") && n.ends_with("page=2"),
        "{n}"
    );
    let page1: Vec<Value> = r.json().await.unwrap();
    let r2 = get(&n, None).await;
    assert!(next(&r2).is_none());
    let page2: Vec<Value> = r2.json().await.unwrap();
    assert_eq!((page1.len(), page2.len()), (100, 50));
    let all: Vec<&Value> = page1.iter().chain(&page2).collect();
    let upd: Vec<&str> = all
        .iter()
        .map(|p| p["updated_at"].as_str().unwrap())
        .collect();
    assert!(
        upd.windows(2).all(|w| w[0] >= w[1]),
        "sorted by updated_at desc"
    );
    assert!(all
        .iter()
        .all(|p| p["id"].as_i64().unwrap() > i64::from(i32::MAX)));
    assert!(all.iter().any(|p| p["head"]["repo"].is_null()));
    assert!(
        all.iter().any(|p| p["merged_at"].is_null())
            && all.iter().any(|p| !p["merged_at"].is_null())
    );
    let size = serde_json::to_vec(&page1).unwrap().len() / 100;
    assert!(size > 12_000, "PR objects are full size ({size} bytes)");
}

#[tokio::test]
async fn etag_answers_304_until_a_pr_changes() {
    let s = Standin::start(cfg()).await.unwrap();
    let url = format!(
        "{}/repos/standin-org-0/repo-0/pulls?state=all&sort=updated&direction=desc&per_page=100",
        s.base_url()
    );
    let r = get(&url, None).await;
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let used = r.headers()["x-ratelimit-used"]
        .to_str()
        .unwrap()
        .to_string();
    let r = get(&url, Some(&etag)).await;
    assert_eq!(r.status(), 304);
    assert_eq!(
        r.headers()["x-ratelimit-used"].to_str().unwrap(),
        used,
        "304 costs no quota"
    );
    let touched = s.touch_pull_requests(2);
    assert_eq!(touched.len(), 2);
    let r = get(&url, Some(&etag)).await;
    assert_eq!(r.status(), 200);
    let page: Vec<Value> = r.json().await.unwrap();
    assert_eq!(
        page[0]["id"].as_u64().unwrap(),
        touched[0].2,
        "a touched PR moves to the top"
    );
    assert!(page[0]["title"].as_str().unwrap().ends_with("(edited 1)"));
    let st = s.stats();
    assert_eq!((st.total, st.not_modified, st.kind("pulls")), (3, 1, 3));
}

#[tokio::test]
async fn faults_fire_in_order_then_clear() {
    let s = Standin::start(cfg()).await.unwrap();
    s.set_faults(Faults {
        secondary_next: 1,
        secondary_retry_after: Some(7),
        fail_5xx_next: 1,
        truncate_next: 1,
        ..Default::default()
    });
    let url = format!("{}/orgs/standin-org-0/repos", s.base_url());
    let r = get(&url, None).await;
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["retry-after"].to_str().unwrap()
        ),
        (403, "7")
    );
    assert_eq!(get(&url, None).await.status(), 502);
    let body = get(&url, None).await.bytes().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&body).is_err(), "truncated");
    let ok: Vec<Value> = get(&url, None).await.json().await.unwrap();
    assert_eq!(ok.len(), 2);
    s.set_faults(Faults {
        primary_exhausted_next: 1,
        primary_reset_secs: 30,
        ..Default::default()
    });
    let r = get(&url, None).await;
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["x-ratelimit-remaining"].to_str().unwrap()
        ),
        (403, "0")
    );
    s.set_faults(Faults {
        missing_repo: Some("repo-0".into()),
        ..Default::default()
    });
    assert_eq!(
        get(
            &format!("{}/repos/standin-org-0/repo-0/pulls", s.base_url()),
            None
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        get(
            &format!("{}/repos/standin-org-0/repo-1/pulls", s.base_url()),
            None
        )
        .await
        .status(),
        200
    );
    assert_eq!(s.stats().faults_injected, 5);
    s.shutdown().await;
}

#[tokio::test]
async fn commits_filter_by_since_and_single_commit_has_files() {
    let s = Standin::start(cfg()).await.unwrap();
    let all: Vec<Value> = get(
        &format!(
            "{}/repos/standin-org-1/repo-0/commits?per_page=100",
            s.base_url()
        ),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(all.len(), 100);
    let since = all[9]["commit"]["committer"]["date"].as_str().unwrap();
    let some: Vec<Value> = get(
        &format!(
            "{}/repos/standin-org-1/repo-0/commits?per_page=100&since={since}",
            s.base_url()
        ),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(some.len(), 10);
    let sha = all[3]["sha"].as_str().unwrap();
    let c: Value = get(
        &format!("{}/repos/standin-org-1/repo-0/commits/{sha}", s.base_url()),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(c["files"].as_array().unwrap().len(), 3);
    assert_eq!(s.expected().orgs[1].commit_files, 2 * 120 * 3);
}

/// A client that does not decompress, so the test sees what went over the wire.
async fn get_encoded(url: &str, accept: Option<&str>) -> reqwest::Response {
    let client = reqwest::Client::builder().no_gzip().build().unwrap();
    let mut rb = client.get(url);
    if let Some(a) = accept {
        rb = rb.header("accept-encoding", a);
    }
    rb.send().await.unwrap()
}

#[tokio::test]
async fn bodies_are_gzipped_for_clients_that_accept_gzip_as_github_does() {
    use std::io::Read;
    let s = Standin::start(cfg()).await.unwrap();
    let url = format!(
        "{}/repos/standin-org-0/repo-1/pulls?state=all&per_page=100",
        s.base_url()
    );

    let plain = get_encoded(&url, None).await;
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap();
    assert!(serde_json::from_slice::<Vec<Value>>(&plain).is_ok());

    s.reset_stats();
    let zipped = get_encoded(&url, Some("gzip, deflate, br")).await;
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    assert_eq!(zipped.headers()["vary"], "Accept-Encoding");
    assert!(
        zipped.headers().contains_key("link"),
        "pagination headers survive compression"
    );
    let wire = zipped.bytes().await.unwrap();
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(&wire[..])
        .read_to_end(&mut json)
        .unwrap();
    assert_eq!(json, plain, "the gzip body decodes to the same JSON");
    assert!(
        wire.len() * 4 < plain.len(),
        "{} -> {}",
        plain.len(),
        wire.len()
    );
    let st = s.stats();
    assert_eq!(st.gzipped, 1);
    assert_eq!(st.body_bytes, wire.len() as u64);
    assert_eq!(st.json_bytes, plain.len() as u64);

    // Refused by q=0, or turned off on the server: plain JSON.
    let refused = get_encoded(&url, Some("gzip;q=0, identity")).await;
    assert!(refused.headers().get("content-encoding").is_none());
    s.set_gzip_level(0);
    let off = get_encoded(&url, Some("gzip")).await;
    assert!(off.headers().get("content-encoding").is_none());
    assert_eq!(off.bytes().await.unwrap(), plain);
}

#[tokio::test]
async fn a_merged_branch_lists_by_date_and_compare_pages_what_is_new_oldest_first() {
    let s = Standin::start(cfg()).await.unwrap();
    let b = s.base_url();
    let commits = format!("{b}/repos/standin-org-0/repo-0/commits?per_page=100");
    let before: Vec<Value> = get(&commits, None).await.json().await.unwrap();
    let old_head = before[0]["sha"].as_str().unwrap().to_string();
    let etag = get(&commits, None).await.headers()["etag"].clone();
    let new = s
        .merge_branch_with_old_dates("standin-org-0", "repo-0", 3, 30)
        .unwrap();
    assert_eq!(new.len(), 4);
    let merge = new.last().unwrap();
    let r = get(&commits, Some(etag.to_str().unwrap())).await;
    assert_eq!(r.status(), 200, "the list changed");
    let page: Vec<Value> = r.json().await.unwrap();
    // The merge commit (dated now) is the head; its parents are the old head and the
    // branch's tip; the branch's commits are by date, past the first page.
    assert_eq!(page[0]["sha"], merge.as_str());
    let parents: Vec<&str> = page[0]["parents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sha"].as_str().unwrap())
        .collect();
    assert_eq!(parents, [old_head.as_str(), new[2].as_str()]);
    assert!(page
        .iter()
        .all(|c| !new[..3].contains(&c["sha"].as_str().unwrap().to_string())));
    let dates: Vec<&str> = page
        .iter()
        .map(|c| c["commit"]["committer"]["date"].as_str().unwrap())
        .collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "newest first");

    // Compare, paged: oldest first, Link to /repositories/{id}/compare/...
    let url = format!("{b}/repos/standin-org-0/repo-0/compare/{old_head}...{merge}?per_page=3");
    let r = get(&url, None).await;
    let n = next(&r).unwrap();
    assert!(
        n.contains(&format!(
            "/repositories/3000000000/compare/{old_head}...{merge}?"
        )),
        "{n}"
    );
    let p1: Value = r.json().await.unwrap();
    assert_eq!(
        (
            &p1["status"],
            &p1["ahead_by"],
            &p1["behind_by"],
            &p1["total_commits"]
        ),
        (&json!("ahead"), &json!(4), &json!(0), &json!(4))
    );
    let p2: Value = get(&n, None).await.json().await.unwrap();
    let shas: Vec<&str> = p1["commits"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2["commits"].as_array().unwrap())
        .map(|c| c["sha"].as_str().unwrap())
        .collect();
    assert_eq!(shas, new.iter().map(String::as_str).collect::<Vec<_>>());
    // Unpaged: all of them (up to 250), no Link; identical ends; an unknown base is 404.
    let r = get(
        &format!("{b}/repos/standin-org-0/repo-0/compare/{old_head}...{merge}"),
        None,
    )
    .await;
    assert!(next(&r).is_none());
    assert_eq!(
        r.json::<Value>().await.unwrap()["commits"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let same: Value = get(
        &format!("{b}/repos/standin-org-0/repo-0/compare/{merge}...{merge}"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (&same["status"], &same["total_commits"]),
        (&json!("identical"), &json!(0))
    );
    let gone = format!(
        "{b}/repos/standin-org-0/repo-0/compare/{}...{merge}",
        "ab".repeat(20)
    );
    assert_eq!(get(&gone, None).await.status(), 404);
    // A merged commit has its files.
    let one: Value = get(
        &format!("{b}/repos/standin-org-0/repo-0/commits/{}", new[0]),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(one["files"].as_array().unwrap().len(), 3);

    // After a force-push the old head is gone: compare from it answers 404.
    let head = s.force_push("standin-org-0", "repo-0").unwrap();
    let url = format!("{b}/repos/standin-org-0/repo-0/compare/{merge}...{head}");
    assert_eq!(get(&url, None).await.status(), 404);
    assert!(!s.branch_commits("standin-org-0", "repo-0").contains(merge));
}

#[tokio::test]
async fn user_accounts_answer_404_under_orgs_and_list_under_users() {
    let s = Standin::start_with_user_accounts(cfg(), 1).await.unwrap();
    let b = s.base_url();
    assert_eq!(
        get(&format!("{b}/orgs/standin-user-0/repos"), None)
            .await
            .status(),
        404
    );
    let r = get(
        &format!("{b}/users/standin-user-0/repos?type=owner&per_page=1"),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let n = next(&r).unwrap();
    assert!(
        n.contains("/user/9000000002/repos?") && n.ends_with("page=2"),
        "{n}"
    );
    let page: Vec<Value> = r.json().await.unwrap();
    assert_eq!(page[0]["full_name"], "standin-user-0/repo-0");
    assert_eq!(page[0]["owner"]["type"], "User");
    let u: Value = get(&format!("{b}/users/standin-user-0"), None)
        .await
        .json()
        .await
        .unwrap();
    let o: Value = get(&format!("{b}/users/standin-org-1"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (&u["type"], &o["type"]),
        (&json!("User"), &json!("Organization"))
    );
    assert_eq!(get(&format!("{b}/users/nobody"), None).await.status(), 404);
    // Its repositories are read like any other.
    let c = get(&format!("{b}/repos/standin-user-0/repo-1/commits"), None).await;
    assert_eq!(c.status(), 200);
}

#[tokio::test]
async fn archiving_a_repo_changes_its_object_and_the_list_etag() {
    let s = Standin::start(cfg()).await.unwrap();
    let url = format!("{}/orgs/standin-org-0/repos?per_page=100", s.base_url());
    let r = get(&url, None).await;
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let before: Vec<Value> = r.json().await.unwrap();
    assert!(s.archive_repo("standin-org-0", "repo-1"));
    let r = get(&url, Some(&etag)).await;
    assert_eq!(r.status(), 200);
    let after: Vec<Value> = r.json().await.unwrap();
    assert_eq!(
        (&before[1]["archived"], &after[1]["archived"]),
        (&json!(false), &json!(true))
    );
    assert!(after[1]["updated_at"].as_str() > before[1]["updated_at"].as_str());
    assert_eq!(before[0], after[0]);
}
