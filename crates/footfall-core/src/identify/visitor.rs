//! Visitor ids: a keyed hash of (daily salt, site, IP, user agent), or of a client-held
//! anonymous id when the request carries one. Neither input can be recovered from the id,
//! and once a salt is deleted (after 48 h) not even a known IP and UA can be matched to it.

use crate::types::{SiteId, VisitorId};
use siphasher::sip128::{Hasher128, SipHasher24};
use std::hash::Hasher;

/// A secret random salt, one per UTC day.
#[derive(Clone, PartialEq, Eq)]
pub struct Salt(pub [u8; 16]);

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Salt(..)")
    }
}

fn keyed(key: &[u8; 16], parts: &[&[u8]]) -> u64 {
    let mut h = SipHasher24::new_with_key(key);
    for p in parts {
        // Length-prefixing keeps ("ab","c") and ("a","bc") apart.
        h.write_u64(p.len() as u64);
        h.write(p);
    }
    // Zero is reserved so that no visitor id is confused with "none".
    h.finish128().h1.max(1)
}

pub fn from_request(salt: &Salt, site: &SiteId, ip: &str, user_agent: &str) -> VisitorId {
    VisitorId(keyed(
        &salt.0,
        &[
            site.as_str().as_bytes(),
            ip.as_bytes(),
            user_agent.as_bytes(),
        ],
    ))
}

/// The seed's model: the client keeps an anonymous UUID and that is the visitor. Hashed
/// with the site so that one id used on two sites gives two visitors.
pub fn from_client_id(site: &SiteId, client_id: &str) -> VisitorId {
    const KEY: [u8; 16] = *b"footfall-clientk";
    VisitorId(keyed(
        &KEY,
        &[site.as_str().as_bytes(), client_id.as_bytes()],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_on_every_input() {
        let s1 = Salt([1; 16]);
        let s2 = Salt([2; 16]);
        let site = SiteId::parse("e.com").unwrap();
        let other = SiteId::parse("f.com").unwrap();
        let a = from_request(&s1, &site, "1.2.3.4", "UA");
        assert_eq!(a, from_request(&s1, &site, "1.2.3.4", "UA"));
        assert_ne!(a, from_request(&s2, &site, "1.2.3.4", "UA"));
        assert_ne!(a, from_request(&s1, &other, "1.2.3.4", "UA"));
        assert_ne!(a, from_request(&s1, &site, "1.2.3.5", "UA"));
        assert_ne!(a, from_request(&s1, &site, "1.2.3.4", "UA2"));
        assert_ne!(from_client_id(&site, "x"), from_client_id(&other, "x"));
    }
}
