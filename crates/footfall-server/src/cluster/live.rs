//! A cluster node's live state: every node follows every partition's log, so an SSE
//! stream on node A moves when node B ingests, with no extra channel — the log is the
//! channel, and its watcher (a blocking `XREAD`) wakes the follower within milliseconds.
//!
//! Counters are kept per partition (`PartitionedLive`), each starting from the live
//! snapshot its owner wrote and brought forward by that partition's log alone; the
//! appliers never trim a log past its live snapshot. If a follower ever falls behind a
//! trim (a node paused for long), it starts over from the snapshots.

use crate::clock::Clock;
use crate::pipeline::live::{titles_of, Feeds, LiveState};
use crate::pipeline::recovery;
use footfall_core::live::{Counters, LiveSnapshot, LiveStats, PartitionedLive};
use footfall_core::record::CommitRecord;
use footfall_core::{SiteId, Timestamp};
use footfall_store::redis::{Blob, Conn, RedisLog, RedisSnapshot};
use footfall_store::{Log, LogError, LogPosition};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{watch, Notify};

pub struct ClusterLive {
    model: Mutex<PartitionedLive>,
    feeds: Feeds,
    active_timeout_ms: i64,
}

impl ClusterLive {
    pub fn new(parts: u32, active_timeout_ms: i64) -> Self {
        ClusterLive {
            model: Mutex::new(PartitionedLive::new(parts, active_timeout_ms)),
            feeds: Feeds::default(),
            active_timeout_ms,
        }
    }

    fn model(&self) -> MutexGuard<'_, PartitionedLive> {
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn change(&self, f: impl FnOnce(&mut PartitionedLive) -> BTreeSet<SiteId>) {
        let versions: Vec<(SiteId, u64)> = {
            let mut m = self.model();
            let sites = f(&mut m);
            sites
                .into_iter()
                .map(|s| {
                    let v = m.version(&s);
                    (s, v)
                })
                .collect()
        };
        self.feeds.publish(versions);
    }

    pub fn expire(&self, clock: &dyn Clock) {
        self.change(|m| m.expire(clock.now()));
    }

    /// Adds the counters of history copied in by `footfall migrate` to every read.
    pub fn set_base(&self, base: Counters) {
        self.change(|m| m.set_base(base));
    }
}

/// Where `footfall migrate` leaves the copied installation's live counters.
pub fn base_blob(conn: Arc<Conn>, prefix: &str) -> Blob {
    Blob::new(conn, prefix, "live-base")
}

/// Stores the live counters of a copied-in installation, for every node to add.
pub fn write_base(blob: &Blob, counters: &Counters) -> Result<(), String> {
    let bytes = postcard::to_stdvec(counters).map_err(|e| e.to_string())?;
    blob.put(&bytes).map_err(|e| e.to_string())
}

/// The copied-in installation's live counters, if `footfall migrate` left any.
pub fn read_base(blob: &Blob) -> Result<Option<Counters>, String> {
    blob.get()
        .map_err(|e| e.to_string())?
        .map(|b| postcard::from_bytes(&b).map_err(|e| format!("stored base counters: {e}")))
        .transpose()
}

impl LiveState for ClusterLive {
    fn apply(&self, part: u32, rec: &CommitRecord) {
        self.change(|m| m.apply(part, rec));
    }

    fn snapshot(&self, site: &SiteId, clock: &dyn Clock, limit: Option<usize>) -> LiveStats {
        self.expire(clock);
        self.model().stats(site, limit)
    }

    fn subscribe(&self, site: &SiteId) -> watch::Receiver<u64> {
        let version = self.model().version(site);
        self.feeds.subscribe(site, version)
    }

    fn active_count(&self, site: &SiteId, clock: &dyn Clock) -> usize {
        self.expire(clock);
        self.model().stats(site, Some(0)).active_visitors
    }

    fn tracking_since(&self, site: &SiteId) -> Option<Timestamp> {
        self.model()
            .site_counters(site)
            .and_then(|c| c.tracking_since)
    }

