//! Rollups in DuckDB: the rows the applier adds to in each transaction, the days it reads
//! back to know which visitors a day has already counted, and rebuilds from raw rows.

use super::DuckStore;
use crate::event_store::RebuildProgress;
use crate::StoreError;
use ::duckdb::arrow::array::{ArrayRef, Int64Array, Int8Array, StringArray, UInt8Array};
use ::duckdb::{params, params_from_iter, Connection};
use chrono_tz::Tz;
use footfall_core::identify::SessionAttrs;
use footfall_core::query::plan::{DuckDb, Param};
use footfall_core::record::CommitRecord;
use footfall_core::rollup::{
    self, Deltas, LocalClock, Rollups, SeedDay, SeedEvent, SeedTime, SeedVisit, Sums,
};
use footfall_core::{SiteId, VisitorId};
use std::collections::HashMap;
use std::sync::Arc;

/// Local days per rebuild transaction.
pub const REBUILD_CHUNK_DAYS: i64 = 7;

fn values(params: &[Param]) -> Vec<::duckdb::types::Value> {
    params
        .iter()
        .map(|p| match p {
            Param::Text(s) => ::duckdb::types::Value::Text(s.clone()),
            Param::Int(i) => ::duckdb::types::Value::BigInt(*i),
        })
        .collect()
}

/// Every site's time zone as configured now (UTC if unknown).
pub(super) fn site_zones(conn: &Connection) -> Result<HashMap<String, Tz>, StoreError> {
    let mut stmt = conn.prepare("SELECT domain, timezone FROM sites")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = HashMap::new();
    for r in rows {
        let (site, tz) = r?;
        out.insert(site, tz.parse().unwrap_or(chrono_tz::UTC));
    }
    Ok(out)
}

/// The zone a site's rollups are complete in, if they are.
pub(super) fn ready_zone(conn: &Connection, site: &str) -> Result<Option<String>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT timezone FROM rollup_sites WHERE site = ? AND pending_from IS NULL")?;
    let mut rows = stmt.query(params![site])?;
    Ok(match rows.next()? {
        Some(r) => Some(r.get(0)?),
        None => None,
    })
}

/// What storage holds for one local day of a site: its events, the visits started on it,
/// and the measured page views of each visit and page.
pub(super) fn load_day(
    conn: &Connection,
    site: &SiteId,
    (start, end): (i64, i64),
) -> Result<SeedDay, StoreError> {
    let cols = SessionAttrs::COLUMNS.join(", ");
    let mut stmt = conn.prepare(&format!(
        "SELECT visitor_id, ts, name, pathname, session_id, scroll_depth, prop_keys, prop_values, {cols} FROM events WHERE site = ? AND ts >= ? AND ts < ? AND (name <> 'engagement' OR scroll_depth IS NOT NULL)"
    ))?;
    let mut rows = stmt.query(params![site.as_str(), start, end])?;
    let mut events = Vec::new();
    let mut strings: HashMap<String, Arc<str>> = HashMap::new();
    let mut intern = |s: String| -> Arc<str> {
        strings
            .entry(s)
            .or_insert_with_key(|k| Arc::from(k.as_str()))
            .clone()
    };
    while let Some(r) = rows.next()? {
        let mut attrs: [Arc<str>; 16] = Default::default();
        for (i, a) in attrs.iter_mut().enumerate() {
            *a = intern(r.get(8 + i)?);
        }
        events.push(SeedEvent {
            visitor: VisitorId(r.get(0)?),
            session: r.get(4)?,
            ts: r.get(1)?,
            name: r.get(2)?,
            pathname: r.get(3)?,
            hostname: attrs[0].to_string(),
            attrs: SessionAttrs::from_values(attrs),
            scroll_depth: r.get(5)?,
            props: texts(r.get(6)?).into_iter().zip(texts(r.get(7)?)).collect(),
        });
    }
    // A version whose signs sum to +1 is a visit's current state (both rows of a cancelled
    // version carry the same start).
    let mut stmt = conn.prepare(
        "SELECT visitor_id, entry_page, exit_page FROM sessions WHERE site = ? AND start_ts >= ? AND start_ts < ? GROUP BY session_id, version, visitor_id, entry_page, exit_page HAVING sum(sign) > 0",
    )?;
    let mut rows = stmt.query(params![site.as_str(), start, end])?;
    let mut visits = Vec::new();
    while let Some(r) = rows.next()? {
        visits.push(SeedVisit {
            visitor: VisitorId(r.get(0)?),
            entry_page: r.get(1)?,
            exit_page: r.get(2)?,
        });
    }
    Ok(SeedDay {
        events,
        visits,
        times: measured_views(conn, site, (start, end))?,
    })
}

