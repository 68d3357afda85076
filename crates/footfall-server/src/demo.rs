//! `serve --demo`: a public site `demo.example` with a month of history and synthetic
//! visitors arriving live, so a newcomer sees a moving dashboard within a minute.
//!
//! Demo events go through the same enrich → sequencer → log path as real ones (as if
//! sent to the authenticated batch route), with made-up IPs from the IPv6 documentation
//! range and the visitor's place given as a location hint.

use crate::ingest::{prepare, RequestMeta};
use crate::state::AppState;
use footfall_core::{EventKind, GeoHint, IncomingEvent, SiteId, Timestamp};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::Duration;

pub const DOMAIN: &str = "demo.example";

pub fn site() -> SiteId {
    SiteId::parse(DOMAIN).unwrap_or_else(|_| unreachable!("a valid constant domain"))
}

/// (country, region, city, latitude, longitude, weight)
const PLACES: &[(&str, &str, &str, f64, f64, u32)] = &[
    ("US", "US-NY", "New York", 40.71, -74.01, 9),
    ("US", "US-CA", "San Francisco", 37.77, -122.42, 8),
    ("US", "US-TX", "Austin", 30.27, -97.74, 4),
    ("CA", "CA-ON", "Toronto", 43.65, -79.38, 4),
    ("BR", "BR-SP", "São Paulo", -23.55, -46.63, 4),
    ("GB", "GB-ENG", "London", 51.51, -0.13, 7),
    ("DE", "DE-BE", "Berlin", 52.52, 13.40, 7),
    ("DE", "DE-BY", "Munich", 48.14, 11.58, 3),
    ("FR", "FR-IDF", "Paris", 48.86, 2.35, 5),
    ("NL", "NL-NH", "Amsterdam", 52.37, 4.90, 3),
    ("SE", "SE-AB", "Stockholm", 59.33, 18.07, 2),
    ("PL", "PL-MZ", "Warsaw", 52.23, 21.01, 2),
    ("ES", "ES-MD", "Madrid", 40.42, -3.70, 2),
    ("IN", "IN-KA", "Bengaluru", 12.97, 77.59, 6),
    ("JP", "JP-13", "Tokyo", 35.68, 139.69, 4),
    ("SG", "SG-01", "Singapore", 1.35, 103.82, 2),
    ("AU", "AU-NSW", "Sydney", -33.87, 151.21, 3),
    ("ZA", "ZA-WC", "Cape Town", -33.92, 18.42, 1),
    ("NG", "NG-LA", "Lagos", 6.52, 3.38, 1),
    ("KR", "KR-11", "Seoul", 37.57, 126.98, 2),
];

/// (path, title)
const PAGES: &[(&str, &str)] = &[
    ("/", "Footfall — live, private web analytics"),
    ("/pricing", "Pricing · Footfall"),
    ("/docs", "Documentation · Footfall"),
    ("/docs/getting-started", "Getting started · Footfall docs"),
    ("/docs/tracker", "The tracker script · Footfall docs"),
    ("/docs/api", "Stats API · Footfall docs"),
    ("/blog", "Blog · Footfall"),
    (
        "/blog/analytics-without-cookies",
        "Analytics without cookies · Footfall blog",
    ),
    (
        "/blog/duckdb-or-clickhouse",
        "DuckDB or ClickHouse? · Footfall blog",
    ),
    ("/changelog", "Changelog · Footfall"),
    ("/about", "About · Footfall"),
    ("/signup", "Sign up · Footfall"),
];

/// (referrer, weight); None is direct traffic.
const REFERRERS: &[(Option<&str>, u32)] = &[
    (None, 10),
    (Some("https://www.google.com/"), 12),
    (Some("https://duckduckgo.com/"), 3),
    (Some("https://www.bing.com/"), 1),
    (Some("https://news.ycombinator.com/"), 5),
    (Some("https://github.com/footfall/footfall"), 4),
    (Some("https://www.reddit.com/r/selfhosted/"), 3),
    (Some("https://x.com/"), 2),
    (Some("https://lobste.rs/"), 1),
];

const AGENTS: &[(&str, u32)] = &[
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", 9),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15", 5),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", 3),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1", 5),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", 4),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", 2),
    ("Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1", 1),
];

