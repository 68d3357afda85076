//! Conformance: one generated dataset goes into an embedded server and into a two-node
//! cluster (requests alternating between the nodes), then every metric, dimension, filter
//! operator and date range of the query model is asked of all three, and the answers —
//! status and whole body — must be identical, as must the live snapshots.
//!
//! The embedded answers are checked against an independent model in `query_reference.rs`;
//! here the point is that the ClickHouse dialect, the partitioned sequencing and the
//! partitioned live counters change nothing. Needs the servers `scripts/test` starts.

mod common;
use common::cluster::{eventually, Cluster};
use common::*;
use footfall_core::Timestamp;
use serde_json::{json, Value};

const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1";
const CHROME_ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36";
const EDGE: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91";
const IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1";
const UAS: [&str; 6] = [CHROME, FIREFOX, SAFARI_IPHONE, CHROME_ANDROID, EDGE, IPAD];
/// Country, region, city, latitude, longitude (as a proxy in front would send them).
const GEO: [(&str, &str, &str, &str, &str); 4] = [
    ("US", "CA", "San Francisco", "37.77", "-122.42"),
    ("DE", "BE", "Berlin", "52.52", "13.40"),
    ("JP", "13", "Tokyo", "35.68", "139.69"),
    ("GB", "ENG", "London", "51.51", "-0.13"),
];
const REFERRERS: [&str; 6] = [
    "",
    "https://www.google.com/",
    "https://news.ycombinator.com/item?id=1",
    "https://t.co/x",
    "https://duckduckgo.com/",
    "https://example.org/links",
];
const PAGES: [&str; 6] = [
    "/",
    "/blog",
    "/blog/post-1",
    "/pricing",
    "/docs",
    "/docs/setup",
];
const UTM: &str =
    "utm_source=newsletter&utm_medium=email&utm_campaign=spring&utm_content=top&utm_term=shoes";
/// The UTC site comes with the test configuration; the other is added with a zone.
const SITES: [&str; 2] = ["example.com", "shop.example"];
const SHOP_TZ: &str = "America/New_York";
/// Where the shop moves at the end.
const MOVED_TZ: &str = "Asia/Kolkata";
/// "Today" for relative ranges.
const TODAY: &str = "2026-03-14";
const DAY: i64 = 86_400_000;
/// 2025-12-20 00:00 UTC: the data spans a new year, a DST change and three months.
const START: i64 = 1_766_188_800_000;
const SPAN_DAYS: usize = 85;

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

/// One request to `/api/event`, at `ts`.
struct Hit {
    ts: i64,
    body: Value,
    ua: &'static str,
    ip: String,
    geo: usize,
}