/// Per visit and page, its page views in `[start, end)` whose duration is measured. Every
/// view is, but a visit's last while the visit ends on it (the sequencer's rule, which
/// measures to the next page view or else to the visit's end).
fn measured_views(
    conn: &Connection,
    site: &SiteId,
    (start, end): (i64, i64),
) -> Result<Vec<SeedTime>, StoreError> {
    let mut counts: HashMap<(u64, String), u32> = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT session_id, pathname, count(*) FROM events WHERE site = ? AND ts >= ? AND ts < ? AND name = 'pageview' GROUP BY 1, 2",
    )?;
    let mut rows = stmt.query(params![site.as_str(), start, end])?;
    while let Some(r) = rows.next()? {
        counts.insert((r.get(0)?, r.get(1)?), r.get(2)?);
    }
    // The day's last view of each visit is unmeasured if nothing in the visit came after it.
    let mut stmt = conn.prepare(
        "WITH last AS (SELECT session_id, pathname, ts FROM events WHERE site = ? AND ts >= ? AND ts < ? AND name = 'pageview'            QUALIFY row_number() OVER (PARTITION BY session_id ORDER BY ts DESC, event_id DESC) = 1),          ends AS (SELECT session_id, any_value(end_ts) AS end_ts FROM sessions            WHERE site = ? AND start_ts < ? AND end_ts >= ? AND session_id IN (SELECT session_id FROM last) GROUP BY session_id, version HAVING sum(sign) > 0)          SELECT last.session_id, last.pathname FROM last JOIN ends USING (session_id) WHERE ends.end_ts <= last.ts",
    )?;
    // A visit with a view in the day began before the day's end and ended after its start
    // (both rows of a cancelled version carry the same times, so none is half-read).
    let mut rows = stmt.query(params![
        site.as_str(),
        start,
        end,
        site.as_str(),
        end,
        start
    ])?;
    while let Some(r) = rows.next()? {
        if let Some(n) = counts.get_mut(&(r.get(0)?, r.get(1)?)) {
            *n = n.saturating_sub(1);
        }
    }
    Ok(counts
        .into_iter()
        .map(|((session, pathname), measured)| SeedTime {
            session,
            pathname,
            measured,
        })
        .collect())
}

