//! A tiny recording HTTP server and minimal GitHub-shaped JSON payloads, for answers the
//! stand-in cannot give.

/// One request as a [`TinyServer`] saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An answer of a [`TinyServer`] handler.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into(),
        }
    }
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: vec![],
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
}

type Handler = dyn Fn(&SeenRequest) -> Reply + Send + Sync;

/// A tiny real HTTP/1.1 server on 127.0.0.1 (one thread per connection, `Connection:
/// close`), recording every request; for payloads and redirects the stand-in cannot serve.
pub struct TinyServer {
    pub base_url: String,
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<SeenRequest>>>,
}

impl TinyServer {
    pub fn start(handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static) -> TinyServer {
        Self::start_on("127.0.0.1", handler)
    }

    pub fn start_on(
        host: &str,
        handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
    ) -> TinyServer {
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind((host, 0)).unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<SeenRequest>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(handler);
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (h, s) = (handler.clone(), s2.clone());
                std::thread::spawn(move || serve_conn(conn, &*h, &s));
            }
        });
        TinyServer { base_url, seen }
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_conn(
    mut conn: std::net::TcpStream,
    handler: &Handler,
    seen: &std::sync::Mutex<Vec<SeenRequest>>,
) {
    use std::io::{BufRead, BufReader, Write};
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_lowercase(), v.trim().to_string()));
        }
    }
    let req = SeenRequest {
        method,
        target,
        headers,
    };
    seen.lock().unwrap().push(req.clone());
    let reply = handler(&req);
    let mut head = format!("HTTP/1.1 {} X\r\n", reply.status);
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.body.len()
    ));
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(&reply.body);
    let _ = conn.flush();
}

/// A minimal GitHub repository object (fields the source reads, GitHub's shapes).
pub fn repo_json(org: &str, name: &str, id: i64) -> String {
    format!(
        r#"{{"id":{id},"name":"{name}","full_name":"{org}/{name}","owner":{{"login":"{org}","id":1,"type":"Organization"}},"private":false,"fork":false,"archived":false,"default_branch":"main","created_at":"2024-01-01T00:00:00Z","updated_at":"2024-06-01T00:00:00Z","pushed_at":"2024-06-01T00:00:00Z"}}"#
    )
}

/// A minimal pull request object; `title` is inserted as raw JSON text.
pub fn pr_json(org: &str, repo: &str, id: i64, number: i64, title_json: &str) -> String {
    format!(
        r#"{{"id":{id},"number":{number},"state":"open","draft":false,"title":{title_json},"user":{{"login":"dev","id":7}},"created_at":"2024-05-01T00:00:00Z","updated_at":"2024-05-0{d}T00:00:00Z","closed_at":null,"merged_at":null,"base":{{"ref":"main","sha":"aaa","repo":{{"name":"{repo}","full_name":"{org}/{repo}"}}}},"head":{{"ref":"f{number}","sha":"bbb"}},"html_url":"https://github.com/{org}/{repo}/pull/{number}"}}"#,
        d = 1 + (number % 9)
    )
}
