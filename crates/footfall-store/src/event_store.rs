//! The event store seam: where committed records end up and where reports are read from.
//! Embedded: DuckDB (`crate::duckdb`). The cluster's ClickHouse backend implements the
//! same trait; nothing outside a backend names its engine.

use crate::log::LogPosition;
use crate::StoreError;
use footfall_core::live::Counters;
use footfall_core::query::plan::{Dialect, SqlQuery};
use footfall_core::record::CommitRecord;
use footfall_core::SiteId;

/// One result row of a planned query: dimension values as text, then numbers.
pub type QueryRow = (Vec<String>, Vec<Option<f64>>);

/// Progress of a counter rebuild, reported after each chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildProgress {
    /// Events processed so far.
    pub done: u64,
    pub total: u64,
    pub chunks: u64,
}

/// What one compaction step moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compacted {
    /// The first instant (unix ms) of the UTC day moved.
    pub day_start: i64,
    pub events: u64,
    pub session_rows: u64,
    /// Rollup rows rewritten in key order (instead of a day moved).
    pub rollup_rows: u64,
}

pub trait EventStore: Send {
    /// The last log position whose records are stored, and the base for event ids (ids
    /// written before the log existed stay below it).
    fn applied(&self) -> Result<(LogPosition, u64), StoreError>;

    /// Stores every record after the applied position, atomically with the new position:
    /// records at or before it are skipped, so applying again is harmless, and a crash at
    /// any point leaves either all of a call's records or none.
    fn apply(&mut self, records: &[(LogPosition, CommitRecord)])
        -> Result<LogPosition, StoreError>;

    /// Forgets what this connection believes is applied, so the next `apply` checks the
    /// store again (and cleans up after a writer that died meanwhile). A cluster applier
    /// calls it whenever it (re)takes its partition: another node may have written since.
    fn forget_applied(&mut self) {}

    /// The writer's exclusive hold on its partition lasts until `until` (a cluster
    /// applier's lease, renewed): a long step that cannot be undone — a rollup fold's or
    /// rebuild's swap — is not started after it.
    fn hold_until(&mut self, _until: std::time::Instant) {}

    /// The SQL dialect queries for this store are planned in.
    fn dialect(&self) -> &'static dyn Dialect;

    fn run_query(&self, q: &SqlQuery) -> Result<Vec<QueryRow>, StoreError>;

    /// Recomputes the live counters from stored events, in chunks, resuming an interrupted
    /// rebuild. `progress` returning false stops with `Interrupted`.
    fn rebuild_counters(
        &self,
        chunk_size: u64,
        progress: &mut dyn FnMut(RebuildProgress) -> bool,
    ) -> Result<Counters, StoreError>;

    /// Sites whose rollups are missing, unfinished, or kept in another time zone than the
    /// site's own now: each needs [`rebuild_rollups`](Self::rebuild_rollups).
    fn stale_rollups(&self) -> Result<Vec<SiteId>, StoreError>;

    /// The time zone a site's rollups are complete in (None: not usable; read raw rows).
    fn rollup_zone(&self, site: &SiteId) -> Result<Option<String>, StoreError>;

    /// Recomputes a site's rollups from its raw rows in chunks of days, resuming an
    /// interrupted rebuild; `progress` (days) returning false stops with `Interrupted`.
    fn rebuild_rollups(
        &mut self,
        site: &SiteId,
        progress: &mut dyn FnMut(RebuildProgress) -> bool,
    ) -> Result<(), StoreError>;

    /// Stops keeping rollups on this connection and marks every site's as stale, so reports
    /// read raw rows and a later start with rollups rebuilds them.
    fn stop_rollups(&mut self) -> Result<(), StoreError>;

    /// Reorganises one closed day of raw rows (before `cutoff`, unix ms) so that reports
    /// on one site and range read less; `None` when nothing before the cutoff is left.
    /// Invisible in every answer. Backends that order rows themselves do nothing.
    fn compact(&mut self, cutoff: i64) -> Result<Option<Compacted>, StoreError>;

    /// Makes what is stored durable in the store's own files (at shutdown).
    fn checkpoint(&self) -> Result<(), StoreError>;

    /// Another connection to the same store, for another thread.
    fn connect(&self) -> Result<Box<dyn EventStore>, StoreError>;
}
