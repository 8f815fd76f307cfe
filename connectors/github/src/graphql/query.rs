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

/// Fields of a pull request, with its first page of reviews and the fields the REST
/// list lacks.
fn pr_fields() -> String {
    format!(
        "fullDatabaseId number state isDraft title
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
        reviews(first: {REVIEWS_FIRST}) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {REVIEW_FIELDS} }} }}"
    )
}

/// The alias of the `i`th repository of a `Pulls` query.
pub fn alias(i: usize) -> String {
    format!("r{i}")
}

/// One page of pull requests of each of `repos` repositories (aliased `r0`, `r1`...,
/// variables `owner0`, `name0`, `first0`, `after0`...), newest updated first. Several
/// repositories in one query share its point, so small reads of many repositories cost
/// what one read of their sum does.
pub fn pulls(repos: usize) -> String {
    let repos = repos.max(1);
    let vars: Vec<String> = (0..repos)
        .map(|i| {
            format!("$owner{i}: String!, $name{i}: String!, $first{i}: Int!, $after{i}: String")
        })
        .collect();
    let fields = pr_fields();
    let body: String = (0..repos)
        .map(|i| {
            format!(
                "  {a}: repository(owner: $owner{i}, name: $name{i}) {{
    pullRequests(first: $first{i}, after: $after{i}, orderBy: {{ field: UPDATED_AT, direction: DESC }}) {{
      pageInfo {{ hasNextPage endCursor }}
      nodes {{
        {fields}
      }}
    }}
  }}
",
                a = alias(i)
            )
        })
        .collect();
    format!(
        "query Pulls({}) {{
  rateLimit {{ cost remaining resetAt limit }}
{body}}}",
        vars.join(", ")
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
        ("Pulls", pulls(1)),
        ("Pulls3", pulls(3)),
        ("Reviews", reviews()),
        ("Estimate", estimate()),
    ]
}

/// Points an `Estimate` page costs (100 repositories, two counted connections each).
pub const ESTIMATE_COST: u32 = 2;

/// Points a pulls query costs by GitHub's published rule: per repository, one request
/// for its PR connection plus one per PR for each nested connection; the sum divided by
/// 100 and rounded to the nearest whole number, at least 1.
pub fn pulls_cost_of(firsts: &[u32]) -> u32 {
    let requests: u32 = firsts.iter().map(|f| 1 + NESTED_CONNECTIONS * f).sum();
    ((requests + 50) / 100).max(1)
}

/// [`pulls_cost_of`] one repository's page of `first` PRs.
pub fn pulls_cost(first: u32) -> u32 {
    pulls_cost_of(&[first])
}

/// Nodes a pulls page may return by GitHub's rule (each connection's `first` times its
/// parents), which must stay under 500,000.
pub fn pulls_nodes(first: u32) -> u32 {
    first + first * (REVIEWS_FIRST + 100 + 100)
}

/// PRs a one-point query may ask for in all when it reads `repos` repositories (each
/// adds a request for its connection), at least one per repository.
pub fn one_point_prs(repos: u32) -> u32 {
    let fit = (149u32.saturating_sub(repos)) / NESTED_CONNECTIONS;
    fit.max(repos)
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
        assert_eq!(one_point_prs(1), 49);
        assert_eq!(one_point_prs(5), 48);
        assert_eq!(pulls_cost_of(&[10, 10, 10, 9, 9]), 1);
        assert_eq!(pulls_cost_of(&[10, 10, 10, 10, 9]), 2);
    }
}
