select
    org,
    repo_name,
    sha as commit_sha,
    author_login,
    author_date,
    committer_date,
    _ingested_at as ingested_at
from {{ source('raw_tables', 'commit') }}
