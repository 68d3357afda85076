//! OpenPanel's `/track` with a per-site client id: given by the admin API, unique across
//! sites, survives a restart, and removed again; the site's domain works throughout.

mod common;
use common::*;
use serde_json::{json, Value};

/// A screen view of `path` on example.com, sent with `client_id`.
async fn track(s: &TestServer, client_id: &str, path: &str, ip: &str) -> (u16, Value) {
    track_url(s, client_id, &format!("https://example.com{path}"), ip).await
}

async fn track_url(s: &TestServer, client_id: &str, url: &str, ip: &str) -> (u16, Value) {
    let body =
        json!({"type": "track", "payload": {"name": "screen_view", "properties": {"__path": url}}});
    let resp = s
        .http
        .post(format!("{}/track", s.base))
        .header("content-type", "application/json")
        .header("user-agent", CHROME)
        .header("x-forwarded-for", ip)
        .header("openpanel-client-id", client_id)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn admin_site(s: &TestServer, body: Value) -> (u16, Value) {
    let resp = s
        .http
        .post(format!("{}/api/admin/sites", s.base))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn sites(s: &TestServer) -> Value {
    let resp = s
        .http
        .get(format!("{}/api/admin/sites", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    resp.json::<Value>().await.unwrap()["sites"].clone()
}

fn page_views(stats: &Value, path: &str) -> u64 {
    page(stats, path).map_or(0, |p| p["views"].as_u64().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_answers_to_its_openpanel_client_id() {
    let mut s = TestServer::start().await;
    let (status, body) = admin_site(
        &s,
        json!({"domain": "example.com", "openpanel_client_id": "op-5f0c"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["openpanel_client_id"], "op-5f0c");

    // By its client id and by its domain.
    assert_eq!(
        track(&s, "op-5f0c", "/a", "1.0.0.1").await.1["status"],
        "accepted"
    );
    assert_eq!(
        track(&s, "example.com", "/b", "1.0.0.2").await.1["status"],
        "accepted"
    );
    let stats = s.stats().await;
    assert_eq!((page_views(&stats, "/a"), page_views(&stats, "/b")), (1, 1));

    // Another site can't take it, nor can a new one be created with it: nothing changes.
    let (status, body) = admin_site(
        &s,
        json!({"domain": "other.example", "openpanel_client_id": "op-5f0c"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("example.com"),
        "{body}"
    );
    let listed = sites(&s).await;
    assert!(
        !listed
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["domain"] == "other.example"),
        "{listed}"
    );
    // Nor another site's domain, which already names that site.
    let (status, body) = admin_site(
        &s,
        json!({"domain": "example.com", "openpanel_client_id": "public.example"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    // Ids that can't travel in a header are refused.
    for bad in ["has space", "é", "a.com,b.com", &"x".repeat(129)] {
        let (status, body) = admin_site(
            &s,
            json!({"domain": "example.com", "openpanel_client_id": bad}),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // Kept across a restart.
    s.restart().await;
    assert_eq!(
        track(&s, "op-5f0c", "/a", "1.0.0.3").await.1["status"],
        "accepted"
    );
    assert_eq!(page_views(&s.stats().await, "/a"), 2);
    let listed = sites(&s).await;
    let me = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["domain"] == "example.com")
        .unwrap();
    assert_eq!(me["openpanel_client_id"], "op-5f0c");

    // Removed: the id names no site any more; the domain still does.
    let (status, _) = admin_site(
        &s,
        json!({"domain": "example.com", "openpanel_client_id": ""}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = track(&s, "op-5f0c", "/a", "1.0.0.4").await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (202, Some("unknown_site"))
    );
    assert_eq!(
        track(&s, "example.com", "/c", "1.0.0.5").await.1["status"],
        "accepted"
    );
    let stats = s.stats().await;
    assert_eq!((page_views(&stats, "/a"), page_views(&stats, "/c")), (2, 1));
    // Now free for another site.
    let (status, body) = admin_site(
        &s,
        json!({"domain": "other.example", "openpanel_client_id": "op-5f0c"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // An id that is the domain of a site added later: the domain names its own site.
    let (status, _) = admin_site(
        &s,
        json!({"domain": "example.com", "openpanel_client_id": "late.example"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = admin_site(&s, json!({"domain": "late.example"})).await;
    assert_eq!(status, 201);
    let before = page_views(&s.stats().await, "/d");
    let (_, answer) = track_url(&s, "late.example", "https://late.example/d", "1.0.0.7").await;
    assert_eq!(answer["status"], "accepted", "{answer}");
    // Not counted on example.com, which holds the id.
    assert_eq!(page_views(&s.stats().await, "/d"), before);
    assert_eq!(page_views(&s.live("late.example").await, "/d"), 1);
}
