//! Reading a live stream (Server-Sent Events) in tests.

use super::TestServer;
use futures::StreamExt;
use serde_json::Value;
use std::time::Duration;

/// A live stream's events, read as a browser would.
pub struct Sse {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl Sse {
    pub async fn open(s: &TestServer, site: &str, token: Option<&str>) -> reqwest::Response {
        let mut r = s
            .http
            .get(format!("{}/api/stats/{site}/live/stream", s.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap()
    }

    pub fn new(resp: reqwest::Response) -> Sse {
        Sse {
            body: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next `stats` event's data. Fails the test instead of hanging.
    pub async fn next(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(end) = self.buf.find("\n\n") {
                    let frame: String = self.buf.drain(..end + 2).collect();
                    if let Some(data) = frame
                        .lines()
                        .find_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                    {
                        return serde_json::from_str(data).unwrap();
                    }
                    continue;
                }
                let chunk = self.body.next().await.expect("stream open").unwrap();
                self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        })
        .await
        .expect("an SSE event within 10 s")
    }
}
