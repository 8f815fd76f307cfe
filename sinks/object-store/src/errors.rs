//! Turns `object_store` and `parquet` errors into one sentence that names the bucket, the
//! path and what to check, instead of a bare "Generic S3 error".

use flowctl_core::PluginError;
use parquet::errors::ParquetError;

/// What a message needs to say where things went wrong.
#[derive(Debug, Clone)]
pub(crate) struct StoreContext {
    pub kind: &'static str,
    /// `None` for `local`.
    pub bucket: Option<String>,
    /// Endpoint or base URL when not the cloud's default.
    pub endpoint: Option<String>,
    /// Where credentials come from, for access-denied messages.
    pub credentials_hint: &'static str,
}

impl StoreContext {
    fn endpoint_text(&self) -> String {
        match &self.endpoint {
            Some(e) => format!(" at {e}"),
            None => String::new(),
        }
    }

    fn bucket_text(&self) -> String {
        match &self.bucket {
            Some(b) => format!("bucket `{b}`"),
            None => "the staging folder".to_string(),
        }
    }

    /// `action` is a verb phrase ("writing"), `uri` the object concerned. The store's
    /// error stays the source; a missing bucket or refused credentials never pass for
    /// transient, a timeout, a cut connection, a 429 or a 5xx does.
    pub fn store_error(&self, action: &str, uri: &str, e: object_store::Error) -> PluginError {
        // With its sources: the text of the server's response body is kept.
        let text = flowctl_core::error_chain(&e);
        let lower = text.to_lowercase();
        let (bucket, at) = (self.bucket_text(), self.endpoint_text());
        let kind = self.kind;
        if lower.contains("nosuchbucket")
            || lower.contains("bucket does not exist")
            || (matches!(e, object_store::Error::NotFound { .. }) && action != "reading")
        {
            return PluginError::external(format!(
                "{kind} staging: {bucket}{at} does not exist ({action} {uri}); create it or fix `bucket`"
            ))
            .with_source(e);
        }
        if matches!(
            e,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        ) || lower.contains("accessdenied")
            || lower.contains("access denied")
            || lower.contains("403 forbidden")
            || lower.contains("401 unauthorized")
        {
            return PluginError::external(format!(
                "{kind} staging: access denied {action} {uri}; check the credentials ({}) and that they may read and write {bucket}: {text}",
                self.credentials_hint
            ))
            .with_source(e);
        }
        let msg = if lower.contains("error sending request")
            || lower.contains("connection refused")
            || lower.contains("dns error")
            || lower.contains("timed out")
        {
            format!("{kind} staging: cannot reach the storage endpoint{at} while {action} {uri}: {text}")
        } else {
            format!("{kind} staging: {action} {uri} failed: {text}")
        };
        PluginError::external_from(msg, e)
    }

    pub fn parquet_error(&self, action: &str, uri: &str, e: ParquetError) -> PluginError {
        let e = match take::<object_store::Error>(e) {
            Ok(store) => return self.store_error(action, uri, store),
            Err(e) => e,
        };
        match take::<crate::spool::SpoolError>(e) {
            Ok(spool) => {
                PluginError::other(format!("{} staging: {action} {uri}: {spool}", self.kind))
                    .with_source(spool)
            }
            Err(e) => PluginError::other(format!(
                "{} staging: {action} {uri}: parquet: {e}",
                self.kind
            ))
            .with_source(e),
        }
    }
}

/// The error of type `E` under a parquet error, or what is left when there is none.
/// Completing an upload goes through `AsyncWrite::shutdown`, which wraps the store's
/// error in an `io::Error`, and the async writer wraps its sink's errors in `External`
/// once more: look through both.
fn take<E: std::error::Error + Send + Sync + 'static>(e: ParquetError) -> Result<E, ParquetError> {
    let ParquetError::External(mut inner) = e else {
        return Err(e);
    };
    loop {
        inner = match inner.downcast::<E>() {
            Ok(found) => return Ok(*found),
            Err(other) => other,
        };
        inner = match inner.downcast::<std::io::Error>() {
            Ok(io) if io.get_ref().is_some() => {
                let kind = io.kind();
                io.into_inner()
                    .unwrap_or_else(|| Box::new(std::io::Error::from(kind)))
            }
            Ok(io) => return Err(ParquetError::External(io)),
            Err(other) => match other.downcast::<ParquetError>() {
                Ok(p) => match *p {
                    ParquetError::External(next) => next,
                    p => return Err(p),
                },
                Err(other) => return Err(ParquetError::External(other)),
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    fn ctx() -> StoreContext {
        StoreContext {
            kind: "s3",
            bucket: Some("data".into()),
            endpoint: None,
            credentials_hint: "AWS_ACCESS_KEY_ID",
        }
    }

    #[test]
    fn access_denied_names_bucket_and_credentials_and_is_not_retryable() {
        let e = object_store::Error::PermissionDenied {
            path: "github/x.parquet".into(),
            source: "403 Forbidden: AccessDenied".into(),
        };
        let err = ctx().store_error("writing", "s3://data/github/x.parquet", e);
        let msg = err.to_string();
        assert!(
            msg.contains("access denied writing s3://data/github/x.parquet"),
            "{msg}"
        );
        assert!(
            msg.contains("AWS_ACCESS_KEY_ID") && msg.contains("bucket `data`"),
            "{msg}"
        );
        assert!(!err.retryable());
        let source = err.source().expect("the store's error is kept");
        assert!(source.is::<object_store::Error>(), "{source:?}");
    }

    #[test]
    fn store_errors_are_found_under_parquet_and_io_wrappers() {
        let store = object_store::Error::NotFound {
            path: "p".into(),
            source: "NoSuchBucket".into(),
        };
        let wrapped = ParquetError::External(Box::new(ParquetError::External(Box::new(
            std::io::Error::other(store),
        ))));
        let err = ctx().parquet_error("writing", "s3://data/p", wrapped);
        let msg = err.to_string();
        assert!(msg.contains("bucket `data` does not exist"), "{msg}");
        assert!(!err.retryable());
        assert!(err.source().is_some_and(|s| s.is::<object_store::Error>()));
        let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left");
        let spool = ParquetError::External(Box::new(ParquetError::External(Box::new(
            crate::spool::SpoolError {
                message: "writing the spool file in /x failed".into(),
                source: io,
            },
        ))));
        let err = ctx().parquet_error("writing", "s3://data/p", spool);
        assert_eq!(
            err.to_string(),
            "s3 staging: writing s3://data/p: writing the spool file in /x failed"
        );
        assert_eq!(
            flowctl_core::error_chain(&err),
            "s3 staging: writing s3://data/p: writing the spool file in /x failed: no space left"
        );
        let other = ctx().parquet_error("writing", "u", ParquetError::General("boom".into()));
        assert!(
            other.to_string().contains("parquet: Parquet error: boom"),
            "{other}"
        );
        assert!(other.source().is_some_and(|s| s.is::<ParquetError>()));
    }

    #[test]
    fn a_cut_connection_is_retryable_and_says_so() {
        let cut = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e = object_store::Error::Generic {
            store: "S3",
            source: Box::new(cut),
        };
        let err = ctx().store_error("writing", "s3://data/p", e);
        assert!(err.retryable(), "{err}");
        assert!(err.to_string().contains("reset by peer"), "{err}");
    }
}
