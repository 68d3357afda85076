//! identify: who did it (a visitor id) and in which visit (sessionizing, dedup, page
//! durations). Pure state machines; the server's sequencer owns one and feeds it
//! events in order, which is what makes dedup exact under concurrency.

pub mod partition;
pub mod sessionize;
pub mod visitor;

pub use sessionize::{Config, DurationChange, Identifier, Outcome, SessionAttrs, SessionRow};
