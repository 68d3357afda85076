//! The owner of a partition: the one node (at a time) that sequences its events.
//!
//! Loop: hold the partition's lease (take it when free, renew it at a third of its TTL);
//! on taking it, rebuild the sequencer from the partition's snapshot plus the log after it
//! (exactly as an embedded restart does); then take what the inbox holds, decide it with
//! `core::sequence`, and append ONE commit record with a script that checks the lease and
//! deletes the consumed inbox entries in the same step. So an event is sequenced once,
//! whatever dies when: a crash before the append leaves the entries for the next owner; a
//! crash after it has consumed them; a deposed owner's append is refused inside Redis.

use super::partition_id_base;
use super::snapshot::PartitionSnapshot;
use crate::clock::Clock;
use crate::pipeline::recovery;
use crate::pipeline::snapshot::SnapshotStore;
use footfall_core::identify::Config as IdentifyConfig;
use footfall_core::live::LiveModel;
use footfall_core::sequence::{Sequencer, MAX_RECORD_EVENTS};
use footfall_core::EnrichedEvent;
use footfall_store::redis::{Inbox, Lease, RedisLog, Token};
use footfall_store::{Log, LogError};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::inbox_writer::{decode_entry, EntryError};

/// Takeovers in a row that may fail (Redis away mid-way) before the lease is handed on.
const MAX_TAKEOVER_TRIES: u64 = 5;

/// What an owner has done, for metrics and tests.
#[derive(Debug, Default)]
pub struct OwnerStats {
    pub records: AtomicU64,
    pub events: AtomicU64,
    /// Times this node took the partition (a start counts).
    pub takeovers: AtomicU64,
    /// Times it found the lease gone or its append fenced.
    pub deposed: AtomicU64,
    /// Inbox entries that did not decode (consumed and dropped, never retried forever).
    pub bad_entries: AtomicU64,
    /// Times it met an entry of a newer format and handed the partition on.
    pub newer_entries: AtomicU64,
    pub snapshots: AtomicU64,
    /// Whether this node sequences the partition now.
    pub holding: AtomicBool,
    /// Takeovers in a row that could not rebuild the partition's state.
    pub failed_takeovers: AtomicU64,
}

pub struct Owner {
    pub part: u32,
    pub lease: Lease,
    pub log: RedisLog,
    /// On a connection of its own: the owner blocks in `XREAD` on it.
    pub inbox: Arc<Inbox>,
    pub snapshot: PartitionSnapshot,
    /// The partition's live counters and active visitors, beside the sequencer snapshot:
    /// where a node that starts follows the partition's log from.
    pub live_snapshot: PartitionSnapshot,
    pub active_timeout_ms: i64,
    pub identify: IdentifyConfig,
    pub clock: Arc<dyn Clock>,
    /// Most events in one record.
    pub max_batch: usize,
    pub snapshot_every: Duration,
    /// How long one wait on an empty inbox lasts (also bounds how late a renewal is).
    pub poll: Duration,
    pub stats: Arc<OwnerStats>,
}

#[derive(Debug)]
enum StepError {
    Log(LogError),
    /// An inbox entry only a newer node can read.
    NewerFormat(String),
}

impl From<LogError> for StepError {
    fn from(e: LogError) -> Self {
        StepError::Log(e)
    }
}

/// The partition while this node holds it.
struct Held {
    token: Token,
    sequencer: Sequencer,
    /// The partition's live state, kept only to be snapshotted for nodes that start.
    live: LiveModel,
    renew_at: Instant,
    last_snapshot: Instant,
}

/// How the loop ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Snapshot and release the lease, so another node takes over at once.
    Graceful,
    /// Leave everything as a crash would (tests: the next owner waits out the TTL).
    Abandon,
}

