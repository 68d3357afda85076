//! The sequencer's logic: identify over a batch, in arrival order, producing one
//! [`CommitRecord`]. It is the only owner of visit state (visitor, visit, dedup, durations).
//!
//! Deterministic by construction — the record's position gives the event ids and its `now`
//! drives the time-based forgetting — so replaying the log from a snapshot rebuilds exactly
//! the state that produced it. That is how a restart, or a failed log write, gets back to
//! a state consistent with what is durable.

use crate::event::{EnrichedEvent, EventKind};
use crate::identify::{Config, Identifier, Outcome};
use crate::record::{CommitRecord, Disposition, Entry, VisitChange};
use crate::types::{EventId, SessionId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// How often visits that can no longer be extended are forgotten (by the records' clock).
pub const EVICT_EVERY_MS: i64 = 60_000;

/// Bits of an event id that number events within one record; the rest is the record's log
/// position. Ids are therefore unique for as long as positions are, on any node that owns
/// its log (a cluster adds a partition).
pub const INDEX_BITS: u32 = 20;

/// Most events one record may hold.
pub const MAX_RECORD_EVENTS: usize = 1 << INDEX_BITS;

/// The id of the `index`-th entry of the record at `position`. `base` keeps ids above the
/// ones a database written before the log existed already holds.
pub fn event_id(base: u64, position: u64, index: usize) -> EventId {
    EventId(base + ((position << INDEX_BITS) | index as u64))
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Sequencer {
    identify: Identifier,
    last_evict: Timestamp,
    #[serde(skip)]
    id_base: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("sequencer snapshot does not decode: {0}")]
    Decode(#[from] postcard::Error),
}

impl Sequencer {
    pub fn new(cfg: Config, id_base: u64) -> Self {
        Sequencer {
            identify: Identifier::new(cfg),
            last_evict: Timestamp(i64::MIN),
            id_base,
        }
    }

    pub fn tracked_visitors(&self) -> usize {
        self.identify.tracked_visitors()
    }

    /// Forgets what can no longer matter as of `now` (also done every
    /// [`EVICT_EVERY_MS`] while sequencing). The state after it is what a snapshot holds.
    pub fn evict(&mut self, now: Timestamp) {
        self.identify.evict(now);
        self.last_evict = now;
    }

    /// Decides every event of a batch that will be written at log `position`.
    pub fn sequence(
        &mut self,
        position: u64,
        now: Timestamp,
        events: Vec<EnrichedEvent>,
    ) -> CommitRecord {
        debug_assert!(events.len() <= MAX_RECORD_EVENTS);
        if now.0.saturating_sub(self.last_evict.0) > EVICT_EVERY_MS {
            self.evict(now);
        }
        let mut visits = VisitChanges::default();
        let entries: Vec<Entry> = events
            .into_iter()
            .enumerate()
            .map(|(i, mut event)| {
                let id = event_id(self.id_base, position, i);
                if event.pathname.is_empty() {
                    // A sender that doesn't say where the event happened: where its visitor
                    // is. The record keeps the page, so a replay decides the same.
                    event.pathname = self
                        .identify
                        .page_at(&event)
                        .map_or_else(|| "/".to_string(), |p| p.to_string());
                }
                let out = self.identify.process(&event, id);
                visits.record(&out);
                entry(event, id, out)
            })
            .collect();
        let mut entries: Vec<Entry> = entries;
        // Attributes travel once per visit: with the visit's change when it has one.
        for e in &mut entries {
            if e.session.is_some_and(|s| visits.index.contains_key(&s)) {
                e.visit = None;
            }
        }
        CommitRecord {
            now,
            entries,
            visits: visits.list,
            legacy: false,
        }
    }

    /// Brings the state forward over a durable record. Returns whether the decisions came
    /// out the same (they differ only if the settings changed since the record was written;
    /// the record stays the truth for storage either way).
    pub fn replay(&mut self, position: u64, record: &CommitRecord) -> bool {
        let events = record.entries.iter().map(|e| e.event.clone()).collect();
        let mut again = self.sequence(position, record.now, events);
        if record.legacy {
            // Format 1 held no page view times: compare as it was decoded.
            for e in &mut again.entries {
                let ts = e.event.ts;
                for d in &mut e.durations {
                    d.ts = ts;
                }
            }
            again.legacy = true;
        }
        again == *record
    }

    pub fn snapshot(&self) -> Result<Vec<u8>, SnapshotError> {
        Ok(postcard::to_stdvec(self)?)
    }

    pub fn from_snapshot(bytes: &[u8], cfg: Config, id_base: u64) -> Result<Self, SnapshotError> {
        let mut s: Sequencer = postcard::from_bytes(bytes)?;
        s.identify.set_config(cfg);
        s.id_base = id_base;
        Ok(s)
    }
}

fn entry(event: EnrichedEvent, id: EventId, out: Outcome) -> Entry {
    let disposition = match (out.stored, out.skipped) {
        (true, _) => Disposition::Stored,
        (false, Some(reason)) => Disposition::Skipped(reason),
        (false, None) => Disposition::Presence,
    };
    debug_assert!(out.stored || event.kind != EventKind::Custom);
    Entry {
        id,
        visitor: out.visitor,
        session: out.session,
        visit: if out.stored { out.attrs } else { None },
        durations: out.durations,
        disposition,
        event,
    }
}

/// The visits a batch touched, in first-touch order, each with its state before the batch
/// and its last state in it.
#[derive(Default)]
struct VisitChanges {
    index: HashMap<SessionId, usize>,
    list: Vec<VisitChange>,
}

impl VisitChanges {
    fn record(&mut self, out: &Outcome) {
        let Some(after) = &out.session_after else {
            return;
        };
        match self.index.get(&after.session) {
            Some(&i) => self.list[i].after = after.clone(),
            None => {
                self.index.insert(after.session, self.list.len());
                self.list.push(VisitChange {
                    before: out.session_before.clone(),
                    after: after.clone(),
                });
            }
        }
    }
}
