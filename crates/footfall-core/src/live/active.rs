//! Active visitors: a map of entries plus a `BTreeSet` ordered by last-seen time, in the
//! manner of mini-redis's expirations. Per-site tallies by path and by location are kept
//! as entries change, so reading them costs O(paths) rather than O(visitors).

use crate::event::GeoHint;
use crate::intern::Interner;
use crate::types::{SiteId, Timestamp, VisitorId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Location {
    pub country: Option<Arc<str>>,
    pub city: Option<Arc<str>>,
    /// Degrees × 100, so locations can be grouped and hashed.
    #[serde(skip)]
    pub lat_e2: i32,
    #[serde(skip)]
    pub lon_e2: i32,
}

impl Location {
    fn from_geo(geo: &GeoHint, strings: &mut Interner) -> Option<Location> {
        let (lat, lon) = (geo.latitude?, geo.longitude?);
        Some(Location {
            country: geo.country.as_deref().map(|c| strings.get(c)),
            city: geo.city.as_deref().map(|c| strings.get(c)),
            lat_e2: (lat * 100.0).round() as i32,
            lon_e2: (lon * 100.0).round() as i32,
        })
    }
}

/// One active visitor as kept in a snapshot (location as country, city, lat×100, lon×100).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveSnapshot {
    pub site: SiteId,
    pub visitor: VisitorId,
    pub last_seen: Timestamp,
    pub path: String,
    pub location: Option<(Option<String>, Option<String>, i32, i32)>,
}

#[derive(Debug, Clone)]
struct Entry {
    last_seen: Timestamp,
    path: Arc<str>,
    location: Option<Location>,
}

#[derive(Debug, Default)]
struct SiteTally {
    count: usize,
    by_path: HashMap<Arc<str>, usize>,
    by_location: HashMap<Location, usize>,
}

impl SiteTally {
    fn add(&mut self, e: &Entry) {
        self.count += 1;
        *self.by_path.entry(e.path.clone()).or_default() += 1;
        if let Some(l) = &e.location {
            *self.by_location.entry(l.clone()).or_default() += 1;
        }
    }

    fn remove(&mut self, e: &Entry) {
        self.count -= 1;
        dec(&mut self.by_path, &e.path);
        if let Some(l) = &e.location {
            dec(&mut self.by_location, l);
        }
    }
}

fn dec<K: std::hash::Hash + Eq + Clone>(m: &mut HashMap<K, usize>, k: &K) {
    if let Some(n) = m.get_mut(k) {
        *n -= 1;
        if *n == 0 {
            m.remove(k);
        }
    }
}

#[derive(Debug)]
pub struct ActiveVisitors {
    timeout_ms: i64,
    entries: HashMap<(SiteId, VisitorId), Entry>,
    by_last_seen: BTreeSet<(Timestamp, SiteId, VisitorId)>,
    sites: HashMap<SiteId, SiteTally>,
    /// Paths and places, shared between visitors.
    strings: Interner,
}

impl ActiveVisitors {
    pub fn new(timeout_ms: i64) -> Self {
        ActiveVisitors {
            timeout_ms,
            entries: HashMap::new(),
            by_last_seen: BTreeSet::new(),
            sites: HashMap::new(),
            strings: Interner::default(),
        }
    }

    /// Records activity. The path changes at once (the seed lagged 20 s); a location, once
    /// known, is kept when later pings carry none. Older-than-known pings only refresh
    /// nothing: last-seen never moves backwards.
    pub fn touch(
        &mut self,
        site: &SiteId,
        visitor: VisitorId,
        ts: Timestamp,
        path: &str,
        geo: &GeoHint,
    ) {
        let key = (site.clone(), visitor);
        let tally = self.sites.entry(site.clone()).or_default();
        let mut entry = match self.entries.remove(&key) {
            Some(old) => {
                tally.remove(&old);
                self.by_last_seen
                    .remove(&(old.last_seen, site.clone(), visitor));
                old
            }
            None => Entry {
                last_seen: ts,
                path: self.strings.get(path),
                location: None,
            },
        };
        if ts >= entry.last_seen {
            entry.last_seen = ts;
            if *entry.path != *path {
                entry.path = self.strings.get(path);
            }
        }
        if let Some(l) = Location::from_geo(geo, &mut self.strings) {
            entry.location = Some(l);
        }
        tally.add(&entry);
        self.by_last_seen
            .insert((entry.last_seen, site.clone(), visitor));
        self.entries.insert(key, entry);
    }

    /// Drops everyone not seen within the timeout as of `now`; returns how many. Cost is
    /// O(expired · log n).
    pub fn expire(&mut self, now: Timestamp) -> usize {
        self.expire_sites(now, |_| {})
    }

    /// As [`expire`](Self::expire), calling `site_changed` for each site that lost a
    /// visitor (once per visitor), so only that site's watchers are woken.
    pub fn expire_sites(&mut self, now: Timestamp, mut site_changed: impl FnMut(&SiteId)) -> usize {
        let cutoff = Timestamp(now.0 - self.timeout_ms);
        let mut n = 0;
        while let Some(first) = self.by_last_seen.first() {
            if first.0 > cutoff {
                break;
            }
            let Some((_, site, visitor)) = self.by_last_seen.pop_first() else {
                break;
            };
            if let Some(e) = self.entries.remove(&(site.clone(), visitor)) {
                if let Some(t) = self.sites.get_mut(&site) {
                    t.remove(&e);
                }
            }
            site_changed(&site);
            n += 1;
        }
        // Amortised: forget paths and places no visitor holds once they outnumber visitors.
        if self.strings.len() > 2 * (self.entries.len() + 1024) {
            self.strings.purge();
        }
        n
    }

