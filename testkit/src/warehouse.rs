//! The DuckDB warehouse of an [`Env`]: counts, key checks and content snapshots.

use crate::specs::Env;
use flowctl_github_standin::Standin;
use std::collections::BTreeMap;

pub const TABLES: &[&str] = &[
    "PULL_REQUEST",
    "PULL_REQUEST_REVIEW",
    "COMMIT",
    "COMMIT_FILE",
    "REPOSITORY",
];

impl Env {
    pub(crate) fn db(&self) -> duckdb::Connection {
        duckdb::Connection::open(self.dir.path().join("warehouse.duckdb")).unwrap()
    }

    pub fn query_i64(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    pub fn table_counts(&self) -> BTreeMap<String, i64> {
        let db = self.db();
        TABLES
            .iter()
            .map(|t| {
                let n: i64 = db
                    .query_row(
                        &format!("SELECT COUNT(*) FROM RAW_TABLES.\"{t}\""),
                        [],
                        |r| r.get(0),
                    )
                    .unwrap_or(-1);
                (t.to_string(), n)
            })
            .collect()
    }

    pub fn assert_no_duplicate_keys(&self) {
        let db = self.db();
        for t in TABLES {
            let sql = format!("SELECT COUNT(*) - COUNT(DISTINCT _ROW_KEY) FROM RAW_TABLES.\"{t}\"");
            if let Ok(d) = db.query_row(&sql, [], |r| r.get::<_, i64>(0)) {
                assert_eq!(d, 0, "duplicate _ROW_KEY in {t}");
            }
        }
    }

    /// Every table's rows without the per-run metadata columns, sorted: two warehouses
    /// holding the same data give equal snapshots.
    pub fn content_snapshot(&self) -> BTreeMap<String, Vec<String>> {
        TABLES
            .iter()
            .map(|t| (t.to_string(), self.content_snapshot_of(t)))
            .collect()
    }

    pub fn content_snapshot_of(&self, table: &str) -> Vec<String> {
        let db = self.db();
        let sql = format!(
            "SELECT CAST(COLUMNS(* EXCLUDE (_INGESTED_AT, _BATCH_ID)) AS VARCHAR) FROM RAW_TABLES.\"{table}\""
        );
        let Ok(mut stmt) = db.prepare(&sql) else {
            return vec![];
        };
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let n = r.as_ref().column_count();
                let mut parts = Vec::with_capacity(n);
                for i in 0..n {
                    parts.push(r.get::<_, Option<String>>(i)?.unwrap_or_default());
                }
                Ok(parts.join("\u{1f}"))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        rows.sort();
        rows
    }

    /// Compare a sample of loaded pull requests with what the server serves.
    pub fn assert_sample_matches_server(&self, gh: &Standin) {
        let db = self.db();
        let world = flowctl_github_standin::data::World::new(gh.config());
        let repo0 = &world.repos[0];
        for k in [0usize, 13, 42] {
            let (org, repo) = (repo0.org_name.clone(), repo0.name.clone());
            let number = world.pr_number(k);
            let title = flowctl_github_standin::data::pr_title(k, 0);
            let got: String = db
                .query_row(
                    "SELECT TITLE FROM RAW_TABLES.PULL_REQUEST WHERE ORG = ? AND REPO_NAME = ? AND NUMBER = ?",
                    duckdb::params![org, repo, number as i64],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(got, title, "{org}/{repo}#{number}");
        }
    }
}

/// Rows in `want` missing from `got` and rows of `got` beyond `want` (multiset), per table.
pub fn lost_and_extra(
    want: &BTreeMap<String, Vec<String>>,
    got: &BTreeMap<String, Vec<String>>,
) -> (usize, usize) {
    let (mut lost, mut extra) = (0, 0);
    for (t, rows) in want {
        let mut counts: BTreeMap<&String, i64> = BTreeMap::new();
        for r in rows {
            *counts.entry(r).or_default() += 1;
        }
        for r in got.get(t).into_iter().flatten() {
            *counts.entry(r).or_default() -= 1;
        }
        lost += counts
            .values()
            .filter(|v| **v > 0)
            .map(|v| *v as usize)
            .sum::<usize>();
        extra += counts
            .values()
            .filter(|v| **v < 0)
            .map(|v| (-*v) as usize)
            .sum::<usize>();
    }
    (lost, extra)
}
