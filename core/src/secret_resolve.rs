//! Resolution of secret references (env, file, GCP Secret Manager, AWS Secrets Manager).
//!
//! The cloud managers are called over their plain REST APIs (no SDKs: two small requests
//! do not justify a second HTTP stack); endpoints are overridable so tests can point them
//! at local servers. Errors name the reference and the endpoint, never a value.

use crate::secret::{Secret, SecretRef};
use crate::{PluginError, Result};
use base64::Engine as _;
use serde_json::Value;
use std::time::Duration;

pub(crate) async fn resolve(r: &SecretRef) -> Result<Secret> {
    match r {
        SecretRef::Env(name) => std::env::var(name).map(Secret::new).map_err(|_| {
            PluginError::config(format!(
                "secret {r}: environment variable {name} is not set"
            ))
        }),
        SecretRef::File(path) => {
            let expanded = expand_home(path);
            let text = tokio::fs::read_to_string(&expanded).await.map_err(|e| {
                PluginError::config(format!("secret {r}: cannot read {expanded}: {e}"))
            })?;
            Ok(Secret::new(text.trim_end_matches(['\r', '\n']).to_string()))
        }
        SecretRef::GcpSecret(name) => gcp::access(&gcp::Settings::from_env(), name, r).await,
        SecretRef::AwsSecret(id) => {
            let settings = aws::Settings::from_env().map_err(|e| fail(r, e))?;
            aws::get_secret_value(&settings, id, r).await
        }
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

fn fail(r: &SecretRef, msg: impl std::fmt::Display) -> PluginError {
    PluginError::external(format!("secret {r}: {msg}"))
}

fn http() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| PluginError::other(format!("cannot build an HTTP client: {e}")).with_source(e))
}

