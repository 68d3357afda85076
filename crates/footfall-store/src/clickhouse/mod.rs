//! The cluster's event store: ClickHouse over its HTTP interface.
//!
//! ClickHouse has no transactions across statements or tables, so "stored exactly once"
//! rests on the log position every row carries. A chunk of records is written as: events,
//! then visit rows, then its rollup rows (see `rollups.rs`), then one `log_applied` row
//! naming the chunk's last position. An applier
//! resumes after the highest `log_applied` position of its partition, and before its first
//! write removes any row of that partition beyond it — what an applier that died between
//! two of the inserts left behind. So a flush that dies at any point (before, during or
//! after an insert) is redone once, whole, by whoever applies the partition next.
//!
//! One applier writes a log partition at a time (the cluster's lease sees to that); many
//! partitions share the tables.

mod fold;
mod http;
mod import;
mod rebuild;
mod rollups;
mod rows;
mod schema;

use crate::event_store::{Compacted, EventStore, QueryRow, RebuildProgress};
use crate::log::LogPosition;
use crate::StoreError;
use footfall_core::live::Counters;
use footfall_core::query::plan::{ClickHouse, Dialect, SqlQuery};
use footfall_core::record::CommitRecord;
use footfall_core::SiteId;
use http::Http;
use std::time::{Duration, Instant};

pub use fold::{statements as fold_statements, Statements as FoldStatements};
pub use import::{MIGRATED_EVENTS, MIGRATED_ROLLUPS, MIGRATED_SOURCE, MIGRATED_VISITS};
pub use rebuild::{statements as rebuild_statements, Tables as RebuildTables};
pub use rollups::Zones;
pub use schema::{statements as schema_statements, VERSION as SCHEMA_VERSION};

/// A planned query as the statement this store sends: values written in as literals.
pub fn literal_sql(q: &SqlQuery) -> Result<String, StoreError> {
    http::render(&q.sql, &q.params)
}

/// Where a flush stops, for tests of what a crash at that point leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushStage {
    /// After the events were inserted, before the visit rows.
    AfterEvents,
    /// After the visit rows, before the rollup rows.
    AfterSessions,
    /// After the rollup rows, before the chunk was marked applied.
    AfterRollups,
    /// After the chunk was marked applied, before `apply` returned.
    AfterMarker,
    /// In a rollup fold after the chunk: after the folded rows were staged, before the swap.
    FoldStaged,
    /// In a rollup fold: after the swap, before the staging partition was cleared.
    FoldReplaced,
    /// In a rollup rebuild: after the rebuilt rows were staged, before the swap.
    RebuildStaged,
    /// In a rollup rebuild: after the swap, before the site was marked complete.
    RebuildSwapped,
}

/// One connection's view of the store, applying one log partition.
pub struct ChStore {
    http: Http,
    database: String,
    part: u16,
    /// The partition's applied position once this connection has checked that nothing
    /// beyond it is stored (None: check before the next write).
    applied: Option<u64>,
    /// The partition's `id_base`, read with `applied`.
    id_base: u64,
    fail_at: Option<FlushStage>,
    /// Where the sites' time zones come from; None: no rollups are kept by this connection.
    zones: Option<Zones>,
    keeping: rollups::Keeping,
    folding: fold::Folding,
    /// When this writer's exclusive hold on the partition ends (see `hold_until`).
    hold_until: Option<Instant>,
}

/// A partition's rollup rows are folded once there are this many (and twice as many as
/// the last fold left); see `fold.rs`. A fold of this many rows takes tens of
/// milliseconds; summing them at every read would cost more.
pub const FOLD_MIN_ROWS: u64 = 10_000;

static DIALECT: ClickHouse = ClickHouse;

/// The test hook of a fold or rebuild: stops it (as a dying applier would) at `stage` if
/// that is where the hook is set, once.
fn test_stop(hook: &mut Option<FlushStage>, stage: FlushStage) -> Result<(), StoreError> {
    if *hook == Some(stage) {
        *hook = None;
        return Err(StoreError::Unavailable(format!(
            "stopped {stage:?} (test hook)"
        )));
    }
    Ok(())
}

/// How long a cleanup waits for ClickHouse to finish deleting a half-written chunk.
const MUTATION_WAIT: Duration = Duration::from_secs(120);

impl ChStore {
    /// Connects to `database` on the server at `url` (created with its tables if missing),
    /// to apply log partition `part`.
    pub fn open(url: &str, database: &str, part: u16) -> Result<ChStore, StoreError> {
        let http = Http::new(url, database)?;
        schema::migrate(&http, database)?;
        Ok(ChStore {
            http,
            database: database.to_string(),
            part,
            applied: None,
            id_base: 0,
            fail_at: None,
            zones: None,
            keeping: rollups::Keeping::default(),
            folding: fold::Folding::new(FOLD_MIN_ROWS),
            hold_until: None,
        })
    }