    fn total_pageviews(&self, site: &SiteId) -> u64 {
        self.model()
            .site_counters(site)
            .map_or(0, |c| c.total_pageviews)
    }

    fn titles(
        &self,
        site: &SiteId,
        paths: &mut dyn Iterator<Item = &str>,
    ) -> Vec<(String, String)> {
        self.model()
            .site_counters(site)
            .map_or_else(Vec::new, |c| titles_of(&c, paths))
    }

    fn to_snapshot(&self) -> LiveSnapshot {
        let m = self.model();
        LiveSnapshot {
            counters: m.counters(),
            active: m.active_snapshot(),
        }
    }

    fn counters(&self) -> Counters {
        self.model().counters()
    }
}

/// One partition as a follower sees it.
pub struct FollowedPartition {
    pub log: RedisLog,
    pub live_snapshot: RedisSnapshot,
}

/// Follows every partition's log into `live` until `stop` is set. Runs on its own thread.
pub fn follow(
    live: Arc<ClusterLive>,
    parts: Vec<FollowedPartition>,
    stop: Arc<AtomicBool>,
    ready: Option<std::sync::mpsc::Sender<()>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the live follower");
            return;
        }
    };
    // Any partition's log growing wakes the loop.
    let wake = Arc::new(Notify::new());
    let _watchers: Vec<_> = parts
        .iter()
        .map(|p| {
            let mut rx = p.log.subscribe();
            let wake = wake.clone();
            rt.spawn(async move {
                while rx.changed().await.is_ok() {
                    wake.notify_one();
                }
            })
        })
        .collect();
    let mut at = loop {
        if stop.load(SeqCst) {
            return;
        }
        match load(&live, &parts) {
            Ok(at) => break at,
            Err(e) => {
                tracing::warn!(error = %e, "cannot load the partitions' live state; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    };
    if let Some(ready) = ready {
        let _ = ready.send(());
    }
    while !stop.load(SeqCst) {
        let mut moved = false;
        for (i, p) in parts.iter().enumerate() {
            match p.log.read_after(at[i], 512, 8 << 20) {
                Ok(batch) => {
                    let Some(last) = batch.last().map(|(pos, _)| *pos) else {
                        continue;
                    };
                    match recovery::decode(batch) {
                        Ok(records) => {
                            for (_, rec) in &records {
                                live.apply(i as u32, rec);
                            }
                        }
                        Err(e) => {
                            tracing::error!(part = i, error = %e, "undecodable log record; skipped")
                        }
                    }
                    at[i] = last;
                    moved = true;
                }
                Err(LogError::Trimmed(_)) => {
                    tracing::warn!(part = i, "the live follower fell behind the log; reloading");
                    match load(&live, &parts) {
                        Ok(fresh) => at = fresh,
                        Err(e) => tracing::warn!(error = %e, "reload failed; retrying"),
                    }
                    moved = true;
                    break;
                }
                Err(e) => tracing::warn!(part = i, error = %e, "cannot read the partition's log"),
            }
        }
        if !moved {
            rt.block_on(async {
                let _ = tokio::time::timeout(Duration::from_millis(500), wake.notified()).await;
            });
        }
    }
}

/// Starts `live` afresh from every partition's live snapshot and log; returns where each
/// partition's log was read to.
fn load(live: &ClusterLive, parts: &[FollowedPartition]) -> Result<Vec<LogPosition>, String> {
    let mut fresh = PartitionedLive::new(parts.len() as u32, live.active_timeout_ms);
    let mut at = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let found = p
            .live_snapshot
            .read()
            .map_err(|e| e.to_string())?
            .map(|(pos, bytes)| (LogPosition(pos), bytes));
        let (end, model) =
            recovery::live_from(p.live_snapshot.key(), found, &p.log, live.active_timeout_ms)
                .map_err(|e| e.to_string())?;
        fresh.restore_partition(i as u32, model.to_snapshot());
        at.push(end);
    }
    live.change(|m| m.reload(fresh));
    Ok(at)
}
