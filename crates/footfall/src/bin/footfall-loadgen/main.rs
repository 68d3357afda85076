//! Plays traffic against a running footfall and prints throughput and latency.
//!
//! Modes:
//! - `realistic`: many concurrent visitors, each with visits of several page views,
//!   heartbeats, an engagement event, sometimes a custom event; a share of bots.
//! - `single`: one page view per request, as fast as possible (distinct visitors and paths,
//!   so nothing is deduplicated).
//! - `batch`: `POST /api/events` with `--batch-size` events per request.
//! - `baseline`: serves a bare axum handler that only answers 202, to load with the same
//!   tool for the DESIGN.md §8 comparison.
//! - `dashboard`: the Stats API requests the web dashboard sends when it opens a site
//!   (cards with comparison, graph and previous-period series, map, every breakdown tab
//!   with `--panels all` or only the first tabs with `--panels load`, custom events), all at
//!   once, repeatedly; prints latency per dashboard and per request (`dashboard.rs`).
//!   `--range day|yesterday|7d|30d|month|12mo` (default 30d) as the range picker sends it;
//!   `--filter '["is","visit:country",["US"]]'` (repeatable) is added to every query.
//!   `footfall-loadgen --mode dashboard --site site1.example --range 12mo --token T`
//! - `history`: writes a realistic past through `POST /api/events` (`history.rs`):
//!   `--events N` over the last `--days D` (30) on `--sites K` (20) sites `site1.example`…
//!   (registered first; site 1 gets ~50 %, Zipf tail), in timestamp order; visits follow
//!   a daily curve in the visitors' local time and a weekly dip, 1–n page views (mean 2.5)
//!   each followed by an engagement event (time on page, scroll depth), some custom events
//!   (Signup {plan}, Download {file}, Outbound Link: Click {url}), 30 % returning visitors,
//!   Zipf pages over a few hundred paths per site, a realistic referrer/UTM mix, IPs in ~40
//!   countries (GeoLite2) and 14 weighted user agents. Streams (memory: the visits in
//!   flight); `--seed` (1) makes it repeatable. `--concurrency` (default 4) senders each
//!   own a share of the visitors, so a visitor's events arrive in order; `--batch-size`
//!   (≤ 1000). `FOOTFALL_ADMIN_TOKEN=T footfall-loadgen --mode history --events 10000000`
//! - `sse-latency`: holds the live stream open like a dashboard and sends one page view at a
//!   time; prints the time from sending it to the stream showing it (run another loadgen
//!   beside it for the figure under load).

mod dashboard;
mod history;

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use rand::Rng;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

#[derive(Clone, Copy, ValueEnum, Debug)]
enum Mode {
    Realistic,
    Single,
    Batch,
    Baseline,
    /// Runs a full dashboard's worth of Stats API queries repeatedly; prints latency per
    /// dashboard (all queries, run concurrently as a browser would).
    Dashboard,
    /// Event accepted → SSE update latency, one probe every 50 ms.
    SseLatency,
    /// Writes a realistic past (`--days` of `--events` over `--sites`) through
    /// `POST /api/events`.
    History,
}

/// Which of the dashboard's breakdown tabs `dashboard` mode requests.
#[derive(Clone, Copy, ValueEnum, Debug)]
enum PanelSet {
    /// What opening the dashboard sends: the first tab of each panel.
    Load,
    /// Every tab of every panel (pages, entry, exit; sources, referrers, UTM source,
    /// medium, campaign; countries, regions, cities; browsers, OS, devices).
    All,
}

