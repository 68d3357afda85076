//! Every `sh` block in docs/API.md runs against a real server and must succeed (2xx) with
//! JSON output: the documentation can't drift from the API.

mod common;
use common::*;
use serde_json::json;

fn sh_blocks(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in md.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```sh") => current = Some(String::new()),
            (Some(b), l) if l.starts_with("```") => {
                out.push(std::mem::take(b));
                current = None;
            }
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_md_examples_run() {
    let s = TestServer::start().await;
    for (i, path) in ["/", "/blog/a", "/pricing"].iter().enumerate() {
        s.post("/api/event", json!({"n":"pageview","u":format!("https://example.com{path}"),"d":"example.com","r":"https://www.google.com/"}), &format!("9.0.0.{i}")).await;
    }
    let r = s
        .http
        .post(format!("{}/api/admin/keys", s.base))
        .bearer_auth(TOKEN)
        .body(r#"{"sites":["example.com"]}"#)
        .send()
        .await
        .unwrap();
    let key = r.json::<serde_json::Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();

    let md =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/API.md")).unwrap();
    let blocks = sh_blocks(&md);
    assert!(blocks.len() >= 6, "found {} sh blocks", blocks.len());
    for block in blocks {
        // Every curl fails on an HTTP error and ends its output with a newline, so each
        // line of output is one response.
        let script = block.replace("curl ", "curl -sS --fail-with-body -w '\\n' ");
        let out = tokio::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .env("FOOTFALL_URL", &s.base)
            .env("TOKEN", TOKEN)
            .env("KEY", &key)
            .output()
            .await
            .expect("bash and curl are installed (scripts/test installs curl)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "example failed:\n{block}\nstdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\nfrom:\n{block}"));
        }
    }
}
