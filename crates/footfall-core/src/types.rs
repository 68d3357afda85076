//! Small types that carry meaning, so that a visitor id can't be passed where a session id
//! is expected and a timestamp always means milliseconds since the Unix epoch (UTC).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds since the Unix epoch, UTC.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const MINUTE: i64 = 60_000;

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn plus_millis(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }

    /// Days since the epoch (UTC): the unit of salt rotation.
    pub fn day_number(self) -> i64 {
        self.0.div_euclid(86_400_000)
    }

    pub fn to_rfc3339(self) -> String {
        chrono::DateTime::from_timestamp_millis(self.0)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default()
    }
}

/// A site, identified by its normalised domain (lower case, no `www.`, no port). Shared, not
/// copied: every event, visit and active visitor holds one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SiteId(std::sync::Arc<str>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid site domain {0:?}: expected a host name such as example.com")]
pub struct InvalidDomain(pub String);

impl SiteId {
    /// Normalises and validates a domain as given by a user or a tracker.
    pub fn parse(raw: &str) -> Result<SiteId, InvalidDomain> {
        let d = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        let d = d.strip_prefix("www.").unwrap_or(&d).to_string();
        let valid = !d.is_empty()
            && d.len() <= 253
            && d.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if valid {
            Ok(SiteId(d.into()))
        } else {
            Err(InvalidDomain(raw.chars().take(100).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether events from `hostname` may be recorded for this site: the domain itself or
    /// any subdomain of it.
    pub fn allows_hostname(&self, hostname: &str) -> bool {
        let h = hostname.trim_end_matches('.').to_ascii_lowercase();
        h == *self.0
            || h.strip_suffix(&*self.0)
                .is_some_and(|rest| rest.ends_with('.'))
    }
}

impl fmt::Display for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An anonymous visitor: a keyed hash, never reversible to its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VisitorId(pub u64);

/// One visit (session) of a visitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionId(pub u64);

/// A stored event's id: dense, increasing in commit order, used to chunk rebuilds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EventId(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised() {
        assert_eq!(
            SiteId::parse("WWW.Example.com.").unwrap().as_str(),
            "example.com"
        );
        assert!(SiteId::parse("").is_err());
        assert!(SiteId::parse("exa mple.com").is_err());
        assert!(SiteId::parse("a..b").is_err());
        assert!(SiteId::parse("x'; DROP TABLE events;--").is_err());
    }

    #[test]
    fn hostnames_match_domain_and_subdomains_only() {
        let s = SiteId::parse("example.com").unwrap();
        assert!(s.allows_hostname("example.com"));
        assert!(s.allows_hostname("blog.example.com"));
        assert!(!s.allows_hostname("badexample.com"));
        assert!(!s.allows_hostname("example.com.evil.org"));
    }

    #[test]
    fn day_numbers_are_utc_days() {
        assert_eq!(Timestamp(0).day_number(), 0);
        assert_eq!(Timestamp(86_399_999).day_number(), 0);
        assert_eq!(Timestamp(86_400_000).day_number(), 1);
        assert_eq!(Timestamp(-1).day_number(), -1);
    }
}
