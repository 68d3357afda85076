//! Moves closed days of raw rows from the hot tables, which the applier appends to in
//! arrival order, to the archive tables, sorted by site and time.
//!
//! Why: DuckDB prunes by per-row-group min/max (zone maps). Rows in arrival order interleave
//! every site, and late or back-filled events interleave days, so a report on one site's
//! month would read every row group. After a move, a day is a run of row groups ordered by
//! site, and a site's range reads only its own runs. Queries see both tiers through the
//! `events` and `sessions` views, so nothing else knows about the split.
//!
//! Each step moves one UTC day (the oldest one the hot tables hold before the cutoff) — or
//! the first quarter million events of it, if it holds more — in one transaction, so a
//! crash leaves the rows in exactly one tier. Visits move by their
//! start; the archive keeps only each visit's current version. A visit that changes after
//! its move (a back-filled event extending it) gets a new version in the hot table whose
//! cancelling row hides the archived one, exactly as it would have in one table; when that
//! cancelling row moves in turn, the row it cancels is deleted from the archive with it.
//!
//! The rollup table has the same problem in another form: its rows are appended as keys
//! first appear, so every site, dimension and grain interleave, and a dashboard's few hundred
//! rows sit among all the others. When no day is left to move and enough rows were added
//! since the last time, the table is rewritten in key order (site, grain, dimension, bucket)
//! in one transaction; only the rows added since are then unordered.

use super::DuckStore;
use crate::event_store::Compacted;
use crate::StoreError;

const DAY_MS: i64 = 86_400_000;

/// Raw events one step moves, about (a day's slice; see `compact_step`).
const MAX_STEP_EVENTS: i64 = 250_000;

/// Rewrite the rollups once this many rows were added since the last rewrite (or a tenth
/// of the table, if more).
const RECLUSTER_AFTER_ROWS: i64 = 50_000;

/// The rollup table as migration 7 made it (keep in step with it).
const ROLLUPS_DDL: &str = "CREATE TABLE rollups_sorted (
    site VARCHAR NOT NULL, grain TINYINT NOT NULL, bucket BIGINT NOT NULL, dim UTINYINT NOT NULL,
    value VARCHAR NOT NULL, visitors BIGINT NOT NULL, pageviews BIGINT NOT NULL,
    events BIGINT NOT NULL, visits BIGINT NOT NULL, bounces BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL, visit_pageviews BIGINT NOT NULL,
    scroll_sum BIGINT NOT NULL, scroll_visits BIGINT NOT NULL,
    page_time_ms BIGINT NOT NULL, page_time_visits BIGINT NOT NULL,
    PRIMARY KEY (site, grain, bucket, dim, value))";

impl DuckStore {
    /// One step of compaction: a closed day moved, or else the rollups rewritten in key
    /// order if due. `None` when neither had anything to do.
    pub fn compact(&mut self, cutoff: i64) -> Result<Option<Compacted>, StoreError> {
        if let Some(moved) = self.compact_step(cutoff)? {
            return Ok(Some(moved));
        }
        Ok(self
            .recluster_rollups(RECLUSTER_AFTER_ROWS)?
            .map(|rows| Compacted {
                rollup_rows: rows,
                ..Compacted::default()
            }))
    }

    /// Rewrites the rollup table in key order if at least `min_new_rows` (and a tenth of
    /// the table) were added since the last rewrite; returns the rows written.
    pub fn recluster_rollups(&mut self, min_new_rows: i64) -> Result<Option<u64>, StoreError> {
        let rows: i64 = self
            .conn
            .query_row("SELECT count(*) FROM rollups", [], |r| r.get(0))?;
        let before: Option<i64> =
            self.conn
                .query_row("SELECT max(row_count) FROM rollups_clustered", [], |r| {
                    r.get(0)
                })?;
        let before = before.unwrap_or(0);
        if rows == 0 || rows - before < min_new_rows.max(before / 10) {
            return Ok(None);
        }
        let tx = self.conn.transaction()?;
        tx.execute_batch(ROLLUPS_DDL)?;
        let written = tx.execute(
            "INSERT INTO rollups_sorted SELECT * FROM rollups ORDER BY site, grain, dim, bucket, value",
            [],
        )?;
        tx.execute_batch(
            "DROP TABLE rollups; ALTER TABLE rollups_sorted RENAME TO rollups; \
             DELETE FROM rollups_clustered;",
        )?;
        tx.execute(
            "INSERT INTO rollups_clustered VALUES (1, ?)",
            [written as i64],
        )?;
        tx.commit()?;
        Ok(Some(written as u64))
    }

