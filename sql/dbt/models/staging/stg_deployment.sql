-- One row per deployment with its latest status, renamed to dbt's lower_snake_case.
-- deployed_at: when the latest status was set (for a 'success' status, when the
-- deployment went live), else the deployment's own times.
select
    org,
    repo_name,
    id as deployment_id,
    sha,
    ref,
    task,
    environment,
    creator_login,
    created_at,
    updated_at,
    status_state,
    status_created_at,
    status_environment_url,
    coalesce(status_created_at, updated_at, created_at) as deployed_at,
    _ingested_at as ingested_at
from {{ source('raw_tables', 'deployment') }}
