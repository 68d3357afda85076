//! Getting back to where the log says we are — at start, and after a failed log write.
//!
//! - The sequencer's state: its snapshot, then every record after it replayed.
//! - The live state: its snapshot (or, without one, counters rebuilt from storage at the
//!   position storage has applied), then every record after it applied.
//! - Storage: nothing here; its applier continues from the position recorded with its rows.
//!
//! The log keeps every record that one of these still needs ([`Retention`]).

use super::snapshot::SnapshotStore;
use footfall_core::identify::Config as IdentifyConfig;
use footfall_core::live::active::ActiveVisitors;
use footfall_core::live::{LiveModel, LiveSnapshot};
use footfall_core::record::CommitRecord;
use footfall_core::sequence::Sequencer;
use footfall_store::{EventStore, Log, LogError, LogPosition};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

/// Records per read while replaying.
const REPLAY_RECORDS: usize = 1024;
const REPLAY_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("{0}")]
    Log(#[from] LogError),
    #[error("{0}")]
    Record(String),
    #[error("storage: {0}")]
    Store(#[from] footfall_store::StoreError),
}

/// The lowest log position something still needs: storage's applied position and the
/// snapshots' position. Segments wholly below it may go.
#[derive(Debug, Default)]
pub struct Retention {
    storage: AtomicU64,
    snapshot: AtomicU64,
}

impl Retention {
    pub fn new(storage: LogPosition, snapshot: LogPosition) -> Self {
        Retention {
            storage: AtomicU64::new(storage.0),
            snapshot: AtomicU64::new(snapshot.0),
        }
    }

    pub fn storage_at(&self, p: LogPosition) {
        self.storage.store(p.0, SeqCst);
    }

    pub fn snapshot_at(&self, p: LogPosition) {
        self.snapshot.store(p.0, SeqCst);
    }

    pub fn point(&self) -> LogPosition {
        LogPosition(self.storage.load(SeqCst).min(self.snapshot.load(SeqCst)))
    }
}

pub fn trim(log: &dyn Log, retention: &Retention) {
    match log.trim(retention.point()) {
        Ok(0) => {}
        Ok(freed) => tracing::debug!(freed, upto = retention.point().0, "log trimmed"),
        Err(e) => tracing::warn!(error = %e, "log trim failed"),
    }
}

/// Decodes records read from the log, naming the one that doesn't decode.
pub fn decode(
    records: Vec<(LogPosition, Vec<u8>)>,
) -> Result<Vec<(LogPosition, CommitRecord)>, String> {
    records
        .into_iter()
        .map(|(p, bytes)| {
            CommitRecord::decode(&bytes)
                .map(|r| (p, r))
                .map_err(|e| format!("log record {}: {e}", p.0))
        })
        .collect()
}

/// Calls `f` with every record after `from`, in order.
pub fn replay(
    log: &dyn Log,
    from: LogPosition,
    mut f: impl FnMut(LogPosition, &CommitRecord),
) -> Result<u64, RecoveryError> {
    let mut at = from;
    let mut n = 0;
    while at < log.end() {
        let batch = log.read_after(at, REPLAY_RECORDS, REPLAY_BYTES)?;
        let Some(last) = batch.last().map(|(p, _)| *p) else {
            break;
        };
        for (p, rec) in decode(batch).map_err(RecoveryError::Record)? {
            f(p, &rec);
            n += 1;
        }
        at = last;
    }
    Ok(n)
}

/// Whether replay can start from a snapshot at `pos`: the log must still hold everything
/// after it, and must reach it (a snapshot past the log's end belongs to another log).
fn usable(log: &dyn Log, pos: LogPosition) -> bool {
    pos.0 + 1 >= log.first().0 && pos <= log.end()
}

/// A snapshot and its position, if there is one replay can start from; otherwise None,
/// with a warning saying why and what happens instead (`fallback`).
fn load_snapshot<T>(
    file: &dyn SnapshotStore,
    log: &dyn Log,
    fallback: &str,
    decode: impl FnOnce(&[u8]) -> Result<T, String>,
) -> Option<(LogPosition, T)> {
    let found = read_or_warn(file, fallback);
    fit(&file.describe(), found, log, fallback, decode)
}

/// A snapshot file's content; one that cannot be read counts as none (with a warning
/// saying what happens instead): right for a file, whose only other copy is the log.
fn read_or_warn(file: &dyn SnapshotStore, fallback: &str) -> Option<(LogPosition, Vec<u8>)> {
    file.read()
        .map_err(|e| tracing::warn!(error = %e, "{fallback}"))
        .ok()
        .flatten()
}

/// A snapshot already read, if replay can start from it (see [`load_snapshot`]).
fn fit<T>(
    name: &str,
    found: Option<(LogPosition, Vec<u8>)>,
    log: &dyn Log,
    fallback: &str,
    decode: impl FnOnce(&[u8]) -> Result<T, String>,
) -> Option<(LogPosition, T)> {
    let (pos, bytes) = found?;
    if !usable(log, pos) {
        tracing::warn!(
            snapshot_file = name,
            snapshot = pos.0,
            first = log.first().0,
            end = log.end().0,
            "snapshot does not fit the log; {fallback}"
        );
        return None;
    }
    match decode(&bytes) {
        Ok(state) => Some((pos, state)),
        Err(e) => {
            tracing::warn!(snapshot_file = name, error = %e, "snapshot unreadable; {fallback}");
            None
        }
    }
}

/// The sequencer's state as of the end of the log. A snapshot that cannot be read is
/// passed over (with a warning): right for a file, whose only other copy is the log.
pub fn load_sequencer(
    file: &dyn SnapshotStore,
    log: &dyn Log,
    cfg: IdentifyConfig,
    id_base: u64,
) -> Result<Sequencer, RecoveryError> {
    let found = read_or_warn(file, "visits in progress start afresh");
    sequencer_from(&file.describe(), found, log, cfg, id_base)
}

/// The sequencer's state as of the end of the log, from a snapshot the caller read (a
/// cluster owner reads it strictly: a Redis that did not answer is not "no snapshot").
pub fn sequencer_from(
    name: &str,
    found: Option<(LogPosition, Vec<u8>)>,
    log: &dyn Log,
    cfg: IdentifyConfig,
    id_base: u64,
) -> Result<Sequencer, RecoveryError> {
    let loaded = fit(
        name,
        found,
        log,
        "visits in progress start afresh",
        |bytes| Sequencer::from_snapshot(bytes, cfg, id_base).map_err(|e| e.to_string()),
    );
    let (from, mut seq) = loaded.unwrap_or_else(|| {
        (
            LogPosition(log.first().0.saturating_sub(1)),
            Sequencer::new(cfg, id_base),
        )
    });
    let mut differ = 0u64;
    let n = replay(log, from, |p, rec| {
        if !seq.replay(p.0, rec) {
            differ += 1;
        }
    })?;
    if differ > 0 {
        tracing::warn!(
            records = differ,
            "replay decided differently from the log (settings changed?); the log stays the truth"
        );
    }
    tracing::info!(
        from = from.0,
        replayed = n,
        visitors = seq.tracked_visitors(),
        "sequencer state recovered"
    );
    Ok(seq)
}

fn restore_live(s: LiveSnapshot, active_timeout_ms: i64) -> LiveModel {
    LiveModel::new(
        s.counters,
        ActiveVisitors::restore(active_timeout_ms, s.active),
    )
}

/// The live state as of the end of the log.
pub fn load_live(
    file: &dyn SnapshotStore,
    log: &dyn Log,
    store: &dyn EventStore,
    active_timeout_ms: i64,
    rebuild_chunk: u64,
) -> Result<LiveModel, RecoveryError> {
    let snapshot = load_snapshot(
        file,
        log,
        "rebuilding live counters from storage",
        |bytes| postcard::from_bytes::<LiveSnapshot>(bytes).map_err(|e| e.to_string()),
    );
    let (from, mut model) = match snapshot {
        Some((pos, s)) => (pos, restore_live(s, active_timeout_ms)),
        None => {
            // Storage's position is always retained by the log, so this always works.
            let (pos, _) = store.applied()?;
            let counters = store.rebuild_counters(rebuild_chunk, &mut |p| {
                tracing::info!(
                    done = p.done,
                    total = p.total,
                    chunks = p.chunks,
                    "rebuilding live counters"
                );
                true
            })?;
            (
                pos,
                LiveModel::new(counters, ActiveVisitors::new(active_timeout_ms)),
            )
        }
    };
    let n = replay(log, from, |_, rec| {
        model.apply(rec);
    })?;
    tracing::info!(from = from.0, replayed = n, "live state recovered");
    Ok(model)
}

/// A partition's live model as of the end of its log (and the position it reached), from
/// a live snapshot the caller read
/// (strictly). Without one, from the start of the log: the cluster's appliers never trim
/// a partition's log past its live snapshot, so a partition with no snapshot still holds
/// its whole log.
pub fn live_from(
    name: &str,
    found: Option<(LogPosition, Vec<u8>)>,
    log: &dyn Log,
    active_timeout_ms: i64,
) -> Result<(LogPosition, LiveModel), RecoveryError> {
    let fresh = || LiveModel::new(Default::default(), ActiveVisitors::new(active_timeout_ms));
    let loaded = fit(
        name,
        found,
        log,
        "live counters start from the log",
        |bytes| postcard::from_bytes::<LiveSnapshot>(bytes).map_err(|e| e.to_string()),
    );
    let (from, mut model) = match loaded {
        Some((pos, s)) => (pos, restore_live(s, active_timeout_ms)),
        None => (LogPosition(log.first().0.saturating_sub(1)), fresh()),
    };
    // Where replay stopped, not the log's end now: records may arrive meanwhile.
    let mut last = from;
    replay(log, from, |p, rec| {
        model.apply(rec);
        last = p;
    })?;
    Ok((last, model))
}