fn dataset() -> Vec<Hit> {
    let mut r = Lcg(7);
    let mut hits = Vec::new();
    for visitor in 0..40usize {
        let site = SITES[usize::from(visitor % 3 == 2)];
        let ua = UAS[r.next(UAS.len())];
        let geo = r.next(GEO.len());
        // Half the visitors send a client id; the others are told apart by IP and UA,
        // with the daily salt.
        let sid = (visitor % 2 == 0).then(|| format!("client-{visitor}"));
        let ip = format!("203.0.113.{}", 1 + visitor);
        let mut hit = |ts: i64, mut body: Value| {
            if let Some(sid) = &sid {
                body["sid"] = json!(sid);
            }
            hits.push(Hit {
                ts,
                body,
                ua,
                ip: ip.clone(),
                geo,
            });
        };
        for _ in 0..1 + r.next(3) {
            let mut ts = START + r.next(SPAN_DAYS) as i64 * DAY + r.next(DAY as usize) as i64;
            let referrer = REFERRERS[r.next(REFERRERS.len())];
            let utm = r.next(4) == 0;
            let mut page = "";
            for i in 0..1 + r.next(5) {
                let mut next = PAGES[r.next(PAGES.len())];
                if next == page {
                    next = PAGES[(PAGES.iter().position(|p| *p == next).unwrap() + 1) % 6];
                }
                page = next;
                // Blog pages are served on a subdomain half the time.
                let host = if page.starts_with("/blog") && r.next(2) == 0 {
                    format!("blog.{site}")
                } else {
                    site.to_string()
                };
                let query = if i == 0 && utm {
                    format!("?{UTM}")
                } else {
                    String::new()
                };
                let mut body = json!({"n": "pageview", "u": format!("https://{host}{page}{query}"), "d": site});
                if i == 0 && !referrer.is_empty() {
                    body["r"] = json!(referrer);
                }
                hit(ts, body);
                ts += (5 + r.next(900) as i64) * 1000;
                let url = format!("https://{host}{page}");
                match r.next(6) {
                    0 => {
                        let plan = ["pro", "free"][r.next(2)];
                        let method = ["google", "email"][r.next(2)];
                        let mut body = json!({"n": "signup", "u": url, "d": site, "p": {"plan": plan, "method": method}});
                        // Revenue in three currencies (JPY has no rate), or none.
                        let k = r.next(5);
                        if k < 4 {
                            let (amount, currency) = [
                                ("49.99", "EUR"),
                                ("12.5", "USD"),
                                ("0.005", "GBP"),
                                ("300", "JPY"),
                            ][k];
                            body["revenue"] = json!({"amount": amount, "currency": currency});
                        }
                        hit(ts, body);
                        ts += 3_000;
                    }
                    1 => {
                        let file = ["a.pdf", "b.zip"][r.next(2)];
                        hit(
                            ts,
                            json!({"n": "download", "u": url, "d": site, "p": {"file": file}}),
                        );
                        ts += 3_000;
                    }
                    2 | 3 => {
                        let sd = 10 + r.next(90);
                        hit(
                            ts,
                            json!({"n": "engagement", "u": url, "d": site, "sd": sd, "e": 1 + r.next(60_000)}),
                        );
                        ts += 1_000;
                    }
                    _ => {}
                }
            }
        }
    }
    // Two events at one millisecond would be ordered differently by the two paths.
    hits.sort_by_key(|h| h.ts);
    hits.dedup_by_key(|h| h.ts);
    hits
}

async fn send(s: &TestServer, h: &Hit) {
    let (country, region, city, lat, lon) = GEO[h.geo];
    let resp = s
        .http
        .post(format!("{}/api/event", s.base))
        .header("content-type", "text/plain")
        .header("user-agent", h.ua)
        .header("x-forwarded-for", &h.ip)
        .header("cf-ipcountry", country)
        .header("cf-region", region)
        .header("cf-ipcity", city)
        .header("cf-iplatitude", lat)
        .header("cf-iplongitude", lon)
        .body(h.body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 202, "{} → {body}", h.body);
    // A repeat within the dedup window is dropped at once by the embedded server; a node
    // accepts it and its partition's owner drops it moments later (documented).
    let duplicate = body["status"] == "dropped" && body["reason"] == "duplicate";
    assert!(
        body["status"] == "accepted" || duplicate,
        "{} → {body}",
        h.body
    );
}

async fn ask(s: &TestServer, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let url = format!("{}{path}", s.base);
    let req = match body {
        Some(b) => s.http.post(url).body(b.to_string()),
        None => s.http.request(method.parse().unwrap(), url),
    };
    let resp = req.bearer_auth(TOKEN).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The metrics a query may ask for with `dims` and an event-level filter or not.
fn metrics_for(dims: &[&str], page_filter: bool) -> Vec<&'static str> {
    let event_dim = dims.iter().any(|d| d.starts_with("event:"));
    let mut m = vec!["visitors", "visits", "pageviews", "events"];
    if !event_dim {
        m.extend(["bounce_rate", "visit_duration", "views_per_visit"]);
    }
    if !dims.is_empty() {
        m.push("percentage");
    }
    if dims.contains(&"event:page") || page_filter {
        m.extend(["time_on_page", "scroll_depth"]);
    }
    m
}

