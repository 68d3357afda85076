//! Starting and stopping a cluster node: the same HTTP server as embedded mode, over the
//! shared services. Every node runs an owner loop and a storage applier per partition
//! (each acts only while it holds that partition's lease, so the work spreads over the
//! nodes that are up and moves when one goes), a live follower, and the inbox writer.

use super::applier::{ApplierStats, PartitionApplier};
use super::barrier::ClusterBarrier;
use super::inbox_writer::InboxWriter;
use super::live::{follow, ClusterLive, FollowedPartition};
use super::owner::{Exit, Owner, OwnerStats};
use super::snapshot::PartitionSnapshot;
use crate::app::{serve, Backend, Background, Running, StartError};
use crate::clock::Clock;
use crate::config::{ClusterConfig, ServerConfig};
use crate::metrics::Metrics;
use footfall_core::identify::Config as IdentifyConfig;
use footfall_store::redis::{
    partition_tag, Attempts, Conn, Inbox, Lease, Notices, RedisLog, RedisLogOptions, RedisSnapshot,
    Role, TokenBuckets,
};
use footfall_store::{ChStore, MetadataStore, PgStore};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The node's threads, stopped at shutdown.
pub struct NodeHandle {
    stop: Arc<AtomicBool>,
    pub(crate) threads: Vec<std::thread::JoinHandle<()>>,
    pub owners: Vec<Arc<OwnerStats>>,
    pub appliers: Vec<Arc<ApplierStats>>,
}

impl NodeHandle {
    /// Stops the loops; owners snapshot and release their leases on the way out, so the
    /// other nodes take the partitions over at once.
    pub async fn shutdown(self) {
        self.stop.store(true, SeqCst);
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

/// The sites' time zones for the appliers' rollups: read from PostgreSQL at start (which a
/// node needs anyway) and again every few seconds, and the last known kept while
/// PostgreSQL cannot be asked — storage must go on without it.
struct ZoneBook {
    source: PgStore,
    state: std::sync::Mutex<(
        std::collections::HashMap<String, chrono_tz::Tz>,
        std::time::Instant,
    )>,
}

impl ZoneBook {
    const FRESH: Duration = Duration::from_secs(2);
    const RETRY: Duration = Duration::from_secs(10);

    fn new(source: PgStore) -> Result<ZoneBook, StartError> {
        let zones = Self::read(&source)?;
        Ok(ZoneBook {
            source,
            state: std::sync::Mutex::new((zones, std::time::Instant::now() + Self::FRESH)),
        })
    }

    fn read(
        source: &PgStore,
    ) -> Result<std::collections::HashMap<String, chrono_tz::Tz>, footfall_store::StoreError> {
        Ok(source
            .sites()?
            .into_iter()
            .map(|s| {
                let tz = s.timezone.parse().unwrap_or(chrono_tz::UTC);
                (s.domain.as_str().to_string(), tz)
            })
            .collect())
    }

    fn zones(&self) -> std::collections::HashMap<String, chrono_tz::Tz> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        if now >= state.1 {
            match Self::read(&self.source) {
                Ok(z) => *state = (z, now + Self::FRESH),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the sites' time zones; rollups use the last known");
                    state.1 = now + Self::RETRY;
                }
            }
        }
        state.0.clone()
    }
}

/// Inbox writer threads per node: enough that a group is always on its way to Redis
/// while the previous one waits for its fsync.
const INBOX_WRITERS: usize = 4;

fn redis(c: &ClusterConfig) -> Result<Arc<Conn>, StartError> {
    Conn::open(&c.redis)
        .map(Arc::new)
        .map_err(|e| StartError::Cluster(format!("redis {}: {e}", c.redis)))
}

fn spawn(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, StartError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(StartError::Thread)
}

