//! Durability under `kill -9`: the real binary is killed mid-load several times and
//! restarted on the same data directory. The contract: an event is acknowledged (202
//! `{"status":"accepted"}` on `/api/event`; on `/api/events` a 202 whose `stored` is the
//! number sent) only once it is durable, so after any crash every acknowledged event is
//! stored exactly once; an unacknowledged one may or may not be stored, never twice.
//!
//! Every event has a path of its own, so each path's stored page-view count must be 1 if
//! the event was acknowledged and 0 or 1 otherwise. Dedup is turned off so that nothing
//! but storage can make a replayed event count once.

use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

const BIN: &str = env!("CARGO_BIN_EXE_footfall");
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
const TOKEN: &str = "crash-test-admin-token";
const SITE: &str = "example.com";

/// Clients sending single page views to `/api/event`.
const SINGLE_CLIENTS: usize = 32;
/// Clients sending batches to `/api/events`.
const BATCH_CLIENTS: usize = 3;
/// The whole load phase (all rounds) must finish within this.
const LOAD_DEADLINE: Duration = Duration::from_secs(60);
/// How long a server may take to print its "listening" line, or to exit after SIGTERM.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `footfall serve`; killed (SIGKILL) if dropped while still running, so a
/// failing test leaves no server behind.
struct Server {
    child: Option<Child>,
    base: String,
}

impl Server {
    /// Starts `footfall serve` on a free port and waits (bounded) for the line it prints
    /// once it is listening.
    fn start(data: &Path) -> Server {
        let mut child = Command::new(BIN)
            .arg("serve")
            .env("FOOTFALL_DATA_DIR", data)
            .env("FOOTFALL_LISTEN", "127.0.0.1:0")
            .env("FOOTFALL_ADMIN_TOKEN", TOKEN)
            .env("FOOTFALL_LOG", "warn")
            .env("FOOTFALL_DEDUP_WINDOW_SECS", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn footfall serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut server = Server {
            child: Some(child),
            base: String::new(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send(read);
            // Keep draining, so anything printed later never meets a closed pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = match rx.recv_timeout(PROCESS_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => panic!("reading the server's stdout: {e}"),
            Err(_) => panic!(
                "footfall serve printed no line within {PROCESS_TIMEOUT:?} (exit status: {:?})",
                server.child.as_mut().map(|c| c.try_wait())
            ),
        };
        server.base = line
            .trim()
            .strip_prefix("footfall listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?} (exit status: {:?})",
                    server.child.as_mut().map(|c| c.try_wait())
                )
            })
            .to_string();
        server
    }

    /// `kill -9`, and reap the process.
    fn sigkill(&mut self) {
        let mut child = self.child.take().expect("server running");
        child.kill().expect("SIGKILL the server");
        child.wait().expect("reap the killed server");
    }

    /// SIGTERM (a graceful stop: drain, commit, checkpoint) and wait, bounded, for the
    /// exit status.
    fn sigterm(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server running");
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        if !matches!(&sent, Ok(s) if s.success()) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kill -TERM {pid} failed: {sent:?}");
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let status = child.wait();
            let _ = tx.send(());
            status
        });
        if rx.recv_timeout(PROCESS_TIMEOUT).is_err() {
            // Still running: take it down hard so the test ends, then fail.
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            let _ = waiter.join();
            panic!("footfall did not exit within {PROCESS_TIMEOUT:?} of SIGTERM");
        }
        waiter
            .join()
            .expect("waiter thread")
            .expect("wait for footfall")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn start_server(data: &Path) -> Server {
    let data = data.to_path_buf();
    tokio::task::spawn_blocking(move || Server::start(&data))
        .await
        .expect("server start task")
}

