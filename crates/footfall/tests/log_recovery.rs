//! The log's recovery rules on the real binary: after a SIGKILL, a torn or damaged last
//! record (a write that was never acknowledged) is cut and the server starts with every
//! acknowledged event; a damaged record in the middle stops the start with an error naming
//! the file and the byte offset.

mod common;
use common::{run, serve_command, term, UA};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

const TOKEN: &str = "tok";

fn cli(args: &[&str], data: &Path) {
    run(args, data);
}

fn spawn(data: &Path) -> Child {
    serve_command(data, &[("FOOTFALL_ADMIN_TOKEN", TOKEN)])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn serve(data: &Path) -> (Child, String) {
    common::serve(data, &[("FOOTFALL_ADMIN_TOKEN", TOKEN)])
}

fn pageviews(base: &str, paths: impl Iterator<Item = String>) -> usize {
    let http = reqwest::blocking::Client::new();
    let mut acked = 0;
    for (i, p) in paths.enumerate() {
        let r = http
            .post(format!("{base}/api/event"))
            .header("user-agent", UA)
            .header("x-forwarded-for", format!("10.1.{}.{}", i / 200, i % 200))
            .body(format!(
                r#"{{"n":"pageview","u":"https://example.com{p}","d":"example.com"}}"#
            ))
            .send()
            .unwrap();
        assert_eq!(r.status(), 202);
        acked += 1;
    }
    acked
}

/// Page views per path, through the Stats API.
fn stored(base: &str) -> std::collections::HashMap<String, u64> {
    let q = serde_json::json!({"site_id": "example.com", "date_range": "all", "metrics": ["pageviews"], "dimensions": ["event:page"], "pagination": {"limit": 10000}});
    let r: serde_json::Value = reqwest::blocking::Client::new()
        .post(format!("{base}/api/v2/query"))
        .bearer_auth(TOKEN)
        .json(&q)
        .send()
        .unwrap()
        .json()
        .unwrap();
    r["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|row| {
            (
                row["dimensions"][0].as_str().unwrap().to_string(),
                row["metrics"][0].as_u64().unwrap(),
            )
        })
        .collect()
}

fn newest_segment(data: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(data.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs.pop().expect("a log segment")
}

/// Where the records of a segment end: frames are walked from the start until the
/// zero-filled (preallocated) rest of the file.
fn logical_end(path: &Path) -> usize {
    let bytes = std::fs::read(path).unwrap();
    let mut at = 0;
    while at + 16 <= bytes.len() && bytes[at..at + 16] != [0u8; 16] {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 16 + len;
    }
    at
}

/// Writes `bytes` right after the last record, as an interrupted group write would.
fn write_at_end(path: &Path, bytes: &[u8]) {
    let at = logical_end(path) as u64;
    std::os::unix::fs::FileExt::write_all_at(
        &std::fs::OpenOptions::new().write(true).open(path).unwrap(),
        bytes,
        at,
    )
    .unwrap();
}

fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn torn_tails_are_cut_and_acknowledged_events_survive() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    cli(&["sites", "add", "example.com"], data);
    let (child, base) = serve(data);
    let acked = pageviews(&base, (0..150).map(|i| format!("/torn/{i}")));
    kill(child);

    // A group whose write was cut short: a frame header promising more than is there.
    let seg = newest_segment(data);
    let end_before = logical_end(&seg);
    let mut torn = Vec::new();
    torn.extend_from_slice(&1000u32.to_le_bytes());
    torn.extend_from_slice(&0xdead_beefu32.to_le_bytes());
    torn.extend_from_slice(&[7u8; 20]);
    write_at_end(&seg, &torn);
    assert!(logical_end(&seg) > end_before);
    let (child, base) = serve(data);
    assert_eq!(
        logical_end(&seg),
        end_before,
        "the torn frame is cut at start"
    );
    let got = stored(&base);
    assert_eq!(got.len(), acked);
    assert!(got.values().all(|n| *n == 1));
    let more = pageviews(&base, (0..20).map(|i| format!("/after-torn/{i}")));
    kill(child);

    // A whole last frame with a bad checksum, and trailing zeros after another crash.
    let seg = newest_segment(data);
    let mut frame = Vec::new();
    frame.extend_from_slice(&8u32.to_le_bytes());
    frame.extend_from_slice(&1u32.to_le_bytes());
    frame.extend_from_slice(&u64::MAX.to_le_bytes());
    frame.extend_from_slice(b"garbage!");
    write_at_end(&seg, &frame);
    let (child, base) = serve(data);
    let got = stored(&base);
    assert_eq!(got.len(), acked + more);
    kill(child);
    // Zeros past the end of the file: space whose data never landed.
    std::fs::OpenOptions::new()
        .append(true)
        .open(newest_segment(data))
        .unwrap()
        .write_all(&[0u8; 64])
        .unwrap();
    let (child, base) = serve(data);
    let got = stored(&base);
    assert_eq!(got.len(), acked + more);
    assert!(got.values().all(|n| *n == 1), "nothing doubled by replay");
    let live: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{base}/api/stats/example.com/live"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(live["totalPageViews"], (acked + more) as u64);
    kill(child);
}

#[test]
fn a_damaged_record_in_the_middle_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    cli(&["sites", "add", "example.com"], data);
    let (child, base) = serve(data);
    pageviews(&base, (0..30).map(|i| format!("/mid/{i}")));
    kill(child);

    let seg = newest_segment(data);
    let mut bytes = std::fs::read(&seg).unwrap();
    // The first frame's payload starts after its 16-byte header; more frames follow it.
    bytes[20] ^= 0x55;
    std::fs::write(&seg, &bytes).unwrap();
    let out = spawn(data).wait_with_output().unwrap();
    assert!(!out.status.success(), "refuses to start");
    let err = String::from_utf8_lossy(&out.stderr);
    let name = seg.file_name().unwrap().to_string_lossy();
    assert!(err.contains(&*name), "names the file: {err}");
    assert!(err.contains("byte 0"), "names the offset: {err}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_log_behind_storage_is_refused_and_a_new_log_continues_after_storage() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    cli(&["sites", "add", "example.com"], data);
    let (child, base) = serve(data);
    pageviews(&base, (0..20).map(|i| format!("/old/{i}")));
    term(child);
    let backup = dir.path().join("log-backup");
    copy_dir(&data.join("log"), &backup);

    let (child, base) = serve(data);
    pageviews(&base, (0..20).map(|i| format!("/new/{i}")));
    term(child);

    // An older copy of the log: storage holds records it doesn't.
    std::fs::remove_dir_all(data.join("log")).unwrap();
    std::fs::rename(&backup, data.join("log")).unwrap();
    let out = spawn(data).wait_with_output().unwrap();
    assert!(!out.status.success(), "refuses to start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("storage already holds records"), "{err}");

    // No log at all (moved aside by an operator after a graceful stop): a new one
    // continues after storage, so new events are stored, not taken for applied ones.
    std::fs::remove_dir_all(data.join("log")).unwrap();
    let (child, base) = serve(data);
    pageviews(&base, (0..5).map(|i| format!("/after/{i}")));
    let got = stored(&base);
    assert_eq!(got.len(), 45, "{got:?}");
    assert!(got.values().all(|n| *n == 1));
    kill(child);
}
