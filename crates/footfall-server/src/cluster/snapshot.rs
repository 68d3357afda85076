//! A partition's sequencer snapshot in Redis, as recovery reads snapshots: writes are
//! fenced by the owner's lease, so a deposed owner cannot put back an older state.

use crate::pipeline::snapshot::{SnapshotError, SnapshotStore};
use footfall_store::redis::{RedisSnapshot, SnapshotSlotError, Token};
use footfall_store::LogPosition;
use std::sync::{Mutex, PoisonError};

pub struct PartitionSnapshot {
    slot: RedisSnapshot,
    /// (lease key, token) of the current owner; writes are refused without it.
    fence: Mutex<Option<(String, Token)>>,
}

impl PartitionSnapshot {
    pub fn new(slot: RedisSnapshot) -> Self {
        PartitionSnapshot {
            slot,
            fence: Mutex::new(None),
        }
    }

    pub fn set_fence(&self, fence: Option<(String, Token)>) {
        *self.fence.lock().unwrap_or_else(PoisonError::into_inner) = fence;
    }

    fn err(&self, e: SnapshotSlotError) -> SnapshotError {
        SnapshotError::Remote {
            name: self.slot.key().to_owned(),
            reason: e.to_string(),
        }
    }
}

impl SnapshotStore for PartitionSnapshot {
    fn describe(&self) -> String {
        format!("redis {}", self.slot.key())
    }

    fn write(&self, position: LogPosition, payload: &[u8]) -> Result<(), SnapshotError> {
        let fence = self
            .fence
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some((key, token)) = fence else {
            return Err(self.err(SnapshotSlotError::Fenced));
        };
        self.slot
            .write(Some((&key, &token)), position.0, payload)
            .map_err(|e| self.err(e))
    }

    fn read(&self) -> Result<Option<(LogPosition, Vec<u8>)>, SnapshotError> {
        Ok(self
            .slot
            .read()
            .map_err(|e| self.err(e))?
            .map(|(p, b)| (LogPosition(p), b)))
    }
}
