//! The error type that crosses the plugin boundary.

/// The underlying error a [`PluginError`] keeps as its `source()`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from a plugin. The message must be one clear sentence naming what failed and
/// where (URL without token, bucket and path, table), never containing a secret; the
/// underlying error, when there is one, stays reachable through `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The configuration is wrong in a way the JSON schema could not catch.
    #[error("invalid config: {0}")]
    Config(String),
    /// The plugin exists but this part of it cannot run yet.
    #[error("{0}")]
    NotImplemented(String),
    /// Talking to an external system failed. `retryable`: the failure was transient (a
    /// network error, HTTP 429 or 5xx), so the same request may succeed later.
    #[error("{message}")]
    External {
        message: String,
        retryable: bool,
        #[source]
        source: Option<BoxError>,
    },
    /// Input from outside (HTTP body, file) could not be understood.
    #[error("{message}")]
    Data {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
    /// Anything else, with context.
    #[error("{message}")]
    Other {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
}

impl PluginError {
    pub fn config(msg: impl Into<String>) -> Self {
        Self::Config(msg.into())
    }
    /// An external system refused or failed, not known to be transient.
    pub fn external(msg: impl Into<String>) -> Self {
        Self::External {
            message: msg.into(),
            retryable: false,
            source: None,
        }
    }
    /// An external system failed transiently (network, HTTP 429 or 5xx).
    pub fn transient(msg: impl Into<String>) -> Self {
        Self::External {
            message: msg.into(),
            retryable: true,
            source: None,
        }
    }
    /// An external system failed with `e`, kept as the source; retryable when `e` or one
    /// of its causes is transient (see [`is_transient`]).
    pub fn external_from(msg: impl Into<String>, e: impl Into<BoxError>) -> Self {
        let e = e.into();
        Self::External {
            message: msg.into(),
            retryable: is_transient(&*e),
            source: Some(e),
        }
    }
    pub fn data(msg: impl Into<String>) -> Self {
        Self::Data {
            message: msg.into(),
            source: None,
        }
    }
    pub fn other(msg: impl Into<String>) -> Self {
        Self::Other {
            message: msg.into(),
            source: None,
        }
    }

    /// Keeps `e` as this error's `source()`. `Config` and `NotImplemented` describe the
    /// spec, not a failure underneath, and stay as they are.
    pub fn with_source(mut self, e: impl Into<BoxError>) -> Self {
        if let Self::External { source, .. }
        | Self::Data { source, .. }
        | Self::Other { source, .. } = &mut self
        {
            *source = Some(e.into());
        }
        self
    }

    /// This error with `context` before its message (`loading PULL_REQUEST: ...`), of the
    /// same kind, retryability and source.
    pub fn context(self, context: impl std::fmt::Display) -> Self {
        match self {
            Self::Config(m) => Self::Config(format!("{context}: {m}")),
            Self::NotImplemented(m) => Self::NotImplemented(format!("{context}: {m}")),
            Self::External {
                message,
                retryable,
                source,
            } => Self::External {
                message: format!("{context}: {message}"),
                retryable,
                source,
            },
            Self::Data { message, source } => Self::Data {
                message: format!("{context}: {message}"),
                source,
            },
            Self::Other { message, source } => Self::Other {
                message: format!("{context}: {message}"),
                source,
            },
        }
    }

    /// Whether the same operation may succeed if tried again: the failure was transient,
    /// also when a client's own retries (waiting [`crate::retry::backoff`]) ran out.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::External {
                retryable: true,
                ..
            }
        )
    }
}

/// Whether `e` or one of its causes is a transient failure: a connection that could not
/// be made or was cut, a timeout, an HTTP answer 408, 429 or 5xx, or a retryable
/// [`PluginError`].
pub fn is_transient(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        // A plugin's own error was classified where it was made.
        if let Some(p) = c.downcast_ref::<PluginError>() {
            return p.retryable();
        }
        if let Some(r) = c.downcast_ref::<reqwest::Error>() {
            if r.is_timeout() || r.is_connect() || r.is_request() || r.is_body() {
                return true;
            }
            if let Some(status) = r.status() {
                return transient_status(status.as_u16());
            }
        }
        if let Some(h) = c.downcast_ref::<object_store::client::HttpError>() {
            use object_store::client::HttpErrorKind as K;
            if matches!(
                h.kind(),
                K::Connect | K::Request | K::Timeout | K::Interrupted
            ) {
                return true;
            }
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(
                io.kind(),
                K::TimedOut
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::ConnectionRefused
                    | K::BrokenPipe
                    | K::UnexpectedEof
            ) {
                return true;
            }
            // An io::Error's `source()` skips the error it wraps: look at that one next.
            if let Some(inner) = io.get_ref() {
                cause = Some(inner);
                continue;
            }
        }
        if let Some(status) = store_status(&c.to_string()) {
            return transient_status(status);
        }
        cause = c.source();
    }
    false
}

