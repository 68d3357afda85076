//! The embedded DuckDB backend.

mod accounts;
mod append;
mod meta;
mod query;
mod rebuild;
mod schema;

pub use accounts::{SessionRecord, UserRow};
pub use meta::{ApiKeyRow, Site};
pub use query::QueryRow;
pub use rebuild::RebuildProgress;

use crate::StoreError;
use ::duckdb::Connection;
use std::path::{Path, PathBuf};

/// One DuckDB database file. Each `DuckStore` is one connection; `try_clone` gives another
/// connection to the same database for use on another thread.
pub struct DuckStore {
    conn: Connection,
    path: PathBuf,
}

pub const DB_FILE: &str = "footfall.duckdb";

impl DuckStore {
    /// Opens (creating if needed) the database in `data_dir` and applies migrations.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(data_dir, None)
    }

    /// As [`open`](Self::open), capping DuckDB's memory (its buffer cache defaults to 80 %
    /// of RAM) at e.g. `"512MB"`; beyond it DuckDB spills to disk.
    pub fn open_with(data_dir: &Path, memory_limit: Option<&str>) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(DB_FILE);
        let mut config = ::duckdb::Config::default();
        if let Some(limit) = memory_limit {
            config = config.max_memory(limit)?;
        }
        let conn = Connection::open_with_flags(&path, config)?;
        // DuckDB folds its WAL into the file (compressing new rows) every 16 MB by default.
        // The storage applier appends a few thousand rows per transaction, so at that
        // threshold each row group was decompressed and recompressed several times as it
        // filled; larger checkpoints compress each row group about once.
        conn.execute_batch("SET checkpoint_threshold = '256MB'")?;
        let store = DuckStore { conn, path };
        schema::migrate(&store.conn)?;
        Ok(store)
    }

    pub fn try_clone(&self) -> Result<Self, StoreError> {
        Ok(DuckStore {
            conn: self.conn.try_clone()?,
            path: self.path.clone(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn schema_version(&self) -> Result<i64, StoreError> {
        schema::current_version(&self.conn)
    }

    /// Forces a checkpoint so the WAL is folded into the database file (on shutdown).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn.execute_batch("CHECKPOINT")?;
        Ok(())
    }
}
