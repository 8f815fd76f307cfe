select
    org,
    repo_name,
    commit_sha,
    filename,
    status as file_status,
    additions,
    deletions,
    changes,
    _ingested_at as ingested_at
from {{ source('raw_tables', 'commit_file') }}
