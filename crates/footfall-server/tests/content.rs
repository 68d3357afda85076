//! The content catalogue over HTTP: set with PUT (JSON or a sitemap), read back, applied to
//! the live stats and pushed to open streams at once, kept across restarts — and hostile
//! documents refused with nothing changed.

mod common;
use common::sse::Sse;
use common::*;
use serde_json::{json, Value};

async fn put(s: &TestServer, body: impl Into<reqwest::Body>, token: Option<&str>) -> (u16, Value) {
    let mut r = s
        .http
        .put(format!("{}/api/sites/example.com/content", s.base))
        .body(body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// (path, title, type, views) of the live stats' pages.
fn pages(live: &Value) -> Vec<(String, String, String, u64)> {
    live["pageStats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().to_string(),
                p["title"].as_str().unwrap().to_string(),
                p["pageType"].as_str().unwrap().to_string(),
                p["views"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_names_counts_and_lists_pages_in_the_live_stats() {
    let mut s = TestServer::start().await;
    for (ip, path, title) in [
        ("9.0.0.1", "/blog/a", "What the page said"),
        ("9.0.0.2", "/about", "About"),
    ] {
        let (status, _) = s
            .post("/api/event", json!({"n": "pageview", "u": format!("https://example.com{path}"), "d": "example.com", "t": title}), ip)
            .await;
        assert_eq!(status, 202);
    }
    let before = s.live("example.com").await;
    assert_eq!(
        (
            before["publishedPosts"].as_u64(),
            before["publishedPages"].as_u64()
        ),
        (Some(0), Some(0))
    );
    let mut sse = Sse::new(Sse::open(&s, "example.com", Some(TOKEN)).await);
    let first = sse.next().await;

    let catalogue = json!([
        {"path": "/blog/a", "title": "A post", "type": "post"},
        {"path": "/blog/b", "title": "Not read yet", "type": "post"},
        {"path": "/about", "type": "page"},
        {"path": "/draft", "title": "Draft", "type": "page", "published": false},
        {"path": "/guide", "title": "Guide", "type": "guide"}
    ]);
    let (status, v) = put(&s, catalogue.to_string(), Some(TOKEN)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        json!({"site": "example.com", "revision": 1, "entries": 5, "posts": 2, "pages": 2, "skipped": 0})
    );

    // Open dashboards hear of it at once, with no new event.
    let pushed = sse.next().await;
    assert!(
        pushed["version"].as_u64() > first["version"].as_u64(),
        "{pushed}"
    );
    assert_eq!(
        (
            pushed["publishedPosts"].as_u64(),
            pushed["publishedPages"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let live = s.live("example.com").await;
    assert_eq!(live["version"], pushed["version"]);
    let mut got = pages(&live);
    got.sort();
    let row = |p: &str, t: &str, k: &str, v: u64| (p.to_string(), t.to_string(), k.to_string(), v);
    assert_eq!(
        got,
        [
            // No catalogue title: the page's own.
            row("/about", "About", "page", 1),
            row("/blog/a", "A post", "post", 1),
            row("/blog/b", "Not read yet", "post", 0),
            row("/guide", "Guide", "guide", 0),
        ],
        "unpublished pages are not listed"
    );
    let back: Value = s
        .http
        .get(format!("{}/api/sites/example.com/content", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(back["revision"], 1);
    let paths: Vec<&str> = back["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/about", "/blog/a", "/blog/b", "/draft", "/guide"]);

    // Hostile or broken documents: a clear 4xx, and the catalogue as it was.
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><urlset><url><loc>https://example.com/&lol1;</loc></url></urlset>"#;
    let external = r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><urlset><url><loc>https://example.com/&xxe;</loc></url></urlset>"#;
    let huge = vec![b' '; footfall_core::catalogue::MAX_BYTES + 1];
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (laughs.as_bytes().to_vec(), 400, "DTD"),
        (external.as_bytes().to_vec(), 400, "DTD"),
        (
            b"<urlset><url><loc>https://example.com/&nope;</loc></url></urlset>".to_vec(),
            400,
            "unknown entity",
        ),
        (
            b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><urlset/>".to_vec(),
            400,
            "UTF-8",
        ),
        (vec![0xff, 0xfe, b'<', 0, b'u', 0], 400, "UTF-8"),
        (
            br#"[{"path": "nope", "type": "post"}]"#.to_vec(),
            400,
            "[0].path",
        ),
        (
            br#"[{"path": "/a", "type": "post", "owner": "x"}]"#.to_vec(),
            400,
            "unknown field",
        ),
        (
            b"<html><body>hi</body></html>".to_vec(),
            400,
            "not a catalogue",
        ),
        (huge, 413, "larger than"),
    ];
    for (body, want, needle) in cases {
        let (status, e) = put(&s, body, Some(TOKEN)).await;
        assert_eq!(status, want, "{e}");
        assert!(
            e["error"].as_str().unwrap_or("").contains(needle),
            "{e} should mention {needle}"
        );
    }
    assert_eq!(put(&s, catalogue.to_string(), None).await.0, 401);
    let live = s.live("example.com").await;
    assert_eq!(live["version"], pushed["version"], "nothing changed");
    assert_eq!(live["publishedPosts"], 2);
    // A Stats API key reads; only one with the write scope sets the catalogue.
    let key = |scopes: Value| {
        let s = &s;
        async move {
            let r = s
                .http
                .post(format!("{}/api/admin/keys", s.base))
                .bearer_auth(TOKEN)
                .json(&json!({"sites": ["example.com"], "scopes": scopes}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (status, v["key"].as_str().unwrap_or("").to_string())
        }
    };
    let (_, reader) = key(json!([])).await;
    assert_eq!(put(&s, catalogue.to_string(), Some(&reader)).await.0, 403);
    assert_eq!(key(json!(["content:delete"])).await.0, 400);
    let (status, writer) = key(json!(["content:write"])).await;
    assert_eq!(status, 201);
    let (status, v) = put(&s, catalogue.to_string(), Some(&writer)).await;
    assert_eq!((status, v["revision"].as_u64()), (200, Some(2)), "{v}");

    // A sitemap: its URLs on this site are pages; others are left out.
    let sitemap = r#"<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>https://example.com/</loc></url>
  <url><loc>https://example.com/blog/a</loc></url>
  <url><loc>https://elsewhere.org/x</loc></url>
</urlset>"#;
    let (status, v) = put(&s, sitemap, Some(TOKEN)).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (
            v["revision"].as_u64(),
            v["pages"].as_u64(),
            v["skipped"].as_u64()
        ),
        (Some(3), Some(2), Some(1))
    );
    let live = s.live("example.com").await;
    assert_eq!(
        (
            live["publishedPosts"].as_u64(),
            live["publishedPages"].as_u64()
        ),
        (Some(0), Some(2))
    );

    // Kept across a restart.
    s.restart().await;
    let live = s.live("example.com").await;
    assert_eq!(live["publishedPages"], 2);
    let mut got = pages(&live);
    got.sort();
    assert_eq!(got[0], row("/", "/", "page", 0));
    s.stop().await;
}
