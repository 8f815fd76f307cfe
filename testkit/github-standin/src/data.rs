//! Deterministic GitHub-shaped data. Objects are rendered with `write!` from pre-rendered
//! fragments (repository and user objects are rendered once), so the server is cheap
//! enough that benchmarks measure the client, while pages keep real sizes (~17 KB a PR).

use crate::StandinConfig;
use std::fmt::Write;

/// 2026-01-01T00:00:00Z: the newest generated timestamp (touched PRs move past it).
pub const T0: i64 = 1_767_225_600;
const API: &str = "https://api.github.com";
const WEB: &str = "https://github.com";
const USER_POOL: usize = 40;

pub fn hash(parts: &[u64]) -> u64 {
    let mut ctx = md5::Context::new();
    for p in parts {
        ctx.consume(p.to_le_bytes());
    }
    let d = ctx.finalize();
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// `standin-org-0`, `standin-org-1`, ... (the offline quickstart relies on the first).
pub fn org_name(i: usize) -> String {
    format!("standin-org-{i}")
}

pub fn repo_name(j: usize) -> String {
    format!("repo-{j}")
}

pub fn ts(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// One repository with its pre-rendered JSON object.
pub struct RepoData {
    pub org: usize,
    pub idx: usize,
    pub id: u64,
    pub org_name: String,
    pub name: String,
    pub json: String,
    pub archived: bool,
    pub fork: bool,
}

/// `standin-user-0`, ...: user accounts that own repositories (not organisations).
pub fn user_account_name(i: usize) -> String {
    format!("standin-user-{i}")
}

/// Immutable generated world (mutable PR timestamps live in the server state).
pub struct World {
    pub cfg: StandinConfig,
    pub users: Vec<String>,
    pub user_logins: Vec<String>,
    /// Owner accounts: the `cfg.orgs` organisations, then the user accounts. A
    /// repository's `org` indexes these.
    pub org_json: Vec<String>,
    pub org_ids: Vec<u64>,
    pub owner_names: Vec<String>,
    pub repos: Vec<RepoData>,
}

impl World {
    pub fn new(cfg: StandinConfig) -> World {
        Self::with_user_accounts(cfg, 0)
    }

    /// The world plus `accounts` user accounts, each owning `repos_per_org` repositories.
    pub fn with_user_accounts(cfg: StandinConfig, accounts: usize) -> World {
        let (users, user_logins) = (0..USER_POOL).map(|i| render_user(cfg.seed, i)).unzip();
        let owner_names: Vec<String> = (0..cfg.orgs)
            .map(org_name)
            .chain((0..accounts).map(user_account_name))
            .collect();
        let org_ids: Vec<u64> = (0..owner_names.len())
            .map(|i| 9_000_000_000 + i as u64)
            .collect();
        let org_json: Vec<String> = owner_names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let kind = if i < cfg.orgs { "Organization" } else { "User" };
                simple_user(name, org_ids[i], kind)
            })
            .collect();
        let mut repos = Vec::new();
        for (o, owner) in org_json.iter().enumerate() {
            for j in 0..cfg.repos_per_org {
                repos.push(render_repo(&cfg, o, &owner_names[o], j, owner));
            }
        }
        World {
            cfg,
            users,
            user_logins,
            org_json,
            org_ids,
            owner_names,
            repos,
        }
    }

    /// Index of the owner account `name` (organisation or user), any case.
    pub fn owner_index(&self, name: &str) -> Option<usize> {
        self.owner_names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
    }

    pub fn is_org(&self, owner: usize) -> bool {
        owner < self.cfg.orgs
    }

    pub fn repo_index(&self, org: &str, name: &str) -> Option<usize> {
        self.repos
            .iter()
            .position(|r| r.org_name.eq_ignore_ascii_case(org) && r.name == name)
    }

    pub fn repo_by_id(&self, id: u64) -> Option<usize> {
        self.repos.iter().position(|r| r.id == id)
    }

    fn user(&self, parts: &[u64]) -> &str {
        &self.users[(hash(parts) % USER_POOL as u64) as usize]
    }

    pub fn pr_id(&self, repo: usize, k: usize) -> u64 {
        2_500_000_000 + (repo as u64) * 10_000_000 + k as u64
    }

    pub fn pr_number(&self, k: usize) -> u64 {
        (self.cfg.prs_per_repo - k) as u64
    }

    /// Initial `updated_at` of PR `k` (k = 0 is the most recently updated).
    pub fn pr_initial_updated(&self, repo: usize, k: usize) -> i64 {
        T0 - (k as i64) * 600 - (repo as i64 % 600)
    }

    pub fn commit_date(&self, repo: usize, c: usize) -> i64 {
        T0 - (c as i64) * 900 - (repo as i64 % 900)
    }

    pub fn commit_sha(&self, repo: usize, c: usize) -> String {
        format!(
            "{:016x}{:016x}{:08x}",
            hash(&[self.cfg.seed, repo as u64, c as u64]),
            hash(&[c as u64, 7]),
            c
        )
    }

    /// Unique for up to 1,024 reviews a PR (more than a page, so paging is testable).
    pub fn review_id(&self, repo: usize, k: usize, r: usize) -> u64 {
        3_000_000_000 + ((repo as u64) * 10_000_000 + k as u64) * 1024 + r as u64
    }
}

