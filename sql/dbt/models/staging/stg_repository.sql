select
    org,
    id as repository_id,
    name as repo_name,
    full_name,
    default_branch,
    archived as is_archived,
    _ingested_at as ingested_at
from {{ source('raw_tables', 'repository') }}
