//! The SSE stream: full value on connect, a fresh one after each commit, versions growing.

mod common;
use common::sse::Sse;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_pushes_a_fresh_snapshot_after_each_write() {
    let s = TestServer::start().await;
    let resp = Sse::open(&s, "example.com", Some(TOKEN)).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut sse = Sse::new(resp);
    let first = sse.next().await;
    assert_eq!(first["totalPageViews"], 0);
    let v0 = first["version"].as_u64().unwrap();

    s.pageview("/a", "1.1.1.1").await;
    let second = sse.next().await;
    assert!(second["version"].as_u64().unwrap() > v0);
    assert_eq!(second["totalPageViews"], 1);
    assert_eq!(second["activeByPath"][0]["path"], "/a");

    let mut last = second["version"].as_u64().unwrap();
    for i in 0..5 {
        s.pageview(&format!("/burst/{i}"), "1.1.1.1").await;
    }
    // Coalesced: fewer snapshots than writes may arrive, but they only move forward and
    // the last one has everything.
    loop {
        let snap = sse.next().await;
        let v = snap["version"].as_u64().unwrap();
        assert!(v > last, "versions only grow");
        last = v;
        if snap["totalPageViews"] == 6 {
            break;
        }
    }
    assert_eq!(s.metric("footfall_sse_subscribers").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_reports_visitors_leaving() {
    let s = TestServer::start().await;
    s.pageview("/a", "1.1.1.1").await;
    let mut sse = Sse::new(Sse::open(&s, "example.com", Some(TOKEN)).await);
    assert_eq!(sse.next().await["activeVisitors"], 1);
    s.advance(2 * MIN);
    // The expiry task notices the clock moved on its next tick.
    let snap = sse.next().await;
    assert_eq!(snap["activeVisitors"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_requires_read_access() {
    let s = TestServer::start().await;
    assert_eq!(Sse::open(&s, "example.com", None).await.status(), 401);
    assert_eq!(Sse::open(&s, "public.example", None).await.status(), 200);
}
