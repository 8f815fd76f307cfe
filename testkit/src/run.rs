//! Running the `flowctl` binary: `apply` and `state show` on an [`Env`], with deadlines.

use crate::specs::Env;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `flowctl` binary of this build: cargo names it in `CARGO_BIN_EXE_flowctl` when it
/// runs the root package's tests; otherwise the one beside the test binary's `deps/`.
pub fn flowctl() -> Command {
    let bin = std::env::var_os("CARGO_BIN_EXE_flowctl")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.join("flowctl"))
        })
        .filter(|p| p.is_file())
        .expect("flowctl binary not found: run the tests with `cargo test -p flowctl`");
    Command::new(bin)
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub summary: serde_json::Value,
}

impl Output {
    pub fn success(self) -> serde_json::Value {
        assert_eq!(
            self.code, 0,
            "flowctl failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self.summary
    }
}

impl Env {
    fn command(&self, extra: &[&str]) -> (Command, PathBuf) {
        let summary = self
            .dir
            .path()
            .join(format!("summary-{}.json", uuid_like()));
        let mut cmd = flowctl();
        cmd.arg("apply")
            .arg(&self.spec)
            .arg("--output")
            .arg(&summary)
            .args(extra)
            .env("E2E_GITHUB_TOKEN", "ghp_e2e_token_not_secret")
            .env("RUST_LOG", "warn");
        (cmd, summary)
    }

    pub fn apply(&self, extra: &[&str]) -> Output {
        self.apply_with_env(extra, &[])
    }

    /// `apply` with extra environment variables and arguments.
    pub fn apply_with_env(&self, extra: &[&str], vars: &[(&str, &str)]) -> Output {
        let (mut cmd, summary) = self.command(extra);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let summary = std::fs::read_to_string(&summary)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null);
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            summary,
        }
    }

    pub fn spawn_apply(&self, extra: &[&str]) -> Child {
        let (mut cmd, _) = self.command(extra);
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// Start a run and SIGKILL it after `ms` milliseconds (if still running).
    pub fn apply_killed_after(&self, ms: u64) {
        let mut child = self.spawn_apply(&[]);
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
    }

    /// `flowctl state show` parsed (the `# location` line dropped); `Null` if it failed.
    pub fn state_show(&self) -> serde_json::Value {
        self.state_show_with_env(&[])
    }

    /// [`Env::state_show`] with extra environment variables (e.g. S3 credentials).
    pub fn state_show_with_env(&self, vars: &[(&str, &str)]) -> serde_json::Value {
        let mut cmd = flowctl();
        cmd.args(["state", "show"])
            .arg(&self.spec)
            .env("E2E_GITHUB_TOKEN", "ghp_e2e_token_not_secret");
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "state show failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let json: String = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        serde_json::from_str(&json).unwrap_or(serde_json::Value::Null)
    }

    /// Saved state of one stream (`Null` when none).
    pub fn stream_state(&self, stream: &str) -> serde_json::Value {
        self.state_show()["streams"][stream].clone()
    }
}

pub fn stream<'a>(summary: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    summary["streams"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["stream"] == name))
        .unwrap_or_else(|| panic!("no stream {name} in summary {summary}"))
}

pub fn wait_until(mut cond: impl FnMut() -> bool, max_ms: u64) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_millis(max_ms),
            "condition not met in {max_ms} ms"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Run `cmd` with a deadline; kills it (by its own PID) when the deadline passes.
/// Returns (exit code or None when killed, stdout, stderr).
pub fn run_bounded(mut cmd: Command, max: Duration) -> (Option<i32>, String, String) {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t1 = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = so.read_to_end(&mut s);
        s
    });
    let t2 = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = se.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if start.elapsed() > max {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = String::from_utf8_lossy(&t1.join().unwrap()).into_owned();
    let err = String::from_utf8_lossy(&t2.join().unwrap()).into_owned();
    (code, out, err)
}
