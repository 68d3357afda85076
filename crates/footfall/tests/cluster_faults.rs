//! Cluster mode under faults, for real: the `footfall` binary runs as cluster nodes over
//! private ClickHouse, Redis and PostgreSQL servers (`scripts/services`, on ports of their
//! own) that the test stops, kills and starts again under load.
//!
//! The contract checked after every fault: an event is acknowledged (202
//! `{"status":"accepted"}`) only once Redis holds it, so once the cluster has caught up
//! every acknowledged event is in ClickHouse exactly once; an unacknowledged one (a 503, a
//! connection cut) is there at most once; the live counters of every node and the Stats API
//! agree with what ClickHouse holds. Every event has a path of its own, so a per-path count
//! in ClickHouse tells exactly-once, and dedup is off.
//!
//! Scenarios (one services instance, reused; each scenario has its own Redis prefix,
//! ClickHouse database and site):
//! 1. ClickHouse stopped during ingest (SIGTERM; 18.16 keeps serving the nodes' open
//!    keep-alive connections, so `scripts/services stop` kills it after 5 s): ingest keeps
//!    acknowledging, the backlog metric grows; ClickHouse started again: everything arrives
//!    once, the backlog drains to 0.
//! 2. The backlog limit, during the same outage: a node with a small `--backlog-limit`
//!    answers 503 "the backlog waiting for storage is full"; nothing refused is stored, and
//!    ingest resumes once ClickHouse is back.
//! 3. ClickHouse killed (SIGKILL) while an applier's INSERT is running, under load.
//! 4. Redis killed and restarted on its append-only file under load: requests meanwhile are
//!    refused (503 or cut), the node recovers on its own, nothing acknowledged is lost.
//! 5. PostgreSQL restarted under load: ingest goes on, and metadata writes (a site added
//!    through the admin API) work again afterwards: the node connects anew.
//! 6. Two nodes; the one holding every partition is SIGKILLed under load while its applier
//!    is inserting: the other takes every partition once the leases run out.
//! 7. The killed node restarts; then the other one (now holding everything) is SIGKILLed
//!    while its applier inserts a chunk's marker (`log_applied`, the last write before the
//!    trim; any insert if none is seen in 10 s) and restarted at once: after the lease runs
//!    out the chunk is finished or redone, exactly once.
//!
//! `FOOTFALL_FAULTS=clickhouse,flush,redis,postgres,nodes` runs a subset.

use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

const BIN: &str = env!("CARGO_BIN_EXE_footfall");
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
const TOKEN: &str = "cluster-faults-admin-token";
/// Private services, away from the shared test services (18123/16379/15432).
const CH_PORT: u16 = 28123;
const REDIS_PORT: u16 = 26379;
const PG_PORT: u16 = 25432;
const PARTITIONS: u32 = 4;
/// Short leases, so a SIGKILLed node's partitions move within seconds.
const OWNER_LEASE_MS: &str = "2000";
const APPLIER_LEASE_MS: &str = "5000";
const FULL: &str = "the backlog waiting for storage is full";
/// Concurrent clients of one load.
const CLIENTS: usize = 12;
/// How long a node may take to print its "listening" line.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services")
}

/// Runs a blocking step off the runtime's workers, so the load goes on meanwhile.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

// ---------------------------------------------------------------------------------------
// The services