/// A VARCHAR[] column's strings.
fn texts(v: ::duckdb::types::Value) -> Vec<String> {
    match v {
        ::duckdb::types::Value::List(items) => items
            .into_iter()
            .filter_map(|x| match x {
                ::duckdb::types::Value::Text(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Adds `deltas` to the rollup rows.
pub(super) fn add(conn: &Connection, deltas: &Deltas) -> Result<usize, StoreError> {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS rollup_delta AS SELECT * FROM rollups LIMIT 0; DELETE FROM rollup_delta;",
    )?;
    let rows: Vec<_> = deltas.changed().collect();
    let n = rows.len();
    if n > 0 {
        let sums: [fn(&Sums) -> i64; 11] = [
            |s| s.visitors,
            |s| s.pageviews,
            |s| s.events,
            |s| s.visits,
            |s| s.bounces,
            |s| s.duration_ms,
            |s| s.visit_pageviews,
            |s| s.scroll_sum,
            |s| s.scroll_visits,
            |s| s.page_time_ms,
            |s| s.page_time_visits,
        ];
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(k, _)| k.site.as_str()),
            )),
            Arc::new(Int8Array::from_iter_values(
                rows.iter().map(|(k, _)| k.grain as i8),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|(k, _)| k.bucket),
            )),
            Arc::new(UInt8Array::from_iter_values(
                rows.iter().map(|(k, _)| k.dim),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(k, _)| &*k.value),
            )),
        ];
        columns.extend(sums.iter().map(|f| {
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|(_, s)| f(s)))) as ArrayRef
        }));
        let mut app = conn.appender("rollup_delta")?;
        app.append_record_batch(super::append::batch(columns)?)?;
        app.flush()?;
    }
    let t = std::time::Instant::now();
    if n > 0 {
        conn.execute_batch(
            "INSERT INTO rollups SELECT * FROM rollup_delta ON CONFLICT (site, grain, bucket, dim, value) DO UPDATE SET \
             visitors = visitors + EXCLUDED.visitors, pageviews = pageviews + EXCLUDED.pageviews, \
             events = events + EXCLUDED.events, visits = visits + EXCLUDED.visits, \
             bounces = bounces + EXCLUDED.bounces, duration_ms = duration_ms + EXCLUDED.duration_ms, \
             visit_pageviews = visit_pageviews + EXCLUDED.visit_pageviews, \
             scroll_sum = scroll_sum + EXCLUDED.scroll_sum, scroll_visits = scroll_visits + EXCLUDED.scroll_visits, \
             page_time_ms = page_time_ms + EXCLUDED.page_time_ms, page_time_visits = page_time_visits + EXCLUDED.page_time_visits; \
             DELETE FROM rollup_delta;",
        )?;
    }
    tracing::debug!(upsert_us = t.elapsed().as_micros() as u64, "rollup upsert");
    Ok(n)
}

