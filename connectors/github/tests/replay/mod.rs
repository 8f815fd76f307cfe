//! Replays recorded api.github.com answers (`tests/fixtures/replay`, each file naming its
//! source) from a real HTTP server on 127.0.0.1, with GitHub's headers: `Link` pages
//! pointing at `/repositories/{id}/…`, weak ETags answered 304 to `If-None-Match`,
//! `X-RateLimit-*`, gzip bodies when asked for. The recorded objects are served as they
//! are; only paging, ordering, `since` filtering and a compare are computed, the way
//! GitHub does them.

use flate2::write::GzEncoder;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A recorded body from `tests/fixtures/replay/{name}`.
pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/replay/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let sources = doc["sources"]
        .as_array()
        .expect("every fixture names its sources");
    assert!(
        !sources.is_empty()
            && sources
                .iter()
                .all(|s| s["repository"].is_string() && s["path"].is_string()),
        "{path}: sources"
    );
    doc["body"].clone()
}

/// One repository as the server knows it.
#[derive(Clone, Debug)]
pub struct Repo {
    pub name: String,
    pub id: i64,
    pub pulls: Vec<Value>,
    /// Reviews by pull request number.
    pub reviews: BTreeMap<i64, Vec<Value>>,
    /// The default branch's commits in git-log order; `None`: an empty repository (409).
    pub commits: Option<Vec<Value>>,
    /// The files of each commit, by SHA.
    pub files: BTreeMap<String, Vec<Value>>,
    pub deployments: Vec<Value>,
    /// Statuses by deployment id, newest first.
    pub statuses: BTreeMap<i64, Vec<Value>>,
}

/// What the server serves; tests change it between runs as upstream would change.
#[derive(Clone, Debug)]
pub struct World {
    pub org: String,
    pub org_object: Value,
    /// `GET /orgs/{org}/repos` items.
    pub listing: Vec<Value>,
    pub repos: Vec<Repo>,
}

pub const MAIN: &str = "github3.py";
pub const OLD: &str = "fork_this";
pub const EMPTY: &str = "delete_contents";
/// The commit of `MAIN` whose files come in two pages of 300.
pub const BIG_COMMIT_AT: usize = 2;

impl World {
    /// The recorded corpus arranged as one organisation with three repositories.
    pub fn recorded() -> World {
        let listing = fixture("org_repos.json")
            .as_array()
            .expect("a list")
            .clone();
        let id = |name: &str| {
            listing
                .iter()
                .find(|r| r["name"] == name)
                .and_then(|r| r["id"].as_i64())
                .unwrap_or_else(|| panic!("{name} listed"))
        };
        let pool = fixture("commit_files_pool.json")
            .as_array()
            .unwrap()
            .clone();
        let pooled = |commits: &[Value]| -> BTreeMap<String, Vec<Value>> {
            commits
                .iter()
                .enumerate()
                .map(|(i, c)| (sha(c), vec![pool[i % pool.len()].clone()]))
                .collect()
        };
        let main_commits = list(fixture("commits_github3.py.json"));
        let mut main_files = pooled(&main_commits);
        main_files.insert(
            sha(&main_commits[BIG_COMMIT_AT]),
            list(fixture("big_commit_files.json")),
        );
        let old_commits = list(fixture("commits_fork_this.json"));
        let old_files = pooled(&old_commits);
        let main = Repo {
            name: MAIN.into(),
            id: id(MAIN),
            pulls: list(fixture("pulls_github3.py.json")),
            reviews: BTreeMap::from([
                (1033, list(fixture("reviews_1033.json"))),
                (985, list(fixture("reviews_985.json"))),
            ]),
            commits: Some(main_commits),
            files: main_files,
            deployments: list(fixture("deployments_github3.py.json")),
            statuses: BTreeMap::from([
                (263877258, list(fixture("statuses_263877258.json"))),
                (801, list(fixture("statuses_801.json"))),
            ]),
        };
        let old = Repo {
            name: OLD.into(),
            id: id(OLD),
            pulls: list(fixture("pulls_fork_this.json")),
            reviews: BTreeMap::new(),
            commits: Some(old_commits),
            files: old_files,
            deployments: vec![],
            statuses: BTreeMap::new(),
        };
        let empty = Repo {
            name: EMPTY.into(),
            id: id(EMPTY),
            pulls: vec![],
            reviews: BTreeMap::new(),
            commits: None,
            files: BTreeMap::new(),
            deployments: vec![],
            statuses: BTreeMap::new(),
        };
        World {
            org: "github3py".into(),
            org_object: fixture("org.json"),
            listing,
            repos: vec![main, old, empty],
        }
    }

    pub fn repo(&self, name: &str) -> &Repo {
        self.repos.iter().find(|r| r.name == name).unwrap()
    }