    /// Moves the oldest day before `cutoff` (unix ms; rounded down to a UTC day) that the
    /// hot tables still hold, or its first [`MAX_STEP_EVENTS`]. `None` when there is
    /// nothing before the cutoff.
    pub fn compact_step(&mut self, cutoff: i64) -> Result<Option<Compacted>, StoreError> {
        self.compact_slice(cutoff, MAX_STEP_EVENTS)
    }

    /// [`compact_step`](Self::compact_step) with the slice size given (tests use small ones).
    pub fn compact_slice(
        &mut self,
        cutoff: i64,
        max_events: i64,
    ) -> Result<Option<Compacted>, StoreError> {
        let cutoff = cutoff.div_euclid(DAY_MS) * DAY_MS;
        let oldest: Option<i64> = self.conn.query_row(
            "SELECT min(t) FROM (SELECT min(ts) AS t FROM events_hot UNION ALL SELECT min(start_ts) FROM sessions_hot)",
            [],
            |r| r.get(0),
        )?;
        let Some(oldest) = oldest.filter(|t| *t < cutoff) else {
            return Ok(None);
        };
        let day_start = oldest.div_euclid(DAY_MS) * DAY_MS;
        let mut end = (day_start + DAY_MS).min(cutoff);
        // A step holds the applier, and readers wait for the applier: a big day moves in
        // slices of about MAX_STEP_EVENTS, each sorted by site (a run of row groups each).
        let in_day: i64 =
            self.conn
                .query_row("SELECT count(*) FROM events_hot WHERE ts < ?", [end], |r| {
                    r.get(0)
                })?;
        if in_day > max_events {
            let split: Option<i64> = self.conn.query_row(
                "SELECT ts FROM events_hot WHERE ts < ? ORDER BY ts LIMIT 1 OFFSET ?",
                [end, max_events],
                |r| r.get(0),
            )?;
            if let Some(split) = split {
                end = split.max(oldest + 1);
            }
        }
        let tx = self.conn.transaction()?;
        let events = tx.execute(
            "INSERT INTO events_archive SELECT * FROM events_hot WHERE ts < ? ORDER BY site, ts",
            [end],
        )?;
        tx.execute("DELETE FROM events_hot WHERE ts < ?", [end])?;
        // Archived versions cancelled by rows about to move go first: once the cancelling
        // row is gone, nothing else would hide them.
        tx.execute(
            "DELETE FROM sessions_archive a WHERE EXISTS (SELECT 1 FROM sessions_hot y \
             WHERE y.start_ts < ? AND y.sign = -1 AND y.site = a.site \
             AND y.session_id = a.session_id AND y.version = a.version)",
            [end],
        )?;
        let session_rows = tx.execute(
            "INSERT INTO sessions_archive SELECT * FROM sessions_hot x WHERE x.start_ts < ? AND x.sign = 1 \
             AND NOT EXISTS (SELECT 1 FROM sessions_hot y WHERE y.site = x.site \
             AND y.session_id = x.session_id AND y.version = x.version AND y.sign = -1) \
             ORDER BY site, start_ts",
            [end],
        )?;
        tx.execute("DELETE FROM sessions_hot WHERE start_ts < ?", [end])?;
        tx.commit()?;
        Ok(Some(Compacted {
            day_start,
            events: events as u64,
            session_rows: session_rows as u64,
            rollup_rows: 0,
        }))
    }
}
