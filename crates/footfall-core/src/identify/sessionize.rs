//! Visits, dedup and page durations, as one state machine per (site, visitor).
//!
//! Rules (DESIGN.md §1–2):
//! - a visit ends after `visit_gap` without activity; an event joins the visit whose
//!   `[start − gap, end + gap]` contains it, so slightly out-of-order events land in the
//!   right visit;
//! - the same visitor viewing the same path within `dedup_window` counts once (the
//!   repeat still counts as activity: the visitor is on that page);
//! - a page view's duration is the time to the next page view of the visit; the last page
//!   view's lasts until the visit's last activity (heartbeat, engagement or event).
//!
//! Every change is reported as before/after values so the caller can keep running totals
//! and write collapsing rows (`sign = −1` for the old state, `+1` for the new).

use crate::drop::DropReason;
use crate::event::{EnrichedEvent, EventKind};
use crate::intern::Interner;
use crate::types::{EventId, SessionId, SiteId, Timestamp, VisitorId};
use serde::{Deserialize, Serialize};
use siphasher::sip::SipHasher13;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub visit_gap_ms: i64,
    /// 0 turns dedup off.
    pub dedup_window_ms: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            visit_gap_ms: 30 * Timestamp::MINUTE,
            dedup_window_ms: 30 * Timestamp::MINUTE,
        }
    }
}

/// The visit's attributes, taken from its first event, as shared strings in the order of
/// [`COLUMNS`](Self::COLUMNS) (see [`value`](Self::value)).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionAttrs([Arc<str>; 16]);

impl SessionAttrs {
    /// Storage column names of the attributes, in the order of [`value`](Self::value):
    /// the one list the backends build their visit columns from.
    pub const COLUMNS: [&'static str; 16] = [
        "hostname",
        "referrer",
        "referrer_source",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_content",
        "utm_term",
        "country",
        "region",
        "city",
        "browser",
        "browser_version",
        "os",
        "os_version",
        "device",
    ];

    /// The value of column `i` of [`COLUMNS`](Self::COLUMNS) ("" past the end).
    pub fn value(&self, i: usize) -> &str {
        self.0.get(i).map_or("", |v| v)
    }

    /// Column `i`'s shared string, if there is one.
    pub fn shared(&self, i: usize) -> Option<&Arc<str>> {
        self.0.get(i)
    }

    /// From stored values, in [`COLUMNS`](Self::COLUMNS) order.
    pub fn from_values(values: [Arc<str>; 16]) -> Self {
        SessionAttrs(values)
    }

    pub fn from_event(ev: &EnrichedEvent, strings: &mut Interner) -> Self {
        fn opt(v: &Option<String>) -> &str {
            v.as_deref().unwrap_or("")
        }
        let values: [&str; 16] = [
            &ev.hostname,
            &ev.referrer,
            &ev.referrer_source,
            &ev.utm.source,
            &ev.utm.medium,
            &ev.utm.campaign,
            &ev.utm.content,
            &ev.utm.term,
            opt(&ev.geo.country),
            opt(&ev.geo.region),
            opt(&ev.geo.city),
            &ev.client.browser,
            &ev.client.browser_version,
            &ev.client.os,
            &ev.client.os_version,
            &ev.client.device,
        ];
        SessionAttrs(values.map(|v| strings.get(v)))
    }
}

/// One visit as stored in the `sessions` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRow {
    pub site: SiteId,
    pub session: SessionId,
    pub visitor: VisitorId,
    pub version: u64,
    pub start: Timestamp,
    pub end: Timestamp,
    pub entry_page: Arc<str>,
    pub exit_page: Arc<str>,
    pub pageviews: u32,
    pub events: u32,
    pub is_bounce: bool,
    /// Shared: a visit's attributes never change, and rows are cloned on every event.
    pub attrs: Arc<SessionAttrs>,
}

impl SessionRow {
    pub fn duration_ms(&self) -> i64 {
        self.end.0 - self.start.0
    }
}

