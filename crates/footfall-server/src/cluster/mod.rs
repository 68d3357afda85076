//! Cluster mode: several identical nodes share Redis (inbox, log, leases, snapshots),
//! ClickHouse (events) and PostgreSQL (metadata).
//!
//! ```text
//! request ─ enrich ─► inbox writer ══ Redis inbox[p] ═► 202     (inbox_writer.rs: group commit)
//!                                        │
//!        owner of partition p (lease) ◄──┘ sequence ─► Redis log[p] (owner.rs: fenced append
//!                                                                    that consumes the inbox)
//! ```
//!
//! Visitors are split into partitions by `identify::partition`; each partition is
//! sequenced by one node at a time, with the same `core::sequence` code as the embedded
//! sequencer, so both modes decide alike.

pub mod applier;
pub mod barrier;
pub mod inbox_writer;
pub mod live;
pub mod node;
pub mod owner;
pub mod snapshot;

/// Event ids must be unique across partitions: each partition numbers its records from
/// 1, so the partition goes in the top bits (positions then have 36 bits, 6.9e10 records).
pub fn partition_id_base(part: u32) -> u64 {
    (part as u64) << 56
}
