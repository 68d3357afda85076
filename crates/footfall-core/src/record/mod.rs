//! The commit record: what the sequencer decided about one batch of events, written to the
//! log before any request is acknowledged. Every later effect — rows in storage, visits,
//! live counters, active visitors — is recomputed from records alone, so an applier that
//! crashed replays them, and a second backend only needs to read the same log.

use crate::drop::DropReason;
use crate::event::EnrichedEvent;
use crate::identify::{DurationChange, SessionAttrs, SessionRow};
use crate::types::{EventId, SessionId, Timestamp, VisitorId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Bumped when the encoding changes incompatibly; a record of an unknown version is refused
/// rather than misread. Formats 1 (before page durations carried their page view's time)
/// and 2 (before events carried revenue) are still read: see [`legacy`].
pub const FORMAT: u8 = 3;

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Disposition {
    /// Recorded as an event under the entry's id.
    Stored,
    /// Valid but not recorded.
    Skipped(DropReason),
    /// A heartbeat (or a repeat within a visit): presence only — the visitor is active and
    /// the visit extended, but no event row.
    Presence,
}

/// One event and the sequencer's decision about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub event: EnrichedEvent,
    /// Unique across nodes and restarts: derived from the record's log position.
    pub id: EventId,
    /// The visitor id to record (yesterday's if the visit started before midnight).
    pub visitor: VisitorId,
    pub session: Option<SessionId>,
    pub disposition: Disposition,
    /// For a stored event whose visit is not among the record's `visits`, the visit's
    /// attributes (which the event row carries too); otherwise they are taken from there
    /// (see [`CommitRecord::attrs_of`]), so a record holds them once per visit.
    pub visit: Option<Arc<SessionAttrs>>,
    /// Page durations this event changed.
    pub durations: Vec<DurationChange>,
}

impl Entry {
    pub fn stored(&self) -> bool {
        self.disposition == Disposition::Stored
    }
}

/// A visit the batch changed: its state before the batch (None if the batch created it)
/// and its last state in the batch — one collapsing −1/+1 pair however many events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisitChange {
    /// Written without its attributes, which are the same as `after`'s (a visit's
    /// attributes never change); [`CommitRecord::decode`] puts them back.
    #[serde(with = "row_without_attrs")]
    pub before: Option<SessionRow>,
    pub after: SessionRow,
}

mod row_without_attrs {
    use crate::identify::SessionRow;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::sync::Arc;

    /// The row with an empty attribute set in place of its own (shared, so no copy).
    fn stripped(r: &SessionRow) -> SessionRow {
        thread_local! {
            static EMPTY: Arc<crate::identify::SessionAttrs> = Arc::default();
        }
        SessionRow {
            attrs: EMPTY.with(Arc::clone),
            ..r.clone()
        }
    }

    pub fn serialize<S: Serializer>(row: &Option<SessionRow>, s: S) -> Result<S::Ok, S::Error> {
        row.as_ref().map(stripped).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SessionRow>, D::Error> {
        Option::<SessionRow>::deserialize(d)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// The sequencer's clock for this batch. Replaying with it makes time-based decisions
    /// (forgetting old visits) repeat exactly.
    pub now: Timestamp,
    /// One per event, in arrival order.
    pub entries: Vec<Entry>,
    pub visits: Vec<VisitChange>,
    /// Decoded from format 1, whose duration changes don't say when their page view
    /// happened: [`DurationChange::ts`] holds the measuring event's time instead, so
    /// whatever is kept per day from them must be recomputed from stored rows.
    #[serde(skip)]
    pub legacy: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("commit record format {0} is not one this footfall reads (expected {FORMAT})")]
    Format(u8),
    #[error("empty commit record")]
    Empty,
    #[error("commit record does not decode: {0}")]
    Decode(#[from] postcard::Error),
}

impl CommitRecord {
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        Ok(postcard::to_extend(self, vec![FORMAT])?)
    }

    pub fn decode(bytes: &[u8]) -> Result<CommitRecord, RecordError> {
        let (&format, body) = bytes.split_first().ok_or(RecordError::Empty)?;
        let mut rec: CommitRecord = match format {
            FORMAT => postcard::from_bytes(body)?,
            2 => postcard::from_bytes::<v2::CommitRecord>(body)?.into(),
            1 => postcard::from_bytes::<v1::CommitRecord>(body)?.into(),
            _ => return Err(RecordError::Format(format)),
        };
        for v in &mut rec.visits {
            if let Some(before) = &mut v.before {
                before.attrs = v.after.attrs.clone();
            }
        }
        Ok(rec)
    }

    /// The stored entries, each with its visit's attributes: its own copy, or its visit's
    /// in `visits` (None only in a record that breaks that rule).
    pub fn stored_with_attrs(&self) -> impl Iterator<Item = (&Entry, Option<&SessionAttrs>)> {
        let by_session: HashMap<SessionId, &SessionAttrs> = self
            .visits
            .iter()
            .map(|v| (v.after.session, &*v.after.attrs))
            .collect();
        self.stored().map(move |e| {
            let attrs = e
                .visit
                .as_deref()
                .or_else(|| by_session.get(&e.session?).copied());
            (e, attrs)
        })
    }

    pub fn stored(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.stored())
    }
}

