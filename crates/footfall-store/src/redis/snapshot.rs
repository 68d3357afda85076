//! A partition owner's state snapshot, kept in Redis beside the partition's log so that
//! whichever node takes the partition over next replays only the log after it.
//!
//! Writes are fenced like appends: a deposed owner cannot overwrite its successor's
//! snapshot with an older state.

use super::conn::Conn;
use super::lease::Token;
use super::log::partition_tag;
use ::redis::{RedisError, Script};
use std::sync::Arc;

/// KEYS: snapshot, lease. ARGV: token ('' = unfenced), position (8 bytes LE) ++ payload.
const PUT: &str = r"
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return redis.error_reply('FENCED the lease is no longer held by this writer')
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotSlotError {
    #[error("snapshot store unavailable: {0}")]
    Unavailable(String),
    #[error("this node no longer holds the partition's lease")]
    Fenced,
    #[error("stored snapshot is damaged: {0}")]
    Damaged(&'static str),
}

pub struct RedisSnapshot {
    conn: Arc<Conn>,
    key: String,
    put: Script,
}

impl RedisSnapshot {
    /// The snapshot named `name` (e.g. "sequencer") of partition `part`.
    pub fn new(conn: Arc<Conn>, prefix: &str, part: u32, name: &str) -> RedisSnapshot {
        RedisSnapshot {
            conn,
            key: format!("{}:snap:{name}", partition_tag(prefix, part)),
            put: Script::new(PUT),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Replaces the snapshot, if `fence` (lease key, token) still holds.
    pub fn write(
        &self,
        fence: Option<(&str, &Token)>,
        position: u64,
        payload: &[u8],
    ) -> Result<(), SnapshotSlotError> {
        let mut value = Vec::with_capacity(payload.len() + 8);
        value.extend_from_slice(&position.to_le_bytes());
        value.extend_from_slice(payload);
        let (lease_key, token) = match fence {
            Some((k, t)) => (k.to_owned(), t.0.clone()),
            None => (self.key.clone(), String::new()),
        };
        let done: Result<i64, RedisError> = self.conn.with(|con| {
            self.put
                .key(&self.key)
                .key(&lease_key)
                .arg(&token)
                .arg(value.as_slice())
                .invoke(con)
        });
        match done {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("FENCED") => Err(SnapshotSlotError::Fenced),
            Err(e) => Err(SnapshotSlotError::Unavailable(e.to_string())),
        }
    }

    /// Only the position of the snapshot (None if none was written): what the log must
    /// keep everything after.
    pub fn position(&self) -> Result<Option<u64>, SnapshotSlotError> {
        let v: Vec<u8> = self
            .conn
            .with(|con| {
                ::redis::cmd("GETRANGE")
                    .arg(&self.key)
                    .arg(0)
                    .arg(7)
                    .query(con)
            })
            .map_err(|e| SnapshotSlotError::Unavailable(e.to_string()))?;
        match v.len() {
            0 => Ok(None),
            8 => {
                let mut pos = [0u8; 8];
                pos.copy_from_slice(&v);
                Ok(Some(u64::from_le_bytes(pos)))
            }
            _ => Err(SnapshotSlotError::Damaged("shorter than its header")),
        }
    }

    /// The snapshot's position and payload, or None if none was written.
    pub fn read(&self) -> Result<Option<(u64, Vec<u8>)>, SnapshotSlotError> {
        let v: Option<Vec<u8>> = self
            .conn
            .with(|con| ::redis::cmd("GET").arg(&self.key).query(con))
            .map_err(|e| SnapshotSlotError::Unavailable(e.to_string()))?;
        let Some(mut v) = v else { return Ok(None) };
        if v.len() < 8 {
            return Err(SnapshotSlotError::Damaged("shorter than its header"));
        }
        let payload = v.split_off(8);
        let mut pos = [0u8; 8];
        pos.copy_from_slice(&v);
        Ok(Some((u64::from_le_bytes(pos), payload)))
    }
}
