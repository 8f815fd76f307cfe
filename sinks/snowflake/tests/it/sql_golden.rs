//! Golden tests of the rendered SQL.

use arrow::datatypes::{DataType, Field, Schema};
use flowctl_core::meta::{metadata_fields, RAW};
use flowctl_core::TableSpec;
use flowctl_snowflake::sql::{self, literal, Ident, Qualified, TableNames};
use std::sync::Arc;

fn schema() -> Schema {
    let mut f = vec![
        Field::new("ID", DataType::Int64, false),
        Field::new("TITLE", DataType::Utf8, true),
        Field::new("MERGED", DataType::Boolean, true),
        Field::new(
            "LABELS",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        Field::new("SCORE", DataType::Float64, true),
        Field::new("DAY", DataType::Date32, true),
    ];
    f.extend(metadata_fields());
    f.push(Field::new(RAW, DataType::Utf8, true));
    Schema::new(f)
}

fn names() -> TableNames {
    TableNames::new("GITHUB_PIPELINES", "RAW_TABLES", "PULL_REQUEST").unwrap()
}

#[test]
fn create_tables() {
    assert_eq!(
        sql::create_target(&names(), &schema()).unwrap(),
        r#"CREATE TABLE IF NOT EXISTS "GITHUB_PIPELINES"."RAW_TABLES"."PULL_REQUEST" (
  "ID" NUMBER(38,0),
  "TITLE" VARCHAR,
  "MERGED" BOOLEAN,
  "LABELS" ARRAY,
  "SCORE" FLOAT,
  "DAY" DATE,
  "_ROW_KEY" VARCHAR,
  "_INGESTED_AT" TIMESTAMP_TZ,
  "_SOURCE_ORG" VARCHAR,
  "_BATCH_ID" VARCHAR,
  "_RAW" VARIANT
)"#
    );
    let stage = sql::create_stage_table(&names(), &schema()).unwrap();
    assert!(stage.starts_with(
        r#"CREATE TABLE IF NOT EXISTS "GITHUB_PIPELINES"."RAW_TABLES"."PULL_REQUEST_STAGE" ("#
    ));
    assert!(stage.contains(r#""_RAW" VARCHAR"#), "{stage}");
}

#[test]
fn alter_and_columns_query() {
    let f = Field::new("BODY", DataType::Utf8, true);
    assert_eq!(
        sql::add_column(&names().target, &f, false).unwrap(),
        r#"ALTER TABLE "GITHUB_PIPELINES"."RAW_TABLES"."PULL_REQUEST" ADD COLUMN "BODY" VARCHAR"#
    );
    assert_eq!(
        sql::existing_columns(&names()),
        r#"SELECT TABLE_NAME, COLUMN_NAME FROM "GITHUB_PIPELINES".INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = 'RAW_TABLES' AND TABLE_NAME IN ('PULL_REQUEST', 'PULL_REQUEST_STAGE')"#
    );
}

fn stage() -> Qualified {
    Qualified {
        database: Ident::new("GITHUB_PIPELINES", "d").unwrap(),
        schema: Ident::new("RAW_TABLES", "s").unwrap(),
        name: Ident::new("GH_STAGE", "n").unwrap(),
    }
}

#[test]
fn copy_names_files_and_escapes_them() {
    assert_eq!(
        sql::copy_into(
            &names(),
            &stage(),
            &[
                "pull_request/org=a/date=2026-01-02/f.parquet",
                "x/org=o'b\\c/f.parquet"
            ]
        ),
        r#"COPY INTO "GITHUB_PIPELINES"."RAW_TABLES"."PULL_REQUEST_STAGE" FROM @"GITHUB_PIPELINES"."RAW_TABLES"."GH_STAGE" FILES=('pull_request/org=a/date=2026-01-02/f.parquet', 'x/org=o''b\\c/f.parquet') FILE_FORMAT=(TYPE=PARQUET USE_LOGICAL_TYPE=TRUE) MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE FORCE=TRUE"#
    );
}

#[test]
fn merge_dedupes_and_updates_only_newer() {
    let s = Schema::new(vec![
        Field::new("ID", DataType::Int64, false),
        Field::new("_ROW_KEY", DataType::Utf8, false),
        Field::new("_INGESTED_AT", flowctl_core::meta::utc_timestamp(), false),
        Field::new("_RAW", DataType::Utf8, true),
    ]);
    assert_eq!(
        sql::merge(&names(), &s).unwrap(),
        r#"MERGE INTO "GITHUB_PIPELINES"."RAW_TABLES"."PULL_REQUEST" AS t
USING (
  SELECT "ID", "_ROW_KEY", "_INGESTED_AT", PARSE_JSON("_RAW") AS "_RAW" FROM "GITHUB_PIPELINES"."RAW_TABLES"."PULL_REQUEST_STAGE"
  QUALIFY ROW_NUMBER() OVER (PARTITION BY "_ROW_KEY" ORDER BY "_INGESTED_AT" DESC) = 1
) AS s
ON t."_ROW_KEY" = s."_ROW_KEY"
WHEN MATCHED AND s."_INGESTED_AT" > t."_INGESTED_AT" THEN UPDATE SET "ID" = s."ID", "_ROW_KEY" = s."_ROW_KEY", "_INGESTED_AT" = s."_INGESTED_AT", "_RAW" = s."_RAW"
WHEN NOT MATCHED THEN INSERT ("ID", "_ROW_KEY", "_INGESTED_AT", "_RAW") VALUES (s."ID", s."_ROW_KEY", s."_INGESTED_AT", s."_RAW")"#
    );
    let no_key = Schema::new(vec![Field::new("ID", DataType::Int64, false)]);
    let e = sql::merge(&names(), &no_key).unwrap_err().to_string();
    assert!(e.contains("PULL_REQUEST") && e.contains("_ROW_KEY"), "{e}");
}

#[test]
fn truncate_and_stage() {
    assert_eq!(
        sql::truncate_stage(&names()),
        r#"TRUNCATE TABLE "GITHUB_PIPELINES"."RAW_TABLES"."PULL_REQUEST_STAGE""#
    );
    // A plain name in a spec means its upper-case form, in SQL as in the setup scripts.
    let int = Ident::from_spec("gcs_int", "i").unwrap();
    assert_eq!(
        sql::create_stage(&stage(), "gs://bucket/github", &int).unwrap(),
        r#"CREATE STAGE IF NOT EXISTS "GITHUB_PIPELINES"."RAW_TABLES"."GH_STAGE" URL='gcs://bucket/github/' STORAGE_INTEGRATION="GCS_INT""#
    );
    let e = sql::create_stage(&stage(), "file:///tmp/x/", &int)
        .unwrap_err()
        .to_string();
    assert!(e.contains("file:///tmp/x/"), "{e}");
}

#[test]
fn identifiers_are_validated_and_literals_escaped() {
    for bad in ["", "1ABC", "A-B", "A\"B", "A B", "a;drop"] {
        assert!(Ident::new(bad, "table").is_err(), "{bad:?} accepted");
    }
    assert_eq!(Ident::new("_A$1", "t").unwrap().quoted(), "\"_A$1\"");
    assert_eq!(literal(r"it's a \ test"), r"'it''s a \\ test'");
    assert!(TableNames::new("DB", "S", "X\"; DROP TABLE Y; --").is_err());
}

/// Snowflake's identifier rules: an unquoted name resolves to upper case, a double-quoted
/// one is exact ("Identifier requirements" in Snowflake's SQL reference).
#[test]
fn spec_names_follow_snowflake_identifier_rules() {
    let name = |n: &str| Ident::from_spec(n, "database").map(|i| i.as_str().to_string());
    assert_eq!(name("github_pipelines").unwrap(), "GITHUB_PIPELINES");
    assert_eq!(name("Raw_Tables$1").unwrap(), "RAW_TABLES$1");
    assert_eq!(name("GITHUB_PIPELINES").unwrap(), "GITHUB_PIPELINES");
    assert_eq!(name("\"MixedCase\"").unwrap(), "MixedCase");
    assert_eq!(name("\"my db.v2\"").unwrap(), "my db.v2");
    assert_eq!(name("\"a\"\"b\"").unwrap(), "a\"b");
    // Rendered quoted, a quote inside doubled: nothing can break out of the identifier.
    let odd = Ident::from_spec("\"a\"\"b\"", "d").unwrap();
    assert_eq!(odd.quoted(), "\"a\"\"b\"");
    for bad in ["", "my-db", "1db", "\"open", "\"\"", "\"a\"b\"", "a b"] {
        let e = name(bad).expect_err(bad).to_string();
        assert!(e.contains("database") && e.contains(bad), "{bad:?}: {e}");
    }
    let e = name("my-db").unwrap_err().to_string();
    assert!(
        e.contains(r#"'"my-db"'"#),
        "the error shows how to quote: {e}"
    );

    let lower = TableNames::new("github_pipelines", "raw_tables", "PULL_REQUEST").unwrap();
    assert_eq!(
        lower.target.quoted(),
        r#""GITHUB_PIPELINES"."RAW_TABLES"."PULL_REQUEST""#
    );
    let exact = TableNames::new("\"Pipelines\"", "\"raw\"", "PULL_REQUEST").unwrap();
    assert_eq!(
        exact.stage.quoted(),
        r#""Pipelines"."raw"."PULL_REQUEST_STAGE""#
    );
    assert_eq!(
        sql::existing_columns(&exact),
        r#"SELECT TABLE_NAME, COLUMN_NAME FROM "Pipelines".INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = 'raw' AND TABLE_NAME IN ('PULL_REQUEST', 'PULL_REQUEST_STAGE')"#
    );
}

#[test]
fn qualified_names_split_outside_quotes() {
    assert_eq!(sql::split_qualified("gh_stage"), vec!["gh_stage"]);
    assert_eq!(sql::split_qualified("raw.gh"), vec!["raw", "gh"]);
    assert_eq!(
        sql::split_qualified(r#""My.Db".raw."st.1""#),
        vec![r#""My.Db""#, "raw", r#""st.1""#]
    );
}

#[test]
fn raw_tables_renders_every_table() {
    let t = |n: &str| TableSpec {
        name: n.into(),
        schema: Arc::new(schema()),
    };
    let out = flowctl_snowflake::raw_tables_sql(
        &[t("PULL_REQUEST"), t("COMMIT")],
        "GITHUB_PIPELINES",
        "RAW_TABLES",
    );
    for name in [
        "PULL_REQUEST",
        "PULL_REQUEST_STAGE",
        "COMMIT",
        "COMMIT_STAGE",
    ] {
        assert!(
            out.contains(&format!(r#""RAW_TABLES"."{name}" ("#)),
            "{name} missing:\n{out}"
        );
    }
    assert!(!out.contains("ERROR"));
    let bad = flowctl_snowflake::raw_tables_sql(&[t("bad name")], "D", "S");
    assert!(bad.contains("-- ERROR"), "{bad}");
}