/// Private ClickHouse, Redis and PostgreSQL under a temporary directory; stopped when
/// dropped (the directory, with the services' and nodes' logs, is kept if the test failed).
struct Services {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl Services {
    fn start() -> Services {
        let missing: Vec<&str> = ["clickhouse-server", "redis-server", "redis-cli", "curl"]
            .into_iter()
            .filter(|b| {
                !Command::new("sh")
                    .args(["-c", &format!("command -v {b}")])
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false)
            })
            .collect();
        let pg = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.flatten().any(|e| e.path().join("bin/postgres").exists()))
            .unwrap_or(false);
        assert!(
            missing.is_empty() && pg,
            "the cluster fault tests need ClickHouse, Redis and PostgreSQL installed; missing: \
             {missing:?}{} (Debian: apt-get install clickhouse-server clickhouse-client \
             redis-server postgresql)",
            if pg { "" } else { " postgresql" }
        );
        for port in [CH_PORT, CH_PORT + 877, CH_PORT + 886, REDIS_PORT, PG_PORT] {
            assert!(
                TcpListener::bind(("127.0.0.1", port)).is_ok(),
                "port {port} is taken: is another run of the cluster fault tests (or a \
                 leftover server) still up?"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("footfall-faults-")
            .tempdir()
            .expect("tempdir");
        let path = dir.path().to_path_buf();
        std::fs::create_dir_all(path.join("nodes")).expect("nodes log dir");
        let services = Services {
            dir: Some(dir),
            path,
        };
        services.ctl("start", &[]);
        services
    }

    /// `scripts/services CMD DIR SERVICE…`; fails the test if it fails.
    fn ctl(&self, cmd: &str, which: &[&str]) {
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(script())
            .arg(cmd)
            .arg(&self.path)
            .args(which)
            .env("FOOTFALL_CH_PORT", CH_PORT.to_string())
            .env("FOOTFALL_REDIS_PORT", REDIS_PORT.to_string())
            .env("FOOTFALL_PG_PORT", PG_PORT.to_string())
            .output()
            .expect("run scripts/services");
        assert!(
            out.status.success(),
            "scripts/services {cmd} {which:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "faults: services {cmd} {which:?} in {} ms",
            started.elapsed().as_millis()
        );
    }

    async fn ctl_async(self: &Arc<Self>, cmd: &'static str, which: &'static [&'static str]) {
        let s = self.clone();
        blocking(move || s.ctl(cmd, which)).await
    }

    /// SIGKILL ClickHouse at once (no script start-up in between), then wait until it is
    /// gone.
    async fn kill_clickhouse_now(self: &Arc<Self>) {
        let pid = std::fs::read_to_string(self.path.join("ch/pid")).expect("ClickHouse pid");
        let status = Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .expect("kill ClickHouse");
        assert!(status.success(), "kill -KILL {pid}: {status}");
        self.ctl_async("kill", &["clickhouse"]).await;
    }

    fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{REDIS_PORT}")
    }

    fn clickhouse_url(&self) -> String {
        format!("http://127.0.0.1:{CH_PORT}")
    }

    fn postgres_url(&self) -> String {
        format!("postgres://footfall@127.0.0.1:{PG_PORT}/postgres")
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        // Throwaway servers: killed, not stopped (ClickHouse 18.16 may take seconds to).
        let started = Instant::now();
        let _ = Command::new("bash")
            .arg(script())
            .arg("kill")
            .arg(&self.path)
            .env("FOOTFALL_CH_PORT", CH_PORT.to_string())
            .env("FOOTFALL_REDIS_PORT", REDIS_PORT.to_string())
            .env("FOOTFALL_PG_PORT", PG_PORT.to_string())
            .output();
        eprintln!(
            "faults: services stopped in {} ms",
            started.elapsed().as_millis()
        );
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                eprintln!(
                    "faults: services' and nodes' logs kept under {}",
                    kept.display()
                );
            }
        }
    }
}