    pub fn repo_mut(&mut self, name: &str) -> &mut Repo {
        self.repos.iter_mut().find(|r| r.name == name).unwrap()
    }

    pub fn listed_mut(&mut self, name: &str) -> &mut Map<String, Value> {
        self.listing
            .iter_mut()
            .find(|r| r["name"] == name)
            .and_then(Value::as_object_mut)
            .unwrap()
    }
}

pub fn list(v: Value) -> Vec<Value> {
    v.as_array().expect("a JSON list").clone()
}

pub fn sha(c: &Value) -> String {
    c["sha"].as_str().expect("a sha").to_string()
}

/// A commit as the commits list shows it: the single-commit object without `stats`/`files`.
pub fn list_item(single: &Value) -> Value {
    let mut c = single.clone();
    if let Some(o) = c.as_object_mut() {
        o.remove("stats");
        o.remove("files");
    }
    c
}

/// One request as the server answered it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub query: String,
    pub status: u16,
    pub conditional: bool,
    /// The body went out gzipped (the client asked for it).
    pub gzip: bool,
}

pub struct ReplayServer {
    pub base_url: String,
    world: Arc<Mutex<World>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl ReplayServer {
    pub fn start(world: World) -> ReplayServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let world = Arc::new(Mutex::new(world));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (w, s, base) = (world.clone(), seen.clone(), base_url.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (w, s, base) = (w.clone(), s.clone(), base.clone());
                std::thread::spawn(move || serve(conn, &w, &s, &base));
            }
        });
        ReplayServer {
            base_url,
            world,
            seen,
        }
    }

    /// Changes what is served from now on.
    pub fn change(&self, f: impl FnOnce(&mut World)) {
        f(&mut self.world.lock().unwrap());
    }

    pub fn world(&self) -> World {
        self.world.lock().unwrap().clone()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn forget(&self) {
        self.seen.lock().unwrap().clear();
    }
}

struct Answer {
    status: u16,
    body: Value,
    link: Option<String>,
}

fn ok(body: Value) -> Answer {
    Answer {
        status: 200,
        body,
        link: None,
    }
}

fn not_found() -> Answer {
    Answer {
        status: 404,
        body: json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}),
        link: None,
    }
}

fn serve(mut conn: TcpStream, world: &Mutex<World>, seen: &Mutex<Vec<Seen>>, base: &str) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let url = url::Url::parse(&format!("http://replay{target}")).unwrap();
    let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    let answer = {
        let w = world.lock().unwrap();
        route(&w, url.path(), &query, base)
    };
    let text = serde_json::to_vec(&answer.body).unwrap();
    let etag = format!("W/\"{:x}\"", md5::compute(&text));
    let conditional = headers.contains_key("if-none-match");
    let gzip = headers
        .get("accept-encoding")
        .is_some_and(|e| e.contains("gzip"));
    let not_modified = answer.status == 200 && headers.get("if-none-match") == Some(&etag);
    let status = if not_modified { 304 } else { answer.status };
    let used = {
        let mut s = seen.lock().unwrap();
        s.push(Seen {
            path: url.path().to_string(),
            query: url.query().unwrap_or("").to_string(),
            status,
            conditional,
            gzip,
        });
        // A 304 does not count against the rate limit.
        s.iter().filter(|x| x.status != 304).count()
    };
    let reset = chrono::Utc::now().timestamp() + 3600;
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nServer: github.com\r\nContent-Type: application/json; charset=utf-8\r\n\
         X-GitHub-Media-Type: github.v3; format=json\r\nx-github-api-version-selected: 2022-11-28\r\n\
         X-RateLimit-Limit: 5000\r\nX-RateLimit-Remaining: {}\r\nX-RateLimit-Reset: {reset}\r\n\
         X-RateLimit-Used: {used}\r\nX-RateLimit-Resource: core\r\nVary: Accept, Authorization, Cookie, X-GitHub-OTP, Accept-Encoding\r\n",
        if status == 304 { "Not Modified" } else { "X" },
        5000usize.saturating_sub(used),
    );
    if answer.status == 200 {
        head.push_str(&format!(
            "ETag: {etag}\r\nCache-Control: private, max-age=60, s-maxage=60\r\n"
        ));
    }
    if let Some(l) = &answer.link {
        head.push_str(&format!("Link: {l}\r\n"));
    }
    let mut body = Vec::new();
    if status != 304 {
        body = if gzip {
            head.push_str("Content-Encoding: gzip\r\n");
            let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&text).unwrap();
            enc.finish().unwrap()
        } else {
            text
        };
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(&body);
    let _ = conn.flush();
}

