//! Ingest routes: decode the wire format, resolve the site, enrich, identify the visitor,
//! and hand the events to the sequencer; answer 202 once their record is durable.

pub mod client_ip;
pub mod geo;
pub mod meta;
pub mod ua_cache;
mod writer;

pub use meta::RequestMeta;
pub use writer::{EventWriter, Routed, WriteError};

use crate::error::ApiError;
use crate::http::read_body;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Json;
use footfall_core::decode::{limits, openpanel, plausible, DecodeError};
use footfall_core::enrich;
use footfall_core::identify::{partition, visitor};
use footfall_core::record::Disposition;
use footfall_core::DropReason;
use footfall_core::{IncomingEvent, SiteId};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// A decoder for one wire format.
pub type Decoder = fn(&[u8]) -> Result<IncomingEvent, DecodeError>;

/// The route for a single-event wire format (`/api/event`, `/api/pageview`,
/// `/api/heartbeat`): the formats differ only in how the body decodes.
pub fn single_event_route(decode: Decoder) -> MethodRouter<Arc<AppState>> {
    post(
        move |State(st): State<Arc<AppState>>,
              ConnectInfo(peer): ConnectInfo<SocketAddr>,
              headers: HeaderMap,
              body: Body| async move {
            let body = read_body(body, limits::BODY_BYTES).await?;
            let ev = decode(&body)?;
            let meta = RequestMeta::from_http(peer.ip(), &headers, &st.config.trusted_proxies);
            single(&st, &meta, ev).await
        },
    )
}

/// `POST /track`: OpenPanel's SDKs, the site named by the `openpanel-client-id` header.
/// Messages about profiles and recordings are answered 202 and not stored.
pub async fn openpanel_track(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body(body, limits::BODY_BYTES).await?;
    let client_id = match headers.get(openpanel::CLIENT_ID_HEADER) {
        Some(v) => Some(v.to_str().map_err(|_| DecodeError::Invalid {
            field: openpanel::CLIENT_ID_HEADER.into(),
            reason: "is not visible ASCII".into(),
        })?),
        None => None,
    };
    // A site's domain names it; otherwise an id the operator gave a site stands for it.
    // (The domain wins even when a site registered later took it as an id.)
    let site = client_id.map(str::trim).and_then(|id| {
        let named = SiteId::parse(id)
            .ok()
            .filter(|d| st.ingest.sites.contains(d));
        named.or_else(|| st.ingest.sites.by_openpanel_client(id))
    });
    let client_id = site.as_ref().map(SiteId::as_str).or(client_id);
    match openpanel::decode(&body, client_id)? {
        Some(ev) => {
            let meta = RequestMeta::from_http(peer.ip(), &headers, &st.config.trusted_proxies);
            single(&st, &meta, ev).await
        }
        None => Ok((StatusCode::ACCEPTED, Json(json!({ "status": "ignored" }))).into_response()),
    }
}