/// Whether an HTTP answer with `status` may succeed when asked again: 408, 429 and 5xx.
pub fn transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// The HTTP status of an `object_store` request error, read from its text: the error
/// type that holds it is private to that crate. An error in the body of a 200 answer
/// counts as a 500, as object_store itself retries it.
fn store_status(text: &str) -> Option<u16> {
    if text.contains("Server returned error response") {
        return Some(500);
    }
    let (_, rest) = text.split_once("Server returned non-2xx status code: ")?;
    rest.get(..3)?.parse().ok()
}

impl From<arrow::error::ArrowError> for PluginError {
    fn from(e: arrow::error::ArrowError) -> Self {
        Self::other(format!("arrow: {e}")).with_source(e)
    }
}

pub type Result<T, E = PluginError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn only_transient_external_errors_are_retryable_and_sources_are_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e = PluginError::transient("snowflake: HTTP 503").with_source(io);
        assert!(e.retryable());
        assert_eq!(e.to_string(), "snowflake: HTTP 503");
        assert_eq!(e.source().unwrap().to_string(), "reset by peer");
        assert_eq!(crate::error_chain(&e), "snowflake: HTTP 503: reset by peer");
        assert!(!PluginError::external("bucket `b` does not exist").retryable());
        assert!(!PluginError::other("x").retryable());
        let config = PluginError::config("bad").with_source(std::fmt::Error);
        assert!(config.source().is_none() && !config.retryable());
    }

    #[test]
    fn external_from_is_retryable_only_for_transient_causes() {
        use std::io::{Error as Io, ErrorKind};
        let reset = Io::new(ErrorKind::ConnectionReset, "reset by peer");
        assert!(PluginError::external_from("s3 staging: writing", reset).retryable());
        let denied = Io::new(ErrorKind::PermissionDenied, "denied");
        let e = PluginError::external_from("local staging: writing /x", denied);
        assert!(!e.retryable());
        assert_eq!(crate::error_chain(&e), "local staging: writing /x: denied");
        // A transient cause further down the chain counts.
        let wrapped = Io::other(Io::new(ErrorKind::TimedOut, "timed out"));
        assert!(PluginError::external_from("m", wrapped).retryable());
        // A plugin error under another keeps its own verdict.
        let gave_up = PluginError::transient("HTTP 503");
        let e = PluginError::external_from(format!("MERGE for table T: {gave_up}"), gave_up);
        assert!(e.retryable());
        assert_eq!(crate::error_chain(&e), "MERGE for table T: HTTP 503");
        let refused = PluginError::external("HTTP 401");
        assert!(!PluginError::external_from("MERGE", refused).retryable());
    }

    #[test]
    fn object_store_statuses_are_read_from_their_text() {
        use std::io::Error as Io;
        // The text object_store 0.13 gives a request that failed with a status.
        let status = |code: &str| {
            format!(
                "Generic S3 error: Error performing PUT http://127.0.0.1:9/b/k in 1ms - \
                 Server returned non-2xx status code: {code}: <Error/>"
            )
        };
        for (code, transient) in [
            ("503 Service Unavailable", true),
            ("429 Too Many Requests", true),
            ("500 Internal Server Error", true),
            ("404 Not Found", false),
            ("403 Forbidden", false),
            ("400 Bad Request", false),
        ] {
            let e = Io::other(status(code));
            assert_eq!(is_transient(&e), transient, "{code}");
        }
        let in_body = "Error performing POST x - Server returned error response: <Error>";
        assert!(is_transient(&Io::other(in_body)));
        assert!(!is_transient(&Io::other("no such bucket")));
    }

    #[test]
    fn context_goes_before_the_message_and_keeps_kind_retryability_and_source() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let e = PluginError::transient("HTTP 503")
            .with_source(io)
            .context("loading PULL_REQUEST");
        assert!(e.retryable());
        assert_eq!(e.to_string(), "loading PULL_REQUEST: HTTP 503");
        assert_eq!(e.source().unwrap().to_string(), "timed out");
        let e = PluginError::external("denied").context("loading T");
        assert!(!e.retryable());
        assert_eq!(e.to_string(), "loading T: denied");
        let e = PluginError::config("`x` is wrong").context("source");
        assert_eq!(e.to_string(), "invalid config: source: `x` is wrong");
    }
}
