//! Record formats written by earlier releases, read so that a log written before an
//! upgrade still replays after it. Each converts to the current [`CommitRecord`].

use crate::event::{Client, EnrichedEvent, EventKind, GeoHint, Utm};
use crate::types::{SiteId, Timestamp, VisitorId};
use serde::Deserialize;

/// An event as formats 1 and 2 laid it out: before revenue.
#[derive(Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub struct Event {
    site: SiteId,
    ts: Timestamp,
    kind: EventKind,
    name: String,
    visitor: VisitorId,
    visitor_previous_salt: Option<VisitorId>,
    hostname: String,
    pathname: String,
    title: Option<String>,
    page_type: Option<String>,
    referrer: String,
    referrer_source: String,
    utm: Utm,
    geo: GeoHint,
    client: Client,
    props: Vec<(String, String)>,
    scroll_depth: Option<u8>,
    engaged_ms: Option<u64>,
    interactive: bool,
}

impl From<Event> for EnrichedEvent {
    fn from(e: Event) -> Self {
        EnrichedEvent {
            site: e.site,
            ts: e.ts,
            kind: e.kind,
            name: e.name,
            visitor: e.visitor,
            visitor_previous_salt: e.visitor_previous_salt,
            hostname: e.hostname,
            pathname: e.pathname,
            title: e.title,
            page_type: e.page_type,
            referrer: e.referrer,
            referrer_source: e.referrer_source,
            utm: e.utm,
            geo: e.geo,
            client: e.client,
            props: e.props,
            scroll_depth: e.scroll_depth,
            engaged_ms: e.engaged_ms,
            interactive: e.interactive,
            revenue: None,
        }
    }
}

/// For tests that write old formats: the event without its revenue.
#[cfg(test)]
impl From<&EnrichedEvent> for Event {
    fn from(e: &EnrichedEvent) -> Self {
        Event {
            site: e.site.clone(),
            ts: e.ts,
            kind: e.kind,
            name: e.name.clone(),
            visitor: e.visitor,
            visitor_previous_salt: e.visitor_previous_salt,
            hostname: e.hostname.clone(),
            pathname: e.pathname.clone(),
            title: e.title.clone(),
            page_type: e.page_type.clone(),
            referrer: e.referrer.clone(),
            referrer_source: e.referrer_source.clone(),
            utm: e.utm.clone(),
            geo: e.geo.clone(),
            client: e.client.clone(),
            props: e.props.clone(),
            scroll_depth: e.scroll_depth,
            engaged_ms: e.engaged_ms,
            interactive: e.interactive,
        }
    }
}

/// Events of format 2 (a cluster inbox entry's list holds them too).
pub fn events_v2(bytes: &[u8]) -> Result<Vec<EnrichedEvent>, postcard::Error> {
    let old: Vec<Event> = postcard::from_bytes(bytes)?;
    Ok(old.into_iter().map(EnrichedEvent::from).collect())
}

/// Format 2: the current layout but for the event.
pub(in crate::record) mod v2 {
    use super::Event;
    use crate::identify::{DurationChange, SessionAttrs};
    use crate::record::{Disposition, VisitChange};
    use crate::types::{EventId, SessionId, Timestamp, VisitorId};
    use serde::Deserialize;
    use std::sync::Arc;

    #[derive(Deserialize)]
    #[cfg_attr(test, derive(serde::Serialize))]
    pub struct CommitRecord {
        pub(in crate::record) now: Timestamp,
        pub(in crate::record) entries: Vec<Entry>,
        pub(in crate::record) visits: Vec<VisitChange>,
    }

    #[derive(Deserialize)]
    #[cfg_attr(test, derive(serde::Serialize))]
    pub(in crate::record) struct Entry {
        pub(in crate::record) event: Event,
        pub(in crate::record) id: EventId,
        pub(in crate::record) visitor: VisitorId,
        pub(in crate::record) session: Option<SessionId>,
        pub(in crate::record) disposition: Disposition,
        pub(in crate::record) visit: Option<Arc<SessionAttrs>>,
        pub(in crate::record) durations: Vec<DurationChange>,
    }

    impl From<CommitRecord> for crate::record::CommitRecord {
        fn from(r: CommitRecord) -> Self {
            crate::record::CommitRecord {
                now: r.now,
                entries: r
                    .entries
                    .into_iter()
                    .map(|e| crate::record::Entry {
                        event: e.event.into(),
                        id: e.id,
                        visitor: e.visitor,
                        session: e.session,
                        disposition: e.disposition,
                        visit: e.visit,
                        durations: e.durations,
                    })
                    .collect(),
                visits: r.visits,
                legacy: false,
            }
        }
    }
}

/// Format 1, read so that a log written before an upgrade still replays after it.
pub(in crate::record) mod v1 {
    use super::Event;
    use crate::identify::{DurationChange, SessionAttrs};
    use crate::record::{Disposition, VisitChange};
    use crate::types::{EventId, SessionId, Timestamp, VisitorId};
    use serde::Deserialize;
    use std::sync::Arc;

    #[derive(Deserialize)]
    #[cfg_attr(test, derive(serde::Serialize))]
    pub struct CommitRecord {
        pub(in crate::record) now: Timestamp,
        pub(in crate::record) entries: Vec<Entry>,
        pub(in crate::record) visits: Vec<VisitChange>,
    }

    #[derive(Deserialize)]
    #[cfg_attr(test, derive(serde::Serialize))]
    pub(in crate::record) struct Entry {
        pub(in crate::record) event: Event,
        pub(in crate::record) id: EventId,
        pub(in crate::record) visitor: VisitorId,
        pub(in crate::record) session: Option<SessionId>,
        pub(in crate::record) disposition: Disposition,
        pub(in crate::record) visit: Option<Arc<SessionAttrs>>,
        pub(in crate::record) durations: Vec<Change>,
    }

    #[derive(Deserialize)]
    #[cfg_attr(test, derive(serde::Serialize))]
    pub(in crate::record) struct Change {
        pub(in crate::record) event: EventId,
        pub(in crate::record) pathname: Arc<str>,
        pub(in crate::record) before: Option<i64>,
        pub(in crate::record) after: Option<i64>,
    }

    impl From<CommitRecord> for crate::record::CommitRecord {
        fn from(r: CommitRecord) -> Self {
            let entries = r
                .entries
                .into_iter()
                .map(|e| {
                    let ts = e.event.ts;
                    crate::record::Entry {
                        event: e.event.into(),
                        id: e.id,
                        visitor: e.visitor,
                        session: e.session,
                        disposition: e.disposition,
                        visit: e.visit,
                        durations: e
                            .durations
                            .into_iter()
                            .map(|d| DurationChange {
                                event: d.event,
                                ts,
                                pathname: d.pathname,
                                before: d.before,
                                after: d.after,
                            })
                            .collect(),
                    }
                })
                .collect();
            crate::record::CommitRecord {
                now: r.now,
                entries,
                visits: r.visits,
                legacy: true,
            }
        }
    }
}