impl Owner {
    /// Runs until `stop` is set; then ends as `exit` says.
    pub fn run(self, stop: Arc<AtomicBool>, exit: impl Fn() -> Exit) {
        let mut held: Option<Held> = None;
        // A lease taken whose state could not be rebuilt (Redis went away meanwhile): kept,
        // so the next try renews it instead of waiting for it to run out.
        let mut orphan: Option<Token> = None;
        while !stop.load(SeqCst) {
            held = self.keep_lease(held, &mut orphan);
            self.stats.holding.store(held.is_some(), Relaxed);
            let Some(h) = held.as_mut() else {
                std::thread::sleep(self.poll);
                continue;
            };
            match self.step(h) {
                Ok(()) => {}
                Err(StepError::NewerFormat(reason)) => {
                    self.stats.newer_entries.fetch_add(1, Relaxed);
                    tracing::error!(part = self.part, %reason, "handing the partition to a newer node");
                    let _ = self.lease.release(&h.token);
                    held = None;
                    // Give a newer node the time to take it before trying again.
                    std::thread::sleep(self.lease.ttl());
                }
                Err(StepError::Log(LogError::Fenced)) => {
                    self.stats.deposed.fetch_add(1, Relaxed);
                    tracing::warn!(
                        part = self.part,
                        "partition lease lost; stopping sequencing"
                    );
                    held = None;
                }
                Err(StepError::Log(e)) => {
                    tracing::error!(part = self.part, error = %e, "partition append failed; rebuilding from the log");
                    held = match held.map(|h| self.take_over(h.token)) {
                        Some(Ok(h)) => Some(h),
                        Some(Err(token)) => {
                            orphan = Some(token);
                            None
                        }
                        None => None,
                    };
                }
            }
            if let Some(h) = held.as_mut() {
                if h.last_snapshot.elapsed() >= self.snapshot_every {
                    self.write_snapshot(h);
                }
            }
        }
        self.stats.holding.store(false, Relaxed);
        if let Some(mut h) = held {
            if exit() == Exit::Graceful {
                self.write_snapshot(&mut h);
                let _ = self.lease.release(&h.token);
            }
        }
    }

    /// Takes or renews the lease when due. Returns what is held afterwards.
    fn keep_lease(&self, held: Option<Held>, orphan: &mut Option<Token>) -> Option<Held> {
        if let Some(h) = &held {
            if Instant::now() < h.renew_at {
                return held;
            }
        }
        let token = held.as_ref().map(|h| &h.token).or(orphan.as_ref());
        match self.lease.acquire_or_renew(token) {
            Ok(Some(t)) => match held {
                Some(mut h) if h.token == t => {
                    h.renew_at = Instant::now() + self.lease.ttl() / 3;
                    Some(h)
                }
                _ => match self.take_over(t) {
                    Ok(h) => {
                        *orphan = None;
                        self.stats.failed_takeovers.store(0, Relaxed);
                        Some(h)
                    }
                    Err(t) => {
                        self.stats.failed_takeovers.fetch_add(1, Relaxed);
                        if self
                            .stats
                            .failed_takeovers
                            .load(Relaxed)
                            .is_multiple_of(MAX_TAKEOVER_TRIES)
                        {
                            // Failing for good here (a snapshot this node cannot read, say):
                            // let another node try.
                            tracing::error!(
                                part = self.part,
                                "cannot take the partition over; handing it on"
                            );
                            let _ = self.lease.release(&t);
                            *orphan = None;
                            std::thread::sleep(self.lease.ttl());
                        } else {
                            *orphan = Some(t);
                        }
                        None
                    }
                },
            },
            Ok(None) => {
                *orphan = None;
                if held.is_some() {
                    self.stats.deposed.fetch_add(1, Relaxed);
                    tracing::warn!(part = self.part, "partition lease taken by another node");
                }
                None
            }
            Err(e) => {
                // Keep the token: the next try renews it (or, if it lapsed, finds out and
                // takes the partition anew). Appends meanwhile fail on their own.
                tracing::warn!(part = self.part, error = %e, "cannot reach Redis to renew the partition lease");
                held
            }
        }
    }

