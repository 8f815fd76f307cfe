-- =====================================================================================
-- flowctl: Snowflake setup for staging on Google Cloud Storage (run once, by an admin)
-- =====================================================================================
--
-- What this creates:
--   * STORAGE INTEGRATION gcs_snowflake_integration  (Snowflake's own GCS service
--     account; no keys are stored in Snowflake or in flowctl)
--   * database GITHUB_PIPELINES, schema RAW_TABLES
--   * file format GITHUB_PIPELINES.RAW_TABLES.PARQUET_FORMAT
--   * external stage GITHUB_PIPELINES.RAW_TABLES.GITHUB_STAGE over gcs://<bucket>/github/
--   * warehouse ETL_WH
--   * role FLOWCTL_LOADER with the grants flowctl needs, granted to user SVC_FLOWCTL
--   * role TRANSFORMER (dbt and sql/reporting_data_model.sql): reads RAW_TABLES, creates
--     the REPORTING and dbt schemas; granted to user SVC_DBT
--   * role REPORTING_READER: reads the views in REPORTING
--   All three roles are granted to SYSADMIN (Snowflake's recommended role hierarchy), so
--   an admin can use them, and ACCOUNTADMIN, which inherits SYSADMIN, too.
--
-- Replace before running:
--   your-data-bucket   the GCS bucket of the spec's `staging.bucket`
--   github/            the spec's `staging.prefix` (keep the trailing slash)
--   ETL_WH             the warehouse flowctl runs its statements on
--
-- The stage URL must be the staging root (bucket + prefix): flowctl's COPY names each
-- file relative to it, e.g.
--   COPY INTO ..._STAGE FROM @GITHUB_PIPELINES.RAW_TABLES.GITHUB_STAGE
--     FILES = ('pull_request/org=acme/date=2026-01-02/pull_request-<batch>-00000.parquet')
--
-- Then point the spec at it:
--   warehouse:
--     type: snowflake
--     user: SVC_FLOWCTL
--     role: FLOWCTL_LOADER
--     warehouse: ETL_WH
--     database: GITHUB_PIPELINES
--     schema: RAW_TABLES
--     stage: GITHUB_STAGE
--     storage_integration: gcs_snowflake_integration
-- =====================================================================================

-- -------------------------------------------------------------------------------------
-- Step 1. Storage integration (needs ACCOUNTADMIN, or a role with CREATE INTEGRATION).
-- -------------------------------------------------------------------------------------
USE ROLE ACCOUNTADMIN;

CREATE STORAGE INTEGRATION IF NOT EXISTS gcs_snowflake_integration
    TYPE = EXTERNAL_STAGE
    STORAGE_PROVIDER = 'GCS'
    ENABLED = TRUE
    STORAGE_ALLOWED_LOCATIONS = ('gcs://your-data-bucket/github/');

-- -------------------------------------------------------------------------------------
-- Step 2. Find the service account Snowflake uses for this integration.
-- -------------------------------------------------------------------------------------
DESC INTEGRATION gcs_snowflake_integration;
-- Copy the value of the property STORAGE_GCS_SERVICE_ACCOUNT, for example
--   abcd12345@gcpuscentral1-1dfa.iam.gserviceaccount.com

-- -------------------------------------------------------------------------------------
-- Step 3. In Google Cloud: let that service account read the bucket. (Not SQL.)
-- -------------------------------------------------------------------------------------
-- As the user's design documents it (role "Storage Object Admin" on the bucket):
--
--   gcloud storage buckets add-iam-policy-binding gs://your-data-bucket \
--       --member="serviceAccount:<STORAGE_GCS_SERVICE_ACCOUNT>" \
--       --role="roles/storage.objectAdmin"
--
-- Least privilege: flowctl's COPY only reads (staged files are deleted by flowctl's own
-- staging sink, `cleanup: delete_after_load`, never by Snowflake), so a custom role with
-- exactly what Snowflake needs for loading is enough:
--
--   gcloud iam roles create snowflakeLoader --project=your-gcp-project \
--       --title="Snowflake loader" \
--       --permissions=storage.buckets.get,storage.objects.get,storage.objects.list
--   gcloud storage buckets add-iam-policy-binding gs://your-data-bucket \
--       --member="serviceAccount:<STORAGE_GCS_SERVICE_ACCOUNT>" \
--       --role="projects/your-gcp-project/roles/snowflakeLoader"
--
-- IAM changes can take a minute or two to apply; Step 7 fails until they have.

