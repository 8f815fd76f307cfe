//! The state store: one JSON document per pipeline (and shard), kept beside the staged
//! data by default (`{prefix}/_state/{pipeline}.json`), plus a lease object that stops two
//! applies of one pipeline from interleaving.
//!
//! Writes are atomic: an object store PUT replaces the object in one step, and the local
//! backend writes a temporary file and renames it. State for a stream is committed only
//! after that stream's MERGE succeeded, so a run killed anywhere re-reads at most what
//! it had not committed, and the MERGE makes the re-read harmless.

use crate::{PluginError, Result, Shard};
use chrono::{DateTime, Utc};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The saved state of one pipeline (or one shard of it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineState {
    /// Format version of this document.
    pub version: u32,
    pub pipeline: String,
    /// Per stream: the source's own cursor document (opaque to the engine).
    pub streams: BTreeMap<String, StreamState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamState {
    /// When this stream's state was last committed (after its MERGE).
    pub committed_at: DateTime<Utc>,
    /// The run that committed it.
    pub batch_id: String,
    /// The source's cursor document.
    pub cursor: serde_json::Value,
}

/// What a lease object holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseInfo {
    pub owner: String,
    pub host: String,
    pub pid: u32,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// State documents and leases under `root/_state/` in an object store.
#[derive(Clone)]
pub struct StateStore {
    store: Arc<dyn ObjectStore>,
    dir: StorePath,
    /// Human-readable location for messages (`file:///…/_state/`, `s3://…/_state/`).
    display: String,
}

impl StateStore {
    pub fn new(store: Arc<dyn ObjectStore>, root: &StorePath, root_uri: &str) -> Self {
        let dir = root.clone().join("_state");
        let display = format!("{}/_state/", root_uri.trim_end_matches('/'));
        StateStore {
            store,
            dir,
            display,
        }
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    fn doc_name(pipeline: &str, shard: Option<Shard>) -> String {
        match shard {
            Some(s) => format!("{pipeline}.shard-{}-of-{}", s.index, s.count),
            None => pipeline.to_string(),
        }
    }

    fn state_path(&self, pipeline: &str, shard: Option<Shard>) -> StorePath {
        self.dir
            .clone()
            .join(format!("{}.json", Self::doc_name(pipeline, shard)))
    }

    fn lease_path(&self, pipeline: &str, shard: Option<Shard>) -> StorePath {
        self.dir
            .clone()
            .join(format!("{}.lease", Self::doc_name(pipeline, shard)))
    }

    /// Load the state, or an empty one when none was saved yet.
    pub async fn load(&self, pipeline: &str, shard: Option<Shard>) -> Result<PipelineState> {
        let path = self.state_path(pipeline, shard);
        match self.store.get(&path).await {
            Ok(got) => {
                let bytes = got.bytes().await.map_err(|e| self.err("read", &path, e))?;
                serde_json::from_slice(&bytes).map_err(|e| {
                    PluginError::data(format!(
                        "state document {}{} is not valid state JSON: {e} \
                         (fix or remove it with `flowctl state reset`)",
                        self.display,
                        path.filename().unwrap_or_default()
                    ))
                    .with_source(e)
                })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(PipelineState {
                version: 1,
                pipeline: pipeline.to_string(),
                streams: BTreeMap::new(),
            }),
            Err(e) => Err(self.err("read", &path, e)),
        }
    }

    /// Replace the state document atomically.
    pub async fn save(
        &self,
        pipeline: &str,
        shard: Option<Shard>,
        state: &PipelineState,
    ) -> Result<()> {
        let path = self.state_path(pipeline, shard);
        let body = serde_json::to_vec_pretty(state)
            .map_err(|e| PluginError::other(format!("serialising state: {e}")).with_source(e))?;
        self.store
            .put(&path, PutPayload::from(body))
            .await
            .map_err(|e| self.err("write", &path, e))?;
        Ok(())
    }

    /// Delete the whole state document.
    pub async fn delete(&self, pipeline: &str, shard: Option<Shard>) -> Result<()> {
        let path = self.state_path(pipeline, shard);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("delete", &path, e)),
        }
    }

    /// Take the pipeline's lease. Fails with a clear message when another live run holds
    /// it; with `wait`, polls until it is free (or `wait_limit` passes).
    pub async fn acquire_lease(
        &self,
        pipeline: &str,
        shard: Option<Shard>,
        ttl: Duration,
        wait: Option<Duration>,
    ) -> Result<Lease> {
        let path = self.lease_path(pipeline, shard);
        let owner = uuid::Uuid::new_v4().to_string();
        let started = std::time::Instant::now();
        loop {
            let now = Utc::now();
            let info = LeaseInfo {
                owner: owner.clone(),
                host: hostname(),
                pid: std::process::id(),
                acquired_at: now,
                expires_at: lease_expiry(now, ttl),
            };
            let body = serde_json::to_vec(&info).map_err(|e| {
                PluginError::other(format!("serialising lease: {e}")).with_source(e)
            })?;
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match self
                .store
                .put_opts(&path, PutPayload::from(body), opts)
                .await
            {
                Ok(_) => {
                    return Ok(Lease {
                        store: self.store.clone(),
                        path,
                        released: false,
                    })
                }
                Err(object_store::Error::AlreadyExists { .. }) => {
                    let holder = self.read_lease(&path).await;
                    match holder {
                        Some(h) if !lease_is_stale(&h) => {
                            let within_wait = wait.is_some_and(|w| started.elapsed() < w);
                            if !within_wait {
                                return Err(PluginError::other(format!(
                                    "pipeline {pipeline} is already running (lease held by pid {} on {} \
                                     since {}, expires {}; lease file {}{}). Wait for it, pass \
                                     --wait-for-lease, or remove the lease file if that run is gone",
                                    h.pid,
                                    h.host,
                                    h.acquired_at.to_rfc3339(),
                                    h.expires_at.to_rfc3339(),
                                    self.display,
                                    path.filename().unwrap_or_default()
                                )));
                            }
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        _ => {
                            // Expired, left by a dead process, or unreadable: take it over.
                            tracing::warn!(lease = %path, "removing a stale lease");
                            let _ = self.store.delete(&path).await;
                        }
                    }
                }
                Err(object_store::Error::NotImplemented { .. }) => {
                    // Stores without create-only puts (some emulators): plain put.
                    let body = serde_json::to_vec(&info).map_err(|e| {
                        PluginError::other(format!("serialising lease: {e}")).with_source(e)
                    })?;
                    self.store
                        .put(&path, PutPayload::from(body))
                        .await
                        .map_err(|e| self.err("write", &path, e))?;
                    return Ok(Lease {
                        store: self.store.clone(),
                        path,
                        released: false,
                    });
                }
                Err(e) => return Err(self.err("write", &path, e)),
            }
        }
    }

    async fn read_lease(&self, path: &StorePath) -> Option<LeaseInfo> {
        let got = self.store.get(path).await.ok()?;
        let bytes = got.bytes().await.ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn err(&self, op: &str, path: &StorePath, e: object_store::Error) -> PluginError {
        PluginError::external(format!(
            "cannot {op} state {}{}: {e}",
            self.display,
            path.filename().unwrap_or_default()
        ))
        .with_source(e)
    }
}

/// A held lease; release it with [`Lease::release`].
pub struct Lease {
    store: Arc<dyn ObjectStore>,
    path: StorePath,
    released: bool,
}

impl Lease {
    pub async fn release(mut self) {
        self.released = true;
        if let Err(e) = self.store.delete(&self.path).await {
            tracing::warn!(lease = %self.path, error = %e, "could not release the lease");
        }
    }
}

impl Drop for Lease {
    /// A lease dropped unreleased belongs to a run that ended without reaching its release:
    /// it panicked, or its future was dropped. Inside a runtime that goes on (`serve`), the
    /// lease is removed, or the pipeline's next run would find it held by this live process
    /// until it expired. Elsewhere the process is ending, and its lease is stale at once.
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(lease = %self.path, "lease dropped without release");
            return;
        };
        tracing::warn!(lease = %self.path, "a run ended without releasing its lease; removing it");
        let (store, path) = (self.store.clone(), self.path.clone());
        rt.spawn(async move {
            if let Err(e) = store.delete(&path).await {
                tracing::warn!(lease = %path, error = %e, "could not release the lease");
            }
        });
    }
}

/// Longest lease a run takes (`state.lease_ttl_seconds` is validated against it too).
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// When a lease taken at `now` for `ttl` expires; `ttl` is capped at [`MAX_LEASE_TTL`], so
/// the time is always representable.
fn lease_expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    let ttl =
        chrono::Duration::from_std(ttl.min(MAX_LEASE_TTL)).unwrap_or(chrono::Duration::hours(1));
    now.checked_add_signed(ttl)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// A lease is stale when it expired, or when it was taken on this host by a process that
/// no longer exists (a run killed with -9 must not block the next one for an hour).
fn lease_is_stale(h: &LeaseInfo) -> bool {
    if h.expires_at < Utc::now() {
        return true;
    }
    if h.host == hostname() && cfg!(target_os = "linux") {
        let alive = std::path::Path::new(&format!("/proc/{}", h.pid)).exists();
        return !alive;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::local::LocalFileSystem;

    fn store(dir: &std::path::Path) -> StateStore {
        let fs = LocalFileSystem::new_with_prefix(dir).unwrap();
        StateStore::new(Arc::new(fs), &StorePath::from("stage"), "file:///x/stage")
    }

    #[tokio::test]
    async fn state_round_trips_and_starts_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        let empty = s.load("p", None).await.unwrap();
        assert!(empty.streams.is_empty());
        let mut st = empty.clone();
        st.streams.insert(
            "pull_request".into(),
            StreamState {
                committed_at: Utc::now(),
                batch_id: "b".into(),
                cursor: serde_json::json!({"acme/w": "2026-01-01T00:00:00Z"}),
            },
        );
        s.save("p", None, &st).await.unwrap();
        assert_eq!(s.load("p", None).await.unwrap(), st);
        // Shards keep separate documents.
        let sh = Some(Shard { index: 1, count: 2 });
        assert!(s.load("p", sh).await.unwrap().streams.is_empty());
        assert!(tmp.path().join("stage/_state/p.json").exists());
    }

    #[tokio::test]
    async fn second_lease_is_refused_until_released() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        let ttl = Duration::from_secs(60);
        let l1 = s.acquire_lease("p", None, ttl, None).await.unwrap();
        let err = match s.acquire_lease("p", None, ttl, None).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("second lease must fail"),
        };
        assert!(err.contains("already running"), "{err}");
        l1.release().await;
        let l2 = s.acquire_lease("p", None, ttl, None).await.unwrap();
        l2.release().await;
    }

    #[tokio::test]
    async fn a_lease_dropped_unreleased_is_removed_so_the_next_run_may_start() {
        // What `serve` sees after a run panicked with its lease held: the process lives
        // on, so the lease is not stale by its pid, and only its removal lets the
        // pipeline's next run start before the TTL.
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        let ttl = Duration::from_secs(3600);
        let held = s.acquire_lease("p", None, ttl, None).await.unwrap();
        let run = tokio::spawn(async move {
            let _lease = held;
            panic!("a run panicked");
        });
        assert!(run.await.unwrap_err().is_panic());
        let again = s
            .acquire_lease("p", None, ttl, Some(Duration::from_secs(5)))
            .await
            .unwrap();
        again.release().await;
    }

    #[test]
    fn a_lease_ttl_past_any_date_is_capped() {
        let now = Utc::now();
        let far = lease_expiry(now, Duration::from_secs(9_000_000_000_000));
        assert_eq!(far, now + chrono::Duration::days(365));
        let t = lease_expiry(now, Duration::from_secs(60));
        assert_eq!(t, now + chrono::Duration::seconds(60));
    }

    #[tokio::test]
    async fn lease_of_a_dead_process_is_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        let dead = LeaseInfo {
            owner: "x".into(),
            host: hostname(),
            pid: u32::MAX - 7,
            acquired_at: Utc::now(),
            expires_at: Utc::now() + chrono::Duration::hours(1),
        };
        std::fs::create_dir_all(tmp.path().join("stage/_state")).unwrap();
        std::fs::write(
            tmp.path().join("stage/_state/p.lease"),
            serde_json::to_vec(&dead).unwrap(),
        )
        .unwrap();
        let l = s
            .acquire_lease("p", None, Duration::from_secs(60), None)
            .await
            .unwrap();
        l.release().await;
    }

    #[test]
    fn corrupt_state_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("stage/_state")).unwrap();
        std::fs::write(tmp.path().join("stage/_state/p.json"), b"{not json").unwrap();
        let s = store(tmp.path());
        let rt = tokio::runtime::Runtime::new().unwrap();
        let err = rt.block_on(s.load("p", None)).unwrap_err().to_string();
        assert!(
            err.contains("p.json") && err.contains("state reset"),
            "{err}"
        );
    }
}
