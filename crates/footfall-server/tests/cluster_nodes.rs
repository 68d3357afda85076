//! Two cluster nodes (Redis, ClickHouse, PostgreSQL) behind no load balancer but taking
//! requests alternately, against one embedded server fed the same events: the Stats API
//! and the live stats answer the same on both nodes as on the embedded server.
//!
//! Needs FOOTFALL_TEST_REDIS, FOOTFALL_TEST_CLICKHOUSE and FOOTFALL_TEST_POSTGRES (set by
//! `scripts/test`); fails loudly without them.

mod common;
use common::cluster::{eventually, Cluster};
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn v2(s: &TestServer, body: Value) -> Value {
    let resp = s
        .http
        .post(format!("{}/api/v2/query", s.base))
        .bearer_auth(TOKEN)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{body}");
    resp.json().await.unwrap()
}

/// A new Stats API key for example.com, made on `s` with the admin token.
async fn make_key(s: &TestServer) -> Value {
    let made = s
        .http
        .post(format!("{}/api/admin/keys", s.base))
        .bearer_auth(TOKEN)
        .body(json!({"sites": ["example.com"]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(made.status().as_u16(), 201);
    made.json().await.unwrap()
}

async fn metrics_text(s: &TestServer) -> String {
    let resp = s.http.get(format!("{}/metrics", s.base)).send().await;
    resp.unwrap().text().await.unwrap()
}

const PASSWORD: &str = "correct horse battery staple";

/// Stats API requests per key and hour, in the nodes.
const RATE: u32 = 20;

/// The live fields that must agree (the version is per node).
fn live_view(v: &Value) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().remove("version");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_answer_what_one_embedded_server_answers() {
    let cluster = Cluster::new();
    let node = |name: &str| {
        let node = cluster.node(name, 3);
        move |c: &mut footfall_server::ServerConfig| {
            node(c);
            c.api_rate_limit_per_hour = RATE;
        }
    };
    let a = TestServer::start_with(node("a")).await;
    let b = TestServer::start_with(node("b")).await;
    let e = TestServer::start().await;

    // 90 page views from 23 visitors over 8 pages, 20 s apart, every third one an
    // engagement; alternately to node A and node B, and each to the embedded server.
    for i in 0..90usize {
        let ip = format!("10.{}.0.{}", i % 3, i % 23);
        let path = format!("/p{}", (i * 7) % 8);
        let node = if i % 2 == 0 { &a } else { &b };
        let body = if i % 3 == 2 {
            json!({"n": "engagement", "u": format!("https://example.com{path}"), "d": "example.com", "e": 15_000})
        } else {
            json!({"n": "pageview", "u": format!("https://example.com{path}"), "d": "example.com", "r": "https://news.ycombinator.com/"})
        };
        let (status, _) = node.post("/api/event", body.clone(), &ip).await;
        assert_eq!(status, 202);
        let (status, _) = e.post("/api/event", body, &ip).await;
        assert_eq!(status, 202);
        for s in [&a, &b, &e] {
            s.advance(20_000);
        }
    }

    // Live: both nodes come to show what the embedded server shows.
    let want = live_view(&e.stats().await);
    assert!(want["totalPageViews"].as_u64().unwrap() > 0);
    for s in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = live_view(&s.stats().await);
            if got == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "live stats differ:\n{got:#}\nwant:\n{want:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Reports: the read barrier makes every acknowledged event visible at once.
    let queries = [
        json!({"site_id": "example.com", "date_range": "all", "metrics": ["visitors", "visits", "pageviews", "bounce_rate", "visit_duration", "views_per_visit"]}),
        json!({"site_id": "example.com", "date_range": "all", "metrics": ["visitors", "pageviews"], "dimensions": ["event:page"]}),
        json!({"site_id": "example.com", "date_range": "all", "metrics": ["visitors", "visits"], "dimensions": ["visit:source"]}),
        json!({"site_id": "example.com", "date_range": "all", "metrics": ["pageviews"], "dimensions": ["time:hour"]}),
        json!({"site_id": "example.com", "date_range": "all", "metrics": ["visitors"], "filters": [["is", "event:page", ["/p1", "/p3"]]]}),
    ];
    for q in queries {
        let want = v2(&e, q.clone()).await;
        assert!(!want["results"].as_array().unwrap().is_empty(), "{q}");
        assert_eq!(v2(&a, q.clone()).await["results"], want["results"], "{q}");
        assert_eq!(v2(&b, q.clone()).await["results"], want["results"], "{q}");
    }

    // Metadata changed on one node reaches the other at once: a key made on A works on B,
    // and once revoked on A stops working on B; a site added on A takes events on B.
    let made = make_key(&a).await;
    let (key, id) = (made["key"].as_str().unwrap(), made["id"].as_str().unwrap());
    let q = json!({"site_id": "example.com", "date_range": "all", "metrics": ["visitors"]});
    let with_key = |s: &TestServer| {
        let req = s
            .http
            .post(format!("{}/api/v2/query", s.base))
            .bearer_auth(key)
            .body(q.to_string());
        async move { req.send().await.unwrap().status().as_u16() }
    };
    eventually("the key to work on B", || with_key(&b), |st| *st == 200).await;
    let gone = a
        .http
        .delete(format!("{}/api/admin/keys/{id}", a.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(gone.status().is_success());
    eventually(
        "the key to stop working on B",
        || with_key(&b),
        |st| *st == 401,
    )
    .await;
    let added = a
        .http
        .post(format!("{}/api/admin/sites", a.base))
        .bearer_auth(TOKEN)
        .body(json!({"domain": "new.example"}).to_string())
        .send()
        .await
        .unwrap();
    assert!(added.status().is_success());
    let new_site_event = || async {
        let body = json!({"n": "pageview", "u": "https://new.example/", "d": "new.example"});
        b.post("/api/event", body, "10.9.9.9").await.1["status"].clone()
    };
    eventually("B to take the new site's events", new_site_event, |st| {
        st == "accepted"
    })
    .await;

    // A goal added on A is listed on B (the change goes round like a site's).
    let goal = a
        .http
        .post(format!("{}/api/admin/sites/new.example/goals", a.base))
        .bearer_auth(TOKEN)
        .body(json!({"name": "Signup", "event": "Signup"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(goal.status().as_u16(), 201);
    let goals_on_b = || async {
        b.http
            .get(format!("{}/api/admin/sites/new.example/goals", b.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()["goals"]
            .clone()
    };
    eventually("B to list A's goal", goals_on_b, |g| {
        *g == json!([{"name": "Signup", "event": "Signup"}])
    })
    .await;

    // A content catalogue set on A reaches B's live stats (and its streams' next update).
    let put = a
        .http
        .put(format!("{}/api/sites/new.example/content", a.base))
        .bearer_auth(TOKEN)
        .body(json!([{"path": "/launch", "title": "Launch", "type": "post"}]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let live_on_b = || async {
        b.http
            .get(format!("{}/api/stats/new.example/live", b.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    eventually("B to read A's catalogue", live_on_b, |v| {
        v["publishedPosts"] == 1
            && v["pageStats"].as_array().is_some_and(|p| {
                p.iter()
                    .any(|r| r["path"] == "/launch" && r["title"] == "Launch")
            })
    })
    .await;

    // A key's rate limit counts across nodes: RATE requests spread over A and B, then 429.
    let key = make_key(&a).await["key"].as_str().unwrap().to_string();
    let ask = |s: &TestServer| {
        let req = s
            .http
            .post(format!("{}/api/v2/query", s.base))
            .bearer_auth(&key)
            .body(q.to_string());
        async move { req.send().await.unwrap().status().as_u16() }
    };
    // Known on B once the first answer is a 200 (that request took a token).
    eventually("the second key on B", || ask(&b), |st| *st == 200).await;
    let mut allowed = 1;
    let mut limited = false;
    for i in 0..2 * RATE {
        match ask(if i % 2 == 0 { &a } else { &b }).await {
            200 => allowed += 1,
            429 => {
                limited = true;
                break;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(limited, "never limited");
    assert_eq!(allowed, RATE, "one budget for both nodes");

    // The login brake counts across nodes: ten wrong passwords for one name from one
    // client, spread over A and B, and even the right one is refused on either.
    let added = a
        .http
        .post(format!("{}/api/admin/users", a.base))
        .bearer_auth(TOKEN)
        .json(&json!({"username": "ana", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(added.status().is_success());
    let login = |s: &TestServer, ip: &'static str, pw: &'static str| {
        let req = s
            .http
            .post(format!("{}/api/dashboard/login", s.base))
            .header("x-forwarded-for", ip)
            .json(&json!({"username": "ana", "password": pw}));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    eventually(
        "ana to exist on B",
        || login(&b, "198.51.100.1", PASSWORD),
        |st| *st == 200,
    )
    .await;
    // A dashboard login on A is a session on B; a share link made on A opens the site on
    // B, and once rotated on A the old link stops working on B.
    let r = a
        .http
        .post(format!("{}/api/dashboard/login", a.base))
        .header("x-forwarded-for", "198.51.100.2")
        .json(&json!({"username": "ana", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = r.json::<Value>().await.unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    let with_cookie = |s: &TestServer| {
        let req = s
            .http
            .get(format!("{}/api/dashboard/sites", s.base))
            .header("cookie", &cookie);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    eventually(
        "A's login to hold on B",
        || with_cookie(&b),
        |st| *st == 200,
    )
    .await;
    let share = || async {
        let r = a
            .http
            .post(format!("{}/api/dashboard/sites/example.com/share", a.base))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.json::<Value>().await.unwrap()["share_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let shared = |s: &TestServer, token: String| {
        let req = s.http.get(format!(
            "{}/api/stats/example.com/live?share={token}",
            s.base
        ));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let first = share().await;
    eventually(
        "the share link to open the site on B",
        || shared(&b, first.clone()),
        |st| *st == 200,
    )
    .await;
    let second = share().await;
    eventually(
        "the rotated-out link to stop working on B",
        || shared(&b, first.clone()),
        |st| *st != 200,
    )
    .await;
    assert_eq!(shared(&b, second.clone()).await, 200);

    for i in 0..10 {
        let node = if i % 2 == 0 { &a } else { &b };
        assert_eq!(login(node, "198.51.100.7", "wrong password").await, 401);
    }
    assert_eq!(login(&a, "198.51.100.7", PASSWORD).await, 429);
    assert_eq!(login(&b, "198.51.100.7", PASSWORD).await, 429);

    // The backlog is a metric on every node (sampled every 5 s; present from the start).
    let text = metrics_text(&a).await;
    assert!(text.contains("footfall_cluster_backlog_entries "), "{text}");
    assert!(!metrics_text(&e)
        .await
        .contains("footfall_cluster_backlog_entries"));

    // Each node counts what it acknowledged (45 page views and engagements each, and the
    // new site's one event on B); between them they hold every partition, in both roles.
    assert_eq!(a.metric("footfall_events_ingested_total ").await, 45.0);
    assert_eq!(b.metric("footfall_events_ingested_total ").await, 46.0);
    for role in ["sequencer", "applier"] {
        let line = format!("footfall_cluster_partitions_held{{role=\"{role}\"}} ");
        let held = || async { a.metric(&line).await + b.metric(&line).await };
        eventually(&format!("every partition held as {role}"), held, |n| {
            *n == 3.0
        })
        .await;
    }
    let sequenced = a.metric("footfall_cluster_sequenced_events_total ").await
        + b.metric("footfall_cluster_sequenced_events_total ").await;
    assert_eq!(sequenced, 91.0, "every acknowledged event sequenced once");

    let mut a = a;
    let mut b = b;
    a.stop().await;
    b.stop().await;
    cluster.drop_storage().await;
}
