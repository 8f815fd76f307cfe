//! Authentication: a token, or GitHub App auth (a JWT signed with the App's private key,
//! exchanged for an installation token that is refreshed before it expires).

use crate::config::{AppAuth, GithubConfig};
use crate::http::{Client, HttpError};
use base64::Engine;
use flowctl_core::secret::Secret;
use flowctl_core::{PluginError, Result};
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};

pub enum Auth {
    Anonymous,
    Token(Secret),
    App(Box<AppState>),
}

pub struct AppState {
    app_id: u64,
    installation_id: u64,
    key: RsaKeyPair,
    token: tokio::sync::Mutex<Option<(Secret, i64)>>,
}

/// Refresh the installation token when it has less than this many seconds left.
const REFRESH_MARGIN: i64 = 300;

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// Parse a PEM private key (PKCS#1 `RSA PRIVATE KEY`, as GitHub hands out, or PKCS#8).
pub fn parse_private_key(pem: &str) -> std::result::Result<RsaKeyPair, String> {
    let label = if pem.contains("BEGIN RSA PRIVATE KEY") {
        "RSA PRIVATE KEY"
    } else if pem.contains("BEGIN PRIVATE KEY") {
        "PRIVATE KEY"
    } else {
        return Err("expected a PEM block `BEGIN RSA PRIVATE KEY` or `BEGIN PRIVATE KEY`".into());
    };
    let b64: String = pem
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("PEM body is not base64: {e}"))?;
    let key = if label == "RSA PRIVATE KEY" {
        RsaKeyPair::from_der(&der)
    } else {
        RsaKeyPair::from_pkcs8(&der)
    };
    key.map_err(|e| format!("not a usable RSA private key: {e}"))
}

/// The App JWT: RS256, issued 60 s in the past (clock drift), valid 9 minutes.
pub fn app_jwt(key: &RsaKeyPair, app_id: u64, now: i64) -> std::result::Result<String, String> {
    let header = b64url(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = b64url(
        format!(
            r#"{{"iat":{},"exp":{},"iss":"{app_id}"}}"#,
            now - 60,
            now + 540
        )
        .as_bytes(),
    );
    let msg = format!("{header}.{claims}");
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        msg.as_bytes(),
        &mut sig,
    )
    .map_err(|_| "signing the App JWT failed".to_string())?;
    Ok(format!("{msg}.{}", b64url(&sig)))
}

impl Auth {
    /// Resolve secret references (env, file, cloud secret managers).
    pub async fn resolve(cfg: &GithubConfig) -> Result<Auth> {
        if let Some(t) = &cfg.token {
            return Ok(Auth::Token(t.resolve().await?));
        }
        if let Some(app) = &cfg.app {
            return Ok(Auth::App(Box::new(Self::app(app).await?)));
        }
        // Like `gh` and Octokit: with no credentials configured, a GITHUB_TOKEN in the
        // environment is used (the quickstart runs anonymously or with it, unchanged).
        if let Ok(t) = std::env::var("GITHUB_TOKEN") {
            if !t.trim().is_empty() {
                tracing::info!("source.token not set: using GITHUB_TOKEN from the environment");
                return Ok(Auth::Token(Secret::new(t.trim().to_string())));
            }
        }
        Ok(Auth::Anonymous)
    }

    async fn app(app: &AppAuth) -> Result<AppState> {
        let pem = app.private_key.resolve().await?;
        let key = parse_private_key(pem.expose()).map_err(|e| {
            PluginError::config(format!("source.app.private_key {}: {e}", app.private_key))
        })?;
        Ok(AppState {
            app_id: app.app_id,
            installation_id: app.installation_id,
            key,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// The `Authorization` header value for a request to the API origin.
    pub async fn header(&self, client: &Client) -> std::result::Result<Option<String>, HttpError> {
        match self {
            Auth::Anonymous => Ok(None),
            Auth::Token(t) => Ok(Some(format!("Bearer {}", t.expose()))),
            Auth::App(app) => app.header(client).await.map(Some),
        }
    }
}

#[derive(serde::Deserialize)]
struct InstallationToken {
    token: String,
    expires_at: String,
}

impl AppState {
    async fn header(&self, client: &Client) -> std::result::Result<String, HttpError> {
        let now = chrono::Utc::now().timestamp();
        let mut cached = self.token.lock().await;
        if let Some((tok, exp)) = cached.as_ref() {
            if *exp - now > REFRESH_MARGIN {
                return Ok(format!("token {}", tok.expose()));
            }
        }
        let (tok, exp) = self.exchange(client, now).await?;
        let header = format!("token {}", tok.expose());
        *cached = Some((tok, exp));
        Ok(header)
    }

    async fn exchange(
        &self,
        client: &Client,
        now: i64,
    ) -> std::result::Result<(Secret, i64), HttpError> {
        let url = client.url(&format!(
            "app/installations/{}/access_tokens",
            self.installation_id
        ));
        let jwt = app_jwt(&self.key, self.app_id, now).map_err(HttpError::Failed)?;
        let fail = |m: String| {
            HttpError::Failed(format!("POST {url}: GitHub App installation token: {m}"))
        };
        let resp = client
            .http()
            .post(&url)
            .header("Accept", "application/vnd.github+json")
            .header("Authorization", format!("Bearer {jwt}"))
            .send()
            .await
            .map_err(|e| fail(crate::http::describe(e)))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| fail(crate::http::describe(e)))?;
        if status.as_u16() == 401 {
            return Err(HttpError::Unauthorized(format!(
                "POST {url}: App JWT rejected (check app_id and private_key)"
            )));
        }
        if !status.is_success() {
            return Err(fail(format!("HTTP {}", status.as_u16())));
        }
        let t: InstallationToken =
            serde_json::from_slice(&body).map_err(|e| fail(format!("unexpected body: {e}")))?;
        let exp = chrono::DateTime::parse_from_rfc3339(&t.expires_at)
            .map(|d| d.timestamp())
            .unwrap_or(now + 3000);
        Ok((Secret::new(t.token), exp))
    }
}