/// One of `items` with probability proportional to its weight (all weights are positive
/// constants, so the choice can't fail).
fn weighted<'a, T>(rng: &mut impl Rng, items: &'a [T], weight: impl Fn(&T) -> u32) -> &'a T {
    items
        .choose_weighted(rng, weight)
        .unwrap_or_else(|_| unreachable!("constant, positive weights"))
}

/// Who a visitor looks like to the server: the same again later means a returning visitor.
type Identity = (
    String,
    &'static str,
    &'static (&'static str, &'static str, &'static str, f64, f64, u32),
);

/// Recent identities, so that some new visits come from people who were here before.
#[derive(Default)]
struct Regulars(std::collections::VecDeque<Identity>);

impl Regulars {
    /// A returning visitor's identity about one time in five, else a new one (remembered).
    fn pick(&mut self, rng: &mut impl Rng) -> Identity {
        if !self.0.is_empty() && rng.random_bool(0.2) {
            let i = rng.random_range(0..self.0.len());
            return self.0[i].clone();
        }
        let id: Identity = (
            format!(
                "2001:db8:{:x}:{:x}::{:x}",
                rng.random::<u16>(),
                rng.random::<u16>(),
                rng.random::<u16>()
            ),
            weighted(rng, AGENTS, |a| a.1).0,
            weighted(rng, PLACES, |p| p.5),
        );
        if self.0.len() >= 200 {
            self.0.pop_front();
        }
        self.0.push_back(id.clone());
        id
    }
}

/// One simulated visitor: who they look like and what they do next.
struct Visitor {
    ip: String,
    agent: &'static str,
    place: &'static (&'static str, &'static str, &'static str, f64, f64, u32),
    referrer: Option<&'static str>,
    utm: Option<&'static str>,
    pages_left: u32,
    page: usize,
    viewed: u32,
    /// Next action at this time (ms).
    next_at: i64,
    /// Next heartbeat while reading.
    beat_at: i64,
    page_since: i64,
}

impl Visitor {
    fn new(rng: &mut impl Rng, regulars: &mut Regulars, now: i64) -> Visitor {
        let (ip, agent, place) = regulars.pick(rng);
        let landing = if rng.random_bool(0.45) {
            0
        } else {
            rng.random_range(1..PAGES.len())
        };
        Visitor {
            ip,
            agent,
            place,
            referrer: weighted(rng, REFERRERS, |r| r.1).0,
            utm: rng.random_bool(0.12).then(|| {
                *["newsletter", "launch-week", "docs-ads"]
                    .choose(rng)
                    .unwrap_or(&"newsletter")
            }),
            // About half leave after one page (the bounce rate a site like this has).
            pages_left: if rng.random_bool(0.5) {
                1
            } else {
                rng.random_range(2..6)
            },
            page: landing,
            viewed: 0,
            next_at: now,
            beat_at: i64::MAX,
            page_since: now,
        }
    }

    fn event(&self, kind: &str, now: i64, backfill: bool) -> IncomingEvent {
        let (path, title) = PAGES[self.page];
        let mut ev = IncomingEvent::new(EventKind::from_name(kind), kind);
        ev.domain = DOMAIN.into();
        ev.hostname = DOMAIN.into();
        ev.pathname = path.into();
        if kind == "pageview" {
            ev.title = Some(title.into());
            if self.viewed == 0 {
                ev.referrer = self.referrer.map(str::to_string);
                if let Some(c) = self.utm {
                    ev.query = format!("utm_source=newsletter&utm_medium=email&utm_campaign={c}");
                }
            }
        }
        let (country, region, city, lat, lon, _) = *self.place;
        ev.geo = GeoHint {
            country: Some(country.into()),
            region: Some(region.into()),
            city: Some(city.into()),
            latitude: Some(lat),
            longitude: Some(lon),
        };
        ev.ip = Some(self.ip.clone());
        ev.user_agent = Some(self.agent.into());
        if backfill {
            ev.timestamp = Some(Timestamp(now));
        }
        ev
    }

