//! A log write that fails (disk full, I/O error) answers 503, acknowledges nothing, and
//! leaves visit state as the log has it: once the fault clears, the same events count once,
//! and a restart agrees.

mod common;
use common::*;
use footfall_core::Timestamp;
use footfall_server::{start_with_log, ManualClock};
use footfall_store::LogOptions;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_log_write_is_503_and_counts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let fail = Arc::new(AtomicBool::new(false));
    let clock = ManualClock::new(Timestamp(T0));
    let options = || LogOptions {
        fail_writes: Some(fail.clone()),
        ..LogOptions::default()
    };
    let running = start_with_log(cfg.clone(), Arc::new(clock.clone()), options())
        .await
        .unwrap();
    let mut s = TestServer {
        base: format!("http://{}", running.addr),
        running: Some(running),
        clock,
        http: reqwest::Client::new(),
        dir,
        config: cfg,
    };

    assert_eq!(s.pageview("/a", "1.1.1.1").await.0, 202);
    let before = s.stats().await;

    fail.store(true, Ordering::SeqCst);
    let (status, body) = s.pageview("/b", "2.2.2.2").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("durable"),
        "{body}"
    );
    let (status, _) = s.pageview("/a", "1.1.1.1").await;
    assert_eq!(status, 503);
    let during = s.stats().await;
    assert_eq!(during["totalPageViews"], before["totalPageViews"]);
    assert_eq!(during["visits"], before["visits"]);
    assert_eq!(during["uniqueVisitors"], before["uniqueVisitors"]);
    assert_eq!(s.metric("footfall_flush_failures_total").await, 2.0);

    fail.store(false, Ordering::SeqCst);
    // The refused page view left no trace: sent again, it is new, not a duplicate, and its
    // visitor's visit is new too.
    let (status, body) = s.pageview("/b", "2.2.2.2").await;
    assert_eq!(
        (status, &body["status"]),
        (202, &serde_json::json!("accepted"))
    );
    // The refused repeat of /a didn't reset anything either: it is still a duplicate.
    let (_, body) = s.pageview("/a", "1.1.1.1").await;
    assert_eq!(body["reason"], "duplicate");
    let after = s.stats().await;
    assert_eq!(after["totalPageViews"], 2);
    assert_eq!(after["visits"], 2);
    assert_eq!(after["uniqueVisitors"], 2);

    let q = serde_json::json!({"site_id": "example.com", "date_range": "day", "metrics": ["pageviews", "visits", "visitors"]});
    let r: serde_json::Value = s
        .http
        .post(format!("{}/api/v2/query", s.base))
        .bearer_auth(TOKEN)
        .json(&q)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["results"][0]["metrics"],
        serde_json::json!([2, 2, 2]),
        "{r}"
    );

    s.restart().await;
    let restarted = s.stats().await;
    for k in ["totalPageViews", "visits", "uniqueVisitors"] {
        assert_eq!(restarted[k], after[k], "{k} after restart");
    }
}
