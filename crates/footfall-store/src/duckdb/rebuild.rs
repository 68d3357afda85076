//! Rebuilding the live counters from storage: the seed's backfill, done exactly.
//!
//! Page views are read in chunks of events (in event id order) with progress reported after
//! each, and every chunk's contribution goes through the same `SiteCounters` methods that
//! live maintenance uses. Unique visitors are counted per UTC day (see `VisitorDays`): one
//! query gives the closed days' counts, and the open days' sets are loaded whole.
//!
//! After each chunk the progress is checkpointed (counters as JSON), so an interrupted
//! rebuild resumes where it stopped; a completed one clears the checkpoint. Rebuilding never
//! changes `events` or `sessions`, so running it again is harmless.

use super::DuckStore;
use crate::event_store::RebuildProgress;
use crate::StoreError;
use footfall_core::live::Counters;
use footfall_core::{EventId, SiteId, Timestamp, VisitorId};

const DAY_MS: i64 = 86_400_000;

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
        let total: i64 = self
            .conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
        let total = total as u64;
        let (mut counters, mut lo) = match self.load_checkpoint()? {
            Some((last, c)) if last <= max => {
                tracing::info!(last, "resuming counter rebuild from checkpoint");
                (c, last)
            }
            _ => (Counters::default(), 0),
        };
        let mut done = self.events_up_to(lo)?;
        let mut chunks = 0;
        while lo < max {
            // Ids are sparse (log position × 2^20 + index): a chunk is the next
            // `chunk_size` events, whatever ids they have.
            let (hi, n) = self.chunk_end(lo, chunk_size)?;
            self.rebuild_chunk(&mut counters, lo, hi)?;
            self.save_checkpoint(&counters, hi, chunk_size)?;
            chunks += 1;
            done += n;
            lo = hi;
            if !progress(RebuildProgress {
                done,
                total,
                chunks,
            }) {
                return Err(StoreError::Interrupted);
            }
        }
        // Days close behind the newest page view's day, as in live maintenance.
        let newest: Option<i64> = self.conn.query_row(
            "SELECT max(ts) FROM events WHERE name = 'pageview'",
            [],
            |r| r.get(0),
        )?;
        if let Some(newest) = newest {
            self.rebuild_visitor_days(&mut counters, Timestamp(newest).day_number() - 1)?;
        }
        self.rebuild_sessions(&mut counters)?;
        self.rebuild_durations(&mut counters)?;
        self.conn
            .execute_batch("DELETE FROM rebuild_checkpoint; DELETE FROM rebuild_visitors;")?;
        Ok(counters)
    }

    fn events_up_to(&self, id: u64) -> Result<u64, StoreError> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM events WHERE event_id <= ?",
            [id],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// The id ending the chunk of `size` events after `lo`, and how many events it holds.
    fn chunk_end(&self, lo: u64, size: u64) -> Result<(u64, u64), StoreError> {
        let (hi, n): (Option<u64>, i64) = self.conn.query_row(
            "SELECT max(event_id), count(*) FROM (SELECT event_id FROM events WHERE event_id > ? ORDER BY event_id LIMIT ?)",
            [lo, size],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((hi.unwrap_or(u64::MAX), n as u64))
    }

    /// Unique visitors by the rule live maintenance follows (`VisitorDays`): per visitor,
    /// its page-view days in order, counted again only on a day at least two after the day
    /// it was last counted. Visitors last counted on an open day (at or after `open_from`)
    /// go into that day's set, so live maintenance continues them exactly.
    fn rebuild_visitor_days(&self, c: &mut Counters, open_from: i64) -> Result<(), StoreError> {
        c.open_from_day = open_from;
        let mut stmt = self.conn.prepare(
            "SELECT DISTINCT site, visitor_id, ts // ? AS day FROM events WHERE name = 'pageview'
             ORDER BY site, visitor_id, day",
        )?;
        let mut rows = stmt.query([DAY_MS])?;
        // (site, visitor, day it was last counted)
        let mut current: Option<(String, u64, i64)> = None;
        let finish =
            |c: &mut Counters, done: Option<(String, u64, i64)>| -> Result<(), StoreError> {
                if let Some((s, v, day)) = done {
                    let days = &mut c.site_mut(&site(s)?).visitor_days;
                    if day >= open_from {
                        days.open.entry(day).or_default().insert(VisitorId(v));
                    } else {
                        days.closed += 1;
                    }
                }
                Ok(())
            };
        while let Some(r) = rows.next()? {
            let (s, v, day): (String, u64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            match &mut current {
                Some((cs, cv, counted)) if *cs == s && *cv == v => {
                    if day >= *counted + 2 {
                        // Counted again: the earlier count is final.
                        let prev = (cs.clone(), *cv, *counted);
                        *counted = day;
                        finish(c, Some((prev.0, prev.1, i64::MIN)))?;
                    }
                }
                _ => {
                    let prev = current.replace((s, v, day));
                    finish(c, prev)?;
                }
            }
        }
        finish(c, current)
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
        let counters: Counters = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("rebuild checkpoint: {e}")))?;
        Ok(Some((done, counters)))
    }

    /// Records that page views up to id `hi` are in `counters`.
    fn save_checkpoint(
        &self,
        counters: &Counters,
        hi: u64,
        chunk_size: u64,
    ) -> Result<(), StoreError> {
        let json =
            serde_json::to_string(counters).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.conn.execute_batch("BEGIN TRANSACTION")?;
        let result = (|| -> Result<(), StoreError> {
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
