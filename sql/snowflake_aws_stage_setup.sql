-- =====================================================================================
-- flowctl: Snowflake setup for staging on Amazon S3 (run once, by an admin)
-- =====================================================================================
--
-- What this creates:
--   * an IAM role in your AWS account that Snowflake assumes (no access keys are stored
--     in Snowflake or in flowctl), guarded by an ExternalId
--   * STORAGE INTEGRATION s3_snowflake_integration
--   * database GITHUB_PIPELINES, schema RAW_TABLES
--   * file format GITHUB_PIPELINES.RAW_TABLES.PARQUET_FORMAT
--   * external stage GITHUB_PIPELINES.RAW_TABLES.GITHUB_STAGE over s3://<bucket>/github/
--   * warehouse ETL_WH
--   * role FLOWCTL_LOADER with the grants flowctl needs, granted to user SVC_FLOWCTL
--   * role TRANSFORMER (dbt and sql/reporting_data_model.sql): reads RAW_TABLES, creates
--     the REPORTING and dbt schemas; granted to user SVC_DBT
--   * role REPORTING_READER: reads the views in REPORTING
--   All three roles are granted to SYSADMIN (Snowflake's recommended role hierarchy), so
--   an admin can use them, and ACCOUNTADMIN, which inherits SYSADMIN, too.
--
-- Replace before running:
--   123456789012         your AWS account id
--   snowflake-s3-role    the IAM role name (Step 0)
--   your-data-bucket     the S3 bucket of the spec's `staging.bucket`
--   github/              the spec's `staging.prefix` (keep the trailing slash)
--   ETL_WH               the warehouse flowctl runs its statements on
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
--     storage_integration: s3_snowflake_integration
-- =====================================================================================

-- -------------------------------------------------------------------------------------
-- Step 0. In AWS: a read policy on the staging prefix and a role carrying it. (Not SQL.)
-- -------------------------------------------------------------------------------------
-- Policy "snowflake-s3-read" (flowctl's COPY only reads: staged files are deleted by
-- flowctl's own staging sink, `cleanup: delete_after_load`, never by Snowflake):
--
--   {
--     "Version": "2012-10-17",
--     "Statement": [
--       {
--         "Effect": "Allow",
--         "Action": ["s3:GetObject", "s3:GetObjectVersion"],
--         "Resource": "arn:aws:s3:::your-data-bucket/github/*"
--       },
--       {
--         "Effect": "Allow",
--         "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
--         "Resource": "arn:aws:s3:::your-data-bucket",
--         "Condition": { "StringLike": { "s3:prefix": ["github/*"] } }
--       }
--     ]
--   }
--
--   aws iam create-policy --policy-name snowflake-s3-read --policy-document file://read.json
--
-- Role "snowflake-s3-role": create it with a placeholder trust policy (your own account
-- as principal, ExternalId "0000"), attach the policy; Step 3 replaces the trust policy.
-- placeholder-trust.json:
--
--   {
--     "Version": "2012-10-17",
--     "Statement": [
--       {
--         "Effect": "Allow",
--         "Principal": { "AWS": "arn:aws:iam::123456789012:root" },
--         "Action": "sts:AssumeRole",
--         "Condition": { "StringEquals": { "sts:ExternalId": "0000" } }
--       }
--     ]
--   }
--
--   aws iam create-role --role-name snowflake-s3-role \
--       --assume-role-policy-document file://placeholder-trust.json
--   aws iam attach-role-policy --role-name snowflake-s3-role \
--       --policy-arn arn:aws:iam::123456789012:policy/snowflake-s3-read

-- -------------------------------------------------------------------------------------
-- Step 1. Storage integration (needs ACCOUNTADMIN, or a role with CREATE INTEGRATION).
-- -------------------------------------------------------------------------------------
USE ROLE ACCOUNTADMIN;

CREATE STORAGE INTEGRATION IF NOT EXISTS s3_snowflake_integration
    TYPE = EXTERNAL_STAGE
    STORAGE_PROVIDER = 'S3'
    ENABLED = TRUE
    STORAGE_AWS_ROLE_ARN = 'arn:aws:iam::123456789012:role/snowflake-s3-role'
    STORAGE_ALLOWED_LOCATIONS = ('s3://your-data-bucket/github/');

-- -------------------------------------------------------------------------------------
-- Step 2. Find the IAM user Snowflake will assume the role as, and the ExternalId.
-- -------------------------------------------------------------------------------------
DESC INTEGRATION s3_snowflake_integration;
-- Copy two property values:
--   STORAGE_AWS_IAM_USER_ARN   e.g. arn:aws:iam::999999999999:user/abc1-b-self1234
--   STORAGE_AWS_EXTERNAL_ID    e.g. MYACCOUNT_SFCRole=2_a123456/s0aBCDEfGHIJklmNoPq=
-- Note: CREATE OR REPLACE of the integration generates a new ExternalId; Step 3 would
-- then have to be redone. That is why Step 1 uses IF NOT EXISTS.

-- -------------------------------------------------------------------------------------
-- Step 3. In AWS: replace the role's trust policy with these two values. (Not SQL.)
-- -------------------------------------------------------------------------------------
-- The ExternalId condition stops any other Snowflake customer from using your role
-- (the "confused deputy" problem): only this integration presents that id.
--
--   {
--     "Version": "2012-10-17",
--     "Statement": [
--       {
--         "Effect": "Allow",
--         "Principal": { "AWS": "<STORAGE_AWS_IAM_USER_ARN>" },
--         "Action": "sts:AssumeRole",
--         "Condition": {
--           "StringEquals": { "sts:ExternalId": "<STORAGE_AWS_EXTERNAL_ID>" }
--         }
--       }
--     ]
--   }
--
--   aws iam update-assume-role-policy --role-name snowflake-s3-role \
--       --policy-document file://trust.json

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

GRANT USAGE ON INTEGRATION s3_snowflake_integration TO ROLE FLOWCTL_LOADER;
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
    URL = 's3://your-data-bucket/github/'
    STORAGE_INTEGRATION = s3_snowflake_integration
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
-- An empty result is fine before the first run; "Error assuming AWS_ROLE" means the
-- trust policy of Step 3 does not carry this integration's user ARN and ExternalId.
