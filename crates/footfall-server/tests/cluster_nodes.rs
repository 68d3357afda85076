//! Two cluster nodes (Redis, ClickHouse, PostgreSQL) behind no load balancer but taking
//! requests alternately, against one embedded server fed the same events: the Stats API
//! and the live stats answer the same on both nodes as on the embedded server.
//!
//! Needs FOOTFALL_TEST_REDIS, FOOTFALL_TEST_CLICKHOUSE and FOOTFALL_TEST_POSTGRES (set by
//! `scripts/test`); fails loudly without them.

mod common;
use common::*;
use footfall_server::config::ClusterConfig;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test"))
}

/// A fresh PostgreSQL database, dropped at the end.
struct Pg {
    name: String,
}

impl Pg {
    /// The blocking client runs its own runtime: call it off the test's.
    fn new() -> Pg {
        std::thread::spawn(Pg::create).join().unwrap()
    }

    fn create() -> Pg {
        let name = format!("footfall_nodes_{:08x}", rand::random::<u32>());
        let mut admin = postgres::Client::connect(&env("FOOTFALL_TEST_POSTGRES"), postgres::NoTls)
            .expect("connect to FOOTFALL_TEST_POSTGRES");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        Pg { name }
    }

    fn url(&self) -> String {
        let base = env("FOOTFALL_TEST_POSTGRES");
        let (server, _) = base.rsplit_once('/').unwrap();
        format!("{server}/{}", self.name)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Off the test's runtime, like the connect.
        let _ = std::thread::spawn(move || {
            if let Ok(mut admin) =
                postgres::Client::connect(&env("FOOTFALL_TEST_POSTGRES"), postgres::NoTls)
            {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        })
        .join();
    }
}

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

async fn metrics_text(s: &TestServer) -> String {
    let resp = s.http.get(format!("{}/metrics", s.base)).send().await;
    resp.unwrap().text().await.unwrap()
}

/// The live fields that must agree (the version is per node).
fn live_view(v: &Value) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().remove("version");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_answer_what_one_embedded_server_answers() {
    let pg = Pg::new();
    let prefix = format!("n{:08x}", rand::random::<u32>());
    let db = format!("footfall_nodes_{prefix}");
    let node = |name: &'static str| {
        let (pg, prefix, db) = (pg.url(), prefix.clone(), db.clone());
        move |c: &mut footfall_server::ServerConfig| {
            let mut k = ClusterConfig::new(
                env("FOOTFALL_TEST_REDIS"),
                env("FOOTFALL_TEST_CLICKHOUSE"),
                pg,
            );
            k.clickhouse_database = db;
            k.prefix = prefix;
            k.partitions = 3;
            k.node = name.into();
            k.owner_lease = Duration::from_secs(2);
            k.applier_lease = Duration::from_secs(5);
            c.cluster = Some(k);
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

    // The backlog is a metric on every node (sampled every 5 s; present from the start).
    let text = metrics_text(&a).await;
    assert!(text.contains("footfall_cluster_backlog_entries "), "{text}");
    assert!(!metrics_text(&e)
        .await
        .contains("footfall_cluster_backlog_entries"));

    let mut a = a;
    let mut b = b;
    a.stop().await;
    b.stop().await;
    let _ = reqwest::Client::new()
        .post(env("FOOTFALL_TEST_CLICKHOUSE"))
        .body(format!("DROP DATABASE IF EXISTS {db}"))
        .send()
        .await;
}