-- -------------------------------------------------------------------------------------
-- Step 4. Roles, warehouse, database, schema, and the loader's grants.
-- -------------------------------------------------------------------------------------
-- Unquoted names mean their upper-case form (Snowflake's identifier rules); flowctl reads
-- a spec's names the same way, so `database: github_pipelines` finds GITHUB_PIPELINES.
CREATE ROLE IF NOT EXISTS FLOWCTL_LOADER;
CREATE ROLE IF NOT EXISTS TRANSFORMER;
CREATE ROLE IF NOT EXISTS REPORTING_READER;
GRANT ROLE FLOWCTL_LOADER TO ROLE SYSADMIN;
GRANT ROLE TRANSFORMER TO ROLE SYSADMIN;
GRANT ROLE REPORTING_READER TO ROLE SYSADMIN;

CREATE WAREHOUSE IF NOT EXISTS ETL_WH
    WAREHOUSE_SIZE = XSMALL
    AUTO_SUSPEND = 60
    AUTO_RESUME = TRUE
    INITIALLY_SUSPENDED = TRUE;
CREATE DATABASE IF NOT EXISTS GITHUB_PIPELINES;
CREATE SCHEMA IF NOT EXISTS GITHUB_PIPELINES.RAW_TABLES;

GRANT USAGE ON INTEGRATION gcs_snowflake_integration TO ROLE FLOWCTL_LOADER;
GRANT USAGE ON WAREHOUSE ETL_WH TO ROLE FLOWCTL_LOADER;
GRANT USAGE ON DATABASE GITHUB_PIPELINES TO ROLE FLOWCTL_LOADER;
-- flowctl creates and alters its own tables (CREATE TABLE IF NOT EXISTS, ADD COLUMN) and
-- so owns them (INSERT, MERGE, TRUNCATE, SELECT come with ownership); CREATE STAGE lets it
-- create the stage itself when a spec gives only `storage_integration`.
GRANT USAGE, CREATE TABLE, CREATE STAGE, CREATE FILE FORMAT
    ON SCHEMA GITHUB_PIPELINES.RAW_TABLES TO ROLE FLOWCTL_LOADER;

-- TRANSFORMER (sql/dbt/profiles.yml, and whoever runs sql/reporting_data_model.sql and
-- sql/lead_time_to_deploy.sql): reads every raw table, present and future (tables flowctl
-- creates later are covered by the FUTURE grants), and creates the REPORTING schema and
-- dbt's REPORTING_STAGING, which it then owns.
GRANT USAGE ON WAREHOUSE ETL_WH TO ROLE TRANSFORMER;
GRANT USAGE, CREATE SCHEMA ON DATABASE GITHUB_PIPELINES TO ROLE TRANSFORMER;
GRANT USAGE ON SCHEMA GITHUB_PIPELINES.RAW_TABLES TO ROLE TRANSFORMER;
GRANT SELECT ON ALL TABLES IN SCHEMA GITHUB_PIPELINES.RAW_TABLES TO ROLE TRANSFORMER;
GRANT SELECT ON FUTURE TABLES IN SCHEMA GITHUB_PIPELINES.RAW_TABLES TO ROLE TRANSFORMER;
GRANT SELECT ON ALL VIEWS IN SCHEMA GITHUB_PIPELINES.RAW_TABLES TO ROLE TRANSFORMER;
GRANT SELECT ON FUTURE VIEWS IN SCHEMA GITHUB_PIPELINES.RAW_TABLES TO ROLE TRANSFORMER;

-- REPORTING_READER (dashboards, analysts): the views TRANSFORMER builds. A view reads the
-- raw tables with its owner's privileges, so readers need nothing on RAW_TABLES. Future
-- grants on the database cover REPORTING and REPORTING_STAGING once TRANSFORMER creates them.
GRANT USAGE ON WAREHOUSE ETL_WH TO ROLE REPORTING_READER;
GRANT USAGE ON DATABASE GITHUB_PIPELINES TO ROLE REPORTING_READER;
GRANT USAGE ON FUTURE SCHEMAS IN DATABASE GITHUB_PIPELINES TO ROLE REPORTING_READER;
GRANT SELECT ON FUTURE VIEWS IN DATABASE GITHUB_PIPELINES TO ROLE REPORTING_READER;

-- -------------------------------------------------------------------------------------
-- Step 5. File format: Parquet with logical types, so timestamps arrive as TIMESTAMP_TZ
-- and not as raw integers. (Snappy is detected from the files; nothing to set.)
-- -------------------------------------------------------------------------------------
CREATE FILE FORMAT IF NOT EXISTS GITHUB_PIPELINES.RAW_TABLES.PARQUET_FORMAT
    TYPE = PARQUET
    USE_LOGICAL_TYPE = TRUE;

-- -------------------------------------------------------------------------------------
-- Step 6. The named external stage over the staging root.
-- -------------------------------------------------------------------------------------
CREATE STAGE IF NOT EXISTS GITHUB_PIPELINES.RAW_TABLES.GITHUB_STAGE
    URL = 'gcs://your-data-bucket/github/'
    STORAGE_INTEGRATION = gcs_snowflake_integration
    FILE_FORMAT = GITHUB_PIPELINES.RAW_TABLES.PARQUET_FORMAT;

GRANT USAGE ON FILE FORMAT GITHUB_PIPELINES.RAW_TABLES.PARQUET_FORMAT TO ROLE FLOWCTL_LOADER;
GRANT USAGE ON STAGE GITHUB_PIPELINES.RAW_TABLES.GITHUB_STAGE TO ROLE FLOWCTL_LOADER;

-- -------------------------------------------------------------------------------------
-- Step 7. The service user (key-pair auth, no password) and a check that the stage
-- can read the bucket.
-- -------------------------------------------------------------------------------------
-- Generate the key pair locally first (flowctl's `private_key_path` is the .p8):
--   openssl genrsa 2048 | openssl pkcs8 -topk8 -inform PEM -out snowflake_key.p8 -nocrypt
--   openssl rsa -in snowflake_key.p8 -pubout -out snowflake_key.pub
CREATE USER IF NOT EXISTS SVC_FLOWCTL
    TYPE = SERVICE
    DEFAULT_ROLE = FLOWCTL_LOADER
    DEFAULT_WAREHOUSE = ETL_WH;
-- ALTER USER SVC_FLOWCTL SET RSA_PUBLIC_KEY = '<contents of snowflake_key.pub without the BEGIN/END lines>';
GRANT ROLE FLOWCTL_LOADER TO USER SVC_FLOWCTL;

-- dbt's service user (sql/dbt/profiles.yml), with a key pair of its own.
CREATE USER IF NOT EXISTS SVC_DBT
    TYPE = SERVICE
    DEFAULT_ROLE = TRANSFORMER
    DEFAULT_WAREHOUSE = ETL_WH;
-- ALTER USER SVC_DBT SET RSA_PUBLIC_KEY = '<contents of snowflake_dbt_key.pub without the BEGIN/END lines>';
GRANT ROLE TRANSFORMER TO USER SVC_DBT;

-- The admin running this script may use FLOWCTL_LOADER: it is granted to SYSADMIN (Step
-- 4), which ACCOUNTADMIN inherits. The check runs with exactly the loader's privileges.
USE ROLE FLOWCTL_LOADER;
USE WAREHOUSE ETL_WH;
LIST @GITHUB_PIPELINES.RAW_TABLES.GITHUB_STAGE;
-- An empty result is fine before the first run; an access error means Step 3 is
-- missing or has not propagated yet.
