-- DORA lead time for changes over GITHUB_PIPELINES.RAW_TABLES (Snowflake dialect).
-- Needs sql/reporting_data_model.sql first (uses REPORTING.PR_FACTS).
--
-- Lead time of a merged pull request = FIRST_COMMIT_AT (see reporting_data_model.sql) to the
-- moment the change was live in production:
--   1. the first successful production deployment of the PR's merge commit
--      (DEPLOYMENT.SHA = MERGE_COMMIT_SHA), else
--   2. the first successful production deployment of the same repository at or after the
--      merge (deployments ship everything merged before them), else
--   3. the merge itself, when the repository has no successful production deployment at all
--      (a repository that deploys without GitHub deployments is counted at merge time).
-- A PR merged after its repository's last production deployment is not live yet: it has no
-- lead time and is left out of the statistics (END_KIND = 'pending').
-- "Deployed at" is the time of the deployment's latest status (STATUS_CREATED_AT, the
-- 'success' status), falling back to the deployment's UPDATED_AT / CREATED_AT.
-- Production: ENVIRONMENT = 'production' (case-insensitive); success: STATUS_STATE = 'success'.
--
-- Views in GITHUB_PIPELINES.REPORTING:
--   PR_LEAD_TIME              one row per merged PR: end kind, live-at time, lead time in hours
--   TEAM_WEEKLY_LEAD_TIME     per team and ISO week (Monday, UTC) the change went live:
--                             count, median and p90 lead time (hours)

CREATE SCHEMA IF NOT EXISTS GITHUB_PIPELINES.REPORTING;

CREATE OR REPLACE VIEW GITHUB_PIPELINES.REPORTING.PR_LEAD_TIME AS
WITH prod_deploys AS (
    SELECT ORG, REPO_NAME, SHA,
           COALESCE(STATUS_CREATED_AT, UPDATED_AT, CREATED_AT) AS DEPLOYED_AT
    FROM GITHUB_PIPELINES.RAW_TABLES.DEPLOYMENT
    WHERE LOWER(ENVIRONMENT) = 'production'
      AND LOWER(STATUS_STATE) = 'success'
),
deploying_repos AS (
    SELECT DISTINCT ORG, REPO_NAME FROM prod_deploys
),
merged AS (
    SELECT * FROM GITHUB_PIPELINES.REPORTING.PR_FACTS WHERE MERGED_AT IS NOT NULL
),
by_sha AS (
    SELECT m.ORG, m.REPO_NAME, m.PULL_REQUEST_ID, MIN(d.DEPLOYED_AT) AS DEPLOYED_AT
    FROM merged m
    JOIN prod_deploys d
      ON d.ORG = m.ORG AND d.REPO_NAME = m.REPO_NAME AND d.SHA = m.MERGE_COMMIT_SHA
    GROUP BY m.ORG, m.REPO_NAME, m.PULL_REQUEST_ID
),
after_merge AS (
    SELECT m.ORG, m.REPO_NAME, m.PULL_REQUEST_ID, MIN(d.DEPLOYED_AT) AS DEPLOYED_AT
    FROM merged m
    JOIN prod_deploys d
      ON d.ORG = m.ORG AND d.REPO_NAME = m.REPO_NAME AND d.DEPLOYED_AT >= m.MERGED_AT
    GROUP BY m.ORG, m.REPO_NAME, m.PULL_REQUEST_ID
),
ends AS (
    SELECT
        m.*,
        CASE
            WHEN s.DEPLOYED_AT IS NOT NULL THEN 'deployment_of_merge_commit'
            WHEN a.DEPLOYED_AT IS NOT NULL THEN 'deployment_after_merge'
            WHEN r.REPO_NAME IS NULL THEN 'merge_no_deployments'
            ELSE 'pending'
        END AS END_KIND,
        CASE
            WHEN s.DEPLOYED_AT IS NOT NULL THEN s.DEPLOYED_AT
            WHEN a.DEPLOYED_AT IS NOT NULL THEN a.DEPLOYED_AT
            WHEN r.REPO_NAME IS NULL THEN m.MERGED_AT
        END AS LIVE_AT
    FROM merged m
    LEFT JOIN by_sha s
      ON s.ORG = m.ORG AND s.REPO_NAME = m.REPO_NAME AND s.PULL_REQUEST_ID = m.PULL_REQUEST_ID
    LEFT JOIN after_merge a
      ON a.ORG = m.ORG AND a.REPO_NAME = m.REPO_NAME AND a.PULL_REQUEST_ID = m.PULL_REQUEST_ID
    LEFT JOIN deploying_repos r
      ON r.ORG = m.ORG AND r.REPO_NAME = m.REPO_NAME
)
SELECT
    ORG, REPO_NAME, PULL_REQUEST_ID, NUMBER, AUTHOR_LOGIN, TEAM,
    FIRST_COMMIT_AT, MERGED_AT, MERGE_COMMIT_SHA,
    END_KIND,
    LIVE_AT,
    -- Monday of the UTC week, independent of TIMEZONE and WEEK_START (reporting_data_model.sql).
    DATEADD('day', 1 - DAYOFWEEKISO(CAST(CONVERT_TIMEZONE('UTC', LIVE_AT) AS DATE)),
            CAST(CONVERT_TIMEZONE('UTC', LIVE_AT) AS DATE)) AS LIVE_WEEK,
    DATEDIFF('second', FIRST_COMMIT_AT, LIVE_AT) / 3600.0 AS LEAD_TIME_HOURS
FROM ends;

CREATE OR REPLACE VIEW GITHUB_PIPELINES.REPORTING.TEAM_WEEKLY_LEAD_TIME AS
SELECT
    TEAM,
    LIVE_WEEK AS WEEK,
    COUNT(*) AS CHANGES,
    COUNT_IF(END_KIND <> 'merge_no_deployments') AS CHANGES_DEPLOYED,
    COUNT_IF(END_KIND = 'merge_no_deployments') AS CHANGES_AT_MERGE,
    MEDIAN(LEAD_TIME_HOURS) AS MEDIAN_LEAD_TIME_HOURS,
    PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY LEAD_TIME_HOURS) AS P90_LEAD_TIME_HOURS
FROM GITHUB_PIPELINES.REPORTING.PR_LEAD_TIME
WHERE LIVE_AT IS NOT NULL
GROUP BY TEAM, LIVE_WEEK;
