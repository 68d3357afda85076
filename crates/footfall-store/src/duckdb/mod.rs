//! The embedded DuckDB backend.

mod accounts;
mod append;
mod compact;
mod export;
mod meta;
mod query;
mod rebuild;
mod rollups;
mod schema;

use crate::event_store::{Compacted, EventStore, QueryRow, RebuildProgress};
use crate::log::LogPosition;
use crate::metadata::{ApiKeyRow, MetadataStore, SessionRecord, Site, UserRow};
use crate::StoreError;
use ::duckdb::Connection;
use footfall_core::live::Counters;
use footfall_core::query::plan::{Dialect, DuckDb, SqlQuery};
use footfall_core::record::CommitRecord;
use footfall_core::SiteId;
use std::path::{Path, PathBuf};

/// One DuckDB database file. Each `DuckStore` is one connection; `try_clone` gives another
/// connection to the same database for use on another thread.
pub struct DuckStore {
    conn: Connection,
    path: PathBuf,
    /// What keeping rollups on write remembers (used by the connection that applies
    /// records).
    rollups: rollups::Keeping,
    keep_rollups: bool,
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
        let store = DuckStore {
            conn,
            path,
            rollups: Default::default(),
            keep_rollups: true,
        };
        schema::migrate(&store.conn)?;
        Ok(store)
    }

    pub fn try_clone(&self) -> Result<Self, StoreError> {
        Ok(DuckStore {
            conn: self.conn.try_clone()?,
            path: self.path.clone(),
            rollups: Default::default(),
            keep_rollups: true,
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

static DIALECT: DuckDb = DuckDb;

impl EventStore for DuckStore {
    fn applied(&self) -> Result<(LogPosition, u64), StoreError> {
        DuckStore::applied(self)
    }

    fn apply(
        &mut self,
        records: &[(LogPosition, CommitRecord)],
    ) -> Result<LogPosition, StoreError> {
        self.apply_records(records)
    }

    fn dialect(&self) -> &'static dyn Dialect {
        &DIALECT
    }

    fn run_query(&self, q: &SqlQuery) -> Result<Vec<QueryRow>, StoreError> {
        DuckStore::run_query(self, q)
    }

    fn rebuild_counters(
        &self,
        chunk_size: u64,
        progress: &mut dyn FnMut(RebuildProgress) -> bool,
    ) -> Result<Counters, StoreError> {
        DuckStore::rebuild_counters(self, chunk_size, progress)
    }

    fn stale_rollups(&self) -> Result<Vec<SiteId>, StoreError> {
        DuckStore::stale_rollups(self)
    }

    fn rollup_zone(&self, site: &SiteId) -> Result<Option<String>, StoreError> {
        DuckStore::rollup_zone(self, site)
    }

    fn rebuild_rollups(
        &mut self,
        site: &SiteId,
        progress: &mut dyn FnMut(RebuildProgress) -> bool,
    ) -> Result<(), StoreError> {
        DuckStore::rebuild_rollups(self, site, progress)
    }

    fn compact(&mut self, cutoff: i64) -> Result<Option<Compacted>, StoreError> {
        DuckStore::compact(self, cutoff)
    }

    fn stop_rollups(&mut self) -> Result<(), StoreError> {
        self.keep_rollups = false;
        self.conn.execute_batch("DELETE FROM rollup_sites")?;
        Ok(())
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        DuckStore::checkpoint(self)
    }

    fn connect(&self) -> Result<Box<dyn EventStore>, StoreError> {
        Ok(Box::new(self.try_clone()?))
    }
}

impl MetadataStore for DuckStore {
    fn add_site(&self, site: &SiteId, public: bool, now_ms: i64) -> Result<bool, StoreError> {
        DuckStore::add_site(self, site, public, now_ms)
    }

    fn sites(&self) -> Result<Vec<Site>, StoreError> {
        DuckStore::sites(self)
    }

    fn set_site_timezone(&self, site: &SiteId, timezone: &str) -> Result<(), StoreError> {
        DuckStore::set_site_timezone(self, site, timezone)
    }

    fn set_share_token(&self, site: &SiteId, token: Option<&str>) -> Result<(), StoreError> {
        DuckStore::set_share_token(self, site, token)
    }

    fn set_openpanel_client_id(&self, site: &SiteId, id: Option<&str>) -> Result<(), StoreError> {
        DuckStore::set_openpanel_client_id(self, site, id)
    }

    fn put_goal(
        &self,
        site: &SiteId,
        goal: &footfall_core::goal::Goal,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        DuckStore::put_goal(self, site, goal, now_ms)
    }

    fn goals(&self, site: &SiteId) -> Result<Vec<footfall_core::goal::Goal>, StoreError> {
        DuckStore::goals(self, site)
    }

    fn delete_goal(&self, site: &SiteId, name: &str) -> Result<bool, StoreError> {
        DuckStore::delete_goal(self, site, name)
    }

    fn put_funnel(
        &self,
        site: &SiteId,
        funnel: &footfall_core::goal::Funnel,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.put_spec(
            crate::metadata::Specs::Funnels,
            site,
            &funnel.name,
            funnel,
            now_ms,
        )
    }

    fn funnels(&self, site: &SiteId) -> Result<Vec<footfall_core::goal::Funnel>, StoreError> {
        self.specs(crate::metadata::Specs::Funnels, site)
    }

    fn delete_funnel(&self, site: &SiteId, name: &str) -> Result<bool, StoreError> {
        self.delete_spec(crate::metadata::Specs::Funnels, site, name)
    }

    fn put_segment(
        &self,
        site: &SiteId,
        segment: &footfall_core::segment::Segment,
        now_ms: i64,
    ) -> Result<Option<bool>, StoreError> {
        // One connection writes this file, and the registry calls under its lock: reading
        // the owner first is the same step.
        let current: Vec<footfall_core::segment::Segment> =
            self.specs(crate::metadata::Specs::Segments, site)?;
        if current
            .iter()
            .any(|s| s.name == segment.name && s.owner != segment.owner)
        {
            return Ok(None);
        }
        self.put_spec(
            crate::metadata::Specs::Segments,
            site,
            &segment.name,
            segment,
            now_ms,
        )
        .map(Some)
    }

    fn segments(&self, site: &SiteId) -> Result<Vec<footfall_core::segment::Segment>, StoreError> {
        self.specs(crate::metadata::Specs::Segments, site)
    }

    fn delete_segment(&self, site: &SiteId, name: &str) -> Result<bool, StoreError> {
        self.delete_spec(crate::metadata::Specs::Segments, site, name)
    }

    fn set_catalogue(
        &self,
        site: &SiteId,
        entries: &[footfall_core::catalogue::Entry],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let spec = crate::metadata::spec_json("catalogue", &entries)?;
        let tx = self.conn.unchecked_transaction()?;
        let updated = tx.execute(
            "UPDATE catalogues SET spec = ?, revision = revision + 1, updated_at = ? WHERE site = ?",
            ::duckdb::params![spec, now_ms, site.as_str()],
        )?;
        if updated == 0 {
            tx.execute(
                "INSERT INTO catalogues (site, spec, revision, updated_at) VALUES (?, ?, 1, ?)",
                ::duckdb::params![site.as_str(), spec, now_ms],
            )?;
        }
        let revision: i64 = tx.query_row(
            "SELECT revision FROM catalogues WHERE site = ?",
            [site.as_str()],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(u64::try_from(revision).unwrap_or(0))
    }

    fn catalogue(&self, site: &SiteId) -> Result<footfall_core::catalogue::Catalogue, StoreError> {
        let row: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT revision, spec FROM catalogues WHERE site = ?",
                [site.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map(Some)
            .or_else(|e| match e {
                ::duckdb::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        Ok(crate::metadata::stored_catalogue(site, row))
    }

    fn rotate_salts(&self, day: i64, fresh: &str) -> Result<(String, Option<String>), StoreError> {
        DuckStore::rotate_salts(self, day, || fresh.to_string())
    }

    fn salt_days(&self) -> Result<Vec<i64>, StoreError> {
        DuckStore::salt_days(self)
    }

    fn create_api_key(
        &self,
        id: &str,
        hash: &str,
        sites: &[SiteId],
        scopes: &[String],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        DuckStore::create_api_key(self, id, hash, sites, scopes, now_ms)
    }

    fn revoke_api_key(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        DuckStore::revoke_api_key(self, id, now_ms)
    }

    fn api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        DuckStore::api_keys(self)
    }

    fn put_user(
        &self,
        username: &str,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        DuckStore::put_user(self, username, password_hash, now_ms)
    }

    fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        DuckStore::users(self)
    }

    fn delete_user_sessions(&self, username: &str) -> Result<(), StoreError> {
        DuckStore::delete_user_sessions(self, username)
    }

    fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        DuckStore::delete_user(self, username)
    }

    fn put_session(&self, s: &SessionRecord, now_ms: i64) -> Result<(), StoreError> {
        DuckStore::put_session(self, s, now_ms)
    }

    fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        DuckStore::delete_session(self, token_hash)
    }

    fn live_sessions(&self, now_ms: i64) -> Result<Vec<SessionRecord>, StoreError> {
        DuckStore::live_sessions(self, now_ms)
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        DuckStore::checkpoint(self)
    }

    fn connect(&self) -> Result<Box<dyn MetadataStore>, StoreError> {
        Ok(Box::new(self.try_clone()?))
    }
}

/// The embedded backend's stores, opened on one DuckDB file in `data_dir`.
pub fn open(data_dir: &Path, memory_limit: Option<&str>) -> Result<crate::Stores, StoreError> {
    let store = DuckStore::open_with(data_dir, memory_limit)?;
    Ok(crate::Stores {
        metadata: Box::new(store.try_clone()?),
        events: Box::new(store),
    })
}