    /// Folds this partition's rollup rows once it has `min_rows` of them (and twice as
    /// many as the last fold left) instead of [`FOLD_MIN_ROWS`].
    pub fn fold_rollups_at(&mut self, min_rows: u64) {
        self.folding = fold::Folding::new(min_rows);
    }

    /// Keeps rollups while applying, in each site's zone as `zones` gives it (the metadata
    /// store's). Every applier of a cluster must do so, or none.
    pub fn keep_rollups(&mut self, zones: Zones) {
        self.zones = Some(zones);
        self.keeping.clear();
    }

    /// The applied position of every partition that has one (for a read barrier that
    /// waits until storage holds what the logs held).
    pub fn applied_positions(&self) -> Result<std::collections::HashMap<u16, u64>, StoreError> {
        let mut out = std::collections::HashMap::new();
        for row in self
            .http
            .rows("SELECT log_part, max(position) FROM log_applied GROUP BY log_part")?
        {
            let (Some(Some(p)), Some(Some(v))) = (row.first(), row.get(1)) else {
                continue;
            };
            let (Ok(p), Ok(v)) = (p.parse::<u16>(), v.parse::<u64>()) else {
                return Err(StoreError::Corrupt(format!("log_applied row {row:?}")));
            };
            out.insert(p, v);
        }
        Ok(out)
    }

    /// Test hook: the next flush stops with an error at `stage`, leaving what a process
    /// killed there would leave.
    pub fn fail_at(&mut self, stage: Option<FlushStage>) {
        self.fail_at = stage;
    }

    fn marker(&self) -> Result<(u64, u64), StoreError> {
        let rows = self.http.rows(&format!(
            "SELECT position, id_base FROM log_applied WHERE log_part = {} ORDER BY position DESC LIMIT 1",
            self.part
        ))?;
        let field = |i: usize| -> Result<u64, StoreError> {
            rows.first()
                .and_then(|r| r.get(i).cloned().flatten())
                .map_or(Ok(0), |v| {
                    v.parse()
                        .map_err(|_| StoreError::Corrupt(format!("log_applied holds {v:?}")))
                })
        };
        Ok((field(0)?, field(1)?))
    }

    /// The applied position, after removing whatever a dead flush wrote beyond it.
    fn recovered(&mut self) -> Result<u64, StoreError> {
        if let Some(a) = self.applied {
            return Ok(a);
        }
        self.keeping.clear();
        self.folding.clear();
        let (applied, id_base) = self.marker()?;
        self.id_base = id_base;
        for table in ["events", "sessions", "rollups", "rollup_sites"] {
            let beyond = format!("log_part = {} AND log_pos > {applied}", self.part);
            let n = self
                .http
                .number(&format!("SELECT count() FROM {table} WHERE {beyond}"))?;
            if n > 0 {
                tracing::warn!(
                    table,
                    rows = n,
                    part = self.part,
                    applied,
                    "removing the rows of an unfinished flush"
                );
                self.http
                    .execute(&format!("ALTER TABLE {table} DELETE WHERE {beyond}"))?;
                self.wait_for_mutations(table)?;
            }
        }
        self.applied = Some(applied);
        Ok(applied)
    }