/// Runs an offline command on the data directory; returns stdout.
fn run(args: &[&str], data: &Path) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("FOOTFALL_DATA_DIR", data)
        .output()
        .expect("run footfall");
    assert!(
        out.status.success(),
        "footfall {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// The server the clients should talk to: a generation number (one per start) and its
/// base URL; `None` ends the load.
#[derive(Clone)]
struct Target {
    generation: u64,
    base: Option<String>,
}

/// Counters shared by the clients and the controller.
#[derive(Default)]
struct Progress {
    /// Events counted before their request is sent (an upper bound on what can be stored).
    sent: AtomicUsize,
    /// Events acknowledged so far.
    acked: AtomicUsize,
    /// Woken after every acknowledgement.
    changed: Notify,
}

/// What one client did.
#[derive(Default)]
struct ClientLog {
    sent: Vec<String>,
    acked: Vec<String>,
    /// Connection errors, timeouts, bodies cut off: expected when the server is killed.
    transport_errors: usize,
    /// 5xx answers: not acknowledged (allowed by the contract, reported).
    server_errors: Vec<String>,
    /// Answers that mean the test's events were refused or misclassified (4xx, a 202
    /// `dropped`, a batch storing fewer than it was sent): never expected here.
    unexpected: Vec<String>,
}

/// After a failed request to generation `sent_to`: waits until the controller publishes
/// another server, or for a bounded time (then the caller simply tries again).
async fn await_next_server(rx: &mut watch::Receiver<Target>, sent_to: u64) {
    let wait = async {
        while rx.borrow().generation == sent_to {
            if rx.changed().await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
}

enum Answer {
    Acked,
    Transport,
    ServerError(String),
    Unexpected(String),
}

/// One single page view to `/api/event`.
async fn send_single(http: &reqwest::Client, base: &str, ip: &str, path: &str) -> Answer {
    let body = format!(r#"{{"n":"pageview","u":"https://{SITE}{path}","d":"{SITE}"}}"#);
    let resp = match http
        .post(format!("{base}/api/event"))
        .header("content-type", "text/plain")
        .header("user-agent", UA)
        .header("x-forwarded-for", ip)
        .body(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(_) => return Answer::Transport,
    };
    let status = resp.status().as_u16();
    let text = match resp.text().await {
        Ok(t) => t,
        Err(_) => return Answer::Transport,
    };
    if status == 202 {
        match serde_json::from_str::<Value>(&text) {
            Ok(v) if v == json!({"status": "accepted"}) => Answer::Acked,
            _ => Answer::Unexpected(format!("{path}: 202 {text}")),
        }
    } else if status >= 500 {
        Answer::ServerError(format!("{path}: {status} {text}"))
    } else {
        Answer::Unexpected(format!("{path}: {status} {text}"))
    }
}

/// One batch to `/api/events`; acknowledged only if all of it was stored.
async fn send_batch(http: &reqwest::Client, base: &str, events: &[Value], first: &str) -> Answer {
    let resp = match http
        .post(format!("{base}/api/events"))
        .bearer_auth(TOKEN)
        .json(&events)
        .send()
        .await
    {
        Ok(r) => r,
        Err(_) => return Answer::Transport,
    };
    let status = resp.status().as_u16();
    let text = match resp.text().await {
        Ok(t) => t,
        Err(_) => return Answer::Transport,
    };
    if status == 202 {
        match serde_json::from_str::<Value>(&text) {
            Ok(v)
                if v["stored"].as_u64() == Some(events.len() as u64)
                    && v["received"].as_u64() == Some(events.len() as u64) =>
            {
                Answer::Acked
            }
            _ => Answer::Unexpected(format!(
                "batch of {} from {first}: 202 {text}",
                events.len()
            )),
        }
    } else if status >= 500 {
        Answer::ServerError(format!("batch from {first}: {status} {text}"))
    } else {
        Answer::Unexpected(format!("batch from {first}: {status} {text}"))
    }
}

/// A client: sends events to whichever server is current until told to stop or the
/// deadline passes. Never resends a path: a failed event may have been stored.
async fn client(
    id: usize,
    batch: bool,
    http: reqwest::Client,
    mut rx: watch::Receiver<Target>,
    progress: Arc<Progress>,
    deadline: Instant,
) -> ClientLog {
    let mut log = ClientLog::default();
    // ThreadRng can't be held across an await in a spawned task.
    let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
    let ip = format!("10.1.{}.{}", id / 200, id % 200 + 1);
    let mut seq: u64 = 0;
    loop {
        let target = rx.borrow_and_update().clone();
        let Some(base) = target.base else {
            return log;
        };
        if Instant::now() >= deadline {
            return log;
        }
        let (paths, answer) = if batch {
            let n = rng.random_range(50..=100);
            let mut paths = Vec::with_capacity(n);
            let mut events = Vec::with_capacity(n);
            for _ in 0..n {
                let path = format!("/b/{id}/{seq}");
                events.push(json!({
                    "n": "pageview",
                    "u": format!("https://{SITE}{path}"),
                    "d": SITE,
                    // One visitor per event.
                    "ip": format!("fd00::{:x}:{:x}:{:x}", 0xb00 + id, seq >> 16, seq & 0xffff),
                    "user_agent": UA,
                }));
                paths.push(path);
                seq += 1;
            }
            progress.sent.fetch_add(n, SeqCst);
            log.sent.extend(paths.iter().cloned());
            let answer = send_batch(&http, &base, &events, &paths[0]).await;
            (paths, answer)
        } else {
            let path = format!("/k/{id}/{seq}");
            seq += 1;
            progress.sent.fetch_add(1, SeqCst);
            log.sent.push(path.clone());
            let answer = send_single(&http, &base, &ip, &path).await;
            (vec![path], answer)
        };
        match answer {
            Answer::Acked => {
                progress.acked.fetch_add(paths.len(), SeqCst);
                log.acked.extend(paths);
                progress.changed.notify_one();
            }
            Answer::Transport => {
                log.transport_errors += 1;
                await_next_server(&mut rx, target.generation).await;
            }
            Answer::ServerError(s) => log.server_errors.push(s),
            Answer::Unexpected(s) => log.unexpected.push(s),
        }
    }
}

/// `GET /api/stats/example.com/live` with the admin token.
async fn live(http: &reqwest::Client, base: &str) -> Value {
    let resp = http
        .get(format!("{base}/api/stats/{SITE}/live"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET /live");
    let status = resp.status();
    let text = resp.text().await.expect("/live body");
    assert_eq!(status, 200, "GET /live: {text}");
    serde_json::from_str(&text).expect("/live is JSON")
}

/// `POST /api/v2/query` with the admin token; the whole answer.
async fn query(http: &reqwest::Client, base: &str, body: &Value) -> Value {
    let resp = http
        .post(format!("{base}/api/v2/query"))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .expect("POST /api/v2/query");
    let status = resp.status();
    let text = resp.text().await.expect("query body");
    assert_eq!(status, 200, "POST /api/v2/query {body}: {text}");
    serde_json::from_str(&text).expect("query answer is JSON")
}

/// Page views per path over all time, read page by page.
async fn pageviews_by_path(
    http: &reqwest::Client,
    base: &str,
    max_rows: usize,
) -> HashMap<String, u64> {
    const LIMIT: usize = 1000;
    let mut out = HashMap::new();
    let mut total_rows = None;
    for page in 0..=(max_rows / LIMIT + 1) {
        let body = json!({
            "site_id": SITE,
            "date_range": "all",
            "metrics": ["pageviews"],
            "dimensions": ["event:page"],
            "order_by": [["event:page", "asc"]],
            "pagination": {"limit": LIMIT, "offset": page * LIMIT},
            "include": {"total_rows": true},
        });
        let v = query(http, base, &body).await;
        if total_rows.is_none() {
            total_rows = v["meta"]["total_rows"].as_u64();
        }
        let rows = v["results"].as_array().expect("results is a list");
        for row in rows {
            let path = row["dimensions"][0]
                .as_str()
                .unwrap_or_else(|| panic!("row without a page: {row}"))
                .to_string();
            let n = row["metrics"][0]
                .as_u64()
                .unwrap_or_else(|| panic!("row without a pageviews count: {row}"));
            if let Some(prev) = out.insert(path.clone(), n) {
                panic!("page {path} appears in two rows ({prev} and {n})");
            }
        }
        if rows.len() < LIMIT {
            if let Some(t) = total_rows {
                assert_eq!(t as usize, out.len(), "meta.total_rows against rows read");
            }
            return out;
        }
    }
    panic!(
        "more than {max_rows} page rows: more pages stored than were ever sent ({})",
        out.len()
    );
}

fn sample<'a>(it: impl IntoIterator<Item = &'a String>) -> Vec<&'a String> {
    let mut v: Vec<&String> = it.into_iter().collect();
    v.sort();
    v.truncate(10);
    v
}

/// `footfall rebuild` output: "example.com: page views N, unique visitors N, visits N,
/// bounces N, paths N".
/// Every rollup row with a non-zero sum, as text, in key order.
fn rollup_rows(data: &Path) -> Vec<String> {
    let store = footfall_store::DuckStore::open(data).expect("open the database");
    let q = footfall_core::query::plan::SqlQuery {
        sql: "SELECT site || '|' || grain || '|' || bucket || '|' || dim || '|' || value || '=' || \
              visitors || ',' || pageviews || ',' || events || ',' || visits || ',' || bounces || ',' || duration_ms || ',' || visit_pageviews, 0 \
              FROM rollups WHERE visitors <> 0 OR pageviews <> 0 OR events <> 0 OR visits <> 0 OR bounces <> 0 OR duration_ms <> 0 OR visit_pageviews <> 0 ORDER BY 1"
            .into(),
        params: vec![],
        part: footfall_core::query::plan::Part::Total,
        dimensions: 1,
    };
    store
        .run_query(&q)
        .expect("read rollups")
        .into_iter()
        .map(|(mut d, _)| d.remove(0))
        .collect()
}

fn parse_rebuild(out: &str) -> BTreeMap<String, u64> {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{SITE}: ")))
        .unwrap_or_else(|| panic!("no {SITE} line in rebuild output {out:?}"));
    line.split(", ")
        .map(|part| {
            let (name, n) = part
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("unexpected rebuild output {out:?}"));
            let n = n
                .parse()
                .unwrap_or_else(|_| panic!("unexpected rebuild output {out:?}"));
            (name.to_string(), n)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_events_survive_kill_9_exactly_once() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let data: PathBuf = dir.path().to_path_buf();
    assert_eq!(
        run(&["sites", "add", SITE], &data).trim(),
        "added example.com"
    );

    // Kill points, by acknowledged events: varied from run to run.
    let thresholds: Vec<usize> = {
        let mut rng = rand::rng();
        vec![
            rng.random_range(200..=450),
            rng.random_range(1200..=1900),
            rng.random_range(3200..=4300),
            rng.random_range(5500..=6800),
        ]
    };
    eprintln!("crash: kill thresholds (acknowledged events) {thresholds:?}");

    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");

    let mut server = start_server(&data).await;
    // One generation per server start: the first is 0, round r's restart is r + 1.
    let (tx, rx) = watch::channel(Target {
        generation: 0,
        base: Some(server.base.clone()),
    });
    let progress = Arc::new(Progress::default());
    let deadline = Instant::now() + LOAD_DEADLINE;
    let clients: Vec<_> = (0..SINGLE_CLIENTS + BATCH_CLIENTS)
        .map(|id| {
            tokio::spawn(client(
                id,
                id >= SINGLE_CLIENTS,
                http.clone(),
                rx.clone(),
                progress.clone(),
                deadline,
            ))
        })
        .collect();
    drop(rx);

    for (round, &threshold) in thresholds.iter().enumerate() {
        // Wait for the load to get there: the kill point is chosen by progress.
        loop {
            let acked = progress.acked.load(SeqCst);
            if acked >= threshold {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "round {}: only {acked} events acknowledged ({} sent) after {LOAD_DEADLINE:?}, \
                     waiting for {threshold}",
                    round + 1,
                    progress.sent.load(SeqCst)
                );
            }
            let _ = tokio::time::timeout(left, progress.changed.notified()).await;
        }
        let killed_at = Instant::now();
        server.sigkill();
        // Everything acknowledged by now is final for this server (some acknowledgements
        // may still be on their way to the counter: that only weakens the check below),
        // and nothing not yet counted as sent can have reached it.
        let acked = progress.acked.load(SeqCst);
        let sent = progress.sent.load(SeqCst);
        if round + 1 == thresholds.len() {
            tx.send_replace(Target {
                generation: round as u64 + 1,
                base: None,
            });
            eprintln!(
                "crash round {}: killed at {acked} acknowledged (threshold {threshold}), {sent} sent; load stopped",
                round + 1
            );
            break;
        }
        server = start_server(&data).await;
        let restart = killed_at.elapsed();
        let stats = live(&http, &server.base).await;
        let total = stats["totalPageViews"]
            .as_u64()
            .unwrap_or_else(|| panic!("no totalPageViews in {stats}")) as usize;
        eprintln!(
            "crash round {}: killed at {acked} acknowledged (threshold {threshold}), {sent} sent; \
             restarted in {} ms with totalPageViews {total}",
            round + 1,
            restart.as_millis()
        );
        assert!(
            total >= acked,
            "round {}: after the restart totalPageViews is {total}, but {acked} events had been acknowledged",
            round + 1
        );
        assert!(
            total <= sent,
            "round {}: after the restart totalPageViews is {total}, but only {sent} events had been sent",
            round + 1
        );
        tx.send_replace(Target {
            generation: round as u64 + 1,
            base: Some(server.base.clone()),
        });
    }

    let mut sent: HashSet<String> = HashSet::new();
    let mut acked: HashSet<String> = HashSet::new();
    let mut transport_errors = 0;
    let mut server_errors = Vec::new();
    let mut unexpected = Vec::new();
    for c in clients {
        let log = tokio::time::timeout(Duration::from_secs(30), c)
            .await
            .expect("a client did not stop within 30 s of the last kill")
            .expect("client task");
        sent.extend(log.sent);
        acked.extend(log.acked);
        transport_errors += log.transport_errors;
        server_errors.extend(log.server_errors);
        unexpected.extend(log.unexpected);
    }
    let load_time = started.elapsed();
    eprintln!(
        "crash: load done in {} ms: {} sent, {} acknowledged, {transport_errors} transport errors, \
         {} 5xx answers",
        load_time.as_millis(),
        sent.len(),
        acked.len(),
        server_errors.len()
    );
    if !server_errors.is_empty() {
        eprintln!(
            "crash: 5xx answers (not acknowledged), first ones: {:?}",
            &server_errors[..server_errors.len().min(5)]
        );
    }
    assert!(
        unexpected.is_empty(),
        "{} answers that are neither an acknowledgement nor a failure; first ones: {:?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(10)]
    );
    assert!(
        acked.len() >= thresholds[thresholds.len() - 1],
        "the load reached every kill threshold"
    );

    // Restart once more and read what is stored.
    let restarted = Instant::now();
    let mut server = start_server(&data).await;
    eprintln!(
        "crash: final restart in {} ms",
        restarted.elapsed().as_millis()
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    let stored = pageviews_by_path(&http, &server.base, sent.len()).await;

    let over_one: Vec<&String> = stored
        .iter()
        .filter(|(_, n)| **n != 1)
        .map(|(p, _)| p)
        .collect();
    assert!(
        over_one.is_empty(),
        "{} paths are stored with a page-view count other than 1 (each was sent once); e.g. {:?}",
        over_one.len(),
        sample(over_one.iter().copied())
            .into_iter()
            .map(|p| (p, stored[p]))
            .collect::<Vec<_>>()
    );
    let lost: Vec<&String> = acked.iter().filter(|p| !stored.contains_key(*p)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events are not stored after the crashes; e.g. {:?}",
        lost.len(),
        acked.len(),
        sample(lost.iter().copied())
    );
    let phantom: Vec<&String> = stored.keys().filter(|p| !sent.contains(*p)).collect();
    assert!(
        phantom.is_empty(),
        "{} stored paths were never sent; e.g. {:?}",
        phantom.len(),
        sample(phantom.iter().copied())
    );
    assert!(stored.len() >= acked.len());
    let stored_total: u64 = stored.values().sum();
    assert_eq!(stored_total as usize, stored.len());

    let aggregate = query(
        &http,
        &server.base,
        &json!({"site_id": SITE, "date_range": "all", "metrics": ["pageviews"]}),
    )
    .await;
    assert_eq!(
        aggregate["results"][0]["metrics"][0].as_u64(),
        Some(stored_total),
        "aggregate pageviews against the per-page breakdown: {aggregate}"
    );

    let stats = live(&http, &server.base).await;
    assert_eq!(
        stats["totalPageViews"].as_u64(),
        Some(stored_total),
        "live totalPageViews against storage"
    );
    let page_stats = stats["pageStats"].as_array().expect("pageStats is a list");
    assert_eq!(
        page_stats.len(),
        stored.len(),
        "live pageStats rows against stored paths"
    );
    for p in page_stats {
        let path = p["path"].as_str().unwrap_or_default();
        assert!(
            stored.contains_key(path) && p["views"].as_u64() == Some(1),
            "live pageStats row {p} does not match storage (stored: {:?})",
            stored.get(path)
        );
    }
    let unique_visitors = stats["uniqueVisitors"].as_u64().expect("uniqueVisitors");
    let visits = stats["visits"].as_u64().expect("visits");
    let bounce_rate = stats["bounceRate"].as_f64().expect("bounceRate");

    let status = tokio::task::spawn_blocking(move || {
        let status = server.sigterm();
        (status, server)
    })
    .await
    .expect("sigterm task")
    .0;
    assert!(status.success(), "graceful exit on SIGTERM: {status}");

    let data2 = data.clone();
    let out = tokio::task::spawn_blocking(move || run(&["rebuild", "--chunk", "1000"], &data2))
        .await
        .expect("rebuild task");
    let r = parse_rebuild(&out);
    eprintln!("crash: rebuild: {}", out.trim());
    let get = |k: &str| -> u64 {
        *r.get(k)
            .unwrap_or_else(|| panic!("no {k:?} in rebuild output {out:?}"))
    };
    assert_eq!(
        get("page views"),
        stored_total,
        "rebuild page views vs /live totalPageViews"
    );
    assert_eq!(
        get("unique visitors"),
        unique_visitors,
        "rebuild unique visitors vs /live uniqueVisitors"
    );
    assert_eq!(get("visits"), visits, "rebuild visits vs /live visits");
    assert_eq!(
        get("paths"),
        page_stats.len() as u64,
        "rebuild paths vs /live pageStats rows"
    );
    let bounces = get("bounces");
    // /live rounds the rate to 0.1 %: compare with the same rounding.
    let rebuilt_rate = if visits > 0 {
        (bounces as f64 * 1000.0 / visits as f64).round() / 10.0
    } else {
        0.0
    };
    assert!(
        rebuilt_rate == bounce_rate,
        "rebuild bounces {bounces} of {visits} visits ({rebuilt_rate} %) vs /live bounceRate {bounce_rate} % \
         (≈ {:.1} bounces)",
        bounce_rate * visits as f64 / 100.0
    );

    // The rollups kept through every crash are what a rebuild from the raw rows makes.
    let kept = rollup_rows(&data);
    assert!(!kept.is_empty(), "rollups were kept");
    let data2 = data.clone();
    tokio::task::spawn_blocking(move || run(&["rebuild", "--rollups"], &data2))
        .await
        .expect("rollup rebuild task");
    let rebuilt = rollup_rows(&data);
    assert_eq!(kept.len(), rebuilt.len(), "rollup rows kept vs rebuilt");
    let differ: Vec<_> = kept
        .iter()
        .zip(&rebuilt)
        .filter(|(a, b)| a != b)
        .take(5)
        .collect();
    assert!(
        differ.is_empty(),
        "rollups kept through kill -9 differ from a rebuild: {differ:?}"
    );

    eprintln!(
        "crash: passed in {} ms: {} acknowledged of {} sent, {} stored",
        started.elapsed().as_millis(),
        acked.len(),
        sent.len(),
        stored.len()
    );
}
