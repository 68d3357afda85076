//! Rollups in ClickHouse, kept on write by each partition's applier.
//!
//! The keeping is the embedded store's ([`footfall_core::rollup::keep`]): days are seeded
//! from stored rows, records turn into deltas. What differs:
//! - One applier per log partition, and partitions split visitors, so each keeps the
//!   rollups of its own visitors: it seeds days from its partition's rows only, and the
//!   partitions' rows add up to the whole (a visitor is counted in one partition).
//! - No transactions: a chunk's deltas are rows of their own, tagged with the chunk's log
//!   position like the raw rows, so an unfinished flush's are removed with them. Reads sum;
//!   the applier folds them now and then (`fold.rs`).
//! - `rollup_sites` says per site and partition in which zone the rollups are kept and
//!   whether they are complete — kept since the partition's first row of the site. A site
//!   that had rows before rollups were kept, or whose zone changed, is read from raw rows
//!   until the partition's applier rebuilt it (`rebuild.rs`).

use super::http::{quote, Http};
use super::import::{MIGRATED_EVENTS, MIGRATED_VISITS};
use crate::StoreError;
use chrono_tz::Tz;
use footfall_core::identify::SessionAttrs;
use footfall_core::record::CommitRecord;
use footfall_core::rollup::keep::{Rollups, SeedDay, SeedEvent, SeedTime, SeedVisit};
use footfall_core::rollup::Deltas;
use footfall_core::{SiteId, VisitorId};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Every site's time zone as configured now (the metadata store's), asked once per chunk.
pub type Zones = Arc<dyn Fn() -> Result<HashMap<String, Tz>, StoreError> + Send + Sync>;

/// What a partition's applier remembers between chunks to keep rollups.
#[derive(Default)]
pub(super) struct Keeping {
    keeper: Rollups,
    /// Per site: the zone its rollups are kept in here and whether they are complete, as
    /// `rollup_sites` says (or will, once the chunk being written lands).
    sites: HashMap<SiteId, (Tz, bool)>,
    /// Per site, the latest time this partition's stored rows reach (None: no rows); a day
    /// after it is seeded empty without reading.
    reach: crate::reach::Reach,
    /// The zones last read, used when the metadata store cannot be asked.
    last_zones: Option<HashMap<String, Tz>>,
}

/// A chunk's rollup rows and `rollup_sites` rows, as JSONEachRow bodies.
#[derive(Default)]
pub(super) struct ChunkRows {
    pub rollups: Vec<u8>,
    pub sites: Vec<u8>,
    pub rollup_rows: usize,
}