fn dimensions() -> Vec<&'static str> {
    vec![
        "event:page",
        "event:name",
        "event:hostname",
        "event:props:plan",
        "event:props:file",
        "visit:source",
        "visit:referrer",
        "visit:utm_medium",
        "visit:utm_source",
        "visit:utm_campaign",
        "visit:utm_content",
        "visit:utm_term",
        "visit:country",
        "visit:region",
        "visit:city",
        "visit:browser",
        "visit:browser_version",
        "visit:os",
        "visit:os_version",
        "visit:device",
        "visit:entry_page",
        "visit:exit_page",
        "time",
        "time:hour",
        "time:day",
        "time:week",
        "time:month",
    ]
}

/// Every operator on each kind of dimension, and the combinators.
fn filters() -> Vec<Value> {
    vec![
        json!([["is", "event:page", ["/blog", "/pricing"]]]),
        json!([["is_not", "event:page", ["/"]]]),
        json!([["contains", "event:page", ["blog"]]]),
        json!([["contains_not", "event:page", ["docs"]]]),
        json!([["matches", "event:page", ["^/docs(/.*)?$"]]]),
        json!([["matches_not", "event:page", ["post"]]]),
        json!([["is", "event:name", ["signup"]]]),
        json!([["is", "event:hostname", ["blog.example.com"]]]),
        json!([["is", "event:props:plan", ["pro"]]]),
        json!([["is_not", "event:props:method", ["email"]]]),
        json!([["contains", "visit:source", ["GOO"], {"case_sensitive": false}]]),
        json!([["is_not", "visit:country", ["US"]]]),
        json!([["is", "visit:utm_campaign", ["spring"]]]),
        json!([["matches", "visit:browser", ["^(Chrome|Safari)"]]]),
        json!([["is", "visit:device", ["Mobile"]]]),
        json!([["contains", "visit:entry_page", ["/doc"]]]),
        json!([["is", "visit:exit_page", ["/pricing"]]]),
        json!([["is", "visit:city", ["Berlin", "Tokyo"]]]),
        json!([
            ["is", "visit:country", ["DE", "JP", "GB"]],
            ["is_not", "event:page", ["/"]]
        ]),
        json!([[
            "or",
            [
                ["is", "visit:browser", ["Firefox"]],
                ["is", "event:page", ["/pricing"]]
            ]
        ]]),
        json!([[
            "and",
            [
                ["is", "visit:os", ["iOS", "Android"]],
                ["not", ["is", "event:page", ["/docs"]]]
            ]
        ]]),
        json!([["not", ["contains", "visit:referrer", ["t.co"]]]]),
        // Behavioural: the visitors who signed up, and those who never read the blog.
        json!([["has_done", ["is", "event:name", ["signup"]]]]),
        json!([
            ["has_not_done", ["is", "event:goal", ["Blog"]]],
            ["is", "visit:device", ["Desktop"]]
        ]),
    ]
}

fn date_ranges() -> Vec<Value> {
    vec![
        json!("day"),
        json!("7d"),
        json!("30d"),
        json!("month"),
        json!("6mo"),
        json!("12mo"),
        json!("year"),
        json!("all"),
        json!(["2025-12-28", "2026-01-03"]),
        json!(["2026-03-07", "2026-03-09"]),
        json!(["2026-01-15T06:30:00Z", "2026-02-02T18:00:00Z"]),
    ]
}

