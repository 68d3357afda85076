//! What one commit writes.

use footfall_core::identify::{SessionAttrs, SessionRow};
use footfall_core::{EnrichedEvent, EventId, SessionId, VisitorId};

/// An event as stored: the enriched event plus what identify decided.
#[derive(Debug, Clone)]
pub struct EventRow<'a> {
    pub id: EventId,
    pub visitor: VisitorId,
    pub session: SessionId,
    pub event: &'a EnrichedEvent,
    /// The visit's attributes (from its first event), stored in the event's visit columns.
    pub visit: &'a SessionAttrs,
}

/// One collapsing row of `sessions`: `sign` −1 cancels an earlier state, +1 adds a state.
#[derive(Debug, Clone)]
pub struct SessionChange<'a> {
    pub sign: i8,
    pub row: &'a SessionRow,
}
