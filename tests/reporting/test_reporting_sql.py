"""Runs sql/reporting_data_model.sql and sql/lead_time_to_deploy.sql on known rows through the
Snowflake emulator (fakesnow, in-process: `fakesnow.patch()`) and checks the computed numbers.

Run: .venv-emu/bin/python -m unittest discover -s tests/reporting -v
(scripts/test-reporting.sh does this, then `dbt parse`.)

The raw tables are created here with the columns the SQL reads, typed as flowctl loads them;
test_columns_exist_in_github_schema checks those columns against the GitHub source's schema
(connectors/github/src/schema.rs), so a rename there fails here.
"""

import datetime as dt
import pathlib
import re
import unittest

import fakesnow
import snowflake.connector

ROOT = pathlib.Path(__file__).resolve().parents[2]
RAW = "GITHUB_PIPELINES.RAW_TABLES"
REP = "GITHUB_PIPELINES.REPORTING"

SESSION_TZ = "America/Los_Angeles"  # Snowflake's default TIMEZONE parameter
META = "_ROW_KEY VARCHAR, _INGESTED_AT TIMESTAMP_TZ, _SOURCE_ORG VARCHAR, _BATCH_ID VARCHAR"

DDL = {
    "PULL_REQUEST": "ID NUMBER(38,0), NUMBER NUMBER(38,0), STATE VARCHAR, TITLE VARCHAR, "
    "USER_LOGIN VARCHAR, CREATED_AT TIMESTAMP_TZ, UPDATED_AT TIMESTAMP_TZ, CLOSED_AT TIMESTAMP_TZ, "
    "MERGED_AT TIMESTAMP_TZ, MERGE_COMMIT_SHA VARCHAR, HEAD_SHA VARCHAR, ADDITIONS NUMBER(38,0), "
    "DELETIONS NUMBER(38,0), CHANGED_FILES NUMBER(38,0), REPO_NAME VARCHAR, ORG VARCHAR",
    "PULL_REQUEST_REVIEW": "ID NUMBER(38,0), PULL_REQUEST_ID NUMBER(38,0), USER_LOGIN VARCHAR, "
    "STATE VARCHAR, SUBMITTED_AT TIMESTAMP_TZ, COMMIT_ID VARCHAR, REPO_NAME VARCHAR, ORG VARCHAR",
    "COMMIT": "SHA VARCHAR, AUTHOR_DATE TIMESTAMP_TZ, COMMITTER_DATE TIMESTAMP_TZ, "
    "REPO_NAME VARCHAR, ORG VARCHAR",
    "COMMIT_FILE": "COMMIT_SHA VARCHAR, FILENAME VARCHAR, ADDITIONS NUMBER(38,0), "
    "DELETIONS NUMBER(38,0), REPO_NAME VARCHAR, ORG VARCHAR",
    "USER_LOOKUP": "LOGIN VARCHAR, LDAP_UID VARCHAR, EMAIL VARCHAR, TEAM VARCHAR",
    # Assumed shape of the GitHub source's `deployment` stream (owned elsewhere).
    "DEPLOYMENT": "ID NUMBER(38,0), ORG VARCHAR, REPO_NAME VARCHAR, SHA VARCHAR, REF VARCHAR, "
    "ENVIRONMENT VARCHAR, CREATED_AT TIMESTAMP_TZ, UPDATED_AT TIMESTAMP_TZ, "
    "STATUS_STATE VARCHAR, STATUS_CREATED_AT TIMESTAMP_TZ",
}


def ts(text):
    return f"'{text}:00+00:00'" if text else "NULL"


def q(v):
    return "NULL" if v is None else f"'{v}'"


