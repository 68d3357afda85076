//! store: durable storage. The embedded backend keeps everything in one DuckDB file:
//! the append-only `events` table (a hot tier in arrival order and an archive sorted by site
//! and time, behind one view), the collapsing `sessions` table (each change of a visit
//! is written as −1 for its old state and +1 for its new one, the layout ClickHouse's
//! `VersionedCollapsingMergeTree` uses), and metadata (sites, salts); and the commit log
//! (`log`): append-only, checksummed segment files that ingest waits on before it answers.
//!
//! The server depends on the seams — [`Log`], [`EventStore`], [`MetadataStore`] — and
//! opens the embedded backend with [`duckdb::open`]; only this crate names DuckDB.
//!
//! Stores are blocking; callers run them on a dedicated thread or in `spawn_blocking`.

pub mod clickhouse;
pub mod duckdb;
mod error;
pub mod event_store;
pub mod log;
pub mod metadata;
pub mod postgres;
mod reach;
pub mod redis;

pub use crate::clickhouse::ChStore;
pub use crate::duckdb::{open as open_embedded, DuckStore};
pub use crate::postgres::PgStore;
pub use crate::redis::RedisLog;
pub use error::StoreError;
pub use event_store::{Compacted, EventStore, QueryRow, RebuildProgress};
pub use log::{Log, LogError, LogOptions, LogPosition, SegmentLog};
pub use metadata::{ApiKeyRow, MetadataStore, SessionRecord, Site, UserRow};

/// A backend's stores, as the server uses them.
pub struct Stores {
    pub events: Box<dyn EventStore>,
    pub metadata: Box<dyn MetadataStore>,
}
