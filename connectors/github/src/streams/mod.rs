//! One module per stream: the serde shapes of its GitHub answers, its Arrow row
//! builder, and how a repository's rows are read. Shared pieces live in [`crate::rows`]
//! (row building), [`crate::run`] (the run's context) and [`crate::pager`] (paging).

pub mod commit_files;
pub mod commits;
pub mod deployments;
pub mod pulls;
pub mod repos;
pub mod reviews;
