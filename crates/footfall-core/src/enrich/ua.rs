//! User agent → browser, OS, device class, and bot detection.
//!
//! woothee carries its dataset compiled in and parses in about a microsecond, which
//! matters on the ingest path; the uap-core based crates need a 200 KB regex file at run
//! time and are an order of magnitude slower.

use crate::event::Client;
use std::sync::OnceLock;

fn parser() -> &'static woothee::parser::Parser {
    static PARSER: OnceLock<woothee::parser::Parser> = OnceLock::new();
    PARSER.get_or_init(woothee::parser::Parser::new)
}

/// Markers of crawlers, monitors, headless and automated browsers that woothee doesn't
/// classify as crawlers itself. Matched case-insensitively.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "spider",
    "crawl",
    "slurp",
    "headless",
    "phantomjs",
    "electron/",
    "lighthouse",
    "pagespeed",
    "pingdom",
    "uptime",
    "monitor",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "go-http-client",
    "java/",
    "okhttp",
    "axios/",
    "node-fetch",
    "scrapy",
    "httpclient",
    "preview",
    "facebookexternalhit",
    "embedly",
    "quora link",
    "whatsapp",
    "vercel-screenshot",
    "puppeteer",
    "playwright",
    "selenium",
    "cypress",
];

/// Whether this user agent belongs to a bot or an automated browser. An empty UA counts as
/// a bot: every real browser sends one.
pub fn is_bot(ua: &str) -> bool {
    classify(ua).is_none()
}

/// Both questions with one parse: None for a bot, else the browser, OS and device. The
/// server caches the answers, since user agents repeat.
pub fn classify(ua: &str) -> Option<Client> {
    let ua_trim = ua.trim();
    if ua_trim.len() < 8 {
        return None;
    }
    let lower = ua_trim.to_ascii_lowercase();
    if BOT_MARKERS.iter().any(|m| lower.contains(m)) {
        return None;
    }
    let parsed = parser().parse(ua_trim);
    if matches!(&parsed, Some(r) if r.category == "crawler") {
        return None;
    }
    Some(client(ua, parsed))
}

pub fn parse(ua: &str) -> Client {
    client(ua, parser().parse(ua))
}

fn client(ua: &str, parsed: Option<woothee::parser::WootheeResult<'_>>) -> Client {
    let Some(r) = parsed else {
        return Client {
            browser: "Unknown".into(),
            os: "Unknown".into(),
            device: "Unknown".into(),
            ..Default::default()
        };
    };
    let device = match r.category {
        "pc" => "Desktop",
        "smartphone" | "mobilephone" => {
            if ua.contains("iPad") || (ua.contains("Android") && !ua.contains("Mobile")) {
                "Tablet"
            } else {
                "Mobile"
            }
        }
        "appliance" => "Other",
        _ => "Unknown",
    };
    let unknown = |s: &str| {
        if s.is_empty() || s == "UNKNOWN" {
            "Unknown".to_string()
        } else {
            s.to_string()
        }
    };
    let version = |s: &str| {
        if s == "UNKNOWN" {
            String::new()
        } else {
            major_minor(s)
        }
    };
    Client {
        browser: unknown(r.name),
        browser_version: version(r.version),
        os: unknown(r.os),
        os_version: version(&r.os_version),
        device: device.to_string(),
    }
}

/// "120.0.6099.71" → "120.0": the precision Plausible reports.
fn major_minor(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.71 Safari/537.36";
    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
    const FIREFOX_WIN: &str =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0";

    #[test]
    fn browsers_and_devices() {
        let c = parse(CHROME_MAC);
        assert_eq!(
            (
                c.browser.as_str(),
                c.browser_version.as_str(),
                c.device.as_str()
            ),
            ("Chrome", "120.0", "Desktop")
        );
        assert_eq!(c.os, "Mac OSX");
        let c = parse(IPHONE);
        assert_eq!(
            (c.browser.as_str(), c.os.as_str(), c.device.as_str()),
            ("Safari", "iPhone", "Mobile")
        );
        let c = parse(FIREFOX_WIN);
        assert_eq!(
            (c.browser.as_str(), c.os.as_str()),
            ("Firefox", "Windows 10")
        );
        assert_eq!(parse("").browser, "Unknown");
    }

    #[test]
    fn bots() {
        assert!(is_bot(
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
        ));
        assert!(is_bot("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36"));
        assert!(is_bot("curl/8.5.0"));
        assert!(is_bot(""));
        assert!(!is_bot(CHROME_MAC));
        assert!(!is_bot(IPHONE));
    }
}
