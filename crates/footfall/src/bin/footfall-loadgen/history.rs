//! `--mode history`: writes a realistic past into a running footfall through
//! `POST /api/events`.
//!
//! The generator walks time forward from `now − days` to now. Each hour gets its share of
//! the visits (a daily curve in each visitor country's local time, a weekly dip at weekends,
//! slow growth), and each visit is generated whole when it starts: 1–n page views (geometric,
//! mean 2.5), an `engagement` event when each page is left (time on page, scroll depth),
//! sometimes a custom event. Its events wait in a priority queue until no visit that starts
//! later can come before them, so the stream is in timestamp order across all sites and only
//! the visits in flight are held in memory.
//!
//! A visitor is an IP and a user agent: IPs are drawn from /16 prefixes that GeoLite2 City
//! places in ~40 countries; a share of visits are returning visitors (an earlier IP + UA).
//! Everything comes from one seeded RNG, so the same arguments generate the same history.

use crate::{civil_date, print_latency, Args};
use hdrhistogram::Histogram;
use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::cmp::Ordering as CmpOrdering;
use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::error::Error;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Visitor countries: ISO code, share of traffic (before a site's home-country boost), UTC
/// offset in hours (the daily curve runs in local time), and /16 prefixes whose addresses
/// GeoLite2 City places in that country (checked against the database, 12 random addresses
/// each, all with a city).
#[rustfmt::skip]
const COUNTRIES: &[(&str, f64, f64, &[[u8; 2]])] = &[
    ("US", 30.0, -6.0, &[[65, 102], [75, 204], [98, 180], [152, 179], [174, 44], [134, 48]]),
    ("DE", 8.0, 1.0, &[[217, 82], [78, 48], [217, 233], [31, 18], [141, 54], [77, 183]]),
    ("GB", 7.0, 0.0, &[[78, 144], [84, 45], [176, 27], [81, 154], [194, 73], [176, 249]]),
    ("IN", 6.0, 5.5, &[[157, 48], [117, 196], [14, 98], [106, 205], [27, 57], [182, 60]]),
    ("FR", 4.5, 1.0, &[[2, 8], [88, 219], [176, 134], [86, 229], [176, 143], [194, 57]]),
    ("CA", 4.0, -5.0, &[[70, 69], [70, 53], [142, 109], [38, 116], [162, 106], [96, 53]]),
    ("BR", 3.5, -3.0, &[[179, 233], [189, 112], [201, 20], [187, 32], [189, 91], [191, 193]]),
    ("NL", 3.0, 1.0, &[[83, 84], [46, 144], [178, 227], [86, 92], [193, 79], [213, 10]]),
    ("JP", 3.0, 9.0, &[[153, 150], [43, 244], [220, 217], [118, 106], [220, 97], [106, 156]]),
    ("AU", 2.5, 10.0, &[[16, 50], [110, 21], [123, 208], [124, 177], [220, 244], [101, 191]]),
    ("ES", 2.5, 1.0, &[[81, 202], [81, 44], [88, 10], [146, 219], [85, 56], [37, 133]]),
    ("IT", 2.5, 1.0, &[[95, 230], [80, 180], [80, 19], [79, 41], [195, 223], [151, 8]]),
    ("PL", 2.0, 1.0, &[[31, 183], [195, 117], [81, 219], [157, 25], [89, 67], [153, 19]]),
    ("SE", 1.5, 1.0, &[[95, 204], [212, 247], [131, 115], [195, 196], [83, 226], [85, 227]]),
    ("RU", 1.5, 3.0, &[[178, 46], [188, 235], [62, 33], [95, 24], [5, 140], [178, 66]]),
    ("KR", 1.2, 9.0, &[[182, 213], [59, 1], [39, 120], [118, 38], [119, 198], [61, 75]]),
    ("MX", 1.2, -6.0, &[[189, 234], [189, 222], [148, 231], [189, 139], [132, 247], [148, 229]]),
    ("CH", 1.0, 1.0, &[[178, 39], [188, 62], [130, 92], [77, 58], [188, 61], [130, 82]]),
    ("CN", 1.0, 8.0, &[[218, 75], [115, 196], [123, 206], [112, 26], [111, 205], [121, 5]]),
    ("ID", 1.0, 7.0, &[[36, 84], [36, 66], [36, 93], [182, 10], [182, 253], [125, 162]]),
    ("TR", 1.0, 3.0, &[[88, 227], [88, 246], [78, 173], [95, 5], [88, 240], [212, 253]]),
    ("AR", 0.8, -3.0, &[[186, 22], [190, 137], [191, 85], [190, 183], [179, 62], [201, 251]]),
    ("AT", 0.8, 1.0, &[[188, 22], [77, 116], [81, 217], [84, 112], [84, 114], [68, 210]]),
    ("BE", 0.8, 1.0, &[[213, 49], [80, 200], [207, 175], [87, 67], [94, 104], [84, 192]]),
    ("SG", 0.8, 8.0, &[[219, 74], [116, 88], [49, 245], [203, 125], [121, 7], [218, 212]]),
    ("UA", 0.8, 2.0, &[[94, 153], [46, 96], [176, 36], [46, 211], [37, 115], [178, 151]]),
    ("VN", 0.8, 7.0, &[[171, 251], [118, 69], [113, 172], [113, 22], [27, 67], [113, 161]]),
    ("CZ", 0.7, 1.0, &[[158, 196], [88, 100], [89, 102], [90, 182], [158, 194], [78, 102]]),
    ("PH", 0.7, 8.0, &[[122, 2], [136, 158], [49, 149], [222, 127], [122, 52], [112, 208]]),
    ("ZA", 0.7, 2.0, &[[41, 3], [196, 253], [165, 144], [41, 56], [197, 71], [197, 229]]),
    ("DK", 0.6, 1.0, &[[5, 33], [93, 163], [85, 83], [87, 63], [62, 199], [80, 197]]),
    ("FI", 0.6, 2.0, &[[37, 27], [81, 197], [193, 65], [130, 233], [193, 94], [193, 166]]),
    ("IE", 0.6, 0.0, &[[108, 134], [87, 36], [134, 226], [89, 101], [86, 41], [193, 1]]),
    ("IL", 0.6, 2.0, &[[212, 199], [132, 72], [2, 54], [84, 108], [77, 125], [87, 69]]),
    ("NG", 0.6, 1.0, &[[102, 88], [105, 112], [105, 117], [105, 120], [41, 184], [160, 152]]),
    ("NO", 0.6, 1.0, &[[37, 253], [158, 39], [92, 220], [109, 247], [193, 71], [171, 23]]),
    ("PT", 0.6, 0.0, &[[84, 90], [84, 91], [161, 230], [89, 214], [81, 84], [85, 242]]),
    ("TW", 0.6, 8.0, &[[42, 71], [61, 228], [114, 46], [59, 104], [203, 70], [220, 141]]),
    ("EG", 0.5, 2.0, &[[154, 187], [156, 207], [156, 200], [45, 241], [102, 57], [102, 61]]),
    ("HK", 0.5, 8.0, &[[158, 182], [113, 254], [43, 199], [43, 105], [38, 243], [223, 17]]),
    ("NZ", 0.5, 12.0, &[[122, 58], [49, 227], [203, 97], [49, 226], [49, 224], [125, 239]]),
];

/// Sites after the first get a home audience: this country's share is raised to ~40 %.
const HOMES: &[&str] = &[
    "DE", "US", "JP", "FR", "BR", "GB", "IN", "NL", "ES", "AU", "CA", "PL", "KR", "IT", "SE",
];

/// Weighted user agents: desktop browsers on Windows, macOS and Linux, phones and tablets.
#[rustfmt::skip]
const AGENTS: &[(f64, &str)] = &[
    (22.0, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"),
    (7.0, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80"),
    (4.0, "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"),
    (10.0, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"),
    (7.0, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15"),
    (2.0, "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0"),
    (3.0, "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"),
    (2.0, "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"),
    (17.0, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"),
    (3.0, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1"),
    (13.0, "Mozilla/5.0 (Linux; Android 14; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"),
    (4.0, "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"),
    (3.0, "Mozilla/5.0 (iPad; CPU OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"),
    (1.5, "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"),
];

/// Where visits come from, with weights. Campaign visits also tag the landing URL.
#[derive(Clone, Copy)]
enum Source {
    Direct,
    Fixed(&'static str),
    HackerNews,
    Reddit,
    Twitter,
    GitHub,
    Campaign,
}

#[rustfmt::skip]
const SOURCES: &[(f64, Source)] = &[
    (40.0, Source::Direct),
    (24.0, Source::Fixed("https://www.google.com/")),
    (4.0, Source::Fixed("https://www.bing.com/")),
    (3.0, Source::Fixed("https://duckduckgo.com/")),
    (1.0, Source::Fixed("https://search.brave.com/")),
    (1.0, Source::Fixed("https://www.ecosia.org/")),
    (5.0, Source::HackerNews),
    (5.0, Source::Reddit),
    (4.0, Source::Twitter),
    (4.0, Source::GitHub),
    (2.0, Source::Fixed("https://www.linkedin.com/")),
    (1.5, Source::Fixed("https://www.facebook.com/")),
    (1.0, Source::Fixed("https://lobste.rs/")),
    (1.0, Source::Fixed("https://dev.to/")),
    (0.5, Source::Fixed("https://www.producthunt.com/")),
    (6.0, Source::Campaign),
];

/// utm_source, utm_medium, utm_campaign and the referrer such a visit comes with.
#[rustfmt::skip]
const CAMPAIGNS: &[(&str, &str, &str, &str)] = &[
    ("newsletter", "email", "weekly-digest", ""),
    ("newsletter", "email", "product-update", ""),
    ("twitter", "social", "launch-week", "https://t.co/"),
    ("google", "cpc", "brand-search", "https://www.google.com/"),
    ("linkedin", "social", "webinar", "https://www.linkedin.com/"),
    ("producthunt", "referral", "ph-launch", "https://www.producthunt.com/"),
    ("reddit", "social", "rust-post", "https://www.reddit.com/"),
];

const SUBREDDITS: &[&str] = &["rust", "selfhosted", "programming", "webdev", "privacy"];
const PLANS: &[(f64, &str)] = &[(60.0, "free"), (30.0, "pro"), (10.0, "team")];
const FILES: &[&str] = &[
    "footfall-x86_64-linux.tar.gz",
    "footfall-aarch64-linux.tar.gz",
    "footfall-macos.zip",
    "whitepaper.pdf",
];
const OUTBOUND: &[&str] = &[
    "https://github.com/footfall/footfall",
    "https://docs.rs/footfall",
    "https://twitter.com/footfall",
];

/// Visits that come back as a returning visitor (an earlier visitor of the same site).
const RETURNING: f64 = 0.3;
/// Earlier visitors remembered per site, to come back.
const POOL: usize = 20_000;
/// Chance that a visit ends after each page view: page views per visit are geometric with
/// mean 1 / STOP = 2.5.
const STOP: f64 = 0.4;

/// Hour of the day, local: fewer visits at night (3:00 lowest, 15:00 highest, 4×).
fn daily(local_hour: f64) -> f64 {
    1.0 + 0.6 * (std::f64::consts::TAU * (local_hour - 9.0) / 24.0).sin()
}

/// Weekends are quieter; Monday a bit busier.
fn weekly(local_ms: i64) -> f64 {
    // 1970-01-01 was a Thursday: 0 = Sunday.
    match (local_ms.div_euclid(DAY_MS) + 4).rem_euclid(7) {
        0 => 0.75,
        6 => 0.7,
        1 => 1.05,
        _ => 1.0,
    }
}

/// A weight that gives site 1 about half of the traffic: Zipf with the exponent that does it.
fn site_weights(k: usize) -> Vec<f64> {
    let share = |s: f64| 1.0 / (1..=k).map(|i| (i as f64).powf(-s)).sum::<f64>();
    let (mut lo, mut hi) = (0.0f64, 8.0f64);
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if share(mid) < 0.5 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (1..=k).map(|i| (i as f64).powf(-hi)).collect()
}

struct Page {
    path: String,
    title: String,
}

/// A few hundred paths: the usual site pages first (the most visited), then blog posts,
/// docs, features, integrations and customers in a random order.
fn catalogue(rng: &mut StdRng, name: &str) -> Vec<Page> {
    let heads = [
        "/",
        "/pricing",
        "/blog",
        "/docs",
        "/features",
        "/about",
        "/signup",
        "/docs/install",
        "/login",
        "/changelog",
        "/download",
        "/docs/getting-started",
        "/contact",
        "/docs/api",
        "/careers",
        "/privacy",
        "/terms",
    ];
    let mut rest: Vec<String> = Vec::new();
    let mut posts = HashSet::new();
    let n_posts = rng.random_range(120..260);
    while posts.len() < n_posts {
        posts.insert(rng.random_range(1..2000u32));
    }
    let mut posts: Vec<u32> = posts.into_iter().collect();
    posts.sort_unstable();
    rest.extend(posts.iter().map(|p| format!("/blog/post-{p}")));
    for section in ["guides", "reference", "api", "self-hosting", "integrations"] {
        for topic in [
            "overview",
            "configuration",
            "events",
            "goals",
            "filters",
            "sessions",
            "exports",
            "limits",
            "troubleshooting",
            "upgrading",
            "security",
            "faq",
        ] {
            if rng.random_bool(0.7) {
                rest.push(format!("/docs/{section}/{topic}"));
            }
        }
    }
    for f in [
        "realtime", "funnels", "goals", "privacy", "api", "teams", "exports",
    ] {
        rest.push(format!("/features/{f}"));
    }
    for i in [
        "wordpress",
        "nextjs",
        "hugo",
        "shopify",
        "ghost",
        "django",
        "rails",
        "gatsby",
    ] {
        rest.push(format!("/integrations/{i}"));
    }
    for c in 1..=rng.random_range(5..15) {
        rest.push(format!("/customers/case-study-{c}"));
    }
    rest.shuffle(rng);
    heads
        .iter()
        .map(|p| p.to_string())
        .chain(rest)
        .map(|path| {
            let last = path.rsplit('/').next().unwrap_or("");
            let title = if last.is_empty() {
                format!("{name} — home")
            } else {
                let words = last.replace('-', " ");
                let mut c = words.chars();
                let cap: String = c
                    .next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or_default();
                format!("{cap} · {name}")
            };
            Page { path, title }
        })
        .collect()
}

#[derive(Clone, Copy)]
struct Visitor {
    ip: u32,
    ua: u8,
}

struct Site {
    domain: String,
    /// Share of all traffic (sums to 1 over the sites).
    share: f64,
    home: Option<usize>,
    /// Audience by country (sums to 1).
    countries: Vec<f64>,
    pages: Vec<Page>,
    page_dist: WeightedIndex<f64>,
    /// Earlier visitors, a ring of at most POOL.
    pool: Vec<Visitor>,
    pool_next: usize,
}

enum Kind {
    Pageview,
    Engagement { ms: u32, scroll: u8 },
    Custom(&'static str, &'static str, &'static str),
}

enum Referrer {
    None,
    External(String),
    /// The previous page of the visit, on the same site.
    Internal(u16),
}

/// One event waiting for its time.
struct Pending {
    ts: i64,
    seq: u64,
    site: u16,
    page: u16,
    visitor: Visitor,
    kind: Kind,
    referrer: Referrer,
    /// utm_… query string of a campaign visit's landing page.
    query: Option<usize>,
}

impl Pending {
    /// Which of `n` senders carries this visitor's events (a visitor is site + IP + UA).
    fn partition(&self, n: usize) -> usize {
        let key = (u64::from(self.visitor.ip) << 24)
            ^ (u64::from(self.visitor.ua) << 8)
            ^ u64::from(self.site);
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % n.max(1)
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.ts, self.seq) == (other.ts, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    /// Reversed: the earliest event is the greatest, for `BinaryHeap`.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.ts, other.seq).cmp(&(self.ts, self.seq))
    }
}

/// Counts of what was generated.
#[derive(Default, Debug)]
struct Generated {
    events: u64,
    visits: u64,
    returning: u64,
    pageviews: u64,
    engagements: u64,
    custom: u64,
    /// Events that would have fallen after the end (now) and were not generated.
    clipped: u64,
    /// The first and last event's time.
    first_ts: Option<i64>,
    last_ts: i64,
}

struct Generator {
    rng: StdRng,
    sites: Vec<Site>,
    agents: WeightedIndex<f64>,
    sources: WeightedIndex<f64>,
    plans: WeightedIndex<f64>,
    start: i64,
    end: i64,
    /// Visits to start by the end of each hour (cumulative).
    visits_by_hour: Vec<u64>,
    hour: usize,
    /// This hour's visit start times, sorted, and how many were started.
    starts: Vec<i64>,
    started: usize,
    /// This hour's site and per-site country distributions.
    site_dist: Option<WeightedIndex<f64>>,
    country_dist: Vec<Option<WeightedIndex<f64>>>,
    heap: BinaryHeap<Pending>,
    seq: u64,
    target: u64,
    generated: Generated,
}

fn weighted<T>(items: &[(f64, T)]) -> Result<WeightedIndex<f64>, Box<dyn Error>> {
    Ok(WeightedIndex::new(items.iter().map(|(w, _)| *w))?)
}

impl Generator {
    fn new(
        seed: u64,
        n_sites: usize,
        target: u64,
        start: i64,
        end: i64,
    ) -> Result<Self, Box<dyn Error>> {
        if n_sites == 0 || n_sites > u16::MAX as usize {
            return Err("--sites must be between 1 and 65535".into());
        }
        if end <= start {
            return Err("--days must be at least 1".into());
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let weights = site_weights(n_sites);
        let total: f64 = weights.iter().sum();
        let global: f64 = COUNTRIES.iter().map(|c| c.1).sum();
        let mut sites = Vec::with_capacity(n_sites);
        for (i, w) in weights.iter().enumerate() {
            let domain = format!("site{}.example", i + 1);
            let home = (i > 0)
                .then(|| HOMES[(i - 1) % HOMES.len()])
                .and_then(|code| COUNTRIES.iter().position(|c| c.0 == code));
            let mut countries: Vec<f64> = COUNTRIES.iter().map(|c| c.1 / global).collect();
            if let Some(h) = home {
                let others: f64 = 1.0 - countries[h];
                for (j, share) in countries.iter_mut().enumerate() {
                    *share = if j == h { 0.4 } else { *share / others * 0.6 };
                }
            }
            let pages = catalogue(&mut rng, &domain);
            // Zipf over the catalogue, in its order.
            let page_dist = WeightedIndex::new((1..=pages.len()).map(|r| (r as f64).powf(-1.1)))?;
            sites.push(Site {
                domain,
                share: w / total,
                home,
                countries,
                pages,
                page_dist,
                pool: Vec::new(),
                pool_next: 0,
            });
        }
        let mut g = Generator {
            rng,
            sites,
            agents: weighted(AGENTS)?,
            sources: weighted(SOURCES)?,
            plans: weighted(PLANS)?,
            start,
            end,
            visits_by_hour: Vec::new(),
            hour: 0,
            starts: Vec::new(),
            started: 0,
            site_dist: None,
            country_dist: Vec::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            target,
            generated: Generated::default(),
        };
        g.plan_visits(seed)?;
        Ok(g)
    }

    fn sites(&self) -> impl Iterator<Item = (&str, f64, &str, usize)> {
        self.sites.iter().map(|s| {
            (
                s.domain.as_str(),
                s.share,
                s.home.map_or("—", |h| COUNTRIES[h].0),
                s.pages.len(),
            )
        })
    }

    fn hours(&self) -> usize {
        ((self.end - self.start + HOUR_MS - 1) / HOUR_MS) as usize
    }

    /// Per site: its traffic weight in the hour starting at `t0`, and its audience's
    /// weights by country then.
    fn hour_weights(&self, t0: i64) -> (Vec<f64>, Vec<Vec<f64>>) {
        let mid = t0 + HOUR_MS / 2;
        let by_country: Vec<f64> = COUNTRIES
            .iter()
            .map(|c| {
                let local = mid + (c.2 * HOUR_MS as f64) as i64;
                let hour = local.rem_euclid(DAY_MS) as f64 / HOUR_MS as f64;
                daily(hour) * weekly(local)
            })
            .collect();
        // Slow growth: the last day has ~25 % more traffic than the first.
        let trend = 1.0 + 0.25 * (t0 - self.start) as f64 / (self.end - self.start) as f64;
        let mut site_w = Vec::with_capacity(self.sites.len());
        let mut country_w = Vec::with_capacity(self.sites.len());
        for s in &self.sites {
            let cw: Vec<f64> = s
                .countries
                .iter()
                .zip(&by_country)
                .map(|(a, b)| a * b)
                .collect();
            site_w.push(s.share * trend * cw.iter().sum::<f64>());
            country_w.push(cw);
        }
        (site_w, country_w)
    }

    /// How many visits the target needs (from a pilot of the same visit model), spread over
    /// the hours by their weights.
    fn plan_visits(&mut self, seed: u64) -> Result<(), Box<dyn Error>> {
        let per_visit = {
            let mut pilot = Generator {
                rng: StdRng::seed_from_u64(seed ^ 0x5eed),
                sites: Vec::new(),
                agents: self.agents.clone(),
                sources: self.sources.clone(),
                plans: self.plans.clone(),
                start: 0,
                end: i64::MAX,
                visits_by_hour: Vec::new(),
                hour: 0,
                starts: Vec::new(),
                started: 0,
                site_dist: None,
                country_dist: Vec::new(),
                heap: BinaryHeap::new(),
                seq: 0,
                target: 0,
                generated: Generated::default(),
            };
            std::mem::swap(&mut pilot.sites, &mut self.sites);
            let n = 20_000;
            for i in 0..n {
                pilot.visit(i * HOUR_MS, 0, 0);
            }
            let events = pilot.heap.len() as f64;
            std::mem::swap(&mut pilot.sites, &mut self.sites);
            for s in &mut self.sites {
                s.pool.clear();
                s.pool_next = 0;
            }
            events / n as f64
        };
        let visits = (self.target as f64 / per_visit).round();
        let weights: Vec<f64> = (0..self.hours())
            .map(|h| {
                let t0 = self.start + h as i64 * HOUR_MS;
                // The last hour may be partial.
                let len = (self.end - t0).min(HOUR_MS) as f64 / HOUR_MS as f64;
                self.hour_weights(t0).0.iter().sum::<f64>() * len
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut cum = 0.0;
        self.visits_by_hour = weights
            .iter()
            .map(|w| {
                cum += w;
                (visits * cum / total).round() as u64
            })
            .collect();
        Ok(())
    }

    /// The next visit's start time, moving to the next hour when this one's are done.
    fn next_start(&mut self) -> Result<Option<i64>, Box<dyn Error>> {
        while self.started >= self.starts.len() {
            if self.hour >= self.visits_by_hour.len() {
                return Ok(None);
            }
            let h = self.hour;
            let before = if h == 0 {
                0
            } else {
                self.visits_by_hour[h - 1]
            };
            let n = self.visits_by_hour[h] - before;
            let t0 = self.start + h as i64 * HOUR_MS;
            let t1 = (t0 + HOUR_MS).min(self.end);
            let rng = &mut self.rng;
            self.starts = (0..n).map(|_| rng.random_range(t0..t1)).collect();
            self.starts.sort_unstable();
            self.started = 0;
            let (site_w, country_w) = self.hour_weights(t0);
            self.site_dist = WeightedIndex::new(&site_w).ok();
            self.country_dist = country_w
                .iter()
                .map(|w| WeightedIndex::new(w).ok())
                .collect();
            self.hour += 1;
        }
        Ok(Some(self.starts[self.started]))
    }

    /// The next event in time order, or None once the target is reached or history ends.
    fn next_event(&mut self) -> Result<Option<Pending>, Box<dyn Error>> {
        loop {
            if self.generated.events >= self.target {
                return Ok(None);
            }
            let start = self.next_start()?;
            let due = match (self.heap.peek(), start) {
                (Some(p), Some(s)) => p.ts <= s,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => return Ok(None),
            };
            if due {
                let p = self.heap.pop();
                if let Some(p) = &p {
                    self.generated.events += 1;
                    self.generated.first_ts.get_or_insert(p.ts);
                    self.generated.last_ts = p.ts;
                }
                return Ok(p);
            }
            if let Some(s) = start {
                self.started += 1;
                let site = match &self.site_dist {
                    Some(d) => d.sample(&mut self.rng),
                    None => 0,
                };
                let country = match self.country_dist.get(site) {
                    Some(Some(d)) => d.sample(&mut self.rng),
                    _ => 0,
                };
                self.visit(s, site, country);
            }
        }
    }

    fn new_visitor(&mut self, country: usize) -> Visitor {
        let prefixes = COUNTRIES[country].3;
        let [a, b] = prefixes[self.rng.random_range(0..prefixes.len())];
        let c: u8 = self.rng.random();
        let d: u8 = self.rng.random_range(1..255);
        Visitor {
            ip: u32::from_be_bytes([a, b, c, d]),
            ua: self.agents.sample(&mut self.rng) as u8,
        }
    }

    fn push(&mut self, mut p: Pending) {
        if p.ts > self.end {
            self.generated.clipped += 1;
            return;
        }
        p.seq = self.seq;
        self.seq += 1;
        match p.kind {
            Kind::Pageview => self.generated.pageviews += 1,
            Kind::Engagement { .. } => self.generated.engagements += 1,
            Kind::Custom(..) => self.generated.custom += 1,
        }
        self.heap.push(p);
    }

    /// Generates one visit starting at `start` and queues its events.
    fn visit(&mut self, start: i64, site_idx: usize, country: usize) {
        self.generated.visits += 1;
        let rng = &mut self.rng;
        let returning = {
            let pool = &self.sites[site_idx].pool;
            (!pool.is_empty() && rng.random_bool(RETURNING))
                .then(|| pool[rng.random_range(0..pool.len())])
        };
        let visitor = match returning {
            Some(v) => {
                self.generated.returning += 1;
                v
            }
            None => {
                let v = self.new_visitor(country);
                let site = &mut self.sites[site_idx];
                if site.pool.len() < POOL {
                    site.pool.push(v);
                } else {
                    site.pool[site.pool_next] = v;
                    site.pool_next = (site.pool_next + 1) % POOL;
                }
                v
            }
        };
        let (referrer, query) = self.source();
        let rng = &mut self.rng;
        let site = &self.sites[site_idx];
        let mut pages: Vec<u16> = Vec::new();
        loop {
            // A page not yet seen in this visit (a repeat within 30 minutes is deduplicated).
            let mut page = site.page_dist.sample(rng) as u16;
            for _ in 0..4 {
                if !pages.contains(&page) {
                    break;
                }
                page = site.page_dist.sample(rng) as u16;
            }
            pages.push(page);
            if pages.len() >= 30 || rng.random_bool(STOP) {
                break;
            }
        }
        let mut events = Vec::with_capacity(pages.len() * 2 + 1);
        let mut t = start;
        let mut referrer = Some(referrer);
        for (i, &page) in pages.iter().enumerate() {
            let path = site.pages[page as usize].path.as_str();
            events.push(Pending {
                ts: t,
                seq: 0,
                site: site_idx as u16,
                page,
                visitor,
                kind: Kind::Pageview,
                referrer: match referrer.take() {
                    Some(r) if r.is_empty() => Referrer::None,
                    Some(r) => Referrer::External(r),
                    None => Referrer::Internal(pages[i - 1]),
                },
                query: if i == 0 { query } else { None },
            });
            // Time on page: log-normal, median 35 s, 2 s to 25 min.
            let normal = gaussian(rng);
            let on_page = ((35_000.0 * (normal * 1.1).exp()) as i64).clamp(2_000, 25 * MINUTE_MS);
            if let Some(custom) = custom_event(rng, path, &self.plans) {
                let at = t + (on_page as f64 * rng.random_range(0.2..0.9)) as i64;
                events.push(Pending {
                    ts: at,
                    seq: 0,
                    site: site_idx as u16,
                    page,
                    visitor,
                    kind: custom,
                    referrer: Referrer::None,
                    query: None,
                });
            }
            let engaged = (on_page as f64 * rng.random_range(0.45..1.0)) as u32;
            let scroll = (100.0 * rng.random::<f64>().powf(0.6)).round() as u8;
            events.push(Pending {
                ts: t + on_page,
                seq: 0,
                site: site_idx as u16,
                page,
                visitor,
                kind: Kind::Engagement {
                    ms: engaged,
                    scroll,
                },
                referrer: Referrer::None,
                query: None,
            });
            t += on_page + rng.random_range(150..2_500);
        }
        for e in events {
            self.push(e);
        }
    }

    /// A visit's referrer ("" for direct) and campaign.
    fn source(&mut self) -> (String, Option<usize>) {
        let rng = &mut self.rng;
        match SOURCES[self.sources.sample(rng)].1 {
            Source::Direct => (String::new(), None),
            Source::Fixed(r) => (r.to_string(), None),
            Source::HackerNews => (
                format!(
                    "https://news.ycombinator.com/item?id={}",
                    rng.random_range(38_000_000..42_000_000)
                ),
                None,
            ),
            Source::Reddit => (
                format!(
                    "https://www.reddit.com/r/{}/comments/{}/",
                    SUBREDDITS[rng.random_range(0..SUBREDDITS.len())],
                    base36(rng.random_range(1_000_000..60_000_000))
                ),
                None,
            ),
            Source::Twitter => (
                format!(
                    "https://t.co/{}",
                    base36(rng.random_range(1_000_000_000..3_000_000_000))
                ),
                None,
            ),
            Source::GitHub => (
                format!(
                    "https://github.com/{}",
                    [
                        "footfall/footfall",
                        "awesome-selfhosted/awesome-selfhosted",
                        "plausible/analytics"
                    ][rng.random_range(0..3)]
                ),
                None,
            ),
            Source::Campaign => {
                let c = rng.random_range(0..CAMPAIGNS.len());
                (CAMPAIGNS[c].3.to_string(), Some(c))
            }
        }
    }

    /// Renders one event in the `/api/events` shape.
    fn render(&self, p: &Pending, out: &mut String) {
        let site = &self.sites[p.site as usize];
        let page = &site.pages[p.page as usize];
        out.push_str("{\"n\":");
        json_str(
            out,
            match p.kind {
                Kind::Pageview => "pageview",
                Kind::Engagement { .. } => "engagement",
                Kind::Custom(name, ..) => name,
            },
        );
        out.push_str(",\"u\":\"https://");
        out.push_str(&site.domain);
        escape_into(out, &page.path);
        if let Some(c) = p.query {
            let (s, m, n, _) = CAMPAIGNS[c];
            out.push_str(&format!("?utm_source={s}&utm_medium={m}&utm_campaign={n}"));
        }
        out.push_str("\",\"d\":");
        json_str(out, &site.domain);
        match &p.referrer {
            Referrer::None => {}
            Referrer::External(r) => {
                out.push_str(",\"r\":");
                json_str(out, r);
            }
            Referrer::Internal(prev) => {
                out.push_str(",\"r\":\"https://");
                out.push_str(&site.domain);
                escape_into(out, &site.pages[*prev as usize].path);
                out.push('"');
            }
        }
        match p.kind {
            Kind::Pageview => {
                out.push_str(",\"t\":");
                json_str(out, &page.title);
            }
            Kind::Engagement { ms, scroll } => {
                out.push_str(&format!(",\"e\":{ms},\"sd\":{scroll}"));
            }
            Kind::Custom(_, key, value) => {
                out.push_str(",\"p\":{");
                json_str(out, key);
                out.push(':');
                json_str(out, value);
                out.push('}');
            }
        }
        let ip = std::net::Ipv4Addr::from(p.visitor.ip);
        out.push_str(&format!(
            ",\"timestamp\":{},\"ip\":\"{ip}\",\"user_agent\":",
            p.ts
        ));
        json_str(out, AGENTS[p.visitor.ua as usize].1);
        out.push('}');
    }
}

/// Sometimes a custom event on a page: signups on pricing and signup pages, downloads on
/// download and install pages, outbound link clicks anywhere.
fn custom_event(rng: &mut StdRng, path: &str, plans: &WeightedIndex<f64>) -> Option<Kind> {
    let signup = match path {
        "/pricing" | "/signup" => 0.08,
        _ => 0.004,
    };
    let download = match path {
        "/download" | "/docs/install" => 0.25,
        _ => 0.0,
    };
    let u: f64 = rng.random();
    if u < signup {
        Some(Kind::Custom("Signup", "plan", PLANS[plans.sample(rng)].1))
    } else if u < signup + download {
        Some(Kind::Custom(
            "Download",
            "file",
            FILES[rng.random_range(0..FILES.len())],
        ))
    } else if u < signup + download + 0.015 {
        Some(Kind::Custom(
            "Outbound Link: Click",
            "url",
            OUTBOUND[rng.random_range(0..OUTBOUND.len())],
        ))
    } else {
        None
    }
}

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    while n > 0 {
        s.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    escape_into(out, s);
    out.push('"');
}

/// One request's worth of events.
struct Batch {
    body: String,
    events: u64,
    /// Timestamp of its last event.
    last_ts: i64,
}

#[derive(Default)]
struct Totals {
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    retries: u64,
    failed_events: u64,
    stored: u64,
    dropped: BTreeMap<String, u64>,
    first_error: Option<String>,
}

/// Shared between the senders and the progress line.
#[derive(Default)]
struct Progress {
    events: AtomicU64,
    requests: AtomicU64,
    /// History time reached by the acknowledged batches (roughly: they may finish out of order).
    history_ms: AtomicI64,
}

fn format_ms(ms: i64) -> String {
    let (y, m, d) = civil_date(ms.div_euclid(DAY_MS));
    let in_day = ms.rem_euclid(DAY_MS);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        in_day / HOUR_MS,
        (in_day % HOUR_MS) / MINUTE_MS
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Registers the sites, then generates and sends the history.
pub async fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let token = args
        .token
        .clone()
        .ok_or("history needs the admin token (--token or FOOTFALL_ADMIN_TOKEN)")?;
    if args.batch_size == 0 || args.batch_size > 1000 {
        return Err("--batch-size must be 1 to 1000 (the batch route's limit)".into());
    }
    let concurrency = args.concurrency().max(1);
    let end = now_ms();
    let start = end - args.days as i64 * DAY_MS;
    let gen = Generator::new(args.seed, args.sites, args.events, start, end)?;
    println!(
        "history: {} events over {} days ({} → {}), {} sites, seed {}",
        args.events,
        args.days,
        format_ms(start),
        format_ms(end),
        args.sites,
        args.seed
    );
    println!("{:<20} {:>7} {:>5} {:>6}", "site", "share", "home", "pages");
    for (domain, share, home, pages) in gen.sites() {
        println!("{domain:<20} {:>6.2}% {home:>5} {pages:>6}", share * 100.0);
    }

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(300))
        .build()?;
    let domains: Vec<String> = gen.sites().map(|s| s.0.to_string()).collect();
    for domain in &domains {
        let r = client
            .post(format!("{}/api/admin/sites", args.url))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "domain": domain }))
            .send()
            .await?;
        if !r.status().is_success() {
            return Err(format!(
                "registering {domain}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            )
            .into());
        }
    }
    println!("registered {} sites", domains.len());

    // One sender per partition of the visitors, each sending its batches one at a time:
    // a visitor's events reach the server in order (an engagement event that overtook its
    // page view would find no visit), while the partitions keep pace with each other
    // through the bounded channels, so all batches stay close in time.
    let mut txs = Vec::with_capacity(concurrency);
    let mut rxs = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (tx, rx) = tokio::sync::mpsc::channel::<Batch>(2);
        txs.push(tx);
        rxs.push(rx);
    }
    let batch_size = args.batch_size;
    let generator = std::thread::spawn(move || -> Result<Generated, String> {
        let mut gen = gen;
        let new_body = || String::with_capacity(batch_size * 400);
        let mut open: Vec<Batch> = (0..txs.len())
            .map(|_| Batch {
                body: new_body(),
                events: 0,
                last_ts: 0,
            })
            .collect();
        while let Some(p) = gen.next_event().map_err(|e| e.to_string())? {
            let i = p.partition(txs.len());
            let b = &mut open[i];
            b.body.push(if b.events == 0 { '[' } else { ',' });
            gen.render(&p, &mut b.body);
            b.events += 1;
            b.last_ts = p.ts;
            if b.events as usize >= batch_size {
                let full = std::mem::replace(
                    b,
                    Batch {
                        body: new_body(),
                        events: 0,
                        last_ts: 0,
                    },
                );
                if send(&txs[i], full).is_err() {
                    return Ok(gen.generated);
                }
            }
        }
        for (i, b) in open.into_iter().enumerate() {
            if b.events > 0 && send(&txs[i], b).is_err() {
                break;
            }
        }
        Ok(gen.generated)
    });

    let totals = Arc::new(Mutex::new(Totals::default()));
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1,
        600_000_000,
        3,
    )?));
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let url = format!("{}/api/events", args.url);
    let mut workers = Vec::new();
    for mut rx in rxs {
        let (totals, hist, progress, client, url, token) = (
            totals.clone(),
            hist.clone(),
            progress.clone(),
            client.clone(),
            url.clone(),
            token.clone(),
        );
        workers.push(tokio::spawn(async move {
            while let Some(batch) = rx.recv().await {
                send_batch(&client, &url, &token, batch, &totals, &hist, &progress).await;
            }
        }));
    }
    let reporter = {
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let events = progress.events.load(Ordering::Relaxed);
                let now = Instant::now();
                let rate = (events - last.1) as f64 / (now - last.0).as_secs_f64();
                let avg = events as f64 / started.elapsed().as_secs_f64();
                let at = progress.history_ms.load(Ordering::Relaxed);
                println!(
                    "[{:>5.0}s] sent {events} events ({rate:.0} ev/s now, {avg:.0} ev/s overall), history at {}",
                    started.elapsed().as_secs_f64(),
                    if at > 0 { format_ms(at) } else { "—".into() }
                );
                last = (now, events);
            }
        })
    };
    for w in workers {
        w.await?;
    }
    reporter.abort();
    let generated = tokio::task::spawn_blocking(move || generator.join())
        .await?
        .map_err(|_| "the generator panicked")??;
    let elapsed = started.elapsed().as_secs_f64();
    let t = totals.lock().await;
    let sent = progress.events.load(Ordering::Relaxed);
    println!(
        "mode=History concurrency={concurrency} batch-size={batch_size} duration={elapsed:.1}s"
    );
    println!(
        "generated: {} events ({} visits, {} returning, {} page views, {} engagement, {} custom; {} past now left out)",
        generated.events,
        generated.visits,
        generated.returning,
        generated.pageviews,
        generated.engagements,
        generated.custom,
        generated.clipped
    );
    println!(
        "history: first event {}, last event {}",
        generated.first_ts.map_or("—".into(), format_ms),
        format_ms(generated.last_ts)
    );
    println!(
        "requests: {} ({:.0}/s)   events accepted: {sent} ({:.0}/s)   stored: {}   errors: {}   retries: {}   events failed: {}",
        progress.requests.load(Ordering::Relaxed),
        progress.requests.load(Ordering::Relaxed) as f64 / elapsed,
        sent as f64 / elapsed,
        t.stored,
        t.errors,
        t.retries,
        t.failed_events
    );
    println!("dropped by the server: {:?}", t.dropped);
    print_latency(&*hist.lock().await);
    println!("statuses: {:?}", t.statuses);
    if let Some(e) = &t.first_error {
        println!("first error: {e}");
    }
    Ok(())
}

/// Closes a batch and hands it to its sender (blocking while that sender is two behind).
fn send(tx: &tokio::sync::mpsc::Sender<Batch>, mut b: Batch) -> Result<(), ()> {
    b.body.push(']');
    tx.blocking_send(b).map_err(|_| ())
}

/// Sends one batch, retrying transport errors, 429 and 5xx with backoff (5 attempts).
async fn send_batch(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    batch: Batch,
    totals: &Mutex<Totals>,
    hist: &Mutex<Histogram<u64>>,
    progress: &Progress,
) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let t = Instant::now();
        let res = client
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(batch.body.clone())
            .send()
            .await;
        let us = (t.elapsed().as_micros() as u64).max(1);
        let (status, text) = match res {
            Ok(r) => {
                let s = r.status();
                (Some(s), r.text().await.unwrap_or_default())
            }
            Err(e) => (None, e.to_string()),
        };
        let mut tot = totals.lock().await;
        progress.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(s) = status {
            *tot.statuses.entry(s.as_u16()).or_default() += 1;
        } else {
            tot.errors += 1;
        }
        match status {
            Some(s) if s.is_success() => {
                let _ = hist.lock().await.record(us);
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    tot.stored += v["stored"].as_u64().unwrap_or(0);
                    if let Some(d) = v["dropped"].as_object() {
                        for (k, n) in d {
                            *tot.dropped.entry(k.clone()).or_default() += n.as_u64().unwrap_or(0);
                        }
                    }
                }
                progress.events.fetch_add(batch.events, Ordering::Relaxed);
                progress
                    .history_ms
                    .fetch_max(batch.last_ts, Ordering::Relaxed);
                return;
            }
            s if attempt < 5 && s.is_none_or(|s| s.as_u16() == 429 || s.is_server_error()) => {
                tot.retries += 1;
                drop(tot);
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            s => {
                tot.failed_events += batch.events;
                if tot.first_error.is_none() {
                    let what = s.map_or("transport error".to_string(), |s| s.to_string());
                    tot.first_error = Some(format!("{what}: {}", text.trim()));
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(seed: u64, n: u64) -> Vec<(i64, String)> {
        let end = 1_750_000_000_000;
        let mut g = Generator::new(seed, 5, n, end - 3 * DAY_MS, end).unwrap();
        let mut out = Vec::new();
        while let Some(p) = g.next_event().unwrap() {
            let mut s = String::new();
            g.render(&p, &mut s);
            out.push((p.ts, s));
        }
        out
    }

    #[test]
    fn time_ordered_repeatable_and_valid() {
        let a = all(7, 20_000);
        assert_eq!(a, all(7, 20_000));
        assert!(a.len() as u64 <= 20_000 && a.len() > 19_000, "{}", a.len());
        assert!(a.windows(2).all(|w| w[0].0 <= w[1].0));
        let body = format!(
            "[{}]",
            a.iter().map(|e| e.1.as_str()).collect::<Vec<_>>().join(",")
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v.as_array().unwrap().len(), a.len());
        assert!(body.contains("\"n\":\"engagement\""));
        assert!(body.contains("utm_campaign="));
    }

    #[test]
    fn first_site_gets_about_half() {
        let w = site_weights(20);
        let share = w[0] / w.iter().sum::<f64>();
        assert!((share - 0.5).abs() < 0.01, "{share}");
    }
}
