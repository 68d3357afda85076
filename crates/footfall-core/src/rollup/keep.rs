//! Keeping rollups on write: commit records in, [`Deltas`] out.
//!
//! Sums are plain additions. Visitors need memory: per site, local day and visitor, which
//! dimension values that visitor was already counted under that day (and in which hours),
//! and how many of its visits that started that day enter or exit on each page. A day is
//! loaded from the stored rows the first time a record touches it ([`Rollups::needed`] /
//! [`Rollups::seed`]), so this state is always what storage holds, also after a restart,
//! and days nobody writes to any more are forgotten ([`Rollups::evict`]).

use super::{dim, Deltas, FastMap, Grain, LocalClock, Sums};
use crate::identify::{DurationChange, SessionAttrs, SessionRow};
use crate::query::VisitProp;
use crate::record::CommitRecord;
use crate::{SiteId, VisitorId};
use chrono_tz::Tz;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

/// `SessionAttrs` column of each `visit:*` dimension kept per event (all but entry/exit),
/// worked out once: it is needed for every event.
fn attr_columns() -> impl Iterator<Item = (u8, usize)> {
    static COLUMNS: std::sync::OnceLock<Vec<(u8, usize)>> = std::sync::OnceLock::new();
    COLUMNS
        .get_or_init(|| {
            VisitProp::ALL
                .iter()
                .enumerate()
                .filter(|(_, p)| !p.changes_during_visit())
                .filter_map(|(i, p)| {
                    SessionAttrs::COLUMNS
                        .iter()
                        .position(|c| *c == p.column())
                        .map(|col| (dim::VISIT + i as u8, col))
                })
                .collect()
        })
        .iter()
        .copied()
}

fn visit_dim(p: VisitProp) -> u8 {
    dim::VISIT + VisitProp::ALL.iter().position(|x| *x == p).unwrap_or(0) as u8
}

/// A stored event, as read back to seed a day.
#[derive(Debug, Clone)]
pub struct SeedEvent {
    pub visitor: VisitorId,
    /// The visit's id (scroll depth is kept per visit).
    pub session: u64,
    pub ts: i64,
    pub name: String,
    pub pathname: String,
    pub hostname: String,
    /// In `SessionAttrs::COLUMNS` order.
    pub attrs: SessionAttrs,
    /// Engagement events only.
    pub scroll_depth: Option<u8>,
    pub props: Vec<(String, String)>,
}

/// A visit's current state, as read back to seed the day it started.
#[derive(Debug, Clone)]
pub struct SeedVisit {
    pub visitor: VisitorId,
    pub entry_page: String,
    pub exit_page: String,
}

/// What storage holds for one local day, as read back to seed it.
#[derive(Debug, Clone, Default)]
pub struct SeedDay {
    /// Its events.
    pub events: Vec<SeedEvent>,
    /// The current state of the visits that started on it.
    pub visits: Vec<SeedVisit>,
    /// Per visit and page, its views that day with a measured duration.
    pub times: Vec<SeedTime>,
}

/// How many of a visit's views of a page on one day have a measured duration, as read back
/// to seed the day.
#[derive(Debug, Clone)]
pub struct SeedTime {
    pub session: u64,
    pub pathname: String,
    pub measured: u32,
}

/// Which values a visitor was counted under on one day. Values are kept as 64-bit hashes
/// of (dimension, value): a visitor-day holds a few dozen, so a collision is a 1 in 10¹⁷
/// event.
#[derive(Debug, Default)]
struct VisitorDay {
    seen: Vec<u64>,
    hours: u32,
    /// (hash of entry page, visits that started this day with it)
    entries: Vec<(u64, u32)>,
    exits: Vec<(u64, u32)>,
    /// (hash of visit and page; deepest scroll so far on that page)
    scroll: Vec<(u64, u8)>,
}

impl VisitorDay {
    /// Raises the deepest scroll of `h` to `depth`; the change to the sums (added depth,
    /// added visits).
    fn scrolled(&mut self, h: u64, depth: u8) -> (i64, i64) {
        match self.scroll.iter_mut().find(|x| x.0 == h) {
            Some(x) if depth > x.1 => {
                let added = i64::from(depth - x.1);
                x.1 = depth;
                (added, 0)
            }
            Some(_) => (0, 0),
            None => {
                self.scroll.push((h, depth));
                (i64::from(depth), 1)
            }
        }
    }

