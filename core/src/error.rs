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
