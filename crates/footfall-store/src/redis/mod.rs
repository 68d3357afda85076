//! The cluster's shared state in Redis: the per-partition inbox where any node puts events
//! before acknowledging them ([`Inbox`]), the per-partition commit log ([`RedisLog`]), and
//! the leases that make one node at a time a partition's writer ([`Lease`]).
//!
//! Redis must persist with `appendonly yes` and `appendfsync always`: only then does a
//! reply mean the write is on disk, which is what acknowledging an event promises. And
//! `maxmemory-policy noeviction`: an evicted log entry is a lost event.

mod blob;
mod budget;
mod conn;
mod inbox;
mod lease;
mod log;
mod notices;
mod snapshot;

pub use blob::Blob;
pub use budget::{Attempts, TokenBuckets};
pub use conn::Conn;
pub use inbox::{EntryId, Inbox, InboxError};
pub use lease::{Lease, Token};
pub use log::{partition_tag, RedisLog, RedisLogOptions, Role};
pub use notices::Notices;
pub use snapshot::{RedisSnapshot, SnapshotSlotError};
