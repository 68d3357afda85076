//! The reference test of the Stats API: a deterministic dataset whose expected figures are
//! computed here, independently of footfall's code, ingested over HTTP, then every metric ×
//! a set of dimensions × filters × date ranges checked in a non-UTC time zone with DST.

mod common;
use chrono::{NaiveDate, TimeZone};
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const TZ: chrono_tz::Tz = chrono_tz::America::New_York;
const PAGES: [&str; 5] = ["/", "/blog", "/blog/post-1", "/pricing", "/docs"];
const SOURCES: [(&str, &str); 4] = [
    ("", "Direct / None"),
    ("https://www.google.com/", "Google"),
    ("https://news.ycombinator.com/", "Hacker News"),
    ("https://t.co/x", "Twitter"),
];
const COUNTRIES: [&str; 3] = ["US", "DE", "JP"];
const UAS: [(&str, &str); 2] = [(CHROME, "Chrome"), (FIREFOX, "Firefox")];

#[derive(Clone, Debug)]
struct Ev {
    visitor: usize,
    visit: usize,
    ts: i64,
    name: &'static str,
    page: &'static str,
    plan: Option<&'static str>,
    sd: Option<u8>,
    /// (amount, currency) as sent.
    revenue: Option<(&'static str, &'static str)>,
}

#[derive(Clone, Debug)]
struct Visit {
    visitor: usize,
    source: &'static str,
    referrer: &'static str,
    country: &'static str,
    ua: usize,
    events: Vec<Ev>,
}

impl Visit {
    fn start(&self) -> i64 {
        self.events.iter().map(|e| e.ts).min().unwrap()
    }
    fn end(&self) -> i64 {
        self.events.iter().map(|e| e.ts).max().unwrap()
    }
    fn pageviews(&self) -> Vec<&Ev> {
        let mut v: Vec<&Ev> = self
            .events
            .iter()
            .filter(|e| e.name == "pageview")
            .collect();
        v.sort_by_key(|e| e.ts);
        v
    }
    fn entry(&self) -> &'static str {
        self.pageviews()[0].page
    }
    fn duration_of(&self, ev: &Ev) -> Option<i64> {
        let pvs = self.pageviews();
        let i = pvs.iter().position(|p| p.ts == ev.ts)?;
        match pvs.get(i + 1) {
            Some(n) => Some(n.ts - ev.ts),
            None => (self.end() > ev.ts).then(|| self.end() - ev.ts),
        }
    }
}

/// A small linear congruential generator: the dataset is the same on every run.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// Revenue some signups carry: exact decimals in four currencies, one of which (JPY) the
/// server's rate table lacks, and a refund.
const REVENUES: [(&str, &str); 7] = [
    ("19.99", "EUR"),
    ("5.5", "USD"),
    ("1234.567", "EUR"),
    ("0.001", "usd"),
    ("300", "JPY"),
    ("12.345", "GBP"),
    ("-4.2", "EUR"),
];

/// The rate table the server is given (units per EUR), and the same in millionths here.
const RATES_JSON: &str = r#"{"base": "EUR", "rates": {"USD": "1.25", "GBP": 0.8}}"#;
fn rate_millionths(currency: &str) -> Option<i128> {
    match currency {
        "EUR" => Some(1_000_000),
        "USD" => Some(1_250_000),
        "GBP" => Some(800_000),
        _ => None,
    }
}

/// "12.3" → 12300 thousandths.
fn thousandths(s: &str) -> i128 {
    let neg = s.starts_with('-');
    let s = s.trim_start_matches('-');
    let (i, f) = s.split_once('.').unwrap_or((s, ""));
    let f = format!("{f:0<3}");
    let v = i.parse::<i128>().unwrap() * 1000 + f[..3].parse::<i128>().unwrap();
    if neg {
        -v
    } else {
        v
    }
}

/// n / d rounded half to even, written out for the model.
fn round_half_even(n: i128, d: i128) -> i128 {
    let q = n / d;
    let r = n % d;
    let (q, r) = if r < 0 { (q - 1, r + d) } else { (q, r) };
    if 2 * r > d || (2 * r == d && q % 2 != 0) {
        q + 1
    } else {
        q
    }
}

fn local(day: u32, hour: u32, minute: u32) -> i64 {
    TZ.from_local_datetime(
        &NaiveDate::from_ymd_opt(2026, 3, day)
            .unwrap()
            .and_hms_opt(hour, minute, 0)
            .unwrap(),
    )
    .earliest()
    .unwrap()
    .timestamp_millis()
}

fn dataset() -> Vec<Visit> {
    let mut r = Lcg(42);
    let mut visits = Vec::new();
    for visitor in 0..24 {
        let ua = visitor % 2;
        let country = COUNTRIES[r.next(3)];
        let mut days: Vec<u32> = (0..1 + r.next(3)).map(|_| 1 + r.next(14) as u32).collect();
        days.sort();
        days.dedup();
        for day in days {
            let (referrer, source) = SOURCES[r.next(4)];
            // Hours 0–23 local, including the hour around the DST change on March 8.
            let mut ts = local(day, r.next(22) as u32, r.next(60) as u32);
            let visit = visits.len();
            let mut events = Vec::new();
            let n = 1 + r.next(4);
            let mut last_page = "";
            for _ in 0..n {
                let mut page = PAGES[r.next(5)];
                if page == last_page {
                    page = PAGES[(PAGES.iter().position(|p| *p == page).unwrap() + 1) % 5];
                }
                last_page = page;
                events.push(Ev {
                    visitor,
                    visit,
                    ts,
                    name: "pageview",
                    page,
                    plan: None,
                    sd: None,
                    revenue: None,
                });
                ts += (10 + r.next(600) as i64) * 1000;
            }
            if r.next(3) == 0 {
                let plan = if r.next(2) == 0 { "pro" } else { "free" };
                events.push(Ev {
                    visitor,
                    visit,
                    ts,
                    name: "signup",
                    page: last_page,
                    plan: Some(plan),
                    sd: None,
                    // Not drawn from `r`: the rest of the dataset stays as it was.
                    // The n-th signup takes the n-th entry, then two without revenue.
                    revenue: REVENUES
                        .get(
                            visits
                                .iter()
                                .flat_map(|v: &Visit| &v.events)
                                .filter(|e| e.name == "signup")
                                .count()
                                % (REVENUES.len() + 2),
                        )
                        .copied(),
                });
                ts += 5_000;
            }
            if r.next(2) == 0 {
                events.push(Ev {
                    visitor,
                    visit,
                    ts,
                    name: "engagement",
                    page: last_page,
                    plan: None,
                    sd: Some(10 + r.next(90) as u8),
                    revenue: None,
                });
            }
            visits.push(Visit {
                visitor,
                source,
                referrer,
                country,
                ua,
                events,
            });
        }
    }
    visits
}