fn simple_user(login: &str, id: u64, kind: &str) -> String {
    let u = format!("{API}/users/{login}");
    format!(
        r#"{{"login":"{login}","id":{id},"node_id":"MDQ6VXNlcj{id}","avatar_url":"https://avatars.githubusercontent.com/u/{id}?v=4","gravatar_id":"","url":"{u}","html_url":"{WEB}/{login}","followers_url":"{u}/followers","following_url":"{u}/following{{/other_user}}","gists_url":"{u}/gists{{/gist_id}}","starred_url":"{u}/starred{{/owner}}{{/repo}}","subscriptions_url":"{u}/subscriptions","organizations_url":"{u}/orgs","repos_url":"{u}/repos","events_url":"{u}/events{{/privacy}}","received_events_url":"{u}/received_events","type":"{kind}","user_view_type":"public","site_admin":false}}"#
    )
}

fn render_user(seed: u64, i: usize) -> (String, String) {
    let login = format!("dev-{:x}-{i}", hash(&[seed, i as u64]) % 4096);
    let id = if i.is_multiple_of(5) {
        3_000_000_000 + i as u64
    } else {
        100_000 + i as u64
    };
    (simple_user(&login, id, "User"), login)
}

fn render_repo(cfg: &StandinConfig, o: usize, org: &str, j: usize, owner: &str) -> RepoData {
    let org = org.to_string();
    let name = repo_name(j);
    let id = 3_000_000_000 + (o as u64) * 100_000 + j as u64;
    let full = format!("{org}/{name}");
    let u = format!("{API}/repos/{full}");
    let archived = cfg.repos_per_org > 3 && j == cfg.repos_per_org - 1 && j % 4 == 3;
    let fork = j % 7 == 6;
    let desc = if j.is_multiple_of(3) {
        "null".to_string()
    } else {
        json_str(&format!("Service {j} — handles “things” 🚀"))
    };
    let lang = if j.is_multiple_of(4) {
        "null"
    } else {
        "\"Rust\""
    };
    let mut s = String::with_capacity(6000);
    let _ = write!(
        s,
        r#"{{"id":{id},"node_id":"R_kgDO{id}","name":"{name}","full_name":"{full}","private":{private},"owner":{owner},"html_url":"{WEB}/{full}","description":{desc},"fork":{fork},"url":"{u}","forks_url":"{u}/forks","keys_url":"{u}/keys{{/key_id}}","collaborators_url":"{u}/collaborators{{/collaborator}}","teams_url":"{u}/teams","hooks_url":"{u}/hooks","issue_events_url":"{u}/issues/events{{/number}}","events_url":"{u}/events","assignees_url":"{u}/assignees{{/user}}","branches_url":"{u}/branches{{/branch}}","tags_url":"{u}/tags","blobs_url":"{u}/git/blobs{{/sha}}","git_tags_url":"{u}/git/tags{{/sha}}","git_refs_url":"{u}/git/refs{{/sha}}","trees_url":"{u}/git/trees{{/sha}}","statuses_url":"{u}/statuses/{{sha}}","languages_url":"{u}/languages","stargazers_url":"{u}/stargazers","contributors_url":"{u}/contributors","subscribers_url":"{u}/subscribers","subscription_url":"{u}/subscription","commits_url":"{u}/commits{{/sha}}","git_commits_url":"{u}/git/commits{{/sha}}","comments_url":"{u}/comments{{/number}}","issue_comment_url":"{u}/issues/comments{{/number}}","contents_url":"{u}/contents/{{+path}}","compare_url":"{u}/compare/{{base}}...{{head}}","merges_url":"{u}/merges","archive_url":"{u}/{{archive_format}}{{/ref}}","downloads_url":"{u}/downloads","issues_url":"{u}/issues{{/number}}","pulls_url":"{u}/pulls{{/number}}","milestones_url":"{u}/milestones{{/number}}","notifications_url":"{u}/notifications{{?since,all,participating}}","labels_url":"{u}/labels{{/name}}","releases_url":"{u}/releases{{/id}}","deployments_url":"{u}/deployments","created_at":"{created}","updated_at":"{updated}","pushed_at":"{pushed}","git_url":"git://github.com/{full}.git","ssh_url":"git@github.com:{full}.git","clone_url":"{WEB}/{full}.git","svn_url":"{WEB}/{full}","homepage":null,"size":{size},"stargazers_count":{stars},"watchers_count":{stars},"language":{lang},"has_issues":true,"has_projects":true,"has_downloads":true,"has_wiki":false,"has_pages":false,"has_discussions":false,"forks_count":{forks},"mirror_url":null,"archived":{archived},"disabled":false,"open_issues_count":{open},"license":{{"key":"apache-2.0","name":"Apache License 2.0","spdx_id":"Apache-2.0","url":"{API}/licenses/apache-2.0","node_id":"MDc6TGljZW5zZTI="}},"allow_forking":true,"is_template":false,"web_commit_signoff_required":false,"topics":["backend","team-{o}"],"visibility":"{vis}","forks":{forks},"open_issues":{open},"watchers":{stars},"default_branch":"main","permissions":{{"admin":false,"maintain":false,"push":true,"triage":true,"pull":true}},"temp_clone_token":"","allow_squash_merge":true,"allow_merge_commit":true,"allow_rebase_merge":true,"allow_auto_merge":false,"delete_branch_on_merge":true}}"#,
        private = j.is_multiple_of(2),
        created = ts(T0 - 400 * 86400 - j as i64 * 3600),
        updated = ts(T0 - j as i64 * 60),
        pushed = ts(T0 - j as i64 * 30),
        size = 1000 + j * 17,
        stars = j * 3,
        forks = j,
        open = cfg.prs_per_repo / 5,
        vis = if j.is_multiple_of(2) {
            "private"
        } else {
            "internal"
        },
    );
    RepoData {
        org: o,
        idx: j,
        id,
        org_name: org,
        name,
        json: s,
        archived,
        fork,
    }
}

