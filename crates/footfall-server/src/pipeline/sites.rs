//! The registry of sites, in memory for the ingest path and persisted in the store.

use chrono_tz::Tz;
use footfall_core::SiteId;
use footfall_store::{DuckStore, StoreError};
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

#[derive(Debug, Clone, Copy)]
pub struct SiteInfo {
    pub public: bool,
    pub timezone: Tz,
}

pub struct Sites {
    known: RwLock<HashMap<SiteId, SiteInfo>>,
    store: Mutex<DuckStore>,
}

/// Parses an IANA zone name such as `Europe/Berlin`.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("unknown time zone {name:?}; use an IANA name such as Europe/Berlin"))
}

impl Sites {
    pub fn load(store: DuckStore) -> Result<Self, StoreError> {
        let known = store
            .sites()?
            .into_iter()
            .map(|s| {
                let timezone = parse_timezone(&s.timezone).unwrap_or(Tz::UTC);
                (
                    s.domain,
                    SiteInfo {
                        public: s.public,
                        timezone,
                    },
                )
            })
            .collect();
        Ok(Sites {
            known: RwLock::new(known),
            store: Mutex::new(store),
        })
    }

    fn info(&self, site: &SiteId) -> Option<SiteInfo> {
        self.known.read().ok().and_then(|k| k.get(site).copied())
    }

    pub fn contains(&self, site: &SiteId) -> bool {
        self.info(site).is_some()
    }

    pub fn is_public(&self, site: &SiteId) -> bool {
        self.info(site).is_some_and(|i| i.public)
    }

    pub fn timezone(&self, site: &SiteId) -> Tz {
        self.info(site).map_or(Tz::UTC, |i| i.timezone)
    }

    /// Registers (or updates) a site; returns whether it is new. `timezone`: None keeps the
    /// current one (UTC for a new site).
    pub fn add(
        &self,
        site: &SiteId,
        public: bool,
        timezone: Option<Tz>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let created = {
            let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
            let created = store.add_site(site, public, now_ms)?;
            if let Some(tz) = timezone {
                store.set_site_timezone(site, tz.name())?;
            }
            created
        };
        if let Ok(mut k) = self.known.write() {
            let tz = timezone
                .or_else(|| k.get(site).map(|i| i.timezone))
                .unwrap_or(Tz::UTC);
            k.insert(
                site.clone(),
                SiteInfo {
                    public,
                    timezone: tz,
                },
            );
        }
        Ok(created)
    }

    pub fn list(&self) -> Vec<(SiteId, SiteInfo)> {
        let mut v: Vec<_> = self
            .known
            .read()
            .map(|k| k.iter().map(|(s, i)| (s.clone(), *i)).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}