/// A 64-bit number from a JSONEachRow field (ClickHouse quotes them by default).
fn num(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_u64().map(|u| u as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn texts(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default()
}

fn field(row: &Value, name: &str) -> Result<i64, StoreError> {
    num(&row[name])
        .ok_or_else(|| StoreError::Corrupt(format!("ClickHouse row without {name}: {row}")))
}

/// An unsigned 64-bit id (event, visitor, visit) from a JSONEachRow field.
fn id(row: &Value, name: &str) -> Result<u64, StoreError> {
    let v = &row[name];
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| StoreError::Corrupt(format!("ClickHouse row without {name}: {row}")))
}

impl Keeping {
    /// Forgets everything: after a failed write (whose changes the keeper already holds)
    /// or when another applier may have written since.
    pub(super) fn clear(&mut self) {
        self.keeper.clear();
        self.sites.clear();
        self.reach.clear();
    }

    /// After a batch was stored: moves each site's reach past its rows and lets the
    /// keeper forget days nobody writes to any more.
    pub(super) fn applied<'a>(&mut self, records: impl Iterator<Item = &'a CommitRecord>) {
        self.reach.applied(records);
        self.keeper.evict(2, 64);
    }

    fn reach(&mut self, http: &Http, part: u16, site: &SiteId) -> Result<Option<i64>, StoreError> {
        if let Some(r) = self.reach.get(site) {
            return Ok(r);
        }
        let s = quote(site.as_str());
        let parts = seed_parts(part);
        let rows = http.json_rows(&format!(
            "SELECT (SELECT count() FROM events WHERE site = {s} AND log_part IN ({parts})) AS n, \
             (SELECT max(ts) FROM events WHERE site = {s} AND log_part IN ({parts})) AS e, \
             (SELECT max(end_ts) FROM sessions WHERE site = {s} AND log_part IN ({parts})) AS v"
        ))?;
        let row = rows.first().cloned().unwrap_or(Value::Null);
        let r = if num(&row["n"]).unwrap_or(0) == 0 {
            None
        } else {
            [num(&row["e"]), num(&row["v"])].into_iter().flatten().max()
        };
        self.reach.insert(site.clone(), r);
        Ok(r)
    }

    /// `site`'s rollups of this partition were rebuilt in `tz`: keep them from now on.
    pub(super) fn rebuilt(&mut self, site: &SiteId, tz: Tz) {
        self.keeper.forget_site(site);
        self.sites.insert(site.clone(), (tz, true));
    }

    pub(super) fn zones(&mut self, zones: &Zones) -> Result<HashMap<String, Tz>, StoreError> {
        match zones() {
            Ok(z) => {
                self.last_zones = Some(z.clone());
                Ok(z)
            }
            Err(e) => match &self.last_zones {
                Some(z) => {
                    tracing::warn!(error = %e, "cannot read the sites' time zones; keeping rollups in the last known");
                    Ok(z.clone())
                }
                None => Err(e),
            },
        }
    }

    /// Whether this partition keeps `site`'s rollups in `tz`: what `rollup_sites` says,
    /// brought up to date — a site new here is complete; one with rows from before, or
    /// whose zone changed, is not (until rebuilt: `rebuild.rs`). A change is a row for
    /// `rollup_sites`, tagged with the chunk's position.
    #[allow(clippy::too_many_arguments)]
    fn site_state(
        &mut self,
        http: &Http,
        part: u16,
        site: &SiteId,
        tz: Tz,
        legacy: bool,
        last: u64,
        out: &mut Vec<u8>,
    ) -> Result<bool, StoreError> {
        let known = match self.sites.get(site) {
            Some(k) => Some(*k),
            None => {
                let rows = http.json_rows(&format!(
                    "SELECT argMax(timezone, (log_pos, rev)) AS tz, argMax(complete, (log_pos, rev)) AS done, \
                     count() AS n FROM rollup_sites WHERE site = {} AND log_part = {part}",
                    quote(site.as_str())
                ))?;
                rows.first()
                    .filter(|r| num(&r["n"]).unwrap_or(0) > 0)
                    .map(|r| {
                        let zone: Tz = r["tz"]
                            .as_str()
                            .unwrap_or("UTC")
                            .parse()
                            .unwrap_or(chrono_tz::UTC);
                        (zone, num(&r["done"]) == Some(1))
                    })
            }
        };
        let now = match known {
            Some((zone, complete)) if zone == tz && !(legacy && complete) => (zone, complete),
            Some(_) => (tz, false),
            None => {
                let before = http.number(&format!(
                    "SELECT count() FROM (SELECT 1 FROM events WHERE site = {} AND log_part = {part} LIMIT 1)",
                    quote(site.as_str())
                ))?;
                (tz, before == 0 && !legacy)
            }
        };
        if known != Some(now) {
            if known.is_some_and(|(_, complete)| complete) {
                tracing::warn!(%site, part, zone = tz.name(), "rollups of the site are no longer complete in this partition; its reports read raw rows");
            }
            serde_json::to_writer(
                &mut *out,
                &serde_json::json!({"site": site.as_str(), "log_part": part, "timezone": now.0.name(),
                    "complete": u8::from(now.1), "log_pos": last}),
            )
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.push(b'\n');
            self.keeper.forget_site(site);
        }
        self.sites.insert(site.clone(), now);
        Ok(now.1)
    }

    /// The rollup rows of a chunk (records up to position `last`) of partition `part`,
    /// seeding days from what the partition has stored before it.
    pub(super) fn chunk(
        &mut self,
        http: &Http,
        part: u16,
        zones: &Zones,
        records: &[&CommitRecord],
        last: u64,
    ) -> Result<ChunkRows, StoreError> {
        let configured = self.zones(zones)?;
        let mut out = ChunkRows::default();
        let mut sites: Vec<(SiteId, bool)> = Vec::new();
        for rec in records {
            let touched = rec
                .stored()
                .map(|e| &e.event.site)
                .chain(rec.visits.iter().map(|v| &v.after.site));
            for site in touched {
                match sites.iter_mut().find(|(s, _)| s == site) {
                    Some((_, legacy)) => *legacy |= rec.legacy,
                    None => sites.push((site.clone(), rec.legacy)),
                }
            }
        }
        let zone_of = |s: &str| configured.get(s).copied().unwrap_or(chrono_tz::UTC);
        let mut complete: HashMap<SiteId, bool> = HashMap::new();
        for (site, legacy) in &sites {
            let tz = zone_of(site.as_str());
            let c = self.site_state(http, part, site, tz, *legacy, last, &mut out.sites)?;
            complete.insert(site.clone(), c);
        }
        if !complete.values().any(|c| *c) {
            return Ok(out);
        }
        let zone = |s: &SiteId| zone_of(s.as_str());
        for (site, day, span) in self.keeper.needed(records.iter().copied(), &zone) {
            let stored = if complete.get(&site).copied().unwrap_or(false)
                && self.reach(http, part, &site)?.is_some_and(|r| r >= span.0)
            {
                load_day(http, part, &site, span)?
            } else {
                SeedDay::default()
            };
            self.keeper.seed(&site, day, zone(&site), stored);
        }
        let mut deltas = Deltas::default();
        self.keeper
            .absorb_all(records.iter().copied(), &zone, &mut deltas);
        for (key, sums) in deltas.changed() {
            if !complete.get(&key.site).copied().unwrap_or(false) {
                continue;
            }
            serde_json::to_writer(
                &mut out.rollups,
                &serde_json::json!({
                    "site": key.site.as_str(), "grain": key.grain as i8, "bucket": key.bucket,
                    "dim": key.dim, "value": &*key.value,
                    "visitors": sums.visitors, "pageviews": sums.pageviews, "events": sums.events,
                    "visits": sums.visits, "bounces": sums.bounces, "duration_ms": sums.duration_ms,
                    "visit_pageviews": sums.visit_pageviews, "scroll_sum": sums.scroll_sum,
                    "scroll_visits": sums.scroll_visits, "page_time_ms": sums.page_time_ms,
                    "page_time_visits": sums.page_time_visits, "log_part": part, "log_pos": last,
                }),
            )
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.rollups.push(b'\n');
            out.rollup_rows += 1;
        }
        Ok(out)
    }
}