/// Every query of the suite, for `site`.
fn queries(site: &str) -> Vec<Value> {
    let q = |range: &Value, metrics: Vec<&str>, dims: &[&str], filters: &Value| {
        let mut body = json!({"site_id": site, "date_range": range, "date": TODAY,
            "metrics": metrics, "dimensions": dims, "filters": filters});
        if !range.is_string() {
            body.as_object_mut().unwrap().remove("date");
        }
        body
    };
    let none = json!([]);
    let all = json!("all");
    let mut out = Vec::new();
    // Every dimension with every metric it allows, over everything and over a range.
    for range in [&all, &json!(["2026-01-10", "2026-02-20"])] {
        for d in dimensions() {
            if d == "time:hour" && range == &all {
                continue;
            }
            out.push(q(range, metrics_for(&[d], false), &[d], &none));
        }
    }
    // Every filter, alone and under a few dimensions.
    for f in filters() {
        let page = f.to_string().contains("event:page");
        for dims in [&[][..], &["event:page"], &["visit:source"], &["time:week"]] {
            out.push(q(&all, metrics_for(dims, page), dims, &f));
        }
    }
    // Every date range, with and without time buckets.
    for range in date_ranges() {
        for dims in [&[][..], &["time"], &["time:day"], &["event:page"]] {
            out.push(q(&range, metrics_for(dims, false), dims, &none));
        }
    }
    // Two dimensions at once; ordering, pagination and the include options.
    for dims in [
        &["visit:country", "visit:browser"][..],
        &["event:page", "time:month"],
        &["event:props:plan", "visit:device"],
        &["visit:city", "event:name"],
    ] {
        out.push(q(&all, metrics_for(dims, false), dims, &none));
    }
    let mut ordered = q(&all, vec!["visitors", "pageviews"], &["event:page"], &none);
    ordered["order_by"] = json!([["pageviews", "asc"], ["event:page", "desc"]]);
    ordered["pagination"] = json!({"limit": 3, "offset": 2});
    ordered["include"] = json!({"total_rows": true});
    out.push(ordered);
    let mut labels = q(&json!("30d"), vec!["visitors"], &["time:day"], &none);
    labels["include"] = json!({"time_labels": true, "total_rows": true});
    out.push(labels);
    for compare in ["previous_period", "year_over_year"] {
        let mut c = q(
            &json!("month"),
            vec!["visitors", "visits", "bounce_rate"],
            &[],
            &none,
        );
        c["include"] = json!({"compare": compare});
        out.push(c);
        let mut c = q(&json!("30d"), vec!["pageviews"], &["visit:source"], &none);
        c["include"] = json!({"compare": compare});
        out.push(c);
    }
    // Goals: by goal, filtered by goal, with their rates.
    let counts = vec![
        "visitors",
        "events",
        "conversion_rate",
        "group_conversion_rate",
    ];
    for range in [&all, &json!("30d"), &json!(["2026-01-10", "2026-02-20"])] {
        let mut by_goal = counts.clone();
        by_goal.extend(["visits", "percentage"]);
        out.push(q(range, by_goal, &["event:goal"], &none));
        out.push(q(
            range,
            counts.clone(),
            &["event:goal", "time:month"],
            &none,
        ));
    }
    for goal in ["Signup", "Pro signup", "Blog", "Deep read"] {
        let f = json!([["is", "event:goal", [goal]]]);
        for dims in [&[][..], &["visit:source"], &["event:page"], &["time:week"]] {
            out.push(q(&all, counts.clone(), dims, &f));
        }
        out.push(q(
            &all,
            vec!["visits", "bounce_rate", "visit_duration"],
            &[],
            &f,
        ));
    }
    out.push(q(
        &json!("30d"),
        counts.clone(),
        &["event:goal"],
        &json!([["contains", "event:goal", ["sign"], {"case_sensitive": false}], ["is", "visit:country", ["DE", "US"]]]),
    ));
    // Revenue: by goal, and filtered by revenue goals (one currency, mixed, none).
    let revenue = vec!["visitors", "total_revenue", "average_revenue"];
    for range in [&all, &json!(["2026-01-10", "2026-02-20"])] {
        out.push(q(range, revenue.clone(), &["event:goal"], &none));
        out.push(q(
            range,
            revenue.clone(),
            &["event:goal", "time:month"],
            &none,
        ));
    }
    for goals in [
        &["Sale"][..],
        &["Pro sale"],
        &["Sale", "Signup"],
        &["Sale", "Pro sale"],
    ] {
        let f = json!([["is", "event:goal", goals]]);
        for dims in [&[][..], &["visit:country"], &["time:week"]] {
            out.push(q(&all, revenue.clone(), dims, &f));
        }
    }
    out.push(q(&all, revenue.clone(), &[], &none));
    // Refused queries must be refused alike.
    out.push(q(
        &all,
        vec!["visitors"],
        &[],
        &json!([["is", "event:goal", ["No such goal"]]]),
    ));
    out.push(q(&all, vec!["bounce_rate"], &["event:page"], &none));
    out.push(q(
        &all,
        vec!["visitors"],
        &[],
        &json!([["matches", "event:page", ["("]]]),
    ));
    out
}

