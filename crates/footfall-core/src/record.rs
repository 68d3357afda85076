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

/// Bumped when the encoding changes incompatibly; a record of another version is refused
/// rather than misread.
pub const FORMAT: u8 = 1;

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
        if format != FORMAT {
            return Err(RecordError::Format(format));
        }
        let mut rec: CommitRecord = postcard::from_bytes(body)?;
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
