//! Exact running counters, maintained as batches commit and rebuilt from storage on start.
//! Both paths go through the same `apply_*` methods, so live maintenance and a rebuild can
//! only agree.

use crate::identify::{DurationChange, SessionRow};
use crate::types::{EventId, SiteId, Timestamp, VisitorId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PathStats {
    pub views: u64,
    /// The latest title and page type sent for this path, with the (ts, id) they came at.
    pub title: Option<(String, (Timestamp, EventId))>,
    pub page_type: Option<(String, (Timestamp, EventId))>,
    pub duration_sum_ms: i64,
    pub duration_count: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteCounters {
    pub total_pageviews: u64,
    pub paths: HashMap<String, PathStats>,
    pub visitor_days: VisitorDays,
    pub tracking_since: Option<Timestamp>,
    pub visits: i64,
    pub bounces: i64,
    pub visit_duration_sum_ms: i64,
}

fn newer(
    slot: &mut Option<(String, (Timestamp, EventId))>,
    value: Option<&str>,
    at: (Timestamp, EventId),
) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        if slot.as_ref().is_none_or(|(_, seen)| at >= *seen) {
            *slot = Some((v.to_string(), at));
        }
    }
}

impl SiteCounters {
    /// Keeps the title and page type of the latest page view (by time, then id) that had one.
    pub fn offer_labels(
        &mut self,
        path: &str,
        title: Option<&str>,
        page_type: Option<&str>,
        ts: Timestamp,
        event: EventId,
    ) {
        let p = self.paths.entry(path.to_string()).or_default();
        newer(&mut p.title, title, (ts, event));
        newer(&mut p.page_type, page_type, (ts, event));
    }

    /// Adds measured page durations in bulk (used by rebuilds).
    pub fn add_durations(&mut self, path: &str, sum_ms: i64, count: i64) {
        let p = self.paths.entry(path.to_string()).or_default();
        p.duration_sum_ms += sum_ms;
        p.duration_count += count;
    }

    /// `n` page views of `path`, the earliest at `first` (used by chunked rebuilds).
    pub fn add_pageviews(&mut self, path: &str, n: u64, first: Timestamp) {
        self.total_pageviews += n;
        self.paths.entry(path.to_string()).or_default().views += n;
        self.tracking_since = Some(self.tracking_since.map_or(first, |t| t.min(first)));
    }

    /// Replaces a visit's previous state (if any) with its new one.
    pub fn apply_session(&mut self, before: Option<&SessionRow>, after: Option<&SessionRow>) {
        if let Some(b) = before {
            self.add_session(-1, b.is_bounce, b.duration_ms());
        }
        if let Some(a) = after {
            self.add_session(1, a.is_bounce, a.duration_ms());
        }
    }

    pub fn add_session(&mut self, sign: i64, is_bounce: bool, duration_ms: i64) {
        self.visits += sign;
        self.bounces += sign * i64::from(is_bounce);
        self.visit_duration_sum_ms += sign * duration_ms;
    }

