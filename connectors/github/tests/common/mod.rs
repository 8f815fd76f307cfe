//! Shared by the source's test files: one run of the real source, every batch kept as
//! the engine stages it.

use flowctl_core::meta::{stage_batch, RunColumns};
use flowctl_core::progress::{Progress, ProgressEvent, ProgressSink};
use flowctl_core::{ReadOutcome, ReadRequest, Result, Shard, Source, TaggedBatch};
use flowctl_github::{GithubConfig, GithubSource};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Reads `streams` once with `state`, collecting the batches the source sends while it
/// runs (the channel is drained concurrently, as the engine does), each with the run's
/// constant columns the engine adds, in the table's column order.
pub async fn run_source(
    cfg: GithubConfig,
    streams: &[&str],
    state: BTreeMap<String, Value>,
    shard: Option<Shard>,
    progress: Progress,
) -> (Result<ReadOutcome>, Vec<TaggedBatch>) {
    let src = GithubSource::from_config(cfg).unwrap();
    let (tx, mut rx) = flowctl_core::batch_channel(8);
    let collector = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(b) = rx.recv().await {
            v.push(b);
        }
        v
    });
    let req = ReadRequest {
        streams: streams.iter().map(|s| s.to_string()).collect(),
        state,
        batch_id: "00000000-0000-4000-8000-000000000001".into(),
        ingested_at: chrono::Utc::now(),
        only_partitions: vec![],
        shard,
        progress,
    };
    let (ingested_at, batch_id) = (req.ingested_at, req.batch_id.clone());
    let result = src.read(req, tx).await;
    let infos = src.all_streams();
    let staged = collector
        .await
        .unwrap()
        .into_iter()
        .map(|tb| {
            let info = infos.iter().find(|i| i.name == tb.stream).unwrap();
            let run = RunColumns {
                ingested_at,
                batch_id: &batch_id,
                partition: &tb.partition,
            };
            let batch = stage_batch(&tb.stream, &info.schema, &tb.batch, &run).unwrap();
            TaggedBatch { batch, ..tb }
        })
        .collect();
    (result, staged)
}

/// Every progress event of a read, for assertions on its warnings and waits.
#[derive(Default)]
pub struct Events(pub Mutex<Vec<ProgressEvent>>);

impl ProgressSink for Events {
    fn event(&self, e: ProgressEvent) {
        self.0.lock().unwrap().push(e);
    }
}

impl Events {
    pub fn warnings(&self) -> Vec<String> {
        self.collect(|e| match e {
            ProgressEvent::Warning { message, .. } => Some(message.clone()),
            _ => None,
        })
    }

    pub fn waits(&self) -> Vec<String> {
        self.collect(|e| match e {
            ProgressEvent::RateLimitWait { reason, .. } => Some(reason.clone()),
            _ => None,
        })
    }

    pub fn count(&self, f: impl Fn(&ProgressEvent) -> bool) -> usize {
        self.0.lock().unwrap().iter().filter(|e| f(e)).count()
    }

    fn collect(&self, f: impl Fn(&ProgressEvent) -> Option<String>) -> Vec<String> {
        self.0.lock().unwrap().iter().filter_map(f).collect()
    }
}