fn num(q: &BTreeMap<String, String>, k: &str, default: usize) -> usize {
    q.get(k).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `items` cut into pages of `per_page`, with GitHub's Link header (next/last, then
/// first/prev) pointing at `path` (GitHub uses `/repositories/{id}/…` there).
fn paged(
    items: Vec<Value>,
    q: &BTreeMap<String, String>,
    default_per_page: usize,
    base: &str,
    path: &str,
) -> Answer {
    let per = num(q, "per_page", default_per_page).clamp(1, 100.max(default_per_page));
    let page = num(q, "page", 1).max(1);
    let last = items.len().div_ceil(per).max(1);
    let body: Vec<Value> = items.into_iter().skip((page - 1) * per).take(per).collect();
    Answer {
        status: 200,
        body: Value::Array(body),
        link: link(q, base, path, page, last),
    }
}

fn link(
    q: &BTreeMap<String, String>,
    base: &str,
    path: &str,
    page: usize,
    last: usize,
) -> Option<String> {
    if last <= 1 {
        return None;
    }
    let at = |p: usize| {
        let mut q = q.clone();
        q.insert("page".into(), p.to_string());
        let query: Vec<String> = q
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                )
            })
            .collect();
        format!("<{base}/{path}?{}>", query.join("&"))
    };
    let mut parts = Vec::new();
    if page < last {
        parts.push(format!("{}; rel=\"next\"", at(page + 1)));
        parts.push(format!("{}; rel=\"last\"", at(last)));
    }
    if page > 1 {
        parts.push(format!("{}; rel=\"first\"", at(1)));
        parts.push(format!("{}; rel=\"prev\"", at(page - 1)));
    }
    Some(parts.join(", "))
}

fn committer_date(c: &Value) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    c["commit"]["committer"]["date"]
        .as_str()
        .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
}

fn single_commit(repo: &Repo, c: &Value, q: &BTreeMap<String, String>, base: &str) -> Answer {
    let files = repo.files.get(&sha(c)).cloned().unwrap_or_default();
    let (adds, dels) = files.iter().fold((0, 0), |(a, d), f| {
        (
            a + f["additions"].as_i64().unwrap_or(0),
            d + f["deletions"].as_i64().unwrap_or(0),
        )
    });
    // GitHub sends a commit's files 300 to a page.
    let page = num(q, "page", 1).max(1);
    let last = files.len().div_ceil(300).max(1);
    let mut body = c.clone();
    body["stats"] = json!({"total": adds + dels, "additions": adds, "deletions": dels});
    body["files"] = Value::Array(files.into_iter().skip((page - 1) * 300).take(300).collect());
    Answer {
        status: 200,
        body,
        link: link(
            q,
            base,
            &format!("repositories/{}/commits/{}", repo.id, sha(c)),
            page,
            last,
        ),
    }
}

/// Commits reachable from `head` and not from `base`, oldest first, as the compare API
/// lists them.
fn compare(
    repo: &Repo,
    commits: &[Value],
    spec: &str,
    q: &BTreeMap<String, String>,
    base_url: &str,
) -> Answer {
    let Some((b, h)) = spec.split_once("...") else {
        return not_found();
    };
    let by_sha: BTreeMap<String, &Value> = commits.iter().map(|c| (sha(c), c)).collect();
    let resolve = |r: &str| -> Option<String> {
        if by_sha.contains_key(r) {
            return Some(r.to_string());
        }
        commits
            .first()
            .map(sha)
            .filter(|_| r == "HEAD" || r == "main" || r == "master")
    };
    let (Some(b), Some(h)) = (resolve(b), resolve(h)) else {
        return not_found();
    };
    let reach = |start: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![start.to_string()];
        while let Some(s) = todo.pop() {
            if !seen.insert(s.clone()) {
                continue;
            }
            if let Some(c) = by_sha.get(&s) {
                for p in c["parents"].as_array().into_iter().flatten() {
                    if let Some(p) = p["sha"].as_str() {
                        todo.push(p.to_string());
                    }
                }
            }
        }
        seen
    };
    let (from_b, from_h) = (reach(&b), reach(&h));
    let mut ahead: Vec<Value> = commits
        .iter()
        .filter(|c| from_h.contains(&sha(c)) && !from_b.contains(&sha(c)))
        .cloned()
        .collect();
    ahead.reverse();
    let behind = from_b
        .iter()
        .filter(|s| by_sha.contains_key(*s) && !from_h.contains(*s))
        .count();
    let per = num(q, "per_page", 250).clamp(1, 250);
    let page = num(q, "page", 1).max(1);
    let last = ahead.len().div_ceil(per).max(1);
    let files: Vec<Value> = if page == 1 {
        ahead
            .iter()
            .flat_map(|c| repo.files.get(&sha(c)).cloned().unwrap_or_default())
            .take(300)
            .collect()
    } else {
        vec![]
    };
    let status = match (ahead.len(), behind) {
        (0, 0) => "identical",
        (_, 0) => "ahead",
        (0, _) => "behind",
        _ => "diverged",
    };
    let total = ahead.len();
    let body = json!({
        "status": status,
        "ahead_by": total,
        "behind_by": behind,
        "total_commits": total,
        "base_commit": by_sha[&b],
        "merge_base_commit": by_sha[&b],
        "commits": ahead.into_iter().skip((page - 1) * per).take(per).collect::<Vec<_>>(),
        "files": files,
    });
    Answer {
        status: 200,
        body,
        link: link(
            q,
            base_url,
            &format!("repositories/{}/compare/{spec}", repo.id),
            page,
            last,
        ),
    }
}