/// The Stats API v1 endpoints, which share the query model.
fn v1_paths(site: &str) -> Vec<String> {
    let p = |rest: &str| format!("/api/v1/stats/{rest}&site_id={site}");
    vec![
        p("aggregate?period=12mo&date=2026-03-14&metrics=visitors,visits,pageviews,bounce_rate,visit_duration,views_per_visit"),
        p("aggregate?period=30d&date=2026-03-14&metrics=visitors&compare=previous_period"),
        p("timeseries?period=6mo&date=2026-03-14&metrics=visitors,pageviews"),
        p("timeseries?period=7d&date=2026-03-14&interval=date&metrics=visits"),
        p("breakdown?period=12mo&date=2026-03-14&property=event:page&metrics=visitors,pageviews"),
        p("breakdown?period=12mo&date=2026-03-14&property=visit:source&metrics=visitors,bounce_rate&filters=visit:country%3D%3DDE%7CJP"),
        p("breakdown?period=12mo&date=2026-03-14&property=event:props:plan&metrics=visitors&filters=event:name%3D%3Dsignup"),
        p("breakdown?period=12mo&date=2026-03-14&property=event:goal&metrics=visitors,events,conversion_rate"),
    ]
}

/// The live fields that must agree (the version is per node).
fn live_view(v: &Value) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().remove("version");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_node_cluster_answers_every_query_as_embedded_does() {
    let cluster = Cluster::new();
    // The same exchange rates everywhere (revenue in other currencies than a goal's).
    let rates = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        rates.path(),
        r#"{"base": "EUR", "rates": {"USD": 1.1, "GBP": "0.85"}}"#,
    )
    .unwrap();
    let with_rates = |node: Box<dyn FnOnce(&mut footfall_server::ServerConfig)>| {
        let path = rates.path().to_path_buf();
        move |c: &mut footfall_server::ServerConfig| {
            node(c);
            c.currency_rates = Some(path);
        }
    };
    let a = TestServer::start_with(with_rates(Box::new(cluster.node("a", 4)))).await;
    let b = TestServer::start_with(with_rates(Box::new(cluster.node("b", 4)))).await;
    let e = TestServer::start_with(with_rates(Box::new(
        |_: &mut footfall_server::ServerConfig| {},
    )))
    .await;
    for s in [&a, &e] {
        let (status, body) = ask(
            s,
            "POST",
            "/api/admin/sites",
            Some(&json!({"domain": SITES[1], "timezone": SHOP_TZ})),
        )
        .await;
        assert!(status == 200 || status == 201, "{status} {body}");
    }
    let site_on_b = || async { ask(&b, "GET", "/api/admin/sites", None).await.1.to_string() };
    eventually("B to know the second site", site_on_b, |l| {
        l.contains(SITES[1])
    })
    .await;
    // Goals, which every node reads from the metadata store.
    for site in SITES {
        for goal in [
            json!({"name": "Signup", "event": "signup"}),
            json!({"name": "Pro signup", "event": "signup", "props": {"plan": "pro"}}),
            json!({"name": "Blog", "page": "/blog/**"}),
            json!({"name": "Deep read", "page": "/blog**", "scroll_depth": 50}),
            json!({"name": "Sale", "event": "signup", "currency": "EUR"}),
            json!({"name": "Pro sale", "event": "signup", "props": {"plan": "pro"}, "currency": "USD"}),
        ] {
            for s in [&a, &e] {
                let path = format!("/api/admin/sites/{site}/goals");
                let (status, body) = ask(s, "POST", &path, Some(&goal)).await;
                assert_eq!(status, 201, "{body}");
            }
        }
        let path = format!("/api/admin/sites/{site}/goals");
        let goals_on_b = || async { ask(&b, "GET", &path, None).await.1.to_string() };
        eventually("B to know the goals", goals_on_b, |l| {
            l.contains("Pro sale")
        })
        .await;
    }

    let hits = dataset();
    assert!(hits.len() > 300, "{} hits", hits.len());
    for (i, h) in hits.iter().enumerate() {
        for s in [&a, &b, &e] {
            s.clock.set(Timestamp(h.ts));
        }
        send(&e, h).await;
        send(if i % 2 == 0 { &a } else { &b }, h).await;
    }

    // Live: identical snapshots on both nodes (they follow the logs, so poll).
    for site in SITES {
        let want = live_view(&e.live(site).await);
        assert!(want["totalPageViews"].as_u64().unwrap() > 50, "{want}");
        for s in [&a, &b] {
            eventually(
                &format!("live stats of {site} to match {want}"),
                || async { live_view(&s.live(site).await) },
                |got| *got == want,
            )
            .await;
        }
    }

    // Reports: the read barrier makes every acknowledged event visible at once.
    let mut answered = 0;
    let mut refused = 0;
    let mut nonempty = 0;
    let mut revenue_seen = [false; 3];
    let mut funnel_visitors = 0;
    for site in SITES {
        for body in queries(site) {
            // Both nodes read the one ClickHouse: each query goes to one of them.
            let node = if (answered + refused) % 2 == 0 {
                &a
            } else {
                &b
            };
            let want = ask(&e, "POST", "/api/v2/query", Some(&body)).await;
            let got = ask(node, "POST", "/api/v2/query", Some(&body)).await;
            assert_eq!(got, want, "query {body}");
            if want.0 == 200 {
                answered += 1;
                nonempty += usize::from(!want.1["results"].as_array().unwrap().is_empty());
                // Revenue figures in both goal currencies, and JPY left out somewhere.
                let text = want.1.to_string();
                for (i, needle) in ["\"currency\":\"EUR\"", "\"currency\":\"USD\"", "\"JPY\""]
                    .iter()
                    .enumerate()
                {
                    revenue_seen[i] |= text.contains(needle);
                }
            } else {
                refused += 1;
            }
        }
        let batch = json!({"queries": queries(site).into_iter().take(12).collect::<Vec<_>>()});
        let want = ask(&e, "POST", "/api/v2/query/batch", Some(&batch)).await;
        assert_eq!(want.0, 200, "{}", want.1);
        assert_eq!(
            ask(&a, "POST", "/api/v2/query/batch", Some(&batch)).await,
            want
        );
        for steps in [
            &["Blog", "Signup"][..],
            &["Signup", "Pro signup"],
            &["Blog", "Deep read", "Signup", "Pro signup"],
        ] {
            for (range, filters) in [
                (json!("all"), json!([])),
                (json!("30d"), json!([["is", "visit:country", ["DE", "JP"]]])),
                (
                    json!(["2026-01-10", "2026-02-20"]),
                    json!([["contains", "event:page", ["blog"]]]),
                ),
                (
                    json!("all"),
                    json!([["is", "visit:entry_page", ["/", "/blog"]]]),
                ),
            ] {
                let body = json!({"site_id": site, "date_range": range, "date": TODAY,
                    "filters": filters, "steps": steps});
                let want = ask(&e, "POST", "/api/v2/funnel", Some(&body)).await;
                assert_eq!(want.0, 200, "{body}: {}", want.1);
                assert_eq!(
                    ask(&a, "POST", "/api/v2/funnel", Some(&body)).await,
                    want,
                    "{body}"
                );
                funnel_visitors += want.1["steps"][1]["visitors"].as_u64().unwrap();
            }
        }
        for path in v1_paths(site) {
            let want = ask(&e, "GET", &path, None).await;
            assert_eq!(want.0, 200, "{path}: {}", want.1);
            assert_eq!(ask(&a, "GET", &path, None).await, want, "{path}");
            assert_eq!(ask(&b, "GET", &path, None).await, want, "{path}");
        }
    }
    assert!(answered > 300, "{answered} queries answered");
    assert!(
        funnel_visitors > 10,
        "funnels were entered and followed: {funnel_visitors}"
    );
    // The nodes answered from ClickHouse's rollups where they apply, like the embedded
    // server from its own (and from raw rows elsewhere).
    for s in [&a, &b, &e] {
        let rollups = s
            .metric("footfall_query_parts_total{source=\"rollups\"} ")
            .await;
        let raw = s
            .metric("footfall_query_parts_total{source=\"raw\"} ")
            .await;
        assert!(
            rollups > 50.0 && raw > 50.0,
            "{rollups} from rollups, {raw} raw"
        );
    }
    assert!(
        nonempty * 10 > answered * 9,
        "{nonempty} of {answered} answers have rows"
    );
    assert_eq!(refused, 6, "three refused queries per site");
    assert_eq!(
        revenue_seen, [true; 3],
        "revenue in EUR, in USD, and JPY without a rate"
    );

    // The shop moves to a zone with a half-hour offset. Its rollups are rebuilt — by the
    // embedded server at its next records, by each partition's applier in the cluster —
    // and the answers, in the new zone, still match, the nodes' from rollups again.
    for s in [&a, &e] {
        let (status, body) = ask(
            s,
            "POST",
            "/api/admin/sites",
            Some(&json!({"domain": SITES[1], "timezone": MOVED_TZ})),
        )
        .await;
        assert!(status == 200 || status == 201, "{status} {body}");
    }
    let last = hits.last().unwrap().ts;
    let shop: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.body["domain"] == SITES[1])
        .take(30)
        .collect();
    for (i, h) in shop.iter().enumerate() {
        for s in [&a, &b, &e] {
            s.clock.set(Timestamp(last + (i as i64 + 1) * 420_000));
        }
        send(&e, h).await;
        send(if i % 2 == 0 { &a } else { &b }, h).await;
    }
    let probe = json!({"site_id": SITES[1], "metrics": ["visitors", "pageviews"], "date_range": "all", "dimensions": ["time:day"]});
    eventually(
        "node A to answer the moved shop from rollups",
        || async {
            let before = a
                .metric("footfall_query_parts_total{source=\"rollups\"} ")
                .await;
            let (status, _) = ask(&a, "POST", "/api/v2/query", Some(&probe)).await;
            assert_eq!(status, 200);
            a.metric("footfall_query_parts_total{source=\"rollups\"} ")
                .await
                - before
        },
        |used| *used > 0.0,
    )
    .await;
    let rebuilt = a.metric("footfall_cluster_rollup_rebuilds_total ").await
        + b.metric("footfall_cluster_rollup_rebuilds_total ").await;
    assert!(rebuilt >= 1.0, "{rebuilt} rebuilds");
    let mut compared = 0;
    for (i, body) in queries(SITES[1]).into_iter().enumerate().step_by(2) {
        let want = ask(&e, "POST", "/api/v2/query", Some(&body)).await;
        let node = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            ask(node, "POST", "/api/v2/query", Some(&body)).await,
            want,
            "query {body} after the zone change"
        );
        compared += 1;
    }
    assert!(compared > 80, "{compared}");

    let (mut a, mut b) = (a, b);
    a.stop().await;
    b.stop().await;
    cluster.drop_storage().await;
}