# PRs: (id, repo, number, author, created, merged, merge_sha, head_sha, state)
PRS = [
    (1, "api", 1, "alice", "2024-01-01 09:00", "2024-01-02 09:00", "m1", "h1"),
    (2, "api", 2, "bob", "2024-01-02 08:00", "2024-01-03 08:00", "m2", "h2"),
    (3, "web", 1, "carol", "2024-01-03 10:00", "2024-01-03 14:00", "m3w", "h3"),
    (4, "svc", 1, "dave", "2024-01-04 00:00", "2024-01-05 00:00", "m4", "h4"),
    (5, "api", 3, "alice", "2024-01-04 09:00", None, "test-merge-5", "h5"),
    # Opened and deployed early on a Monday (UTC), still Sunday in Los Angeles.
    (6, "api", 4, "bob", "2024-01-08 02:00", "2024-01-08 03:00", "m6", "h6"),
    (7, "api", 5, "alice", "2024-01-02 12:00", "2024-01-02 13:00", "m7", "h7"),
]
# Reviews: (id, pr_id, repo, reviewer, state, submitted, commit_id)
REVIEWS = [
    (11, 1, "api", "bob", "APPROVED", "2024-01-01 11:00", "h1"),
    (12, 1, "api", "carol", "COMMENTED", "2024-01-01 13:00", "h1"),
    (13, 1, "api", "alice", "COMMENTED", "2024-01-01 10:00", "h1"),  # the author: not a review
    (14, 1, "api", "bob", "PENDING", None, None),  # not submitted
    (31, 3, "web", "alice", "APPROVED", "2024-01-03 12:00", "r3"),
]
# Commits: (sha, repo, author_date)
COMMITS = [
    ("h1", "api", "2024-01-01 06:00"),
    ("m1", "api", "2024-01-02 09:00"),
    ("r3", "web", "2024-01-03 07:00"),
    ("m2", "api", "2024-01-03 08:00"),
    ("m6", "api", "2024-01-08 03:00"),
]
# Files: (sha, repo, filename, additions, deletions)
FILES = [
    ("m1", "api", "a.rs", 10, 2),
    ("m1", "api", "b.rs", 5, 0),
    ("h1", "api", "a.rs", 1, 0),  # head commit of a merged PR: not its size
    ("m2", "api", "c.rs", 100, 50),
    ("h5", "api", "d.rs", 3, 1),
]
USERS = [("Alice", "a001", "alice@acme.io", "core"), ("bob", "b002", "bob@acme.io", "core"),
         ("carol", "c003", "carol@acme.io", "web")]
# Deployments: (id, repo, sha, env, created, state, status_created)
DEPLOYS = [
    (101, "api", "m1", "staging", "2024-01-02 09:30", "success", "2024-01-02 10:00"),
    (102, "api", "m1", "production", "2024-01-02 10:30", "failure", "2024-01-02 11:00"),
    (103, "api", "m1", "production", "2024-01-02 11:30", "success", "2024-01-02 12:00"),
    (104, "api", "m3", "production", "2024-01-03 19:00", "success", "2024-01-03 20:00"),
    (105, "api", "m6", "Production", "2024-01-08 04:00", "success", "2024-01-08 05:00"),
    (106, "svc", "s0", "production", "2024-01-01 08:00", "success", "2024-01-01 09:00"),
]


def statements(path):
    """The statements of a SQL file (split on `;` at line end; comment-only chunks dropped)."""
    text = (ROOT / path).read_text()
    for chunk in re.split(r";\s*\n", text):
        body = "\n".join(l for l in chunk.splitlines() if not l.strip().startswith("--")).strip()
        if body:
            yield body


def seed(cur):
    cur.execute("CREATE DATABASE IF NOT EXISTS GITHUB_PIPELINES")
    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW}")
    for table, cols in DDL.items():
        cur.execute(f'CREATE TABLE {RAW}."{table}" ({cols}, {META})')
    for (i, repo, n, who, created, merged, msha, hsha) in PRS:
        state = "closed" if merged else "open"
        cur.execute(
            f"INSERT INTO {RAW}.PULL_REQUEST (ID, NUMBER, STATE, TITLE, USER_LOGIN, CREATED_AT, "
            f"UPDATED_AT, CLOSED_AT, MERGED_AT, MERGE_COMMIT_SHA, HEAD_SHA, REPO_NAME, ORG) VALUES "
            f"({i}, {n}, '{state}', 't{i}', '{who}', {ts(created)}, {ts(created)}, {ts(merged)}, "
            f"{ts(merged)}, '{msha}', '{hsha}', '{repo}', 'acme')")
    for (i, pr, repo, who, state, at, sha) in REVIEWS:
        cur.execute(
            f"INSERT INTO {RAW}.PULL_REQUEST_REVIEW (ID, PULL_REQUEST_ID, USER_LOGIN, STATE, "
            f"SUBMITTED_AT, COMMIT_ID, REPO_NAME, ORG) VALUES ({i}, {pr}, '{who}', '{state}', "
            f"{ts(at)}, {q(sha)}, '{repo}', 'acme')")
    for (sha, repo, at) in COMMITS:
        cur.execute(f'INSERT INTO {RAW}."COMMIT" (SHA, AUTHOR_DATE, COMMITTER_DATE, REPO_NAME, ORG) '
                    f"VALUES ('{sha}', {ts(at)}, {ts(at)}, '{repo}', 'acme')")
    for (sha, repo, name, add, dele) in FILES:
        cur.execute(f"INSERT INTO {RAW}.COMMIT_FILE (COMMIT_SHA, FILENAME, ADDITIONS, DELETIONS, "
                    f"REPO_NAME, ORG) VALUES ('{sha}', '{name}', {add}, {dele}, '{repo}', 'acme')")
    for row in USERS:
        cur.execute(f"INSERT INTO {RAW}.USER_LOOKUP (LOGIN, LDAP_UID, EMAIL, TEAM) VALUES "
                    f"({', '.join(q(v) for v in row)})")
    for (i, repo, sha, env, created, state, at) in DEPLOYS:
        cur.execute(
            f"INSERT INTO {RAW}.DEPLOYMENT (ID, ORG, REPO_NAME, SHA, REF, ENVIRONMENT, CREATED_AT, "
            f"UPDATED_AT, STATUS_STATE, STATUS_CREATED_AT) VALUES ({i}, 'acme', '{repo}', '{sha}', "
            f"'main', '{env}', {ts(created)}, {ts(at)}, '{state}', {ts(at)})")


