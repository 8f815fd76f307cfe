-- One row per pull request, renamed to dbt's lower_snake_case.
select
    org,
    repo_name,
    id as pull_request_id,
    number as pull_request_number,
    state,
    draft as is_draft,
    title,
    user_login as author_login,
    created_at,
    updated_at,
    closed_at,
    merged_at,
    merge_commit_sha,
    head_sha,
    base_ref,
    head_ref,
    _ingested_at as ingested_at
from {{ source('raw_tables', 'pull_request') }}
