//! Acknowledged means durable: restart keeps events, counters and visits in progress, and a
//! rebuild from storage gives exactly the counters live maintenance kept.

mod common;
use common::*;
use footfall_core::live::Counters;
use serde_json::{json, Value};

/// Drops sites whose counters are all zero (a site that only saw heartbeats).
fn normalized(mut c: Counters) -> Counters {
    c.sites.retain(|_, s| *s != Default::default());
    c
}

fn durable_view(st: &Value) -> Value {
    let mut v = st.clone();
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

/// A mixed workload: several visitors, visits, repeats, heartbeats, engagement, custom
/// events, a bot, and out-of-order batch events with their own timestamps.
async fn workload(s: &TestServer) {
    for v in 0..6 {
        let ip = format!("10.0.0.{v}");
        s.post("/api/event", json!({"n":"pageview","u":"https://example.com/","d":"example.com","t":"Home page","r":"https://news.ycombinator.com/"}), &ip).await;
        s.advance(7_000);
        s.pageview(&format!("/post/{}", v % 3), &ip).await;
        s.pageview(&format!("/post/{}", v % 3), &ip).await; // duplicate
        if v % 2 == 0 {
            s.event("signup", "/post/0", &ip).await;
        }
    }
    s.post(
        "/api/heartbeat",
        json!({"sessionId":"seed-1","currentPath":"/about","domain":"example.com"}),
        "10.1.0.1",
    )
    .await;
    s.post("/api/pageview", json!({"path":"/about","pageType":"page","sessionId":"seed-1","domain":"example.com","title":"About"}), "10.1.0.1").await;
    s.advance(30_000);
    s.post(
        "/api/heartbeat",
        json!({"sessionId":"seed-1","currentPath":"/about","domain":"example.com"}),
        "10.1.0.1",
    )
    .await;
    s.post(
        "/api/event",
        json!({"n":"engagement","u":"https://example.com/","d":"example.com","sd":50,"e":4000}),
        "10.0.0.1",
    )
    .await;
    let now = {
        use footfall_server::Clock;
        s.clock.now().0
    };
    let batch = json!([
        {"n":"pageview","u":"https://example.com/x","d":"example.com","timestamp": now - 5 * MIN, "ip":"10.2.0.1","user_agent": CHROME},
        {"n":"pageview","u":"https://example.com/y","d":"example.com","timestamp": now - 9 * MIN, "ip":"10.2.0.1","user_agent": CHROME},
        {"n":"pageview","u":"https://example.com/z","d":"example.com","timestamp": now - 7 * MIN, "ip":"10.2.0.1","user_agent": CHROME},
        {"n":"pageview","u":"https://example.com/x","d":"example.com","timestamp": now - 200 * MIN, "ip":"10.2.0.1","user_agent": CHROME},
    ]);
    let r = s
        .http
        .post(format!("{}/api/events", s.base))
        .bearer_auth(TOKEN)
        .body(batch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    s.advance(MIN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_data_counters_and_visits_in_progress() {
    let mut s = TestServer::start().await;
    workload(&s).await;
    let before = s.stats().await;
    assert!(before["totalPageViews"].as_u64().unwrap() >= 10, "{before}");
    s.restart().await;
    let after = s.stats().await;
    assert_eq!(durable_view(&after), durable_view(&before));

    // The visit in progress continues, and dedup still holds, across the restart.
    let (_, body) = s.pageview("/", "10.0.0.0").await;
    assert_eq!(body["reason"], "duplicate");
    s.pageview("/new-after-restart", "10.0.0.0").await;
    let st = s.stats().await;
    assert_eq!(
        st["visits"], before["visits"],
        "no new visit for a visitor seen a minute ago"
    );
    assert_eq!(
        st["totalPageViews"].as_u64(),
        before["totalPageViews"].as_u64().map(|n| n + 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_gives_the_same_counters_as_live_maintenance() {
    let mut s = TestServer::start().await;
    workload(&s).await;
    let live = s.running().state.read.live.counters();
    s.stop().await;
    let store = footfall_store::DuckStore::open(s.dir.path()).unwrap();
    for chunk in [1, 3, 1_000_000] {
        let mut progress = Vec::new();
        let rebuilt = store
            .rebuild_counters(chunk, |p| {
                progress.push(p);
                true
            })
            .unwrap();
        assert_eq!(
            normalized(rebuilt),
            normalized(live.clone()),
            "chunk size {chunk}"
        );
        let last = progress.last().unwrap();
        assert_eq!(last.done, last.total, "progress reaches the end");
        if chunk == 1 {
            assert_eq!(
                progress.len() as u64,
                last.total,
                "one progress report per chunk"
            );
        }
    }
    let site = live
        .sites
        .get(&footfall_core::SiteId::parse("example.com").unwrap())
        .unwrap();
    assert!(
        site.paths.values().any(|p| p.duration_count > 0),
        "the workload measured durations"
    );
    assert!(
        site.bounces > 0 && site.bounces < site.visits,
        "the workload has bounces and non-bounces"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_commits_every_acknowledged_event() {
    let mut s = TestServer::start().await;
    let ips: Vec<String> = (0..200)
        .map(|i| format!("10.9.{}.{}", i / 250, i % 250))
        .collect();
    let futs: Vec<_> = ips.iter().map(|ip| s.pageview("/load", ip)).collect();
    let results = futures::future::join_all(futs).await;
    let acked = results
        .iter()
        .filter(|(st, b)| *st == 202 && b["status"] == "accepted")
        .count();
    s.stop().await;
    let store = footfall_store::DuckStore::open(s.dir.path()).unwrap();
    assert_eq!(store.count_events("example.com").unwrap(), acked as u64);
    assert_eq!(acked, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_route_needs_the_token_and_honours_timestamps() {
    let s = TestServer::start().await;
    let one = json!([{"n":"pageview","u":"https://example.com/a","d":"example.com","timestamp":"2026-03-10T11:00:00Z","ip":"5.5.5.5","user_agent":CHROME}]).to_string();
    let r = s
        .http
        .post(format!("{}/api/events", s.base))
        .body(one.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .http
        .post(format!("{}/api/events", s.base))
        .bearer_auth(TOKEN)
        .body(one)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["stored"], 1);
    assert_eq!(
        s.stats().await["trackingSince"],
        T0 - 60 * MIN,
        "the event's own timestamp is used"
    );

    let mixed = json!([
        {"n":"pageview","u":"https://example.com/b","d":"example.com","ip":"5.5.5.6","user_agent":CHROME},
        {"n":"pageview","u":"https://example.com/b","d":"example.com","ip":"5.5.5.7","user_agent":"Googlebot/2.1 (+http://www.google.com/bot.html)"},
        {"n":"pageview","u":"https://example.com/b","d":"nope.example","ip":"5.5.5.8","user_agent":CHROME},
        {"n":"pageview","u":"https://example.com/b","d":"example.com","ip":"not-an-ip","user_agent":CHROME}
    ]);
    let r = s
        .http
        .post(format!("{}/api/events", s.base))
        .bearer_auth(TOKEN)
        .body(mixed.to_string())
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"received": 4, "stored": 1, "dropped": {"bot": 1, "unknown_site": 1, "invalid_ip": 1}})
    );

    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({"n":"pageview","u":"https://example.com/","d":"example.com"}))
        .collect();
    let r = s
        .http
        .post(format!("{}/api/events", s.base))
        .bearer_auth(TOKEN)
        .body(Value::Array(too_many).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("at most 1000"));
    let bad =
        json!([{"n":"pageview","u":"https://example.com/","d":"example.com"}, {"n":"pageview"}]);
    let r = s
        .http
        .post(format!("{}/api/events", s.base))
        .bearer_auth(TOKEN)
        .body(bad.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "one bad event rejects the whole batch");
    assert_eq!(
        s.stats().await["totalPageViews"],
        2,
        "and stores nothing of it"
    );
}
