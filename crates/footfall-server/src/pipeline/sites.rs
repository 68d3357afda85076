//! The registry of sites, in memory for the ingest path and persisted in the store.

use chrono_tz::Tz;
use footfall_core::catalogue::{Catalogue, Entry as CatalogueEntry};
use footfall_core::goal::{Funnel, Goal};
use footfall_core::segment::Segment;
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
    /// The id OpenPanel's SDKs may send for this site instead of its domain.
    pub openpanel_client_id: Option<Arc<str>>,
    /// The site's goals, oldest first.
    pub goals: Arc<Vec<Goal>>,
    /// The site's content catalogue (empty if none was set).
    pub catalogue: Arc<Catalogue>,
}

/// Why a goal or a funnel could not be added.
#[derive(Debug, thiserror::Error)]
pub enum GoalChangeError {
    #[error("no site {0}")]
    UnknownSite(SiteId),
    #[error("a site has at most {} goals", footfall_core::goal::MAX_GOALS)]
    TooMany,
    #[error("a site has at most {} funnels", footfall_core::goal::MAX_FUNNELS)]
    TooManyFunnels,
    #[error("steps[{0}]: {1:?} is not one of the site's goals")]
    UnknownStep(usize, String),
    #[error("a site has at most {} segments", footfall_core::segment::MAX_SEGMENTS)]
    TooManySegments,
    #[error("segment {0:?} belongs to another user; choose another name")]
    SegmentTaken(String),
    #[error("segment {0:?} belongs to another user")]
    NotYours(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a site's OpenPanel client id could not be set.
#[derive(Debug, thiserror::Error)]
pub enum ClientIdError {
    #[error("OpenPanel client id {id:?} already names site {site}")]
    Taken { id: String, site: SiteId },
    #[error("OpenPanel client id {0:?}: expected 1-128 visible ASCII characters, no commas")]
    Invalid(String),
    #[error("unknown site {0}")]
    UnknownSite(SiteId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `id` can travel in an HTTP header as OpenPanel's SDK sends it.
pub fn valid_client_id(id: &str) -> bool {
    // No commas: a header's domain may list several sites separated by them.
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

pub struct Sites {
    known: RwLock<HashMap<SiteId, SiteInfo>>,
    /// SHA-256 of each share token → its site. Looked up by hash so the time a lookup takes
    /// says nothing about how much of a guessed token was right.
    shares: RwLock<HashMap<[u8; 32], SiteId>>,
    /// OpenPanel client id → its site.
    openpanel: RwLock<HashMap<Arc<str>, SiteId>>,
    store: Mutex<Box<dyn MetadataStore>>,
    /// Called after this cache changed the store (cluster: other nodes reload).
    pub on_change: crate::changes::OnChange,
    /// Bumped when a catalogue may have changed (set here, or a reload): live streams
    /// send a fresh snapshot if their site's did.
    catalogues: tokio::sync::watch::Sender<u64>,
}

type Maps = (
    HashMap<SiteId, SiteInfo>,
    HashMap<[u8; 32], SiteId>,
    HashMap<Arc<str>, SiteId>,
);

fn read_all(store: &dyn MetadataStore) -> Result<Maps, StoreError> {
    let mut known = HashMap::new();
    let mut shares = HashMap::new();
    let mut openpanel = HashMap::new();
    for s in store.sites()? {
        let client_id: Option<Arc<str>> = s.openpanel_client_id.as_deref().map(Arc::from);
        if let Some(id) = &client_id {
            openpanel.insert(id.clone(), s.domain.clone());
        }
        let timezone = parse_timezone(&s.timezone).unwrap_or(Tz::UTC);
        let goals = Arc::new(store.goals(&s.domain)?);
        let catalogue = Arc::new(store.catalogue(&s.domain)?);
        if let Some(t) = &s.share_token {
            shares.insert(share_key(t), s.domain.clone());
        }
        known.insert(
            s.domain,
            SiteInfo {
                public: s.public,
                timezone,
                share_token: s.share_token.map(Arc::from),
                openpanel_client_id: client_id,
                goals,
                catalogue,
            },
        );
    }
    Ok((known, shares, openpanel))
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
        let (known, shares, openpanel) = read_all(store.as_ref())?;
        Ok(Sites {
            known: RwLock::new(known),
            shares: RwLock::new(shares),
            openpanel: RwLock::new(openpanel),
            store: Mutex::new(store),
            on_change: Default::default(),
            catalogues: tokio::sync::watch::Sender::new(0),
        })
    }

    /// The site's content catalogue (empty if none).
    pub fn catalogue(&self, site: &SiteId) -> Arc<Catalogue> {
        self.info(site).map(|i| i.catalogue).unwrap_or_default()
    }

    /// Wakes when a catalogue may have changed.
    pub fn catalogue_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.catalogues.subscribe()
    }

    /// Replaces a site's catalogue; returns its new revision.
    pub fn set_catalogue(
        &self,
        site: &SiteId,
        entries: &[CatalogueEntry],
        now_ms: i64,
    ) -> Result<u64, GoalChangeError> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if !self.contains(site) {
            return Err(GoalChangeError::UnknownSite(site.clone()));
        }
        let revision = store.set_catalogue(site, entries, now_ms)?;
        // From what was stored, not read back: the change is made, whatever a read says.
        let fresh = Arc::new(Catalogue::new(revision, entries.to_vec()));
        let mut k = self.known.write().unwrap_or_else(|p| p.into_inner());
        if let Some(info) = k.get_mut(site) {
            info.catalogue = fresh;
        }
        drop(k);
        drop(store);
        self.catalogues.send_modify(|n| *n += 1);
        self.on_change.fire();
        Ok(revision)
    }

    /// Reads every site from the store again (another node changed them).
    pub fn reload(&self) -> Result<(), StoreError> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let (known, shares, openpanel) = read_all(store.as_ref())?;
        *self.known.write().unwrap_or_else(|p| p.into_inner()) = known;
        *self.shares.write().unwrap_or_else(|p| p.into_inner()) = shares;
        *self.openpanel.write().unwrap_or_else(|p| p.into_inner()) = openpanel;
        self.catalogues.send_modify(|n| *n += 1);
        Ok(())
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
        drop((known, shares));
        self.on_change.fire();
        Ok(())
    }

    /// The site an OpenPanel client id was given to, if any.
    pub fn by_openpanel_client(&self, id: &str) -> Option<SiteId> {
        self.openpanel.read().ok().and_then(|m| m.get(id).cloned())
    }

    /// Gives a site an OpenPanel client id (Some), or takes it away (None). Ids are unique
    /// across sites.
    pub fn set_openpanel_client_id(
        &self,
        site: &SiteId,
        id: Option<&str>,
    ) -> Result<(), ClientIdError> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if !self.contains(site) {
            return Err(ClientIdError::UnknownSite(site.clone()));
        }
        self.check_client_id(site, id)?;
        self.set_client_id_in(&**store, site, id)?;
        self.on_change.fire();
        Ok(())
    }