/// Mutable facts of one PR, copied out of the server state for rendering.
#[derive(Clone, Copy)]
pub struct PrFacts {
    pub k: usize,
    pub updated: i64,
    pub rev: u32,
}

pub fn pr_title(k: usize, rev: u32) -> String {
    let base = if k.is_multiple_of(13) {
        format!("Fix 🐛 in the naïve “parser” — \"quotes\" \\ back\\slash 日本語 #{k}")
    } else {
        format!("Improve module {k} handling")
    };
    if rev > 0 {
        format!("{base} (edited {rev})")
    } else {
        base
    }
}

/// One pulls-list item, shaped like GitHub's `pull-request-simple`.
pub fn render_pr(w: &World, repo: usize, f: PrFacts, out: &mut String) {
    let r = &w.repos[repo];
    let k = f.k;
    let seed = w.cfg.seed;
    let number = w.pr_number(k);
    let id = w.pr_id(repo, k);
    let full = format!("{}/{}", r.org_name, r.name);
    let u = format!("{API}/repos/{full}");
    let open = k.is_multiple_of(5);
    let merged = !open && !k.is_multiple_of(3);
    let created = f.updated - 86_400 * ((k % 10) as i64 + 1);
    let closed_at = if open {
        "null".into()
    } else {
        format!("\"{}\"", ts(f.updated - 60))
    };
    let merged_at = if merged {
        format!("\"{}\"", ts(f.updated - 60))
    } else {
        "null".into()
    };
    let merge_sha = if open && k.is_multiple_of(2) {
        "null".into()
    } else {
        format!("\"{:040x}\"", hash(&[seed, id, 1]) as u128)
    };
    let head_sha = format!(
        "{:016x}{:016x}{:08x}",
        hash(&[seed, id, 2]),
        hash(&[id, 3]),
        k
    );
    let base_sha = format!(
        "{:016x}{:016x}{:08x}",
        hash(&[seed, id, 4]),
        hash(&[id, 5]),
        k
    );
    let user = w.user(&[seed, id]);
    let body = if k.is_multiple_of(9) {
        "null".to_string()
    } else {
        json_str(&format!("## Summary\n\nThis change improves module {k}.\n\n- [x] tests\n- [ ] docs\n\nCloses #{}.\n\n{}", k + 1, "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(4)))
    };
    let mut labels = String::from("[");
    for l in 0..(k % 3) {
        if l > 0 {
            labels.push(',');
        }
        let lid = 7_000_000_000 + l as u64;
        let name = ["bug", "enhancement ✨"][l];
        let _ = write!(
            labels,
            r#"{{"id":{lid},"node_id":"LA_{lid}","url":"{u}/labels/{name}","name":"{name}","color":"f29513","default":{},"description":"Something"}}"#,
            l == 0
        );
    }
    labels.push(']');
    let mut reviewers = String::from("[");
    for i in 0..(k % 3) {
        if i > 0 {
            reviewers.push(',');
        }
        reviewers.push_str(w.user(&[seed, id, 10 + i as u64]));
    }
    reviewers.push(']');
    let milestone = if k.is_multiple_of(4) {
        format!(
            r#"{{"url":"{u}/milestones/1","html_url":"{WEB}/{full}/milestone/1","labels_url":"{u}/milestones/1/labels","id":8000000001,"node_id":"MI_1","number":1,"state":"open","title":"v1.0 🎯","description":"First","creator":{user},"open_issues":4,"closed_issues":8,"created_at":"{c}","updated_at":"{c}","closed_at":null,"due_on":null}}"#,
            c = ts(T0 - 90 * 86400)
        )
    } else {
        "null".into()
    };
    let head_repo = if k.is_multiple_of(17) {
        "null"
    } else {
        r.json.as_str()
    };
    let head_label = if k.is_multiple_of(17) {
        "unknown:feature".to_string()
    } else {
        format!("{}:feature-{k}", r.org_name)
    };
    let assignee = if k.is_multiple_of(2) {
        w.user(&[seed, id, 20]).to_string()
    } else {
        "null".into()
    };
    let assignees = if k.is_multiple_of(2) {
        format!("[{assignee}]")
    } else {
        "[]".into()
    };
    let _ = write!(
        out,
        r#"{{"url":"{u}/pulls/{number}","id":{id},"node_id":"PR_kwDO{id}","html_url":"{WEB}/{full}/pull/{number}","diff_url":"{WEB}/{full}/pull/{number}.diff","patch_url":"{WEB}/{full}/pull/{number}.patch","issue_url":"{u}/issues/{number}","number":{number},"state":"{state}","locked":false,"title":{title},"user":{user},"body":{body},"created_at":"{created}","updated_at":"{updated}","closed_at":{closed_at},"merged_at":{merged_at},"merge_commit_sha":{merge_sha},"assignee":{assignee},"assignees":{assignees},"requested_reviewers":{reviewers},"requested_teams":[],"labels":{labels},"milestone":{milestone},"draft":{draft},"commits_url":"{u}/pulls/{number}/commits","review_comments_url":"{u}/pulls/{number}/comments","review_comment_url":"{u}/pulls/comments{{/number}}","comments_url":"{u}/issues/{number}/comments","statuses_url":"{u}/statuses/{head_sha}","head":{{"label":"{head_label}","ref":"feature-{k}","sha":"{head_sha}","user":{huser},"repo":{head_repo}}},"base":{{"label":"{org}:main","ref":"main","sha":"{base_sha}","user":{owner},"repo":{base_repo}}},"_links":{{"self":{{"href":"{u}/pulls/{number}"}},"html":{{"href":"{WEB}/{full}/pull/{number}"}},"issue":{{"href":"{u}/issues/{number}"}},"comments":{{"href":"{u}/issues/{number}/comments"}},"review_comments":{{"href":"{u}/pulls/{number}/comments"}},"review_comment":{{"href":"{u}/pulls/comments{{/number}}"}},"commits":{{"href":"{u}/pulls/{number}/commits"}},"statuses":{{"href":"{u}/statuses/{head_sha}"}}}},"author_association":"{assoc}","auto_merge":null,"active_lock_reason":null}}"#,
        state = if open { "open" } else { "closed" },
        title = json_str(&pr_title(k, f.rev)),
        created = ts(created),
        updated = ts(f.updated),
        draft = k.is_multiple_of(11),
        huser = user,
        org = r.org_name,
        owner = w.org_json[r.org],
        base_repo = r.json,
        assoc = ["MEMBER", "CONTRIBUTOR", "OWNER", "NONE"][k % 4],
    );
}

/// One review, shaped like GitHub's `pull-request-review`; some have a null user
/// (deleted account) and some are pending (no `submitted_at`).
pub fn render_review(w: &World, repo: usize, k: usize, r: usize, out: &mut String) {
    let rep = &w.repos[repo];
    let seed = w.cfg.seed;
    let id = w.review_id(repo, k, r);
    let number = w.pr_number(k);
    let full = format!("{}/{}", rep.org_name, rep.name);
    let user = if (k + r) % 7 == 3 {
        "null"
    } else {
        w.user(&[seed, id])
    };
    let pending = (k + r) % 23 == 5;
    let state = if pending {
        "PENDING"
    } else {
        ["APPROVED", "CHANGES_REQUESTED", "COMMENTED"][(k + r) % 3]
    };
    let submitted = if pending {
        String::new()
    } else {
        format!(
            r#","submitted_at":"{}""#,
            ts(T0 - (k as i64) * 600 + r as i64 * 60 - 3000)
        )
    };
    let commit = format!(
        "{:016x}{:016x}{:08x}",
        hash(&[seed, w.pr_id(repo, k), 2]),
        hash(&[w.pr_id(repo, k), 3]),
        k
    );
    let _ = write!(
        out,
        r#"{{"id":{id},"node_id":"PRR_{id}","user":{user},"body":"Looks good 👍 — r{r}","state":"{state}","html_url":"{WEB}/{full}/pull/{number}#pullrequestreview-{id}","pull_request_url":"{API}/repos/{full}/pulls/{number}","author_association":"MEMBER","_links":{{"html":{{"href":"{WEB}/{full}/pull/{number}#pullrequestreview-{id}"}},"pull_request":{{"href":"{API}/repos/{full}/pulls/{number}"}}}}{submitted},"commit_id":"{commit}"}}"#
    );
}

/// One commit as served. Generated commits are numbered by `key` (0 is the newest, each
/// the parent of the one before); commits added later (merged branches, pushes) carry
/// keys from [`ADDED_KEY`] up, their own dates and parents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitFacts {
    pub key: usize,
    pub sha: String,
    pub date: i64,
    pub parents: Vec<String>,
}

/// First key of commits added after start (far above any generated one).
pub const ADDED_KEY: usize = 1 << 24;

impl World {
    /// Generated commit `c` of `repo`.
    pub fn base_commit(&self, repo: usize, c: usize) -> CommitFacts {
        CommitFacts {
            key: c,
            sha: self.commit_sha(repo, c),
            date: self.commit_date(repo, c),
            parents: if c + 1 < self.cfg.commits_per_repo {
                vec![self.commit_sha(repo, c + 1)]
            } else {
                Vec::new()
            },
        }
    }
}

fn commit_core(w: &World, repo: usize, f: &CommitFacts, out: &mut String) {
    let rep = &w.repos[repo];
    let seed = w.cfg.seed;
    let (c, sha) = (f.key, &f.sha);
    let full = format!("{}/{}", rep.org_name, rep.name);
    let u = format!("{API}/repos/{full}");
    let date = ts(f.date);
    let author = if c % 6 == 5 {
        "null"
    } else {
        w.user(&[seed, repo as u64, c as u64])
    };
    let mut parents = String::new();
    for (i, p) in f.parents.iter().enumerate() {
        if i > 0 {
            parents.push(',');
        }
        let _ = write!(
            parents,
            r#"{{"sha":"{p}","url":"{u}/commits/{p}","html_url":"{WEB}/{full}/commit/{p}"}}"#
        );
    }
    let msg = json_str(&format!(
        "Commit {c}: tidy up ✨\n\nSigned-off-by: Dev <dev@example.com>"
    ));
    let _ = write!(
        out,
        r#""sha":"{sha}","node_id":"C_{sha}","commit":{{"author":{{"name":"Dev {c}","email":"dev{c}@example.com","date":"{date}"}},"committer":{{"name":"GitHub","email":"noreply@github.com","date":"{date}"}},"message":{msg},"tree":{{"sha":"{sha}","url":"{u}/git/trees/{sha}"}},"url":"{u}/git/commits/{sha}","comment_count":0,"verification":{{"verified":false,"reason":"unsigned","signature":null,"payload":null,"verified_at":null}}}},"url":"{u}/commits/{sha}","html_url":"{WEB}/{full}/commit/{sha}","comments_url":"{u}/commits/{sha}/comments","author":{author},"committer":{author},"parents":[{parents}]"#
    );
}

/// One commits-list item.
pub fn render_commit(w: &World, repo: usize, f: &CommitFacts, out: &mut String) {
    out.push('{');
    commit_core(w, repo, f, out);
    out.push('}');
}

/// The single-commit object with `stats` and `files`.
pub fn render_commit_full(w: &World, repo: usize, fc: &CommitFacts, out: &mut String) {
    out.push('{');
    commit_core(w, repo, fc, out);
    let rep = &w.repos[repo];
    let full = format!("{}/{}", rep.org_name, rep.name);
    let (c, sha) = (fc.key, &fc.sha);
    let n = w.cfg.files_per_commit;
    let _ = write!(
        out,
        r#","stats":{{"total":{},"additions":{},"deletions":{}}},"files":["#,
        n * 3,
        n * 2,
        n
    );
    for f in 0..n {
        if f > 0 {
            out.push(',');
        }
        let name = if f % 5 == 2 {
            format!("docs/ünïcode-{f}.md")
        } else {
            format!("src/module_{c}/file_{f}.rs")
        };
        let status = if f % 5 == 3 { "renamed" } else { "modified" };
        let prev = if status == "renamed" {
            format!(r#","previous_filename":"src/old_{f}.rs""#)
        } else {
            String::new()
        };
        let _ = write!(
            out,
            r#"{{"sha":"{b:016x}","filename":{fname},"status":"{status}","additions":2,"deletions":1,"changes":3,"blob_url":"{WEB}/{full}/blob/{sha}/{name}","raw_url":"{WEB}/{full}/raw/{sha}/{name}","contents_url":"{API}/repos/{full}/contents/{name}?ref={sha}","patch":"@@ -1,2 +1,3 @@\n-old line\n+new line\n+another line"{prev}}}"#,
            b = hash(&[c as u64, f as u64]),
            fname = json_str(&name),
        );
    }
    out.push_str("]}");
}

// ------------------------------------------------------------------ deployments

/// Deployments per repository unless `Standin::set_deployments_per_repo` changes it.
pub const DEFAULT_DEPLOYMENTS: usize = 6;

/// One deployment status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployStatus {
    pub id: u64,
    pub state: String,
    pub created: i64,
}

/// One deployment with its statuses, oldest status first. Mutable (statuses are added
/// by `Standin::add_deployment_status`), so it lives in the server state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deploy {
    pub id: u64,
    pub sha: String,
    pub environment: String,
    pub description: Option<String>,
    pub creator: Option<usize>,
    pub created: i64,
    pub updated: i64,
    pub statuses: Vec<DeployStatus>,
}