pub async fn start(config: ServerConfig, clock: Arc<dyn Clock>) -> Result<Running, StartError> {
    let Some(c) = config.cluster.clone() else {
        return Err(StartError::Cluster("no cluster settings".into()));
    };
    let cfg = config.clone();
    let clock2 = clock.clone();
    let opened = tokio::task::spawn_blocking(move || -> Result<_, StartError> {
        let metadata = PgStore::open(&c.postgres)?;
        crate::app::register_sites(&cfg, &metadata, clock2.now().0)?;
        let reads = ChStore::open(&c.clickhouse, &c.clickhouse_database, 0)?;
        let positions = ChStore::open(&c.clickhouse, &c.clickhouse_database, 0)?;
        // The appliers' source of the sites' time zones (rollups are kept in them).
        let zone_source = PgStore::open(&c.postgres)?;
        Ok((metadata, reads, positions, zone_source))
    })
    .await
    .map_err(|e| StartError::Cluster(format!("startup task failed: {e}")))??;
    let (metadata, reads, positions, zone_source) = opened;
    let book = Arc::new(ZoneBook::new(zone_source)?);
    let zones: footfall_store::clickhouse::Zones = Arc::new(move || Ok(book.zones()));
    let c = config
        .cluster
        .clone()
        .ok_or_else(|| StartError::Cluster("no cluster settings".into()))?;
    let parts = c.partitions.max(1);
    let identify = IdentifyConfig {
        visit_gap_ms: config.visit_gap_ms,
        dedup_window_ms: config.dedup_window_ms,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let mut owners = Vec::new();
    let mut appliers = Vec::new();
    let reader = || RedisLogOptions::default();
    for part in 0..parts {
        let tag = partition_tag(&c.prefix, part);
        // The owner: one connection for its lease, log, snapshots and inbox reads.
        let conn = redis(&c)?;
        let log = RedisLog::open(
            conn.clone(),
            &c.prefix,
            part,
            RedisLogOptions {
                role: Role::Writer { fence: None },
                ..Default::default()
            },
        )?;
        let stats = Arc::new(OwnerStats::default());
        let owner = Owner {
            part,
            lease: Lease::new(
                conn.clone(),
                format!("{tag}:seq-lease"),
                &c.node,
                c.owner_lease,
            ),
            log,
            inbox: Arc::new(Inbox::new(conn.clone(), &c.prefix, parts, c.backlog_limit)),
            snapshot: PartitionSnapshot::new(RedisSnapshot::new(
                conn.clone(),
                &c.prefix,
                part,
                "sequencer",
            )),
            live_snapshot: PartitionSnapshot::new(RedisSnapshot::new(
                conn, &c.prefix, part, "live",
            )),
            active_timeout_ms: config.active_timeout_ms,
            identify,
            clock: clock.clone(),
            max_batch: config.batch_max_events.max(1),
            snapshot_every: Duration::from_secs(config.snapshot_every_secs.clamp(1, 60)),
            poll: Duration::from_millis(200),
            stats: stats.clone(),
        };
        let s = stop.clone();
        threads.push(spawn("footfall-owner", move || {
            owner.run(s, || Exit::Graceful)
        })?);
        owners.push(stats);

        // The storage applier: its own connections (Redis, ClickHouse).
        let conn = redis(&c)?;
        let mut store = ChStore::open(&c.clickhouse, &c.clickhouse_database, part as u16)
            .map_err(StartError::Store)?;
        store.keep_rollups(zones.clone());
        store.fold_rollups_at(c.fold_rows);
        let stats = Arc::new(ApplierStats::default());
        let applier = PartitionApplier {
            part,
            lease: Lease::new(
                conn.clone(),
                format!("{tag}:apply-lease"),
                &c.node,
                c.applier_lease,
            ),
            log: RedisLog::open(conn.clone(), &c.prefix, part, reader())?,
            store: Box::new(store),
            snapshots: vec![
                RedisSnapshot::new(conn.clone(), &c.prefix, part, "sequencer"),
                RedisSnapshot::new(conn, &c.prefix, part, "live"),
            ],
            chunk_records: 4096,
            chunk_bytes: 32 << 20,
            // Also the pause after a partial chunk: at most 4 inserts per second and
            // partition under a steady trickle (reports wait at most this long for it).
            poll: Duration::from_millis(250),
            stats: stats.clone(),
            halt_on_failure: false,
        };
        let s = stop.clone();
        threads.push(spawn("footfall-applier", move || applier.run(s, || true))?);
        appliers.push(stats);
    }

    // Live state: follows every partition's log.
    let live = Arc::new(ClusterLive::new(parts, config.active_timeout_ms));
    // History copied in from an embedded installation (`footfall migrate`), if any.
    let base = super::live::base_blob(redis(&c)?, &c.prefix);
    match tokio::task::spawn_blocking(move || super::live::read_base(&base)).await {
        Ok(Ok(Some(counters))) => live.set_base(counters),
        Ok(Ok(None)) => {}
        Ok(Err(e)) => {
            return Err(StartError::Cluster(format!(
                "reading the migrated live counters: {e}"
            )))
        }
        Err(e) => return Err(StartError::Cluster(format!("startup task failed: {e}"))),
    }
    let mut followed = Vec::new();
    for part in 0..parts {
        let conn = redis(&c)?;
        followed.push(FollowedPartition {
            log: RedisLog::open(conn.clone(), &c.prefix, part, reader())?,
            live_snapshot: RedisSnapshot::new(conn, &c.prefix, part, "live"),
        });
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (l, s) = (live.clone(), stop.clone());
    threads.push(spawn("footfall-live", move || {
        follow(l, followed, s, Some(ready_tx))
    })?);
    // Serve live stats only once they include what the logs hold.
    let _ = tokio::task::spawn_blocking(move || ready_rx.recv()).await;

    // Read-your-writes for reports.
    let conn = redis(&c)?;
    let mut logs = Vec::new();
    for part in 0..parts {
        logs.push(RedisLog::open(conn.clone(), &c.prefix, part, reader())?);
    }
    let barrier = ClusterBarrier::new(
        Inbox::new(conn, &c.prefix, parts, c.backlog_limit),
        logs,
        positions,
    );

    let inboxes = (0..INBOX_WRITERS)
        .map(|_| {
            Ok(Arc::new(Inbox::new(
                redis(&c)?,
                &c.prefix,
                parts,
                c.backlog_limit,
            )))
        })
        .collect::<Result<Vec<_>, StartError>>()?;
    let writer =
        InboxWriter::spawn(inboxes, config.batch_max_events.max(1)).map_err(StartError::Thread)?;

    let stop_for_notices = stop.clone();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    spawn_expiry(live.clone(), clock.clone(), shutdown_rx.clone());
    let metrics = Arc::new(Metrics::default());
    let _ = metrics.cluster.set(crate::metrics::ClusterStats {
        owners: owners.clone(),
        appliers: appliers.clone(),
    });
    spawn_backlog_sampler(
        Inbox::new(redis(&c)?, &c.prefix, parts, c.backlog_limit),
        metrics.clone(),
        c.backlog_sample,
        shutdown_rx.clone(),
    );
    let backend = Backend {
        metadata: Box::new(metadata) as Box<dyn MetadataStore>,
        reads: Box::new(reads),
        live,
        stored: crate::state::Stored::Cluster(barrier),
        writer: crate::ingest::EventWriter::Cluster(writer, metrics.clone()),
        background: Background::Cluster(NodeHandle {
            stop,
            threads,
            owners,
            appliers,
        }),
    };
    let node_stop = stop_for_notices;
    let mut running = serve(
        config,
        clock.clone(),
        metrics,
        backend,
        (shutdown_tx, shutdown_rx),
    )
    .await?;

    // Metadata changed on any node: every node reloads its caches (a key revoked on one
    // node stops working on all of them at once).
    let notices = Arc::new(Notices::new(redis(&c)?, &c.redis, &c.prefix, "metadata"));
    let publish = notices.clone();
    let hook: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        if let Err(e) = publish.publish() {
            tracing::warn!(error = %e, "cannot tell the other nodes of a metadata change");
        }
    });
    let state = running.state.clone();
    state.ingest.sites.on_change.set(hook.clone());
    state.access.keys.on_change.set(hook.clone());
    state.access.accounts.on_change.set(hook);
    // The Stats API's per-key budget counts across nodes.
    let buckets = TokenBuckets::new(redis(&c)?, &c.prefix);
    let budget: crate::keys::SharedBudget = Arc::new(move |id, per_hour| {
        buckets
            .take(id, per_hour)
            .map_err(|e| tracing::warn!(error = %e, "cannot reach the shared rate limit; letting the request through"))
            .ok()
    });
    let _ = state.access.keys.shared_budget.set(budget);
    let brake: Arc<dyn crate::accounts::LoginBrake> =
        Arc::new(SharedBrake(Attempts::new(redis(&c)?, &c.prefix)));
    let _ = state.access.accounts.shared_brake.set(brake);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let listener = spawn("footfall-notices", move || {
        let mut ready = Some(ready_tx);
        notices.listen(&node_stop, || {
            reload_metadata(&state, clock.as_ref());
            if let Some(tx) = ready.take() {
                let _ = tx.send(());
            }
        })
    })?;
    let _ =
        tokio::task::spawn_blocking(move || ready_rx.recv_timeout(Duration::from_secs(10))).await;
    running.add_thread(listener);
    Ok(running)
}

