//! The live state as a whole, changed only by committed records and by time: counters,
//! active visitors, and a version per site, so that a write on one site wakes only that
//! site's watchers.

use super::active::ActiveSnapshot;
use super::{ActiveVisitors, Counters, LiveStats};
use crate::event::EventKind;
use crate::record::CommitRecord;
use crate::types::{SiteId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

pub struct LiveModel {
    pub counters: Counters,
    pub active: ActiveVisitors,
    versions: HashMap<SiteId, u64>,
}

/// What a snapshot of the live state keeps: counters and who is active (versions restart).
#[derive(Debug, Serialize, Deserialize)]
pub struct LiveSnapshot {
    pub counters: Counters,
    pub active: Vec<ActiveSnapshot>,
}

impl LiveModel {
    pub fn new(counters: Counters, active: ActiveVisitors) -> Self {
        LiveModel {
            counters,
            active,
            versions: HashMap::new(),
        }
    }

    /// Applies one committed record; returns the sites it changed (their versions grew).
    pub fn apply(&mut self, rec: &CommitRecord) -> BTreeSet<SiteId> {
        let touched = apply_record(&mut self.counters, &mut self.active, rec);
        for site in &touched {
            self.bump(site);
        }
        touched
    }

    /// Drops visitors inactive as of `now`; returns the sites that lost someone.
    pub fn expire(&mut self, now: Timestamp) -> BTreeSet<SiteId> {
        let mut sites = BTreeSet::new();
        self.active.expire_sites(now, |s| {
            if !sites.contains(s) {
                sites.insert(s.clone());
            }
        });
        for s in &sites {
            self.bump(s);
        }
        sites
    }

    fn bump(&mut self, site: &SiteId) {
        *self.versions.entry(site.clone()).or_insert(1) += 1;
    }

    /// Grows with every change to the site; starts at 1.
    pub fn version(&self, site: &SiteId) -> u64 {
        self.versions.get(site).copied().unwrap_or(1)
    }

    pub fn stats(&self, site: &SiteId, limit: Option<usize>) -> LiveStats {
        LiveStats::build(
            site,
            self.version(site),
            self.counters.site(site),
            &self.active,
            limit,
        )
    }

    pub fn to_snapshot(&self) -> LiveSnapshot {
        LiveSnapshot {
            counters: self.counters.clone(),
            active: self.active.to_snapshot(),
        }
    }
}

/// What one committed record changes in counters and active visitors; returns the sites
/// it touched. Shared by [`LiveModel`] and [`PartitionedLive`](super::PartitionedLive).
pub(crate) fn apply_record(
    counters: &mut Counters,
    active: &mut ActiveVisitors,
    rec: &CommitRecord,
) -> BTreeSet<SiteId> {
    // Page views in time order, each closing the days before its own day's eve first:
    // then whether a visitor counts again depends only on its own earlier page views (the
    // rule a rebuild from storage applies, see `VisitorDays`), not on other visitors in the
    // same record or, in cluster mode, in other partitions. Days close behind page views
    // (not the clock) so that a rebuild, which knows only timestamps, agrees.
    let mut views: Vec<&crate::record::Entry> = rec
        .stored()
        .filter(|e| e.event.kind == EventKind::Pageview)
        .collect();
    views.sort_by_key(|e| (e.event.ts, e.id));
    for e in views {
        let ev = &e.event;
        counters.close_days_before(ev.ts.day_number().saturating_sub(1));
        counters.apply_pageview(
            &ev.site,
            e.id,
            ev.ts,
            &ev.pathname,
            ev.title.as_deref(),
            ev.page_type.as_deref(),
            e.visitor,
        );
    }
    let mut touched = BTreeSet::new();
    for e in &rec.entries {
        let ev = &e.event;
        let c = counters.site_mut(&ev.site);
        for d in &e.durations {
            c.apply_duration(d);
        }
        active.touch(&ev.site, e.visitor, ev.ts, &ev.pathname, &ev.geo);
        if !touched.contains(&ev.site) {
            touched.insert(ev.site.clone());
        }
    }
    for v in &rec.visits {
        counters
            .site_mut(&v.after.site)
            .apply_session(v.before.as_ref(), Some(&v.after));
    }
    touched
}
