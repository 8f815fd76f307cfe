//! End to end: `flowctl apply` with two tokens against the GitHub stand-in (each token
//! with its own quota, ETags specific to the token as api.github.com's are). The run
//! summary shows each token's quota by its reference and never a token; a second run
//! answers 304 throughout because each repository kept its token.

use flowctl_github_standin::{Faults, Standin, StandinConfig};
use flowctl_testkit::*;
use std::collections::BTreeMap;

const TOKEN_A: &str = "ghp_e2e_token_not_secret";
const TOKEN_B: &str = "ghp_e2e_second_token_CANARY";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tokens_show_their_quota_in_the_summary_and_keep_etags_working() {
    let gh = Standin::start(StandinConfig {
        orgs: 1,
        repos_per_org: 8,
        prs_per_repo: 20,
        reviews_per_pr: 1,
        commits_per_repo: 5,
        files_per_commit: 1,
        latency_ms: 0,
        seed: 5,
    })
    .await
    .unwrap();
    gh.set_faults(Faults {
        token_quotas: BTreeMap::from([(TOKEN_A.to_string(), 500), (TOKEN_B.to_string(), 400)]),
        etag_per_token: true,
        ..Default::default()
    });
    let env = Env::new(&gh, &["pull_request", "commit", "repository"]);
    let spec = std::fs::read_to_string(&env.spec).unwrap().replace(
        "  token: { env: E2E_GITHUB_TOKEN }",
        "  token: [{ env: E2E_GITHUB_TOKEN }, { env: E2E_GITHUB_TOKEN_2 }]",
    );
    std::fs::write(&env.spec, spec).unwrap();
    let vars = [("E2E_GITHUB_TOKEN_2", TOKEN_B)];

    let out = env.apply_with_env(&[], &vars);
    for text in [&out.stdout, &out.stderr, &out.summary.to_string()] {
        assert!(!text.contains(TOKEN_A) && !text.contains(TOKEN_B), "{text}");
    }
    let stats = gh.stats();
    let summary = out.success();
    let used = |t: &str| stats.by_token.get(t).copied().unwrap_or(0);
    let (a, b) = (used(TOKEN_A), used(TOKEN_B));
    assert!(a > 0 && b > 0, "both tokens used: {a}, {b}");
    let quota = summary["quota"].as_array().unwrap();
    assert_eq!(quota.len(), 2, "{quota:?}");
    for (q, name, used, limit) in [
        (&quota[0], "token[0] (env E2E_GITHUB_TOKEN)", a, 500),
        (&quota[1], "token[1] (env E2E_GITHUB_TOKEN_2)", b, 400),
    ] {
        assert_eq!(q["credential"], name, "{q}");
        assert_eq!(q["used"], used, "{q}");
        assert_eq!(q["remaining"], limit - used, "{q}");
        assert_eq!(q["limit"], limit, "{q}");
        assert!(q["resets_at"].is_string(), "{q}");
    }

    // Nothing changed: every request is conditional and answered 304, which it is only
    // with the token that got the ETag.
    gh.reset_stats();
    let out = env.apply_with_env(&[], &vars);
    let text = out.stdout.clone();
    out.success();
    let stats = gh.stats();
    // The repository list, then for each repository its pulls and the default branch's
    // head (the commit streams' conditional check).
    let kind = |k: &str| stats.by_kind.get(k).copied().unwrap_or(0);
    assert!(
        kind("pulls") > 0 && kind("pulls") == kind("commits"),
        "{stats:?}"
    );
    assert_eq!(
        stats.total,
        1 + kind("pulls") + kind("commits"),
        "{stats:?}"
    );
    assert_eq!(stats.not_modified, stats.total, "{stats:?}");
    // The table shows each token with what is left.
    assert!(
        text.contains(&format!(
            "quota token[1] (env E2E_GITHUB_TOKEN_2): 0 requests used, {} of 400 left",
            400 - b
        )),
        "{text}"
    );
    gh.shutdown().await;
}
