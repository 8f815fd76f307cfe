//! The error type that crosses the plugin boundary.

/// An error from a plugin. The message must be one clear sentence naming what failed and
/// where (URL without token, bucket and path, table), never containing a secret.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The configuration is wrong in a way the JSON schema could not catch.
    #[error("invalid config: {0}")]
    Config(String),
    /// The plugin exists but this part of it cannot run yet.
    #[error("{0}")]
    NotImplemented(String),
    /// Talking to an external system failed (after retries).
    #[error("{0}")]
    External(String),
    /// Input from outside (HTTP body, file) could not be understood.
    #[error("{0}")]
    Data(String),
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
}

impl PluginError {
    pub fn config(msg: impl Into<String>) -> Self {
        Self::Config(msg.into())
    }
    pub fn external(msg: impl Into<String>) -> Self {
        Self::External(msg.into())
    }
    pub fn data(msg: impl Into<String>) -> Self {
        Self::Data(msg.into())
    }
    pub fn other(msg: impl Into<String>) -> Self {
        Self::Other(msg.into())
    }
}

impl From<arrow::error::ArrowError> for PluginError {
    fn from(e: arrow::error::ArrowError) -> Self {
        Self::Other(format!("arrow: {e}"))
    }
}

pub type Result<T, E = PluginError> = std::result::Result<T, E>;
