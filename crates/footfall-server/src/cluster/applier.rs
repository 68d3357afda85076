//! The storage applier of a partition: moves its log into the event store (ClickHouse) in
//! chunks, one node at a time, and trims the log only behind what storage confirmed.
//!
//! Exactly once rests on the store: every row carries its log position, a chunk ends with
//! a marker row, and the next writer first deletes whatever lies past the marker (see
//! `footfall_store::clickhouse`). The lease keeps two appliers from writing the same
//! partition at once. ClickHouse cannot check a fencing token, so that exclusion is by
//! time: an applier renews its lease right before every chunk, so each chunk starts with
//! a whole TTL ahead. A chunk that takes longer than the TTL — a process paused mid-chunk,
//! or a ClickHouse so slow that the cleanup of a dead chunk (up to 2 minutes) and the
//! inserts outlast it — could write beside its successor. The TTL should therefore exceed
//! the slowest chunk by a wide margin (production default: 5 minutes; storage failover
//! after a crash waits that long, ingest does not).

use crate::pipeline::recovery;
use footfall_store::redis::{Lease, RedisLog, RedisSnapshot, Token};
use footfall_store::{EventStore, Log, LogPosition};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

/// What an applier has done, for metrics and tests.
#[derive(Debug, Default)]
pub struct ApplierStats {
    pub chunks: AtomicU64,
    pub records: AtomicU64,
    pub failures: AtomicU64,
    pub takeovers: AtomicU64,
    /// The partition's applied position as last seen by this node.
    pub applied: AtomicU64,
    pub trimmed_bytes: AtomicU64,
    /// Whether this node applies the partition now.
    pub holding: AtomicBool,
    /// Whether more was waiting in the log after the last chunk.
    pub last_chunk_full: AtomicBool,
    /// Sites' rollups rebuilt (a zone change, rows from before rollups were kept).
    pub rollup_rebuilds: AtomicU64,
}

/// How often an applier asks whether a site's rollups in its partition went stale.
const STALE_CHECK: Duration = Duration::from_secs(5);

pub struct PartitionApplier {
    pub part: u32,
    pub lease: Lease,
    /// A reader of the partition's log.
    pub log: RedisLog,
    pub store: Box<dyn EventStore>,
    /// The owner's snapshots (sequencer, live): the log must keep everything after the
    /// older of them too, or a takeover or a starting node could not replay.
    pub snapshots: Vec<RedisSnapshot>,
    pub chunk_records: usize,
    pub chunk_bytes: usize,
    /// Wait when idle, and before retrying a failed chunk.
    pub poll: Duration,
    pub stats: Arc<ApplierStats>,
    /// Test hook: end the loop at the first failed chunk, keeping the lease, as a process
    /// killed at that point would.
    pub halt_on_failure: bool,
}

impl PartitionApplier {
    /// Runs until `stop` is set. `release` says whether to give the lease up on the way
    /// out (a crash does not).
    pub fn run(mut self, stop: Arc<AtomicBool>, release: impl Fn() -> bool) {
        let mut held: Option<Token> = None;
        let mut next_check = std::time::Instant::now();
        while !stop.load(SeqCst) {
            let ready;
            (held, ready) = self.keep_lease(held);
            self.stats.holding.store(held.is_some(), Relaxed);
            if !ready {
                std::thread::sleep(self.poll);
                continue;
            }
            if std::time::Instant::now() >= next_check {
                // One site at a time, with the lease just renewed, and a chunk between two
                // (the log must not wait for a long list of rebuilds).
                let rebuilt = self.rebuild_one(&stop);
                next_check =
                    std::time::Instant::now() + if rebuilt { self.poll } else { STALE_CHECK };
                continue;
            }
            match self.apply_chunk() {
                // A whole chunk: more is waiting, go on at once.
                Ok(true) if self.stats.last_chunk_full.load(Relaxed) => {}
                // A partial one: wait a poll before the next, so that ClickHouse gets a
                // few larger inserts rather than a stream of tiny ones (each insert is a
                // part it must merge).
                Ok(true) => std::thread::sleep(self.poll),
                Ok(false) => std::thread::sleep(self.poll),
                Err(e) => {
                    self.stats.failures.fetch_add(1, Relaxed);
                    if self.halt_on_failure {
                        return;
                    }
                    tracing::warn!(part = self.part, error = %e, "storage chunk failed; retrying");
                    // Whatever part of it got in is found and removed before the retry.
                    self.store.forget_applied();
                    std::thread::sleep(self.poll);
                }
            }
        }
        self.stats.holding.store(false, Relaxed);
        if let Some(token) = held {
            if release() {
                let _ = self.lease.release(&token);
            }
        }
    }

