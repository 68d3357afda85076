//! The write side after enrich, as stages that pass owned records:
//!
//! ```text
//! requests ─► sequencer ─► log ═► 202            (sequencer.rs: one thread, group commit)
//!                           ├──► live state       (live.rs: applied by the sequencer once durable)
//!                           └──► storage applier  (applier.rs: follows the log into DuckDB)
//! ```
//!
//! plus what gets them back after a restart (recovery.rs, snapshot.rs), the site registry
//! and the daily salts.

pub mod applier;
pub mod live;
pub mod recovery;
pub mod salts;
pub mod sequencer;
pub mod sites;
pub mod snapshot;
