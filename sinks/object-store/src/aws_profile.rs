//! Static keys from the AWS shared credentials file (`~/.aws/credentials`) and a region
//! from `~/.aws/config`. object_store reads the environment, web identity, container and
//! instance credentials, but not profiles, which is how most laptops are set up.
//! SSO and `credential_process` profiles are not supported (export keys instead).

use flowctl_core::{expand_home, PluginError, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Keys of one profile. `Debug` hides the secret.
pub(crate) struct ProfileKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for ProfileKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProfileKeys(***)")
    }
}

type Sections = BTreeMap<String, BTreeMap<String, String>>;

/// A minimal INI reader: `[section]`, `key = value`, `#`/`;` comments.
fn parse_ini(text: &str) -> Sections {
    let mut out = Sections::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim().to_string());
            out.entry(name.trim().to_string()).or_default();
        } else if let (Some(sec), Some((k, v))) = (&current, line.split_once('=')) {
            let entry = out.entry(sec.clone()).or_default();
            entry.insert(k.trim().to_lowercase(), v.trim().to_string());
        }
    }
    out
}

pub(crate) fn credentials_file() -> PathBuf {
    match std::env::var("AWS_SHARED_CREDENTIALS_FILE") {
        Ok(p) if !p.is_empty() => PathBuf::from(expand_home(&p)),
        _ => PathBuf::from(expand_home("~/.aws/credentials")),
    }
}

pub(crate) fn config_file() -> PathBuf {
    match std::env::var("AWS_CONFIG_FILE") {
        Ok(p) if !p.is_empty() => PathBuf::from(expand_home(&p)),
        _ => PathBuf::from(expand_home("~/.aws/config")),
    }
}

/// Keys of `profile` in `file`. A missing file or profile is `None` unless the profile
/// was named explicitly (`explicit`), then it is an error naming both.
pub(crate) fn keys_from(file: &Path, profile: &str, explicit: bool) -> Result<Option<ProfileKeys>> {
    let missing = |what: &str| {
        if explicit {
            Err(PluginError::config(format!(
                "s3 staging: AWS profile `{profile}`: {what} ({})",
                file.display()
            )))
        } else {
            Ok(None)
        }
    };
    let Ok(text) = std::fs::read_to_string(file) else {
        return missing("credentials file not readable");
    };
    let sections = parse_ini(&text);
    let Some(sec) = sections.get(profile) else {
        return missing("no such profile in the credentials file");
    };
    let (Some(id), Some(secret)) = (
        sec.get("aws_access_key_id"),
        sec.get("aws_secret_access_key"),
    ) else {
        return Err(PluginError::config(format!(
            "s3 staging: AWS profile `{profile}` in {} has no aws_access_key_id/aws_secret_access_key \
             (SSO and credential_process profiles are not supported; export AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY instead)",
            file.display()
        )));
    };
    Ok(Some(ProfileKeys {
        access_key_id: id.clone(),
        secret_access_key: secret.clone(),
        session_token: sec.get("aws_session_token").cloned(),
    }))
}

/// `region` of `profile` in the AWS config file (`[default]` or `[profile name]`).
pub(crate) fn region_from(file: &Path, profile: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let sections = parse_ini(&text);
    let name = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    sections.get(&name)?.get("region").cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_and_region_of_a_named_profile() {
        let dir = tempfile::tempdir().unwrap();
        let creds = dir.path().join("credentials");
        std::fs::write(
            &creds,
            "# comment\n[default]\naws_access_key_id = AKD\naws_secret_access_key = SD\n\n\
             [work]\naws_access_key_id=AKW\naws_secret_access_key=SW\naws_session_token = T\n\
             [sso]\nsso_start_url = https://x\n",
        )
        .unwrap();
        let k = keys_from(&creds, "work", true).unwrap().unwrap();
        assert_eq!(
            (k.access_key_id.as_str(), k.secret_access_key.as_str()),
            ("AKW", "SW")
        );
        assert_eq!(k.session_token.as_deref(), Some("T"));
        assert_eq!(format!("{k:?}"), "ProfileKeys(***)");
        assert_eq!(
            keys_from(&creds, "default", false)
                .unwrap()
                .unwrap()
                .access_key_id,
            "AKD"
        );
        assert!(keys_from(&creds, "nope", false).unwrap().is_none());
        let err = keys_from(&creds, "nope", true).unwrap_err().to_string();
        assert!(
            err.contains("`nope`") && err.contains("credentials"),
            "{err}"
        );
        let err = keys_from(&creds, "sso", false).unwrap_err().to_string();
        assert!(err.contains("SSO"), "{err}");
        assert!(keys_from(&dir.path().join("absent"), "default", false)
            .unwrap()
            .is_none());

        let cfg = dir.path().join("config");
        std::fs::write(
            &cfg,
            "[default]\nregion = eu-west-1\n[profile work]\nregion=us-west-2\n",
        )
        .unwrap();
        assert_eq!(region_from(&cfg, "default").as_deref(), Some("eu-west-1"));
        assert_eq!(region_from(&cfg, "work").as_deref(), Some("us-west-2"));
        assert_eq!(region_from(&cfg, "sso"), None);
    }
}
