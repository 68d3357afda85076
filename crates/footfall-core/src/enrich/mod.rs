//! enrich: what we can learn from a request without keeping it — browser, OS and device
//! from the user agent, a source name from the referrer, UTM tags from the URL. Geo lookup
//! needs a database file and lives in the server; its result arrives here as a [`GeoHint`].
//!
//! After [`enrich`], the IP and raw user agent are gone.

pub mod referrer;
pub mod ua;
pub mod utm;

use crate::event::{Client, EnrichedEvent, GeoHint, IncomingEvent};
use crate::types::{SiteId, Timestamp, VisitorId};

/// Everything enrich needs that isn't in the event body.
pub struct Context<'a> {
    pub site: SiteId,
    pub now: Timestamp,
    /// Browser, OS and device, from [`ua::classify`] (the server caches it).
    pub client: &'a Client,
    pub geo: GeoHint,
    pub visitor: VisitorId,
    pub visitor_previous_salt: Option<VisitorId>,
}

/// Location the server determined (database or trusted edge) wins; what the client sent
/// (the seed's heartbeat fields) only fills gaps.
fn merge_geo(server: GeoHint, client: GeoHint) -> GeoHint {
    let has_coords = server.latitude.is_some() && server.longitude.is_some();
    GeoHint {
        country: server.country.or(client.country),
        region: server.region.or(client.region),
        city: server.city.or(client.city),
        latitude: if has_coords {
            server.latitude
        } else {
            client.latitude
        },
        longitude: if has_coords {
            server.longitude
        } else {
            client.longitude
        },
    }
}

pub fn enrich(ev: IncomingEvent, cx: Context<'_>) -> EnrichedEvent {
    let client = cx.client.clone();
    let utm = utm::from_query(&ev.query);
    let (referrer, referrer_source) =
        referrer::classify(ev.referrer.as_deref(), &ev.hostname, &utm, &ev.query);
    EnrichedEvent {
        site: cx.site,
        ts: ev.timestamp.unwrap_or(cx.now),
        kind: ev.kind,
        name: ev.name,
        visitor: cx.visitor,
        visitor_previous_salt: cx.visitor_previous_salt,
        hostname: ev.hostname,
        pathname: ev.pathname,
        title: ev.title,
        page_type: ev.page_type,
        referrer,
        referrer_source,
        utm,
        geo: merge_geo(cx.geo, ev.geo),
        client,
        props: ev.props,
        scroll_depth: ev.scroll_depth,
        engaged_ms: ev.engaged_ms,
        interactive: ev.interactive,
        revenue: ev.revenue,
    }
}
