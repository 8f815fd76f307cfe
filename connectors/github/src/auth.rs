//! Authentication: one or several tokens, or GitHub App auth (a JWT signed with the App's
//! private key, exchanged for an installation token per installation that is refreshed
//! before it expires). Which credential a request uses is decided in [`crate::tokens`].

use crate::config::{AppAuth, GithubConfig};
use crate::http::{Client, HttpError};
use base64::Engine;
use flowctl_core::secret::Secret;
use flowctl_core::secret::SecretRef;
use flowctl_core::{PluginError, Result};
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use std::collections::HashMap;

pub enum Auth {
    Anonymous,
    /// One token given directly (not from a spec's reference).
    Token(Secret),
    /// Tokens with the names they are shown by (`token`, or `token[i]` in a list).
    Tokens(Vec<(String, SecretRef, Secret)>),
    App(Box<AppState>),
}

pub struct AppState {
    app_id: u64,
    key: RsaKeyPair,
    /// The spec's `installation_id`: one installation for every organisation.
    fixed: Option<u64>,
    /// Organisation (lower case) → its installation id, looked up once per read.
    by_org: tokio::sync::Mutex<HashMap<String, u64>>,
    /// Installation id → its token and the token's expiry (epoch seconds).
    tokens: tokio::sync::Mutex<HashMap<u64, (Secret, i64)>>,
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
            let mut tokens: Vec<(String, SecretRef, Secret)> = Vec::new();
            for (name, r) in t.named() {
                let secret = r.resolve().await?;
                // Two references to one token would count one quota twice.
                if let Some((first, ..)) = tokens.iter().find(|(_, _, s)| *s == secret) {
                    return Err(PluginError::config(format!(
                        "source.{name} {r}: the same token as source.{first}"
                    )));
                }
                tokens.push((name, r.clone(), secret));
            }
            return Ok(Auth::Tokens(tokens));
        }
        if let Some(app) = &cfg.app {
            return Ok(Auth::App(Box::new(Self::app(app).await?)));
        }
        // Like `gh` and Octokit: with no credentials configured, a GITHUB_TOKEN in the
        // environment is used (the quickstart runs anonymously or with it, unchanged).
        if let Ok(t) = std::env::var("GITHUB_TOKEN") {
            if !t.trim().is_empty() {
                tracing::info!("source.token not set: using GITHUB_TOKEN from the environment");
                return Ok(Auth::Tokens(vec![(
                    "token".into(),
                    SecretRef::Env("GITHUB_TOKEN".into()),
                    Secret::new(t.trim().to_string()),
                )]));
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
            key,
            fixed: app.installation_id,
            by_org: tokio::sync::Mutex::new(HashMap::new()),
            tokens: tokio::sync::Mutex::new(HashMap::new()),
        })
    }
}

#[derive(serde::Deserialize)]
struct InstallationToken {
    token: String,
    expires_at: String,
}

#[derive(serde::Deserialize)]
struct Installation {
    id: u64,
}

impl AppState {
    /// Whether each org's installation is looked up (no `installation_id` in the spec).
    pub fn discovers(&self) -> bool {
        self.fixed.is_none()
    }

    /// The installation to use for `org`: the spec's `installation_id`, else the one
    /// GitHub names for the org (or user account), looked up with the App JWT.
    pub async fn installation(
        &self,
        client: &Client,
        org: Option<&str>,
    ) -> std::result::Result<u64, HttpError> {
        if let Some(id) = self.fixed {
            return Ok(id);
        }
        let Some(org) = org else {
            return Err(HttpError::Failed(
                "GitHub App without installation_id: a request outside any organisation \
                 cannot tell which installation to use"
                    .into(),
            ));
        };
        let mut known = self.by_org.lock().await;
        if let Some(id) = known.get(&org.to_ascii_lowercase()) {
            return Ok(*id);
        }
        let now = chrono::Utc::now().timestamp();
        let mut id = None;
        for kind in ["orgs", "users"] {
            let url = client.url(&format!("{kind}/{org}/installation"));
            let (status, body) = self
                .app_request(client, reqwest::Method::GET, &url, now)
                .await?;
            match status {
                200 => {
                    let i: Installation = serde_json::from_slice(&body).map_err(|e| {
                        HttpError::Failed(format!("GET {url}: unexpected body: {e}"))
                    })?;
                    id = Some(i.id);
                    break;
                }
                // An org's path answers 404 for a user account, and the other way round.
                404 => continue,
                s => {
                    return Err(HttpError::Failed(format!(
                        "GET {url}: GitHub App installation lookup: HTTP {s}"
                    )))
                }
            }
        }
        let id = id.ok_or_else(|| {
            HttpError::Failed(format!(
                "GitHub App {} is not installed on `{org}` (GET /orgs/{org}/installation and \
                 /users/{org}/installation answered 404): install it there, or set \
                 source.app.installation_id",
                self.app_id
            ))
        })?;
        known.insert(org.to_ascii_lowercase(), id);
        Ok(id)
    }

    /// The `Authorization` header of installation `id`, its token minted or refreshed
    /// when it has less than [`REFRESH_MARGIN`] left.
    pub async fn header(&self, client: &Client, id: u64) -> std::result::Result<String, HttpError> {
        let now = chrono::Utc::now().timestamp();
        let mut cached = self.tokens.lock().await;
        if let Some((tok, exp)) = cached.get(&id) {
            if *exp - now > REFRESH_MARGIN {
                return Ok(format!("token {}", tok.expose()));
            }
        }
        let (tok, exp) = self.exchange(client, id, now).await?;
        let header = format!("token {}", tok.expose());
        cached.insert(id, (tok, exp));
        Ok(header)
    }

    /// A request authenticated as the App itself (its JWT): status and body.
    async fn app_request(
        &self,
        client: &Client,
        method: reqwest::Method,
        url: &str,
        now: i64,
    ) -> std::result::Result<(u16, bytes::Bytes), HttpError> {
        let jwt = app_jwt(&self.key, self.app_id, now).map_err(HttpError::Failed)?;
        let fail = |m: String| HttpError::Failed(format!("{method} {url}: GitHub App: {m}"));
        let resp = client
            .http()
            .request(method.clone(), url)
            .header("Accept", "application/vnd.github+json")
            .header("Authorization", format!("Bearer {jwt}"))
            .send()
            .await
            .map_err(|e| fail(crate::http::describe(e)))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| fail(crate::http::describe(e)))?;
        if status == 401 {
            return Err(HttpError::Unauthorized(format!(
                "{method} {url}: App JWT rejected (check app_id and private_key)"
            )));
        }
        Ok((status, body))
    }

    async fn exchange(
        &self,
        client: &Client,
        id: u64,
        now: i64,
    ) -> std::result::Result<(Secret, i64), HttpError> {
        let url = client.url(&format!("app/installations/{id}/access_tokens"));
        let (status, body) = self
            .app_request(client, reqwest::Method::POST, &url, now)
            .await?;
        let fail = |m: String| {
            HttpError::Failed(format!("POST {url}: GitHub App installation token: {m}"))
        };
        if !(200..300).contains(&status) {
            return Err(fail(format!("HTTP {status}")));
        }
        let t: InstallationToken =
            serde_json::from_slice(&body).map_err(|e| fail(format!("unexpected body: {e}")))?;
        let exp = chrono::DateTime::parse_from_rfc3339(&t.expires_at)
            .map(|d| d.timestamp())
            .unwrap_or(now + 3000);
        Ok((Secret::new(t.token), exp))
    }
}
