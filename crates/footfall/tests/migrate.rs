//! `footfall migrate`: an embedded installation with two months of history (two sites, one
//! in New York time; a key; a user) is copied into a cluster — interrupted mid-chunk
//! once, resumed, run again — and a cluster node started on it answers the Stats API and
//! the live stats exactly as the embedded server did, accepts the key and the user, and
//! goes on counting.
//!
//! Needs the servers `scripts/test` starts (FOOTFALL_TEST_REDIS, FOOTFALL_TEST_CLICKHOUSE,
//! FOOTFALL_TEST_POSTGRES); fails loudly without them.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command};

const TOKEN: &str = "migrate-test-admin-token";
const SITES: [&str; 2] = ["example.com", "shop.example"];
const DAY: i64 = 86_400_000;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A fresh PostgreSQL database on the test server; its URL.
fn fresh_database(name: &str) -> String {
    let admin_url = env("FOOTFALL_TEST_POSTGRES");
    let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let (server, _) = admin_url.rsplit_once('/').unwrap();
    format!("{server}/{name}")
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::new()
}

fn post(base: &str, path: &str, auth: &str, body: &Value) -> (u16, Value) {
    let r = http()
        .post(format!("{base}{path}"))
        .bearer_auth(auth)
        .body(body.to_string())
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn get(base: &str, path: &str, auth: &str) -> (u16, Value) {
    let r = http()
        .get(format!("{base}{path}"))
        .bearer_auth(auth)
        .send()
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// A server process, killed if the test fails before stopping it.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// SIGTERM and wait: a graceful stop (everything acknowledged is stored).
fn stop(mut running: Running) {
    common::term(running.0.take().expect("running"));
}

/// Sixty days of traffic up to a minute ago, in batches with timestamps: visitors (by
/// client id or by address) coming back over days, several pages, custom events.
fn history(end: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut x: u64 = 99;
    let mut next = |n: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    for i in 0..1_500i64 {
        let ts = end - 60 * DAY + i * (60 * DAY / 1_500) + next(60_000) as i64;
        let visitor = next(40);
        let site = SITES[(visitor % 3 == 0) as usize];
        let page = ["/", "/pricing", "/blog", "/docs"][next(4) as usize];
        let mut e = json!({"n": "pageview", "u": format!("https://{site}{page}"), "d": site,
            "timestamp": iso(ts), "ip": format!("198.51.100.{visitor}"),
            "user_agent": UA});
        if visitor % 2 == 0 {
            e["sid"] = json!(format!("client-{visitor}"));
        }
        if next(5) == 0 {
            e["r"] = json!("https://news.ycombinator.com/");
        }
        out.push(e.clone());
        if next(6) == 0 {
            e["n"] = json!("signup");
            let plan = ["pro", "free"][next(2) as usize];
            e["p"] = json!({ "plan": plan });
            e["timestamp"] = json!(iso(ts + 5_000));
            if plan == "pro" {
                let amount = format!("{}.{:03}", 10 + next(90), next(1000));
                let currency = ["EUR", "USD"][next(2) as usize];
                e["revenue"] = json!({"amount": amount, "currency": currency});
            }
            e.as_object_mut().unwrap().remove("r");
            out.push(e);
        }
    }
    out
}

fn queries(site: &str) -> Vec<Value> {
    vec![
        json!({"site_id": site, "date_range": "all", "metrics": ["visitors", "visits", "pageviews", "events", "bounce_rate", "visit_duration", "views_per_visit"]}),
        json!({"site_id": site, "date_range": "30d", "metrics": ["visitors", "pageviews", "percentage"], "dimensions": ["event:page"]}),
        json!({"site_id": site, "date_range": "all", "metrics": ["visitors", "visits", "bounce_rate"], "dimensions": ["visit:source"]}),
        json!({"site_id": site, "date_range": "all", "metrics": ["visitors", "pageviews"], "dimensions": ["time:day"]}),
        json!({"site_id": site, "date_range": "all", "metrics": ["visitors", "events"], "dimensions": ["event:props:plan"], "filters": [["is", "event:name", ["signup"]]]}),
        json!({"site_id": site, "date_range": "7d", "metrics": ["visitors", "visits", "pageviews"]}),
        json!({"site_id": site, "date_range": "all", "metrics": ["visitors", "conversion_rate", "total_revenue", "average_revenue"], "filters": [["is", "event:goal", ["Sale"]]]}),
        json!({"site_id": site, "date_range": "all", "metrics": ["visitors", "total_revenue"], "dimensions": ["event:goal"]}),
        json!({"site_id": site, "date_range": "all", "metrics": ["visitors", "events"], "filters": [["is", "segment", ["Pro"]]]}),
    ]
}

fn answers(base: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for site in SITES {
        for q in queries(site) {
            let (status, body) = post(base, "/api/v2/query", TOKEN, &q);
            assert_eq!(status, 200, "{q}: {body}");
            out.push(body["results"].clone());
        }
    }
    out
}

/// The live fields that must carry over (versions and who is active now do not).
fn live(base: &str, site: &str) -> Value {
    let (status, mut v) = get(base, &format!("/api/stats/{site}/live"), TOKEN);
    assert_eq!(status, 200, "{v}");
    let o = v.as_object_mut().unwrap();
    for k in [
        "version",
        "activeVisitors",
        "activeByPath",
        "visitorLocations",
    ] {
        o.remove(k);
    }
    v
}

fn migrate(data: &Path, to: &Path, crash_after: Option<u64>) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.args(["migrate", "--chunk", "200", "--to"])
        .arg(to)
        .env("FOOTFALL_DATA_DIR", data)
        .env("FOOTFALL_LOG", "warn");
    if let Some(n) = crash_after {
        c.env("FOOTFALL_MIGRATE_CRASH_AFTER_CHUNKS", n.to_string());
    }
    c.output().unwrap()
}

#[test]
fn an_embedded_installation_moves_into_a_cluster_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run(&["sites", "add", "example.com"], &data);
    run(
        &[
            "sites",
            "add",
            "shop.example",
            "--timezone",
            "America/New_York",
        ],
        &data,
    );
    let (server, base) = serve(&data, &[("FOOTFALL_ADMIN_TOKEN", TOKEN)]);
    let server = Running(Some(server));
    let end = now_ms() - 60_000;
    let events = history(end);
    for batch in events.chunks(500) {
        let (status, body) = post(&base, "/api/events", TOKEN, &Value::Array(batch.to_vec()));
        assert_eq!(status, 202, "{body}");
    }
    let (status, key) = post(
        &base,
        "/api/admin/keys",
        TOKEN,
        &json!({"sites": ["example.com"]}),
    );
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_string();
    let (status, _) = post(
        &base,
        "/api/admin/users",
        TOKEN,
        &json!({"username": "ana", "password": "correct horse battery staple"}),
    );
    assert!(status == 200 || status == 201);
    // Goals and a funnel, which the copy must bring along (reports name them).
    for site in SITES {
        for goal in [
            json!({"name": "Signup", "event": "signup"}),
            json!({"name": "Sale", "event": "signup", "props": {"plan": "pro"}, "currency": "EUR"}),
        ] {
            let (status, body) = post(
                &base,
                &format!("/api/admin/sites/{site}/goals"),
                TOKEN,
                &goal,
            );
            assert_eq!(status, 201, "{body}");
        }
        let (status, body) = post(
            &base,
            &format!("/api/admin/sites/{site}/funnels"),
            TOKEN,
            &json!({"name": "Buy", "steps": ["Signup", "Sale"]}),
        );
        assert_eq!(status, 201, "{body}");
        let (status, body) = post(
            &base,
            &format!("/api/admin/sites/{site}/segments"),
            TOKEN,
            &json!({"name": "Pro", "filters": [["is", "event:props:plan", ["pro"]]], "shared": true}),
        );
        assert_eq!(status, 201, "{body}");
    }
    let want = answers(&base);
    assert!(
        want[6][0]["metrics"][2]["value"].as_f64().unwrap() > 0.0,
        "revenue: {}",
        want[6]
    );
    assert!(
        want[0][0]["metrics"][2].as_u64().unwrap() > 500,
        "{}",
        want[0]
    );
    let want_live: Vec<Value> = SITES.iter().map(|s| live(&base, s)).collect();
    stop(server);

    let tag = format!("mig{:08x}", rand::random::<u32>());
    let pg = fresh_database(&format!("footfall_{tag}"));
    let config = dir.path().join("cluster.toml");
    std::fs::write(
        &config,
        format!(
            "redis = \"{}\"\nclickhouse = \"{}\"\npostgres = \"{pg}\"\nclickhouse_database = \"footfall_{tag}\"\nredis_prefix = \"{tag}\"\npartitions = 3\nadmin_token = \"{TOKEN}\"\n",
            env("FOOTFALL_TEST_REDIS"),
            env("FOOTFALL_TEST_CLICKHOUSE")
        ),
    )
    .unwrap();

    // Stopped in the middle of a chunk (its rows written, not marked done), like a crash.
    let out = migrate(&data, &config, Some(4));
    assert!(!out.status.success(), "the hook stops the copy");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stopped"), "{stderr}");
    // Resumed: the half-written chunk is replaced, the rest copied, and the check passes.
    let out = migrate(&data, &config, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("example.com checked"), "{stderr}");
    assert!(stderr.contains("shop.example checked"), "{stderr}");
    // Again: nothing is copied twice (the counts it checks would differ).
    let out = migrate(&data, &config, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The data directory gets one more event (its server ran again): a resumed copy
    // would mix two sources, so the copy refuses and changes nothing.
    let (again, ebase) = serve(&data, &[("FOOTFALL_ADMIN_TOKEN", TOKEN)]);
    let again = Running(Some(again));
    let extra = json!([{"n": "pageview", "u": "https://example.com/later", "d": "example.com",
        "timestamp": iso(end + 1_000), "ip": "203.0.113.250", "user_agent": UA}]);
    let (status, body) = post(&ebase, "/api/events", TOKEN, &extra);
    assert_eq!(status, 202, "{body}");
    stop(again);
    let out = migrate(&data, &config, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("not the one this copy began with"),
        "{stderr}"
    );

    // A node of the cluster answers as the embedded server did.
    let (node, nbase) = serve(
        &dir.path().join("unused"),
        &[("FOOTFALL_CONFIG", config.to_str().unwrap())],
    );
    let node = Running(Some(node));
    assert_eq!(answers(&nbase), want);
    let (status, funnels) = get(&nbase, "/api/admin/sites/shop.example/funnels", TOKEN);
    assert_eq!(status, 200);
    assert_eq!(
        funnels["funnels"],
        json!([{"name": "Buy", "steps": ["Signup", "Sale"]}])
    );
    // …from the copied rollups where they apply (both sites' were complete).
    let metrics = http()
        .get(format!("{nbase}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let from_rollups: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("footfall_query_parts_total{source=\"rollups\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(from_rollups >= 6.0, "{metrics}");
    let got_live: Vec<Value> = SITES.iter().map(|s| live(&nbase, s)).collect();
    assert_eq!(got_live, want_live);
    // The key and the user came along.
    let q = json!({"site_id": "example.com", "date_range": "all", "metrics": ["visitors"]});
    assert_eq!(post(&nbase, "/api/v2/query", &key, &q).0, 200);
    let login = http()
        .post(format!("{nbase}/api/dashboard/login"))
        .json(&json!({"username": "ana", "password": "correct horse battery staple"}))
        .send()
        .unwrap();
    assert_eq!(login.status().as_u16(), 200);
    // And it goes on counting: a new page view adds one to the totals.
    let before = live(&nbase, "example.com")["totalPageViews"]
        .as_u64()
        .unwrap();
    let r = http()
        .post(format!("{nbase}/api/event"))
        .header("user-agent", UA)
        .body(
            json!({"n": "pageview", "u": "https://example.com/after-the-move", "d": "example.com"})
                .to_string(),
        )
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while live(&nbase, "example.com")["totalPageViews"]
        .as_u64()
        .unwrap()
        != before + 1
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the new page view never counted"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // A visitor of the copied history comes back today: counted again only if its last
    // visit was on another day (rollups seed today from the copied rows too).
    let last = events
        .iter()
        .filter(|e| e["d"] == "example.com" && e.get("sid").is_some())
        .max_by_key(|e| e["timestamp"].as_str().unwrap().to_string())
        .unwrap();
    let same_day = last["timestamp"].as_str().unwrap()[..10] == iso(now_ms())[..10];
    let today = json!({"site_id": "example.com", "date_range": "day", "metrics": ["visitors", "pageviews"]});
    let (_, before) = post(&nbase, "/api/v2/query", TOKEN, &today);
    let r = http()
        .post(format!("{nbase}/api/event"))
        .header("user-agent", UA)
        .body(json!({"n": "pageview", "u": "https://example.com/back-again", "d": "example.com", "sid": last["sid"]}).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let (_, after) = post(&nbase, "/api/v2/query", TOKEN, &today);
    let m = |v: &Value, i: usize| v["results"][0]["metrics"][i].as_u64().unwrap();
    assert_eq!(m(&after, 1), m(&before, 1) + 1, "{before} → {after}");
    assert_eq!(
        m(&after, 0),
        m(&before, 0) + u64::from(!same_day),
        "{before} → {after}"
    );
    let (_, all) = post(&nbase, "/api/v2/query", TOKEN, &queries("example.com")[0]);
    assert_eq!(
        all["results"][0]["metrics"][2].as_u64().unwrap(),
        want[0][0]["metrics"][2].as_u64().unwrap() + 2
    );
    stop(node);
    let _ = http()
        .post(env("FOOTFALL_TEST_CLICKHOUSE"))
        .body(format!("DROP DATABASE IF EXISTS footfall_{tag}"))
        .send();
}
