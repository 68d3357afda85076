//! footfall's domain types and pure pipeline logic. Nothing in this crate does I/O:
//! every stage takes its inputs (including the current time) as arguments, so that it
//! can be tested exhaustively, including with proptest.
//!
//! The modules follow the ingest pipeline: [`decode`] → [`enrich`] → [`identify`] (driven by
//! [`sequence`], which emits one [`record::CommitRecord`] per batch) → [`live`].

pub mod catalogue;
pub mod decode;
pub mod drop;
pub mod enrich;
pub mod event;
pub mod goal;
pub mod identify;
pub mod intern;
pub mod live;
pub mod money;
pub mod query;
pub mod record;
pub mod rollup;
pub mod segment;
pub mod sequence;
pub mod types;

pub use drop::DropReason;
pub use event::{EnrichedEvent, EventKind, GeoHint, IncomingEvent};
pub use types::{EventId, SessionId, SiteId, Timestamp, VisitorId};