    /// Registers (or updates) a site and, when `client_id` is Some, sets its OpenPanel
    /// client id (`""` removes it). The id is checked before anything is written, under
    /// the store lock every change takes, so a refused request changes nothing.
    pub fn add_with_client_id(
        &self,
        site: &SiteId,
        public: bool,
        timezone: Option<Tz>,
        now_ms: i64,
        client_id: Option<&str>,
    ) -> Result<bool, ClientIdError> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let id = client_id.map(str::trim);
        if let Some(id) = id {
            self.check_client_id(site, Some(id).filter(|i| !i.is_empty()))?;
        }
        let created = self.add_in(&**store, site, public, timezone, now_ms)?;
        if let Some(id) = id {
            self.set_client_id_in(&**store, site, Some(id).filter(|i| !i.is_empty()))?;
        }
        self.on_change.fire();
        Ok(created)
    }

    /// Whether `site` may take `id`: a valid id that no other site holds and that is not
    /// another site's domain (which names that site).
    fn check_client_id(&self, site: &SiteId, id: Option<&str>) -> Result<(), ClientIdError> {
        let Some(id) = id else { return Ok(()) };
        if !valid_client_id(id) {
            return Err(ClientIdError::Invalid(id.to_string()));
        }
        let owner = self
            .by_openpanel_client(id)
            .or_else(|| SiteId::parse(id).ok().filter(|d| self.contains(d)));
        match owner.filter(|o| o != site) {
            Some(owner) => Err(ClientIdError::Taken {
                id: id.to_string(),
                site: owner,
            }),
            None => Ok(()),
        }
    }

    /// Writes a checked id; the caller holds the store lock.
    fn set_client_id_in(
        &self,
        store: &dyn MetadataStore,
        site: &SiteId,
        id: Option<&str>,
    ) -> Result<(), ClientIdError> {
        store.set_openpanel_client_id(site, id)?;
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        let mut ids = self.openpanel.write().unwrap_or_else(|p| p.into_inner());
        let Some(info) = known.get_mut(site) else {
            return Err(ClientIdError::UnknownSite(site.clone()));
        };
        if let Some(old) = info.openpanel_client_id.take() {
            ids.remove(&old);
        }
        if let Some(id) = id {
            let id: Arc<str> = Arc::from(id);
            ids.insert(id.clone(), site.clone());
            info.openpanel_client_id = Some(id);
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
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let created = self.add_in(&**store, site, public, timezone, now_ms)?;
        self.on_change.fire();
        Ok(created)
    }

    /// [`add`](Self::add) with the store lock held by the caller.
    fn add_in(
        &self,
        store: &dyn MetadataStore,
        site: &SiteId,
        public: bool,
        timezone: Option<Tz>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let created = store.add_site(site, public, now_ms)?;
        if let Some(tz) = timezone {
            store.set_site_timezone(site, tz.name())?;
        }
        if let Ok(mut k) = self.known.write() {
            let old = k.get(site);
            let tz = timezone
                .or_else(|| old.map(|i| i.timezone))
                .unwrap_or(Tz::UTC);
            let share_token = old.and_then(|i| i.share_token.clone());
            let openpanel_client_id = old.and_then(|i| i.openpanel_client_id.clone());
            // A site new to this node may have goals already (another node's).
            let (goals, catalogue) = match old {
                Some(i) => (i.goals.clone(), i.catalogue.clone()),
                None => (
                    Arc::new(store.goals(site)?),
                    Arc::new(store.catalogue(site)?),
                ),
            };
            k.insert(
                site.clone(),
                SiteInfo {
                    public,
                    timezone: tz,
                    share_token,
                    openpanel_client_id,
                    goals,
                    catalogue,
                },
            );
        }
        Ok(created)
    }

    /// A site's goals, oldest first (none for an unknown site).
    pub fn goals(&self, site: &SiteId) -> Arc<Vec<Goal>> {
        self.info(site).map(|i| i.goals).unwrap_or_default()
    }

    /// Adds a goal to a site, or replaces its goal of that name; returns whether it is new.
    pub fn put_goal(
        &self,
        site: &SiteId,
        goal: Goal,
        now_ms: i64,
    ) -> Result<bool, GoalChangeError> {
        // The store lock is held until memory matches (as for share tokens): a slower
        // change must not overwrite a newer list in memory.
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if !self.contains(site) {
            return Err(GoalChangeError::UnknownSite(site.clone()));
        }
        // Counted in the store, which other nodes write too, not in this cache.
        let current = store.goals(site)?;
        let replaces = current.iter().any(|g| g.name == goal.name);
        if !replaces && current.len() >= footfall_core::goal::MAX_GOALS {
            return Err(GoalChangeError::TooMany);
        }
        let created = store.put_goal(site, &goal, now_ms)?;
        self.set_goals(site, Arc::new(store.goals(site)?));
        drop(store);
        self.on_change.fire();
        Ok(created)
    }

    /// Removes a site's goal by name; returns whether there was one.
    pub fn delete_goal(&self, site: &SiteId, name: &str) -> Result<bool, StoreError> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let found = store.delete_goal(site, name)?;
        self.set_goals(site, Arc::new(store.goals(site)?));
        drop(store);
        if found {
            self.on_change.fire();
        }
        Ok(found)
    }

    /// A site's saved funnels, oldest first — read from the store, which other nodes
    /// write too (they are read per funnel request, not per event).
    pub fn funnels(&self, site: &SiteId) -> Result<Vec<Funnel>, StoreError> {
        self.store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .funnels(site)
    }

    /// Saves a funnel (replacing the site's funnel of that name); returns whether it is
    /// new. Its steps must name the site's goals now.
    pub fn put_funnel(
        &self,
        site: &SiteId,
        funnel: Funnel,
        now_ms: i64,
    ) -> Result<bool, GoalChangeError> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if !self.contains(site) {
            return Err(GoalChangeError::UnknownSite(site.clone()));
        }
        let goals = store.goals(site)?;
        if let Some((i, step)) = funnel
            .steps
            .iter()
            .enumerate()
            .find(|(_, s)| !goals.iter().any(|g| &g.name == *s))
        {
            return Err(GoalChangeError::UnknownStep(i, step.clone()));
        }
        let current = store.funnels(site)?;
        if !current.iter().any(|f| f.name == funnel.name)
            && current.len() >= footfall_core::goal::MAX_FUNNELS
        {
            return Err(GoalChangeError::TooManyFunnels);
        }
        Ok(store.put_funnel(site, &funnel, now_ms)?)
    }

    /// Removes a site's saved funnel by name; returns whether there was one.
    /// A site's segments, every owner's (the caller shows each requester theirs).
    pub fn segments(&self, site: &SiteId) -> Result<Vec<Segment>, StoreError> {
        self.store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .segments(site)
    }

    /// Saves a segment; one of the same name is replaced only if `may_change` it, and keeps
    /// its owner (the admin token editing a user's segment leaves it theirs). Returns
    /// whether it is new, and the segment as saved.
    pub fn put_segment(
        &self,
        site: &SiteId,
        segment: &Segment,
        may_change: &dyn Fn(&Segment) -> bool,
        now_ms: i64,
    ) -> Result<(bool, Segment), GoalChangeError> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        if !self.contains(site) {
            return Err(GoalChangeError::UnknownSite(site.clone()));
        }
        let current = store.segments(site)?;
        let saved = match current.iter().find(|s| s.name == segment.name) {
            Some(old) if !may_change(old) => {
                return Err(GoalChangeError::SegmentTaken(segment.name.clone()))
            }
            Some(old) => Segment {
                owner: old.owner.clone(),
                ..segment.clone()
            },
            None if current.len() >= footfall_core::segment::MAX_SEGMENTS => {
                return Err(GoalChangeError::TooManySegments)
            }
            None => segment.clone(),
        };
        // The store checks the owner again in the same step as the write: another node
        // may have saved the name since it was read above.
        match store.put_segment(site, &saved, now_ms)? {
            Some(created) => Ok((created, saved)),
            None => Err(GoalChangeError::SegmentTaken(segment.name.clone())),
        }
    }

    /// Removes a segment that `visible` shows and `may_change` allows; false when there
    /// is none the requester can see.
    pub fn delete_segment(
        &self,
        site: &SiteId,
        name: &str,
        visible: &dyn Fn(&Segment) -> bool,
        may_change: &dyn Fn(&Segment) -> bool,
    ) -> Result<bool, GoalChangeError> {
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
        let Some(seg) = store
            .segments(site)?
            .into_iter()
            .find(|s| s.name == name && visible(s))
        else {
            return Ok(false);
        };
        if !may_change(&seg) {
            return Err(GoalChangeError::NotYours(seg.name));
        }
        Ok(store.delete_segment(site, name)?)
    }

    pub fn delete_funnel(&self, site: &SiteId, name: &str) -> Result<bool, StoreError> {
        self.store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .delete_funnel(site, name)
    }

    fn set_goals(&self, site: &SiteId, goals: Arc<Vec<Goal>>) {
        if let Ok(mut k) = self.known.write() {
            if let Some(info) = k.get_mut(site) {
                info.goals = goals;
            }
        }
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
