//! Start-up settings that reach DuckDB.

mod common;
use common::*;
use footfall_core::Timestamp;
use footfall_server::{start, ManualClock};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_is_applied_and_bad_values_refused() {
    let mut s = TestServer::start_with(|c| c.db_memory_limit = Some("64MB".into())).await;
    let (status, _) = s.pageview("/", "1.2.3.4").await;
    assert_eq!(status, 202);
    assert_eq!(s.stats().await["totalPageViews"], 1);
    // Stopped before the process exits: DuckDB's threads must not outlive main.
    s.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.db_memory_limit = Some("lots".into());
    let err = start(cfg, Arc::new(ManualClock::new(Timestamp(T0))))
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().to_lowercase().contains("memory"), "{err}");
}