/// `POST /api/events`: up to 1000 events from a trusted server-side sender, each of which
/// may carry its own timestamp, IP and user agent.
pub async fn batch(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    crate::auth::require_admin(&st, &headers)?;
    let body = read_body(body, limits::BATCH_BODY_BYTES).await?;
    let incoming = plausible::decode_batch(&body)?;
    let received = incoming.len();
    let mut dropped: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut events = Vec::with_capacity(received);
    let meta = RequestMeta::from_http(peer.ip(), &headers, &st.config.trusted_proxies);
    for ev in incoming {
        match prepare(&st, &meta, ev, true) {
            Ok(e) => events.extend(e),
            Err(DropReason::Internal) => {
                return Err(ApiError::NotDurable("the salt store failed".into()));
            }
            Err(reason) => {
                st.metrics.dropped(reason);
                *dropped.entry(reason.as_str()).or_default() += 1;
            }
        }
    }
    let (mut stored, mut queued) = (0, 0);
    if !events.is_empty() {
        for d in st.ingest.writer.write(events).await? {
            match d {
                Some(Disposition::Stored) => stored += 1,
                Some(Disposition::Skipped(reason)) => {
                    st.metrics.dropped(reason);
                    *dropped.entry(reason.as_str()).or_default() += 1;
                }
                Some(Disposition::Presence) => {}
                None => queued += 1,
            }
        }
    }
    let mut answer = json!({ "received": received, "stored": stored, "dropped": dropped });
    if queued > 0 {
        // Cluster mode: durable, decided (stored or deduplicated) moments later.
        answer["queued"] = json!(queued);
    }
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

async fn single(
    st: &AppState,
    meta: &RequestMeta,
    ev: IncomingEvent,
) -> Result<Response, ApiError> {
    let events = match prepare(st, meta, ev, false) {
        Ok(e) => e,
        // The server's own failure: nothing was recorded, and the client should retry.
        Err(DropReason::Internal) => {
            return Err(ApiError::NotDurable("the salt store failed".into()));
        }
        Err(reason) => {
            st.metrics.dropped(reason);
            return Ok(dropped(reason));
        }
    };
    let dispositions = st.ingest.writer.write(events).await?;
    // An event sent to several sites is stored for each; report the first outcome.
    match dispositions.first() {
        Some(&Some(Disposition::Skipped(reason))) => {
            st.metrics.dropped(reason);
            Ok(dropped(reason))
        }
        _ => Ok((StatusCode::ACCEPTED, Json(json!({ "status": "accepted" }))).into_response()),
    }
}

/// Plausible answers 202 for valid events it chose not to record, with a header saying so.
fn dropped(reason: DropReason) -> Response {
    (
        StatusCode::ACCEPTED,
        [("x-footfall-dropped", reason.as_str())],
        Json(json!({ "status": "dropped", "reason": reason.as_str() })),
    )
        .into_response()
}

/// Everything between decode and the sequencer. Returns one event per target site (with
/// its partition route), or the reason the event is dropped.
pub(crate) fn prepare(
    st: &AppState,
    meta: &RequestMeta,
    mut ev: IncomingEvent,
    server_side: bool,
) -> Result<Vec<Routed>, DropReason> {
    // The seed's calls carry no URL: the page's host comes from the browser's Origin.
    let origin_host = meta.origin_host.clone();
    if ev.domain.is_empty() {
        ev.domain = origin_host.clone().ok_or(DropReason::UnknownSite)?;
    }
    let sites: std::collections::BTreeSet<SiteId> = ev
        .domain
        .split(',')
        .filter_map(|d| SiteId::parse(d).ok())
        .filter(|s| st.ingest.sites.contains(s))
        .collect();
    let sites: Vec<SiteId> = sites.into_iter().collect();
    if sites.is_empty() {
        return Err(DropReason::UnknownSite);
    }
    if ev.hostname.is_empty() {
        ev.hostname = origin_host.unwrap_or_else(|| sites[0].as_str().to_string());
    }

    let user_agent = match (server_side, ev.user_agent.take()) {
        (true, Some(ua)) => ua,
        _ => meta.user_agent.clone(),
    };
    let client = st
        .ingest
        .user_agents
        .classify(&user_agent)
        .ok_or(DropReason::Bot)?;
    let ip: IpAddr = match (server_side, ev.ip.as_deref()) {
        (true, Some(raw)) => raw.trim().parse().map_err(|_| DropReason::InvalidIp)?,
        _ => meta.client_ip,
    };
    let geo = match &st.ingest.geo {
        Some(db) => db.lookup(ip),
        None => meta.edge_geo.clone(),
    };
    let (salt, previous) = st.ingest.salts.get(st.clock.as_ref()).map_err(|e| {
        tracing::error!(error = %e, "salt rotation failed");
        DropReason::Internal
    })?;
    let ip_text = ip.to_string();
    let now = st.clock.now();

    let sites: Vec<SiteId> = sites
        .into_iter()
        .filter(|s| s.allows_hostname(&ev.hostname))
        .collect();
    if sites.is_empty() {
        return Err(DropReason::HostnameMismatch);
    }
    let mut out = Vec::with_capacity(sites.len());
    let last = sites.len() - 1;
    let kind = ev.kind;
    for (i, site) in sites.into_iter().enumerate() {
        let sender = match &ev.client_id {
            Some(cid) => partition::Sender::Client(cid),
            None => partition::Sender::Request {
                ip: &ip_text,
                user_agent: &user_agent,
            },
        };
        let route = partition::route(&site, sender);
        let (v, prev) = match &ev.client_id {
            Some(cid) => (visitor::from_client_id(&site, cid), None),
            None => (
                visitor::from_request(&salt, &site, &ip_text, &user_agent),
                previous
                    .as_ref()
                    .map(|p| visitor::from_request(p, &site, &ip_text, &user_agent)),
            ),
        };
        let cx = enrich::Context {
            site,
            now,
            client: &client,
            geo: geo.clone(),
            visitor: v,
            visitor_previous_salt: prev,
        };
        // The usual single site takes the event itself; only extra sites copy it.
        let this = if i == last {
            std::mem::replace(&mut ev, IncomingEvent::new(kind, ""))
        } else {
            ev.clone()
        };
        out.push((route, enrich::enrich(this, cx)));
    }
    Ok(out)
}