#[derive(Parser, Debug)]
#[command(name = "footfall-loadgen", about = "Load generator for footfall")]
struct Args {
    #[arg(long, value_enum, default_value = "realistic")]
    mode: Mode,
    /// Server base URL (or, for `baseline`, the address to listen on).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// sse-latency: hold the live stream open on this server instead of `--url` (another
    /// cluster node: the probe is posted to one node and watched on the other).
    #[arg(long)]
    stream_url: Option<String>,
    #[arg(long, default_value = "example.com")]
    site: String,
    /// Admin token, for `batch`.
    #[arg(long, env = "FOOTFALL_ADMIN_TOKEN")]
    token: Option<String>,
    /// Concurrent connections (each a simulated visitor stream; for `history`, batches in
    /// flight). Default 64, 4 for `history`.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Share of realistic visitors that are bots (0–1).
    #[arg(long, default_value_t = 0.05)]
    bots: f64,
    /// Batch mode: spread event timestamps over this many past days (0: now).
    #[arg(long, default_value_t = 0)]
    spread_days: u64,
    /// Single and batch modes: send at this fixed total rate (requests per second) instead
    /// of as fast as answers come back. Latency is then measured from when each request was
    /// due, so a server that falls behind shows it (no coordinated omission).
    #[arg(long)]
    rate: Option<f64>,
    /// History: events to send in all.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// History: days of history, ending now.
    #[arg(long, default_value_t = 30)]
    days: u64,
    /// History: sites `site1.example` … `siteK.example` (site 1 gets about half).
    #[arg(long, default_value_t = 20)]
    sites: usize,
    /// History: RNG seed; the same arguments generate the same events.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Dashboard: the range, as the dashboard's picker offers it (v2 `date_range`): day,
    /// yesterday, 7d, 30d, month, 12mo.
    #[arg(long, default_value = "30d")]
    range: String,
    /// Dashboard: a v2 filter added to every query, e.g. '["is","visit:country",["US"]]'
    /// (repeatable; a JSON list of filters also works).
    #[arg(long)]
    filter: Vec<String>,
    /// Dashboard: which breakdown tabs to request.
    #[arg(long, value_enum, default_value = "all")]
    panels: PanelSet,
}

impl Args {
    fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or(match self.mode {
            Mode::History => 4,
            _ => 64,
        })
    }
}

const UAS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.71 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
];
const BOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const PATHS: &[&str] = &[
    "/",
    "/blog",
    "/blog/rust-analytics",
    "/blog/privacy",
    "/pricing",
    "/docs",
    "/docs/install",
    "/about",
];
const REFERRERS: &[&str] = &[
    "",
    "",
    "https://www.google.com/",
    "https://news.ycombinator.com/",
    "https://t.co/x",
    "https://duckduckgo.com/",
];

