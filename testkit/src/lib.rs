//! Test support for flowctl's crates (a dev-dependency only): emulator endpoints, buckets
//! on moto, a recording HTTP server, and with the `e2e` feature pipelines in a temp dir,
//! runs of the `flowctl` binary and queries of their DuckDB warehouse. The GitHub stand-in
//! lives beside it in `testkit/github-standin/`.

pub mod buckets;
pub mod emulators;
pub mod http;
#[cfg(feature = "e2e")]
pub mod run;
#[cfg(feature = "e2e")]
pub mod specs;
#[cfg(feature = "e2e")]
pub mod warehouse;

pub use buckets::*;
pub use emulators::*;
pub use http::*;
#[cfg(feature = "e2e")]
pub use run::*;
#[cfg(feature = "e2e")]
pub use specs::*;
#[cfg(feature = "e2e")]
pub use warehouse::*;
