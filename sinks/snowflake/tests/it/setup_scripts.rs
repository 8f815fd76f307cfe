//! The setup scripts (sql/snowflake_*_stage_setup.sql) cannot run without a Snowflake
//! account; these checks hold them to what they promise: every custom role is granted to
//! SYSADMIN (so the admin's closing `USE ROLE` works), the closing `LIST` names the stage the
//! loader may use, the reader role has its grants, and sql/dbt/profiles.yml names the role,
//! user and warehouse the scripts create.

use std::path::PathBuf;

fn repo_file(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The statements of a script, comments dropped, whitespace collapsed, upper case.
fn statements(sql: &str) -> Vec<String> {
    let text: String = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join(" ");
    text.split(';')
        .map(|s| {
            s.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_uppercase()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// The default of `env_var('NAME', 'default')` in profiles.yml.
fn profile_default(profiles: &str, var: &str) -> String {
    let key = format!("env_var('{var}', '");
    let start = profiles
        .find(&key)
        .unwrap_or_else(|| panic!("{var} not in profiles.yml"))
        + key.len();
    let end = profiles[start..].find('\'').unwrap() + start;
    profiles[start..end].to_uppercase()
}

const SCRIPTS: [&str; 2] = [
    "sql/snowflake_aws_stage_setup.sql",
    "sql/snowflake_gcs_stage_setup.sql",
];

#[test]
fn custom_roles_are_granted_to_sysadmin_before_they_are_used() {
    for script in SCRIPTS {
        let st = statements(&repo_file(script));
        let roles: Vec<String> = st
            .iter()
            .filter_map(|s| s.strip_prefix("CREATE ROLE IF NOT EXISTS "))
            .map(str::to_string)
            .collect();
        assert!(roles.len() >= 3, "{script}: {roles:?}");
        for (i, s) in st.iter().enumerate() {
            let Some(role) = s.strip_prefix("USE ROLE ") else {
                continue;
            };
            if role == "ACCOUNTADMIN" {
                continue;
            }
            let grant = format!("GRANT ROLE {role} TO ROLE SYSADMIN");
            assert!(
                st[..i].contains(&grant),
                "{script}: `USE ROLE {role}` without `{grant}` before it"
            );
        }
        for role in &roles {
            assert!(
                st.contains(&format!("GRANT ROLE {role} TO ROLE SYSADMIN")),
                "{script}: role {role} is not granted to SYSADMIN"
            );
        }
    }
}

#[test]
fn the_closing_check_lists_the_stage_as_the_loader() {
    for script in SCRIPTS {
        let st = statements(&repo_file(script));
        let list = st.iter().rposition(|s| s.starts_with("LIST @")).unwrap();
        let stage = st[list].trim_start_matches("LIST @").to_string();
        assert!(
            st.iter()
                .any(|s| s.starts_with(&format!("CREATE STAGE IF NOT EXISTS {stage} "))),
            "{script}: LIST names {stage}, which the script does not create"
        );
        let used = st[..list]
            .iter()
            .rev()
            .find_map(|s| s.strip_prefix("USE ROLE "));
        assert_eq!(used, Some("FLOWCTL_LOADER"), "{script}");
        for grant in [
            format!("GRANT USAGE ON STAGE {stage} TO ROLE FLOWCTL_LOADER"),
            "GRANT ROLE FLOWCTL_LOADER TO ROLE SYSADMIN".to_string(),
        ] {
            assert!(st[..list].contains(&grant), "{script}: missing `{grant}`");
        }
    }
}

#[test]
fn readers_can_read_raw_tables_and_build_reporting() {
    let profiles = repo_file("sql/dbt/profiles.yml");
    let role = profile_default(&profiles, "SNOWFLAKE_ROLE");
    let user = profile_default(&profiles, "SNOWFLAKE_USER");
    let warehouse = profile_default(&profiles, "SNOWFLAKE_WAREHOUSE");
    assert!(
        profiles.contains("database: GITHUB_PIPELINES"),
        "{profiles}"
    );
    for script in SCRIPTS {
        let st = statements(&repo_file(script));
        let raw = "GITHUB_PIPELINES.RAW_TABLES";
        for grant in [
            format!("CREATE ROLE IF NOT EXISTS {role}"),
            format!("GRANT USAGE ON WAREHOUSE {warehouse} TO ROLE {role}"),
            format!("GRANT USAGE, CREATE SCHEMA ON DATABASE GITHUB_PIPELINES TO ROLE {role}"),
            format!("GRANT USAGE ON SCHEMA {raw} TO ROLE {role}"),
            format!("GRANT SELECT ON ALL TABLES IN SCHEMA {raw} TO ROLE {role}"),
            format!("GRANT SELECT ON FUTURE TABLES IN SCHEMA {raw} TO ROLE {role}"),
            format!("GRANT SELECT ON ALL VIEWS IN SCHEMA {raw} TO ROLE {role}"),
            format!("GRANT SELECT ON FUTURE VIEWS IN SCHEMA {raw} TO ROLE {role}"),
            format!("GRANT ROLE {role} TO USER {user}"),
        ] {
            assert!(st.contains(&grant), "{script}: missing `{grant}`");
        }
        assert!(
            st.iter()
                .any(|s| s.starts_with(&format!("CREATE WAREHOUSE IF NOT EXISTS {warehouse} "))),
            "{script}: warehouse {warehouse} of profiles.yml is not created"
        );
        assert!(
            st.iter()
                .any(|s| s.starts_with(&format!("CREATE USER IF NOT EXISTS {user} "))),
            "{script}: user {user} of profiles.yml is not created"
        );
    }
}

/// Both scripts set up the same roles and grants; only the integration differs.
#[test]
fn aws_and_gcs_scripts_agree_on_roles_and_grants() {
    let pick = |script: &str| -> Vec<String> {
        statements(&repo_file(script))
            .into_iter()
            .filter(|s| {
                (s.starts_with("GRANT ")
                    || s.starts_with("CREATE ROLE")
                    || s.starts_with("CREATE USER"))
                    && !s.contains("INTEGRATION")
            })
            .collect()
    };
    assert_eq!(pick(SCRIPTS[0]), pick(SCRIPTS[1]));
}
