//! The real client address: the peer, unless the peer is a trusted proxy, in which case
//! the address it reports. Rate limits and visitor hashes must never key on a proxy.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

pub fn is_trusted(peer: IpAddr, trusted: &[IpNet]) -> bool {
    // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
    let peer = peer.to_canonical();
    peer.is_loopback() || trusted.iter().any(|n| n.contains(&peer))
}

/// An address as proxies write it: bare, `a.b.c.d:port` or `[v6]:port`.
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim();
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    raw.parse::<std::net::SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

fn header_ip(headers: &HeaderMap, name: &str) -> Option<IpAddr> {
    parse_hop(headers.get(name)?.to_str().ok()?)
}

pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    // X-Forwarded-For lists client, proxy1, proxy2...; each proxy appends the address it
    // saw. Walk from the right and take the first address that isn't one of ours: anything
    // left of it could have been written by the client.
    // An entry that doesn't parse ends the trusted part of the chain: nothing left of it
    // can be believed.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut last_trusted = None;
    for raw in hops.iter().rev() {
        match parse_hop(raw) {
            Some(ip) if is_trusted(ip, trusted) => last_trusted = Some(ip),
            Some(ip) => return ip,
            None => return last_trusted.unwrap_or(peer),
        }
    }
    if hops.is_empty() {
        // Proxies that report the client in a header of their own instead.
        if let Some(ip) =
            header_ip(headers, "x-real-ip").or_else(|| header_ip(headers, "cf-connecting-ip"))
        {
            return ip;
        }
    }
    last_trusted.unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_str(v).unwrap());
        }
        m
    }

    #[test]
    fn mapped_ipv4_peers_are_canonical() {
        let peer: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(is_trusted(peer, &[]));
        let peer: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        assert!(is_trusted(peer, &["10.0.0.0/8".parse().unwrap()]));
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            client_ip(peer, &h(&[("x-forwarded-for", "1.1.1.1")]), &[]),
            peer
        );
    }

    #[test]
    fn rightmost_untrusted_hop() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = client_ip(
            peer,
            &h(&[("x-forwarded-for", "6.6.6.6, 8.8.8.8, 10.0.0.5")]),
            &trusted,
        );
        assert_eq!(
            ip,
            "8.8.8.8".parse::<IpAddr>().unwrap(),
            "the client may forge what is left of the first untrusted hop"
        );
        let ip = client_ip(peer, &h(&[("cf-connecting-ip", "9.9.9.9")]), &trusted);
        assert_eq!(ip, "9.9.9.9".parse::<IpAddr>().unwrap());
        let ip = client_ip(
            peer,
            &h(&[
                ("x-forwarded-for", "8.8.8.8"),
                ("cf-connecting-ip", "6.6.6.6"),
            ]),
            &trusted,
        );
        assert_eq!(
            ip,
            "8.8.8.8".parse::<IpAddr>().unwrap(),
            "the proxy's own chain beats a header the client may have sent"
        );
        let ip = client_ip(
            peer,
            &h(&[("x-forwarded-for", "6.6.6.6, garbage, 10.0.0.5")]),
            &trusted,
        );
        assert_eq!(
            ip,
            "10.0.0.5".parse::<IpAddr>().unwrap(),
            "nothing left of an unparsable hop is believed"
        );
        let ip = client_ip(peer, &h(&[("x-forwarded-for", "8.8.4.4:5678")]), &trusted);
        assert_eq!(ip, "8.8.4.4".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted), peer);
    }
}
