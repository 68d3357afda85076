//! live: the in-memory state behind the live stats — who is active now (ordered by last
//! seen, so expiry and counting never scan everyone) and exact running counters kept as
//! events commit (so a stats read never scans stored events). Pure data structures; the
//! server wraps them in a lock and drives expiry from its clock.

pub mod active;
pub mod counters;
pub mod model;
pub mod partitioned;
pub mod snapshot;

pub use active::ActiveVisitors;
pub use counters::{Counters, SiteCounters, VisitorDays};
pub use model::{LiveModel, LiveSnapshot};
pub use partitioned::PartitionedLive;
pub use snapshot::LiveStats;
