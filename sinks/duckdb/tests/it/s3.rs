//! Staged files on S3 (moto): downloaded through object_store, then loaded.
//! Needs FLOWCTL_TEST_S3_ENDPOINT (e.g. from scripts/emulators/moto.sh).

use crate::common;

use common::*;
use flowctl_core::object_store::path::Path as StorePath;
use flowctl_core::object_store::{ObjectStoreExt, PutPayload};
use flowctl_core::{StagedFile, StagingLocation, WarehouseLoader};
use flowctl_testkit::{emulator, moto_staging};

async fn upload(loc: &StagingLocation, rel: String, rows: &[Row<'_>]) -> StagedFile {
    let bytes = parquet_bytes(&batch(rows, false));
    let path = StorePath::parse(format!("{}/{rel}", loc.root)).unwrap();
    loc.store
        .put(&path, PutPayload::from(bytes.clone()))
        .await
        .unwrap();
    StagedFile {
        uri: format!("{}{rel}", loc.root_uri),
        relative_path: rel,
        rows: rows.len() as u64,
        bytes: bytes.len() as u64,
    }
}

#[tokio::test]
async fn loads_staged_files_from_s3_on_moto() {
    let Some(endpoint) = emulator("FLOWCTL_TEST_S3_ENDPOINT") else {
        return;
    };
    let bucket = format!("duckdb-load-{}", std::process::id());
    let loc = moto_staging(&endpoint, &bucket, "github");
    let dir = tempfile::tempdir().unwrap();
    let loader = loader(dir.path());
    let t = table(false);
    loader.ensure_table(&t).await.unwrap();
    // The same file name in two partitions: downloads must not overwrite each other.
    let other_org = relative("part-0").replace("org=acme", "org=beta");
    let files = vec![
        upload(&loc, relative("part-0"), &[(1, "one", T1), (2, "two", T1)]).await,
        upload(&loc, other_org, &[(2, "two!", T2), (3, "three", T1)]).await,
    ];
    let stats = loader.load(&t, &files, &loc).await.unwrap();
    assert_eq!(
        (stats.rows_loaded, stats.inserted, stats.updated),
        (4, 3, 0)
    );
    assert_eq!(rows(&loader).await, ["1|one", "2|two!", "3|three"]);
    let again = loader.load(&t, &files, &loc).await.unwrap();
    assert_eq!((again.inserted, again.updated), (0, 0));

    let mut missing = files[0].clone();
    missing.relative_path = relative("nope");
    missing.uri = format!("{}{}", loc.root_uri, missing.relative_path);
    let err = loader
        .load(&t, &[missing], &loc)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nope.parquet") && err.contains(&bucket),
        "{err}"
    );
}
