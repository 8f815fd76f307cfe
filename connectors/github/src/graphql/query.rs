//! The GraphQL documents flowctl sends. Every one is validated against GitHub's published
//! schema (`connectors/github/graphql/schema.graphql`) by `tests/graphql_schema.rs`.

/// Fields of a review, on the first page (nested in a PR) and on further pages.
const REVIEW_FIELDS: &str = "fullDatabaseId
  author { __typename login ... on User { databaseId } ... on Bot { databaseId } ... on Mannequin { databaseId } }
  state submittedAt commit { oid } authorAssociation url";

/// Review pages: 100 is GitHub's largest `first`.
pub const REVIEWS_FIRST: u32 = 100;

/// Connections nested in each pull request that fetch nodes: reviews, labels, review
/// requests (`commits { totalCount }` fetches none, so GitHub's rule does not count it).
pub const NESTED_CONNECTIONS: u32 = 3;

/// One page of a repository's pull requests, newest updated first, each with its first
/// page of reviews and the fields the REST list lacks.
pub fn pulls() -> String {
    format!(
        "query Pulls($owner: String!, $name: String!, $first: Int!, $after: String) {{
  rateLimit {{ cost remaining resetAt limit }}
  repository(owner: $owner, name: $name) {{
    pullRequests(first: $first, after: $after, orderBy: {{ field: UPDATED_AT, direction: DESC }}) {{
      pageInfo {{ hasNextPage endCursor }}
      nodes {{
        fullDatabaseId number state isDraft title
        author {{ __typename login ... on User {{ databaseId }} ... on Bot {{ databaseId }} ... on Mannequin {{ databaseId }} }}
        authorAssociation createdAt updatedAt closedAt mergedAt
        mergeCommit {{ oid }} potentialMergeCommit {{ oid }}
        baseRefName baseRefOid headRefName headRefOid
        headRepository {{ nameWithOwner }}
        mergedBy {{ __typename login }}
        additions deletions changedFiles commits {{ totalCount }}
        reviewRequests(first: 100) {{ nodes {{ requestedReviewer {{ __typename ... on User {{ login }} ... on Bot {{ login }} ... on Mannequin {{ login }} }} }} }}
        labels(first: 100) {{ nodes {{ name }} }}
        milestone {{ title }}
        url
        reviews(first: {REVIEWS_FIRST}) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {REVIEW_FIELDS} }} }}
      }}
    }}
  }}
}}"
    )
}

/// Further pages of one pull request's reviews (only for PRs with more than 100).
pub fn reviews() -> String {
    format!(
        "query Reviews($owner: String!, $name: String!, $number: Int!, $after: String) {{
  rateLimit {{ cost remaining resetAt limit }}
  repository(owner: $owner, name: $name) {{
    pullRequest(number: $number) {{
      reviews(first: {REVIEWS_FIRST}, after: $after) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {REVIEW_FIELDS} }} }}
    }}
  }}
}}"
    )
}

/// Repositories of an owner with their pull request and default-branch commit counts
/// (`plan --estimate`): 2 points a page of 100 repositories.
pub fn estimate() -> String {
    "query Estimate($owner: String!, $after: String) {
  rateLimit { cost remaining resetAt limit }
  repositoryOwner(login: $owner) {
    repositories(first: 100, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes {
        name isArchived isFork
        pullRequests(first: 1) { totalCount }
        defaultBranchRef { target { ... on Commit { history(first: 1) { totalCount } } } }
      }
    }
  }
}"
    .to_string()
}

/// Every document flowctl can send, by operation name.
pub fn all() -> Vec<(&'static str, String)> {
    vec![
        ("Pulls", pulls()),
        ("Reviews", reviews()),
        ("Estimate", estimate()),
    ]
}

/// Points an `Estimate` page costs (100 repositories, two counted connections each).
pub const ESTIMATE_COST: u32 = 2;

/// Points a pulls page of `first` PRs costs by GitHub's published rule: one request
/// for the PR connection plus one per PR for each nested connection, divided by 100 and
/// rounded to the nearest whole number, at least 1.
pub fn pulls_cost(first: u32) -> u32 {
    let requests = 1 + NESTED_CONNECTIONS * first;
    ((requests + 50) / 100).max(1)
}

/// Nodes a pulls page may return by GitHub's rule (each connection's `first` times its
/// parents), which must stay under 500,000.
pub fn pulls_nodes(first: u32) -> u32 {
    first + first * (REVIEWS_FIRST + 100 + 100)
}

/// The page size that costs fewest points per PR: the largest `first` whose page still
/// rounds to one point (49: 148 requests → 1 point; 100 would be 301 → 3 points).
pub fn cheapest_first() -> u32 {
    (1..=100u32)
        .max_by(|a, b| {
            // Fewest points per PR; the larger page on a tie (fewer round trips).
            let pa = u64::from(pulls_cost(*a)) * u64::from(*b);
            let pb = u64::from(pulls_cost(*b)) * u64::from(*a);
            pb.cmp(&pa).then(a.cmp(b))
        })
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_rounds_to_one_point_and_respects_the_limits() {
        assert_eq!(pulls_cost(49), 1);
        assert_eq!(pulls_cost(50), 2);
        assert_eq!(pulls_cost(100), 3);
        assert_eq!(cheapest_first(), 49);
        assert!(pulls_nodes(100) < 500_000);
    }
}
