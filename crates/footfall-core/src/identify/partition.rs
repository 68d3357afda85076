//! Which log partition a visitor's events go to in cluster mode.
//!
//! Everything the sequencer decides (visit, dedup, durations, the page an event happened
//! on) is per visitor, so a cluster splits visitors into partitions, each sequenced by one
//! node at a time. The key must not be the visitor id: that changes with the daily salt,
//! and a visit running past midnight is continued under yesterday's id, which must be in
//! the same partition. So the key is the visitor id's inputs without the salt.
//!
//! The hash is unkeyed (a fixed key): only the partition number, a few bits, leaves the
//! request handler, and it is never stored with an event.

use crate::types::SiteId;
use siphasher::sip::SipHasher13;
use std::hash::Hasher;

const KEY: (u64, u64) = (0x666f_6f74_6661_6c6c, 0x7061_7274_6974_696f);

/// Who sent the event, as the visitor id sees it.
#[derive(Debug, Clone, Copy)]
pub enum Sender<'a> {
    /// A client-held anonymous id (the visitor id is made from it alone).
    Client(&'a str),
    /// Otherwise the request's IP address and user agent.
    Request { ip: &'a str, user_agent: &'a str },
}

/// A stable 64-bit route for (site, sender); [`partition`] maps it onto a partition count.
pub fn route(site: &SiteId, sender: Sender<'_>) -> u64 {
    let mut h = SipHasher13::new_with_keys(KEY.0, KEY.1);
    let mut part = |b: &[u8]| {
        h.write_u64(b.len() as u64);
        h.write(b);
    };
    part(site.as_str().as_bytes());
    match sender {
        Sender::Client(id) => {
            part(b"c");
            part(id.as_bytes());
        }
        Sender::Request { ip, user_agent } => {
            part(b"r");
            part(ip.as_bytes());
            part(user_agent.as_bytes());
        }
    }
    h.finish()
}

/// The partition of `route` among `parts` (at least 1). Multiply-shift rather than modulo
/// so every bit of the hash counts.
pub fn partition(route: u64, parts: u32) -> u32 {
    ((route as u128 * parts.max(1) as u128) >> 64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn site(s: &str) -> SiteId {
        SiteId::parse(s).unwrap()
    }

    proptest! {
        #[test]
        fn in_range_and_stable(ip in "[0-9.:a-f]{1,39}", ua in ".{0,200}", parts in 1u32..1024) {
            let r = route(&site("a.com"), Sender::Request { ip: &ip, user_agent: &ua });
            let again = route(&site("a.com"), Sender::Request { ip: &ip, user_agent: &ua });
            prop_assert_eq!(r, again);
            prop_assert!(partition(r, parts) < parts);
        }

        #[test]
        fn inputs_do_not_run_together(a in "[a-z]{0,8}", b in "[a-z]{0,8}") {
            // ("ab","c") and ("a","bc") are different senders.
            let joined = format!("{a}{b}");
            let split = route(&site("a.com"), Sender::Request { ip: &a, user_agent: &b });
            let whole = route(&site("a.com"), Sender::Request { ip: &joined, user_agent: "" });
            prop_assume!(!b.is_empty());
            prop_assert_ne!(split, whole);
        }
    }

    #[test]
    fn spreads_evenly() {
        let parts = 8u32;
        let mut counts = vec![0u32; parts as usize];
        for i in 0..80_000u32 {
            let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
            let r = route(
                &site("a.com"),
                Sender::Request {
                    ip: &ip,
                    user_agent: "UA",
                },
            );
            counts[partition(r, parts) as usize] += 1;
        }
        // 10,000 expected each; 5 standard deviations is about ±470.
        for c in counts {
            assert!((9_500..=10_500).contains(&c), "{c}");
        }
    }

    #[test]
    fn every_input_matters() {
        let base = route(
            &site("a.com"),
            Sender::Request {
                ip: "1.2.3.4",
                user_agent: "x",
            },
        );
        assert_ne!(
            base,
            route(
                &site("b.com"),
                Sender::Request {
                    ip: "1.2.3.4",
                    user_agent: "x"
                }
            )
        );
        assert_ne!(
            base,
            route(
                &site("a.com"),
                Sender::Request {
                    ip: "1.2.3.5",
                    user_agent: "x"
                }
            )
        );
        assert_ne!(
            base,
            route(
                &site("a.com"),
                Sender::Request {
                    ip: "1.2.3.4",
                    user_agent: "y"
                }
            )
        );
        assert_ne!(
            route(&site("a.com"), Sender::Client("id")),
            route(&site("b.com"), Sender::Client("id"))
        );
        assert_eq!(partition(u64::MAX, 5), 4);
        assert_eq!(partition(0, 5), 0);
        assert_eq!(partition(12345, 1), 0);
    }
}
