//! store: durable storage. The embedded backend keeps everything in one DuckDB file:
//! the append-only `events` table, the collapsing `sessions` table (each change of a visit
//! is written as −1 for its old state and +1 for its new one, the layout ClickHouse's
//! `VersionedCollapsingMergeTree` uses), and metadata (sites, salts); and the commit log
//! (`log`): append-only, checksummed segment files that ingest waits on before it answers.
//!
//! DuckDB connections are blocking; callers run them on a dedicated thread or in
//! `spawn_blocking`.

pub mod duckdb;
mod error;
pub mod log;

pub use crate::duckdb::{DuckStore, SessionRecord, UserRow};
pub use error::StoreError;
pub use log::{Log, LogError, LogOptions, LogPosition, SegmentLog};