/// A change in one page view's measured duration (None: not measurable yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DurationChange {
    pub event: EventId,
    /// When the page view happened (its time is kept on its local day).
    pub ts: Timestamp,
    pub pathname: Arc<str>,
    pub before: Option<i64>,
    pub after: Option<i64>,
}

/// What identify decided about one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The visitor id to record (yesterday's hash if the visit started before midnight).
    pub visitor: VisitorId,
    pub session: Option<SessionId>,
    /// Whether the event is written to `events` (under `event_id`).
    pub stored: bool,
    /// Why a valid event is not stored, if it isn't (and isn't a heartbeat).
    pub skipped: Option<DropReason>,
    pub session_before: Option<SessionRow>,
    pub session_after: Option<SessionRow>,
    pub durations: Vec<DurationChange>,
    /// The visit's attributes, stored on the event too (as Plausible does), so that
    /// breaking event metrics down by a visit dimension needs no join.
    pub attrs: Option<Arc<SessionAttrs>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pageview {
    event: EventId,
    ts: Timestamp,
    pathname: Arc<str>,
    duration: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Visit {
    row: SessionRow,
    interactive: u32,
    /// Page views in (ts, event id) order.
    pageviews: Vec<Pageview>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct VisitorState {
    visits: Vec<Visit>,
    /// Counted page views per path, for dedup.
    counted: HashMap<Arc<str>, Vec<Timestamp>>,
    last_seen: Timestamp,
}

/// Bounds memory for pathological visits (a script reloading all day).
const MAX_PAGEVIEWS_PER_VISIT: usize = 5_000;

/// Serialisable so the sequencer can snapshot it: a restart loads the snapshot and replays
/// the log after it, instead of reverse-engineering visits from the database.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Identifier {
    /// Not part of a snapshot: the operator's current settings apply after a restart.
    #[serde(skip)]
    cfg: Config,
    /// As a list of pairs: serde formats need string map keys, and this key is a tuple.
    #[serde(with = "visitor_map")]
    visitors: HashMap<(SiteId, VisitorId), VisitorState>,
    /// Paths and visit attributes, shared between visitors.
    #[serde(skip)]
    strings: Interner,
}

mod visitor_map {
    use super::VisitorState;
    use crate::types::{SiteId, VisitorId};
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::HashMap;

    type Map = HashMap<(SiteId, VisitorId), VisitorState>;

    pub fn serialize<S: Serializer>(m: &Map, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Map, D::Error> {
        let pairs: Vec<((SiteId, VisitorId), VisitorState)> = Vec::deserialize(d)?;
        Ok(pairs.into_iter().collect())
    }
}

impl Identifier {
    pub fn new(cfg: Config) -> Self {
        Identifier {
            cfg,
            visitors: HashMap::new(),
            strings: Interner::default(),
        }
    }

    pub fn config(&self) -> Config {
        self.cfg
    }

    /// Applies settings to a state restored from a snapshot.
    pub fn set_config(&mut self, cfg: Config) {
        self.cfg = cfg;
    }

    pub fn tracked_visitors(&self) -> usize {
        self.visitors.len()
    }

    /// The page `ev`'s visitor was on at `ev`'s time: the visit's latest page view at or
    /// before it (else the visit's first). None when no visit holds that time. For events
    /// whose sender doesn't say where they happened (OpenPanel's link clicks).
    pub fn page_at(&self, ev: &EnrichedEvent) -> Option<Arc<str>> {
        let visitor = self.resolve_visitor(&ev.site, ev.visitor, ev.visitor_previous_salt);
        let state = self.visitors.get(&(ev.site.clone(), visitor))?;
        let gap = self.cfg.visit_gap_ms;
        let ts = ev.ts;
        let visit = state
            .visits
            .iter()
            .find(|v| ts.0 >= v.row.start.0 - gap && ts.0 <= v.row.end.0 + gap)?;
        visit
            .pageviews
            .iter()
            .rev()
            .find(|p| p.ts <= ts)
            .or(visit.pageviews.first())
            .map(|p| p.pathname.clone())
    }

    /// Decides visitor, visit, dedup and durations for `ev`. `event_id` is the id the event
    /// gets if it is stored.
    pub fn process(&mut self, ev: &EnrichedEvent, event_id: EventId) -> Outcome {
        let visitor = self.resolve_visitor(&ev.site, ev.visitor, ev.visitor_previous_salt);
        let cfg = self.cfg;
        let state = self.visitors.entry((ev.site.clone(), visitor)).or_default();
        state.last_seen = state.last_seen.max(ev.ts);
        let ts = ev.ts;

        let deduped = ev.kind == EventKind::Pageview && cfg.dedup_window_ms > 0 && {
            let times = state.counted.get(ev.pathname.as_str());
            times.is_some_and(|t| t.iter().any(|c| (ts.0 - c.0).abs() < cfg.dedup_window_ms))
        };

        let gap = cfg.visit_gap_ms;
        let found = state
            .visits
            .iter()
            .position(|v| ts.0 >= v.row.start.0 - gap && ts.0 <= v.row.end.0 + gap);
        let idx = match found {
            Some(i) => i,
            None if matches!(ev.kind, EventKind::Heartbeat | EventKind::Engagement) || deduped => {
                // Pings don't start visits: a tab left open overnight isn't a new visit.
                let skipped = if deduped {
                    Some(DropReason::Duplicate)
                } else {
                    (ev.kind == EventKind::Engagement).then_some(DropReason::NoVisit)
                };
                return Outcome {
                    visitor,
                    session: None,
                    stored: false,
                    skipped,
                    session_before: None,
                    session_after: None,
                    durations: vec![],
                    attrs: None,
                };
            }
            None => {
                let row = SessionRow {
                    site: ev.site.clone(),
                    session: session_id(&ev.site, visitor, ts, event_id),
                    visitor,
                    version: 0,
                    start: ts,
                    end: ts,
                    entry_page: self.strings.get(&ev.pathname),
                    exit_page: self.strings.get(&ev.pathname),
                    pageviews: 0,
                    events: 0,
                    is_bounce: true,
                    attrs: Arc::new(SessionAttrs::from_event(ev, &mut self.strings)),
                };
                let pos = state.visits.partition_point(|v| v.row.start <= ts);
                state.visits.insert(
                    pos,
                    Visit {
                        row,
                        interactive: 0,
                        pageviews: Vec::new(),
                    },
                );
                pos
            }
        };

        let visit = &mut state.visits[idx];
        let before = (visit.row.version > 0).then(|| visit.row.clone());
        let mut durations = Vec::new();
        let stored = match ev.kind {
            EventKind::Pageview if !deduped => {
                let pos = visit.pageviews.partition_point(|p| p.ts <= ts);
                visit.pageviews.insert(
                    pos,
                    Pageview {
                        event: event_id,
                        ts,
                        pathname: self.strings.get(&ev.pathname),
                        duration: None,
                    },
                );
                visit.row.pageviews += 1;
                visit.row.events += 1;
                state
                    .counted
                    .entry(self.strings.get(&ev.pathname))
                    .or_default()
                    .push(ts);
                visit.row.start = visit.row.start.min(ts);
                visit.row.end = visit.row.end.max(ts);
                update_durations(visit, &[pos.saturating_sub(1), pos], &mut durations);
                true
            }
            EventKind::Custom => {
                visit.row.events += 1;
                if ev.interactive {
                    visit.interactive += 1;
                }
                visit.row.start = visit.row.start.min(ts);
                visit.row.end = visit.row.end.max(ts);
                update_durations(visit, &[], &mut durations);
                true
            }
            // Engagement is stored; heartbeats and repeated page views only show presence.
            EventKind::Engagement | EventKind::Heartbeat | EventKind::Pageview => {
                visit.row.start = visit.row.start.min(ts);
                visit.row.end = visit.row.end.max(ts);
                update_durations(visit, &[], &mut durations);
                ev.kind == EventKind::Engagement
            }
        };
        if let (Some(first), Some(last)) = (visit.pageviews.first(), visit.pageviews.last()) {
            visit.row.entry_page = first.pathname.clone();
            visit.row.exit_page = last.pathname.clone();
        }
        visit.row.is_bounce = visit.row.pageviews <= 1 && visit.interactive == 0;
        if visit.pageviews.len() > MAX_PAGEVIEWS_PER_VISIT {
            // The oldest views' durations are final; forget them.
            visit
                .pageviews
                .drain(..visit.pageviews.len() - MAX_PAGEVIEWS_PER_VISIT);
        }

        let changed = before.as_ref().is_none_or(|b| !same_state(b, &visit.row));
        let after = if changed {
            visit.row.version += 1;
            Some(visit.row.clone())
        } else {
            None
        };
        Outcome {
            visitor,
            session: Some(visit.row.session),
            stored,
            skipped: deduped.then_some(DropReason::Duplicate),
            session_before: if changed { before } else { None },
            session_after: after,
            durations,
            attrs: Some(visit.row.attrs.clone()),
        }
    }

    /// A visit that started under yesterday's salt keeps yesterday's visitor id.
    fn resolve_visitor(
        &self,
        site: &SiteId,
        today: VisitorId,
        yesterday: Option<VisitorId>,
    ) -> VisitorId {
        match yesterday {
            Some(y)
                if !self.visitors.contains_key(&(site.clone(), today))
                    && self.visitors.contains_key(&(site.clone(), y)) =>
            {
                y
            }
            _ => today,
        }
    }

    /// Forgets visits that can no longer be extended and dedup entries that can no longer
    /// match, as of `now`.
    pub fn evict(&mut self, now: Timestamp) {
        let visit_cutoff = now.0 - 2 * self.cfg.visit_gap_ms;
        let dedup_cutoff = now.0 - 2 * self.cfg.dedup_window_ms.max(1);
        self.visitors.retain(|_, st| {
            st.visits.retain(|v| v.row.end.0 >= visit_cutoff);
            st.counted.retain(|_, times| {
                times.retain(|t| t.0 >= dedup_cutoff);
                !times.is_empty()
            });
            !st.visits.is_empty() || !st.counted.is_empty()
        });
        self.strings.purge();
    }
}

/// Whether two versions of a row describe the same visit (ignoring the version number).
fn same_state(a: &SessionRow, b: &SessionRow) -> bool {
    a.start == b.start
        && a.end == b.end
        && a.pageviews == b.pageviews
        && a.events == b.events
        && a.is_bounce == b.is_bounce
        && a.entry_page == b.entry_page
        && a.exit_page == b.exit_page
}

/// Session ids are derived, not random, so that identify is deterministic (tests). The
/// creating event's id makes them unique even when the same events are sent twice.
fn session_id(site: &SiteId, visitor: VisitorId, start: Timestamp, event: EventId) -> SessionId {
    let mut h = SipHasher13::new_with_keys(0x666f_6f74, 0x6661_6c6c);
    site.hash(&mut h);
    visitor.0.hash(&mut h);
    start.0.hash(&mut h);
    event.0.hash(&mut h);
    SessionId(h.finish().max(1))
}

/// Recomputes the durations of the page views at `indices` and of the last page view (whose
/// duration depends on the visit's end), recording what changed.
fn update_durations(visit: &mut Visit, indices: &[usize], out: &mut Vec<DurationChange>) {
    let n = visit.pageviews.len();
    if n == 0 {
        return;
    }
    let end = visit.row.end;
    let mut check = |i: usize| {
        if i >= n {
            return;
        }
        let pv = &visit.pageviews[i];
        let next = if i + 1 < n {
            Some(visit.pageviews[i + 1].ts.0 - pv.ts.0)
        } else {
            (end.0 > pv.ts.0).then(|| end.0 - pv.ts.0)
        };
        if next != pv.duration {
            out.push(DurationChange {
                event: pv.event,
                ts: pv.ts,
                pathname: pv.pathname.clone(),
                before: pv.duration,
                after: next,
            });
            visit.pageviews[i].duration = next;
        }
    };
    for &i in indices {
        check(i);
    }
    if !indices.contains(&(n - 1)) {
        check(n - 1);
    }
}
