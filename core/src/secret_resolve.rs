//! Resolution of secret references (env, file, GCP Secret Manager, AWS Secrets Manager).
use crate::secret::{Secret, SecretRef};
use crate::{PluginError, Result};

pub(crate) async fn resolve(r: &SecretRef) -> Result<Secret> {
    match r {
        SecretRef::Env(name) => std::env::var(name).map(Secret::new).map_err(|_| {
            PluginError::config(format!("secret {r}: environment variable {name} is not set"))
        }),
        SecretRef::File(path) => {
            let expanded = expand_home(path);
            let text = tokio::fs::read_to_string(&expanded)
                .await
                .map_err(|e| PluginError::config(format!("secret {r}: cannot read {expanded}: {e}")))?;
            Ok(Secret::new(text.trim_end_matches(['\r', '\n']).to_string()))
        }
        SecretRef::GcpSecret(_) | SecretRef::AwsSecret(_) => Err(PluginError::NotImplemented(
            format!("secret {r}: cloud secret managers are not wired yet"),
        )),
    }
}

/// `~/x` -> `$HOME/x`.
pub fn expand_home(path: &str) -> String {
    if let Some(rest) = path.strip_prefix("~/") {
        if let Ok(home) = std::env::var("HOME") {
            return format!("{home}/{rest}");
        }
    }
    path.to_string()
}