impl World {
    /// `n` deployments of `repo`, oldest first, 6 hours apart, the newest at about T0.
    /// Creation index `i` decides the mix: every third is staging, `i % 5 == 3` failed,
    /// `i % 7 == 5` errored, `i % 6 == 4` has no status at all, the rest succeeded
    /// (each through queued → in_progress first).
    pub fn deployments(&self, repo: usize, n: usize) -> Vec<Deploy> {
        (0..n).map(|i| self.deployment(repo, n, i)).collect()
    }

    fn deployment(&self, repo: usize, n: usize, i: usize) -> Deploy {
        let id = 4_000_000_000 + (repo as u64) * 1_000_000 + i as u64;
        let created = T0 - ((n - 1 - i) as i64) * 21_600 - (repo as i64 % 600);
        let commits = self.cfg.commits_per_repo.max(1);
        let final_state = if i % 6 == 4 {
            None
        } else if i % 5 == 3 {
            Some("failure")
        } else if i % 7 == 5 {
            Some("error")
        } else {
            Some("success")
        };
        let statuses = match final_state {
            None => Vec::new(),
            Some(f) => [("queued", 10), ("in_progress", 20), (f, 300)]
                .iter()
                .enumerate()
                .map(|(s, (state, dt))| DeployStatus {
                    id: 5_000_000_000 + (id - 4_000_000_000) * 8 + s as u64,
                    state: state.to_string(),
                    created: created + dt,
                })
                .collect(),
        };
        Deploy {
            id,
            sha: self.commit_sha(repo, (n - 1 - i) % commits),
            environment: if i % 3 == 1 { "staging" } else { "production" }.into(),
            description: (i % 4 != 1).then(|| format!("Deploy #{i} 🚀")),
            creator: (i % 9 != 8).then_some(((repo + i) * 7) % USER_POOL),
            created,
            updated: created + 300,
            statuses,
        }
    }