/// Reads a JSON body; a non-JSON body is reported by status only (it may echo input).
async fn json_body(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

pub(crate) mod gcp {
    use super::*;

    /// Where to call and how to authenticate.
    #[derive(Debug, Clone)]
    pub struct Settings {
        pub endpoint: String,
        /// A ready bearer token (`GOOGLE_OAUTH_ACCESS_TOKEN`); else the metadata server.
        pub token: Option<String>,
        pub metadata_host: String,
    }

    impl Settings {
        pub fn from_env() -> Settings {
            let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            Settings {
                endpoint: var("FLOWCTL_GCP_SECRETMANAGER_ENDPOINT")
                    .unwrap_or_else(|| "https://secretmanager.googleapis.com".into()),
                token: var("GOOGLE_OAUTH_ACCESS_TOKEN"),
                metadata_host: var("GCE_METADATA_HOST")
                    .unwrap_or_else(|| "metadata.google.internal".into()),
            }
        }
    }

    /// `GET {endpoint}/v1/{name}:access`; the payload is base64 in `payload.data`.
    pub async fn access(s: &Settings, name: &str, r: &SecretRef) -> Result<Secret> {
        let name = version_name(name).ok_or_else(|| {
            fail(
                r,
                "expected projects/PROJECT/secrets/SECRET[/versions/VERSION]",
            )
        })?;
        let client = http()?;
        let token = match &s.token {
            Some(t) => t.clone(),
            None => metadata_token(&client, &s.metadata_host, r).await?,
        };
        let url = format!("{}/v1/{name}:access", s.endpoint.trim_end_matches('/'));
        let resp = client
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| {
                let e = crate::error_chain(&e.without_url());
                fail(r, format!("GCP Secret Manager at {}: {e}", s.endpoint))
            })?;
        let (status, body) = json_body(resp).await;
        if status != 200 {
            let msg = body["error"]["message"]
                .as_str()
                .unwrap_or("no error message");
            return Err(fail(
                r,
                format!("GCP Secret Manager answered {status}: {msg}"),
            ));
        }
        let data = body["payload"]["data"]
            .as_str()
            .ok_or_else(|| fail(r, "GCP Secret Manager response has no payload.data"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| fail(r, "payload.data is not base64"))?;
        String::from_utf8(bytes)
            .map(Secret::new)
            .map_err(|_| fail(r, "the secret is not UTF-8 text"))
    }

    /// `projects/P/secrets/S` means the latest version.
    pub fn version_name(name: &str) -> Option<String> {
        let parts: Vec<&str> = name.split('/').collect();
        let ok = |i: usize, lit: &str| parts.get(i) == Some(&lit);
        let filled = parts.iter().all(|p| !p.is_empty());
        match parts.len() {
            4 if ok(0, "projects") && ok(2, "secrets") && filled => {
                Some(format!("{name}/versions/latest"))
            }
            6 if ok(0, "projects") && ok(2, "secrets") && ok(4, "versions") && filled => {
                Some(name.to_string())
            }
            _ => None,
        }
    }

    async fn metadata_token(client: &reqwest::Client, host: &str, r: &SecretRef) -> Result<String> {
        let url =
            format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/token");
        let resp = client
            .get(&url)
            .header("Metadata-Flavor", "Google")
            .send()
            .await
            .map_err(|e| {
                let e = crate::error_chain(&e.without_url());
                fail(r, format!("no GOOGLE_OAUTH_ACCESS_TOKEN and the metadata server {host} is unreachable: {e}"))
            })?;
        let (status, body) = json_body(resp).await;
        match body["access_token"].as_str() {
            Some(t) if status == 200 => Ok(t.to_string()),
            _ => Err(fail(
                r,
                format!("metadata server {host} gave no access token (HTTP {status})"),
            )),
        }
    }
}

pub(crate) mod aws {
    use super::*;
    use ring::{digest, hmac};

    #[derive(Clone)]
    pub struct Settings {
        pub endpoint: String,
        pub region: String,
        pub access_key: String,
        pub secret_key: String,
        pub session_token: Option<String>,
    }

    impl Settings {
        pub fn from_env() -> std::result::Result<Settings, String> {
            let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            let region = var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .ok_or("AWS_REGION (or AWS_DEFAULT_REGION) is not set")?;
            let access_key = var("AWS_ACCESS_KEY_ID").ok_or("AWS_ACCESS_KEY_ID is not set")?;
            let secret_key =
                var("AWS_SECRET_ACCESS_KEY").ok_or("AWS_SECRET_ACCESS_KEY is not set")?;
            let endpoint = var("FLOWCTL_AWS_SECRETSMANAGER_ENDPOINT")
                .or_else(|| var("AWS_ENDPOINT_URL"))
                .unwrap_or_else(|| format!("https://secretsmanager.{region}.amazonaws.com"));
            Ok(Settings {
                endpoint,
                region,
                access_key,
                secret_key,
                session_token: var("AWS_SESSION_TOKEN"),
            })
        }
    }

    pub async fn get_secret_value(s: &Settings, id: &str, r: &SecretRef) -> Result<Secret> {
        let body = serde_json::json!({ "SecretId": id });
        let (status, resp) = call(s, "GetSecretValue", &body)
            .await
            .map_err(|e| fail(r, e))?;
        if status != 200 {
            let kind = resp["__type"].as_str().unwrap_or("error");
            let kind = kind.rsplit('#').next().unwrap_or(kind);
            let msg = resp["message"]
                .as_str()
                .or(resp["Message"].as_str())
                .unwrap_or("");
            return Err(fail(
                r,
                format!("AWS Secrets Manager answered {status} {kind}: {msg}"),
            ));
        }
        if let Some(text) = resp["SecretString"].as_str() {
            return Ok(Secret::new(text));
        }
        let bin = resp["SecretBinary"]
            .as_str()
            .ok_or_else(|| fail(r, "response has neither SecretString nor SecretBinary"))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(bin)
            .map_err(|_| fail(r, "SecretBinary is not base64"))?;
        String::from_utf8(bytes)
            .map(Secret::new)
            .map_err(|_| fail(r, "the secret is not UTF-8 text"))
    }

    /// One signed Secrets Manager JSON call (`X-Amz-Target: secretsmanager.<action>`).
    pub async fn call(
        s: &Settings,
        action: &str,
        body: &Value,
    ) -> std::result::Result<(u16, Value), String> {
        let url = url::Url::parse(&s.endpoint)
            .map_err(|e| format!("bad AWS Secrets Manager endpoint {}: {e}", s.endpoint))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => return Err(format!("bad AWS Secrets Manager endpoint {}", s.endpoint)),
        };
        let payload = body.to_string();
        let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let mut headers = vec![
            (
                "content-type".to_string(),
                "application/x-amz-json-1.1".to_string(),
            ),
            ("host".to_string(), host),
            ("x-amz-date".to_string(), amz_date.clone()),
            (
                "x-amz-target".to_string(),
                format!("secretsmanager.{action}"),
            ),
        ];
        if let Some(t) = &s.session_token {
            headers.push(("x-amz-security-token".to_string(), t.clone()));
        }
        let req = Request {
            method: "POST",
            path: url.path(),
            query: "",
            headers: &headers,
            payload: payload.as_bytes(),
        };
        let auth = authorization(&req, s, "secretsmanager", &amz_date);
        let mut rb = http().map_err(|e| e.to_string())?.post(url.as_str());
        for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
            rb = rb.header(k.as_str(), v.as_str());
        }
        let resp = rb
            .header("authorization", auth)
            .body(payload)
            .send()
            .await
            .map_err(|e| {
                let e = crate::error_chain(&e.without_url());
                format!("AWS Secrets Manager at {}: {e}", s.endpoint)
            })?;
        Ok(json_body(resp).await)
    }

    pub struct Request<'a> {
        pub method: &'a str,
        /// Already URI-encoded path.
        pub path: &'a str,
        /// Already canonical (sorted, encoded) query string.
        pub query: &'a str,
        /// Lower-case names.
        pub headers: &'a [(String, String)],
        pub payload: &'a [u8],
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The SigV4 `Authorization` header value.
    pub fn authorization(req: &Request, s: &Settings, service: &str, amz_date: &str) -> String {
        let mut headers: Vec<&(String, String)> = req.headers.iter().collect();
        headers.sort();
        let canonical_headers: String = headers
            .iter()
            .map(|(k, v)| format!("{k}:{}\n", v.trim()))
            .collect();
        let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        let signed = signed.join(";");
        let canonical = format!(
            "{}\n{}\n{}\n{canonical_headers}\n{signed}\n{}",
            req.method,
            if req.path.is_empty() { "/" } else { req.path },
            req.query,
            hex(digest::digest(&digest::SHA256, req.payload).as_ref())
        );
        let date = &amz_date[..8];
        let scope = format!("{date}/{}/{service}/aws4_request", s.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
        );
        let mac = |key: &[u8], data: &str| {
            hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
        };
        let k = mac(format!("AWS4{}", s.secret_key).as_bytes(), date);
        let k = mac(k.as_ref(), &s.region);
        let k = mac(k.as_ref(), service);
        let k = mac(k.as_ref(), "aws4_request");
        let sig = hex(mac(k.as_ref(), &to_sign).as_ref());
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={sig}",
            s.access_key
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const CANARY: &str = "CANARY-s3cr3t-gcp-41d2";

    /// AWS's published SigV4 example (IAM ListUsers, 2015-08-30).
    #[test]
    fn sigv4_matches_the_aws_documentation_example() {
        let s = aws::Settings {
            endpoint: "https://iam.amazonaws.com".into(),
            region: "us-east-1".into(),
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let headers = vec![
            (
                "content-type".to_string(),
                "application/x-www-form-urlencoded; charset=utf-8".to_string(),
            ),
            ("host".to_string(), "iam.amazonaws.com".to_string()),
            ("x-amz-date".to_string(), "20150830T123600Z".to_string()),
        ];
        let req = aws::Request {
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &headers,
            payload: b"",
        };
        let auth = aws::authorization(&req, &s, "iam", "20150830T123600Z");
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    /// A local HTTP server playing the GCE metadata server and Secret Manager's REST API
    /// (real HTTP over TCP; the answers follow the documented shapes).
    async fn gcp_server() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                let path = req.split_whitespace().nth(1).unwrap_or("").to_string();
                let (status, body) = gcp_answer(&path, &req);
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            }
        });
        addr
    }

    fn gcp_answer(path: &str, req: &str) -> (&'static str, String) {
        if path == "/computemetadata/v1/instance/service-accounts/default/token" {
            if req.contains("metadata-flavor: google") {
                return (
                    "200 OK",
                    r#"{"access_token":"meta-tok","expires_in":3599,"token_type":"Bearer"}"#.into(),
                );
            }
            return ("403 Forbidden", "{}".into());
        }
        if !req.contains("authorization: bearer meta-tok") {
            return ("401 Unauthorized", r#"{"error":{"code":401,"message":"Request had invalid authentication credentials."}}"#.into());
        }
        if path == "/v1/projects/p/secrets/s/versions/latest:access" {
            let data = base64::engine::general_purpose::STANDARD.encode(CANARY);
            return (
                "200 OK",
                format!(
                    r#"{{"name":"projects/1/secrets/s/versions/3","payload":{{"data":"{data}"}}}}"#
                ),
            );
        }
        ("404 Not Found", r#"{"error":{"code":404,"message":"Secret [projects/1/secrets/missing] not found or has no versions."}}"#.into())
    }

    #[tokio::test]
    async fn gcp_secret_via_metadata_token_against_local_server() {
        let addr = gcp_server().await;
        let settings = gcp::Settings {
            endpoint: format!("http://{addr}"),
            token: None,
            metadata_host: addr.clone(),
        };
        let r = SecretRef::GcpSecret("projects/p/secrets/s".into());
        let secret = gcp::access(&settings, "projects/p/secrets/s", &r)
            .await
            .unwrap();
        assert_eq!(secret.expose(), CANARY);

        let name = "projects/p/secrets/missing/versions/1";
        let r = SecretRef::GcpSecret(name.into());
        let err = gcp::access(&settings, name, &r)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(name) && err.contains("404"), "{err}");

        let wrong = gcp::Settings {
            token: Some("other".into()),
            ..settings.clone()
        };
        let err = gcp::access(&wrong, "projects/p/secrets/s", &r)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("401") && !err.contains(CANARY), "{err}");

        let err = gcp::access(&settings, "p/s", &r)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected projects/PROJECT/secrets/SECRET"),
            "{err}"
        );
    }

    fn moto_endpoint() -> Option<String> {
        match std::env::var("FLOWCTL_TEST_S3_ENDPOINT") {
            Ok(v) => Some(v),
            Err(_) if std::env::var("FLOWCTL_REQUIRE_EMULATORS").as_deref() == Ok("1") => {
                panic!("FLOWCTL_TEST_S3_ENDPOINT not set and FLOWCTL_REQUIRE_EMULATORS=1")
            }
            Err(_) => {
                println!("SKIPPED: FLOWCTL_TEST_S3_ENDPOINT not set");
                None
            }
        }
    }

    #[tokio::test]
    async fn aws_secret_against_moto() {
        let Some(endpoint) = moto_endpoint() else {
            return;
        };
        let s = aws::Settings {
            endpoint,
            region: "us-east-1".into(),
            access_key: "testing".into(),
            secret_key: "testing".into(),
            session_token: Some("testing-session".into()),
        };
        let id = format!("flowctl-test-{}", uuid::Uuid::new_v4());
        let value = format!("CANARY-s3cr3t-aws-{}", uuid::Uuid::new_v4());
        let body = serde_json::json!({"Name": id, "SecretString": value});
        let (status, resp) = aws::call(&s, "CreateSecret", &body).await.unwrap();
        assert_eq!(status, 200, "{resp}");

        let r = SecretRef::AwsSecret(id.clone());
        let got = aws::get_secret_value(&s, &id, &r).await.unwrap();
        assert_eq!(got.expose(), value);

        let r = SecretRef::AwsSecret("flowctl-missing".into());
        let err = aws::get_secret_value(&s, "flowctl-missing", &r)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("flowctl-missing") && err.contains("ResourceNotFoundException"),
            "{err}"
        );
        assert!(!err.contains(&value));
    }
}
