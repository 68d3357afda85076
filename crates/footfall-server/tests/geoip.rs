//! Geo from a real MaxMind-format database. The test script fetches one and sets
//! FOOTFALL_TEST_GEOIP_DB; without it this test fails rather than skips.

mod common;
use common::*;
use serde_json::json;

fn db() -> std::path::PathBuf {
    let p = std::env::var("FOOTFALL_TEST_GEOIP_DB")
        .expect("FOOTFALL_TEST_GEOIP_DB must name a .mmdb file (scripts/test fetches one)");
    let p = std::path::PathBuf::from(p);
    assert!(p.exists(), "{} does not exist", p.display());
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_comes_from_the_database_and_the_ip_is_not_stored() {
    let path = db();
    let s = TestServer::start_with(|c| c.geoip_db = Some(path)).await;
    s.pageview("/", "81.2.69.142").await;
    let st = s.stats().await;
    let loc = &st["visitorLocations"][0];
    assert_eq!(loc["country"], "GB", "{st}");
    assert!(loc["latitude"].as_f64().unwrap() > 49.0 && loc["latitude"].as_f64().unwrap() < 60.0);
    assert!(loc["longitude"].as_f64().unwrap() > -8.0 && loc["longitude"].as_f64().unwrap() < 2.0);

    // An address the database doesn't know: no location, still counted.
    s.pageview("/", "10.1.2.3").await;
    assert_eq!(s.stats().await["totalPageViews"], 2);

    let mut s = s;
    s.stop().await;
    // Neither the IP nor the user agent is anywhere in the database file.
    let bytes = std::fs::read(s.dir.path().join("footfall.duckdb")).unwrap();
    let wal = std::fs::read(s.dir.path().join("footfall.duckdb.wal")).unwrap_or_default();
    for needle in ["81.2.69.142", "10.1.2.3", CHROME] {
        assert!(
            !contains(&bytes, needle.as_bytes()) && !contains(&wal, needle.as_bytes()),
            "{needle} found in storage"
        );
    }
    let store = footfall_store::DuckStore::open(s.dir.path()).unwrap();
    assert_eq!(store.count_events("example.com").unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_headers_give_location_without_a_database() {
    let s = TestServer::start().await;
    let r = s
        .http
        .post(format!("{}/api/event", s.base))
        .header("user-agent", CHROME)
        .header("cf-ipcountry", "DE")
        .header("cf-ipcity", "Berlin")
        .header("cf-iplatitude", "52.52")
        .header("cf-iplongitude", "13.40")
        .body(json!({"n":"pageview","u":"https://example.com/","d":"example.com"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let st = s.stats().await;
    assert_eq!(
        st["visitorLocations"],
        json!([{"latitude": 52.52, "longitude": 13.4, "city": "Berlin", "country": "DE", "count": 1}])
    );
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
