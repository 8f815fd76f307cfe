//! Key-pair authentication: an RS256 JWT whose issuer names the public key's SHA-256
//! fingerprint, as Snowflake's SQL API expects. The key and the token never reach a log:
//! [`KeyPair`] and [`JwtSource`] print no key material.

use base64::Engine;
use flowctl_core::{PluginError, Result};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Mutex;

/// Snowflake rejects tokens living longer than an hour; stay under it.
const LIFETIME_SECS: i64 = 59 * 60;
/// Refresh this long before expiry so a token never expires in flight.
const REFRESH_MARGIN_SECS: i64 = 5 * 60;

/// The claims Snowflake reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
}

/// A parsed private key: the signing key and the public key fingerprint.
pub struct KeyPair {
    signing: EncodingKey,
    /// `SHA256:<base64 of sha256(public key DER)>`, Snowflake's RSA_PUBLIC_KEY_FP.
    pub fingerprint: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// Parse a PEM key: PKCS#8 (`PRIVATE KEY`), encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`,
    /// needs `passphrase`) or PKCS#1 (`RSA PRIVATE KEY`). `origin` names the key's source
    /// in errors.
    pub fn from_pem(pem: &str, passphrase: Option<&str>, origin: &str) -> Result<Self> {
        let bad = |e: &dyn std::fmt::Display| {
            PluginError::config(format!("snowflake private key {origin}: {e}"))
        };
        let key = if pem.contains("BEGIN ENCRYPTED PRIVATE KEY") {
            let pass = passphrase.ok_or_else(|| {
                bad(&"the key is encrypted but no private_key_passphrase is configured")
            })?;
            rsa::RsaPrivateKey::from_pkcs8_encrypted_pem(pem, pass.as_bytes())
                .map_err(|e| bad(&format!("cannot decrypt the key (wrong passphrase?): {e}")))?
        } else if pem.contains("BEGIN RSA PRIVATE KEY") {
            rsa::RsaPrivateKey::from_pkcs1_pem(pem).map_err(|e| bad(&e))?
        } else if pem.contains("BEGIN PRIVATE KEY") {
            rsa::RsaPrivateKey::from_pkcs8_pem(pem)
                .map_err(|e| bad(&format!("not an RSA PKCS#8 key: {e}")))?
        } else {
            return Err(bad(
                &"expected a PEM block `BEGIN PRIVATE KEY` or `BEGIN ENCRYPTED PRIVATE KEY`",
            ));
        };
        let public_der = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| bad(&e))?;
        let digest = Sha256::digest(public_der.as_bytes());
        let fingerprint = format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
        let der = key.to_pkcs1_der().map_err(|e| bad(&e))?;
        Ok(KeyPair {
            signing: EncodingKey::from_rsa_der(der.as_bytes()),
            fingerprint,
        })
    }
}

/// `ACCOUNT` as the JWT wants it, derived the way Snowflake's connectors derive it
/// (snowflake-connector-python `auth/keypair.py`, the JDBC driver's `SessionUtilKeyPair`,
/// gosnowflake's `extractAccountName`): upper case; a `.global` identifier cut at its
/// first `-`, any other at its first `.`. So `myorg-myaccount` → `MYORG-MYACCOUNT`,
/// `xy12345.us-east-2.aws` → `XY12345`, `myacct-xy12345.global` → `MYACCT`.
pub fn jwt_account(account: &str) -> String {
    let cut = if account.to_ascii_lowercase().contains(".global") {
        '-'
    } else {
        '.'
    };
    account
        .split(cut)
        .next()
        .unwrap_or(account)
        .to_ascii_uppercase()
}

/// The claims for `account`/`user` issued at `now` (Unix seconds).
pub fn claims(account: &str, user: &str, fingerprint: &str, now: i64) -> Claims {
    let sub = format!("{}.{}", jwt_account(account), user.to_ascii_uppercase());
    Claims {
        iss: format!("{sub}.{fingerprint}"),
        sub,
        iat: now,
        exp: now + LIFETIME_SECS,
    }
}

/// Issues tokens and caches the current one until shortly before it expires.
pub struct JwtSource {
    key: KeyPair,
    account: String,
    user: String,
    current: Mutex<Option<(String, i64)>>,
}

impl std::fmt::Debug for JwtSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSource")
            .field("account", &self.account)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl JwtSource {
    pub fn new(key: KeyPair, account: &str, user: &str) -> Self {
        JwtSource {
            key,
            account: account.to_string(),
            user: user.to_string(),
            current: Mutex::new(None),
        }
    }

    /// The public key fingerprint (not secret), for error messages.
    pub fn fingerprint(&self) -> &str {
        &self.key.fingerprint
    }

    /// A valid token, reused while more than the refresh margin remains.
    pub fn token(&self) -> Result<String> {
        let now = chrono::Utc::now().timestamp();
        let mut guard = self
            .current
            .lock()
            .map_err(|_| PluginError::other("snowflake: JWT cache lock poisoned"))?;
        if let Some((token, exp)) = guard.as_ref() {
            if exp - now > REFRESH_MARGIN_SECS {
                return Ok(token.clone());
            }
        }
        let claims = claims(&self.account, &self.user, &self.key.fingerprint, now);
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key.signing)
                .map_err(|e| {
                    PluginError::other(format!("snowflake: cannot sign the JWT: {e}"))
                        .with_source(e)
                })?;
        *guard = Some((token.clone(), claims.exp));
        Ok(token)
    }
}