    /// Deletes run in the background; wait until they are done, or a retry would read the
    /// rows they are removing.
    fn wait_for_mutations(&self, table: &str) -> Result<(), StoreError> {
        let started = Instant::now();
        let sql = format!(
            "SELECT count() FROM system.mutations WHERE database = {} AND table = {} AND is_done = 0",
            http::quote(&self.database),
            http::quote(table)
        );
        while self.http.number(&sql)? > 0 {
            if started.elapsed() > MUTATION_WAIT {
                return Err(StoreError::Unavailable(format!(
                    "ClickHouse has not finished deleting an unfinished flush from {table} after {MUTATION_WAIT:?}"
                )));
            }
            // Polling the server: there is no notification to wait on in 18.16.
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn stop_at(&mut self, stage: FlushStage) -> Result<(), StoreError> {
        test_stop(&mut self.fail_at, stage)
    }

    /// Folds this partition's rollup rows now, whatever their count (the applier does so
    /// by itself when due). Returns whether the fold swapped them: not when another
    /// applier applied the partition since this connection last did.
    pub fn fold_rollups(&mut self) -> Result<bool, StoreError> {
        let applied = self.recovered()?;
        self.fold(applied, true)
            .map(|f| matches!(f, fold::Folded::Done(..)))
    }

    /// Folds the partition's rollup rows if due (or `now`), after a chunk was applied up
    /// to `last`.
    fn fold(&mut self, last: u64, now: bool) -> Result<fold::Folded, StoreError> {
        let mut hook = self.fail_at.take();
        let started = Instant::now();
        let result = self.folding.fold_if_due(
            &self.http,
            self.part,
            last,
            now,
            self.hold_until,
            &mut |stage| test_stop(&mut hook, stage),
        );
        self.fail_at = hook;
        match &result {
            Ok(fold::Folded::Done(before, after)) => tracing::info!(
                part = self.part,
                before,
                after,
                ms = started.elapsed().as_millis() as u64,
                "folded rollup rows"
            ),
            Ok(fold::Folded::Superseded) => {
                // Someone else applies this partition now: trust nothing cached.
                self.applied = None;
                self.keeping.clear();
            }
            Ok(fold::Folded::NotDue) => {}
            Err(_) => self.folding.clear(),
        }
        result
    }

    fn write(
        &mut self,
        fresh: &[&(LogPosition, CommitRecord)],
        last: u64,
        id_base: u64,
    ) -> Result<(usize, usize), StoreError> {
        let (events, n_events) = rows::events(fresh, self.part)?;
        let (sessions, n_sessions) = rows::sessions(fresh, self.part)?;
        // Seeded from what is stored before this chunk: computed before its rows go in.
        let rollup_rows = match &self.zones {
            Some(zones) => {
                let records: Vec<&CommitRecord> = fresh.iter().map(|(_, r)| r).collect();
                self.keeping
                    .chunk(&self.http, self.part, zones, &records, last)?
            }
            None => rollups::ChunkRows::default(),
        };
        self.http.insert_json("events", events)?;
        self.stop_at(FlushStage::AfterEvents)?;
        self.http.insert_json("sessions", sessions)?;
        self.stop_at(FlushStage::AfterSessions)?;
        let added = rollup_rows.rollup_rows;
        self.http.insert_json("rollups", rollup_rows.rollups)?;
        self.http.insert_json("rollup_sites", rollup_rows.sites)?;
        self.stop_at(FlushStage::AfterRollups)?;
        self.http.execute(&format!(
            "INSERT INTO log_applied (log_part, position, id_base) VALUES ({}, {last}, {id_base})",
            self.part
        ))?;
        self.folding.added(added);
        self.stop_at(FlushStage::AfterMarker)?;
        Ok((n_events, n_sessions))
    }
}

impl EventStore for ChStore {
    fn applied(&self) -> Result<(LogPosition, u64), StoreError> {
        // What this connection checked and wrote itself needs no round trip: one applier
        // at a time writes a partition, and a takeover forgets it (`forget_applied`). An
        // idle applier asks this before every poll.
        if let Some(a) = self.applied {
            return Ok((LogPosition(a), self.id_base));
        }
        let (position, id_base) = self.marker()?;
        Ok((LogPosition(position), id_base))
    }

    fn apply(
        &mut self,
        records: &[(LogPosition, CommitRecord)],
    ) -> Result<LogPosition, StoreError> {
        let started = Instant::now();
        let applied = self.recovered()?;
        let fresh: Vec<&(LogPosition, CommitRecord)> =
            records.iter().filter(|(p, _)| p.0 > applied).collect();
        for (i, (p, _)) in fresh.iter().enumerate() {
            if p.0 != applied + 1 + i as u64 {
                self.applied = None;
                return Err(StoreError::Corrupt(format!(
                    "log record {} given to storage after position {}: records must be applied in order without gaps",
                    p.0,
                    applied + i as u64
                )));
            }
        }
        let Some(last) = fresh.last().map(|(p, _)| p.0) else {
            return Ok(LogPosition(applied));
        };
        // Read with the applied position by `recovered`, and only carried forward.
        let id_base = self.id_base;
        match self.write(&fresh, last, id_base) {
            Ok((events, sessions)) => {
                self.applied = Some(last);
                self.keeping.applied(fresh.iter().map(|(_, r)| r));
                if self.zones.is_some() {
                    // A fold that fails changed nothing readers see (or finished): the
                    // chunk stays applied, and the next one tries again.
                    if let Err(e) = self.fold(last, false) {
                        tracing::warn!(part = self.part, error = %e, "rollup fold failed");
                    }
                }
                tracing::debug!(
                    part = self.part,
                    records = fresh.len(),
                    events,
                    session_rows = sessions,
                    position = last,
                    committed_us = started.elapsed().as_micros() as u64,
                    "applied"
                );
                Ok(LogPosition(last))
            }
            Err(e) => {
                // Whatever part of the chunk got in is removed before the next write, and
                // the rollup keeper, which already counted it, starts again from storage.
                self.applied = None;
                self.keeping.clear();
                self.folding.clear();
                Err(e)
            }
        }
    }

    fn hold_until(&mut self, until: Instant) {
        self.hold_until = Some(until);
    }

    fn forget_applied(&mut self) {
        self.applied = None;
        self.keeping.clear();
        self.folding.clear();
    }

    fn dialect(&self) -> &'static dyn Dialect {
        &DIALECT
    }

    fn run_query(&self, q: &SqlQuery) -> Result<Vec<QueryRow>, StoreError> {
        let started = Instant::now();
        let sql = http::render(&q.sql, &q.params)?;
        let width = q.part.width();
        let mut out = Vec::new();
        for fields in self.http.rows(&sql)? {
            if fields.len() != q.dimensions + width {
                return Err(StoreError::Corrupt(format!(
                    "ClickHouse answered {} columns where {} were asked for",
                    fields.len(),
                    q.dimensions + width
                )));
            }
            let dims = fields[..q.dimensions]
                .iter()
                .map(|f| f.clone().unwrap_or_default())
                .collect();
            let nums = fields[q.dimensions..]
                .iter()
                .map(|f| {
                    // An average over nothing is nan here and NULL in SQL's other engines.
                    f.as_deref()
                        .and_then(|v| v.parse::<f64>().ok())
                        .filter(|v| !v.is_nan())
                })
                .collect();
            out.push((dims, nums));
        }
        tracing::debug!(part = ?q.part, ms = started.elapsed().as_secs_f64() * 1e3, rows = out.len(), sql = %q.sql, params = ?q.params, "query");
        Ok(out)
    }

    fn rebuild_counters(
        &self,
        _chunk_size: u64,
        _progress: &mut dyn FnMut(RebuildProgress) -> bool,
    ) -> Result<Counters, StoreError> {
        Err(StoreError::Unsupported(
            "live counters in cluster mode are kept in Redis, not rebuilt from ClickHouse",
        ))
    }

    fn stale_rollups(&self) -> Result<Vec<SiteId>, StoreError> {
        // The sites whose rollups this partition's applier must rebuild (see rebuild.rs).
        let Some(zones) = &self.zones else {
            return Ok(Vec::new());
        };
        let configured = zones()?;
        let mut sites: Vec<SiteId> = rebuild::stale(&self.http, self.part, &configured)?
            .into_iter()
            .map(|(site, _)| site)
            .collect();
        sites.dedup();
        Ok(sites)
    }

    fn rollup_zone(&self, site: &SiteId) -> Result<Option<String>, StoreError> {
        rollups::ready_zone(&self.http, site)
    }

    fn rebuild_rollups(
        &mut self,
        site: &SiteId,
        progress: &mut dyn FnMut(RebuildProgress) -> bool,
    ) -> Result<(), StoreError> {
        let Some(zones) = self.zones.clone() else {
            return Ok(());
        };
        let configured = self.keeping.zones(&zones)?;
        let tz = configured
            .get(site.as_str())
            .copied()
            .unwrap_or(chrono_tz::UTC);
        let targets: Vec<u16> = rebuild::stale(&self.http, self.part, &configured)?
            .into_iter()
            .filter(|(s, _)| s == site)
            .map(|(_, t)| t)
            .collect();
        let total = targets.len() as u64;
        for (i, target) in targets.into_iter().enumerate() {
            let applied = if target == self.part {
                self.recovered()?
            } else {
                fold::applied_of(&self.http, target)?
            };
            let started = Instant::now();
            let mut hook = self.fail_at.take();
            let result = rebuild::rebuild(
                &self.http,
                target,
                site,
                tz,
                applied,
                self.hold_until,
                &mut |stage| test_stop(&mut hook, stage),
            );
            self.fail_at = hook;
            if !result? {
                // Another applier has the partition now.
                self.forget_applied();
                return Err(StoreError::Unavailable(format!(
                    "partition {target} was applied by another applier during the rollup rebuild of {site}"
                )));
            }
            if target == self.part {
                self.keeping.rebuilt(site, tz);
                self.folding.clear();
            }
            tracing::info!(%site, part = target, zone = tz.name(), ms = started.elapsed().as_millis() as u64, "rollups rebuilt");
            if !progress(RebuildProgress {
                done: i as u64 + 1,
                total,
                chunks: i as u64 + 1,
            }) {
                return Err(StoreError::Interrupted);
            }
        }
        Ok(())
    }

    fn stop_rollups(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn compact(&mut self, _cutoff: i64) -> Result<Option<Compacted>, StoreError> {
        // MergeTree keeps rows in key order itself.
        Ok(None)
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn connect(&self) -> Result<Box<dyn EventStore>, StoreError> {
        Ok(Box::new(ChStore {
            http: self.http.clone(),
            database: self.database.clone(),
            part: self.part,
            applied: None,
            id_base: 0,
            fail_at: None,
            zones: self.zones.clone(),
            keeping: rollups::Keeping::default(),
            folding: fold::Folding::new(self.folding.min_rows),
            hold_until: None,
        }))
    }
}