/// The login brake's counters in Redis.
struct SharedBrake(Attempts);

impl crate::accounts::LoginBrake for SharedBrake {
    fn attempt(&self, counters: &[(String, u32)], window_ms: i64) -> Option<bool> {
        self.0
            .attempt(counters, window_ms)
            .map_err(
                |e| tracing::warn!(error = %e, "cannot reach the login brake; refusing the login"),
            )
            .ok()
    }

    fn forgive(&self, counters: &[String]) {
        if let Err(e) = self.0.forgive(counters) {
            tracing::warn!(error = %e, "cannot take a login attempt back");
        }
    }
}

fn reload_metadata(state: &crate::state::AppState, clock: &dyn Clock) {
    if let Err(e) = state.ingest.sites.reload() {
        tracing::warn!(error = %e, "cannot reload sites");
    }
    if let Err(e) = state.access.keys.reload() {
        tracing::warn!(error = %e, "cannot reload API keys");
    }
    if let Err(e) = state.access.accounts.reload(clock.now().0) {
        tracing::warn!(error = %e, "cannot reload users and sessions");
    }
}

/// Streams must see "active now" fall without a new event: expire once a second.
fn spawn_expiry(
    live: Arc<ClusterLive>,
    clock: Arc<dyn Clock>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => live.expire(clock.as_ref()),
                _ = shutdown.changed() => break,
            }
        }
    });
}

/// Samples the backlog (all partitions' inboxes and logs) into the metrics every `every`
/// (5 s unless configured otherwise).
fn spawn_backlog_sampler(
    inbox: Inbox,
    metrics: Arc<Metrics>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let inbox = Arc::new(inbox);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            let inbox = inbox.clone();
            let total = tokio::task::spawn_blocking(move || {
                (0..inbox.parts())
                    .map(|p| inbox.backlog(p))
                    .sum::<Result<u64, _>>()
            })
            .await;
            if let Ok(Ok(total)) = total {
                metrics
                    .cluster_backlog
                    .store(total as i64, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
}
