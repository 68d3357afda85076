//! Ingest routes: decode the wire format, resolve the site, enrich, identify the visitor,
//! and hand the events to the writer; answer 202 once they are durable.

pub mod client_ip;
pub mod geo;

use crate::app::AppState;
use crate::error::ApiError;
use crate::pipeline::writer::Disposition;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Json;
use footfall_core::decode::{limits, plausible, DecodeError};
use footfall_core::enrich::{self, ua};
use footfall_core::identify::visitor;
use footfall_core::{EnrichedEvent, GeoHint, IncomingEvent, SiteId};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Reads the body up to `max` bytes; larger bodies are refused without reading them all.
pub async fn read_body(body: Body, max: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, max)
        .await
        .map_err(|_| ApiError::BodyTooLarge(max))
}

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
            single(&st, peer.ip(), &headers, ev).await
        },
    )
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
    for ev in incoming {
        match prepare(&st, peer.ip(), &headers, ev, true) {
            Ok(e) => events.extend(e),
            Err(reason) => {
                st.metrics.dropped(reason);
                *dropped.entry(reason).or_default() += 1;
            }
        }
    }
    let mut stored = 0;
    if !events.is_empty() {
        for d in st
            .writer
            .write(events)
            .await
            .map_err(ApiError::Unavailable)?
        {
            match d {
                Disposition::Stored => stored += 1,
                Disposition::Skipped(reason) => {
                    st.metrics.dropped(reason);
                    *dropped.entry(reason).or_default() += 1;
                }
                Disposition::Heartbeat => {}
            }
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "received": received, "stored": stored, "dropped": dropped })),
    )
        .into_response())
}

async fn single(
    st: &AppState,
    peer: IpAddr,
    headers: &HeaderMap,
    ev: IncomingEvent,
) -> Result<Response, ApiError> {
    let events = match prepare(st, peer, headers, ev, false) {
        Ok(e) => e,
        Err(reason) => {
            st.metrics.dropped(reason);
            return Ok(dropped(reason));
        }
    };
    let dispositions = st
        .writer
        .write(events)
        .await
        .map_err(ApiError::Unavailable)?;
    // An event sent to several sites is stored for each; report the first outcome.
    match dispositions.first() {
        Some(Disposition::Skipped(reason)) => {
            st.metrics.dropped(reason);
            Ok(dropped(reason))
        }
        _ => Ok((StatusCode::ACCEPTED, Json(json!({ "status": "accepted" }))).into_response()),
    }
}

/// Plausible answers 202 for valid events it chose not to record, with a header saying so.
fn dropped(reason: &'static str) -> Response {
    (
        StatusCode::ACCEPTED,
        [("x-footfall-dropped", reason)],
        Json(json!({ "status": "dropped", "reason": reason })),
    )
        .into_response()
}

fn header_host(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    let v = headers.get(name)?.to_str().ok()?;
    url::Url::parse(v)
        .ok()?
        .host_str()
        .map(str::to_ascii_lowercase)
}

/// Everything between decode and the writer. Returns one event per target site, or the
/// reason the event is dropped.
pub(crate) fn prepare(
    st: &AppState,
    peer: IpAddr,
    headers: &HeaderMap,
    mut ev: IncomingEvent,
    server_side: bool,
) -> Result<Vec<EnrichedEvent>, &'static str> {
    // The seed's calls carry no URL: the page's host comes from the browser's Origin.
    let origin_host =
        header_host(headers, header::ORIGIN).or_else(|| header_host(headers, header::REFERER));
    if ev.domain.is_empty() {
        ev.domain = origin_host.clone().ok_or("unknown_site")?;
    }
    let sites: std::collections::BTreeSet<SiteId> = ev
        .domain
        .split(',')
        .filter_map(|d| SiteId::parse(d).ok())
        .filter(|s| st.sites.contains(s))
        .collect();
    let sites: Vec<SiteId> = sites.into_iter().collect();
    if sites.is_empty() {
        return Err("unknown_site");
    }
    if ev.hostname.is_empty() {
        ev.hostname = origin_host.unwrap_or_else(|| sites[0].as_str().to_string());
    }

    let header_ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let user_agent = if server_side {
        ev.user_agent
            .clone()
            .unwrap_or_else(|| header_ua.to_string())
    } else {
        header_ua.to_string()
    };
    if ua::is_bot(&user_agent) {
        return Err("bot");
    }
    let ip: IpAddr = match (server_side, ev.ip.as_deref()) {
        (true, Some(raw)) => raw.trim().parse().map_err(|_| "invalid_ip")?,
        _ => client_ip::client_ip(peer, headers, &st.config.trusted_proxies),
    };
    let geo = match &st.geo {
        Some(db) => db.lookup(ip),
        None if client_ip::is_trusted(peer, &st.config.trusted_proxies) => {
            geo::from_edge_headers(headers)
        }
        None => GeoHint::default(),
    };
    let (salt, previous) = st.salts.get(st.clock.as_ref()).map_err(|e| {
        tracing::error!(error = %e, "salt rotation failed");
        "internal"
    })?;
    let ip_text = ip.to_string();
    let now = st.clock.now();

    let sites: Vec<SiteId> = sites
        .into_iter()
        .filter(|s| s.allows_hostname(&ev.hostname))
        .collect();
    if sites.is_empty() {
        return Err("hostname_mismatch");
    }
    let mut out = Vec::with_capacity(sites.len());
    let last = sites.len() - 1;
    let kind = ev.kind;
    for (i, site) in sites.into_iter().enumerate() {
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
            user_agent: &user_agent,
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
        out.push(enrich::enrich(this, cx));
    }
    Ok(out)
}
