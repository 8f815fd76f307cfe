//! `flowctl query` prints every DuckDB type the tables use, TIMESTAMPTZ included (DuckDB
//! labels it with a named zone such as `Etc/UTC`, which arrow's printer cannot resolve
//! on its own).

use flowctl_github_standin::{Standin, StandinConfig};
use flowctl_testkit::*;

fn query(env: &Env, sql: &str) -> String {
    let out = flowctl()
        .arg("query")
        .arg(&env.spec)
        .arg(sql)
        .env("TZ", "America/New_York")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "flowctl query {sql:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_prints_timestamps_lists_json_and_every_table_whole() {
    let gh = Standin::start(StandinConfig {
        orgs: 1,
        repos_per_org: 2,
        prs_per_repo: 5,
        reviews_per_pr: 1,
        commits_per_repo: 3,
        files_per_commit: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let env = Env::new(&gh, ALL_STREAMS);
    env.apply(&[]).success();
    gh.shutdown().await;

    // Each type on its own, with the text expected for it. The process runs in a named
    // zone other than UTC (DuckDB's session zone follows it): instants still print in UTC (`Z`).
    let sql = "SELECT TIMESTAMPTZ '2026-01-02 03:04:05.5+00' AS tz, \
               TIMESTAMP '2026-01-02 03:04:05' AS ts, DATE '2026-01-02' AS d, \
               ['a', 'b c']::VARCHAR[] AS l, '{\"k\": [1, \"é\"]}'::JSON AS j, \
               'x'::VARCHAR AS v, 9007199254740993::BIGINT AS i, true AS b, 1.5::DOUBLE AS f, \
               [TIMESTAMPTZ '2026-01-02 03:04:05+00'] AS lt, \
               {'at': TIMESTAMPTZ '2026-01-02 03:04:05+00'} AS st, \
               NULL::TIMESTAMPTZ AS n";
    let out = query(&env, sql);
    let row: Vec<&str> = out.trim_end_matches('\n').split('\t').collect();
    assert_eq!(
        row,
        [
            "2026-01-02T03:04:05.500Z",
            "2026-01-02T03:04:05",
            "2026-01-02",
            "[a, b c]",
            "{\"k\": [1, \"é\"]}",
            "x",
            "9007199254740993",
            "true",
            "1.5",
            "[2026-01-02T03:04:05Z]",
            "{at: 2026-01-02T03:04:05Z}",
            "NULL",
        ],
        "{out}"
    );
    assert!(query(&env, "SELECT now()").trim().ends_with('Z'));

    // Every column of every loaded table prints (text columns may span lines: each row
    // is counted by the key it starts with).
    for t in TABLES {
        let n = env.query_i64(&format!("SELECT COUNT(*) FROM RAW_TABLES.\"{t}\""));
        assert!(n > 0, "{t} is empty");
        let out = query(&env, &format!("SELECT _ROW_KEY, * FROM RAW_TABLES.\"{t}\""));
        let rows = out
            .lines()
            .filter(|l| {
                l.len() > 33
                    && l.as_bytes()[32] == b'\t'
                    && l[..32].bytes().all(|b| b.is_ascii_hexdigit())
            })
            .count();
        assert_eq!(rows as i64, n, "{t}:\n{out}");
    }
    // A loaded TIMESTAMPTZ column prints the instant GitHub sent.
    let created = query(
        &env,
        "SELECT CREATED_AT FROM RAW_TABLES.REPOSITORY ORDER BY NAME LIMIT 1",
    );
    assert_eq!(created.trim(), "2024-11-27T00:00:00Z", "{created}");
}
