//! How far in time each site's stored rows reach, as a rollup keeper remembers it between
//! batches: a day that starts after it holds nothing in storage, so it is seeded empty
//! without reading (an import in time order starts a new day every few batches).

use footfall_core::record::CommitRecord;
use footfall_core::SiteId;
use std::collections::HashMap;

/// Per site, the latest event time or visit end stored (None: no rows), once read.
#[derive(Default)]
pub(crate) struct Reach(HashMap<SiteId, Option<i64>>);

impl Reach {
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// What was read or kept for `site` (None: not known yet).
    pub fn get(&self, site: &SiteId) -> Option<Option<i64>> {
        self.0.get(site).copied()
    }

    pub fn insert(&mut self, site: SiteId, reach: Option<i64>) {
        self.0.insert(site, reach);
    }

    /// After `records` were stored: moves each known site's reach past their rows. A site
    /// not read yet is read, with these rows, when it is next needed.
    pub fn applied<'a>(&mut self, records: impl Iterator<Item = &'a CommitRecord>) {
        for rec in records {
            for e in rec.stored() {
                self.reached(&e.event.site, e.event.ts.0);
            }
            for v in &rec.visits {
                self.reached(&v.after.site, v.after.end.0);
            }
        }
    }

    fn reached(&mut self, site: &SiteId, ts: i64) {
        if let Some(r) = self.0.get_mut(site) {
            *r = Some(r.map_or(ts, |r| r.max(ts)));
        }
    }
}
