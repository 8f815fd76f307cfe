//! flowctl source `inline`: the rows written in the spec, into one table `ITEM`.

use flowctl_core::arrow::datatypes::DataType;
use flowctl_core::schemars::JsonSchema;
use flowctl_core::simple::{Rows, SimpleSource, SourceConfig, Table};
use flowctl_core::{async_trait, Result, SourceRegistration};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The spec's `source:` block (each doc comment becomes the schema's description).
#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "flowctl_core::schemars")]
#[serde(deny_unknown_fields)]
pub struct InlineConfig {
    /// The rows to load, each with an `id` and a `name`.
    pub rows: Vec<Map<String, Value>>,
}

impl SourceConfig for InlineConfig {}

pub struct InlineSource(InlineConfig);

impl From<InlineConfig> for InlineSource {
    fn from(config: InlineConfig) -> Self {
        InlineSource(config)
    }
}

const ITEM: &[(&str, DataType)] = &[("id", DataType::Int64), ("name", DataType::Utf8)];

#[async_trait]
impl SimpleSource for InlineSource {
    fn tables(&self) -> Vec<Table> {
        vec![Table::new("item", ITEM).key(&["id"])]
    }

    async fn rows(&self, out: &mut Rows<'_>) -> Result<Option<Value>> {
        for row in &self.0.rows {
            out.push(row.clone()).await?;
        }
        Ok(None)
    }
}

flowctl_core::inventory::submit! {
    SourceRegistration::of::<InlineConfig, InlineSource>("inline", "Rows written in the spec")
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_rows_of_the_spec() {
        let reg = flowctl_core::find_source("inline").expect("registered");
        let cfg = serde_json::json!({"rows": [{"id": 1, "name": "one"}, {"id": 2}]});
        let source = (reg.build)(cfg).expect("valid config");
        let (batches, _) = flowctl_core::simple::read_all(source.as_ref(), &["item"]).unwrap();
        assert_eq!(batches.iter().map(|b| b.batch.num_rows()).sum::<usize>(), 2);
        assert!((reg.check)(serde_json::json!({"rows": 1})).is_err());
    }
}