    /// Rebuilds the rollups of one site that went stale in this partition, if any.
    /// Returns whether it did (there may be more).
    fn rebuild_one(&mut self, stop: &AtomicBool) -> bool {
        let site = match self.store.stale_rollups() {
            Ok(sites) => match sites.into_iter().next() {
                Some(site) => site,
                None => return false,
            },
            Err(e) => {
                tracing::warn!(part = self.part, error = %e, "cannot check the rollups");
                return false;
            }
        };
        tracing::info!(part = self.part, %site, "rebuilding rollups from raw rows");
        match self
            .store
            .rebuild_rollups(&site, &mut |_| !stop.load(SeqCst))
        {
            Ok(()) => {
                self.stats.rollup_rebuilds.fetch_add(1, Relaxed);
                true
            }
            Err(e) => {
                // Reports read the site's raw rows meanwhile; the next check tries again.
                tracing::warn!(part = self.part, %site, error = %e, "rollup rebuild failed");
                self.store.forget_applied();
                false
            }
        }
    }

    /// Renews (or takes) the lease before every chunk, so each starts with a whole TTL.
    /// Returns the token held afterwards and whether a chunk may start now. A failed
    /// renewal keeps the token, so the next try renews it rather than waiting out the TTL.
    fn keep_lease(&mut self, held: Option<Token>) -> (Option<Token>, bool) {
        match self.lease.acquire_or_renew(held.as_ref()) {
            Ok(Some(t)) => {
                // Swaps that cannot be undone stop a margin before the lease could lapse.
                let margin = self.lease.ttl() / 5;
                self.store
                    .hold_until(std::time::Instant::now() + self.lease.ttl() - margin);
                if held.as_ref() != Some(&t) {
                    // Another node may have written since this one last did.
                    self.store.forget_applied();
                    self.stats.takeovers.fetch_add(1, Relaxed);
                    tracing::info!(part = self.part, epoch = t.epoch(), "applying partition");
                }
                (Some(t), true)
            }
            Ok(None) => (None, false),
            Err(e) => {
                tracing::warn!(part = self.part, error = %e, "cannot renew the applier lease");
                (held, false)
            }
        }
    }

    /// Applies the next chunk if there is one. Returns whether there was.
    fn apply_chunk(&mut self) -> Result<bool, String> {
        let (applied, _) = self.store.applied().map_err(|e| e.to_string())?;
        self.stats.applied.store(applied.0, Relaxed);
        if applied >= self.log.end() {
            self.trim(applied);
            return Ok(false);
        }
        let batch = self
            .log
            .read_after(applied, self.chunk_records, self.chunk_bytes)
            .map_err(|e| e.to_string())?;
        let n = batch.len() as u64;
        let records = recovery::decode(batch)?;
        let reached = self.store.apply(&records).map_err(|e| e.to_string())?;
        self.stats.chunks.fetch_add(1, Relaxed);
        self.stats.records.fetch_add(n, Relaxed);
        self.stats
            .last_chunk_full
            .store(reached < self.log.end(), Relaxed);
        self.stats.applied.store(reached.0, Relaxed);
        self.trim(reached);
        Ok(true)
    }

    /// Trims the log behind both storage and the owner's snapshot: only after storage
    /// confirmed, and never what a takeover would replay.
    fn trim(&self, applied: LogPosition) {
        let mut snapshot = u64::MAX;
        for s in &self.snapshots {
            match s.position() {
                Ok(p) => snapshot = snapshot.min(p.unwrap_or(0)),
                Err(e) => {
                    tracing::debug!(part = self.part, error = %e, "snapshot position unknown; not trimming");
                    return;
                }
            }
        }
        let upto = LogPosition(applied.0.min(snapshot));
        if upto.0 < self.log.first().0 {
            return;
        }
        match self.log.trim(upto) {
            Ok(freed) => {
                self.stats.trimmed_bytes.fetch_add(freed, Relaxed);
            }
            Err(e) => tracing::warn!(part = self.part, error = %e, "log trim failed"),
        }
    }
}
