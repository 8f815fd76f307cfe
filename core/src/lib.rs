//! flowctl-core: the plugin contract every source, staging sink and warehouse loader
//! implements, the registry that collects them (`inventory`), the spec model and its
//! validation, secrets, the state store and the run engine.
//!
//! Adding a plugin never touches this crate: a plugin crate implements one of the traits
//! in [`plugin`] and registers itself with `inventory::submit!`. A source that only yields
//! its rows implements [`simple::SimpleSource`] and leaves the rest of the contract to core.

pub mod check;
pub mod engine;
pub mod error;
mod error_chain;
pub mod meta;
pub mod plugin;
pub mod progress;
pub mod retry;
pub mod secret;
mod secret_resolve;
pub mod simple;
pub mod spec;
pub mod state;
pub use error_chain::error_chain;
pub use secret_resolve::expand_home;

pub use error::{PluginError, Result};
pub use plugin::*;

// Re-exported so plugin crates register against the same `inventory` and arrow versions.
pub use arrow;
pub use async_trait::async_trait;
pub use inventory;
pub use object_store;
pub use schemars;