async fn ingest(s: &TestServer, visits: &[Visit]) {
    let mut all: Vec<(&Visit, &Ev, bool)> = Vec::new();
    for v in visits {
        for (i, e) in v.events.iter().enumerate() {
            all.push((v, e, i == 0));
        }
    }
    all.sort_by_key(|(_, e, _)| e.ts);
    for (v, e, first) in all {
        s.clock.set(footfall_core::Timestamp(e.ts));
        let mut body = json!({"n": e.name, "u": format!("https://example.com{}", e.page), "d": "example.com", "sid": format!("visitor-{}", e.visitor)});
        if first && !v.referrer.is_empty() {
            body["r"] = json!(v.referrer);
        }
        if let Some(p) = e.plan {
            body["p"] = json!({"plan": p});
        }
        if let Some(sd) = e.sd {
            body["sd"] = json!(sd);
            body["e"] = json!(1000);
        }
        if let Some((amount, currency)) = e.revenue {
            // Half as Plausible's tracker sends it (`$`, a number), half as a string.
            if e.visitor % 2 == 0 {
                body["$"] = json!({"amount": amount.parse::<f64>().unwrap(), "currency": currency});
            } else {
                body["revenue"] = json!({"amount": amount, "currency": currency});
            }
        }
        let r = s
            .http
            .post(format!("{}/api/event", s.base))
            .header("user-agent", UAS[v.ua].0)
            .header("cf-ipcountry", v.country)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["status"], "accepted", "{b} for {e:?}");
    }
}

// ---- the independent model ----

