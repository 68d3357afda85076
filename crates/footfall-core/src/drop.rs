//! Why a valid event was not recorded. One enum for every stage that drops events, so
//! metrics labels, the `x-footfall-dropped` header and batch summaries all use the same
//! names, mapped in one place ([`DropReason::as_str`]).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DropReason {
    /// No registered site matches the event's domain.
    UnknownSite,
    /// The page's host is not the site or one of its subdomains.
    HostnameMismatch,
    /// A crawler, headless browser or empty user agent.
    Bot,
    /// A server-side batch event named an IP address that doesn't parse.
    InvalidIp,
    /// The same visitor viewed the same page within the dedup window.
    Duplicate,
    /// An engagement event with no visit to attach to.
    NoVisit,
    /// The server could not process it (salt storage failed); logged.
    Internal,
}

impl DropReason {
    pub const ALL: [DropReason; 7] = [
        DropReason::UnknownSite,
        DropReason::HostnameMismatch,
        DropReason::Bot,
        DropReason::InvalidIp,
        DropReason::Duplicate,
        DropReason::NoVisit,
        DropReason::Internal,
    ];

    /// The name used in metrics labels, response headers and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::UnknownSite => "unknown_site",
            DropReason::HostnameMismatch => "hostname_mismatch",
            DropReason::Bot => "bot",
            DropReason::InvalidIp => "invalid_ip",
            DropReason::Duplicate => "duplicate",
            DropReason::NoVisit => "no_visit",
            DropReason::Internal => "internal",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