class ReportingSql(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._patch = fakesnow.patch()
        cls._patch.__enter__()
        cls.conn = snowflake.connector.connect(database="GITHUB_PIPELINES", schema="RAW_TABLES")
        # The session runs in Snowflake's default account time zone, not fakesnow's UTC: days and
        # weeks must still be UTC ones (PR 6 opens and goes live on a Monday, UTC).
        cls.conn._duck_conn.execute(f"SET TimeZone = '{SESSION_TZ}'")  # noqa: SLF001
        cur = cls.conn.cursor()
        seed(cur)
        for path in ("sql/reporting_data_model.sql", "sql/lead_time_to_deploy.sql"):
            for stmt in statements(path):
                cur.execute(stmt)

    @classmethod
    def tearDownClass(cls):
        cls.conn.close()
        cls._patch.__exit__(None, None, None)

    def rows(self, sql):
        cur = self.conn.cursor(snowflake.connector.DictCursor)
        cur.execute(sql)
        return cur.fetchall()

    def by_pr(self, view):
        return {r["PULL_REQUEST_ID"]: r for r in self.rows(f"SELECT * FROM {REP}.{view}")}

    def test_pr_facts_one_row_per_pr_with_team_reviews_and_times(self):
        f = self.by_pr("PR_FACTS")
        self.assertEqual(sorted(f), [1, 2, 3, 4, 5, 6, 7])
        self.assertEqual(f[1]["TEAM"], "core")  # USER_LOOKUP login 'Alice', case-insensitive
        self.assertEqual(f[1]["AUTHOR_LDAP_UID"], "a001")
        self.assertEqual(f[4]["TEAM"], "unknown")
        self.assertEqual(f[1]["REVIEW_COUNT"], 2)  # self-review and pending one left out
        self.assertEqual(f[1]["APPROVAL_COUNT"], 1)
        self.assertAlmostEqual(float(f[1]["HOURS_TO_FIRST_REVIEW"]), 2.0)
        self.assertAlmostEqual(float(f[1]["HOURS_TO_MERGE"]), 24.0)
        self.assertEqual(f[2]["REVIEW_COUNT"], 0)
        self.assertIsNone(f[2]["HOURS_TO_FIRST_REVIEW"])
        self.assertIsNone(f[5]["HOURS_TO_MERGE"])
        self.assertEqual(f[1]["CREATED_WEEK"], dt.date(2024, 1, 1))
        self.assertEqual(f[6]["CREATED_WEEK"], dt.date(2024, 1, 8))

    def test_size_from_merge_commit_files_or_head_when_open(self):
        f = self.by_pr("PR_FACTS")
        self.assertEqual((f[1]["ADDITIONS"], f[1]["DELETIONS"], f[1]["LINES_CHANGED"]), (15, 2, 17))
        self.assertEqual(f[1]["CHANGED_FILES"], 2)
        self.assertEqual(f[2]["LINES_CHANGED"], 150)
        self.assertEqual((f[5]["ADDITIONS"], f[5]["DELETIONS"]), (3, 1))  # open: head commit
        self.assertIsNone(f[6]["LINES_CHANGED"])  # no files loaded for m6

    def test_first_commit_is_earliest_linked_commit_or_pr_creation(self):
        f = self.by_pr("PR_FACTS")
        at = lambda r: r["FIRST_COMMIT_AT"].astimezone(dt.timezone.utc).replace(tzinfo=None)
        self.assertEqual(at(f[1]), dt.datetime(2024, 1, 1, 6))  # head commit h1, before opening
        self.assertEqual(at(f[3]), dt.datetime(2024, 1, 3, 7))  # via the review's COMMIT_ID
        self.assertEqual(at(f[2]), dt.datetime(2024, 1, 2, 8))  # merge commit is later: created

    def test_lead_time_per_pr_picks_the_right_end(self):
        lt = self.by_pr("PR_LEAD_TIME")
        self.assertEqual(sorted(lt), [1, 2, 3, 4, 6, 7])  # open PR 5 left out
        kinds = {k: v["END_KIND"] for k, v in lt.items()}
        self.assertEqual(kinds, {
            1: "deployment_of_merge_commit",  # staging and failed prod deploys ignored
            2: "deployment_after_merge",
            3: "merge_no_deployments",
            4: "pending",
            6: "deployment_of_merge_commit",  # environment 'Production', any case
            7: "deployment_after_merge",  # the 12:00 deploy was before its 13:00 merge
        })
        hours = {k: (None if v["LEAD_TIME_HOURS"] is None else float(v["LEAD_TIME_HOURS"]))
                 for k, v in lt.items()}
        self.assertEqual(hours, {1: 30.0, 2: 36.0, 3: 7.0, 4: None, 6: 3.0, 7: 32.0})

    def test_weekly_team_lead_time_median_and_p90(self):
        rows = self.rows(f"SELECT * FROM {REP}.TEAM_WEEKLY_LEAD_TIME ORDER BY TEAM, WEEK")
        got = [(r["TEAM"], r["WEEK"], r["CHANGES"], r["CHANGES_AT_MERGE"],
                round(float(r["MEDIAN_LEAD_TIME_HOURS"]), 6),
                round(float(r["P90_LEAD_TIME_HOURS"]), 6)) for r in rows]
        self.assertEqual(got, [
            ("core", dt.date(2024, 1, 1), 3, 0, 32.0, 35.2),  # 30, 32, 36
            ("core", dt.date(2024, 1, 8), 1, 0, 3.0, 3.0),  # live Monday 05:00 UTC
            ("web", dt.date(2024, 1, 1), 1, 1, 7.0, 7.0),
        ])

    def test_weekly_team_pr_stats(self):
        rows = self.rows(f"SELECT * FROM {REP}.TEAM_WEEKLY_PR_STATS WHERE TEAM = 'core' "
                         "AND WEEK = '2024-01-01'")
        self.assertEqual(len(rows), 1)
        r = rows[0]
        self.assertEqual((r["PRS_OPENED"], r["PRS_MERGED"], r["PRS_WITHOUT_REVIEW"], r["REVIEWS"]),
                         (4, 3, 3, 2))
        self.assertAlmostEqual(float(r["MEDIAN_HOURS_TO_MERGE"]), 24.0)  # 24, 24, 1
        self.assertAlmostEqual(float(r["P90_HOURS_TO_MERGE"]), 24.0)
        self.assertAlmostEqual(float(r["MEDIAN_HOURS_TO_FIRST_REVIEW"]), 2.0)

    def test_session_time_zone_is_not_utc(self):
        # Guards the test itself: without it the UTC checks above could not fail.
        got = self.rows("SELECT CAST('2024-01-08 02:00:00+00:00'::TIMESTAMP_TZ AS DATE) AS D")
        self.assertEqual(got[0]["D"], dt.date(2024, 1, 7))

    def test_weeks_do_not_follow_week_start(self):
        # DATE_TRUNC('WEEK', ..) follows the account's WEEK_START (the emulator always
        # starts on Monday, so only the text can show it): weeks come from DAYOFWEEKISO.
        for path in ("sql/reporting_data_model.sql", "sql/lead_time_to_deploy.sql"):
            sql = "\n".join(statements(path)).upper()
            self.assertNotRegex(sql, r"DATE_TRUNC\(\s*'(WEEK|WK|W)", path)
            self.assertNotRegex(sql, r"\b(WEEK|WEEKOFYEAR|DAYOFWEEK|YEAROFWEEK)\s*\(", path)
            self.assertIn("DAYOFWEEKISO(CAST(CONVERT_TIMEZONE('UTC'", sql, path)

    def test_columns_exist_in_github_schema(self):
        schema = ROOT / "connectors/github/src/schema.rs"
        if not schema.exists():
            self.skipTest("connectors/github/src/schema.rs not present")
        text = schema.read_text()
        for table in ("DEPLOYMENT", "PULL_REQUEST", "PULL_REQUEST_REVIEW", "COMMIT", "COMMIT_FILE"):
            m = re.search(rf"const {table}: &\[Col\] = &\[(.*?)\n\];", text, re.S)
            self.assertIsNotNone(m, f"{table} not found in {schema}")
            have = set(re.findall(r'\(\s*"([A-Z_]+)"', m.group(1)))
            used = {c.split()[0] for c in DDL[table].split(", ")}
            self.assertEqual(used - have, set(), f"{table} columns missing from the GitHub schema")


if __name__ == "__main__":
    unittest.main()