    /// What this visitor sends at `now`, and whether they are still on the site after it.
    fn step(&mut self, rng: &mut impl Rng, now: i64, backfill: bool) -> (Vec<IncomingEvent>, bool) {
        let mut out = Vec::new();
        if now < self.next_at {
            if now >= self.beat_at && !backfill {
                out.push(self.event("heartbeat", now, backfill));
                self.beat_at = now + 30_000 + rng.random_range(0..3_000);
            }
            return (out, true);
        }
        if self.viewed > 0 {
            let mut e = self.event("engagement", now, backfill);
            e.engaged_ms = Some((now - self.page_since).max(0) as u64);
            e.scroll_depth = Some(rng.random_range(20..=100));
            out.push(e);
            if self.pages_left == 0 {
                return (out, false);
            }
            self.page = next_page(rng, self.page);
        }
        out.push(self.event("pageview", now, backfill));
        if PAGES[self.page].0 == "/signup" && rng.random_bool(0.5) {
            let mut e = self.event("Signup", now, backfill);
            let plan = *["free", "pro", "team"].choose(rng).unwrap_or(&"free");
            e.props = vec![("plan".into(), plan.into())];
            // Paid plans earn their first month.
            let price = match plan {
                "pro" => Some("29.00"),
                "team" => Some("99.00"),
                _ => None,
            };
            e.revenue = price.and_then(|p| {
                Some(footfall_core::money::Revenue {
                    amount: footfall_core::money::Amount::parse(p).ok()?,
                    currency: footfall_core::money::Currency::parse("EUR").ok()?,
                })
            });
            out.push(e);
        } else if PAGES[self.page].0.starts_with("/docs") && rng.random_bool(0.15) {
            let mut e = self.event("Download", now, backfill);
            e.props = vec![(
                "file".into(),
                (*[
                    "footfall-linux-x86_64.tar.gz",
                    "footfall-macos-arm64.tar.gz",
                    "footfall.deb",
                ]
                .choose(rng)
                .unwrap_or(&"footfall.deb"))
                .into(),
            )];
            out.push(e);
        }
        self.viewed += 1;
        self.pages_left = self.pages_left.saturating_sub(1);
        self.page_since = now;
        self.next_at = now + rng.random_range(8_000..90_000);
        self.beat_at = now + 30_000 + rng.random_range(0..3_000);
        (out, true)
    }
}

fn next_page(rng: &mut impl Rng, from: usize) -> usize {
    // Readers of the docs tend to stay in the docs; everyone drifts to pricing and signup.
    let p = PAGES[from].0;
    let choices: &[usize] = if p.starts_with("/docs") {
        &[2, 3, 4, 5, 1]
    } else if p == "/pricing" {
        &[11, 11, 2, 0]
    } else {
        &[1, 2, 6, 7, 8, 9, 10, 1, 11]
    };
    *choices.choose(rng).unwrap_or(&0)
}

/// Stores demo events; false once the sequencer is gone (shutting down).
async fn send(st: &AppState, events: Vec<IncomingEvent>) -> bool {
    let meta = RequestMeta::local();
    let mut prepared = Vec::with_capacity(events.len());
    for ev in events {
        if let Ok(e) = prepare(st, &meta, ev, true) {
            prepared.extend(e);
        }
    }
    if prepared.is_empty() {
        return true;
    }
    match st.ingest.writer.write(prepared).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "demo traffic not stored; demo stops");
            false
        }
    }
}

const HOUR: i64 = 3_600_000;
/// The live simulation keeps at least this many visitors on the site.
const MIN_ON_SITE: usize = 6;

/// New visitors per hour at `ts`, history and live alike, so "today" continues the graph:
/// a daily rhythm peaking mid-afternoon UTC, quieter weekends, and a slow rise over the month.
fn visitors_per_hour(ts: i64, now: i64) -> f64 {
    let hour = ((ts / HOUR) % 24) as f64;
    let daily = 0.35 + 0.65 * (0.5 - 0.5 * ((hour - 3.0) / 24.0 * std::f64::consts::TAU).cos());
    let weekday = (ts / (24 * HOUR) + 3) % 7; // 1970-01-01 was a Thursday; 5, 6 = Sat, Sun
    let weekend = if weekday >= 5 { 0.7 } else { 1.0 };
    let days_ago = ((now - ts) / (24 * HOUR)) as f64;
    let growth = 1.0 - 0.25 * (days_ago / 30.0).min(1.0);
    90.0 * daily * weekend * growth
}

