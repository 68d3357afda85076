//! Referrer → (stored referrer, source name), as Plausible's "Sources" report shows them.

use crate::event::Utm;

pub const DIRECT: &str = "Direct / None";

/// Known sources by host suffix. The first match wins, so more specific hosts come first.
const SOURCES: &[(&str, &str)] = &[
    ("news.ycombinator.com", "Hacker News"),
    ("lobste.rs", "Lobsters"),
    ("duckduckgo.com", "DuckDuckGo"),
    ("search.brave.com", "Brave"),
    ("ecosia.org", "Ecosia"),
    ("bing.com", "Bing"),
    ("search.yahoo.com", "Yahoo!"),
    ("yahoo.com", "Yahoo!"),
    ("yandex.ru", "Yandex"),
    ("yandex.com", "Yandex"),
    ("baidu.com", "Baidu"),
    ("naver.com", "Naver"),
    ("qwant.com", "Qwant"),
    ("startpage.com", "Startpage"),
    ("kagi.com", "Kagi"),
    ("perplexity.ai", "Perplexity"),
    ("chatgpt.com", "ChatGPT"),
    ("chat.openai.com", "ChatGPT"),
    ("t.co", "Twitter"),
    ("twitter.com", "Twitter"),
    ("x.com", "Twitter"),
    ("facebook.com", "Facebook"),
    ("fb.com", "Facebook"),
    ("instagram.com", "Instagram"),
    ("linkedin.com", "LinkedIn"),
    ("lnkd.in", "LinkedIn"),
    ("reddit.com", "Reddit"),
    ("youtube.com", "YouTube"),
    ("youtu.be", "YouTube"),
    ("pinterest.com", "Pinterest"),
    ("tiktok.com", "TikTok"),
    ("bsky.app", "Bluesky"),
    ("mastodon.social", "Mastodon"),
    ("github.com", "GitHub"),
    ("stackoverflow.com", "Stack Overflow"),
    ("wikipedia.org", "Wikipedia"),
    ("medium.com", "Medium"),
    ("substack.com", "Substack"),
];

fn known_source(host: &str) -> Option<&'static str> {
    // Google has a domain per country (google.co.uk, google.de, ...).
    let labels: Vec<&str> = host.split('.').collect();
    if labels.contains(&"google") {
        return Some("Google");
    }
    SOURCES
        .iter()
        .find(|(suffix, _)| host == *suffix || host.ends_with(&format!(".{suffix}")))
        .map(|(_, name)| *name)
}

/// Returns the referrer as stored (host and path, no query: queries leak search terms and
/// tokens) and the source name. Referrals from the site's own host count as direct.
pub fn classify(
    referrer: Option<&str>,
    page_host: &str,
    utm: &Utm,
    page_query: &str,
) -> (String, String) {
    let parsed = referrer.and_then(|r| url::Url::parse(r).ok());
    let host = parsed
        .as_ref()
        .and_then(|u| u.host_str())
        .map(|h| h.trim_start_matches("www.").to_ascii_lowercase());
    let internal = host
        .as_deref()
        .is_some_and(|h| h == page_host.trim_start_matches("www."));
    let stored = match (&parsed, &host) {
        (Some(u), Some(h)) if !internal => format!("{h}{}", u.path().trim_end_matches('/')),
        _ => String::new(),
    };
    let ref_param = url::form_urlencoded::parse(page_query.as_bytes())
        .find(|(k, _)| k == "ref" || k == "source")
        .map(|(_, v)| v.into_owned());
    let source = match host.as_deref() {
        Some(h) if !internal => known_source(h)
            .map(str::to_string)
            .unwrap_or_else(|| h.to_string()),
        _ if !utm.source.is_empty() => utm.source.clone(),
        _ => ref_param
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| DIRECT.to_string()),
    };
    (stored, source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(r: Option<&str>) -> String {
        classify(r, "example.com", &Utm::default(), "").1
    }

    #[test]
    fn sources() {
        assert_eq!(
            src(Some("https://www.google.co.uk/search?q=secret")),
            "Google"
        );
        assert_eq!(
            src(Some("https://news.ycombinator.com/item?id=1")),
            "Hacker News"
        );
        assert_eq!(src(Some("https://t.co/abc")), "Twitter");
        assert_eq!(src(Some("https://old.reddit.com/r/rust")), "Reddit");
        assert_eq!(
            src(Some("https://blog.somebody.net/post")),
            "blog.somebody.net"
        );
        assert_eq!(src(None), DIRECT);
        assert_eq!(src(Some("https://example.com/other")), DIRECT);
        assert_eq!(src(Some("garbage")), DIRECT);
    }

    #[test]
    fn stored_referrer_drops_query() {
        let (stored, _) = classify(
            Some("https://www.google.com/search?q=secret"),
            "e.com",
            &Utm::default(),
            "",
        );
        assert_eq!(stored, "google.com/search");
    }

    #[test]
    fn utm_source_when_no_referrer() {
        let utm = Utm {
            source: "newsletter".into(),
            ..Default::default()
        };
        assert_eq!(classify(None, "e.com", &utm, "").1, "newsletter");
        assert_eq!(
            classify(None, "e.com", &Utm::default(), "ref=producthunt").1,
            "producthunt"
        );
    }
}
