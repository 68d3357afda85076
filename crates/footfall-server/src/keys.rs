//! Stats API keys: random, shown once, stored as a SHA-256 hash, scoped to sites,
//! revocable, and rate limited per key.
//!
//! A fast hash is right here (unlike for passwords): keys are 160 random bits, so there is
//! nothing to brute-force, and every API request has to verify one.

use footfall_core::SiteId;
use footfall_store::{MetadataStore, StoreError};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: String,
    pub sites: Vec<SiteId>,
    pub scopes: Vec<String>,
}

/// The scopes a key may be given: what it may do besides reading its sites' stats.
pub const SCOPES: [&str; 1] = [CONTENT_WRITE];
/// Setting its sites' content catalogues (`PUT /api/sites/{site}/content`).
pub const CONTENT_WRITE: &str = "content:write";

/// A token bucket per key: `per_hour` requests an hour, refilled continuously.
struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct ApiKeys {
    by_hash: RwLock<HashMap<String, KeyInfo>>,
    store: Mutex<Box<dyn MetadataStore>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    per_hour: f64,
    /// Called after this cache changed the store (cluster: other nodes reload).
    pub on_change: crate::changes::OnChange,
    /// Cluster mode: the budgets every node shares, `(key id, per hour) -> taken?`
    /// (None: could not be asked). Unset: this node's own buckets.
    pub shared_budget: std::sync::OnceLock<SharedBudget>,
}

pub type SharedBudget = std::sync::Arc<dyn Fn(&str, f64) -> Option<bool> + Send + Sync>;

pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new key: `ff_` + 8 hex characters of public id + 32 hex characters of secret.
pub fn generate() -> (String, String) {
    let mut b = [0u8; 20];
    rand::rng().fill_bytes(&mut b);
    let hexed = hex::encode(b);
    let id = hexed[..8].to_string();
    (id, format!("ff_{hexed}"))
}

/// Creates and stores a key; returns (id, key). The key is not kept anywhere.
pub fn create(
    store: &dyn MetadataStore,
    sites: &[SiteId],
    scopes: &[String],
    now_ms: i64,
) -> Result<(String, String), StoreError> {
    let (id, key) = generate();
    store.create_api_key(&id, &hash(&key), sites, scopes, now_ms)?;
    Ok((id, key))
}

pub enum Check {
    Ok(KeyInfo),
    Unknown,
    Limited,
}

impl ApiKeys {
    pub fn load(store: Box<dyn MetadataStore>, per_hour: u32) -> Result<Self, StoreError> {
        let keys = ApiKeys {
            by_hash: RwLock::new(HashMap::new()),
            store: Mutex::new(store),
            buckets: Mutex::new(HashMap::new()),
            per_hour: f64::from(per_hour.max(1)),
            on_change: Default::default(),
            shared_budget: Default::default(),
        };
        keys.reload()?;
        Ok(keys)
    }

    /// Reads every key from the store again (another node created or revoked one).
    pub fn reload(&self) -> Result<(), StoreError> {
        let rows = self
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .api_keys()?;
        let map = rows
            .into_iter()
            .filter(|r| !r.revoked)
            .map(|r| {
                (
                    r.hash,
                    KeyInfo {
                        id: r.id,
                        sites: r
                            .sites
                            .iter()
                            .filter_map(|s| SiteId::parse(s).ok())
                            .collect(),
                        scopes: r.scopes,
                    },
                )
            })
            .collect();
        if let Ok(mut m) = self.by_hash.write() {
            *m = map;
        }
        Ok(())
    }

    pub fn create(
        &self,
        sites: &[SiteId],
        scopes: &[String],
        now_ms: i64,
    ) -> Result<(String, String), StoreError> {
        let out = create(
            self.store
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref(),
            sites,
            scopes,
            now_ms,
        )?;
        self.reload()?;
        self.on_change.fire();
        Ok(out)
    }

    pub fn revoke(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let found = self
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .revoke_api_key(id, now_ms)?;
        self.reload()?;
        self.on_change.fire();
        Ok(found)
    }

    /// Looks a presented key up and spends one request of its budget.
    pub fn check(&self, presented: &str) -> Check {
        let info = match self
            .by_hash
            .read()
            .ok()
            .and_then(|m| m.get(&hash(presented)).cloned())
        {
            Some(i) => i,
            None => return Check::Unknown,
        };
        if let Some(shared) = self.shared_budget.get() {
            // A budget store that cannot be asked lets the request through: the limit
            // guards against runaway clients, not against an outage of its own store.
            return match shared(&info.id, self.per_hour) {
                Some(false) => Check::Limited,
                _ => Check::Ok(info),
            };
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let b = buckets.entry(info.id.clone()).or_insert(Bucket {
            tokens: self.per_hour,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.per_hour / 3600.0)
            .min(self.per_hour);
        b.at = now;
        if b.tokens < 1.0 {
            return Check::Limited;
        }
        b.tokens -= 1.0;
        Check::Ok(info)
    }
}
