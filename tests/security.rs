//! Security properties of `flowctl` (the real binary), each against real servers: the
//! GitHub stand-in, tiny HTTP servers in this test, `openssl s_server` for TLS.
//! - a canary token never appears in stdout, stderr (text and JSON logs, debug level),
//!   the run summary, state files, staged Parquet files or the warehouse file;
//! - org names that could escape a path or SQL are rejected or safely encoded: nothing is
//!   written outside the staging root, and the warehouse is intact;
//! - the Authorization header never reaches another host (redirects, `Link` headers);
//! - TLS certificates are verified (there is no opt-out in the code);
//! - a world-readable Snowflake private key is warned about.

mod common;

use common::*;
use flowctl_github_standin::{Faults, Standin, StandinConfig};
use std::path::Path;

const CANARY: &str = "ghp_CANARY_c4n4ry_9f3e1d2b7a6c5e4d";

fn small() -> StandinConfig {
    StandinConfig {
        orgs: 1,
        repos_per_org: 2,
        prs_per_repo: 30,
        reviews_per_pr: 1,
        commits_per_repo: 5,
        files_per_commit: 1,
        latency_ms: 0,
        seed: 3,
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn assert_no_canary(what: &str, bytes: &[u8]) {
    assert!(
        !contains(bytes, CANARY.as_bytes()),
        "canary token found in {what}"
    );
    // Also no prefix long enough to identify it.
    assert!(
        !contains(bytes, &CANARY.as_bytes()[..16]),
        "canary prefix in {what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_token_never_leaks_into_output_logs_state_or_staged_files() {
    let gh = Standin::start(small()).await.unwrap();
    gh.set_faults(Faults {
        require_token: Some(CANARY.into()),
        fail_5xx_next: 2,
        truncate_next: 1,
        ..Default::default()
    });
    let env = Env::new(&gh, ALL_STREAMS);
    let vars = [("E2E_GITHUB_TOKEN", CANARY), ("RUST_LOG", "trace")];
    let text = env.apply_with_env(&[], &vars);
    assert_eq!(text.code, 0, "the token must be accepted: {}", text.stderr);
    assert!(gh.stats().kind("pulls") > 0);
    gh.touch_pull_requests(3);
    let json = env.apply_with_env(&["--log-format", "json"], &vars);
    assert_eq!(json.code, 0, "{}", json.stderr);
    // A failing run: the server now rejects every token.
    gh.set_faults(Faults {
        unauthorized: true,
        ..Default::default()
    });
    gh.touch_pull_requests(1);
    let failed = env.apply_with_env(&[], &vars);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    for (what, o) in [
        ("text run", &text),
        ("json run", &json),
        ("failed run", &failed),
    ] {
        assert_no_canary(&format!("{what} stdout"), o.stdout.as_bytes());
        assert_no_canary(&format!("{what} stderr"), o.stderr.as_bytes());
    }
    assert!(
        json.stderr.contains("{\""),
        "expected JSON logs: {}",
        json.stderr
    );
    for cmd in [&["plan"][..], &["validate"][..], &["state", "show"][..]] {
        let out = flowctl()
            .args(cmd)
            .arg(&env.spec)
            .env("E2E_GITHUB_TOKEN", CANARY)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        assert_no_canary(&format!("{cmd:?} stdout"), &out.stdout);
        assert_no_canary(&format!("{cmd:?} stderr"), &out.stderr);
    }
    let files = files_under(env.dir.path());
    let parquet = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .count();
    assert!(
        parquet > 0,
        "no staged files to scan (cleanup on?): {files:?}"
    );
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert_no_canary(&f.display().to_string(), &bytes);
    }
    gh.shutdown().await;
}

/// Answers any org: one repository and one pull request, whatever the names.
fn any_org_server() -> TinyServer {
    TinyServer::start(|req| {
        let path = req.target.split('?').next().unwrap_or("");
        let segs: Vec<&str> = path.split('/').collect();
        match segs.as_slice() {
            ["", "orgs", org, "repos"] => {
                let org = org.replace('"', "");
                Reply::json(format!("[{}]", repo_json(&org, "r", 1)))
            }
            ["", "repos", org, repo, "pulls"] => {
                let org = org.replace('"', "");
                Reply::json(format!("[{}]", pr_json(&org, repo, 1, 1, "\"t\"")))
            }
            _ => Reply::status(404),
        }
    })
}

#[test]
fn org_names_that_could_escape_a_path_or_sql_are_rejected_or_encoded() {
    let srv = any_org_server();
    let hostile = [
        "../x",
        "..",
        "a/../../b",
        "o'; DROP TABLE RAW_TABLES.REPOSITORY; --",
        "o\"x",
        "a\u{0}b",
        "%2e%2e%2fx",
        "C:\\x",
    ];
    for org in hostile {
        let env = Env::for_server(&srv.base_url, &[org], &["repository", "pull_request"], "");
        let before: Vec<_> = std::fs::read_dir(env.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let out = env.apply(&[]);
        assert!(!out.stderr.contains("panicked"), "{org:?}: {}", out.stderr);
        assert!(matches!(out.code, 0..=2), "{org:?}: exit {}", out.code);
        // Nothing new beside the spec except the staging folder, warehouse and summary.
        for e in std::fs::read_dir(env.dir.path()).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let known = name == "staging"
                || name.starts_with("warehouse.duckdb")
                || name.starts_with("summary-")
                || before.iter().any(|b| b.to_string_lossy() == name);
            assert!(
                known,
                "{org:?}: unexpected file {name} next to the staging root"
            );
        }
        let parent = env.dir.path().parent().unwrap();
        assert!(
            !parent.join("x").exists() && !parent.join("b").exists(),
            "{org:?} escaped"
        );
        let root = env.staging_dir().canonicalize().ok();
        for f in files_under(&env.staging_dir()) {
            let real = f.canonicalize().unwrap();
            assert!(
                real.starts_with(root.as_ref().unwrap()),
                "{org:?}: {real:?} outside root"
            );
        }
        if out.code == 0 {
            // Loaded: the org is stored as data, the table still there.
            assert!(env.query_i64("SELECT COUNT(*) FROM RAW_TABLES.REPOSITORY") >= 1);
        } else {
            assert!(out.stderr.contains("orgs"), "{org:?}: {}", out.stderr);
        }
        eprintln!("org {org:?}: exit {}: {}", out.code, out.stderr.trim());
    }
}

fn redirect_case(redirect_to_other: bool) -> (Output, Vec<SeenRequest>) {
    // The other host: `localhost` instead of 127.0.0.1, and another port.
    let other = TinyServer::start(|req| {
        if req.target.contains("/repos") {
            Reply::json(format!("[{}]", repo_json("o", "r", 1)))
        } else {
            Reply::json(format!("[{}]", pr_json("o", "r", 1, 1, "\"t\"")))
        }
    });
    let other_base = other.base_url.replace("127.0.0.1", "localhost");
    let api = TinyServer::start(move |req| {
        let t = req.target.as_str();
        if redirect_to_other && t.starts_with("/orgs/o/repos") {
            Reply::status(302).header("Location", &format!("{other_base}{t}"))
        } else if t.starts_with("/orgs/o/repos") {
            Reply::json(format!("[{}]", repo_json("o", "r", 1)))
        } else {
            // A full page (a short one ends paging) whose Link points at the other host.
            let prs: Vec<String> = (1..=100)
                .map(|i| pr_json("o", "r", i, i, "\"t\""))
                .collect();
            Reply::json(format!("[{}]", prs.join(","))).header(
                "Link",
                &format!("<{other_base}/repos/o/r/pulls?page=2>; rel=\"next\""),
            )
        }
    });
    let env = Env::for_server(&api.base_url, &["o"], &["repository", "pull_request"], "");
    let out = env.apply_with_env(&[], &[("E2E_GITHUB_TOKEN", CANARY)]);
    assert!(
        api.requests().iter().any(|r| r
            .header("authorization")
            .is_some_and(|a| a.contains(CANARY))),
        "the API host itself should get the token"
    );
    (out, other.requests())
}

#[test]
fn the_authorization_header_never_crosses_to_another_host() {
    for redirect in [true, false] {
        let (out, seen_by_other) = redirect_case(redirect);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert_eq!(
            out.code, 1,
            "a cross-host hop must fail the stream: {}",
            out.stderr
        );
        for r in &seen_by_other {
            assert!(
                r.header("authorization").is_none(),
                "token sent to another host: {r:?}"
            );
        }
        assert_no_canary("stderr", out.stderr.as_bytes());
        eprintln!(
            "cross-host {}: other host saw {} request(s), none with Authorization",
            if redirect { "redirect" } else { "Link" },
            seen_by_other.len()
        );
    }
}

/// `openssl s_server` with a self-signed certificate; flowctl must refuse it.
#[test]
fn tls_certificates_are_verified_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    if !made.map(|o| o.status.success()).unwrap_or(false) {
        eprintln!("SKIPPED: openssl not available");
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(dir.path().join("s_server.log")).unwrap();
    let mut server = std::process::Command::new("openssl")
        .args(["s_server", "-www", "-accept"])
        .arg(port.to_string())
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_until(
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        10_000,
    );
    let base = format!("https://127.0.0.1:{port}");
    let env = Env::for_server(&base, &["o"], &["repository"], "");
    let out = env.apply(&[]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(out.code, 1, "{}", out.stderr);
    // flowctl's own message names the cause (reqwest's source chain), not only
    // "error sending request"; the server saw the client abort the handshake.
    let stderr = out.stderr.to_lowercase();
    assert!(
        stderr.contains("certificate") || stderr.contains("unknownissuer"),
        "expected the certificate rejection in flowctl's message: {}",
        out.stderr
    );
    let server_log = std::fs::read_to_string(dir.path().join("s_server.log")).unwrap_or_default();
    let err = format!("{}\n{}", out.stderr, server_log).to_lowercase();
    assert!(
        !err.contains("malformed"),
        "the HTTPS answer must not have been read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_readable_snowflake_private_key_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("sf.p8");
    let made = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .output();
    if !made.map(|o| o.status.success()).unwrap_or(false) {
        eprintln!("SKIPPED: openssl not available");
        return;
    }
    // The "Snowflake" here fails every statement (422, not retried): the run fails fast
    // after the key was read.
    let sf = TinyServer::start(|_| {
        Reply {
        status: 422,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: br#"{"code":"002003","sqlState":"02000","message":"no such thing","statementHandle":"h1"}"#.to_vec(),
    }
    });
    let gh = Standin::start(small()).await.unwrap();
    let mut warned = Vec::new();
    for mode in [0o644, 0o600] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let env = Env::new(&gh, &["repository"]);
        let spec = std::fs::read_to_string(&env.spec).unwrap();
        let i = spec.find("warehouse:").unwrap();
        let spec = format!(
            "{}warehouse:\n  type: snowflake\n  account: testacct\n  user: svc\n  private_key_path: {}\n  base_url: {}\n  storage_integration: it\n",
            &spec[..i],
            key.display(),
            sf.base_url
        );
        std::fs::write(&env.spec, spec).unwrap();
        let out = env.apply(&[]);
        assert_ne!(out.code, 0, "the fake Snowflake answers 422");
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert!(
            !out.stderr.contains("PRIVATE KEY"),
            "key material in stderr"
        );
        eprintln!("mode {mode:o}: exit {}\n{}", out.code, out.stderr);
        warned.push(out.stderr.contains("world-readable"));
    }
    assert_eq!(warned, vec![true, false], "warn for 0644 only");
    gh.shutdown().await;
}
