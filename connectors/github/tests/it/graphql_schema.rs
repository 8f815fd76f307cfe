//! Every GraphQL document flowctl can send is valid against GitHub's published schema
//! (`connectors/github/graphql/schema.graphql`, see the README beside it). A field that
//! does not exist fails only on the real server, so this is the guard.

use apollo_compiler::{ExecutableDocument, Schema};

fn schema() -> apollo_compiler::validation::Valid<Schema> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/graphql/schema.graphql");
    let text = std::fs::read_to_string(path).expect("the checked-in schema");
    match Schema::parse_and_validate(text, path) {
        Ok(s) => s,
        // GitHub's published schema defines a few fields twice over (identically);
        // anything else wrong with the file fails here.
        Err(e) => {
            let other: Vec<String> = e
                .errors
                .iter()
                .map(|d| d.error.to_string())
                .filter(|m| !m.starts_with("duplicate definitions for the `"))
                .collect();
            assert!(other.is_empty(), "schema.graphql: {}", other.join("\n"));
            apollo_compiler::validation::Valid::assume_valid(e.partial)
        }
    }
}

#[test]
fn every_query_is_valid_against_githubs_schema() {
    let schema = schema();
    let queries = flowctl_github::graphql::query::all();
    assert!(queries.len() >= 3);
    for (name, doc) in queries {
        if let Err(e) =
            ExecutableDocument::parse_and_validate(&schema, doc, format!("{name}.graphql"))
        {
            panic!(
                "query {name} is not valid against GitHub's schema:\n{}",
                e.errors
            );
        }
    }
}

#[test]
fn the_validator_rejects_a_field_github_does_not_have() {
    let schema = schema();
    let bad = flowctl_github::graphql::query::pulls(2).replace("changedFiles", "filesChanged");
    let err = ExecutableDocument::parse_and_validate(&schema, bad, "bad.graphql")
        .expect_err("an unknown field must fail");
    assert!(
        err.errors.to_string().contains("filesChanged"),
        "{}",
        err.errors
    );
    // The deprecated 32-bit id is still in the schema; flowctl uses fullDatabaseId.
    assert!(!flowctl_github::graphql::query::pulls(2).contains(" databaseId number"));
}
