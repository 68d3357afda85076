//! Serve settings from flags, `FOOTFALL_*` environment variables and an optional TOML file,
//! in that order of precedence.

use clap::Args;
use footfall_core::SiteId;
use footfall_server::config::ClusterConfig;
use footfall_server::ServerConfig;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (snake_case keys).
    #[arg(long, env = "FOOTFALL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "FOOTFALL_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Where the database lives [default: ./footfall-data].
    #[arg(long, env = "FOOTFALL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Register a site at start (repeatable; env: comma-separated).
    #[arg(long = "site", env = "FOOTFALL_SITES", value_delimiter = ',')]
    pub sites: Vec<String>,
    /// Register a site whose stats anyone may read (repeatable).
    #[arg(
        long = "public-site",
        env = "FOOTFALL_PUBLIC_SITES",
        value_delimiter = ','
    )]
    pub public_sites: Vec<String>,
    /// Token for admin routes and the batch route (`Authorization: Bearer ...`).
    #[arg(long, env = "FOOTFALL_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// A proxy whose X-Forwarded-For is believed (CIDR, repeatable). Loopback always is.
    #[arg(
        long = "trusted-proxy",
        env = "FOOTFALL_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpNet>,
    /// MaxMind-format (.mmdb) database for country, region, city and coordinates.
    #[arg(long, env = "FOOTFALL_GEOIP_DB")]
    pub geoip_db: Option<PathBuf>,
    /// Exchange rates for revenue: JSON `{"base": "USD", "rates": {"EUR": 0.92, ...}}`
    /// (units per base unit). Without it, revenue only counts toward goals in its own
    /// currency. Read at start; no network calls.
    #[arg(long, env = "FOOTFALL_CURRENCY_RATES")]
    pub currency_rates: Option<PathBuf>,
    /// Seconds without a heartbeat or event before a visitor stops being active [120].
    #[arg(long, env = "FOOTFALL_ACTIVE_TIMEOUT_SECS")]
    pub active_timeout_secs: Option<u64>,
    /// Seconds within which the same visitor viewing the same path counts once; 0 = off [1800].
    #[arg(long, env = "FOOTFALL_DEDUP_WINDOW_SECS")]
    pub dedup_window_secs: Option<u64>,
    /// Minutes of inactivity that end a visit [30].
    #[arg(long, env = "FOOTFALL_VISIT_GAP_MINS")]
    pub visit_gap_mins: Option<u64>,
    /// Stats API requests per hour per key [600].
    #[arg(long, env = "FOOTFALL_API_RATE_LIMIT")]
    pub api_rate_limit: Option<u32>,
    /// Cap on DuckDB's memory, e.g. 512MB or 2GB [DuckDB's default: 80% of RAM].
    #[arg(long, env = "FOOTFALL_DB_MEMORY_LIMIT")]
    pub db_memory_limit: Option<String>,
    /// Seconds between snapshots of visit and live state; a restart replays the log written
    /// since the last one [300].
    #[arg(long, env = "FOOTFALL_SNAPSHOT_EVERY_SECS")]
    pub snapshot_every_secs: Option<u64>,
    /// Serve the dashboard and tracker from this folder (the repository's `web/`) instead of
    /// the copies built in; for working on them without rebuilding.
    #[arg(long, env = "FOOTFALL_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Add the public site demo.example with a month of history and live synthetic visitors.
    #[arg(long, env = "FOOTFALL_DEMO")]
    pub demo: bool,
    /// Always mark the dashboard's login cookie Secure (behind a TLS proxy that doesn't send
    /// X-Forwarded-Proto).
    #[arg(long, env = "FOOTFALL_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Don't keep rollups: every report scans raw events (for comparison; turning them back
    /// on rebuilds them at the next start).
    #[arg(long, env = "FOOTFALL_NO_ROLLUPS")]
    pub no_rollups: bool,
    /// Cluster mode: Redis for inboxes, logs and leases (`redis://host:6379/0`; needs
    /// appendonly yes, appendfsync always, maxmemory-policy noeviction). With
    /// --clickhouse and --postgres, this node is one of several behind a load balancer.
    #[arg(long, env = "FOOTFALL_REDIS")]
    pub redis: Option<String>,
    /// Cluster mode: ClickHouse's HTTP interface (`http://host:8123`).
    #[arg(long, env = "FOOTFALL_CLICKHOUSE")]
    pub clickhouse: Option<String>,
    /// Cluster mode: the ClickHouse database [footfall].
    #[arg(long, env = "FOOTFALL_CLICKHOUSE_DATABASE")]
    pub clickhouse_database: Option<String>,
    /// Cluster mode: PostgreSQL for sites, users and keys (`postgres://user@host/db`).
    #[arg(long, env = "FOOTFALL_POSTGRES", hide_env_values = true)]
    pub postgres: Option<String>,
    /// Cluster mode: log partitions, fixed when the cluster is created [8].
    #[arg(long, env = "FOOTFALL_PARTITIONS")]
    pub partitions: Option<u32>,
    /// Cluster mode: this node's name, unique in the cluster [hostname-pid].
    #[arg(long, env = "FOOTFALL_NODE_NAME")]
    pub node_name: Option<String>,
    /// Cluster mode: prefix of every Redis key [footfall].
    #[arg(long, env = "FOOTFALL_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// Cluster mode: most entries one partition may hold waiting for storage before
    /// ingest answers 503 [5000000].
    #[arg(long, env = "FOOTFALL_BACKLOG_LIMIT")]
    pub backlog_limit: Option<u64>,
    /// Cluster mode, for tests: the partition owners' lease TTL in milliseconds (how long
    /// a crashed node's partitions wait) [10000].
    #[arg(long, env = "FOOTFALL_OWNER_LEASE_MS", hide = true)]
    pub owner_lease_ms: Option<u64>,
    /// Cluster mode, for tests: the storage appliers' lease TTL in milliseconds; must
    /// exceed the slowest chunk by far [300000].
    #[arg(long, env = "FOOTFALL_APPLIER_LEASE_MS", hide = true)]
    pub applier_lease_ms: Option<u64>,
    /// Cluster mode, for tests: milliseconds between samples of the backlog metric [5000].
    #[arg(long, env = "FOOTFALL_BACKLOG_SAMPLE_MS", hide = true)]
    pub backlog_sample_ms: Option<u64>,
    /// Cluster mode, for benchmarks: fold a partition's rollup rows once it has this many
    /// [10000].
    #[arg(long, env = "FOOTFALL_ROLLUP_FOLD_ROWS", hide = true)]
    pub rollup_fold_rows: Option<u64>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    sites: Vec<String>,
    #[serde(default)]
    public_sites: Vec<String>,
    admin_token: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<IpNet>,
    geoip_db: Option<PathBuf>,
    currency_rates: Option<PathBuf>,
    active_timeout_secs: Option<u64>,
    dedup_window_secs: Option<u64>,
    visit_gap_mins: Option<u64>,
    api_rate_limit: Option<u32>,
    db_memory_limit: Option<String>,
    snapshot_every_secs: Option<u64>,
    web_dir: Option<PathBuf>,
    #[serde(default)]
    demo: bool,
    #[serde(default)]
    secure_cookies: bool,
    #[serde(default)]
    no_rollups: bool,
    redis: Option<String>,
    clickhouse: Option<String>,
    clickhouse_database: Option<String>,
    postgres: Option<String>,
    partitions: Option<u32>,
    node_name: Option<String>,
    redis_prefix: Option<String>,
    backlog_limit: Option<u64>,
}

