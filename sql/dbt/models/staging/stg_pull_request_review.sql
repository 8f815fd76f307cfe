-- Submitted reviews only (pending ones have no SUBMITTED_AT).
select
    org,
    repo_name,
    id as review_id,
    pull_request_id,
    user_login as reviewer_login,
    state as review_state,
    submitted_at,
    commit_id,
    _ingested_at as ingested_at
from {{ source('raw_tables', 'pull_request_review') }}
where submitted_at is not null
