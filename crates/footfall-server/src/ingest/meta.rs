//! What enrichment needs from an HTTP request, read from its headers once. Past this point
//! nothing sees HTTP types, so the demo (and any other in-process source) builds this value
//! directly instead of faking headers.

use super::{client_ip, geo};
use axum::http::{header, HeaderMap};
use footfall_core::GeoHint;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr};

#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// The client's address: the peer, or what a trusted proxy says it forwarded.
    pub client_ip: IpAddr,
    pub user_agent: String,
    /// Host of the page that sent it (Origin, else Referer): the seed's calls carry no URL.
    pub origin_host: Option<String>,
    /// Location from a trusted edge proxy's headers (Cloudflare, Vercel, Netlify).
    pub edge_geo: GeoHint,
}

impl RequestMeta {
    pub fn from_http(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Self {
        RequestMeta {
            client_ip: client_ip::client_ip(peer, headers, trusted),
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            origin_host: header_host(headers, header::ORIGIN)
                .or_else(|| header_host(headers, header::REFERER)),
            edge_geo: if client_ip::is_trusted(peer, trusted) {
                geo::from_edge_headers(headers)
            } else {
                GeoHint::default()
            },
        }
    }

    /// A source inside the server: each event brings its own IP and user agent.
    pub fn local() -> Self {
        RequestMeta {
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            user_agent: String::new(),
            origin_host: None,
            edge_geo: GeoHint::default(),
        }
    }
}

fn header_host(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    let v = headers.get(name)?.to_str().ok()?;
    url::Url::parse(v)
        .ok()?
        .host_str()
        .map(str::to_ascii_lowercase)
}
