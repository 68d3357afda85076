//! The registry of sites, in memory for the ingest path and persisted in the store.

use footfall_core::SiteId;
use footfall_store::{DuckStore, StoreError};
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

pub struct Sites {
    known: RwLock<HashMap<SiteId, bool>>,
    store: Mutex<DuckStore>,
}

impl Sites {
    pub fn load(store: DuckStore) -> Result<Self, StoreError> {
        let known = store
            .sites()?
            .into_iter()
            .map(|s| (s.domain, s.public))
            .collect();
        Ok(Sites {
            known: RwLock::new(known),
            store: Mutex::new(store),
        })
    }

    pub fn contains(&self, site: &SiteId) -> bool {
        self.known
            .read()
            .map(|k| k.contains_key(site))
            .unwrap_or(false)
    }

    pub fn is_public(&self, site: &SiteId) -> bool {
        self.known
            .read()
            .map(|k| k.get(site).copied().unwrap_or(false))
            .unwrap_or(false)
    }

    /// Registers (or updates) a site; returns whether it is new.
    pub fn add(&self, site: &SiteId, public: bool, now_ms: i64) -> Result<bool, StoreError> {
        let created = {
            let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
            store.add_site(site, public, now_ms)?
        };
        if let Ok(mut k) = self.known.write() {
            k.insert(site.clone(), public);
        }
        Ok(created)
    }

    pub fn list(&self) -> Vec<(SiteId, bool)> {
        let mut v: Vec<_> = self
            .known
            .read()
            .map(|k| k.iter().map(|(s, p)| (s.clone(), *p)).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}