    /// When the next entry expires, for the purge task's timer.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.by_last_seen
            .first()
            .map(|(t, _, _)| Timestamp(t.0 + self.timeout_ms))
    }

    /// Every entry, for a snapshot that a restart restores.
    pub fn to_snapshot(&self) -> Vec<ActiveSnapshot> {
        self.entries
            .iter()
            .map(|((site, visitor), e)| ActiveSnapshot {
                site: site.clone(),
                visitor: *visitor,
                last_seen: e.last_seen,
                path: e.path.to_string(),
                location: e.location.as_ref().map(|l| {
                    let text = |v: &Option<Arc<str>>| v.as_deref().map(str::to_string);
                    (text(&l.country), text(&l.city), l.lat_e2, l.lon_e2)
                }),
            })
            .collect()
    }

    pub fn restore(timeout_ms: i64, entries: Vec<ActiveSnapshot>) -> Self {
        let mut a = ActiveVisitors::new(timeout_ms);
        a.extend(entries);
        a
    }

    /// Adds snapshot entries of visitors not held yet (another partition's): an entry for
    /// a visitor already held replaces it.
    pub fn extend(&mut self, entries: Vec<ActiveSnapshot>) {
        let a = self;
        for s in entries {
            if let Some(old) = a.entries.remove(&(s.site.clone(), s.visitor)) {
                if let Some(t) = a.sites.get_mut(&s.site) {
                    t.remove(&old);
                }
                a.by_last_seen
                    .remove(&(old.last_seen, s.site.clone(), s.visitor));
            }
            let strings = &mut a.strings;
            let entry = Entry {
                last_seen: s.last_seen,
                path: strings.get(&s.path),
                location: s.location.map(|(country, city, lat_e2, lon_e2)| Location {
                    country: country.as_deref().map(|c| strings.get(c)),
                    city: city.as_deref().map(|c| strings.get(c)),
                    lat_e2,
                    lon_e2,
                }),
            };
            a.sites.entry(s.site.clone()).or_default().add(&entry);
            a.by_last_seen
                .insert((entry.last_seen, s.site.clone(), s.visitor));
            a.entries.insert((s.site, s.visitor), entry);
        }
    }

    pub fn total(&self) -> usize {
        self.entries.len()
    }

    pub fn count(&self, site: &SiteId) -> usize {
        self.sites.get(site).map_or(0, |t| t.count)
    }

    /// (path, active visitors), most first.
    pub fn by_path(&self, site: &SiteId) -> Vec<(String, usize)> {
        let mut v: Vec<_> = self
            .sites
            .get(site)
            .map(|t| t.by_path.iter().map(|(p, n)| (p.to_string(), *n)).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }

    /// (location, active visitors there).
    pub fn locations(&self, site: &SiteId) -> Vec<(Location, usize)> {
        let mut v: Vec<_> = self
            .sites
            .get(site)
            .map(|t| t.by_location.iter().map(|(l, n)| (l.clone(), *n)).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> SiteId {
        SiteId::parse("e.com").unwrap()
    }

    #[test]
    fn path_changes_at_once_and_expiry_is_exact() {
        let mut a = ActiveVisitors::new(120_000);
        let s = site();
        a.touch(&s, VisitorId(1), Timestamp(0), "/a", &GeoHint::default());
        a.touch(
            &s,
            VisitorId(2),
            Timestamp(1_000),
            "/a",
            &GeoHint::default(),
        );
        a.touch(
            &s,
            VisitorId(1),
            Timestamp(2_000),
            "/b",
            &GeoHint::default(),
        );
        assert_eq!(
            a.by_path(&s),
            vec![("/a".to_string(), 1), ("/b".to_string(), 1)]
        );
        assert_eq!(a.expire(Timestamp(120_999)), 0);
        assert_eq!(a.expire(Timestamp(121_000)), 1);
        assert_eq!(a.count(&s), 1);
        assert_eq!(a.by_path(&s), vec![("/b".to_string(), 1)]);
        assert_eq!(a.next_expiry(), Some(Timestamp(122_000)));
    }

    #[test]
    fn location_sticks() {
        let mut a = ActiveVisitors::new(120_000);
        let s = site();
        let paris = GeoHint {
            country: Some("FR".into()),
            city: Some("Paris".into()),
            latitude: Some(48.85),
            longitude: Some(2.35),
            region: None,
        };
        a.touch(&s, VisitorId(1), Timestamp(0), "/", &paris);
        a.touch(&s, VisitorId(1), Timestamp(10), "/x", &GeoHint::default());
        let locs = a.locations(&s);
        assert_eq!(locs.len(), 1);
        assert_eq!(locs[0].0.city.as_deref(), Some("Paris"));
    }
}