#[derive(Clone, Copy, Debug)]
enum F {
    None,
    PageIs(&'static str),
    SourceContainsCi(&'static str),
    CountryNot(&'static str),
    PageMatches(&'static str),
    Or,
    /// `has_done` (true) or `has_not_done` a signup in the range: `who` did.
    Signed(bool, &'static [usize]),
}

impl F {
    fn json(self) -> Value {
        match self {
            F::None => json!([]),
            F::PageIs(p) => json!([["is", "event:page", [p]]]),
            F::SourceContainsCi(s) => {
                json!([["contains", "visit:source", [s], {"case_sensitive": false}]])
            }
            F::CountryNot(c) => json!([["is_not", "visit:country", [c]]]),
            F::PageMatches(re) => json!([["matches", "event:page", [re]]]),
            F::Or => json!([[
                "or",
                [
                    ["is", "visit:browser", ["Firefox"]],
                    ["is", "event:page", ["/pricing"]]
                ]
            ]]),
            F::Signed(done, _) => json!([[
                if done { "has_done" } else { "has_not_done" },
                ["is", "event:name", ["signup"]]
            ]]),
        }
    }
    fn is_event_filter(self) -> bool {
        matches!(self, F::PageIs(_) | F::PageMatches(_))
    }
    /// For an event row (event-level queries).
    fn event_ok(self, v: &Visit, e: &Ev) -> bool {
        match self {
            F::None => true,
            F::PageIs(p) => e.page == p,
            F::SourceContainsCi(s) => v.source.to_lowercase().contains(&s.to_lowercase()),
            F::CountryNot(c) => v.country != c,
            F::PageMatches(re) => regex::Regex::new(re).unwrap().is_match(e.page),
            F::Or => UAS[v.ua].1 == "Firefox" || e.page == "/pricing",
            F::Signed(done, who) => who.contains(&v.visitor) == done,
        }
    }
    /// For a visit (visit-level queries): event conditions hold if any event in range does.
    fn visit_ok(self, v: &Visit, range: (i64, i64)) -> bool {
        let any = |f: &dyn Fn(&Ev) -> bool| {
            v.events
                .iter()
                .filter(|e| e.ts >= range.0 && e.ts < range.1)
                .any(f)
        };
        match self {
            F::PageIs(_) | F::PageMatches(_) => any(&|e| self.event_ok(v, e)),
            F::Or => UAS[v.ua].1 == "Firefox" || any(&|e| e.page == "/pricing"),
            _ => self.event_ok(v, &v.events[0]),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum D {
    Page,
    Source,
    Country,
    Browser,
    Plan,
    Entry,
    Day,
    Hour,
    Week,
    Month,
}

impl D {
    fn name(self) -> &'static str {
        match self {
            D::Page => "event:page",
            D::Source => "visit:source",
            D::Country => "visit:country",
            D::Browser => "visit:browser",
            D::Plan => "event:props:plan",
            D::Entry => "visit:entry_page",
            D::Day => "time:day",
            D::Hour => "time:hour",
            D::Week => "time:week",
            D::Month => "time:month",
        }
    }
    fn is_event(self) -> bool {
        matches!(self, D::Page | D::Plan)
    }
    fn value(self, v: &Visit, e: &Ev) -> String {
        let local = |ts: i64| {
            chrono::DateTime::from_timestamp_millis(ts)
                .unwrap()
                .with_timezone(&TZ)
        };
        match self {
            D::Page => e.page.into(),
            D::Source => v.source.into(),
            D::Country => v.country.into(),
            D::Browser => UAS[v.ua].1.into(),
            D::Plan => e.plan.unwrap_or("(none)").into(),
            D::Entry => v.entry().into(),
            D::Day => local(e.ts).format("%Y-%m-%d").to_string(),
            D::Hour => local(e.ts).format("%Y-%m-%dT%H:00:00").to_string(),
            D::Week => {
                use chrono::Datelike;
                let d = local(e.ts).date_naive();
                (d - chrono::Duration::days(i64::from(d.weekday().num_days_from_monday())))
                    .format("%Y-%m-%d")
                    .to_string()
            }
            D::Month => local(e.ts).format("%Y-%m-01").to_string(),
        }
    }
}

fn avg(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Expected rows: dimension value (or "" without one) → metric name → value.
fn expected(
    visits: &[Visit],
    range: (i64, i64),
    f: F,
    d: Option<D>,
    metrics: &[&str],
) -> BTreeMap<String, BTreeMap<String, Value>> {
    let in_range = |ts: i64| ts >= range.0 && ts < range.1;
    let first_day = chrono::DateTime::from_timestamp_millis(range.0)
        .unwrap()
        .with_timezone(&TZ)
        .format("%Y-%m-%d")
        .to_string();
    let key = |v: &Visit, e: &Ev| match d {
        // A week cut by the range's start is labelled with the range's first day.
        Some(D::Week) => D::Week.value(v, e).max(first_day.clone()),
        Some(d) => d.value(v, e),
        None => String::new(),
    };
    let mut out: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    // Visitors are counted per local day and summed: (visitor, day) pairs.
    let day_of = |ts: i64| {
        chrono::DateTime::from_timestamp_millis(ts)
            .unwrap()
            .with_timezone(&TZ)
            .date_naive()
    };
    // Event-level rows (excluding engagement, which is not an event for these metrics).
    let mut visitors: BTreeMap<String, BTreeSet<(usize, NaiveDate)>> = BTreeMap::new();
    let mut visits_touched: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    let mut pageviews: BTreeMap<String, i64> = BTreeMap::new();
    let mut events: BTreeMap<String, i64> = BTreeMap::new();
    let mut total_visitors = BTreeSet::new();
    for v in visits {
        for e in v
            .events
            .iter()
            .filter(|e| in_range(e.ts) && e.name != "engagement" && f.event_ok(v, e))
        {
            let k = key(v, e);
            total_visitors.insert((v.visitor, day_of(e.ts)));
            if d == Some(D::Entry) {
                continue;
            }
            visitors
                .entry(k.clone())
                .or_default()
                .insert((v.visitor, day_of(e.ts)));
            visits_touched.entry(k.clone()).or_default().insert(e.visit);
            *pageviews.entry(k.clone()).or_default() += i64::from(e.name == "pageview");
            *events.entry(k).or_default() += 1;
        }
    }
    // Entry pages belong to visits: every count comes from the visits that started in the
    // range (visitors by the day the visit started).
    if d == Some(D::Entry) {
        for v in visits
            .iter()
            .filter(|v| in_range(v.start()) && f.visit_ok(v, range))
        {
            let k = v.entry().to_string();
            visitors
                .entry(k.clone())
                .or_default()
                .insert((v.visitor, day_of(v.start())));
            *pageviews.entry(k.clone()).or_default() += v.pageviews().len() as i64;
            *events.entry(k).or_default() +=
                v.events.iter().filter(|e| e.name != "engagement").count() as i64;
        }
    }
    // Visit-level rows: visits starting in range, keyed by their first event.
    let mut vis: BTreeMap<String, Vec<&Visit>> = BTreeMap::new();
    if d.is_none_or(|d| !d.is_event()) {
        for v in visits
            .iter()
            .filter(|v| in_range(v.start()) && f.visit_ok(v, range))
        {
            let first = v.events.iter().min_by_key(|e| e.ts).unwrap();
            vis.entry(key(v, first)).or_default().push(v);
        }
    }
    let event_dim = d.is_some_and(D::is_event);
    let keys: BTreeSet<String> = visitors.keys().chain(vis.keys()).cloned().collect();
    for k in keys {
        let row = out.entry(k.clone()).or_default();
        let vs = vis.get(&k).cloned().unwrap_or_default();
        let nv = vs.len() as f64;
        for m in metrics {
            let val = match *m {
                "visitors" => json!(visitors.get(&k).map_or(0, BTreeSet::len)),
                "visits" if event_dim => json!(visits_touched.get(&k).map_or(0, BTreeSet::len)),
                "visits" => json!(vs.len()),
                "pageviews" => json!(pageviews.get(&k).copied().unwrap_or(0)),
                "events" => json!(events.get(&k).copied().unwrap_or(0)),
                "bounce_rate" => {
                    let b = vs
                        .iter()
                        .filter(|v| {
                            v.pageviews().len() <= 1 && !v.events.iter().any(|e| e.name == "signup")
                        })
                        .count() as f64;
                    json!(if nv > 0.0 {
                        (10000.0 * b / nv).round() / 100.0
                    } else {
                        0.0
                    })
                }
                "visit_duration" => json!(if nv > 0.0 {
                    (vs.iter().map(|v| (v.end() - v.start()) as f64).sum::<f64>() / nv / 1000.0)
                        .round() as i64
                } else {
                    0
                }),
                "views_per_visit" => json!(if nv > 0.0 {
                    (100.0 * vs.iter().map(|v| v.pageviews().len() as f64).sum::<f64>() / nv)
                        .round()
                        / 100.0
                } else {
                    0.0
                }),
                "percentage" => json!(
                    (10000.0 * visitors.get(&k).map_or(0, BTreeSet::len) as f64
                        / total_visitors.len() as f64)
                        .round()
                        / 100.0
                ),
                "time_on_page" => {
                    // The measured time of each (visit, local day) pair's views, averaged
                    // over the pairs with one.
                    let mut spent: BTreeMap<(usize, NaiveDate), i64> = BTreeMap::new();
                    for (i, v) in visits.iter().enumerate() {
                        for e in v.pageviews() {
                            if in_range(e.ts) && f.event_ok(v, e) && key(v, e) == k {
                                if let Some(d) = v.duration_of(e) {
                                    *spent.entry((i, day_of(e.ts))).or_default() += d;
                                }
                            }
                        }
                    }
                    let per_visit: Vec<f64> = spent.values().map(|x| *x as f64).collect();
                    avg(&per_visit).map_or(Value::Null, |ms| json!((ms / 1000.0).round() as i64))
                }
                "scroll_depth" => {
                    // The deepest scroll of each (visit, local day) pair, averaged.
                    let mut deepest: BTreeMap<(usize, NaiveDate), u8> = BTreeMap::new();
                    for (i, v) in visits.iter().enumerate() {
                        for e in &v.events {
                            if e.name == "engagement"
                                && in_range(e.ts)
                                && f.event_ok(v, e)
                                && key(v, e) == k
                            {
                                if let Some(sd) = e.sd {
                                    let m = deepest.entry((i, day_of(e.ts))).or_insert(sd);
                                    *m = (*m).max(sd);
                                }
                            }
                        }
                    }
                    let per_visit: Vec<f64> = deepest.values().map(|x| f64::from(*x)).collect();
                    avg(&per_visit).map_or(Value::Null, |x| json!(x.round() as i64))
                }
                other => panic!("no model for {other}"),
            };
            row.insert(m.to_string(), val);
        }
    }
    if d.is_none() && out.is_empty() {
        out.insert(String::new(), BTreeMap::new());
    }
    out
}

// ---- goals, modelled by hand ----

/// The site's goals as the API takes them, and whether an event converts each (written
/// from the goal's meaning, not from footfall's matcher).
fn goal_specs() -> Vec<Value> {
    vec![
        json!({"name": "Signup", "event": "signup"}),
        json!({"name": "Pro signup", "event": "signup", "props": {"plan": "pro"}}),
        json!({"name": "Blog posts", "page": "/blog/**"}),
        json!({"name": "Deep read", "page": "/blog**", "scroll_depth": 50}),
        json!({"name": "Sale", "event": "signup", "currency": "EUR"}),
        json!({"name": "Pro sale", "event": "signup", "props": {"plan": "pro"}, "currency": "usd"}),
    ]
}

const GOALS: [&str; 6] = [
    "Signup",
    "Pro signup",
    "Blog posts",
    "Deep read",
    "Sale",
    "Pro sale",
];

/// A revenue goal's currency.
fn goal_currency(goal: &str) -> Option<&'static str> {
    match goal {
        "Sale" => Some("EUR"),
        "Pro sale" => Some("USD"),
        _ => None,
    }
}

fn converts(goal: &str, e: &Ev) -> bool {
    match goal {
        "Signup" | "Sale" => e.name == "signup",
        "Pro signup" | "Pro sale" => e.name == "signup" && e.plan == Some("pro"),
        // `/blog/**`: below /blog/, not /blog itself.
        "Blog posts" => e.name == "pageview" && e.page.starts_with("/blog/"),
        // `/blog**`: /blog and everything after it.
        "Deep read" => {
            e.name == "engagement" && e.sd.is_some_and(|d| d >= 50) && e.page.starts_with("/blog")
        }
        other => panic!("no goal {other}"),
    }
}

fn pct(a: usize, b: usize) -> Value {
    json!(if b == 0 {
        0.0
    } else {
        (10000.0 * a as f64 / b as f64).round() / 100.0
    })
}

/// Expected rows of a goal query. `by_goal`: rows per goal (over `goals`); otherwise the
/// query is filtered to `goals` and rows are keyed by `d`. Metrics: visitors, events,
/// visits, conversion_rate, group_conversion_rate.
fn expected_goals(
    visits: &[Visit],
    range: (i64, i64),
    f: F,
    goals: &[&str],
    by_goal: bool,
    d: Option<D>,
) -> BTreeMap<String, BTreeMap<String, Value>> {
    let in_range = |ts: i64| ts >= range.0 && ts < range.1;
    let day_of = |ts: i64| {
        chrono::DateTime::from_timestamp_millis(ts)
            .unwrap()
            .with_timezone(&TZ)
            .date_naive()
    };
    let key = |v: &Visit, e: &Ev| d.map_or(String::new(), |d| d.value(v, e));
    // Denominators: every counted event of the query without its goal condition.
    let mut all: BTreeSet<(usize, NaiveDate)> = BTreeSet::new();
    let mut group: BTreeMap<String, BTreeSet<(usize, NaiveDate)>> = BTreeMap::new();
    for v in visits {
        for e in v
            .events
            .iter()
            .filter(|e| in_range(e.ts) && e.name != "engagement" && f.event_ok(v, e))
        {
            all.insert((v.visitor, day_of(e.ts)));
            group
                .entry(key(v, e))
                .or_default()
                .insert((v.visitor, day_of(e.ts)));
        }
    }
    type Counts = (BTreeSet<(usize, NaiveDate)>, usize, BTreeSet<usize>);
    let mut rows: BTreeMap<String, Counts> = BTreeMap::new();
    for v in visits {
        for e in v
            .events
            .iter()
            .filter(|e| in_range(e.ts) && f.event_ok(v, e))
        {
            let hits: Vec<&&str> = goals.iter().filter(|g| converts(g, e)).collect();
            let keys: Vec<String> = if by_goal {
                hits.iter().map(|g| g.to_string()).collect()
            } else if hits.is_empty() {
                vec![]
            } else {
                vec![key(v, e)]
            };
            for k in keys {
                let r = rows.entry(k).or_default();
                r.0.insert((v.visitor, day_of(e.ts)));
                r.1 += 1;
                r.2.insert(e.visit);
            }
        }
    }
    if d.is_none() && !by_goal && rows.is_empty() {
        rows.insert(String::new(), Counts::default());
    }
    rows.into_iter()
        .map(|(k, (vis, events, visits_))| {
            let g = if by_goal {
                all.len()
            } else {
                group.get(&k).map_or(0, BTreeSet::len)
            };
            let m: BTreeMap<String, Value> = [
                ("visitors", json!(vis.len())),
                ("events", json!(events)),
                ("visits", json!(visits_.len())),
                ("conversion_rate", pct(vis.len(), all.len())),
                ("group_conversion_rate", pct(vis.len(), g)),
            ]
            .into_iter()
            // Visits filtered by a goal are visit-level (checked on their own below).
            .filter(|(a, _)| by_goal || *a != "visits")
            .map(|(a, b)| (a.to_string(), b))
            .collect();
            (k, m)
        })
        .collect()
}

/// Revenue by hand: per row (keyed as `expected_goals` keys them), the conversions'
/// amounts summed per currency, each sum converted to the row's currency with the model's
/// rates and rounded half to even once; currencies without a rate are left out (and
/// returned). Returns row → (total, average) in thousandths.
fn expected_revenue(
    visits: &[Visit],
    range: (i64, i64),
    f: F,
    goals: &[&str],
    by_goal: bool,
    d: Option<D>,
) -> (BTreeMap<String, (i128, i128)>, BTreeSet<String>) {
    let mut sums: BTreeMap<String, BTreeMap<String, (i128, i128)>> = BTreeMap::new();
    for v in visits {
        for e in v
            .events
            .iter()
            .filter(|e| e.ts >= range.0 && e.ts < range.1 && f.event_ok(v, e))
        {
            let Some((amount, currency)) = e.revenue else {
                continue;
            };
            let hits: Vec<&str> = goals
                .iter()
                .copied()
                .filter(|g| goal_currency(g).is_some() && converts(g, e))
                .collect();
            let keys: Vec<String> = if by_goal {
                hits.iter().map(|g| g.to_string()).collect()
            } else if hits.is_empty() {
                vec![]
            } else {
                vec![d.map_or(String::new(), |d| d.value(v, e))]
            };
            for k in keys {
                let c = sums
                    .entry(k)
                    .or_default()
                    .entry(currency.to_uppercase())
                    .or_default();
                c.0 += thousandths(amount);
                c.1 += 1;
            }
        }
    }
    let mut left = BTreeSet::new();
    let target = |k: &str| {
        if by_goal {
            goal_currency(k)
        } else {
            goals.iter().find_map(|g| goal_currency(g))
        }
    };
    let rows = sums
        .into_iter()
        .map(|(k, by_currency)| {
            let to = target(&k).unwrap();
            let (mut total, mut n) = (0, 0);
            for (c, (sum, count)) in by_currency {
                match (rate_millionths(&c), rate_millionths(to)) {
                    _ if c == to => {
                        total += sum;
                        n += count;
                    }
                    (Some(from), Some(to)) => {
                        total += round_half_even(sum * to, from);
                        n += count;
                    }
                    _ => {
                        left.insert(c);
                    }
                }
            }
            let avg = if n == 0 { 0 } else { round_half_even(total, n) };
            (k, (total, avg))
        })
        .collect();
    (rows, left)
}

/// A revenue metric's exact amount (read from `long`, the full figure) and currency.
fn money_of(v: &Value) -> Option<(i128, String)> {
    let long = v["long"].as_str()?;
    let digits: String = long
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    let exact = thousandths(&digits);
    // `value` is the same figure as a number.
    assert!(
        (v["value"].as_f64()? - exact as f64 / 1000.0).abs() < 1e-6,
        "{v}"
    );
    Some((exact, v["currency"].as_str()?.to_string()))
}

/// A funnel by hand: all visitors (per visitor and local day, as the `visitors` metric),
/// then the visitors whose best visit of the day (the day of its first step) reached each
/// step in order (the earliest event of each step after the previous step's).
fn expected_funnel(
    visits: &[Visit],
    range: (i64, i64),
    f: F,
    steps: &[&str],
) -> (usize, Vec<usize>) {
    let in_range = |e: &Ev| e.ts >= range.0 && e.ts < range.1;
    let day_of = |ts: i64| {
        chrono::DateTime::from_timestamp_millis(ts)
            .unwrap()
            .with_timezone(&TZ)
            .date_naive()
    };
    let step_event = |e: &Ev| steps.iter().any(|s| converts(s, e));
    let mut all = BTreeSet::new();
    let mut best: BTreeMap<(usize, NaiveDate), usize> = BTreeMap::new();
    for v in visits {
        for e in v
            .events
            .iter()
            .filter(|e| in_range(e) && e.name != "engagement" && f.event_ok(v, e))
        {
            all.insert((v.visitor, day_of(e.ts)));
        }
        let mut evs: Vec<&Ev> = v
            .events
            .iter()
            .filter(|e| in_range(e) && f.event_ok(v, e) && step_event(e))
            .collect();
        evs.sort_by_key(|e| e.ts);
        let Some(first) = evs.first() else {
            continue;
        };
        let key = (v.visitor, day_of(first.ts));
        let mut reached = 0;
        for e in evs {
            if reached < steps.len() && converts(steps[reached], e) {
                reached += 1;
            }
        }
        let b = best.entry(key).or_default();
        *b = (*b).max(reached);
    }
    let counts = (1..=steps.len())
        .map(|k| best.values().filter(|r| **r >= k).count())
        .collect();
    (all.len(), counts)
}

fn rows_by_first_dimension(
    got: &Value,
    metrics: &[&str],
) -> BTreeMap<String, BTreeMap<String, Value>> {
    got["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let k = r["dimensions"]
                .get(0)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let ms = metrics
                .iter()
                .zip(r["metrics"].as_array().unwrap())
                .map(|(m, v)| (m.to_string(), v.clone()))
                .collect();
            (k, ms)
        })
        .collect()
}

/// Goals added after the events were stored: conversions, by goal and filtered by goal,
/// with their rates, against the model — and the ways a goal query can be wrong.
async fn goal_checks(
    s: &TestServer,
    visits: &[Visit],
    ranges: &[(Value, (i64, i64), Option<&str>)],
) {
    for g in goal_specs() {
        let (status, _) = post(s, "/api/admin/sites/example.com/goals", &g).await;
        assert_eq!(status, 201, "{g}");
    }
    let metrics = [
        "visitors",
        "events",
        "visits",
        "conversion_rate",
        "group_conversion_rate",
    ];
    let filters = [
        F::None,
        F::SourceContainsCi("GOO"),
        F::CountryNot("US"),
        F::Or,
    ];
    let mut converted = 0;
    for (range_json, range, date) in ranges {
        for f in filters {
            let base = |extra: Value, dims: Value| {
                let mut filters = f.json();
                if let Some(x) = extra.as_array() {
                    filters.as_array_mut().unwrap().extend(x.iter().cloned());
                }
                let mut body = json!({"site_id": "example.com", "date_range": range_json,
                    "metrics": metrics, "filters": filters, "dimensions": dims});
                if let Some(date) = date {
                    body["date"] = json!(date);
                }
                body
            };
            // By goal: every goal with a conversion, none other.
            let body = base(json!([]), json!(["event:goal"]));
            let got = rows_by_first_dimension(&query(s, body.clone()).await, &metrics);
            let want = expected_goals(visits, *range, f, &GOALS, true, None);
            assert_eq!(got, want, "query {body}");
            converted += want.len();
            // By goal, narrowed by a goal condition.
            let body = base(
                json!([["contains", "event:goal", ["SIGN"], {"case_sensitive": false}]]),
                json!(["event:goal"]),
            );
            let got = rows_by_first_dimension(&query(s, body.clone()).await, &metrics);
            assert_eq!(
                got,
                expected_goals(visits, *range, f, &["Signup", "Pro signup"], true, None),
                "query {body}"
            );
            // Filtered by a goal, by another dimension.
            for goal in GOALS {
                for d in [None, Some(D::Source), Some(D::Page), Some(D::Day)] {
                    let dims = d.map_or(json!([]), |d| json!([d.name()]));
                    let mut body = base(json!([["is", "event:goal", [goal]]]), dims);
                    let metrics = [
                        "visitors",
                        "events",
                        "conversion_rate",
                        "group_conversion_rate",
                    ];
                    body["metrics"] = json!(metrics);
                    let got = rows_by_first_dimension(&query(s, body.clone()).await, &metrics);
                    assert_eq!(
                        got,
                        expected_goals(visits, *range, f, &[goal], false, d),
                        "query {body}"
                    );
                }
            }
        }
    }
    assert!(converted > 20, "the goals converted: {converted} rows");
    revenue_checks(s, visits, ranges, &filters).await;

    // Funnels over the same goals, ranges and filters.
    let funnels: [&[&str]; 4] = [
        &["Blog posts", "Signup"],
        // One signup per visit: it can't be both steps.
        &["Signup", "Pro signup"],
        &["Blog posts", "Signup", "Deep read"],
        &["Deep read", "Blog posts"],
    ];
    let mut reached_last = 0;
    for (range_json, range, date) in ranges {
        for f in filters {
            for steps in funnels {
                let mut body = json!({"site_id": "example.com", "date_range": range_json,
                    "filters": f.json(), "steps": steps});
                if let Some(date) = date {
                    body["date"] = json!(date);
                }
                let (status, got) = post(s, "/api/v2/funnel", &body).await;
                assert_eq!(status, 200, "{body}");
                let (all, counts) = expected_funnel(visits, *range, f, steps);
                let got_counts: Vec<usize> = got["steps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["visitors"].as_u64().unwrap() as usize)
                    .collect();
                assert_eq!(
                    (
                        got["all_visitors"].as_u64().unwrap() as usize,
                        got_counts.clone()
                    ),
                    (all, counts.clone()),
                    "funnel {body} → {got}"
                );
                let labels: Vec<&str> = got["steps"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["label"].as_str().unwrap())
                    .collect();
                assert_eq!(labels, steps);
                if counts.len() > 1 {
                    assert_eq!(
                        got["steps"][1]["conversion_rate"],
                        pct(counts[1], counts[0]),
                        "{got}"
                    );
                }
                reached_last += counts.last().copied().unwrap_or(0);
            }
        }
    }
    assert!(
        reached_last > 5,
        "some funnels were completed: {reached_last}"
    );
    for (body, field) in [
        (
            json!({"site_id": "example.com", "date_range": "7d", "steps": ["Signup"]}),
            "steps",
        ),
        (
            json!({"site_id": "example.com", "date_range": "7d", "steps": ["Signup", "signup"]}),
            "steps[1]",
        ),
        (
            json!({"site_id": "example.com", "date_range": "7d", "steps": "Signup"}),
            "steps",
        ),
        (
            json!({"site_id": "example.com", "date_range": "7d", "steps": ["Signup", "Blog posts"], "metrics": ["visitors"]}),
            "metrics",
        ),
        (
            json!({"site_id": "example.com", "date_range": "7x", "steps": ["Signup", "Blog posts"]}),
            "date_range",
        ),
    ] {
        let (status, e) = post(s, "/api/v2/funnel", &body).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            e["error"]
                .as_str()
                .unwrap_or("")
                .starts_with(&format!("{field}:")),
            "{body} → {e}"
        );
    }

    // Visits that converted, with their visit metrics: those begun in the range with a
    // converting event in it.
    let (range_json, range, _) = &ranges[0];
    for goal in GOALS {
        let body = json!({"site_id": "example.com", "date_range": range_json,
            "metrics": ["visits", "bounce_rate"], "filters": [["is", "event:goal", [goal]]]});
        let got = query(s, body.clone()).await;
        let vs: Vec<&Visit> = visits
            .iter()
            .filter(|v| {
                v.start() >= range.0
                    && v.start() < range.1
                    && v.events
                        .iter()
                        .any(|e| e.ts >= range.0 && e.ts < range.1 && converts(goal, e))
            })
            .collect();
        let bounces = vs
            .iter()
            .filter(|v| v.pageviews().len() <= 1 && !v.events.iter().any(|e| e.name == "signup"))
            .count();
        assert_eq!(
            got["results"][0]["metrics"],
            json!([vs.len(), pct(bounces, vs.len())]),
            "query {body}"
        );
    }

    // Plausible's v1 breakdown by goal.
    let r = s
        .http
        .get(format!(
            "{}/api/v1/stats/breakdown?site_id=example.com&period=custom&date=2026-03-01,2026-03-14&property=event:goal&metrics=visitors,events,conversion_rate",
            s.base
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v1: Value = r.json().await.unwrap();
    let want = expected_goals(visits, *range, F::None, &GOALS, true, None);
    let got: BTreeMap<String, BTreeMap<String, Value>> = v1["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let ms = ["visitors", "events", "conversion_rate"]
                .iter()
                .map(|m| (m.to_string(), r[m].clone()))
                .collect();
            (r["goal"].as_str().unwrap().to_string(), ms)
        })
        .collect();
    let want: BTreeMap<String, BTreeMap<String, Value>> = want
        .into_iter()
        .map(|(k, mut m)| {
            m.retain(|name, _| ["visitors", "events", "conversion_rate"].contains(&name.as_str()));
            (k, m)
        })
        .collect();
    assert_eq!(got, want, "v1 {v1}");

    // Wrong goal queries say what is wrong.
    for (body, needle) in [
        (
            json!({"site_id": "example.com", "date_range": "7d", "metrics": ["visitors"], "filters": [["is", "event:goal", ["signup"]]]}),
            "unknown goal \"signup\"",
        ),
        (
            json!({"site_id": "example.com", "date_range": "7d", "metrics": ["conversion_rate"]}),
            "needs an event:goal",
        ),
        (
            json!({"site_id": "example.com", "date_range": "7d", "metrics": ["pageviews"], "dimensions": ["event:goal"]}),
            "split by event:goal",
        ),
        (
            json!({"site_id": "example.com", "date_range": "7d", "metrics": ["visitors"], "filters": [["matches", "event:goal", ["(unclosed"]]]}),
            "regex",
        ),
        (
            json!({"site_id": "example.com", "date_range": "7d", "metrics": ["conversion_rate"],
                "filters": [["or", [["is", "event:goal", ["Signup"]], ["is", "visit:country", ["DE"]]]]]}),
            "top level",
        ),
    ] {
        let (status, e) = post(s, "/api/v2/query", &body).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            e["error"].as_str().unwrap_or("").contains(needle),
            "{body} → {e}"
        );
    }
}

/// Revenue metrics by goal and filtered by revenue goals, against the model; the
/// warnings for queries whose revenue is null or partly left out.
async fn revenue_checks(
    s: &TestServer,
    visits: &[Visit],
    ranges: &[(Value, (i64, i64), Option<&str>)],
    filters: &[F],
) {
    let metrics = ["visitors", "total_revenue", "average_revenue"];
    let mut with_revenue = 0;
    let mut saw_unconverted = false;
    for (range_json, range, date) in ranges {
        for f in filters.iter().copied() {
            let mut cases: Vec<(Value, Vec<&str>, bool, Option<D>)> =
                vec![(json!([]), GOALS.to_vec(), true, None)];
            for goals in [&["Sale"][..], &["Pro sale"], &["Sale", "Signup"]] {
                for d in [None, Some(D::Source), Some(D::Day)] {
                    cases.push((
                        json!([["is", "event:goal", goals]]),
                        goals.to_vec(),
                        false,
                        d,
                    ));
                }
            }
            for (goal_filter, goals, by_goal, d) in cases {
                let mut fs = f.json();
                fs.as_array_mut()
                    .unwrap()
                    .extend(goal_filter.as_array().unwrap().iter().cloned());
                let dims = if by_goal {
                    json!(["event:goal"])
                } else {
                    d.map_or(json!([]), |d| json!([d.name()]))
                };
                let mut body = json!({"site_id": "example.com", "date_range": range_json,
                    "metrics": metrics, "filters": fs, "dimensions": dims});
                if let Some(date) = date {
                    body["date"] = json!(date);
                }
                let got = query(s, body.clone()).await;
                let rows = rows_by_first_dimension(&got, &metrics);
                let (want, left) = expected_revenue(visits, *range, f, &goals, by_goal, d);
                let keys: BTreeSet<String> = rows.keys().cloned().collect();
                let want_keys: BTreeSet<String> =
                    expected_goals(visits, *range, f, &goals, by_goal, d)
                        .into_keys()
                        .collect();
                assert_eq!(keys, want_keys, "rows of {body} → {got}");
                for (k, ms) in &rows {
                    let currency = if by_goal {
                        goal_currency(k)
                    } else {
                        goals.iter().find_map(|g| goal_currency(g))
                    };
                    let Some(currency) = currency else {
                        assert_eq!(ms["total_revenue"], Value::Null, "{body} → {got}");
                        assert_eq!(ms["average_revenue"], Value::Null, "{body} → {got}");
                        continue;
                    };
                    let (total, avg) = want.get(k).copied().unwrap_or((0, 0));
                    if total != 0 {
                        with_revenue += 1;
                    }
                    assert_eq!(
                        money_of(&ms["total_revenue"]),
                        Some((total, currency.to_string())),
                        "total of {k:?}: {body} → {got}"
                    );
                    assert_eq!(
                        money_of(&ms["average_revenue"]),
                        Some((avg, currency.to_string())),
                        "average of {k:?}: {body} → {got}"
                    );
                }
                let warning = &got["meta"]["metric_warnings"]["total_revenue"];
                if left.is_empty() {
                    assert_eq!(*warning, Value::Null, "{body} → {got}");
                } else {
                    saw_unconverted = true;
                    assert_eq!(warning["code"], "unconverted_currencies", "{got}");
                    assert_eq!(warning["currencies"], json!(left), "{got}");
                }
            }
        }
    }
    assert!(with_revenue > 10, "rows with revenue: {with_revenue}");
    assert!(saw_unconverted, "JPY had no rate somewhere");
    // Null, with Plausible's warning codes, where no single currency applies.
    for (filters, code) in [
        (json!([]), "no_revenue_goals_matching"),
        (
            json!([["is", "event:goal", ["Signup"]]]),
            "no_revenue_goals_matching",
        ),
        (
            json!([["is", "event:goal", ["Sale", "Pro sale"]]]),
            "no_single_revenue_currency",
        ),
    ] {
        let body = json!({"site_id": "example.com", "date_range": ["2026-03-01", "2026-03-14"],
            "metrics": ["visitors", "total_revenue"], "filters": filters});
        let got = query(s, body.clone()).await;
        assert_eq!(
            got["results"][0]["metrics"][1],
            Value::Null,
            "{body} → {got}"
        );
        assert_eq!(
            got["meta"]["metric_warnings"]["total_revenue"]["code"], code,
            "{got}"
        );
    }
    // A page goal has no currency.
    let (status, e) = post(
        s,
        "/api/admin/sites/example.com/goals",
        &json!({"name": "Paid page", "page": "/pricing", "currency": "EUR"}),
    )
    .await;
    assert_eq!(status, 400, "{e}");
}

/// The content catalogue in the live stats: counts by type, titles and types, and the
/// unviewed published pages — against the dataset's page views counted here.
async fn catalogue_check(s: &TestServer, visits: &[Visit]) {
    let catalogue = json!([
        {"path": "/blog/post-1", "title": "Post one", "type": "post"},
        {"path": "/blog/post-2", "title": "Post two", "type": "post"},
        {"path": "/", "title": "Home page", "type": "page"},
        {"path": "/pricing", "type": "page"},
        {"path": "/docs/old", "title": "Old docs", "type": "page", "published": false},
        {"path": "/guide", "title": "Guide", "type": "guide"}
    ]);
    let r = s
        .http
        .put(format!("{}/api/sites/example.com/content", s.base))
        .bearer_auth(TOKEN)
        .body(catalogue.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let live = s.live("example.com").await;
    let mut views: BTreeMap<&str, u64> = BTreeMap::new();
    for e in visits
        .iter()
        .flat_map(|v| &v.events)
        .filter(|e| e.name == "pageview")
    {
        *views.entry(e.page).or_default() += 1;
    }
    let entries = catalogue.as_array().unwrap();
    let published = |kind: &str| {
        entries
            .iter()
            .filter(|e| e["type"] == kind && e["published"] != false)
            .count() as u64
    };
    assert_eq!(live["publishedPosts"].as_u64(), Some(published("post")));
    assert_eq!(live["publishedPages"].as_u64(), Some(published("page")));
    // Every viewed page with its views; then the published pages nobody viewed.
    let mut want: BTreeMap<String, (String, String, u64)> = BTreeMap::new();
    for (page, n) in &views {
        let entry = entries.iter().find(|e| e["path"] == *page);
        let (title, kind) = match entry {
            Some(e) => (
                e["title"].as_str().unwrap_or(page).to_string(),
                e["type"].as_str().unwrap().to_string(),
            ),
            // Without a title sent by the page: the seed's defaults.
            None => (
                if *page == "/" {
                    "Home".into()
                } else {
                    page.to_string()
                },
                if *page == "/" {
                    "home".into()
                } else {
                    "other".into()
                },
            ),
        };
        want.insert(page.to_string(), (title, kind, *n));
    }
    for e in entries.iter().filter(|e| e["published"] != false) {
        let path = e["path"].as_str().unwrap();
        if !views.contains_key(path) {
            let title = e["title"].as_str().unwrap_or(path).to_string();
            want.insert(path.into(), (title, e["type"].as_str().unwrap().into(), 0));
        }
    }
    let got: BTreeMap<String, (String, String, u64)> = live["pageStats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().to_string(),
                (
                    p["title"].as_str().unwrap().to_string(),
                    p["pageType"].as_str().unwrap().to_string(),
                    p["views"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(got, want, "{live}");
}

/// POSTs `body` to `path` with the admin token: the status and the JSON answer.
async fn post(s: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    let r = s
        .http
        .post(format!("{}{path}", s.base))
        .bearer_auth(TOKEN)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn query(s: &TestServer, body: Value) -> Value {
    let r = s
        .http
        .post(format!("{}/api/v2/query", s.base))
        .bearer_auth(TOKEN)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body} → {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_dimension_filter_and_range_matches_the_model() {
    reference_check(true).await;
}

/// The same with rollups off: every query scans raw rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_rows_alone_match_the_model_too() {
    reference_check(false).await;
}

async fn reference_check(rollups: bool) {
    let rates = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rates.path(), RATES_JSON).unwrap();
    let s = TestServer::start_with(|c| {
        c.dedup_window_ms = 0;
        c.rollups = rollups;
        c.currency_rates = Some(rates.path().to_path_buf());
    })
    .await;
    s.running()
        .state
        .ingest
        .sites
        .add(
            &footfall_core::SiteId::parse("example.com").unwrap(),
            false,
            Some(TZ),
            0,
        )
        .unwrap();
    let visits = dataset();
    assert!(visits.len() > 30);
    ingest(&s, &visits).await;

    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
    let midnight = |d: NaiveDate| {
        TZ.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap())
            .earliest()
            .unwrap()
            .timestamp_millis()
    };
    let ranges: Vec<(Value, (i64, i64), Option<&str>)> = vec![
        (
            json!(["2026-03-01", "2026-03-14"]),
            (midnight(day(1)), midnight(day(15))),
            None,
        ),
        (
            json!(["2026-03-08", "2026-03-08"]),
            (midnight(day(8)), midnight(day(9))),
            None,
        ),
        (
            json!("7d"),
            (midnight(day(8)), midnight(day(15))),
            Some("2026-03-14"),
        ),
    ];
    let filters = [
        F::None,
        F::PageIs("/blog"),
        F::SourceContainsCi("GOO"),
        F::CountryNot("US"),
        F::PageMatches("^/blog"),
        F::Or,
    ];
    let dims = [
        None,
        Some(D::Page),
        Some(D::Source),
        Some(D::Country),
        Some(D::Browser),
        Some(D::Plan),
        Some(D::Entry),
        Some(D::Day),
        Some(D::Hour),
        Some(D::Week),
        Some(D::Month),
    ];
    let mut checked = 0;
    for (range_json, range, date) in &ranges {
        // Who signed up in the range, for the behavioural filters.
        let who: &'static [usize] = Box::leak(
            visits
                .iter()
                .filter(|v| {
                    v.events
                        .iter()
                        .any(|e| e.name == "signup" && e.ts >= range.0 && e.ts < range.1)
                })
                .map(|v| v.visitor)
                .collect::<BTreeSet<usize>>()
                .into_iter()
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        assert!(!who.is_empty() || range.1 - range.0 <= 86_400_000);
        let mut filters = filters.to_vec();
        filters.extend([F::Signed(true, who), F::Signed(false, who)]);
        for f in filters.iter().copied() {
            for d in dims {
                if d == Some(D::Hour) && range.1 - range.0 > 2 * 86_400_000 {
                    continue;
                }
                let mut metrics = vec!["visitors", "visits", "pageviews", "events"];
                if d.is_none_or(|d| !d.is_event()) {
                    metrics.extend(["bounce_rate", "visit_duration", "views_per_visit"]);
                }
                if d.is_some() {
                    metrics.push("percentage");
                }
                if d == Some(D::Page) || f.is_event_filter() {
                    metrics.extend(["time_on_page", "scroll_depth"]);
                }
                let mut body = json!({"site_id": "example.com", "date_range": range_json, "metrics": metrics, "filters": f.json()});
                if let Some(d) = d {
                    body["dimensions"] = json!([d.name()]);
                }
                if let Some(date) = date {
                    body["date"] = json!(date);
                }
                let got = query(&s, body.clone()).await;
                let want = expected(&visits, *range, f, d, &metrics);
                assert_eq!(
                    rows_by_first_dimension(&got, &metrics),
                    want,
                    "query {body}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 120, "{checked} combinations checked");
    goal_checks(&s, &visits, &ranges).await;
    catalogue_check(&s, &visits).await;
    let m = s.running().state.metrics.clone();
    let (fast, raw) = (
        m.parts_rollup.load(std::sync::atomic::Ordering::Relaxed),
        m.parts_raw.load(std::sync::atomic::Ordering::Relaxed),
    );
    if rollups {
        assert!(
            fast > 50 && raw > 50,
            "both paths answered: {fast} rollup parts, {raw} raw"
        );
    } else {
        assert_eq!(fast, 0, "rollups off: {raw} raw parts");
    }
}