    fn first(&mut self, h: u64) -> bool {
        if self.seen.contains(&h) {
            false
        } else {
            self.seen.push(h);
            true
        }
    }

    /// Adds `sign` visits to page `h`; the change in distinct pages (−1, 0, +1).
    fn count(list: &mut Vec<(u64, u32)>, h: u64, sign: i64) -> i64 {
        match list.iter().position(|x| x.0 == h) {
            Some(i) if sign < 0 => {
                list[i].1 -= 1;
                if list[i].1 == 0 {
                    list.swap_remove(i);
                    -1
                } else {
                    0
                }
            }
            Some(i) => {
                list[i].1 += 1;
                0
            }
            // Removing a visit never seen: a record that contradicts storage; the sums stay
            // as they are rather than go negative.
            None if sign < 0 => 0,
            None => {
                list.push((h, 1));
                1
            }
        }
    }
}

#[derive(Debug, Default)]
struct DayState {
    visitors: FastMap<VisitorId, VisitorDay>,
    /// Per hash of (visit, page): its views that day with a measured duration. Kept per
    /// visit rather than per visitor: a duration change names its visit.
    measured: FastMap<u64, u32>,
    touched: u64,
}

impl DayState {
    /// A view's duration went from measured or not to measured or not; the change in
    /// (visit, page) pairs with a measured view (−1, 0, +1).
    fn measured(&mut self, h: u64, before: bool, after: bool) -> i64 {
        match (before, after) {
            (false, true) => {
                let n = self.measured.entry(h).or_default();
                *n += 1;
                i64::from(*n == 1)
            }
            (true, false) => match self.measured.get_mut(&h) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    0
                }
                Some(_) => {
                    self.measured.remove(&h);
                    -1
                }
                // A record that contradicts storage: leave the sums as they are.
                None => 0,
            },
            _ => 0,
        }
    }
}

/// Fixed, so a day seeded from storage and one kept in memory hash values alike.
const KEY_SEED: u64 = 0x666f_6f74_6661_6c6c;

fn key(dim: u8, value: &str) -> u64 {
    let mut h = foldhash::quality::FixedState::with_seed(KEY_SEED).build_hasher();
    dim.hash(&mut h);
    value.hash(&mut h);
    h.finish()
}

/// A (visit, page) pair's key, for scroll depth and time on page.
fn visit_page_key(session: u64, page: &str) -> u64 {
    let mut h = foldhash::quality::FixedState::with_seed(KEY_SEED).build_hasher();
    session.hash(&mut h);
    page.hash(&mut h);
    h.finish()
}

/// Sites' local time on the per-event path: each site's zone is looked up once, and its
/// offset once per local day rather than per event.
struct Clocks<'a> {
    zone: &'a dyn Fn(&SiteId) -> Tz,
    /// Per site: its clock, and an offset with the UTC span it holds for.
    sites: FastMap<SiteId, (LocalClock, i64, (i64, i64))>,
}

impl<'a> Clocks<'a> {
    fn new(zone: &'a dyn Fn(&SiteId) -> Tz) -> Self {
        Clocks {
            zone,
            sites: FastMap::default(),
        }
    }

    /// `ts` in the site's local time (ms).
    fn local(&mut self, site: &SiteId, ts: i64) -> i64 {
        if let Some((clock, offset, (lo, hi))) = self.sites.get_mut(site) {
            if !(*lo <= ts && ts < *hi) {
                (*offset, (*lo, *hi)) = clock.offset_span(ts);
            }
            return ts + *offset;
        }
        let clock = LocalClock::new((self.zone)(site));
        let (offset, span) = clock.offset_span(ts);
        self.sites.insert(site.clone(), (clock, offset, span));
        ts + offset
    }

    /// Local day, hour, and hour of the day.
    fn parts(&mut self, site: &SiteId, ts: i64) -> (i64, i64, u32) {
        LocalClock::split(self.local(site, ts))
    }

    fn day(&mut self, site: &SiteId, ts: i64) -> i64 {
        self.parts(site, ts).0
    }
}

/// The rollup keeper's memory. Not persisted: rebuilt from storage on demand.
#[derive(Debug, Default)]
pub struct Rollups {
    days: FastMap<(SiteId, i64), DayState>,
    tick: u64,
    strings: FastMap<Box<str>, Arc<str>>,
}

