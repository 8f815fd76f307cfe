//! GitHub pulls page JSON → Arrow: any body must give a batch (with one row per item) or
//! an error, never a panic; with and without `_RAW`.
#![no_main]

use flowctl_github::rows::BatchCtx;
use flowctl_github::streams::pulls::pulls_page_to_batch;
use flowctl_core::arrow::array::StringArray;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for include_raw in [false, true] {
        let ctx = BatchCtx {
            include_raw,
            include_patch: false,
        };
        if let Ok(batch) = pulls_page_to_batch(data, "org", "repo", &ctx) {
            // RawValue, not Value: a lone surrogate escape (`\udc00`) in a field we do not
            // type is syntactically valid JSON and is kept verbatim, by policy.
            let items: Vec<&serde_json::value::RawValue> =
                serde_json::from_slice(data).expect("accepted body must be a JSON list");
            assert_eq!(batch.num_rows(), items.len());
            if include_raw {
                // `_RAW` is each item's own text, exactly (the one-pass reader cuts it
                // from the page by byte offsets).
                let raw = batch
                    .column_by_name("_RAW")
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                    .expect("_RAW is a string column");
                for (i, item) in items.iter().enumerate() {
                    assert_eq!(raw.value(i), item.get());
                }
            }
        }
    }
});
