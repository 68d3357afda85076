//! Server settings, filled in by the binary from flags, environment and TOML.

use footfall_core::SiteId;
use ipnet::IpNet;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Sites registered at start.
    pub sites: Vec<SiteId>,
    /// Sites whose stats anyone may read.
    pub public_sites: Vec<SiteId>,
    pub admin_token: Option<String>,
    /// Peers whose forwarding headers are believed (loopback is always trusted).
    pub trusted_proxies: Vec<IpNet>,
    pub geoip_db: Option<PathBuf>,
    /// Exchange rates for revenue in other currencies than a goal's (JSON, see
    /// `footfall_core::money::Rates`); without it each currency stands apart.
    pub currency_rates: Option<PathBuf>,
    pub active_timeout_ms: i64,
    pub visit_gap_ms: i64,
    pub dedup_window_ms: i64,
    /// Most events per commit.
    pub batch_max_events: usize,
    /// Events per chunk when rebuilding counters at start.
    pub rebuild_chunk: u64,
    /// How often the sequencer and live state are snapshotted (a restart replays the log
    /// after the last snapshot; the log keeps what that needs).
    pub snapshot_every_secs: u64,
    /// ... or once this many bytes of records were logged since the last snapshot.
    pub snapshot_every_bytes: u64,
    /// Stats API requests per hour per key.
    pub api_rate_limit_per_hour: u32,
    /// DuckDB's memory cap (e.g. "512MB"); None: DuckDB's default (80 % of RAM).
    pub db_memory_limit: Option<String>,
    /// Serve web files from this folder instead of the copies built into the binary.
    pub web_dir: Option<PathBuf>,
    /// Register the public site `demo.example` and feed it synthetic visitors.
    pub demo: bool,
    /// Mark the login cookie `Secure` always (not only when a proxy says the request came
    /// over HTTPS).
    pub secure_cookies: bool,
    /// Keep rollups and answer reports from them where exact.
    pub rollups: bool,
    /// Run as one node of a cluster (Redis, ClickHouse, PostgreSQL) instead of embedded.
    pub cluster: Option<ClusterConfig>,
}

/// Where a cluster node finds the shared services, and how the work is split.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `redis://host:port/db`: inboxes, logs, leases, snapshots. Needs `appendonly yes`,
    /// `appendfsync always`, `maxmemory-policy noeviction`.
    pub redis: String,
    /// ClickHouse's HTTP interface, `http://host:8123`.
    pub clickhouse: String,
    pub clickhouse_database: String,
    /// `postgres://user@host:port/db`: sites, salts, users, keys, sessions, share links.
    pub postgres: String,
    /// Log partitions: fixed when the cluster is created (every node must agree).
    pub partitions: u32,
    /// This node's name in leases (unique per node).
    pub node: String,
    /// Prefix of every Redis key, so several clusters can share one Redis.
    pub prefix: String,
    /// Most entries a partition may hold waiting (inbox + log not yet in storage); past
    /// it, ingest answers 503.
    pub backlog_limit: u64,
    /// Lease TTL of a partition's sequencing (a crashed node's partitions wait this long).
    pub owner_lease: std::time::Duration,
    /// Lease TTL of a partition's storage applier (longer than its slowest chunk).
    pub applier_lease: std::time::Duration,
    /// How often the backlog metric is sampled.
    pub backlog_sample: std::time::Duration,
    /// A partition's rollup rows are folded once there are this many (and twice as many
    /// as its last fold left).
    pub fold_rows: u64,
}

impl ClusterConfig {
    pub fn new(redis: String, clickhouse: String, postgres: String) -> Self {
        ClusterConfig {
            redis,
            clickhouse,
            clickhouse_database: "footfall".into(),
            postgres,
            partitions: 8,
            node: format!(
                "{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "node".into()),
                std::process::id()
            ),
            prefix: "footfall".into(),
            backlog_limit: 5_000_000,
            owner_lease: std::time::Duration::from_secs(10),
            applier_lease: std::time::Duration::from_secs(300),
            backlog_sample: std::time::Duration::from_secs(5),
            fold_rows: footfall_store::clickhouse::FOLD_MIN_ROWS,
        }
    }
}

impl ServerConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir,
            sites: Vec::new(),
            public_sites: Vec::new(),
            admin_token: None,
            trusted_proxies: Vec::new(),
            geoip_db: None,
            currency_rates: None,
            active_timeout_ms: 2 * 60_000,
            visit_gap_ms: 30 * 60_000,
            dedup_window_ms: 30 * 60_000,
            batch_max_events: 5_000,
            rebuild_chunk: 500_000,
            snapshot_every_secs: 300,
            snapshot_every_bytes: 1 << 30,
            api_rate_limit_per_hour: 600,
            db_memory_limit: None,
            web_dir: None,
            demo: false,
            secure_cookies: false,
            rollups: true,
            cluster: None,
        }
    }
}
