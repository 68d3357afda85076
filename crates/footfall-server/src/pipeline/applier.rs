//! The storage applier: follows the log and writes its records to storage in large
//! batches, each transaction recording the last position it holds. Requests never wait for
//! it; readers of stored data wait until it has reached the log's end as of their start
//! ([`ReadBarrier`]), so an acknowledged event is in every query that begins after it.
//!
//! A failed transaction changes nothing and is retried; the log keeps the records until
//! storage has them, so storage being slow or failing never loses or refuses an event.

use super::recovery::{self, Retention};
use crate::metrics::Metrics;
use footfall_store::{EventStore, Log, LogPosition};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Records per transaction at most, and bytes read per batch.
const BATCH_RECORDS: usize = 4096;
const BATCH_BYTES: usize = 32 << 20;
/// Wait before retrying a failed transaction.
const RETRY: Duration = Duration::from_secs(1);
/// How long new records may gather before a transaction, unless a reader is waiting: each
/// DuckDB transaction has a fixed cost, and under load many small ones would take the CPU
/// that ingest needs.
const GATHER: Duration = Duration::from_millis(200);
/// How often to look for closed days to compact when the last look found none.
const COMPACT_EVERY: Duration = Duration::from_secs(60);
/// Days before today (UTC) that stay in the hot tier: late events mostly land there.
const HOT_DAYS: i64 = 1;

pub struct StorageApplier {
    pub store: Box<dyn EventStore>,
    pub log: Arc<dyn Log>,
    pub retention: Arc<Retention>,
    pub metrics: Arc<Metrics>,
    pub applied: watch::Sender<LogPosition>,
    /// Readers waiting for storage to catch up: apply now rather than gather.
    pub nudge: Arc<Notify>,
    /// Whether rollups are kept (`--no-rollups` turns them off).
    pub keep_rollups: bool,
}

/// Stops the applier once it has applied everything the log holds.
pub struct ApplierHandle {
    stop: watch::Sender<bool>,
    thread: std::thread::JoinHandle<()>,
}

impl ApplierHandle {
    /// Drains the log into storage, checkpoints, and waits for the thread to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let t = self.thread;
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
}

impl StorageApplier {
    /// Starts the applier on its own thread (DuckDB calls block); call from the runtime,
    /// whose timers it uses to wait.
    pub fn spawn(self) -> std::io::Result<ApplierHandle> {
        let (stop, stop_rx) = watch::channel(false);
        let rt = tokio::runtime::Handle::current();
        let thread = std::thread::Builder::new()
            .name("footfall-applier".into())
            .spawn(move || self.run(&rt, stop_rx))?;
        Ok(ApplierHandle { stop, thread })
    }

    fn run(mut self, rt: &tokio::runtime::Handle, mut stop: watch::Receiver<bool>) {
        yield_cpu_to_ingest();
        // Before anything is applied (and before a rebuild, which can take minutes), so the
        // lag a restart starts with is reported as it is.
        let at_start = self.applied.borrow().0;
        self.metrics.applied.store(at_start, Relaxed);
        self.metrics.log_end.store(self.log.end().0, Relaxed);
        self.rebuild_stale_rollups(&stop);
        let mut end = self.log.subscribe();
        let mut applied = *self.applied.borrow();
        let mut compaction = Compaction::default();
        loop {
            let target = self.log.end();
            self.metrics.log_end.store(target.0, Relaxed);
            self.metrics.log_bytes.store(self.log.size_bytes(), Relaxed);
            if applied >= target {
                if *stop.borrow() {
                    break;
                }
                // Idle: move what closed days are left before waiting.
                while compaction.when_idle(self.store.as_mut(), &self.metrics) {
                    if *stop.borrow() || self.log.end() > applied {
                        break;
                    }
                }
                // Sleep until the log grows or we are told to stop.
                let open = rt.block_on(async {
                    tokio::select! {
                        r = end.changed() => r.is_ok(),
                        r = stop.changed() => r.is_ok(),
                    }
                });
                if !open {
                    break;
                }
                continue;
            }
            if !*stop.borrow() && target.0 - applied.0 < BATCH_RECORDS as u64 {
                rt.block_on(async {
                    tokio::select! {
                        _ = tokio::time::sleep(GATHER) => {}
                        _ = self.nudge.notified() => {}
                        _ = stop.changed() => {}
                    }
                });
            }
            match self.apply_after(applied) {
                Ok(p) => {
                    applied = p;
                    self.metrics.applied.store(p.0, Relaxed);
                    self.applied.send_replace(p);
                    self.retention.storage_at(p);
                    recovery::trim(self.log.as_ref(), &self.retention);
                    compaction.when_busy(self.store.as_mut(), &self.metrics);
                }
                Err(e) => {
                    self.metrics.apply_failures.fetch_add(1, Relaxed);
                    tracing::error!(error = %e, position = applied.0, "storage apply failed; retrying");
                    if *stop.borrow() {
                        tracing::warn!(
                            "stopping with records not yet in storage; the next start applies them"
                        );
                        return;
                    }
                    rt.block_on(async {
                        tokio::select! {
                            _ = tokio::time::sleep(RETRY) => {}
                            _ = stop.changed() => {}
                        }
                    });
                }
            }
        }
        if let Err(e) = self.store.checkpoint() {
            tracing::warn!(error = %e, "checkpoint at shutdown failed");
        }
    }