#[derive(Default)]
struct Stats {
    hist: Option<Histogram<u64>>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    requests: u64,
    events: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if let Mode::Dashboard = args.mode {
        return dashboard::run(&args).await;
    }
    if let Mode::History = args.mode {
        return history::run(&args).await;
    }
    if let Mode::SseLatency = args.mode {
        return sse_latency(&args).await;
    }
    if let Mode::Baseline = args.mode {
        let addr = args.url.trim_start_matches("http://");
        let app = axum::Router::new().route(
            "/api/event",
            axum::routing::post(|| async { (axum::http::StatusCode::ACCEPTED, "ok") }),
        );
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!("baseline listening on {addr}");
        axum::serve(listener, app).await?;
        return Ok(());
    }
    let stats = Arc::new(Mutex::new(Stats {
        hist: Some(Histogram::new_with_bounds(1, 60_000_000, 3)?),
        ..Default::default()
    }));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency())
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let args = Arc::new(args);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency() {
        let (client, stats, args) = (client.clone(), stats.clone(), args.clone());
        tasks.push(tokio::spawn(async move {
            worker_loop(worker, client, stats, args, deadline).await
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let st = stats.lock().await;
    let h = st.hist.as_ref().ok_or("no histogram")?;
    println!(
        "mode={:?} concurrency={} duration={:.1}s",
        args.mode,
        args.concurrency(),
        elapsed
    );
    println!(
        "requests: {} ({:.0}/s)   events: {} ({:.0}/s)   errors: {}",
        st.requests,
        st.requests as f64 / elapsed,
        st.events,
        st.events as f64 / elapsed,
        st.errors
    );
    print_latency(h);
    println!("statuses: {:?}", st.statuses);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn send(
    client: &reqwest::Client,
    args: &Args,
    path: &str,
    body: String,
    (ip, ua): (&str, &str),
    events: u64,
    stats: &Mutex<Stats>,
    due: Option<Instant>,
) {
    let mut req = client
        .post(format!("{}{path}", args.url))
        .header("content-type", "text/plain")
        .header("user-agent", ua)
        .header("x-forwarded-for", ip)
        .body(body);
    if path == "/api/events" {
        if let Some(t) = &args.token {
            req = req.bearer_auth(t);
        }
    }
    let t = due.unwrap_or_else(Instant::now);
    let res = req.send().await;
    let us = t.elapsed().as_micros() as u64;
    let mut st = stats.lock().await;
    st.requests += 1;
    match res {
        Ok(r) => {
            *st.statuses.entry(r.status().as_u16()).or_default() += 1;
            if r.status().is_success() {
                st.events += events;
            }
            let _ = r.bytes().await;
        }
        Err(_) => st.errors += 1,
    }
    if let Some(h) = st.hist.as_mut() {
        let _ = h.record(us.max(1));
    }
}

async fn worker_loop(
    worker: usize,
    client: reqwest::Client,
    stats: Arc<Mutex<Stats>>,
    args: Arc<Args>,
    deadline: Instant,
) {
    let mut n: u64 = 0;
    // Fixed rate: this worker's share, its first slot staggered among the workers'.
    let interval = args
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(args.concurrency() as f64 / r));
    let mut next_due =
        interval.map(|i| Instant::now() + i.mul_f64(worker as f64 / args.concurrency() as f64));
    while Instant::now() < deadline {
        let slot = next_due;
        if let (Some(at), Some(i)) = (next_due.as_mut(), interval) {
            tokio::time::sleep_until((*at).into()).await;
            *at += i;
        }
        n += 1;
        let ip = format!("10.{}.{}.{}", worker % 250, (n / 250) % 250, n % 250);
        match args.mode {
            Mode::Single => {
                let body = json!({"n":"pageview","u":format!("https://{}/p/{worker}/{n}", args.site),"d":args.site}).to_string();
                send(
                    &client,
                    &args,
                    "/api/event",
                    body,
                    (&ip, UAS[0]),
                    1,
                    &stats,
                    slot,
                )
                .await;
            }
            Mode::Batch => {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                let events: Vec<_> = (0..args.batch_size)
                    .map(|i| {
                        let ua = UAS[i % UAS.len()];
                        let back = if args.spread_days > 0 {
                            rand::rng().random_range(0..args.spread_days * 86_400_000)
                        } else {
                            0
                        };
                        json!({"n":"pageview","u":format!("https://{}{}", args.site, PATHS[i % PATHS.len()]),"d":args.site,
                               "ip":format!("10.{}.{}.{}", worker % 250, n % 250, i % 250),"user_agent":ua,"r":REFERRERS[i % REFERRERS.len()],
                               "timestamp": now_ms - back})
                    })
                    .collect();
                let body = serde_json::Value::Array(events).to_string();
                send(
                    &client,
                    &args,
                    "/api/events",
                    body,
                    (&ip, UAS[0]),
                    args.batch_size as u64,
                    &stats,
                    slot,
                )
                .await;
            }
            Mode::Realistic => visit(&client, &args, &ip, &stats).await,
            Mode::Baseline | Mode::Dashboard | Mode::SseLatency | Mode::History => return,
        }
    }
}

/// One visit: 1–6 page views with heartbeats between them, an engagement event at the
/// end, sometimes a signup.
async fn visit(client: &reqwest::Client, args: &Args, ip: &str, stats: &Mutex<Stats>) {
    let (pages, bot, ua, referrer, signup) = {
        let mut rng = rand::rng();
        let bot = rng.random_bool(args.bots.clamp(0.0, 1.0));
        (
            rng.random_range(1..=6),
            bot,
            if bot {
                BOT
            } else {
                UAS[rng.random_range(0..UAS.len())]
            },
            REFERRERS[rng.random_range(0..REFERRERS.len())],
            rng.random_bool(0.1),
        )
    };
    let site = &args.site;
    let mut path = "/";
    for i in 0..pages {
        path = PATHS[rand::rng().random_range(0..PATHS.len())];
        let r = if i == 0 { referrer } else { "" };
        let body = json!({"n":"pageview","u":format!("https://{site}{path}"),"d":site,"r":r,"t":format!("Title of {path}")}).to_string();
        send(client, args, "/api/event", body, (ip, ua), 1, stats, None).await;
        if bot {
            continue;
        }
        let hb = json!({"n":"heartbeat","u":format!("https://{site}{path}"),"d":site}).to_string();
        send(client, args, "/api/event", hb, (ip, ua), 1, stats, None).await;
    }
    if signup && !bot {
        let body =
            json!({"n":"signup","u":format!("https://{site}{path}"),"d":site,"p":{"plan":"pro"}})
                .to_string();
        send(client, args, "/api/event", body, (ip, ua), 1, stats, None).await;
    }
    let eng =
        json!({"n":"engagement","u":format!("https://{site}{path}"),"d":site,"sd":60,"e":15000})
            .to_string();
    send(client, args, "/api/event", eng, (ip, ua), 1, stats, None).await;
}

/// Reads `stats` events off a live stream and forwards each one's totalPageViews.
async fn follow_stream(
    resp: reqwest::Response,
    tx: tokio::sync::mpsc::UnboundedSender<u64>,
) -> Result<(), String> {
    use futures::StreamExt;
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            for line in frame.lines() {
                if let Some(data) = line.strip_prefix("data:") {
                    let v: serde_json::Value =
                        serde_json::from_str(data.trim()).map_err(|e| e.to_string())?;
                    let total = v["totalPageViews"].as_u64().unwrap_or(0);
                    if tx.send(total).is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
    Err("stream ended".into())
}

async fn sse_latency(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let client = reqwest::Client::new();
    let token = args.token.clone().unwrap_or_default();
    let resp = client
        .get(format!(
            "{}/api/stats/{}/live/stream?limit=1",
            args.stream_url.as_deref().unwrap_or(&args.url),
            args.site
        ))
        .bearer_auth(&token)
        .send()
        .await?;
    if !resp.status().is_success() {
        return Err(format!("stream: {}", resp.status()).into());
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        if let Err(e) = follow_stream(resp, tx).await {
            eprintln!("stream: {e}");
        }
    });
    let mut seen = rx.recv().await.ok_or("no first snapshot")?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let mut n = 0u64;
    let run_id: u32 = rand::rng().random();
    while Instant::now() < deadline {
        let target = seen + 1;
        let t = Instant::now();
        let r = client
            .post(format!("{}/api/event", args.url))
            .header("user-agent", UAS[0])
            .header("x-forwarded-for", format!("10.{}.{}.{}", n % 250, (n / 250) % 250, run_id % 250))
            .body(
                json!({"n": "pageview", "u": format!("https://{}/sse-probe/{run_id}/{n}", args.site), "d": args.site})
                    .to_string(),
            )
            .send()
            .await?;
        if r.status() != 202 || r.headers().contains_key("x-footfall-dropped") {
            return Err(format!("probe not accepted: {}", r.status()).into());
        }
        // Only probes go to this site (load other sites beside it), so the count is exact.
        loop {
            let total = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await?
                .ok_or("stream closed")?;
            seen = seen.max(total);
            if total >= target {
                break;
            }
        }
        hist.record((t.elapsed().as_micros() as u64).max(1))?;
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("probes: {n} (page view POSTed → SSE snapshot that includes it)");
    print_latency(&hist);
    Ok(())
}

/// Quantiles of a histogram of microseconds, printed in milliseconds.
fn print_latency(h: &Histogram<u64>) {
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.9) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    );
}

/// (year, month, day) of a day counted from 1970-01-01 (proleptic Gregorian).
fn civil_date(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
