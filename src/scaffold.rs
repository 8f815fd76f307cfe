//! `flowctl new source NAME`: a source crate under `connectors/NAME` (package
//! `flowctl-NAME`) that compiles and has a passing test, added to the workspace and
//! linked into the binary. The crate is the doctested example of `flowctl_core::simple`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The complete example source; its own name is replaced by the new one.
const TEMPLATE: &str = include_str!("../core/templates/source.rs");
const TEMPLATE_NAME: &str = "inline";

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    #[command(subcommand)]
    pub what: NewCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum NewCommand {
    /// Write a source crate (connectors/NAME, package flowctl-NAME) with a test, add it
    /// to the workspace and link it into the binary.
    Source {
        /// The source's `type:` in specs: lower case letters, digits, `_` or `-`.
        name: String,
        /// The workspace root (the directory of the workspace's Cargo.toml).
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
}

pub fn new(args: NewArgs) -> ExitCode {
    let NewCommand::Source { name, root } = args.what;
    match new_source(&root, &name) {
        Ok(dir) => {
            println!(
                "wrote {0}\nnext: edit {0}/src/lib.rs, then `cargo test -p flowctl-{name}` and \
                 `cargo build`; a spec selects it with `source: {{ type: {name} }}`",
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Writes the crate and wires it in; returns its directory. Every edit is computed
/// before anything is written, so a refusal leaves the workspace as it was.
pub fn new_source(root: &Path, name: &str) -> Result<PathBuf, String> {
    check_name(name)?;
    let dir = root.join("connectors").join(name);
    if dir.exists() {
        return Err(format!("{} already exists", dir.display()));
    }
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let (manifest_path, main_path) = (root.join("Cargo.toml"), root.join("src/main.rs"));
    let manifest = wire_manifest(&read(&manifest_path)?, name)
        .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    let main =
        wire_main(&read(&main_path)?, name).map_err(|e| format!("{}: {e}", main_path.display()))?;
    let write = |p: &Path, text: &str| {
        std::fs::write(p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    std::fs::create_dir_all(dir.join("src"))
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    write(&dir.join("Cargo.toml"), &crate_manifest(name))?;
    write(&dir.join("src/lib.rs"), &lib_rs(name))?;
    write(&manifest_path, &manifest)?;
    write(&main_path, &main)?;
    Ok(dir)
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "source name `{name}`: expected a lower case letter, then lower case letters, \
             digits, `_` or `-` (it becomes the crate flowctl-{name} and the spec's `type:`)"
        ))
    }
}

/// `my-source` -> `MySource`.
fn camel(name: &str) -> String {
    name.split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or(String::new(), |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// The crate's name in Rust paths.
fn lib_name(name: &str) -> String {
    format!("flowctl_{}", name.replace('-', "_"))
}

fn lib_rs(name: &str) -> String {
    TEMPLATE
        .replace(&camel(TEMPLATE_NAME), &camel(name))
        .replace(TEMPLATE_NAME, name)
}

fn crate_manifest(name: &str) -> String {
    format!(
        "[package]\nname = \"flowctl-{name}\"\nversion.workspace = true\n\
         edition.workspace = true\nlicense.workspace = true\n\
         description = \"flowctl source: {name}\"\n\n[dependencies]\n\
         flowctl-core.workspace = true\nserde.workspace = true\nserde_json.workspace = true\n"
    )
}

/// Inserts `line` after the first line equal to `after` (trimmed).
fn insert_after(text: &str, after: &str, line: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len() + line.len() + 1);
    let mut done = false;
    for l in text.lines() {
        out.push_str(l);
        out.push('\n');
        if !done && l.trim() == after {
            out.push_str(line);
            out.push('\n');
            done = true;
        }
    }
    done.then_some(out)
        .ok_or_else(|| format!("no line `{after}` to add `{line}` after"))
}

/// The root manifest with the crate as a workspace member, a workspace dependency and a
/// dependency of the binary.
fn wire_manifest(text: &str, name: &str) -> Result<String, String> {
    let package = format!("flowctl-{name}");
    if text.contains(&format!("\"{package}\"")) || text.contains(&format!("{package} =")) {
        return Err(format!("{package} is already in the workspace"));
    }
    let members = text
        .find("members = [")
        .ok_or("no `members = [` in [workspace]")?;
    let close = members + text[members..].find(']').ok_or("`members` is not closed")?;
    let line_start = text[..close].rfind('\n').map_or(0, |i| i + 1);
    let text = format!(
        "{}    \"connectors/{name}\",\n{}",
        &text[..line_start],
        &text[line_start..]
    );
    let text = insert_after(
        &text,
        "flowctl-core = { path = \"core\" }",
        &format!("{package} = {{ path = \"connectors/{name}\" }}"),
    )?;
    insert_after(
        &text,
        "flowctl-core.workspace = true",
        &format!("{package}.workspace = true"),
    )
}

/// `src/main.rs` with `use flowctl_NAME as _;` among the other plugin crates, in the
/// order rustfmt keeps them.
fn wire_main(text: &str, name: &str) -> Result<String, String> {
    let new = format!("use {} as _;", lib_name(name));
    let lines: Vec<&str> = text.lines().collect();
    let is_link = |l: &str| l.starts_with("use flowctl_") && l.ends_with(" as _;");
    let last = lines
        .iter()
        .rposition(|l| is_link(l))
        .ok_or("no `use flowctl_... as _;` line linking the plugin crates")?;
    let mut at = lines
        .iter()
        .position(|l| is_link(l) && **l > *new.as_str())
        .unwrap_or(last + 1);
    // An attribute (`#[cfg(...)]`) belongs to the line below it.
    while at > 0 && lines[at - 1].starts_with("#[") {
        at -= 1;
    }
    let mut out: Vec<&str> = lines[..at].to_vec();
    out.push(&new);
    out.extend(&lines[at..]);
    Ok(out.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT_MANIFEST: &str = include_str!("../Cargo.toml");
    const MAIN: &str = include_str!("main.rs");

    #[test]
    fn the_crate_is_the_template_under_its_new_name() {
        let lib = lib_rs("jira-cloud");
        assert!(!lib.to_lowercase().contains("inline"), "{lib}");
        assert!(lib.contains("pub struct JiraCloudConfig"));
        assert!(lib
            .contains("SourceRegistration::of::<JiraCloudConfig, JiraCloudSource>(\"jira-cloud\""));
        assert!(lib.contains("find_source(\"jira-cloud\")"));
        assert_eq!(lib.lines().count(), TEMPLATE.lines().count());
        let manifest = crate_manifest("jira-cloud");
        assert!(manifest.contains("name = \"flowctl-jira-cloud\"\n"));
        assert_eq!(lib_name("jira-cloud"), "flowctl_jira_cloud");
    }

    #[test]
    fn the_workspace_gains_a_member_a_dependency_and_a_link() {
        let manifest = wire_manifest(ROOT_MANIFEST, "jira").unwrap();
        let added: Vec<&str> = manifest
            .lines()
            .filter(|l| !ROOT_MANIFEST.lines().any(|o| o == *l))
            .collect();
        assert_eq!(
            added,
            [
                "    \"connectors/jira\",",
                "flowctl-jira = { path = \"connectors/jira\" }",
                "flowctl-jira.workspace = true",
            ]
        );
        let member = manifest.find("\"connectors/jira\"").unwrap();
        let members_end = manifest.find("members = [").unwrap() + 12;
        assert!(member > members_end && member < manifest.find("resolver").unwrap());
        assert!(wire_manifest(&manifest, "jira")
            .unwrap_err()
            .contains("already"));

        // Sorted as rustfmt sorts, an attribute staying with its line.
        let main = wire_main(MAIN, "aaa").unwrap();
        assert!(pos_of(&main, "use flowctl_aaa") < pos_of(&main, "#[cfg(feature = \"duckdb\")]"));
        let main = wire_main(MAIN, "zzz").unwrap();
        assert!(pos_of(&main, "use flowctl_snowflake as _;") < pos_of(&main, "use flowctl_zzz"));
        let main = wire_main(MAIN, "jira").unwrap();
        assert!(pos_of(&main, "use flowctl_github") < pos_of(&main, "use flowctl_jira as _;"));
        assert!(pos_of(&main, "use flowctl_jira") < pos_of(&main, "use flowctl_object_store"));
        assert_eq!(main.lines().count(), MAIN.lines().count() + 1);
    }

    fn pos_of(text: &str, s: &str) -> usize {
        text.find(s).unwrap_or_else(|| panic!("no {s}"))
    }

    #[test]
    fn writes_the_crate_and_refuses_to_overwrite() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("src")).unwrap();
        std::fs::write(root.path().join("Cargo.toml"), ROOT_MANIFEST).unwrap();
        std::fs::write(root.path().join("src/main.rs"), MAIN).unwrap();
        let dir = new_source(root.path(), "demo").unwrap();
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("pub struct DemoSource"));
        let main = std::fs::read_to_string(root.path().join("src/main.rs")).unwrap();
        assert!(main.contains("use flowctl_demo as _;"));
        assert!(new_source(root.path(), "demo")
            .unwrap_err()
            .contains("already exists"));
        // A bad name changes nothing.
        let err = new_source(root.path(), "Demo2").unwrap_err();
        assert!(
            err.contains("source name `Demo2`: expected a lower case letter"),
            "{err}"
        );
        assert!(!root.path().join("connectors/Demo2").exists());
    }
}