/// The local days a site has rows on, first to last (None: no rows).
fn day_range(
    conn: &Connection,
    site: &str,
    clock: LocalClock,
) -> Result<Option<(i64, i64)>, StoreError> {
    let (lo, hi): (Option<i64>, Option<i64>) = conn.query_row(
        "SELECT min(t), max(t) FROM (SELECT min(ts) AS t FROM events WHERE site = ? UNION ALL SELECT max(ts) FROM events WHERE site = ? UNION ALL SELECT min(start_ts) FROM sessions WHERE site = ?)",
        params![site, site, site],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(lo.zip(hi).map(|(a, b)| (clock.day(a), clock.day(b) + 1)))
}

fn run(conn: &Connection, statements: Vec<rollup::rebuild::Statement>) -> Result<(), StoreError> {
    for (sql, params) in statements {
        let mut stmt = conn.prepare(&sql)?;
        stmt.execute(params_from_iter(values(&params).iter()))?;
    }
    Ok(())
}

/// Rebuilds all of a site's rollups inside the caller's transaction (a new site, or one
/// whose zone changed while the server runs).
pub(super) fn rebuild_site_now(conn: &Connection, site: &str, tz: Tz) -> Result<(), StoreError> {
    conn.execute("DELETE FROM rollups WHERE site = ?", params![site])?;
    if let Some((from, to)) = day_range(conn, site, LocalClock::new(tz))? {
        run(
            conn,
            rollup::rebuild::statements(site, tz, from, to, &DuckDb),
        )?;
    }
    conn.execute(
        "INSERT OR REPLACE INTO rollup_sites VALUES (?, ?, NULL)",
        params![site, tz.name()],
    )?;
    Ok(())
}

impl DuckStore {
    /// Sites whose rollups are missing, unfinished or kept in another zone than the site's.
    pub fn stale_rollups(&self) -> Result<Vec<SiteId>, StoreError> {
        let zones = site_zones(&self.conn)?;
        let mut out = Vec::new();
        for (site, tz) in zones {
            if ready_zone(&self.conn, &site)?.as_deref() != Some(tz.name()) {
                if let Ok(s) = SiteId::parse(&site) {
                    out.push(s);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn rollup_zone(&self, site: &SiteId) -> Result<Option<String>, StoreError> {
        ready_zone(&self.conn, site.as_str())
    }

    /// Recomputes a site's rollups from its raw rows, one transaction per
    /// [`REBUILD_CHUNK_DAYS`] local days, resuming an interrupted rebuild in the same zone.
    /// `progress` (days done, days in all) returning false stops with `Interrupted`.
    pub fn rebuild_rollups(
        &mut self,
        site: &SiteId,
        progress: &mut dyn FnMut(RebuildProgress) -> bool,
    ) -> Result<(), StoreError> {
        let tz = site_zones(&self.conn)?
            .get(site.as_str())
            .copied()
            .unwrap_or(chrono_tz::UTC);
        let clock = LocalClock::new(tz);
        let resume: Option<(String, Option<i64>)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT timezone, pending_from FROM rollup_sites WHERE site = ?")?;
            let mut rows = stmt.query(params![site.as_str()])?;
            match rows.next()? {
                Some(r) => Some((r.get(0)?, r.get(1)?)),
                None => None,
            }
        };
        let Some((first, end)) = day_range(&self.conn, site.as_str(), clock)? else {
            let tx = self.conn.transaction()?;
            tx.execute("DELETE FROM rollups WHERE site = ?", params![site.as_str()])?;
            tx.execute(
                "INSERT OR REPLACE INTO rollup_sites VALUES (?, ?, NULL)",
                params![site.as_str(), tz.name()],
            )?;
            tx.commit()?;
            self.rollups.forget_site(site);
            return Ok(());
        };
        let mut from = match resume {
            Some((zone, Some(next))) if zone == tz.name() => next.max(first),
            _ => {
                let tx = self.conn.transaction()?;
                tx.execute("DELETE FROM rollups WHERE site = ?", params![site.as_str()])?;
                tx.execute(
                    "INSERT OR REPLACE INTO rollup_sites VALUES (?, ?, ?)",
                    params![site.as_str(), tz.name(), first],
                )?;
                tx.commit()?;
                first
            }
        };
        let total = (end - first).max(0) as u64;
        let mut chunks = 0;
        while from < end {
            let to = (from + REBUILD_CHUNK_DAYS).min(end);
            let tx = self.conn.transaction()?;
            run(
                &tx,
                rollup::rebuild::statements(site.as_str(), tz, from, to, &DuckDb),
            )?;
            // The last chunk also covers anything written after the range was read.
            let next: Option<i64> = (to < end).then_some(to);
            tx.execute(
                "UPDATE rollup_sites SET pending_from = ? WHERE site = ?",
                params![next, site.as_str()],
            )?;
            tx.commit()?;
            from = to;
            chunks += 1;
            if !progress(RebuildProgress {
                done: (to - first) as u64,
                total,
                chunks,
            }) && from < end
            {
                return Err(StoreError::Interrupted);
            }
        }
        self.rollups.forget_site(site);
        Ok(())
    }
}

/// What the applier remembers between batches to keep rollups.
#[derive(Default)]
pub(super) struct Keeping {
    keeper: Rollups,
    /// Sites whose rollups are known complete, with the zone they are kept in.
    zones: HashMap<SiteId, Tz>,
    /// Per site, the latest time its stored rows reach (event times and visit ends; None:
    /// no rows), read once and then kept up to date. A day that starts after it holds
    /// nothing in storage, so it is seeded empty without reading: an import in time order
    /// starts a new day on every site every few batches.
    reach: crate::reach::Reach,
}

impl Keeping {
    /// Forgets everything (after a failed write, whose changes the keeper already holds).
    pub(super) fn clear(&mut self) {
        self.keeper.clear();
        self.zones.clear();
        self.reach.clear();
    }

    /// Forgets one site's days (its rollups were rebuilt).
    pub(super) fn forget_site(&mut self, site: &SiteId) {
        self.keeper.forget_site(site);
    }

    /// After a batch was stored: moves each site's reach past its rows and lets the
    /// keeper forget days nobody writes to any more.
    pub(super) fn applied<'a>(&mut self, records: impl Iterator<Item = &'a CommitRecord>) {
        self.reach.applied(records);
        self.keeper.evict(2, 64);
    }

    fn reach(&mut self, conn: &Connection, site: &SiteId) -> Result<Option<i64>, StoreError> {
        if let Some(r) = self.reach.get(site) {
            return Ok(r);
        }
        let r: Option<i64> = conn.query_row(
            "SELECT greatest((SELECT max(ts) FROM events WHERE site = ?), (SELECT max(end_ts) FROM sessions WHERE site = ?))",
            params![site.as_str(), site.as_str()],
            |r| r.get(0),
        )?;
        self.reach.insert(site.clone(), r);
        Ok(r)
    }
}

/// The applier's step for rollups, inside its transaction and before the new rows are
/// appended: rebuilds sites whose rollups aren't current, reads back days the keeper hasn't
/// seen, and returns the records' deltas.
pub(super) fn deltas_for(
    conn: &Connection,
    keeping: &mut Keeping,
    records: &[&CommitRecord],
) -> Result<Deltas, StoreError> {
    let zones = site_zones(conn)?;
    let zone = |s: &SiteId| zones.get(s.as_str()).copied().unwrap_or(chrono_tz::UTC);
    let mut sites: Vec<SiteId> = Vec::new();
    for rec in records {
        for e in rec.stored() {
            if !sites.contains(&e.event.site) {
                sites.push(e.event.site.clone());
            }
        }
        for v in &rec.visits {
            if !sites.contains(&v.after.site) {
                sites.push(v.after.site.clone());
            }
        }
    }
    // Records from before an upgrade leave their sites' rollups stale (below); rebuilding
    // them is put off until the first batch without such records, so a backlog of them
    // costs one rebuild, not one per batch.
    let legacy = records.iter().any(|r| r.legacy);
    for site in &sites {
        let tz = zone(site);
        if keeping.zones.get(site) == Some(&tz) {
            continue;
        }
        if ready_zone(conn, site.as_str())?.as_deref() != Some(tz.name()) {
            if legacy {
                continue;
            }
            tracing::info!(%site, zone = tz.name(), "rebuilding the site's rollups");
            rebuild_site_now(conn, site.as_str(), tz)?;
            keeping.keeper.forget_site(site);
        }
        keeping.zones.insert(site.clone(), tz);
    }
    let t = std::time::Instant::now();
    let mut seeded = 0;
    for (site, day, span) in keeping.keeper.needed(records.iter().copied(), &zone) {
        let stored = if keeping.reach(conn, &site)?.is_some_and(|r| r >= span.0) {
            seeded += 1;
            load_day(conn, &site, span)?
        } else {
            SeedDay::default()
        };
        keeping.keeper.seed(&site, day, zone(&site), stored);
    }
    let seed_us = t.elapsed().as_micros() as u64;
    let t = std::time::Instant::now();
    let mut deltas = Deltas::default();
    keeping
        .keeper
        .absorb_all(records.iter().copied(), &zone, &mut deltas);
    tracing::debug!(
        seeded,
        seed_us,
        absorb_us = t.elapsed().as_micros() as u64,
        "rollup deltas"
    );
    // A record written before page durations carried their view's time: the days its
    // time on page went to are a guess, so its sites' rollups are rebuilt from raw rows
    // (at the first batch of newer records for them, or at the next start), and read raw
    // until then.
    for rec in records.iter().filter(|r| r.legacy) {
        for e in rec.entries.iter().filter(|e| !e.durations.is_empty()) {
            let site = &e.event.site;
            if keeping.zones.remove(site).is_some() {
                tracing::info!(%site, "a log record from before the upgrade: rebuilding the site's rollups");
                conn.execute(
                    "DELETE FROM rollup_sites WHERE site = ?",
                    params![site.as_str()],
                )?;
                keeping.keeper.forget_site(site);
            }
        }
    }
    Ok(deltas)
}
