//! The registry of sites, in memory for the ingest path and persisted in the store.

use chrono_tz::Tz;
use footfall_core::SiteId;
use footfall_store::{MetadataStore, StoreError};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

#[derive(Debug, Clone)]
pub struct SiteInfo {
    pub public: bool,
    pub timezone: Tz,
    /// Token of the read-only public link, if enabled.
    pub share_token: Option<Arc<str>>,
}

pub struct Sites {
    known: RwLock<HashMap<SiteId, SiteInfo>>,
    /// SHA-256 of each share token → its site. Looked up by hash so the time a lookup takes
    /// says nothing about how much of a guessed token was right.
    shares: RwLock<HashMap<[u8; 32], SiteId>>,
    store: Mutex<Box<dyn MetadataStore>>,
}

fn share_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Parses an IANA zone name such as `Europe/Berlin`.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("unknown time zone {name:?}; use an IANA name such as Europe/Berlin"))
}

impl Sites {
    pub fn load(store: Box<dyn MetadataStore>) -> Result<Self, StoreError> {
        let mut known = HashMap::new();
        let mut shares = HashMap::new();
        for s in store.sites()? {
            let timezone = parse_timezone(&s.timezone).unwrap_or(Tz::UTC);
            if let Some(t) = &s.share_token {
                shares.insert(share_key(t), s.domain.clone());
            }
            known.insert(
                s.domain,
                SiteInfo {
                    public: s.public,
                    timezone,
                    share_token: s.share_token.map(Arc::from),
                },
            );
        }
        Ok(Sites {
            known: RwLock::new(known),
            shares: RwLock::new(shares),
            store: Mutex::new(store),
        })
    }

    pub fn info(&self, site: &SiteId) -> Option<SiteInfo> {
        self.known.read().ok().and_then(|k| k.get(site).cloned())
    }

    /// The site a share token opens, if any.
    pub fn by_share_token(&self, token: &str) -> Option<SiteId> {
        self.shares
            .read()
            .ok()
            .and_then(|s| s.get(&share_key(token)).cloned())
    }

    /// Enables (Some) or disables (None) a site's share link; the old token stops working.
    pub fn set_share_token(&self, site: &SiteId, token: Option<&str>) -> Result<(), StoreError> {
        // The store lock is held until memory matches, so concurrent rotations can't leave
        // memory and the database with different tokens.
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        store.set_share_token(site, token)?;
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        let mut shares = self.shares.write().unwrap_or_else(|p| p.into_inner());
        if let Some(info) = known.get_mut(site) {
            if let Some(old) = info.share_token.take() {
                shares.remove(&share_key(&old));
            }
            if let Some(t) = token {
                shares.insert(share_key(t), site.clone());
                info.share_token = Some(Arc::from(t));
            }
        }
        Ok(())
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
            let old = k.get(site);
            let tz = timezone
                .or_else(|| old.map(|i| i.timezone))
                .unwrap_or(Tz::UTC);
            let share_token = old.and_then(|i| i.share_token.clone());
            k.insert(
                site.clone(),
                SiteInfo {
                    public,
                    timezone: tz,
                    share_token,
                },
            );
        }
        Ok(created)
    }

    pub fn list(&self) -> Vec<(SiteId, SiteInfo)> {
        let mut v: Vec<_> = self
            .known
            .read()
            .map(|k| k.iter().map(|(s, i)| (s.clone(), i.clone())).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}