pub mod legacy;
use legacy::{v1, v2};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EnrichedEvent, EventKind};
    use crate::identify::Config;
    use crate::sequence::Sequencer;
    use crate::types::SiteId;

    fn record() -> CommitRecord {
        let site = SiteId::parse("e.com").unwrap();
        let t = 1_772_841_600_000;
        let evs = [(0, "/"), (60_000, "/a"), (90_000, "/b")]
            .into_iter()
            .map(|(dt, p)| {
                EnrichedEvent::bare(
                    site.clone(),
                    EventKind::Pageview,
                    Timestamp(t + dt),
                    p,
                    VisitorId(7),
                )
            })
            .collect();
        Sequencer::new(Config::default(), 0).sequence(1, Timestamp(t + 90_000), evs)
    }

    #[test]
    fn a_record_round_trips() {
        let rec = record();
        assert!(rec.entries.iter().any(|e| !e.durations.is_empty()));
        let back = CommitRecord::decode(&rec.encode().unwrap()).unwrap();
        assert_eq!(back, rec);
        assert!(!back.legacy);
    }

    /// A format-1 record (written before an upgrade) decodes, marked as such, with each
    /// duration's time taken from the event that measured it.
    #[test]
    fn format_1_is_read() {
        let rec = record();
        let old = v1::CommitRecord {
            now: rec.now,
            entries: rec
                .entries
                .iter()
                .map(|e| v1::Entry {
                    event: (&e.event).into(),
                    id: e.id,
                    visitor: e.visitor,
                    session: e.session,
                    disposition: e.disposition,
                    visit: e.visit.clone(),
                    durations: e
                        .durations
                        .iter()
                        .map(|d| v1::Change {
                            event: d.event,
                            pathname: d.pathname.clone(),
                            before: d.before,
                            after: d.after,
                        })
                        .collect(),
                })
                .collect(),
            visits: rec.visits.clone(),
        };
        let bytes = postcard::to_extend(&old, vec![1]).unwrap();
        let back = CommitRecord::decode(&bytes).unwrap();
        assert!(back.legacy);
        assert_eq!(back.entries.len(), rec.entries.len());
        for (b, e) in back.entries.iter().zip(&rec.entries) {
            assert_eq!(b.event, e.event);
            assert_eq!(b.durations.len(), e.durations.len());
            for (bd, d) in b.durations.iter().zip(&e.durations) {
                assert_eq!(
                    (bd.event, bd.before, bd.after),
                    (d.event, d.before, d.after)
                );
                assert_eq!(bd.ts, e.event.ts);
            }
        }
        assert_eq!(back.visits, rec.visits);
        // Replaying it decides the same as when it was written.
        assert!(Sequencer::new(Config::default(), 0).replay(1, &back));
        assert!(matches!(
            CommitRecord::decode(&[4, 0]),
            Err(RecordError::Format(4))
        ));
    }

    /// A format-2 record (before revenue) decodes as it was, its events without revenue.
    #[test]
    fn format_2_is_read() {
        let rec = record();
        let old = v2::CommitRecord {
            now: rec.now,
            entries: rec
                .entries
                .iter()
                .map(|e| v2::Entry {
                    event: (&e.event).into(),
                    id: e.id,
                    visitor: e.visitor,
                    session: e.session,
                    disposition: e.disposition,
                    visit: e.visit.clone(),
                    durations: e.durations.clone(),
                })
                .collect(),
            visits: rec.visits.clone(),
        };
        let bytes = postcard::to_extend(&old, vec![2]).unwrap();
        assert_eq!(CommitRecord::decode(&bytes).unwrap(), rec);
    }

    #[test]
    fn revenue_travels_in_records() {
        let mut rec = record();
        let r = crate::money::Revenue {
            amount: crate::money::Amount(-12_345),
            currency: crate::money::Currency::parse("EUR").unwrap(),
        };
        rec.entries[1].event.revenue = Some(r);
        let back = CommitRecord::decode(&rec.encode().unwrap()).unwrap();
        assert_eq!(back.entries[1].event.revenue, Some(r));
        assert_eq!(back, rec);
    }
}
