//! The metadata store seam: sites, daily salts, API keys, dashboard users and their login
//! sessions, share links. Embedded: tables in the DuckDB file; cluster: PostgreSQL.

use crate::StoreError;
use footfall_core::catalogue::{Catalogue, Entry as CatalogueEntry};
use footfall_core::goal::{Funnel, Goal};
use footfall_core::segment::Segment;
use footfall_core::SiteId;

/// A goal as stored: its JSON (what [`Goal`] serializes to).
/// A stored catalogue back from its (revision, JSON) row, empty without one. Its entries
/// were checked when set; one that does not read back is left out with a warning, as
/// other definitions are.
pub fn stored_catalogue(site: &SiteId, row: Option<(i64, String)>) -> Catalogue {
    let Some((revision, json)) = row else {
        return Catalogue::default();
    };
    let entries: Vec<CatalogueEntry> = spec_from_json(site, "catalogue", &json).unwrap_or_default();
    Catalogue::new(u64::try_from(revision).unwrap_or(0), entries)
}

pub fn spec_json<T: serde::Serialize>(what: &str, v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("encoding a {what}: {e}")))
}

/// A stored goal or funnel back, checked again. One that does not read back (hand-edited,
/// or written by a newer version) is left out with a warning rather than failing every
/// site's load.
pub fn spec_from_json<T: serde::de::DeserializeOwned>(
    site: &SiteId,
    what: &str,
    json: &str,
) -> Option<T> {
    match serde_json::from_str(json) {
        Ok(g) => Some(g),
        Err(e) => {
            tracing::warn!(%site, what, spec = json, error = %e, "ignoring a stored definition that does not read back");
            None
        }
    }
}

/// The tables of a site's named definitions, kept as their JSON. Fixed names: the
/// only identifiers a statement takes from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Specs {
    Goals,
    Funnels,
    Segments,
}

impl Specs {
    pub fn table(self) -> &'static str {
        match self {
            Specs::Goals => "goals",
            Specs::Funnels => "funnels",
            Specs::Segments => "segments",
        }
    }
    pub fn what(self) -> &'static str {
        match self {
            Specs::Goals => "goal",
            Specs::Funnels => "funnel",
            Specs::Segments => "segment",
        }
    }
}

/// A registered site.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Site {
    pub domain: SiteId,
    pub public: bool,
    pub created_at: i64,
    /// IANA time zone name for reports.
    pub timezone: String,
    /// Token of the read-only public link, if one is enabled.
    pub share_token: Option<String>,
    /// The id OpenPanel's SDKs may send for this site instead of its domain.
    pub openpanel_client_id: Option<String>,
}

/// A stored API key: never the key itself, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: String,
    pub hash: String,
    pub sites: Vec<String>,
    /// What the key may do besides reading stats (`content:write`).
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub revoked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub username: String,
    pub password_hash: String,
    pub created_at: i64,
}

/// A dashboard login, stored by the hash of its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub token_hash: String,
    pub username: String,
    pub csrf: String,
    pub expires_at: i64,
}

pub trait MetadataStore: Send {
    /// Registers a site; returns false if it already existed (its settings are updated).
    fn add_site(&self, site: &SiteId, public: bool, now_ms: i64) -> Result<bool, StoreError>;
    fn sites(&self) -> Result<Vec<Site>, StoreError>;
    /// Sets the time zone reports use for a site (an IANA name, validated by the caller).
    fn set_site_timezone(&self, site: &SiteId, timezone: &str) -> Result<(), StoreError>;
    /// Enables (Some) or disables (None) the site's public read-only link.
    fn set_share_token(&self, site: &SiteId, token: Option<&str>) -> Result<(), StoreError>;
    /// Sets (Some) or removes (None) the site's OpenPanel client id. Uniqueness across
    /// sites is the caller's to check.
    fn set_openpanel_client_id(&self, site: &SiteId, id: Option<&str>) -> Result<(), StoreError>;