/// The partitions whose rows seed partition `part`'s days: its own, and the rows copied
/// from an embedded store. Those are every partition's history: a visitor counted before
/// the copy is not counted again on the same day by whichever partition it comes back to.
fn seed_parts(part: u16) -> String {
    format!("{part}, {MIGRATED_EVENTS}, {MIGRATED_VISITS}")
}

/// What partition `part` holds for one local day of a site: its events, the visits started
/// on it, and the measured page views of each visit and page (as the embedded store's
/// `load_day`, restricted to the partition).
fn load_day(
    http: &Http,
    part: u16,
    site: &SiteId,
    (start, end): (i64, i64),
) -> Result<SeedDay, StoreError> {
    let s = quote(site.as_str());
    let parts = seed_parts(part);
    let cols = SessionAttrs::COLUMNS.join(", ");
    let rows = http.json_rows(&format!(
        "SELECT event_id, visitor_id, ts, name, pathname, session_id, scroll_depth, prop_keys, prop_values, {cols} \
         FROM events WHERE site = {s} AND log_part IN ({parts}) AND ts >= {start} AND ts < {end} \
         AND (name <> 'engagement' OR scroll_depth IS NOT NULL)"
    ))?;
    let mut strings: HashMap<String, Arc<str>> = HashMap::new();
    let mut intern = |v: &Value| -> Arc<str> {
        let s = v.as_str().unwrap_or_default();
        match strings.get(s) {
            Some(a) => a.clone(),
            None => {
                let a: Arc<str> = Arc::from(s);
                strings.insert(s.to_string(), a.clone());
                a
            }
        }
    };
    let mut events = Vec::with_capacity(rows.len());
    // Per visit: its page views that day, and the last of them (ts, event id, path).
    let mut views: HashMap<(u64, String), u32> = HashMap::new();
    let mut last_view: HashMap<u64, (i64, u64, String)> = HashMap::new();
    for r in &rows {
        let mut attrs: [Arc<str>; 16] = Default::default();
        for (i, c) in SessionAttrs::COLUMNS.iter().enumerate() {
            attrs[i] = intern(&r[*c]);
        }
        let (ts, session) = (field(r, "ts")?, id(r, "session_id")?);
        let name = text(&r["name"]);
        let pathname = text(&r["pathname"]);
        if name == "pageview" {
            *views.entry((session, pathname.clone())).or_default() += 1;
            let at = (ts, id(r, "event_id")?);
            let l = last_view
                .entry(session)
                .or_insert((i64::MIN, 0, String::new()));
            if (at.0, at.1) > (l.0, l.1) {
                *l = (at.0, at.1, pathname.clone());
            }
        }
        events.push(SeedEvent {
            visitor: VisitorId(id(r, "visitor_id")?),
            session,
            ts,
            name,
            pathname,
            hostname: attrs[0].to_string(),
            attrs: SessionAttrs::from_values(attrs),
            scroll_depth: num(&r["scroll_depth"]).and_then(|d| u8::try_from(d).ok()),
            props: texts(&r["prop_keys"])
                .into_iter()
                .zip(texts(&r["prop_values"]))
                .collect(),
        });
    }
    // A version whose signs sum to +1 is a visit's current state (both rows of a cancelled
    // version carry the same start).
    let rows = http.json_rows(&format!(
        "SELECT visitor_id, entry_page, exit_page FROM sessions \
         WHERE site = {s} AND log_part IN ({parts}) AND start_ts >= {start} AND start_ts < {end} \
         GROUP BY session_id, version, visitor_id, entry_page, exit_page HAVING sum(sign) > 0"
    ))?;
    let mut visits = Vec::with_capacity(rows.len());
    for r in &rows {
        visits.push(SeedVisit {
            visitor: VisitorId(id(r, "visitor_id")?),
            entry_page: text(&r["entry_page"]),
            exit_page: text(&r["exit_page"]),
        });
    }
    // The day's last view of each visit is unmeasured if nothing in the visit came after
    // it (the sequencer measures to the next page view, or else to the visit's end).
    if !last_view.is_empty() {
        let rows = http.json_rows(&format!(
            "SELECT session_id, any(end_ts) AS visit_end FROM sessions \
             WHERE site = {s} AND log_part IN ({parts}) AND start_ts < {end} AND end_ts >= {start} \
             GROUP BY session_id, version HAVING sum(sign) > 0"
        ))?;
        for r in &rows {
            let session = id(r, "session_id")?;
            if let Some((ts, _, path)) = last_view.get(&session) {
                if field(r, "visit_end")? <= *ts {
                    if let Some(n) = views.get_mut(&(session, path.clone())) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
        }
    }
    Ok(SeedDay {
        events,
        visits,
        times: views
            .into_iter()
            .map(|((session, pathname), measured)| SeedTime {
                session,
                pathname,
                measured,
            })
            .collect(),
    })
}

/// The zone `site`'s rollups are complete in across every partition that has its rows.
pub(super) fn ready_zone(http: &Http, site: &SiteId) -> Result<Option<String>, StoreError> {
    let rows = http.json_rows(&format!(
        "SELECT argMax(timezone, (log_pos, rev)) AS tz, argMax(complete, (log_pos, rev)) AS done \
         FROM rollup_sites WHERE site = {} GROUP BY log_part",
        quote(site.as_str())
    ))?;
    let mut zone: Option<String> = None;
    for r in &rows {
        let tz = text(&r["tz"]);
        if num(&r["done"]) != Some(1) || zone.as_ref().is_some_and(|z| *z != tz) {
            return Ok(None);
        }
        zone = Some(tz);
    }
    Ok(zone)
}
