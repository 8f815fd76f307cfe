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

    /// `action` is a verb phrase ("writing"), `uri` the object concerned.
    pub fn store_error(&self, action: &str, uri: &str, e: &object_store::Error) -> PluginError {
        // With its sources: the text of the server's response body is kept.
        let text = flowctl_core::error_chain(e);
        let lower = text.to_lowercase();
        let (bucket, at) = (self.bucket_text(), self.endpoint_text());
        let kind = self.kind;
        let msg = if lower.contains("nosuchbucket")
            || lower.contains("bucket does not exist")
            || (matches!(e, object_store::Error::NotFound { .. }) && action != "reading")
        {
            format!("{kind} staging: {bucket}{at} does not exist ({action} {uri}); create it or fix `bucket`")
        } else if matches!(
            e,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        ) || lower.contains("accessdenied")
            || lower.contains("access denied")
            || lower.contains("403 forbidden")
            || lower.contains("401 unauthorized")
        {
            format!(
                "{kind} staging: access denied {action} {uri}; check the credentials ({}) and that they may read and write {bucket}: {text}",
                self.credentials_hint
            )
        } else if lower.contains("error sending request")
            || lower.contains("connection refused")
            || lower.contains("dns error")
            || lower.contains("timed out")
        {
            format!("{kind} staging: cannot reach the storage endpoint{at} while {action} {uri}: {text}")
        } else {
            format!("{kind} staging: {action} {uri} failed: {text}")
        };
        PluginError::external(msg)
    }

    pub fn parquet_error(&self, action: &str, uri: &str, e: ParquetError) -> PluginError {
        if let Some(store) = error_in::<object_store::Error>(&e) {
            return self.store_error(action, uri, store);
        }
        if let Some(spool) = error_in::<crate::spool::SpoolError>(&e) {
            return PluginError::other(format!("{} staging: {action} {uri}: {spool}", self.kind));
        }
        PluginError::other(format!(
            "{} staging: {action} {uri}: parquet: {e}",
            self.kind
        ))
    }
}

/// An error of type `E` under a parquet error. Completing an upload goes through
/// `AsyncWrite::shutdown`, which wraps the store's error in an `io::Error`, and the async
/// writer wraps its sink's errors in `External` once more: look through both.
fn error_in<E: std::error::Error + 'static>(e: &ParquetError) -> Option<&E> {
    let ParquetError::External(inner) = e else {
        return None;
    };
    if let Some(found) = inner.downcast_ref::<E>() {
        return Some(found);
    }
    if let Some(io) = inner.downcast_ref::<std::io::Error>() {
        return io.get_ref().and_then(|e| e.downcast_ref::<E>());
    }
    inner.downcast_ref::<ParquetError>().and_then(error_in)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> StoreContext {
        StoreContext {
            kind: "s3",
            bucket: Some("data".into()),
            endpoint: None,
            credentials_hint: "AWS_ACCESS_KEY_ID",
        }
    }

    #[test]
    fn access_denied_names_bucket_and_credentials() {
        let e = object_store::Error::PermissionDenied {
            path: "github/x.parquet".into(),
            source: "403 Forbidden: AccessDenied".into(),
        };
        let msg = ctx()
            .store_error("writing", "s3://data/github/x.parquet", &e)
            .to_string();
        assert!(
            msg.contains("access denied writing s3://data/github/x.parquet"),
            "{msg}"
        );
        assert!(
            msg.contains("AWS_ACCESS_KEY_ID") && msg.contains("bucket `data`"),
            "{msg}"
        );
    }

    #[test]
    fn store_errors_are_found_under_parquet_and_io_wrappers() {
        let store = object_store::Error::NotFound {
            path: "p".into(),
            source: "NoSuchBucket".into(),
        };
        let wrapped = ParquetError::External(Box::new(ParquetError::External(Box::new(
            std::io::Error::from(store),
        ))));
        let msg = ctx()
            .parquet_error("writing", "s3://data/p", wrapped)
            .to_string();
        assert!(msg.contains("bucket `data` does not exist"), "{msg}");
        let spool = ParquetError::External(Box::new(ParquetError::External(Box::new(
            crate::spool::SpoolError("writing the spool file in /x failed".into()),
        ))));
        let msg = ctx()
            .parquet_error("writing", "s3://data/p", spool)
            .to_string();
        assert_eq!(
            msg,
            "s3 staging: writing s3://data/p: writing the spool file in /x failed"
        );
        let other = ctx().parquet_error("writing", "u", ParquetError::General("boom".into()));
        assert!(
            other.to_string().contains("parquet: Parquet error: boom"),
            "{other}"
        );
    }
}