impl Rollups {
    pub fn new() -> Self {
        Rollups::default()
    }

    /// The days `records` touch that are not in memory: (site, local day, its UTC span).
    /// Seed each with [`seed`](Self::seed) before [`absorb`](Self::absorb)ing the records.
    pub fn needed<'a>(
        &self,
        records: impl IntoIterator<Item = &'a CommitRecord>,
        zone: &dyn Fn(&SiteId) -> Tz,
    ) -> Vec<(SiteId, i64, (i64, i64))> {
        let mut want: Vec<(SiteId, i64)> = Vec::new();
        let mut seen: FastMap<(SiteId, i64), ()> = FastMap::default();
        let mut clocks = Clocks::new(zone);
        let mut note = |site: &SiteId, ts: i64| {
            let day = clocks.day(site, ts);
            // Runs of one site and day are the common case: skip the map for them.
            if want.last().is_some_and(|(s, d)| *d == day && s == site) {
                return;
            }
            let k = (site.clone(), day);
            if !self.days.contains_key(&k) && seen.insert(k.clone(), ()).is_none() {
                want.push(k);
            }
        };
        for rec in records {
            for e in rec.stored() {
                note(&e.event.site, e.event.ts.0);
            }
            for e in &rec.entries {
                for d in &e.durations {
                    note(&e.event.site, d.ts.0);
                }
            }
            for v in &rec.visits {
                if let Some(b) = &v.before {
                    note(&b.site, b.start.0);
                }
                note(&v.after.site, v.after.start.0);
            }
        }
        want.into_iter()
            .map(|(site, day)| {
                let span = LocalClock::new(zone(&site)).day_span(day);
                (site, day, span)
            })
            .collect()
    }

    /// Loads a day from what storage holds: its events, the current state of the visits
    /// that started on it, and how many of each visit's views of each page that day have
    /// a measured duration.
    pub fn seed(&mut self, site: &SiteId, day: i64, tz: Tz, stored: SeedDay) {
        let SeedDay {
            events,
            visits,
            times,
        } = stored;
        let clock = LocalClock::new(tz);
        let state = self.days.entry((site.clone(), day)).or_default();
        state.touched = self.tick;
        for e in events {
            if e.name == "engagement" {
                if let Some(depth) = e.scroll_depth {
                    let vd = state.visitors.entry(e.visitor).or_default();
                    vd.scrolled(visit_page_key(e.session, &e.pathname), depth);
                }
                continue;
            }
            let vd = state.visitors.entry(e.visitor).or_default();
            vd.hours |= 1 << clock.hour_of_day(e.ts);
            for (d, value) in event_values(&e.pathname, &e.name, &e.hostname, &e.attrs) {
                vd.first(key(d, value));
            }
            for (d, value) in prop_values(&e.name, &e.props) {
                vd.first(key(d, &value));
            }
        }
        for v in visits {
            let vd = state.visitors.entry(v.visitor).or_default();
            VisitorDay::count(&mut vd.entries, key(0, &v.entry_page), 1);
            VisitorDay::count(&mut vd.exits, key(0, &v.exit_page), 1);
        }
        for t in times {
            if t.measured > 0 {
                *state
                    .measured
                    .entry(visit_page_key(t.session, &t.pathname))
                    .or_default() += t.measured;
            }
        }
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        if self.strings.len() < 1 << 20 {
            self.strings.insert(Box::from(s), a.clone());
        }
        a
    }

    /// Adds a record's effect to `out`. Every day it touches must have been seeded.
    pub fn absorb(&mut self, rec: &CommitRecord, zone: &dyn Fn(&SiteId) -> Tz, out: &mut Deltas) {
        self.absorb_all([rec], zone, out);
    }

    /// [`absorb`](Self::absorb) for a batch of records, looking each site's zone up once.
    pub fn absorb_all<'a>(
        &mut self,
        recs: impl IntoIterator<Item = &'a CommitRecord>,
        zone: &dyn Fn(&SiteId) -> Tz,
        out: &mut Deltas,
    ) {
        let mut clocks = Clocks::new(zone);
        for rec in recs {
            self.absorb_with(rec, &mut clocks, out);
        }
    }

    fn absorb_with(&mut self, rec: &CommitRecord, clocks: &mut Clocks<'_>, out: &mut Deltas) {
        self.tick += 1;
        let empty: Arc<str> = self.intern("");
        let mut values: Vec<(u8, Arc<str>)> = Vec::with_capacity(4 + VisitProp::ALL.len());
        for (e, attrs) in rec.stored_with_attrs() {
            let ev = &e.event;
            let Some(attrs) = attrs else { continue };
            if ev.name == "engagement" {
                if let Some(depth) = ev.scroll_depth {
                    self.scroll(e, depth, clocks, out);
                }
                continue;
            }
            let (day, hour, hour_of_day) = clocks.parts(&ev.site, ev.ts.0);
            let bit = 1u32 << hour_of_day;
            let pageview = i64::from(ev.name == "pageview");
            // Visit attributes are shared strings already; only the event's own are interned.
            values.clear();
            values.push((dim::TOTAL, empty.clone()));
            values.push((dim::PAGE, self.intern(&ev.pathname)));
            values.push((dim::NAME, self.intern(&ev.name)));
            values.push((dim::HOSTNAME, self.intern(&ev.hostname)));
            for (d, col) in attr_columns() {
                let v = attrs.shared(col).cloned().unwrap_or_else(|| empty.clone());
                values.push((d, v));
            }
            for (d, value) in prop_values(&ev.name, &ev.props) {
                values.push((d, self.intern(&value)));
            }
            let tick = self.tick;
            let state = self.days.entry((ev.site.clone(), day)).or_default();
            state.touched = tick;
            let vd = state.visitors.entry(e.visitor).or_default();
            let new_hour = vd.hours & bit == 0;
            vd.hours |= bit;
            let h = out.row(&ev.site, Grain::Hour, hour, dim::TOTAL, &empty);
            h.events += 1;
            h.pageviews += pageview;
            h.visitors += i64::from(new_hour);
            let rows = out.bucket(&ev.site, Grain::Day, day);
            for (d, value) in values.drain(..) {
                let first = vd.first(key(d, &value));
                let r = rows.row(d, &value);
                r.events += 1;
                r.pageviews += pageview;
                r.visitors += i64::from(first);
            }
        }
        for v in &rec.visits {
            if let Some(b) = &v.before {
                self.visit(b, -1, clocks, out);
            }
            self.visit(&v.after, 1, clocks, out);
        }
        // Every entry, stored or not: a heartbeat extends the visit, and with it the time
        // of the visit's last page.
        for e in &rec.entries {
            for d in &e.durations {
                self.page_time(e, d, clocks, out);
            }
        }
    }

    /// A page view's measured duration changed: kept on its page's row of its local day.
    fn page_time(
        &mut self,
        e: &crate::record::Entry,
        d: &DurationChange,
        clocks: &mut Clocks<'_>,
        out: &mut Deltas,
    ) {
        let site = &e.event.site;
        let day = clocks.day(site, d.ts.0);
        let session = e.session.map_or(0, |s| s.0);
        let page = self.intern(&d.pathname);
        let tick = self.tick;
        let state = self.days.entry((site.clone(), day)).or_default();
        state.touched = tick;
        let visits = state.measured(
            visit_page_key(session, &page),
            d.before.is_some(),
            d.after.is_some(),
        );
        let added = d.after.unwrap_or(0) - d.before.unwrap_or(0);
        if added != 0 || visits != 0 {
            let r = out.row(site, Grain::Day, day, dim::PAGE, &page);
            r.page_time_ms += added;
            r.page_time_visits += visits;
        }
    }

    /// An engagement event's scroll depth: raises the deepest scroll of its visit on its
    /// local day on its page. Kept by page only: the Stats API asks for scroll depth with a
    /// page breakdown or filter, never without one.
    fn scroll(
        &mut self,
        e: &crate::record::Entry,
        depth: u8,
        clocks: &mut Clocks<'_>,
        out: &mut Deltas,
    ) {
        let ev = &e.event;
        let day = clocks.day(&ev.site, ev.ts.0);
        let session = e.session.map_or(0, |s| s.0);
        let page = self.intern(&ev.pathname);
        let tick = self.tick;
        let state = self.days.entry((ev.site.clone(), day)).or_default();
        state.touched = tick;
        let vd = state.visitors.entry(e.visitor).or_default();
        let (added, visits) = vd.scrolled(visit_page_key(session, &page), depth);
        if added != 0 || visits != 0 {
            let r = out.row(&ev.site, Grain::Day, day, dim::PAGE, &page);
            r.scroll_sum += added;
            r.scroll_visits += visits;
        }
    }

    /// Adds (sign 1) or takes away (−1) one state of a visit.
    fn visit(&mut self, r: &SessionRow, sign: i64, clocks: &mut Clocks<'_>, out: &mut Deltas) {
        let (day, hour, _) = clocks.parts(&r.site, r.start.0);
        let empty = self.intern("");
        let visit_sums = Sums {
            visits: sign,
            bounces: sign * i64::from(r.is_bounce),
            duration_ms: sign * r.duration_ms(),
            visit_pageviews: sign * i64::from(r.pageviews),
            ..Sums::default()
        };
        out.row(&r.site, Grain::Hour, hour, dim::TOTAL, &empty)
            .add(&visit_sums);
        out.row(&r.site, Grain::Day, day, dim::TOTAL, &empty)
            .add(&visit_sums);
        for (d, col) in attr_columns() {
            let value = r
                .attrs
                .shared(col)
                .cloned()
                .unwrap_or_else(|| empty.clone());
            out.row(&r.site, Grain::Day, day, d, &value)
                .add(&visit_sums);
        }
        let tick = self.tick;
        let state = self.days.entry((r.site.clone(), day)).or_default();
        state.touched = tick;
        let vd = state.visitors.entry(r.visitor).or_default();
        let entry_change = VisitorDay::count(&mut vd.entries, key(0, &r.entry_page), sign);
        let exit_change = VisitorDay::count(&mut vd.exits, key(0, &r.exit_page), sign);
        for (p, page, change) in [
            (VisitProp::EntryPage, &r.entry_page, entry_change),
            (VisitProp::ExitPage, &r.exit_page, exit_change),
        ] {
            let row = out.row(&r.site, Grain::Day, day, visit_dim(p), page);
            row.add(&visit_sums);
            row.visitors += change;
            row.pageviews += sign * i64::from(r.pageviews);
            row.events += sign * i64::from(r.events);
        }
    }

    /// Forgets days not touched by the last `idle` records, beyond the `keep` most recent
    /// days of each site — their visitors come back from storage if a late event needs them.
    pub fn evict(&mut self, keep: i64, idle: u64) {
        let mut newest: HashMap<SiteId, i64> = HashMap::new();
        for (site, day) in self.days.keys() {
            let n = newest.entry(site.clone()).or_insert(*day);
            *n = (*n).max(*day);
        }
        let tick = self.tick;
        self.days.retain(|(site, day), s| {
            let recent = newest.get(site).is_some_and(|n| *day > n - keep);
            recent || tick.saturating_sub(s.touched) < idle
        });
        if self.strings.len() >= 1 << 20 {
            self.strings.clear();
        }
    }

    /// Forgets everything (after a failed write, whose changes this state already holds).
    pub fn clear(&mut self) {
        self.days.clear();
    }

    /// Forgets one site (its rollups were rebuilt, or its time zone changed).
    pub fn forget_site(&mut self, site: &SiteId) {
        self.days.retain(|(s, _), _| s != site);
    }

    /// Visitor-days held, for metrics.
    pub fn visitor_days(&self) -> usize {
        self.days.values().map(|d| d.visitors.len()).sum()
    }
}

/// The property rows an event counts under (day grain): per key, and per name and key.
fn prop_values<'a>(
    name: &'a str,
    props: &'a [(String, String)],
) -> impl Iterator<Item = (u8, String)> + 'a {
    super::first_props(props).flat_map(move |(k, v)| {
        [
            (dim::PROP, super::prop_value(None, k, v)),
            (dim::NAME_PROP, super::prop_value(Some(name), k, v)),
        ]
    })
}

/// Every (dimension, value) an event counts under at day grain, but its properties.
fn event_values<'a>(
    pathname: &'a str,
    name: &'a str,
    hostname: &'a str,
    attrs: &'a SessionAttrs,
) -> impl Iterator<Item = (u8, &'a str)> {
    [
        (dim::TOTAL, ""),
        (dim::PAGE, pathname),
        (dim::NAME, name),
        (dim::HOSTNAME, hostname),
    ]
    .into_iter()
    .chain(attr_columns().map(move |(d, col)| (d, attrs.value(col))))
}
