//! Security properties of `flowctl` (the real binary), each against real servers: the
//! GitHub stand-in, tiny HTTP servers in this test, `openssl s_server` for TLS.
//! - a canary token never appears in stdout, stderr (text and JSON logs, debug level),
//!   the run summary, state files, staged Parquet files or the warehouse file;
//! - org names that could escape a path or SQL are rejected or safely encoded: nothing is
//!   written outside the staging root, and the warehouse is intact;
//! - the Authorization header never reaches another host (redirects, `Link` headers);
//! - TLS certificates are verified; a private CA or switching verification off is per
//!   endpoint (GitHub source only), and off is announced loudly;
//! - a world-readable Snowflake private key is warned about.

use flowctl_github_standin::{Faults, Standin, StandinConfig};
use flowctl_testkit::*;
use std::path::{Path, PathBuf};

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

/// An `openssl s_server -www` on 127.0.0.1 whose certificate (SAN IP 127.0.0.1) is signed
/// by a throwaway CA; `None` when openssl is missing. Killed on drop.
struct TlsServer {
    child: std::process::Child,
    port: u16,
    ca: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(args: &[&str], dir: &Path) -> bool {
    std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn tls_server() -> Option<TlsServer> {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=flowctl test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "k.pem",
            "-out",
            "leaf.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
            "-out",
            "c.pem",
        ],
    ];
    if !steps.iter().all(|a| openssl(a, d)) {
        eprintln!("SKIPPED: openssl not available");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = d.join("s_server.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = std::process::Command::new("openssl")
        .args([
            "s_server",
            "-www",
            "-accept",
            &port.to_string(),
            "-cert",
            "c.pem",
            "-key",
            "k.pem",
        ])
        .current_dir(d)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    wait_until(
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        10_000,
    );
    Some(TlsServer {
        child,
        port,
        ca: d.join("ca.pem"),
        log,
        _dir: dir,
    })
}

/// A certificate from an unknown CA is refused (no opt-out unless configured).
#[test]
fn tls_certificates_are_verified_by_default() {
    let Some(server) = tls_server() else { return };
    let port = server.port;
    let base = format!("https://127.0.0.1:{port}");
    let env = Env::for_server(&base, &["o"], &["repository"], "");
    let out = env.apply(&[]);
    let server_log = std::fs::read_to_string(&server.log).unwrap_or_default();
    drop(server);
    assert_eq!(out.code, 1, "{}", out.stderr);
    // flowctl's own message names the cause (reqwest's source chain), not only
    // "error sending request"; the server saw the client abort the handshake.
    let stderr = out.stderr.to_lowercase();
    assert!(
        stderr.contains("certificate") || stderr.contains("unknownissuer"),
        "expected the certificate rejection in flowctl's message: {}",
        out.stderr
    );
    let err = format!("{}\n{}", out.stderr, server_log).to_lowercase();
    assert!(
        !err.contains("malformed"),
        "the HTTPS answer must not have been read"
    );
}

/// Past the TLS handshake, `openssl s_server -www` answers every GET with an HTML status
/// page, so the run still fails, but on the body, not on the certificate.
fn assert_got_past_tls(out: &Output) {
    assert_eq!(out.code, 1, "{}", out.stderr);
    let stderr = out.stderr.to_lowercase();
    assert!(
        !stderr.contains("invalid peer certificate") && !stderr.contains("unknownissuer"),
        "TLS should have been accepted: {}",
        out.stderr
    );
    assert!(!stderr.contains("panicked"), "{}", out.stderr);
    assert!(
        stderr.contains("malformed or truncated json"),
        "the HTML page must have been read over TLS: {}",
        out.stderr
    );
}

/// `tls_ca_file` trusts a private CA for the source's endpoint only.
#[test]
fn tls_ca_file_trusts_a_private_ca() {
    let Some(server) = tls_server() else { return };
    let base = format!("https://127.0.0.1:{}", server.port);
    let extra = format!("  tls_ca_file: {}\n", server.ca.display());
    let out = Env::for_server(&base, &["o"], &["repository"], &extra).apply(&[]);
    assert_got_past_tls(&out);
    assert!(
        !out.stderr.contains("verification is OFF"),
        "{}",
        out.stderr
    );

    let missing = Env::for_server(
        &base,
        &["o"],
        &["repository"],
        "  tls_ca_file: /nonexistent/ca.pem\n",
    )
    .apply(&[]);
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("/nonexistent/ca.pem"),
        "{}",
        missing.stderr
    );
}

/// `tls_insecure_skip_verify` works for that endpoint, says so loudly on stderr and in
/// the summary's warnings, and is refused for github.com.
#[test]
fn tls_verification_off_is_per_endpoint_and_loud() {
    let Some(server) = tls_server() else { return };
    let base = format!("https://127.0.0.1:{}", server.port);
    let env = Env::for_server(
        &base,
        &["o"],
        &["repository"],
        "  tls_insecure_skip_verify: true\n",
    );
    let out = env.apply(&[]);
    assert_got_past_tls(&out);
    assert!(
        out.stderr
            .contains("TLS certificate verification is OFF for https://127.0.0.1"),
        "{}",
        out.stderr
    );
    let warnings = out.summary["warnings"].to_string();
    assert!(warnings.contains("verification is OFF"), "{}", out.summary);

    let gh = Env::for_server(
        "https://api.github.com",
        &["o"],
        &["repository"],
        "  tls_insecure_skip_verify: true\n",
    );
    let refused = gh.apply(&[]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("refused for api.github.com"),
        "{}",
        refused.stderr
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