    /// Adds `goal` to `site`, or replaces the site's goal of that name. Returns whether it
    /// is new.
    fn put_goal(&self, site: &SiteId, goal: &Goal, now_ms: i64) -> Result<bool, StoreError>;
    /// A site's goals, oldest first.
    fn goals(&self, site: &SiteId) -> Result<Vec<Goal>, StoreError>;
    /// Removes the site's goal of that name; returns whether there was one.
    fn delete_goal(&self, site: &SiteId, name: &str) -> Result<bool, StoreError>;

    /// Adds a saved funnel to `site`, or replaces the site's funnel of that name. Returns
    /// whether it is new.
    fn put_funnel(&self, site: &SiteId, funnel: &Funnel, now_ms: i64) -> Result<bool, StoreError>;
    /// A site's saved funnels, oldest first.
    fn funnels(&self, site: &SiteId) -> Result<Vec<Funnel>, StoreError>;
    /// Removes the site's funnel of that name; returns whether there was one.
    fn delete_funnel(&self, site: &SiteId, name: &str) -> Result<bool, StoreError>;

    /// Saves a segment (names are unique per site), replacing one of that name only if it
    /// has the same owner — in one step, so two nodes saving one name for two users can't
    /// both win. Returns whether it is new, or None when the name is another owner's
    /// (nothing changed).
    fn put_segment(
        &self,
        site: &SiteId,
        segment: &Segment,
        now_ms: i64,
    ) -> Result<Option<bool>, StoreError>;
    /// A site's segments, every owner's, oldest first.
    fn segments(&self, site: &SiteId) -> Result<Vec<Segment>, StoreError>;
    /// Removes the site's segment of that name; returns whether there was one.
    fn delete_segment(&self, site: &SiteId, name: &str) -> Result<bool, StoreError>;

    /// Replaces the site's content catalogue, all at once; returns its new revision (one
    /// more than the last, so it only grows).
    fn set_catalogue(
        &self,
        site: &SiteId,
        entries: &[CatalogueEntry],
        now_ms: i64,
    ) -> Result<u64, StoreError>;
    /// The site's catalogue (empty, revision 0, if never set).
    fn catalogue(&self, site: &SiteId) -> Result<Catalogue, StoreError>;

    /// The salts for `day` and `day − 1`, storing `fresh` as today's if there is none yet,
    /// and deleting every older one: a salt lives at most 48 hours.
    fn rotate_salts(&self, day: i64, fresh: &str) -> Result<(String, Option<String>), StoreError>;
    fn salt_days(&self) -> Result<Vec<i64>, StoreError>;

    fn create_api_key(
        &self,
        id: &str,
        hash: &str,
        sites: &[SiteId],
        scopes: &[String],
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Returns whether a live key with this id existed.
    fn revoke_api_key(&self, id: &str, now_ms: i64) -> Result<bool, StoreError>;
    fn api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError>;

    /// Adds a user or replaces their password; returns whether the user is new.
    fn put_user(
        &self,
        username: &str,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    fn users(&self) -> Result<Vec<UserRow>, StoreError>;
    fn delete_user_sessions(&self, username: &str) -> Result<(), StoreError>;
    /// Removes a user and their sessions; returns whether the user existed.
    fn delete_user(&self, username: &str) -> Result<bool, StoreError>;
    fn put_session(&self, s: &SessionRecord, now_ms: i64) -> Result<(), StoreError>;
    fn delete_session(&self, token_hash: &str) -> Result<(), StoreError>;
    /// Sessions not yet expired (expired ones are deleted).
    fn live_sessions(&self, now_ms: i64) -> Result<Vec<SessionRecord>, StoreError>;

    /// Makes changes durable in the store's own files (offline commands, shutdown).
    fn checkpoint(&self) -> Result<(), StoreError>;

    /// Another connection to the same store, for another thread.
    fn connect(&self) -> Result<Box<dyn MetadataStore>, StoreError>;
}
