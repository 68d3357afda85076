//! The live rules end to end: dedup, activity expiry, visits, durations, titles.

mod common;
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pageview_is_stored_and_counted_with_title() {
    let s = TestServer::start().await;
    let (status, body) = s.post("/api/event", json!({"n":"pageview","u":"https://example.com/blog/hello","d":"example.com","t":"Hello, world"}), "1.1.1.1").await;
    assert_eq!((status, body["status"].as_str()), (202, Some("accepted")));
    let st = s.stats().await;
    assert_eq!(st["totalPageViews"], 1);
    assert_eq!(st["uniqueVisitors"], 1);
    assert_eq!(st["visits"], 1);
    assert_eq!(st["bounceRate"], 100.0);
    assert_eq!(st["trackingSince"], T0);
    assert_eq!(page(&st, "/blog/hello").unwrap()["title"], "Hello, world");
    assert_eq!(st["activeVisitors"], 1);
    assert_eq!(
        st["activeByPath"],
        json!([{"path": "/blog/hello", "count": 1}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_window_edges() {
    let s = TestServer::start().await;
    s.pageview("/a", "1.1.1.1").await;
    s.advance(30 * MIN - 1);
    let (status, body) = s.pageview("/a", "1.1.1.1").await;
    assert_eq!((status, body["reason"].as_str()), (202, Some("duplicate")));
    assert_eq!(
        s.stats().await["totalPageViews"],
        1,
        "a repeat within 30 minutes counts once"
    );
    s.pageview("/a", "2.2.2.2").await;
    assert_eq!(
        s.stats().await["totalPageViews"],
        2,
        "another visitor is not a duplicate"
    );
    s.advance(1);
    s.pageview("/a", "1.1.1.1").await;
    assert_eq!(
        s.stats().await["totalPageViews"],
        3,
        "30 minutes after the counted view it counts again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_window_is_configurable_and_can_be_off() {
    let s = TestServer::start_with(|c| c.dedup_window_ms = 0).await;
    s.pageview("/a", "1.1.1.1").await;
    s.pageview("/a", "1.1.1.1").await;
    assert_eq!(s.stats().await["totalPageViews"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_visitors_expire_after_two_minutes() {
    let s = TestServer::start().await;
    let (status, _) = s
        .post(
            "/api/heartbeat",
            json!({"sessionId": "v1", "currentPath": "/a", "domain": "example.com"}),
            "1.1.1.1",
        )
        .await;
    assert_eq!(status, 202);
    s.advance(2 * MIN - 1);
    assert_eq!(s.stats().await["activeVisitors"], 1);
    s.advance(1);
    let st = s.stats().await;
    assert_eq!(
        st["activeVisitors"], 0,
        "two minutes without a heartbeat: no longer active"
    );
    assert_eq!(st["activeByPath"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_change_is_reflected_at_once() {
    let s = TestServer::start().await;
    s.post(
        "/api/pageview",
        json!({"path": "/a", "pageType": "blog", "sessionId": "v1", "domain": "example.com"}),
        "1.1.1.1",
    )
    .await;
    s.advance(1_000);
    s.post(
        "/api/heartbeat",
        json!({"sessionId": "v1", "currentPath": "/b", "domain": "example.com"}),
        "1.1.1.1",
    )
    .await;
    let st = s.stats().await;
    assert_eq!(
        st["activeByPath"],
        json!([{"path": "/b", "count": 1}]),
        "no 20-second lag"
    );
    assert_eq!(page(&st, "/a").unwrap()["pageType"], "blog");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visit_splits_after_thirty_minutes_without_events() {
    let s = TestServer::start().await;
    s.pageview("/a", "1.1.1.1").await;
    s.advance(30 * MIN);
    s.pageview("/b", "1.1.1.1").await;
    let st = s.stats().await;
    assert_eq!(st["visits"], 1, "30 minutes exactly: same visit");
    assert_eq!(st["bounceRate"], 0.0);
    assert_eq!(st["avgVisitDurationMs"], 30 * MIN);
    s.advance(30 * MIN + 1);
    s.pageview("/c", "1.1.1.1").await;
    let st = s.stats().await;
    assert_eq!(st["visits"], 2, "more than 30 minutes: a new visit");
    assert_eq!(st["uniqueVisitors"], 1);
    assert_eq!(st["bounceRate"], 50.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_from_next_pageview_then_from_last_heartbeat() {
    let s = TestServer::start().await;
    let pv = |path: &str| json!({"path": path, "sessionId": "v1", "domain": "example.com"});
    s.post("/api/pageview", pv("/a"), "1.1.1.1").await;
    s.advance(40_000);
    s.post("/api/pageview", pv("/b"), "1.1.1.1").await;
    let st = s.stats().await;
    assert_eq!(page(&st, "/a").unwrap()["avgTimeOnPageMs"], 40_000);
    assert_eq!(
        page(&st, "/b").unwrap()["avgTimeOnPageMs"],
        json!(null),
        "not measurable yet"
    );
    s.advance(30_000);
    s.post(
        "/api/heartbeat",
        json!({"sessionId": "v1", "currentPath": "/b", "domain": "example.com"}),
        "1.1.1.1",
    )
    .await;
    s.advance(30_000);
    s.post(
        "/api/heartbeat",
        json!({"sessionId": "v1", "currentPath": "/b", "domain": "example.com"}),
        "1.1.1.1",
    )
    .await;
    let st = s.stats().await;
    assert_eq!(
        page(&st, "/b").unwrap()["avgTimeOnPageMs"],
        60_000,
        "the last page lasts until the last heartbeat"
    );
    assert_eq!(st["avgVisitDurationMs"], 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engagement_event_measures_the_last_page() {
    let s = TestServer::start().await;
    s.pageview("/a", "1.1.1.1").await;
    s.advance(12_000);
    let (status, _) = s.post("/api/event", json!({"n":"engagement","u":"https://example.com/a","d":"example.com","sd":80,"e":11000}), "1.1.1.1").await;
    assert_eq!(status, 202);
    assert_eq!(
        page(&s.stats().await, "/a").unwrap()["avgTimeOnPageMs"],
        12_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_event_ends_a_bounce() {
    let s = TestServer::start().await;
    s.pageview("/a", "1.1.1.1").await;
    assert_eq!(s.stats().await["bounceRate"], 100.0);
    let (status, _) = s
        .post(
            "/api/event",
            json!({"n":"signup","u":"https://example.com/a","d":"example.com","p":{"plan":"pro"}}),
            "1.1.1.1",
        )
        .await;
    assert_eq!(status, 202);
    let st = s.stats().await;
    assert_eq!(st["bounceRate"], 0.0);
    assert_eq!(st["totalPageViews"], 1, "custom events are not page views");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitors_are_told_apart_by_ip_and_user_agent() {
    let s = TestServer::start().await;
    s.pageview("/", "1.1.1.1").await;
    s.pageview("/", "1.1.1.2").await;
    s.post_raw(
        "/api/event",
        json!({"n":"pageview","u":"https://example.com/","d":"example.com"}).to_string(),
        "1.1.1.1",
        FIREFOX,
    )
    .await;
    let st = s.stats().await;
    assert_eq!(st["uniqueVisitors"], 3);
    assert_eq!(page(&st, "/").unwrap()["title"], "Home");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visit_survives_midnight_and_old_salts_are_deleted() {
    // 23:50 UTC
    let s = TestServer::start().await;
    let midnight = (T0 / 86_400_000 + 1) * 86_400_000;
    s.clock.set(footfall_core::Timestamp(midnight - 10 * MIN));
    s.pageview("/a", "1.1.1.1").await;
    s.advance(20 * MIN);
    s.pageview("/b", "1.1.1.1").await;
    let st = s.stats().await;
    assert_eq!(
        (st["visits"].as_i64(), st["uniqueVisitors"].as_i64()),
        (Some(1), Some(1)),
        "the visit continues past midnight under yesterday's salt"
    );
    s.advance(2 * 86_400_000);
    s.pageview("/c", "1.1.1.1").await;
    assert_eq!(
        s.stats().await["uniqueVisitors"],
        2,
        "two days later the same IP and UA are a new visitor"
    );
    let mut s = s;
    s.stop().await;
    let store = footfall_store::DuckStore::open(s.dir.path()).unwrap();
    let days = store.salt_days().unwrap();
    let today = s.clock_now_day();
    assert!(
        days.iter().all(|d| *d >= today - 1),
        "salts older than yesterday are deleted: {days:?}"
    );
}

trait Day {
    fn clock_now_day(&self) -> i64;
}
impl Day for TestServer {
    fn clock_now_day(&self) -> i64 {
        use footfall_server::Clock;
        self.clock.now().day_number()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_geo_shows_in_visitor_locations() {
    let s = TestServer::start().await;
    s.post("/api/heartbeat", json!({"sessionId":"v1","currentPath":"/","domain":"example.com","city":"Paris","country":"FR","latitude":48.8566,"longitude":2.3522}), "1.1.1.1").await;
    s.post("/api/heartbeat", json!({"sessionId":"v2","currentPath":"/","domain":"example.com","city":"Paris","country":"FR","latitude":48.8566,"longitude":2.3522}), "1.1.1.2").await;
    let st = s.stats().await;
    assert_eq!(
        st["visitorLocations"],
        json!([{"latitude": 48.86, "longitude": 2.35, "city": "Paris", "country": "FR", "count": 2}])
    );
}
