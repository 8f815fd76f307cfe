-- GitHub login -> LDAP identity and team; logins compared in lower case downstream.
select
    lower(login) as login,
    ldap_uid,
    email,
    team,
    _ingested_at as ingested_at
from {{ source('raw_tables', 'user_lookup') }}