/// A month of history for the demo site, once (skipped if it already has page views).
async fn backfill(st: &AppState) {
    let site = site();
    let has_data = st.read.live.total_pageviews(&site) > 0;
    if has_data {
        return;
    }
    let now = st.clock.now().0;
    // Visits that would still be going on now are left to the live simulation.
    let until = now - 10 * 60_000;
    let mut rng = StdRng::from_os_rng();
    let mut regulars = Regulars::default();
    let mut batch = Vec::new();
    let mut hour = (now - 30 * 24 * HOUR) / HOUR * HOUR;
    let started = std::time::Instant::now();
    let mut total = 0;
    while hour < until {
        let expected = visitors_per_hour(hour, now) * rng.random_range(0.8..1.2);
        for _ in 0..expected.round() as usize {
            let start = hour + rng.random_range(0..HOUR);
            if start >= until {
                continue;
            }
            let mut v = Visitor::new(&mut rng, &mut regulars, start);
            let mut t = start;
            loop {
                let (evs, stays) = v.step(&mut rng, t, true);
                batch.extend(evs);
                if !stays {
                    break;
                }
                t = v.next_at;
            }
        }
        hour += HOUR;
        if batch.len() >= 2_000 || hour >= until {
            // In time order, as a real import would arrive.
            batch.sort_by_key(|e: &IncomingEvent| e.timestamp.map_or(0, |t| t.0));
            total += batch.len();
            if *st.shutdown.borrow() || !send(st, std::mem::take(&mut batch)).await {
                return;
            }
        }
    }
    tracing::info!(
        events = total,
        ms = started.elapsed().as_millis() as u64,
        "demo: a month of history added to {DOMAIN}"
    );
}

/// Starts the demo traffic; it runs until shutdown.
/// The demo's goals and funnel, so its Goals and Funnels views have something to show.
fn conversions(st: &AppState) {
    use footfall_core::goal::{Funnel, FunnelSpec, Goal, GoalSpec};
    let site = site();
    let goal = |name: &str, page: Option<&str>, event: Option<&str>| {
        Goal::from_spec(GoalSpec {
            name: name.into(),
            page: page.map(Into::into),
            event: event.map(Into::into),
            ..GoalSpec::default()
        })
    };
    let now = st.clock.now().0;
    for g in [
        goal("Visit pricing", Some("/pricing"), None),
        goal("Signup", None, Some("Signup")),
        goal("Read the blog", Some("/blog/**"), None),
        Goal::from_spec(GoalSpec {
            name: "Subscription".into(),
            event: Some("Signup".into()),
            currency: Some("EUR".into()),
            ..GoalSpec::default()
        }),
    ] {
        match g {
            Ok(g) => {
                if let Err(e) = st.ingest.sites.put_goal(&site, g, now) {
                    tracing::warn!(error = %e, "demo: could not add a goal");
                }
            }
            Err(e) => tracing::warn!(error = %e, "demo: a goal that is no goal"),
        }
    }
    let funnel = Funnel::try_from(FunnelSpec {
        name: "Pricing to signup".into(),
        steps: vec!["Visit pricing".into(), "Signup".into()],
    });
    match funnel.map(|f| st.ingest.sites.put_funnel(&site, f, now)) {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "demo: could not add the funnel"),
        Err(e) => tracing::warn!(error = %e, "demo: a funnel that is no funnel"),
    }
}

pub fn spawn(st: Arc<AppState>) {
    tokio::spawn(async move {
        let st2 = st.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || conversions(&st2)).await {
            tracing::warn!(error = %e, "demo: adding goals failed");
        }
        backfill(&st).await;
        let mut shutdown = st.shutdown.clone();
        if *shutdown.borrow() {
            return;
        }
        let mut visitors: Vec<Visitor> = Vec::new();
        let mut rng = StdRng::from_os_rng();
        let mut regulars = Regulars::default();
        let now = st.clock.now().0;
        // The people who would be on the site at this moment: arrivals in the last few
        // minutes at the current rate.
        let already = (visitors_per_hour(now, now) / 60.0 * 4.0).round() as usize;
        for _ in 0..already.max(MIN_ON_SITE + 2) {
            visitors.push(Visitor::new(&mut rng, &mut regulars, now));
        }
        loop {
            let now = st.clock.now().0;
            // A demo should never look dead, whatever the hour: keep a few people around.
            if visitors.len() < MIN_ON_SITE
                || rng.random_bool((visitors_per_hour(now, now) / 3600.0).clamp(0.0, 1.0))
            {
                visitors.push(Visitor::new(&mut rng, &mut regulars, now));
            }
            let mut events = Vec::new();
            visitors.retain_mut(|v| {
                let (evs, stays) = v.step(&mut rng, now, false);
                events.extend(evs);
                stays
            });
            if !send(&st, events).await {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => break,
            }
        }
    });
}
