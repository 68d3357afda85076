//! A real footfall server on a loopback port with a real DuckDB file in a temp dir and a
//! manual clock. Tests talk to it over HTTP only.

#![allow(dead_code)]

pub mod cluster;
pub mod sse;

use footfall_core::{SiteId, Timestamp};
use footfall_server::{start, ManualClock, Running, ServerConfig};
use serde_json::Value;
use std::sync::Arc;

pub const TOKEN: &str = "test-admin-token";
pub const CHROME: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.71 Safari/537.36";
pub const FIREFOX: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0";
pub const MIN: i64 = 60_000;
/// 2026-03-10 12:00:00 UTC: mid-day, so tests don't cross midnight unless they mean to.
pub const T0: i64 = 1_773_144_000_000;

pub struct TestServer {
    pub running: Option<Running>,
    pub clock: ManualClock,
    pub base: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub config: ServerConfig,
}

pub fn config(dir: &std::path::Path) -> ServerConfig {
    let mut c = ServerConfig::new(dir.to_path_buf());
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.sites = vec![SiteId::parse("example.com").unwrap()];
    c.public_sites = vec![SiteId::parse("public.example").unwrap()];
    c.admin_token = Some(TOKEN.into());
    c
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(f: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        f(&mut cfg);
        let clock = ManualClock::new(Timestamp(T0));
        let running = start(cfg.clone(), Arc::new(clock.clone()))
            .await
            .expect("server starts");
        let base = format!("http://{}", running.addr);
        TestServer {
            running: Some(running),
            clock,
            base,
            http: reqwest::Client::new(),
            dir,
            config: cfg,
        }
    }

    /// Stops (draining the writer) and starts again on the same data directory.
    pub async fn restart(&mut self) {
        self.stop().await;
        let running = start(self.config.clone(), Arc::new(self.clock.clone()))
            .await
            .expect("server restarts");
        self.base = format!("http://{}", running.addr);
        self.running = Some(running);
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

impl Drop for TestServer {
    /// A server still running when its test ends is stopped here, where the runtime lets
    /// this wait: DuckDB's threads must not outlive the test process's main (a segfault at
    /// exit after every test passed, seen in CI for several test files).
    fn drop(&mut self) {
        let Some(r) = self.running.take() else {
            return;
        };
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
                tokio::task::block_in_place(|| h.block_on(r.shutdown()));
            }
        }
    }
}

impl TestServer {
    pub fn advance(&self, ms: i64) {
        self.clock.advance_ms(ms);
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    /// POSTs raw bytes with a browser UA and the given client IP; returns status and JSON.
    pub async fn post_raw(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
        ip: &str,
        ua: &str,
    ) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "text/plain")
            .header("user-agent", ua)
            .header("x-forwarded-for", ip)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, path: &str, body: Value, ip: &str) -> (u16, Value) {
        self.post_raw(path, body.to_string(), ip, CHROME).await
    }

    /// A Plausible-format page view from `ip`.
    pub async fn pageview(&self, path: &str, ip: &str) -> (u16, Value) {
        self.post("/api/event", serde_json::json!({"n": "pageview", "u": format!("https://example.com{path}"), "d": "example.com"}), ip).await
    }

    pub async fn event(&self, name: &str, path: &str, ip: &str) -> (u16, Value) {
        self.post("/api/event", serde_json::json!({"n": name, "u": format!("https://example.com{path}"), "d": "example.com"}), ip).await
    }

    pub async fn live(&self, site: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}/api/stats/{site}/live", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        resp.json().await.unwrap()
    }

    pub async fn stats(&self) -> Value {
        self.live("example.com").await
    }

    pub async fn metric(&self, line_prefix: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

pub fn page<'a>(stats: &'a Value, path: &str) -> Option<&'a Value> {
    stats["pageStats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == path)
}
