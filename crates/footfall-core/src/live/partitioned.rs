//! The live state of a cluster node: counters per log partition, active visitors once.
//!
//! Each partition's counters are exactly what that partition's log makes of them (day
//! closing follows its own records), so they can be restored from the partition's
//! snapshot and brought forward by its log alone, in any interleaving with the other
//! partitions. Partitions split visitors, so the counters add up (`SiteCounters::absorb`)
//! and the active visitors of all partitions can share one index.

use super::model::apply_record;
use super::{ActiveVisitors, Counters, LiveSnapshot, LiveStats, SiteCounters};
use crate::record::CommitRecord;
use crate::types::{SiteId, Timestamp};
use std::collections::{BTreeSet, HashMap};

pub struct PartitionedLive {
    parts: Vec<Counters>,
    /// Counters of history copied in from an embedded installation (`footfall migrate`),
    /// added to the partitions'. Open days' visitor sets are unioned with the partitions'
    /// for the same day, so a visitor seen before and after the copy on one day counts
    /// once while that day is open; one seen before the copy on the day before, or after
    /// a partition closed the day, may count twice in these live counters (reports, read
    /// from storage, are exact).
    base: Option<Counters>,
    active: ActiveVisitors,
    versions: HashMap<SiteId, u64>,
}

impl PartitionedLive {
    pub fn new(parts: u32, active_timeout_ms: i64) -> Self {
        PartitionedLive {
            parts: (0..parts.max(1)).map(|_| Counters::default()).collect(),
            base: None,
            active: ActiveVisitors::new(active_timeout_ms),
            versions: HashMap::new(),
        }
    }

    pub fn parts(&self) -> u32 {
        self.parts.len() as u32
    }

    /// Adds copied-in history to every read (see [`PartitionedLive`]'s `base`).
    pub fn set_base(&mut self, base: Counters) -> BTreeSet<SiteId> {
        let sites: BTreeSet<SiteId> = base.sites.keys().cloned().collect();
        self.base = Some(base);
        for s in &sites {
            *self.versions.entry(s.clone()).or_insert(1) += 1;
        }
        sites
    }

    /// Puts partition `part`'s snapshot in place (its counters, its active visitors).
    pub fn restore_partition(&mut self, part: u32, snapshot: LiveSnapshot) {
        if let Some(c) = self.parts.get_mut(part as usize) {
            *c = snapshot.counters;
            self.active.extend(snapshot.active);
        }
    }

    /// Applies a committed record of partition `part`; returns the sites it changed.
    pub fn apply(&mut self, part: u32, rec: &CommitRecord) -> BTreeSet<SiteId> {
        let Some(counters) = self.parts.get_mut(part as usize) else {
            return BTreeSet::new();
        };
        let touched = apply_record(counters, &mut self.active, rec);
        for site in &touched {
            *self.versions.entry(site.clone()).or_insert(1) += 1;
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
            *self.versions.entry(s.clone()).or_insert(1) += 1;
        }
        sites
    }

    pub fn version(&self, site: &SiteId) -> u64 {
        self.versions.get(site).copied().unwrap_or(1)
    }

    /// A site's counters summed over the partitions (None if no partition has the site).
    pub fn site_counters(&self, site: &SiteId) -> Option<SiteCounters> {
        let mut found = None::<SiteCounters>;
        for c in self
            .base
            .iter()
            .chain(&self.parts)
            .filter_map(|p| p.site(site))
        {
            found.get_or_insert_with(SiteCounters::default).absorb(c);
        }
        found
    }

    /// Every site any partition has counters for.
    pub fn sites(&self) -> BTreeSet<SiteId> {
        self.base
            .iter()
            .chain(&self.parts)
            .flat_map(|p| p.sites.keys().cloned())
            .collect()
    }

    /// The counters of all partitions added up, as one set.
    pub fn counters(&self) -> Counters {
        let mut out = Counters::default();
        for site in self.sites() {
            if let Some(c) = self.site_counters(&site) {
                out.sites.insert(site, c);
            }
        }
        out.open_from_day = self
            .parts
            .iter()
            .map(|p| p.open_from_day)
            .min()
            .unwrap_or(i64::MIN);
        out
    }

    /// Who is active, as a snapshot lists them.
    pub fn active_snapshot(&self) -> Vec<super::active::ActiveSnapshot> {
        self.active.to_snapshot()
    }

    /// Takes `fresh`'s counters and active visitors (a reload), keeping this model's
    /// versions and moving every site's forward: a reader never sees a version go down.
    /// Returns the sites.
    pub fn reload(&mut self, fresh: PartitionedLive) -> BTreeSet<SiteId> {
        let mut sites = self.sites();
        sites.extend(fresh.sites());
        self.parts = fresh.parts;
        self.active = fresh.active;
        for s in &sites {
            *self.versions.entry(s.clone()).or_insert(1) += 1;
        }
        sites
    }

    pub fn stats(&self, site: &SiteId, limit: Option<usize>) -> LiveStats {
        let counters = self.site_counters(site);
        LiveStats::build(
            site,
            self.version(site),
            counters.as_ref(),
            &self.active,
            limit,
        )
    }
}