    pub fn user_json(&self, i: usize) -> &str {
        &self.users[i % USER_POOL]
    }
}

/// One deployments-list item, shaped like GitHub's `deployment`.
pub fn render_deployment(w: &World, repo: usize, d: &Deploy, out: &mut String) {
    let u = format!(
        "{API}/repos/{}/{}",
        w.repos[repo].org_name, w.repos[repo].name
    );
    let id = d.id;
    let creator = d.creator.map_or("null", |c| w.user_json(c));
    let desc = d.description.as_deref().map_or("null".into(), json_str);
    let env = json_str(&d.environment);
    let _ = write!(
        out,
        r#"{{"url":"{u}/deployments/{id}","id":{id},"node_id":"DE_kwDO{id}","task":"deploy","original_environment":{env},"environment":{env},"description":{desc},"created_at":"{c}","updated_at":"{up}","statuses_url":"{u}/deployments/{id}/statuses","repository_url":"{u}","creator":{creator},"sha":"{sha}","ref":"main","payload":{{}},"transient_environment":false,"production_environment":{prod},"performed_via_github_app":null}}"#,
        c = ts(d.created),
        up = ts(d.updated),
        sha = d.sha,
        prod = d.environment == "production",
    );
}

/// One deployment status, shaped like GitHub's `deployment-status`.
pub fn render_deployment_status(
    w: &World,
    repo: usize,
    d: &Deploy,
    s: &DeployStatus,
    out: &mut String,
) {
    let r = &w.repos[repo];
    let u = format!("{API}/repos/{}/{}", r.org_name, r.name);
    let env_url = if s.state == "success" {
        format!("https://{}.{}.example.com", d.environment, r.name)
    } else {
        String::new()
    };
    let _ = write!(
        out,
        r#"{{"url":"{u}/deployments/{did}/statuses/{sid}","id":{sid},"node_id":"DES_kwDO{sid}","state":"{state}","creator":{creator},"description":"","environment":"{env}","target_url":"","created_at":"{c}","updated_at":"{c}","deployment_url":"{u}/deployments/{did}","repository_url":"{u}","environment_url":"{env_url}","log_url":"","performed_via_github_app":null}}"#,
        did = d.id,
        sid = s.id,
        state = s.state,
        creator = w.user_json(d.creator.unwrap_or(0)),
        env = d.environment,
        c = ts(s.created),
    );
}