fn route(w: &World, path: &str, q: &BTreeMap<String, String>, base: &str) -> Answer {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (repo, rest): (Option<&Repo>, &[&str]) = match segs.as_slice() {
        ["orgs", o] | ["users", o] if *o == w.org => return ok(w.org_object.clone()),
        ["orgs", o, "repos"] | ["users", o, "repos"] if *o == w.org => {
            let id = w.org_object["id"].as_i64().unwrap_or(0);
            return paged(
                w.listing.clone(),
                q,
                30,
                base,
                &format!("organizations/{id}/repos"),
            );
        }
        ["repos", o, r, rest @ ..] if *o == w.org => (w.repos.iter().find(|x| x.name == *r), rest),
        ["repositories", id, rest @ ..] => (w.repos.iter().find(|x| x.id.to_string() == *id), rest),
        _ => return not_found(),
    };
    let Some(repo) = repo else {
        return not_found();
    };
    let rp = |tail: &str| format!("repositories/{}/{tail}", repo.id);
    match rest {
        [] => w
            .listing
            .iter()
            .find(|r| r["name"] == repo.name.as_str())
            .map(|r| ok(r.clone()))
            .unwrap_or_else(not_found),
        ["pulls"] => {
            let mut pulls = repo.pulls.clone();
            // sort=updated&direction=desc, as asked.
            pulls.sort_by(|a, b| b["updated_at"].as_str().cmp(&a["updated_at"].as_str()));
            paged(pulls, q, 30, base, &rp("pulls"))
        }
        ["pulls", n, "reviews"] => {
            let n: i64 = n.parse().unwrap_or(-1);
            if !repo.pulls.iter().any(|p| p["number"] == n) {
                return not_found();
            }
            let reviews = repo.reviews.get(&n).cloned().unwrap_or_default();
            paged(reviews, q, 30, base, &rp(&format!("pulls/{n}/reviews")))
        }
        ["commits"] => {
            let Some(commits) = &repo.commits else {
                return Answer {
                    status: 409,
                    body: fixture("empty_repository_409.json"),
                    link: None,
                };
            };
            let since = q
                .get("since")
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
            let items: Vec<Value> = commits
                .iter()
                .filter(|c| since.is_none_or(|s| committer_date(c).is_none_or(|d| d >= s)))
                .cloned()
                .collect();
            paged(items, q, 30, base, &rp("commits"))
        }
        ["commits", r] => {
            let Some(commits) = &repo.commits else {
                return Answer {
                    status: 409,
                    body: fixture("empty_repository_409.json"),
                    link: None,
                };
            };
            let found = commits.iter().find(|c| c["sha"] == *r).or_else(|| {
                let default = w
                    .listing
                    .iter()
                    .find(|x| x["name"] == repo.name.as_str())
                    .and_then(|x| x["default_branch"].as_str());
                (Some(*r) == default || *r == "HEAD")
                    .then(|| commits.first())
                    .flatten()
            });
            match found {
                Some(c) => single_commit(repo, c, q, base),
                None => not_found(),
            }
        }
        ["compare", spec] => match &repo.commits {
            Some(commits) => compare(repo, commits, spec, q, base),
            None => not_found(),
        },
        ["branches", b] => match &repo.commits {
            Some(commits) if !commits.is_empty() => ok(json!({
                "name": b,
                "commit": commits[0],
                "protected": false,
            })),
            _ => not_found(),
        },
        ["deployments"] => paged(repo.deployments.clone(), q, 30, base, &rp("deployments")),
        ["deployments", id, "statuses"] => {
            let id: i64 = id.parse().unwrap_or(-1);
            if !repo.deployments.iter().any(|d| d["id"] == id) {
                return not_found();
            }
            let statuses = repo.statuses.get(&id).cloned().unwrap_or_default();
            paged(
                statuses,
                q,
                30,
                base,
                &rp(&format!("deployments/{id}/statuses")),
            )
        }
        _ => not_found(),
    }
}
