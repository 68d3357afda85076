//! The real client address: the peer, unless the peer is a trusted proxy, in which case
//! the address it reports. Rate limits and visitor hashes must never key on a proxy.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

pub fn is_trusted(peer: IpAddr, trusted: &[IpNet]) -> bool {
    peer.is_loopback() || trusted.iter().any(|n| n.contains(&peer))
}

fn header_ip(headers: &HeaderMap, name: &str) -> Option<IpAddr> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    if let Some(ip) =
        header_ip(headers, "cf-connecting-ip").or_else(|| header_ip(headers, "x-real-ip"))
    {
        return ip;
    }
    // X-Forwarded-For lists client, proxy1, proxy2...; each proxy appends the address it
    // saw. Walk from the right and take the first address that isn't one of ours: anything
    // left of it could have been written by the client.
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    for ip in hops.iter().rev() {
        if !is_trusted(*ip, trusted) {
            return *ip;
        }
    }
    hops.first().copied().unwrap_or(peer)
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
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted), peer);
    }
}