/// Commands to Redis through `redis-cli`, one reply a line (`--raw`; nil is empty).
fn redis_cli(commands: &[String]) -> Result<Vec<String>, String> {
    use std::io::Write;
    let mut child = Command::new("redis-cli")
        .args(["-p", &REDIS_PORT.to_string(), "--raw"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("redis-cli: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("redis-cli stdin")?;
    stdin
        .write_all((commands.join("\n") + "\n").as_bytes())
        .map_err(|e| format!("redis-cli stdin: {e}"))?;
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|e| format!("redis-cli: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "redis-cli: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    if lines.len() != commands.len() {
        return Err(format!("redis-cli answered {lines:?} to {commands:?}"));
    }
    Ok(lines)
}

/// A query to ClickHouse over HTTP; the answer as text.
async fn clickhouse(http: &reqwest::Client, sql: &str) -> Result<String, String> {
    let resp = http
        .post(format!("http://127.0.0.1:{CH_PORT}/"))
        .body(sql.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(text)
    } else {
        Err(format!("{status}: {text}"))
    }
}

/// Waits until ClickHouse is running an INSERT into `table` (any table: "") — an applier
/// mid-chunk; gives up after `limit`. Returns the statement's start if it saw one.
async fn await_insert(http: &reqwest::Client, table: &str, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    let sql = format!(
        "SELECT substring(query, 1, 60) FROM system.processes \
         WHERE query LIKE 'INSERT INTO {table}%' FORMAT TabSeparated"
    );
    while Instant::now() < deadline {
        if let Ok(text) = clickhouse(http, &sql).await {
            if let Some(line) = text.lines().next() {
                return Some(line.to_string());
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// The nodes

/// One cluster's settings: each scenario has its own Redis prefix, ClickHouse database
/// and site, so nothing one scenario left behind touches another.
#[derive(Clone)]
struct Spec {
    tag: &'static str,
    site: String,
    prefix: String,
    db: String,
    backlog_limit: u64,
}

impl Spec {
    fn new(tag: &'static str) -> Spec {
        Spec {
            tag,
            site: format!("{tag}.example.com"),
            prefix: format!("faults-{tag}"),
            db: format!("faults_{tag}"),
            backlog_limit: 5_000_000,
        }
    }
}

/// A running `footfall serve` in cluster mode; SIGKILLed if dropped while running.
struct Node {
    child: Option<Child>,
    base: String,
    name: String,
}

impl Node {
    fn start(services: &Services, spec: &Spec, name: &str) -> Node {
        let log_path = services
            .path
            .join("nodes")
            .join(format!("{}-{name}.log", spec.tag));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("node log file");
        let mut child = Command::new(BIN)
            .arg("serve")
            .env("FOOTFALL_DATA_DIR", services.path.join("nodes"))
            .env("FOOTFALL_LISTEN", "127.0.0.1:0")
            .env("FOOTFALL_ADMIN_TOKEN", TOKEN)
            .env("FOOTFALL_LOG", "warn")
            .env("FOOTFALL_DEDUP_WINDOW_SECS", "0")
            .env("FOOTFALL_SITES", &spec.site)
            .env("FOOTFALL_SNAPSHOT_EVERY_SECS", "1")
            .env("FOOTFALL_REDIS", services.redis_url())
            .env("FOOTFALL_CLICKHOUSE", services.clickhouse_url())
            .env("FOOTFALL_POSTGRES", services.postgres_url())
            .env("FOOTFALL_CLICKHOUSE_DATABASE", &spec.db)
            .env("FOOTFALL_REDIS_PREFIX", &spec.prefix)
            .env("FOOTFALL_PARTITIONS", PARTITIONS.to_string())
            .env("FOOTFALL_NODE_NAME", name)
            .env("FOOTFALL_BACKLOG_LIMIT", spec.backlog_limit.to_string())
            .env("FOOTFALL_OWNER_LEASE_MS", OWNER_LEASE_MS)
            .env("FOOTFALL_APPLIER_LEASE_MS", APPLIER_LEASE_MS)
            .env("FOOTFALL_BACKLOG_SAMPLE_MS", "200")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn footfall serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut node = Node {
            child: Some(child),
            base: String::new(),
            name: name.to_string(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send(read);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = match rx.recv_timeout(PROCESS_TIMEOUT) {
            Ok(Ok(line)) => line,
            other => panic!(
                "node {name} ({}) did not start within {PROCESS_TIMEOUT:?}: {other:?}, exit \
                 status {:?}; its log: {}",
                spec.tag,
                node.child.as_mut().map(|c| c.try_wait()),
                std::fs::read_to_string(&log_path).unwrap_or_default()
            ),
        };
        node.base = line
            .trim()
            .strip_prefix("footfall listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?} from node {name}"))
            .to_string();
        node
    }

    async fn start_async(services: &Arc<Services>, spec: &Spec, name: &str) -> Node {
        let (s, spec, name) = (services.clone(), spec.clone(), name.to_string());
        blocking(move || Node::start(&s, &spec, &name)).await
    }

    /// `kill -9`, and reap the process.
    fn sigkill(&mut self) {
        let mut child = self.child.take().expect("node running");
        child.kill().expect("SIGKILL the node");
        child.wait().expect("reap the killed node");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Every partition's lease holders (`seq-lease`, `apply-lease`): node names, None if free.
fn lease_holders(spec: &Spec) -> Result<Vec<Option<String>>, String> {
    let mut cmds = Vec::new();
    for p in 0..PARTITIONS {
        for lease in ["seq-lease", "apply-lease"] {
            cmds.push(format!("GET {{{}:{p}}}:{lease}", spec.prefix));
        }
    }
    Ok(redis_cli(&cmds)?
        .into_iter()
        .map(|v| v.split_once(':').map(|(_, node)| node.to_string()))
        .collect())
}

/// Waits until `name` holds every lease of the cluster.
async fn await_all_leases(spec: &Spec, name: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let spec2 = spec.clone();
        let holders = blocking(move || lease_holders(&spec2)).await;
        if let Ok(h) = &holders {
            if h.iter().all(|n| n.as_deref() == Some(name)) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{}: node {name} did not hold every partition's leases within {limit:?}: {holders:?}",
            spec.tag
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The load

#[derive(Default)]
struct Progress {
    acked: AtomicUsize,
    /// Requests not acknowledged (5xx or cut).
    failed: AtomicUsize,
    /// 503s saying the backlog is full.
    full: AtomicUsize,
    changed: Notify,
}

#[derive(Default)]
struct ClientLog {
    sent: Vec<String>,
    acked: Vec<String>,
    transport_errors: usize,
    server_errors: Vec<String>,
    unexpected: Vec<String>,
}

enum Answer {
    Acked,
    Transport,
    ServerError(String),
    Unexpected(String),
}

async fn send_event(
    http: &reqwest::Client,
    base: &str,
    site: &str,
    ip: &str,
    path: &str,
) -> Answer {
    let body = format!(r#"{{"n":"pageview","u":"https://{site}{path}","d":"{site}"}}"#);
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
    match status {
        202 => match serde_json::from_str::<Value>(&text) {
            Ok(v) if v == json!({"status": "accepted"}) => Answer::Acked,
            _ => Answer::Unexpected(format!("{path}: 202 {text}")),
        },
        500.. => Answer::ServerError(format!("{path}: {status} {text}")),
        _ => Answer::Unexpected(format!("{path}: {status} {text}")),
    }
}

/// Clients sending single page views, each with a path of its own, round-robin over the
/// nodes currently targeted (none: stop).
struct Load {
    targets: watch::Sender<Vec<String>>,
    tasks: Vec<tokio::task::JoinHandle<ClientLog>>,
    progress: Arc<Progress>,
}

/// What a load did, all clients together.
struct Outcome {
    sent: HashSet<String>,
    acked: HashSet<String>,
    transport_errors: usize,
    server_errors: Vec<String>,
}

impl Outcome {
    /// Fails the test unless every request was acknowledged (`while`: what was going on).
    fn assert_all_acknowledged(&self, scenario: &str, while_: &str) {
        assert!(
            self.server_errors.is_empty() && self.transport_errors == 0,
            "{scenario}: ingest must keep acknowledging while {while_}; {} cut, 5xx: {:?}",
            self.transport_errors,
            &self.server_errors[..self.server_errors.len().min(5)]
        );
    }
}

impl Load {
    fn start(http: &reqwest::Client, spec: &Spec, bases: Vec<String>) -> Load {
        let (targets, rx) = watch::channel(bases);
        let progress = Arc::new(Progress::default());
        let tasks = (0..CLIENTS)
            .map(|id| {
                tokio::spawn(client(
                    id,
                    spec.clone(),
                    http.clone(),
                    rx.clone(),
                    progress.clone(),
                ))
            })
            .collect();
        Load {
            targets,
            tasks,
            progress,
        }
    }

    fn retarget(&self, bases: Vec<String>) {
        self.targets.send_replace(bases);
    }

    fn acked(&self) -> usize {
        self.progress.acked.load(SeqCst)
    }

    /// Waits until `done` holds of the progress; fails the test after `limit`.
    async fn wait(&self, what: &str, limit: Duration, done: impl Fn(&Progress) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(&self.progress) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "waited {limit:?} for {what}: {} acknowledged, {} failed ({} backlog full)",
                self.progress.acked.load(SeqCst),
                self.progress.failed.load(SeqCst),
                self.progress.full.load(SeqCst)
            );
            let _ = tokio::time::timeout(
                left.min(Duration::from_millis(100)),
                self.progress.changed.notified(),
            )
            .await;
        }
    }

    /// Waits until `n` more events than now are acknowledged.
    async fn more_acked(&self, what: &str, n: usize, limit: Duration) {
        let goal = self.acked() + n;
        self.wait(what, limit, |p| p.acked.load(SeqCst) >= goal)
            .await;
    }

    async fn finish(self) -> Outcome {
        self.targets.send_replace(Vec::new());
        let mut out = Outcome {
            sent: HashSet::new(),
            acked: HashSet::new(),
            transport_errors: 0,
            server_errors: Vec::new(),
        };
        let mut unexpected = Vec::new();
        for t in self.tasks {
            let log = tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("a client did not stop within 30 s")
                .expect("client task");
            out.sent.extend(log.sent);
            out.acked.extend(log.acked);
            out.transport_errors += log.transport_errors;
            out.server_errors.extend(log.server_errors);
            unexpected.extend(log.unexpected);
        }
        assert!(
            unexpected.is_empty(),
            "{} answers that are neither an acknowledgement nor a failure; first ones: {:?}",
            unexpected.len(),
            &unexpected[..unexpected.len().min(10)]
        );
        out
    }
}

async fn client(
    id: usize,
    spec: Spec,
    http: reqwest::Client,
    mut rx: watch::Receiver<Vec<String>>,
    progress: Arc<Progress>,
) -> ClientLog {
    let mut log = ClientLog::default();
    let ip = format!("10.7.{}.{}", id / 200, id % 200 + 1);
    let mut seq: usize = 0;
    loop {
        let bases = rx.borrow_and_update().clone();
        if bases.is_empty() {
            return log;
        }
        let base = &bases[(id + seq) % bases.len()];
        let path = format!("/{}/{id}/{seq}", spec.tag);
        seq += 1;
        log.sent.push(path.clone());
        let failed = match send_event(&http, base, &spec.site, &ip, &path).await {
            Answer::Acked => {
                progress.acked.fetch_add(1, SeqCst);
                log.acked.push(path);
                false
            }
            Answer::Transport => {
                log.transport_errors += 1;
                true
            }
            Answer::ServerError(s) => {
                if s.contains(FULL) {
                    progress.full.fetch_add(1, SeqCst);
                }
                log.server_errors.push(s);
                true
            }
            Answer::Unexpected(s) => {
                log.unexpected.push(s);
                true
            }
        };
        if failed {
            progress.failed.fetch_add(1, SeqCst);
        }
        progress.changed.notify_waiters();
        if failed {
            // Back off a little, so a node that refuses everything is not flooded; wakes
            // early if the targets change.
            let _ = tokio::time::timeout(Duration::from_millis(20), rx.changed()).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Checks

async fn backlog_metric(http: &reqwest::Client, node: &Node) -> Option<i64> {
    let text = http
        .get(format!("{}/metrics", node.base))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("footfall_cluster_backlog_entries "))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits until the node's backlog metric satisfies `ok`; returns the value.
async fn await_backlog(
    http: &reqwest::Client,
    node: &Node,
    what: &str,
    limit: Duration,
    ok: impl Fn(i64) -> bool,
) -> i64 {
    let deadline = Instant::now() + limit;
    let mut last = None;
    loop {
        last = backlog_metric(http, node).await.or(last);
        if let Some(v) = last {
            if ok(v) {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "waited {limit:?} for the backlog metric on {}: {what}; last value {last:?}",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether ClickHouse holds everything the cluster's Redis holds: every inbox empty and
/// every log's end applied.
async fn drained(http: &reqwest::Client, spec: &Spec) -> Result<bool, String> {
    let mut cmds = Vec::new();
    for p in 0..PARTITIONS {
        cmds.push(format!("XLEN {{{}:{p}}}:inbox", spec.prefix));
        cmds.push(format!("HGET {{{}:{p}}}:meta end", spec.prefix));
    }
    let replies = blocking(move || redis_cli(&cmds)).await?;
    let applied = clickhouse(
        http,
        &format!(
            "SELECT log_part, max(position) FROM {}.log_applied GROUP BY log_part FORMAT TabSeparated",
            spec.db
        ),
    )
    .await?;
    let applied: HashMap<u32, u64> = applied
        .lines()
        .filter_map(|l| {
            let (p, n) = l.split_once('\t')?;
            Some((p.parse().ok()?, n.parse().ok()?))
        })
        .collect();
    for p in 0..PARTITIONS {
        let inbox: u64 = replies[2 * p as usize].parse().unwrap_or(u64::MAX);
        let end: u64 = replies[2 * p as usize + 1].parse().unwrap_or(0);
        if inbox != 0 || end > applied.get(&p).copied().unwrap_or(0) {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn await_drained(http: &reqwest::Client, spec: &Spec, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let state = drained(http, spec).await;
        if state == Ok(true) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: ClickHouse did not catch up with Redis within {limit:?} ({state:?})",
            spec.tag
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Page views per path of the scenario's site, as ClickHouse holds them.
async fn stored_paths(http: &reqwest::Client, spec: &Spec) -> HashMap<String, u64> {
    let text = clickhouse(
        http,
        &format!(
            "SELECT pathname, count() FROM {}.events WHERE site = '{}' AND name = 'pageview' \
             GROUP BY pathname FORMAT TabSeparated",
            spec.db, spec.site
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: reading ClickHouse: {e}", spec.tag));
    text.lines()
        .map(|l| {
            let (p, n) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("unexpected row {l:?}"));
            (p.to_string(), n.parse().expect("a count"))
        })
        .collect()
}

async fn api_json(req: reqwest::RequestBuilder, what: &str) -> Result<Value, String> {
    let resp = req
        .bearer_auth(TOKEN)
        .send()
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| format!("{what}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{what}: {status} {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("{what}: {e}: {text}"))
}

fn sample<'a>(it: impl IntoIterator<Item = &'a String>) -> Vec<&'a String> {
    let mut v: Vec<&String> = it.into_iter().collect();
    v.sort();
    v.truncate(10);
    v
}

/// After the load: waits until ClickHouse caught up, then checks every acknowledged
/// event is stored exactly once, nothing unsent or doubled is, the Stats API agrees, and
/// every node's live counters reach the stored count. With `exact`, also that nothing
/// unacknowledged was stored (refusals that wrote nothing). Returns the stored count.
async fn verify(
    http: &reqwest::Client,
    spec: &Spec,
    out: &Outcome,
    nodes: &[&Node],
    exact: bool,
) -> u64 {
    await_drained(http, spec, Duration::from_secs(60)).await;
    let stored = stored_paths(http, spec).await;
    let tag = spec.tag;
    let doubled: Vec<(&String, &u64)> = stored.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        doubled.is_empty(),
        "{tag}: {} paths stored more than once (each was sent once); e.g. {:?}",
        doubled.len(),
        &doubled[..doubled.len().min(10)]
    );
    let lost: Vec<&String> = out
        .acked
        .iter()
        .filter(|p| !stored.contains_key(*p))
        .collect();
    assert!(
        lost.is_empty(),
        "{tag}: {} of {} acknowledged events are not in ClickHouse; e.g. {:?}",
        lost.len(),
        out.acked.len(),
        sample(lost.iter().copied())
    );
    let phantom: Vec<&String> = stored.keys().filter(|p| !out.sent.contains(*p)).collect();
    assert!(
        phantom.is_empty(),
        "{tag}: {} stored paths were never sent; e.g. {:?}",
        phantom.len(),
        sample(phantom.iter().copied())
    );
    if exact {
        let refused_but_stored: Vec<&String> =
            stored.keys().filter(|p| !out.acked.contains(*p)).collect();
        assert!(
            refused_but_stored.is_empty(),
            "{tag}: {} refused events were stored anyway; e.g. {:?}",
            refused_but_stored.len(),
            sample(refused_but_stored.iter().copied())
        );
    }
    let total = stored.len() as u64;

    // The Stats API (through the read barrier) counts the same.
    let body = json!({"site_id": spec.site, "date_range": "all", "metrics": ["pageviews"]});
    let v = api_json(
        http.post(format!("{}/api/v2/query", nodes[0].base))
            .json(&body),
        "POST /api/v2/query",
    )
    .await
    .unwrap_or_else(|e| panic!("{tag}: {e}"));
    assert_eq!(
        v["results"][0]["metrics"][0].as_u64(),
        Some(total),
        "{tag}: Stats API page views against ClickHouse: {v}"
    );

    // Every node's live counters follow the logs to the same count.
    for node in nodes {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let live = api_json(
                http.get(format!("{}/api/stats/{}/live", node.base, spec.site)),
                "GET /live",
            )
            .await;
            let seen = live
                .as_ref()
                .ok()
                .and_then(|v| v["totalPageViews"].as_u64());
            if seen == Some(total) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{tag}: live totalPageViews on {} is {live:?}, ClickHouse holds {total}",
                node.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!(
        "faults {tag}: {} sent, {} acknowledged, {total} stored, {} 5xx, {} cut; every \
         acknowledged event stored once, live and Stats API agree",
        out.sent.len(),
        out.acked.len(),
        out.server_errors.len(),
        out.transport_errors
    );
    total
}

// ---------------------------------------------------------------------------------------
// The scenarios

struct Ctx {
    services: Arc<Services>,
    http: reqwest::Client,
}

/// 1 and 2: ClickHouse stopped during ingest; a node with a small backlog limit beside.
async fn clickhouse_down(ctx: &Ctx) {
    let http = &ctx.http;
    let spec = Spec::new("chdown");
    let small = Spec {
        backlog_limit: 40,
        ..Spec::new("backlog")
    };
    let node = Node::start_async(&ctx.services, &spec, "a").await;
    // Started while ClickHouse is up (a node creates its database at start).
    let limited = Node::start_async(&ctx.services, &small, "b").await;
    let load = Load::start(http, &spec, vec![node.base.clone()]);
    load.more_acked("load before the outage", 300, Duration::from_secs(30))
        .await;

    ctx.services.ctl_async("stop", &["clickhouse"]).await;
    let at_stop = load.acked();
    // Ingest keeps acknowledging; the backlog waits in Redis and the metric shows it.
    let first = await_backlog(
        http,
        &node,
        "a sample taken with ClickHouse down",
        Duration::from_secs(10),
        |_| true,
    )
    .await;
    load.more_acked(
        "acknowledgements with ClickHouse down",
        500,
        Duration::from_secs(30),
    )
    .await;
    let grown = await_backlog(
        http,
        &node,
        "growing while ClickHouse is down",
        Duration::from_secs(10),
        |v| v >= first + 100,
    )
    .await;

    // Meanwhile the small node fills its backlog and refuses with a clear 503.
    let refused = Load::start(http, &small, vec![limited.base.clone()]);
    refused
        .wait("503s for a full backlog", Duration::from_secs(30), |p| {
            p.full.load(SeqCst) >= 20
        })
        .await;
    let acked_before_full = refused.acked();
    let full_metric = await_backlog(
        http,
        &limited,
        "at the limit",
        Duration::from_secs(10),
        |v| v >= small.backlog_limit as i64,
    )
    .await;
    eprintln!(
        "faults chdown: {} acknowledged while ClickHouse was down, backlog metric {first} -> \
         {grown}; backlog node: {acked_before_full} acknowledged before it refused, metric \
         {full_metric} (limit {} in each of {PARTITIONS} partitions)",
        load.acked() - at_stop,
        small.backlog_limit
    );

    ctx.services.ctl_async("start", &["clickhouse"]).await;
    load.more_acked(
        "acknowledgements after ClickHouse is back",
        300,
        Duration::from_secs(30),
    )
    .await;
    // The backlog drains and the small node takes events again.
    refused
        .more_acked(
            "acknowledgements on the backlog node after ClickHouse is back",
            50,
            Duration::from_secs(60),
        )
        .await;
    let out = load.finish().await;
    let out_small = refused.finish().await;

    out.assert_all_acknowledged("chdown", "ClickHouse is down");
    let not_full: Vec<&String> = out_small
        .server_errors
        .iter()
        .filter(|s| !s.contains(FULL) || !s.contains(": 503 "))
        .collect();
    assert!(
        not_full.is_empty() && out_small.transport_errors == 0,
        "backlog: every refusal is a 503 saying the backlog is full; {} cut, others: {:?}",
        out_small.transport_errors,
        sample(not_full)
    );
    verify(http, &spec, &out, &[&node], true).await;
    verify(http, &small, &out_small, &[&limited], true).await;
    // Trimmed behind storage (and the owners' snapshots), the backlog goes back to nothing.
    await_backlog(http, &node, "drained to 0", Duration::from_secs(20), |v| {
        v == 0
    })
    .await;
}

/// 3: ClickHouse SIGKILLed while an applier's INSERT runs, under load.
async fn clickhouse_killed_mid_flush(ctx: &Ctx) {
    let http = &ctx.http;
    let spec = Spec::new("chflush");
    let node = Node::start_async(&ctx.services, &spec, "a").await;
    let load = Load::start(http, &spec, vec![node.base.clone()]);
    load.more_acked("load before the kill", 500, Duration::from_secs(30))
        .await;
    let caught = await_insert(http, "", Duration::from_secs(15)).await;
    ctx.services.kill_clickhouse_now().await;
    eprintln!("faults chflush: ClickHouse killed during {caught:?}");
    assert!(
        caught.is_some(),
        "chflush: no INSERT seen running within 15 s under load"
    );
    load.more_acked(
        "acknowledgements with ClickHouse dead",
        300,
        Duration::from_secs(30),
    )
    .await;
    ctx.services.ctl_async("start", &["clickhouse"]).await;
    load.more_acked(
        "acknowledgements after ClickHouse is back",
        300,
        Duration::from_secs(30),
    )
    .await;
    let out = load.finish().await;
    out.assert_all_acknowledged("chflush", "ClickHouse is down");
    verify(http, &spec, &out, &[&node], true).await;
}

/// 4: Redis SIGKILLed and restarted on its append-only file, under load.
async fn redis_restarted(ctx: &Ctx) {
    let http = &ctx.http;
    let spec = Spec::new("redis");
    let node = Node::start_async(&ctx.services, &spec, "a").await;
    let load = Load::start(http, &spec, vec![node.base.clone()]);
    load.more_acked("load before the kill", 500, Duration::from_secs(30))
        .await;
    ctx.services.ctl_async("kill", &["redis"]).await;
    // Nothing is acknowledged while Redis is gone.
    let failed = load.progress.failed.load(SeqCst);
    load.wait(
        "refusals while Redis is down",
        Duration::from_secs(30),
        |p| p.failed.load(SeqCst) >= failed + 20,
    )
    .await;
    let acked_down = load.acked();
    ctx.services.ctl_async("start", &["redis"]).await;
    let restarted = Instant::now();
    load.more_acked(
        "acknowledgements after Redis is back",
        500,
        Duration::from_secs(30),
    )
    .await;
    eprintln!(
        "faults redis: ingest acknowledging again {} ms after the restart",
        restarted.elapsed().as_millis()
    );
    let out = load.finish().await;
    let not_503: Vec<&String> = out
        .server_errors
        .iter()
        .filter(|s| !s.contains(": 503 "))
        .collect();
    assert!(
        not_503.is_empty(),
        "redis: refusals while Redis is down are 503s; others: {:?}",
        sample(not_503)
    );
    assert!(acked_down > 0);
    verify(http, &spec, &out, &[&node], false).await;
}

/// 5: PostgreSQL restarted under load.
async fn postgres_restarted(ctx: &Ctx) {
    let http = &ctx.http;
    let spec = Spec::new("pg");
    let node = Node::start_async(&ctx.services, &spec, "a").await;
    let load = Load::start(http, &spec, vec![node.base.clone()]);
    load.more_acked("load before the restart", 300, Duration::from_secs(30))
        .await;
    ctx.services.ctl_async("stop", &["postgres"]).await;
    // Ingest needs no metadata store per request (sites and salts are cached).
    load.more_acked(
        "acknowledgements with PostgreSQL down",
        300,
        Duration::from_secs(30),
    )
    .await;
    // Reports need no metadata store either (the admin token is configuration), and the
    // read barrier still makes them see every event acknowledged before they began.
    let acked_before = load.acked() as u64;
    let body = json!({"site_id": spec.site, "date_range": "all", "metrics": ["pageviews"]});
    let during = api_json(
        http.post(format!("{}/api/v2/query", node.base)).json(&body),
        "POST /api/v2/query with PostgreSQL down",
    )
    .await
    .unwrap_or_else(|e| panic!("pg: {e}"));
    let counted = during["results"][0]["metrics"][0].as_u64();
    assert!(
        counted.is_some_and(|n| n >= acked_before),
        "pg: a report with PostgreSQL down counts {counted:?} page views, but {acked_before}          had been acknowledged before it began: {during}"
    );
    ctx.services.ctl_async("start", &["postgres"]).await;
    // Metadata writes work again: the node reconnects.
    let extra = Spec {
        site: "pg-added.example.com".into(),
        ..spec.clone()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let added = api_json(
            http.post(format!("{}/api/admin/sites", node.base))
                .json(&json!({"domain": extra.site})),
            "POST /api/admin/sites",
        )
        .await;
        match added {
            Ok(_) => break,
            Err(e) => assert!(
                Instant::now() < deadline,
                "pg: adding a site still fails 20 s after PostgreSQL restarted ({attempts} \
                 attempts): {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The site added works at once: events to it are acknowledged and stored.
    for i in 0..5 {
        let path = format!("/pg-added/{i}");
        assert!(
            matches!(
                send_event(http, &node.base, &extra.site, "10.9.0.1", &path).await,
                Answer::Acked
            ),
            "pg: an event to the site added after the restart was not acknowledged"
        );
    }
    load.more_acked(
        "acknowledgements after PostgreSQL is back",
        300,
        Duration::from_secs(30),
    )
    .await;
    let out = load.finish().await;
    out.assert_all_acknowledged("pg", "PostgreSQL restarts");
    verify(http, &spec, &out, &[&node], true).await;
    let added: u64 = stored_paths(http, &extra).await.values().sum();
    assert_eq!(
        added, 5,
        "pg: events of the site added after the restart in ClickHouse"
    );
    eprintln!("faults pg: a site added after the restart ({attempts} attempts) took its 5 events");
}

/// 6 and 7: two nodes; each in turn SIGKILLed while its applier inserts.
async fn node_killed(ctx: &Ctx) {
    let http = &ctx.http;
    let spec = Spec::new("nodes");
    let mut n1 = Node::start_async(&ctx.services, &spec, "n1").await;
    // n1 takes every partition before n2 exists: killing it moves them all.
    await_all_leases(&spec, "n1", Duration::from_secs(20)).await;
    let n2 = Node::start_async(&ctx.services, &spec, "n2").await;
    let load = Load::start(http, &spec, vec![n1.base.clone(), n2.base.clone()]);
    load.more_acked("load on two nodes", 600, Duration::from_secs(30))
        .await;

    // 6: n1 dies mid-insert; n2 takes every partition once the leases run out.
    let caught = await_insert(http, "", Duration::from_secs(15)).await;
    n1.sigkill();
    let killed = Instant::now();
    load.retarget(vec![n2.base.clone()]);
    eprintln!("faults nodes: n1 killed during {caught:?}");
    assert!(
        caught.is_some(),
        "nodes: no INSERT seen running within 15 s under load"
    );
    await_all_leases(&spec, "n2", Duration::from_secs(30)).await;
    eprintln!(
        "faults nodes: n2 holds every partition {} ms after the kill",
        killed.elapsed().as_millis()
    );
    load.more_acked(
        "acknowledgements on n2 after the takeover",
        300,
        Duration::from_secs(30),
    )
    .await;

    // 7: n1 comes back; then n2, holding everything, dies mid-insert and restarts at once.
    let n1 = Node::start_async(&ctx.services, &spec, "n1").await;
    load.retarget(vec![n1.base.clone(), n2.base.clone()]);
    load.more_acked(
        "acknowledgements with n1 back",
        300,
        Duration::from_secs(30),
    )
    .await;
    let mut n2 = n2;
    // Best at the chunk's marker, the last insert before the trim; else at any insert.
    let mut caught = await_insert(http, "log_applied", Duration::from_secs(10)).await;
    if caught.is_none() {
        caught = await_insert(http, "", Duration::from_secs(15)).await;
    }
    n2.sigkill();
    load.retarget(vec![n1.base.clone()]);
    eprintln!("faults nodes: n2 killed during {caught:?}");
    assert!(
        caught.is_some(),
        "nodes: no INSERT seen running within 15 s under load"
    );
    let n2 = Node::start_async(&ctx.services, &spec, "n2").await;
    load.retarget(vec![n1.base.clone(), n2.base.clone()]);
    // Storage resumes once the dead applier's lease runs out: wait for the backlog to be
    // stored while the load goes on.
    load.more_acked(
        "acknowledgements after n2 restarted",
        500,
        Duration::from_secs(30),
    )
    .await;
    let out = load.finish().await;
    let not_503: Vec<&String> = out
        .server_errors
        .iter()
        .filter(|s| !s.contains(": 503 "))
        .collect();
    assert!(
        not_503.is_empty(),
        "nodes: the only failures allowed are cut connections to the killed node; 5xx: {:?}",
        sample(not_503)
    );
    verify(http, &spec, &out, &[&n1, &n2], false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_survives_service_and_node_faults() {
    let started = Instant::now();
    let only: Option<Vec<String>> = std::env::var("FOOTFALL_FAULTS")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let run = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|s| s == name));
    let services = Arc::new(blocking(Services::start).await);
    let ctx = Ctx {
        services,
        http: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(15))
            .build()
            .expect("http client"),
    };
    let mut phase = Instant::now();
    let mut done = |name: &str| {
        eprintln!(
            "faults: {name} passed in {} ms",
            phase.elapsed().as_millis()
        );
        phase = Instant::now();
    };
    if run("clickhouse") {
        clickhouse_down(&ctx).await;
        done("clickhouse (stopped during ingest; backlog limit)");
    }
    if run("flush") {
        clickhouse_killed_mid_flush(&ctx).await;
        done("flush (ClickHouse killed mid-insert)");
    }
    if run("redis") {
        redis_restarted(&ctx).await;
        done("redis (killed and restarted)");
    }
    if run("postgres") {
        postgres_restarted(&ctx).await;
        done("postgres (restarted)");
    }
    if run("nodes") {
        node_killed(&ctx).await;
        done("nodes (SIGKILL under load, takeover, restart)");
    }
    drop(ctx);
    eprintln!("faults: all passed in {} ms", started.elapsed().as_millis());
}