    /// Brings rollups up to date where the schema or a site's time zone changed, before
    /// applying anything new; reports read raw rows for those sites meanwhile. Stopping
    /// interrupts it (the next start resumes).
    fn rebuild_stale_rollups(&mut self, stop: &watch::Receiver<bool>) {
        if !self.keep_rollups {
            return;
        }
        let sites = match self.store.stale_rollups() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "could not check the rollups");
                return;
            }
        };
        for site in sites {
            let started = std::time::Instant::now();
            tracing::info!(%site, "rebuilding rollups from raw events");
            let result = self.store.rebuild_rollups(&site, &mut |p| {
                tracing::debug!(%site, days = p.done, of = p.total, "rollup rebuild");
                !*stop.borrow()
            });
            match result {
                Ok(()) => {
                    tracing::info!(%site, secs = started.elapsed().as_secs_f64(), "rollups rebuilt")
                }
                Err(e) => {
                    tracing::warn!(%site, error = %e, "rollup rebuild stopped; it resumes at the next start");
                    return;
                }
            }
        }
    }

    fn apply_after(&mut self, applied: LogPosition) -> Result<LogPosition, String> {
        let started = std::time::Instant::now();
        let (p, _) = apply_next(self.store.as_mut(), self.log.as_ref(), applied)?;
        self.metrics
            .apply_seconds_sum_us
            .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
        self.metrics.applies.fetch_add(1, Relaxed);
        Ok(p)
    }
}

/// When to move closed days of raw rows to the archive tier (see the store's `compact`):
/// freely while the applier is idle, once a minute at most while it has a backlog (a step
/// costs a scan of the hot tier, and new records come first).
#[derive(Default)]
struct Compaction {
    /// No look before this while idle: the last one found nothing or failed.
    idle_after: Option<std::time::Instant>,
    /// No step before this while busy.
    busy_after: Option<std::time::Instant>,
}

impl Compaction {
    fn when_idle(&mut self, store: &mut dyn EventStore, metrics: &Metrics) -> bool {
        if self
            .idle_after
            .is_some_and(|t| t > std::time::Instant::now())
        {
            return false;
        }
        let moved = Self::step(store, metrics);
        if !moved {
            self.idle_after = Some(std::time::Instant::now() + COMPACT_EVERY);
        }
        moved
    }

    fn when_busy(&mut self, store: &mut dyn EventStore, metrics: &Metrics) {
        let now = std::time::Instant::now();
        if self.busy_after.is_some_and(|t| t > now) {
            return;
        }
        self.busy_after = Some(now + COMPACT_EVERY);
        Self::step(store, metrics);
    }

    /// Moves one closed day; returns whether it moved anything (more may be left).
    /// Failures are logged and retried later: compaction only speeds reads up.
    fn step(store: &mut dyn EventStore, metrics: &Metrics) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        match store.compact(now - HOT_DAYS * 86_400_000) {
            Ok(Some(moved)) => {
                metrics.compacted_events.fetch_add(moved.events, Relaxed);
                tracing::debug!(
                    day_start = moved.day_start,
                    events = moved.events,
                    visits = moved.session_rows,
                    rollup_rows = moved.rollup_rows,
                    "compaction step"
                );
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(error = %e, "compaction failed; retrying later");
                false
            }
        }
    }
}

/// Lowers this thread's scheduling priority (nice 10). When the CPU is contended, requests
/// — which wait only for the log — go first, and storage catches up in the gaps: the log
/// holds the backlog, and readers still see everything acknowledged before them (they wait
/// for it). Best effort: without permission the thread simply keeps its priority.
fn yield_cpu_to_ingest() {
    // SAFETY: plain system calls on the calling thread, with no pointers.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10)
    };
    if rc != 0 {
        tracing::debug!("could not lower the storage applier's priority");
    }
}

/// Applies every record storage doesn't have yet, without a server (offline commands).
/// Returns how many records were applied.
pub fn catch_up(store: &mut dyn EventStore, log: &dyn Log) -> Result<u64, String> {
    let (mut applied, _) = store.applied().map_err(|e| e.to_string())?;
    let mut n = 0;
    while applied < log.end() {
        let (p, records) = apply_next(store, log, applied)?;
        applied = p;
        n += records;
    }
    Ok(n)
}

/// One transaction's worth: the records after `applied`, read, decoded and stored. Returns
/// the position reached and how many records that was.
fn apply_next(
    store: &mut dyn EventStore,
    log: &dyn Log,
    applied: LogPosition,
) -> Result<(LogPosition, u64), String> {
    let batch = log
        .read_after(applied, BATCH_RECORDS, BATCH_BYTES)
        .map_err(|e| e.to_string())?;
    let records = recovery::decode(batch)?;
    let p = store.apply(&records).map_err(|e| e.to_string())?;
    Ok((p, records.len() as u64))
}

/// Lets a reader of stored data wait until storage holds everything acknowledged before it
/// began.
#[derive(Clone)]
pub struct ReadBarrier {
    pub log: Arc<dyn Log>,
    pub applied: watch::Receiver<LogPosition>,
    pub nudge: Arc<Notify>,
}

impl ReadBarrier {
    /// Waits (up to `limit`) until storage has applied the log as it stands now. Returns
    /// false if it hadn't by then; the caller answers from what is stored.
    pub async fn wait(&self, limit: Duration) -> bool {
        let target = self.log.end();
        let mut rx = self.applied.clone();
        if *rx.borrow() < target {
            self.nudge.notify_one();
        }
        let reached = tokio::time::timeout(limit, rx.wait_for(|p| *p >= target)).await;
        matches!(reached, Ok(Ok(_)))
    }
}
