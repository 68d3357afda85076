//! The event as it moves through the pipeline: [`IncomingEvent`] out of decode,
//! [`EnrichedEvent`] out of enrich (no IP, no raw user agent from here on).

use crate::money::Revenue;
use crate::types::{SiteId, Timestamp, VisitorId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Pageview,
    /// Time and scroll on the current page, sent when it is hidden.
    Engagement,
    /// Keeps the visitor active and says which page they are on; not stored as an event.
    Heartbeat,
    Custom,
}

impl EventKind {
    pub fn from_name(name: &str) -> EventKind {
        match name {
            "pageview" => EventKind::Pageview,
            "engagement" => EventKind::Engagement,
            "heartbeat" => EventKind::Heartbeat,
            _ => EventKind::Custom,
        }
    }
}

/// Location sent by the client itself (the seed's heartbeat fields) or by an edge proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GeoHint {
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

impl GeoHint {
    pub fn is_empty(&self) -> bool {
        self.country.is_none() && self.city.is_none() && self.latitude.is_none()
    }
}

/// What every wire format decodes to.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingEvent {
    pub kind: EventKind,
    pub name: String,
    /// Domain(s) as sent; Plausible allows a comma-separated list. May be empty when the
    /// caller (the seed's calls) lets the server take it from Origin/Referer.
    pub domain: String,
    pub hostname: String,
    pub pathname: String,
    /// Query string of the page URL, kept only long enough to read UTM tags.
    pub query: String,
    pub referrer: Option<String>,
    pub props: Vec<(String, String)>,
    pub title: Option<String>,
    pub page_type: Option<String>,
    /// A client-held anonymous id (footfall's `sid`, the seed's `sessionId`).
    pub client_id: Option<String>,
    pub scroll_depth: Option<u8>,
    pub engaged_ms: Option<u64>,
    pub interactive: bool,
    /// What a custom event earned (Plausible's `revenue` field).
    pub revenue: Option<Revenue>,
    pub geo: GeoHint,
    /// Only from trusted server-side batch senders.
    pub timestamp: Option<Timestamp>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl IncomingEvent {
    pub fn new(kind: EventKind, name: impl Into<String>) -> Self {
        IncomingEvent {
            kind,
            name: name.into(),
            domain: String::new(),
            hostname: String::new(),
            pathname: "/".into(),
            query: String::new(),
            referrer: None,
            props: Vec::new(),
            title: None,
            page_type: None,
            client_id: None,
            scroll_depth: None,
            engaged_ms: None,
            interactive: true,
            revenue: None,
            geo: GeoHint::default(),
            timestamp: None,
            ip: None,
            user_agent: None,
        }
    }
}

/// Browser, OS and device class from the user agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Client {
    pub browser: String,
    pub browser_version: String,
    pub os: String,
    pub os_version: String,
    pub device: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Utm {
    pub source: String,
    pub medium: String,
    pub campaign: String,
    pub content: String,
    pub term: String,
}

/// An event after enrichment. The client IP and raw user agent are gone; what identifies the
/// visitor is a keyed hash under today's salt and, to let a visit survive midnight,
/// yesterday's. Serialisable: it travels in commit records through the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrichedEvent {
    pub site: SiteId,
    pub ts: Timestamp,
    pub kind: EventKind,
    pub name: String,
    pub visitor: VisitorId,
    pub visitor_previous_salt: Option<VisitorId>,
    pub hostname: String,
    pub pathname: String,
    pub title: Option<String>,
    pub page_type: Option<String>,
    pub referrer: String,
    pub referrer_source: String,
    pub utm: Utm,
    pub geo: GeoHint,
    pub client: Client,
    pub props: Vec<(String, String)>,
    pub scroll_depth: Option<u8>,
    pub engaged_ms: Option<u64>,
    pub interactive: bool,
    pub revenue: Option<Revenue>,
}

impl EnrichedEvent {
    /// An event with only what identifies it — site, kind, time, page, visitor — and every
    /// attribute empty: for in-process sources and tests that build events directly.
    pub fn bare(
        site: SiteId,
        kind: EventKind,
        ts: Timestamp,
        pathname: &str,
        visitor: VisitorId,
    ) -> Self {
        let name = match kind {
            EventKind::Pageview => "pageview",
            EventKind::Engagement => "engagement",
            EventKind::Heartbeat => "heartbeat",
            EventKind::Custom => "custom",
        };
        EnrichedEvent {
            hostname: site.to_string(),
            site,
            ts,
            kind,
            name: name.into(),
            visitor,
            visitor_previous_salt: None,
            pathname: pathname.into(),
            title: None,
            page_type: None,
            referrer: String::new(),
            referrer_source: String::new(),
            utm: Utm::default(),
            geo: GeoHint::default(),
            client: Client::default(),
            props: Vec::new(),
            scroll_depth: None,
            engaged_ms: None,
            interactive: true,
            revenue: None,
        }
    }
}