    /// Becomes the owner under `token`: the sequencer as of the end of the log.
    /// Gives the token back if the state could not be rebuilt (to be retried under it).
    fn take_over(&self, token: Token) -> Result<Held, Token> {
        let fence = Some((self.lease.key().to_owned(), token.clone()));
        self.log.set_fence(fence.clone());
        self.snapshot.set_fence(fence.clone());
        self.live_snapshot.set_fence(fence);
        let id_base = partition_id_base(self.part);
        // Strictly: a snapshot Redis failed to return is not "no snapshot" — starting
        // afresh would split the visits in progress, and the next snapshot would make
        // that permanent.
        let found = match self.snapshot.read() {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(part = self.part, error = %e, "cannot read the partition snapshot; will retry");
                return Err(token);
            }
        };
        let live_found = match self.live_snapshot.read() {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(part = self.part, error = %e, "cannot read the partition's live snapshot; will retry");
                return Err(token);
            }
        };
        let name = self.snapshot.describe();
        let rebuilt = recovery::sequencer_from(&name, found, &self.log, self.identify, id_base)
            .and_then(|seq| {
                let (_, live) = recovery::live_from(
                    &self.live_snapshot.describe(),
                    live_found,
                    &self.log,
                    self.active_timeout_ms,
                )?;
                Ok((seq, live))
            });
        match rebuilt {
            Ok((sequencer, live)) => {
                self.stats.takeovers.fetch_add(1, Relaxed);
                tracing::info!(
                    part = self.part,
                    epoch = token.epoch(),
                    end = self.log.end().0,
                    "took over partition"
                );
                Ok(Held {
                    token,
                    sequencer,
                    live,
                    renew_at: Instant::now() + self.lease.ttl() / 3,
                    last_snapshot: Instant::now(),
                })
            }
            Err(e) => {
                tracing::error!(part = self.part, error = %e, "cannot rebuild the partition's state; will retry");
                Err(token)
            }
        }
    }

    /// Sequences what the inbox holds (waiting up to `poll` for something) into one record.
    fn step(&self, h: &mut Held) -> Result<(), StepError> {
        // Well under the connection's read timeout, or every idle wait would count as a
        // broken connection.
        let wait = self.poll.as_millis().clamp(1, 1_000) as u64;
        let entries = self
            .inbox
            .read(self.part, "0-0", self.max_batch.max(1), wait)
            .map_err(|e| LogError::Unavailable(e.to_string()))?;
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let mut consumed = first.0.clone();
        let mut events: Vec<EnrichedEvent> = Vec::new();
        let limit = self.max_batch.clamp(1, MAX_RECORD_EVENTS / 2);
        for (id, payload) in entries {
            match decode_entry(&payload) {
                Ok(evs) if evs.len() > limit => {
                    // More than one record may hold: no node could ever sequence it.
                    self.stats.bad_entries.fetch_add(1, Relaxed);
                    tracing::error!(part = self.part, entry = %id, events = evs.len(), "inbox entry too large; dropped");
                }
                Ok(evs) => {
                    if !events.is_empty() && events.len() + evs.len() > limit {
                        break;
                    }
                    events.extend(evs);
                }
                Err(EntryError::NewerFormat(f)) => {
                    // Written by a newer footfall (a rolling upgrade): leave it for a node
                    // that reads it, and let one take the partition.
                    if events.is_empty() {
                        return Err(StepError::NewerFormat(format!(
                            "inbox entry {id} has format {f}, newer than this node understands"
                        )));
                    }
                    break;
                }
                Err(EntryError::Corrupt(e)) => {
                    self.stats.bad_entries.fetch_add(1, Relaxed);
                    tracing::error!(part = self.part, entry = %id, error = %e, "inbox entry does not decode; dropped");
                }
            }
            consumed = id;
        }
        if events.is_empty() {
            // Only undecodable entries: consume them without a record.
            self.log.append_consuming(&[], &consumed)?;
            return Ok(());
        }
        let n = events.len() as u64;
        let position = self.log.end().0 + 1;
        // The batch's clock is when its events arrived, not when this owner got to them:
        // after an owner outage or a backlog, sequencing with the current time would
        // forget visits whose next events are still waiting here (splitting them). The
        // earliest arrival, as a batch may gather events of a long stretch: evicting as of
        // its last one first would forget a visit its first one continues. Never ahead of
        // this node's clock (a sender's skewed clock).
        let arrived = events
            .iter()
            .map(|e| e.ts)
            .min()
            .unwrap_or_else(|| self.clock.now());
        let record = h
            .sequencer
            .sequence(position, arrived.min(self.clock.now()), events);
        let bytes = record
            .encode()
            .map_err(|e| LogError::Unavailable(format!("cannot encode the record: {e}")))?;
        self.log.append_consuming(&[&bytes], &consumed)?;
        h.live.apply(&record);
        self.stats.records.fetch_add(1, Relaxed);
        self.stats.events.fetch_add(n, Relaxed);
        Ok(())
    }

    /// Snapshots the live state, then the sequencer, at the log's end (both are exactly
    /// there). The applier trims behind the older of the two, so a failure between them
    /// only keeps more log.
    fn write_snapshot(&self, h: &mut Held) {
        h.last_snapshot = Instant::now();
        let at = self.log.end();
        let written = postcard::to_stdvec(&h.live.to_snapshot())
            .map_err(|e| e.to_string())
            .and_then(|live| {
                self.live_snapshot
                    .write(at, &live)
                    .map_err(|e| e.to_string())
            })
            .and_then(|()| h.sequencer.snapshot().map_err(|e| e.to_string()))
            .and_then(|bytes| self.snapshot.write(at, &bytes).map_err(|e| e.to_string()));
        match written {
            Ok(()) => {
                self.stats.snapshots.fetch_add(1, Relaxed);
            }
            Err(e) => tracing::warn!(part = self.part, error = %e, "partition snapshot failed"),
        }
    }
}