pub struct Settings {
    pub server: ServerConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("invalid config file {0}: {1}")]
    Parse(PathBuf, toml::de::Error),
    #[error("{0}")]
    Site(#[from] footfall_core::types::InvalidDomain),
    #[error("cluster mode needs all of redis, clickhouse and postgres; missing: {0}")]
    Cluster(String),
}

fn parse_sites(raw: &[String]) -> Result<Vec<SiteId>, SettingsError> {
    raw.iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| SiteId::parse(s).map_err(SettingsError::from))
        .collect()
}

impl Settings {
    pub fn resolve(args: ServeArgs) -> Result<Settings, SettingsError> {
        let file = match &args.config {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|e| SettingsError::Read(p.clone(), e))?;
                toml::from_str::<FileSettings>(&text)
                    .map_err(|e| SettingsError::Parse(p.clone(), e))?
            }
            None => FileSettings::default(),
        };
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./footfall-data"));
        let mut c = ServerConfig::new(data_dir);
        if let Some(l) = args.listen.or(file.listen) {
            c.listen = l;
        }
        c.sites = parse_sites(if args.sites.is_empty() {
            &file.sites
        } else {
            &args.sites
        })?;
        c.public_sites = parse_sites(if args.public_sites.is_empty() {
            &file.public_sites
        } else {
            &args.public_sites
        })?;
        c.admin_token = args
            .admin_token
            .or(file.admin_token)
            .filter(|t| !t.is_empty());
        c.trusted_proxies = if args.trusted_proxies.is_empty() {
            file.trusted_proxies
        } else {
            args.trusted_proxies
        };
        c.geoip_db = args.geoip_db.or(file.geoip_db);
        c.currency_rates = args.currency_rates.or(file.currency_rates);
        if let Some(s) = args.active_timeout_secs.or(file.active_timeout_secs) {
            c.active_timeout_ms = (s as i64).max(1) * 1000;
        }
        if let Some(s) = args.dedup_window_secs.or(file.dedup_window_secs) {
            c.dedup_window_ms = s as i64 * 1000;
        }
        c.db_memory_limit = args.db_memory_limit.or(file.db_memory_limit);
        if let Some(n) = args.snapshot_every_secs.or(file.snapshot_every_secs) {
            c.snapshot_every_secs = n.max(1);
        }
        if let Some(n) = args.api_rate_limit.or(file.api_rate_limit) {
            c.api_rate_limit_per_hour = n.max(1);
        }
        if let Some(m) = args.visit_gap_mins.or(file.visit_gap_mins) {
            c.visit_gap_ms = (m as i64).max(1) * 60_000;
        }
        c.web_dir = args.web_dir.or(file.web_dir);
        c.demo = args.demo || file.demo;
        c.secure_cookies = args.secure_cookies || file.secure_cookies;
        c.rollups = !(args.no_rollups || file.no_rollups);
        let redis = args.redis.or(file.redis);
        let clickhouse = args.clickhouse.or(file.clickhouse);
        let postgres = args.postgres.or(file.postgres);
        c.cluster = match (redis, clickhouse, postgres) {
            (None, None, None) => None,
            (Some(r), Some(ch), Some(pg)) => {
                let mut k = ClusterConfig::new(r, ch, pg);
                if let Some(d) = args.clickhouse_database.or(file.clickhouse_database) {
                    k.clickhouse_database = d;
                }
                if let Some(n) = args.partitions.or(file.partitions) {
                    k.partitions = n.clamp(1, 255);
                }
                if let Some(n) = args.node_name.or(file.node_name) {
                    k.node = n;
                }
                if let Some(p) = args.redis_prefix.or(file.redis_prefix) {
                    k.prefix = p;
                }
                if let Some(n) = args.backlog_limit.or(file.backlog_limit) {
                    k.backlog_limit = n.max(1);
                }
                let ms = |n: u64| std::time::Duration::from_millis(n.max(100));
                if let Some(n) = args.owner_lease_ms {
                    k.owner_lease = ms(n);
                }
                if let Some(n) = args.applier_lease_ms {
                    k.applier_lease = ms(n);
                }
                if let Some(n) = args.backlog_sample_ms {
                    k.backlog_sample = ms(n);
                }
                if let Some(n) = args.rollup_fold_rows {
                    k.fold_rows = n.max(1);
                }
                Some(k)
            }
            (r, ch, pg) => {
                let missing: Vec<&str> = [
                    ("redis", r.is_none()),
                    ("clickhouse", ch.is_none()),
                    ("postgres", pg.is_none()),
                ]
                .into_iter()
                .filter(|(_, m)| *m)
                .map(|(n, _)| n)
                .collect();
                return Err(SettingsError::Cluster(missing.join(", ")));
            }
        };
        Ok(Settings { server: c })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9999\"\nsites = [\"a.com\"]\ndedup_window_secs = 60\nadmin_token = \"file\"\n").unwrap();
        let s = Settings::resolve(ServeArgs {
            config: Some(path.clone()),
            admin_token: Some("flag".into()),
            ..Default::default()
        })
        .unwrap()
        .server;
        assert_eq!(s.listen.port(), 9999);
        assert_eq!(s.sites, vec![SiteId::parse("a.com").unwrap()]);
        assert_eq!(s.dedup_window_ms, 60_000);
        assert_eq!(s.admin_token.as_deref(), Some("flag"));
        assert_eq!(s.active_timeout_ms, 120_000);
        std::fs::write(&path, "bogus = 1\n").unwrap();
        assert!(Settings::resolve(ServeArgs {
            config: Some(path),
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn cluster_settings_need_all_three_services() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "clickhouse = \"http://ch:8123\"\npostgres = \"postgres://p/f\"\npartitions = 4\nnode_name = \"web-1\"\n",
        )
        .unwrap();
        // The file names two of the three; a flag gives the third.
        let s = Settings::resolve(ServeArgs {
            config: Some(path.clone()),
            redis: Some("redis://r:6379/0".into()),
            partitions: Some(6),
            owner_lease_ms: Some(1_500),
            ..Default::default()
        })
        .unwrap()
        .server;
        let k = s.cluster.expect("cluster mode");
        // The tests' knobs: given, or the production defaults.
        assert_eq!(k.owner_lease, std::time::Duration::from_millis(1_500));
        assert_eq!(k.applier_lease, std::time::Duration::from_secs(300));
        assert_eq!(k.backlog_sample, std::time::Duration::from_secs(5));
        assert_eq!(
            (k.redis.as_str(), k.clickhouse.as_str(), k.postgres.as_str()),
            ("redis://r:6379/0", "http://ch:8123", "postgres://p/f")
        );
        assert_eq!((k.partitions, k.node.as_str()), (6, "web-1"));
        assert_eq!(k.clickhouse_database, "footfall");
        // Two of three is a clear error naming what is missing.
        let err = Settings::resolve(ServeArgs {
            config: Some(path),
            ..Default::default()
        })
        .err()
        .expect("refused");
        assert!(err.to_string().contains("missing: redis"), "{err}");
        // None: embedded mode.
        let s = Settings::resolve(ServeArgs::default()).unwrap().server;
        assert!(s.cluster.is_none());
    }
}
