//! Bad input gets a clear 4xx and changes nothing; valid-but-unwanted events get 202 and a
//! reason counter; nothing panics.

mod common;
use common::*;
use serde_json::json;

async fn assert_nothing_stored(s: &TestServer) {
    let st = s.stats().await;
    assert_eq!(
        (
            st["totalPageViews"].as_u64(),
            st["visits"].as_i64(),
            st["activeVisitors"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{st}"
    );
    assert_eq!(s.metric("footfall_events_ingested_total").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_rejected_with_a_named_problem() {
    let mut s = TestServer::start().await;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "/api/event",
            b"{\"n\":\"pageview\"".to_vec(),
            400,
            "not valid JSON",
        ),
        ("/api/event", b"[1,2]".to_vec(), 400, "JSON object"),
        (
            "/api/event",
            b"\"just a string\"".to_vec(),
            400,
            "JSON object",
        ),
        (
            "/api/event",
            b"{\"n\":\"pageview\",\"u\":\"https://example.com/\xff\",\"d\":\"example.com\"}"
                .to_vec(),
            400,
            "UTF-8",
        ),
        (
            "/api/event",
            br#"{"u":"https://example.com/","d":"example.com"}"#.to_vec(),
            400,
            "`name`",
        ),
        (
            "/api/event",
            br#"{"n":"pageview","d":"example.com"}"#.to_vec(),
            400,
            "`url`",
        ),
        (
            "/api/event",
            br#"{"n":"pageview","u":"https://example.com/"}"#.to_vec(),
            400,
            "`domain`",
        ),
        (
            "/api/event",
            br#"{"n":"pageview","u":"javascript:alert(1)","d":"example.com"}"#.to_vec(),
            400,
            "`url`",
        ),
        (
            "/api/event",
            format!(
                r#"{{"n":"{}","u":"https://example.com/","d":"example.com"}}"#,
                "x".repeat(121)
            )
            .into_bytes(),
            400,
            "longer than 120",
        ),
        (
            "/api/event",
            format!(
                r#"{{"n":"pageview","u":"https://example.com/{}","d":"example.com"}}"#,
                "a".repeat(2001)
            )
            .into_bytes(),
            400,
            "longer than 2000",
        ),
        (
            "/api/event",
            br#"{"n":"pageview","u":"https://example.com/","d":"example.com","p":{"a":[1]}}"#
                .to_vec(),
            400,
            "p.a",
        ),
        (
            "/api/event",
            br#"{"n":"pageview","u":"https://example.com/","d":"example.com","timestamp":1}"#
                .to_vec(),
            400,
            "batch route",
        ),
        (
            "/api/pageview",
            br#"{"path":"/a"}"#.to_vec(),
            400,
            "sessionId",
        ),
        (
            "/api/heartbeat",
            br#"{"sessionId":"x","currentPath":"/","latitude":"north"}"#.to_vec(),
            400,
            "latitude",
        ),
        (
            "/api/event",
            vec![b' '; 64 * 1024 + 1],
            413,
            "larger than 65536",
        ),
        ("/api/event", Vec::new(), 400, "not valid JSON"),
        (
            "/api/event",
            br#"{"n":"Purchase","u":"https://example.com/","d":"example.com","revenue":{"amount":"1e400","currency":"EUR"}}"#.to_vec(),
            400,
            "revenue.amount",
        ),
        (
            "/api/event",
            br#"{"n":"Purchase","u":"https://example.com/","d":"example.com","$":{"amount":5,"currency":"E\u0000R"}}"#.to_vec(),
            400,
            "$.currency",
        ),
        (
            "/api/event",
            br#"{"n":"pageview","u":"https://example.com/","d":"example.com","revenue":{"amount":5,"currency":"EUR"}}"#.to_vec(),
            400,
            "only custom events",
        ),
        (
            "/track",
            br#"{"type":"track","payload":{"name":"x"}}"#.to_vec(),
            400,
            "openpanel-client-id",
        ),
        (
            "/track",
            br#"{"type":"track","payload":{"name":["x"]}}"#.to_vec(),
            400,
            "payload.name",
        ),
        (
            "/track",
            vec![b' '; 64 * 1024 + 1],
            413,
            "larger than 65536",
        ),
    ];
    for (path, body, status, needle) in cases {
        let (got, err) = s.post_raw(path, body, "1.1.1.1", CHROME).await;
        assert_eq!(got, status, "{path}: {err}");
        let msg = err["error"]
            .as_str()
            .unwrap_or_else(|| panic!("JSON error for {path}: {err}"));
        assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
    }
    assert_nothing_stored(&s).await;
    // Stopped before the process exits: DuckDB's threads must not outlive main.
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_unknown_sites_and_foreign_hostnames_are_dropped_and_counted() {
    let mut s = TestServer::start().await;
    let ev = json!({"n":"pageview","u":"https://example.com/","d":"example.com"}).to_string();
    let (status, body) = s
        .post_raw(
            "/api/event",
            ev.clone(),
            "1.1.1.1",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        )
        .await;
    assert_eq!((status, body["reason"].as_str()), (202, Some("bot")));
    let (_, body) = s.post_raw("/api/event", ev.clone(), "1.1.1.1", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36").await;
    assert_eq!(body["reason"], "bot");
    let (_, body) = s.post_raw("/api/event", ev, "1.1.1.1", "").await;
    assert_eq!(body["reason"], "bot", "no user agent at all");
    let (status, body) = s
        .post(
            "/api/event",
            json!({"n":"pageview","u":"https://unknown.org/","d":"unknown.org"}),
            "1.1.1.1",
        )
        .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (202, Some("unknown_site"))
    );
    let (_, body) = s
        .post(
            "/api/event",
            json!({"n":"pageview","u":"https://evil.org/","d":"example.com"}),
            "1.1.1.1",
        )
        .await;
    assert_eq!(body["reason"], "hostname_mismatch");
    let (_, body) = s
        .post(
            "/api/pageview",
            json!({"path":"/","sessionId":"x"}),
            "1.1.1.1",
        )
        .await;
    assert_eq!(
        body["reason"], "unknown_site",
        "the seed's call without domain or Origin has no site"
    );
    assert_eq!(
        s.metric("footfall_events_dropped_total{reason=\"bot\"}")
            .await,
        3.0
    );
    assert_eq!(
        s.metric("footfall_events_dropped_total{reason=\"unknown_site\"}")
            .await,
        2.0
    );
    assert_eq!(
        s.metric("footfall_events_dropped_total{reason=\"hostname_mismatch\"}")
            .await,
        1.0
    );
    assert_nothing_stored(&s).await;
    // A subdomain of a registered site is accepted.
    let (_, body) = s
        .post(
            "/api/event",
            json!({"n":"pageview","u":"https://blog.example.com/","d":"example.com"}),
            "1.1.1.1",
        )
        .await;
    assert_eq!(body["status"], "accepted");
    // Stopped before the process exits: DuckDB's threads must not outlive main.
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_ish_and_unicode_values_are_stored_literally() {
    let mut s = TestServer::start().await;
    let title = "'); DROP TABLE events; -- ☃ \"quoted\"";
    let path = "/a'%20OR%201=1--";
    let (status, _) = s.post("/api/event", json!({"n":"pageview","u":format!("https://example.com{path}"),"d":"example.com","t":title}), "1.1.1.1").await;
    assert_eq!(status, 202);
    let st = s.stats().await;
    let p = &st["pageStats"][0];
    assert_eq!(p["title"], title);
    assert_eq!(p["path"], "/a'%20OR%201=1--");
    s.pageview("/b", "1.1.1.1").await;
    assert_eq!(
        s.stats().await["totalPageViews"],
        2,
        "the events table is still there"
    );
    // Stopped before the process exits: DuckDB's threads must not outlive main.
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_requests_count_once() {
    let mut s = TestServer::start().await;
    let futs: Vec<_> = (0..64).map(|_| s.pageview("/same", "9.9.9.9")).collect();
    let results = futures::future::join_all(futs).await;
    assert!(results.iter().all(|(status, _)| *status == 202));
    let accepted = results
        .iter()
        .filter(|(_, b)| b["status"] == "accepted")
        .count();
    assert_eq!(
        accepted, 1,
        "exactly one of 64 simultaneous identical page views is recorded"
    );
    let st = s.stats().await;
    assert_eq!(st["totalPageViews"], 1);
    assert_eq!(st["visits"], 1);
    // Stopped before the process exits: DuckDB's threads must not outlive main.
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_routes_need_the_token_unless_the_site_is_public() {
    let mut s = TestServer::start().await;
    let get = |path: String, token: Option<&str>| {
        let mut r = s.http.get(format!("{}{path}", s.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(
        get("/api/stats/example.com/live".into(), None)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        get("/api/stats/example.com/live".into(), Some("wrong"))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        get("/api/stats/example.com/live".into(), Some(TOKEN))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get("/api/stats/public.example/live".into(), None)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get("/api/stats/nope.example/live".into(), Some(TOKEN))
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        get("/api/stats/bad%20site/live".into(), Some(TOKEN))
            .await
            .unwrap()
            .status(),
        400
    );
    // Stopped before the process exits: DuckDB's threads must not outlive main.
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_ingest_from_anywhere_and_reads_from_nowhere() {
    let mut s = TestServer::start().await;
    let pre = s
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/api/event", s.base))
        .header("origin", "https://example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(pre.status().is_success());
    assert_eq!(pre.headers()["access-control-allow-origin"], "*");
    let read = s
        .http
        .get(format!("{}/api/stats/example.com/live", s.base))
        .header("origin", "https://evil.org")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(read.headers().get("access-control-allow-origin").is_none());
    let pre = s
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/admin/sites", s.base),
        )
        .header("origin", "https://evil.org")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(pre.headers().get("access-control-allow-origin").is_none());
    // Stopped before the process exits: DuckDB's threads must not outlive main.
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_adds_sites_with_the_token_only() {
    let mut s = TestServer::start().await;
    let add = |token: Option<&str>, body: String| {
        let mut r = s
            .http
            .post(format!("{}/api/admin/sites", s.base))
            .body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    assert_eq!(
        add(None, r#"{"domain":"new.example"}"#.into())
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        add(Some(TOKEN), r#"{"domain":"not a domain"}"#.into())
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        add(Some(TOKEN), r#"{"domain":"new.example","extra":1}"#.into())
            .await
            .unwrap()
            .status(),
        400
    );
    let (_, body) = s
        .post(
            "/api/event",
            json!({"n":"pageview","u":"https://new.example/","d":"new.example"}),
            "1.1.1.1",
        )
        .await;
    assert_eq!(body["reason"], "unknown_site");
    assert_eq!(
        add(Some(TOKEN), r#"{"domain":"New.Example"}"#.into())
            .await
            .unwrap()
            .status(),
        201
    );
    let (_, body) = s
        .post(
            "/api/event",
            json!({"n":"pageview","u":"https://new.example/","d":"new.example"}),
            "1.1.1.1",
        )
        .await;
    assert_eq!(body["status"], "accepted");
    assert_eq!(s.live("new.example").await["totalPageViews"], 1);
    // Stopped before the process exits: DuckDB's threads must not outlive main.
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_are_off_without_a_token() {
    let mut s = TestServer::start_with(|c| c.admin_token = None).await;
    let r = s
        .http
        .post(format!("{}/api/admin/sites", s.base))
        .bearer_auth("anything")
        .body(r#"{"domain":"x.example"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Stopped before the process exits: DuckDB's threads must not outlive main.
    s.stop().await;
}
