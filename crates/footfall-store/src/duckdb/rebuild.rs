//! Rebuilding the live counters from storage: the seed's backfill, done exactly.
//!
//! Page views are read in chunks of event ids with progress reported after each, and every
//! chunk's contribution goes through the same `SiteCounters` methods that live maintenance
//! uses. The visitor set is kept whole (the seed kept only the last 10,000 ids between
//! chunks and over-counted).
//!
//! After each chunk the progress is checkpointed (counters as JSON, the chunk's visitors in
//! `rebuild_visitors`, in one transaction), so an interrupted rebuild resumes where it
//! stopped; a completed one clears the checkpoint. Rebuilding never changes `events` or
//! `sessions`, so running it again is harmless.

use super::DuckStore;
use crate::StoreError;
use footfall_core::live::Counters;
use footfall_core::{EventId, SiteId, Timestamp, VisitorId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildProgress {
    /// Highest event id processed so far.
    pub done: u64,
    pub total: u64,
    pub chunks: u64,
}

fn site(raw: String) -> Result<SiteId, StoreError> {
    SiteId::parse(&raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl DuckStore {
    /// Rebuilds every site's counters, resuming from a checkpoint if one exists. `progress`
    /// is called after each chunk; returning false stops with [`StoreError::Interrupted`]
    /// (the checkpoint stays for the next run).
    pub fn rebuild_counters(
        &self,
        chunk_size: u64,
        mut progress: impl FnMut(RebuildProgress) -> bool,
    ) -> Result<Counters, StoreError> {
        let chunk_size = chunk_size.max(1);
        let max = self.max_event_id()?;
        let (mut counters, mut lo) = match self.load_checkpoint()? {
            Some((done, c)) if done <= max => {
                tracing::info!(
                    done,
                    total = max,
                    "resuming counter rebuild from checkpoint"
                );
                (c, done)
            }
            _ => (Counters::default(), 0),
        };
        let mut chunks = 0;
        while lo < max {
            let hi = lo.saturating_add(chunk_size).min(max);
            self.rebuild_chunk(&mut counters, lo, hi)?;
            self.save_checkpoint(&counters, lo, hi, chunk_size)?;
            chunks += 1;
            lo = hi;
            if !progress(RebuildProgress {
                done: hi,
                total: max,
                chunks,
            }) {
                return Err(StoreError::Interrupted);
            }
        }
        self.rebuild_sessions(&mut counters)?;
        self.rebuild_durations(&mut counters)?;
        self.conn
            .execute_batch("DELETE FROM rebuild_checkpoint; DELETE FROM rebuild_visitors;")?;
        Ok(counters)
    }

    /// Whether an interrupted rebuild left a checkpoint (the event id it reached).
    pub fn rebuild_checkpoint(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT max(done) FROM rebuild_checkpoint", [], |r| {
                r.get::<_, Option<u64>>(0)
            })?)
    }

    fn load_checkpoint(&self) -> Result<Option<(u64, Counters)>, StoreError> {
        let row: Option<(u64, String)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT done, counters FROM rebuild_checkpoint LIMIT 1")?;
            let mut rows = stmt.query([])?;
            match rows.next()? {
                Some(r) => Some((r.get(0)?, r.get(1)?)),
                None => None,
            }
        };
        let Some((done, json)) = row else {
            return Ok(None);
        };
        let mut counters: Counters = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("rebuild checkpoint: {e}")))?;
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT site, visitor_id FROM rebuild_visitors")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            counters
                .site_mut(&site(r.get(0)?)?)
                .visitors
                .insert(VisitorId(r.get(1)?));
        }
        Ok(Some((done, counters)))
    }

    /// Records that page views up to `hi` are in `counters`, atomically with the chunk's
    /// visitors.
    fn save_checkpoint(
        &self,
        counters: &Counters,
        lo: u64,
        hi: u64,
        chunk_size: u64,
    ) -> Result<(), StoreError> {
        let json =
            serde_json::to_string(counters).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.conn.execute_batch("BEGIN TRANSACTION")?;
        let result = (|| -> Result<(), StoreError> {
            self.conn.execute(
                "INSERT INTO rebuild_visitors SELECT DISTINCT site, visitor_id FROM events WHERE name = 'pageview' AND event_id > ? AND event_id <= ?",
                [lo, hi],
            )?;
            self.conn.execute("DELETE FROM rebuild_checkpoint", [])?;
            self.conn.execute(
                "INSERT INTO rebuild_checkpoint (done, chunk_size, counters) VALUES (?, ?, ?)",
                ::duckdb::params![hi, chunk_size, json],
            )?;
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(())
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Page views with `lo < event_id <= hi`.
    fn rebuild_chunk(&self, c: &mut Counters, lo: u64, hi: u64) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT site, pathname, count(*), min(ts) FROM events
             WHERE name = 'pageview' AND event_id > ? AND event_id <= ? GROUP BY site, pathname",
        )?;
        let mut rows = stmt.query([lo, hi])?;
        while let Some(r) = rows.next()? {
            let n: i64 = r.get(2)?;
            let path: String = r.get(1)?;
            c.site_mut(&site(r.get(0)?)?)
                .add_pageviews(&path, n as u64, Timestamp(r.get(3)?));
        }
        for (column, is_title) in [("title", true), ("page_type", false)] {
            // Column names come from this fixed list, never from input.
            let sql = format!(
                "SELECT site, pathname, {column}, ts, event_id FROM (
                   SELECT site, pathname, {column}, ts, event_id,
                          row_number() OVER (PARTITION BY site, pathname ORDER BY ts DESC, event_id DESC) AS rn
                   FROM events
                   WHERE name = 'pageview' AND {column} IS NOT NULL AND {column} <> '' AND event_id > ? AND event_id <= ?)
                 WHERE rn = 1"
            );
            let mut stmt = self.conn.prepare(&sql)?;
            let mut rows = stmt.query([lo, hi])?;
            while let Some(r) = rows.next()? {
                let (path, label): (String, String) = (r.get(1)?, r.get(2)?);
                let at = (Timestamp(r.get(3)?), EventId(r.get(4)?));
                let sc = c.site_mut(&site(r.get(0)?)?);
                if is_title {
                    sc.offer_labels(&path, Some(&label), None, at.0, at.1);
                } else {
                    sc.offer_labels(&path, None, Some(&label), at.0, at.1);
                }
            }
        }
        let mut stmt = self.conn.prepare("SELECT DISTINCT site, visitor_id FROM events WHERE name = 'pageview' AND event_id > ? AND event_id <= ?")?;
        let mut rows = stmt.query([lo, hi])?;
        while let Some(r) = rows.next()? {
            c.site_mut(&site(r.get(0)?)?)
                .visitors
                .insert(VisitorId(r.get(1)?));
        }
        Ok(())
    }

    fn rebuild_sessions(&self, c: &mut Counters) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT site, sum(sign)::BIGINT, sum(sign * is_bounce::INTEGER)::BIGINT, sum(sign * duration_ms)::BIGINT
             FROM sessions GROUP BY site",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let sc = c.site_mut(&site(r.get(0)?)?);
            sc.visits += r.get::<_, i64>(1)?;
            sc.bounces += r.get::<_, i64>(2)?;
            sc.visit_duration_sum_ms += r.get::<_, i64>(3)?;
        }
        Ok(())
    }

    /// Time on page by the same rule identify applies: to the next page view of the
    /// visit, or for the last one to the visit's end.
    fn rebuild_durations(&self, c: &mut Counters) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare(
            "WITH live AS (
                SELECT session_id, any_value(end_ts) AS end_ts FROM sessions
                GROUP BY session_id, version HAVING sum(sign) > 0),
             pv AS (
                SELECT site, session_id, pathname, ts,
                       lead(ts) OVER (PARTITION BY session_id ORDER BY ts, event_id) AS nxt
                FROM events WHERE name = 'pageview'),
             d AS (
                SELECT pv.site, pv.pathname,
                       CASE WHEN nxt IS NOT NULL THEN nxt - ts WHEN live.end_ts > ts THEN live.end_ts - ts END AS dur
                FROM pv JOIN live USING (session_id))
             SELECT site, pathname, coalesce(sum(dur), 0)::BIGINT, count(dur)::BIGINT FROM d GROUP BY site, pathname",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let path: String = r.get(1)?;
            c.site_mut(&site(r.get(0)?)?)
                .add_durations(&path, r.get(2)?, r.get(3)?);
        }
        Ok(())
    }
}