    /// Adds the counters of another, disjoint set of visitors (another log partition's):
    /// sums, the earliest start, the newest labels, and the union of open visitor days.
    /// Partitions split visitors, so nobody is counted in two of them.
    pub fn absorb(&mut self, other: &SiteCounters) {
        self.total_pageviews += other.total_pageviews;
        self.visits += other.visits;
        self.bounces += other.bounces;
        self.visit_duration_sum_ms += other.visit_duration_sum_ms;
        self.tracking_since = match (self.tracking_since, other.tracking_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        for (path, o) in &other.paths {
            let p = self.paths.entry(path.clone()).or_default();
            p.views += o.views;
            p.duration_sum_ms += o.duration_sum_ms;
            p.duration_count += o.duration_count;
            for (slot, theirs) in [(&mut p.title, &o.title), (&mut p.page_type, &o.page_type)] {
                if let Some((v, at)) = theirs {
                    newer(slot, Some(v), *at);
                }
            }
        }
        self.visitor_days.closed += other.visitor_days.closed;
        for (day, visitors) in &other.visitor_days.open {
            self.visitor_days
                .open
                .entry(*day)
                .or_default()
                .extend(visitors.iter().copied());
        }
    }

    pub fn apply_duration(&mut self, change: &DurationChange) {
        if !self.paths.contains_key(&*change.pathname) {
            self.paths
                .insert(change.pathname.to_string(), PathStats::default());
        }
        let Some(p) = self.paths.get_mut(&*change.pathname) else {
            return;
        };
        if let Some(b) = change.before {
            p.duration_sum_ms -= b;
            p.duration_count -= 1;
        }
        if let Some(a) = change.after {
            p.duration_sum_ms += a;
            p.duration_count += 1;
        }
    }
}

/// Unique visitors without an ever-growing set. Visitor ids rotate with the daily salt and
/// the salt lives two days, so an id can only appear on the UTC day it was made and the
/// next: once no page view of it can still come, its day's count is a fixed number. Only
/// open days — the newest page view's UTC day, the day before, and any later — keep their
/// ids; an id seen in any open day is not counted again.
///
/// The rule, which a rebuild from storage applies too: per visitor, in day order, a page
/// view counts the visitor unless it was counted on that day or the day before. Exact for
/// salted ids (a visit across midnight is one visitor); a client-held id (the seed's
/// `sessionId`, which never rotates) counts again when it returns two or more days later.
/// Page views arriving in time order (live traffic, chronological imports) follow the rule
/// exactly; one dated before an already closed day (an out-of-order import) counts its
/// visitor without a membership test.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VisitorDays {
    /// Visitors of closed days.
    pub closed: u64,
    /// Open days' visitors, each under the day it was first counted.
    pub open: BTreeMap<i64, HashSet<VisitorId>>,
}

impl VisitorDays {
    pub fn total(&self) -> u64 {
        self.closed + self.open.values().map(|s| s.len() as u64).sum::<u64>()
    }

    fn add(&mut self, day: i64, visitor: VisitorId, open_from: i64) {
        if self.open.values().any(|s| s.contains(&visitor)) {
            return;
        }
        if day < open_from {
            self.closed += 1;
        } else {
            self.open.entry(day).or_default().insert(visitor);
        }
    }

    fn close_before(&mut self, day: i64) {
        let keep = self.open.split_off(&day);
        self.closed += self.open.values().map(|s| s.len() as u64).sum::<u64>();
        self.open = keep;
    }
}

/// Counters for every site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub sites: HashMap<SiteId, SiteCounters>,
    /// UTC days before this one are closed (see [`VisitorDays`]).
    pub open_from_day: i64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            sites: HashMap::new(),
            open_from_day: i64::MIN,
        }
    }
}

impl Counters {
    /// Closes every day before `day`: their visitor sets become counts.
    pub fn close_days_before(&mut self, day: i64) {
        if day <= self.open_from_day {
            return;
        }
        self.open_from_day = day;
        for s in self.sites.values_mut() {
            s.visitor_days.close_before(day);
        }
    }

    /// A stored page view: counts, labels, and its visitor for its UTC day.
    #[allow(clippy::too_many_arguments)]
    pub fn apply_pageview(
        &mut self,
        site: &SiteId,
        event: EventId,
        ts: Timestamp,
        path: &str,
        title: Option<&str>,
        page_type: Option<&str>,
        visitor: VisitorId,
    ) {
        let open_from = self.open_from_day;
        let c = self.site_mut(site);
        c.add_pageviews(path, 1, ts);
        c.offer_labels(path, title, page_type, ts, event);
        c.visitor_days.add(ts.day_number(), visitor, open_from);
    }

    pub fn site_mut(&mut self, site: &SiteId) -> &mut SiteCounters {
        self.sites.entry(site.clone()).or_default()
    }

    pub fn site(&self, site: &SiteId) -> Option<&SiteCounters> {
        self.sites.get(site)
    }
}
