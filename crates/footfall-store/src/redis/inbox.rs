//! The inbox: where any node puts a partition's enriched events, durably, before it
//! acknowledges them; the partition's owner takes them from there into the log.
//!
//! One stream per partition, beside the partition's log (same hash tag), so the owner's
//! append can delete what it consumed in the same script. Entries are opaque bytes (the
//! server encodes a batch of events).

use super::conn::Conn;
use super::log::partition_tag;
use ::redis::{RedisError, Value};
use std::sync::Arc;

/// Why the inbox refused a batch.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// Redis could not be reached or refused: nothing of the batch was added.
    #[error("inbox unavailable: {0}")]
    Unavailable(String),
    /// A partition's backlog (inbox plus log not yet in storage) is at its limit: nothing
    /// of the batch was added.
    #[error("partition {part} has {backlog} entries waiting (limit {limit})")]
    Full { part: u32, backlog: u64, limit: u64 },
}

/// A stream entry id (`<ms>-<seq>`), ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EntryId(pub u64, pub u64);

impl EntryId {
    pub fn parse(id: &str) -> Option<EntryId> {
        let (ms, seq) = id.split_once('-')?;
        Some(EntryId(ms.parse().ok()?, seq.parse().ok()?))
    }
}

pub(crate) fn inbox_key(tag: &str) -> String {
    format!("{tag}:inbox")
}

pub struct Inbox {
    conn: Arc<Conn>,
    prefix: String,
    parts: u32,
    /// Most entries a partition may hold in its inbox and log together.
    limit: u64,
}

impl Inbox {
    pub fn new(conn: Arc<Conn>, prefix: &str, parts: u32, limit: u64) -> Inbox {
        Inbox {
            conn,
            prefix: prefix.to_owned(),
            parts: parts.max(1),
            limit,
        }
    }

    pub fn parts(&self) -> u32 {
        self.parts
    }

    fn keys(&self, part: u32) -> (String, String) {
        let tag = partition_tag(&self.prefix, part);
        (inbox_key(&tag), format!("{tag}:log"))
    }

    /// Entries waiting in partition `part`: its inbox plus its log (the log is trimmed
    /// only once storage has the records, so this is the storage backlog too).
    pub fn backlog(&self, part: u32) -> Result<u64, RedisError> {
        let (inbox, log) = self.keys(part);
        let (a, b): (u64, u64) = self.conn.with(|con| {
            ::redis::pipe()
                .cmd("XLEN")
                .arg(&inbox)
                .cmd("XLEN")
                .arg(&log)
                .query(con)
        })?;
        Ok(a + b)
    }

    /// Adds every `(partition, payload)` in one transaction: all or nothing. Returns once
    /// Redis replied, which (with `appendfsync always`) is after its fsync.
    pub fn push(&self, batch: &[(u32, &[u8])]) -> Result<(), InboxError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut parts: Vec<u32> = batch.iter().map(|(p, _)| *p).collect();
        parts.sort_unstable();
        parts.dedup();
        // The limit is checked before the write, outside the transaction: two racing
        // pushes may pass it by a batch each, which a limit of thousands absorbs.
        for &part in &parts {
            let backlog = self
                .backlog(part)
                .map_err(|e| InboxError::Unavailable(e.to_string()))?;
            if backlog >= self.limit {
                return Err(InboxError::Full {
                    part,
                    backlog,
                    limit: self.limit,
                });
            }
        }
        let mut pipe = ::redis::pipe();
        pipe.atomic();
        for (part, payload) in batch {
            let (inbox, _) = self.keys(*part);
            pipe.cmd("XADD")
                .arg(&inbox)
                .arg("*")
                .arg("e")
                .arg(*payload)
                .ignore();
        }
        let _: () = self
            .conn
            .with(|con| pipe.query(con))
            .map_err(|e| InboxError::Unavailable(e.to_string()))?;
        Ok(())
    }

    /// The id of partition `part`'s newest entry, if any.
    pub fn last_id(&self, part: u32) -> Result<Option<EntryId>, RedisError> {
        self.edge_id(part, "XREVRANGE", "+", "-")
    }

    /// The id of partition `part`'s oldest entry still waiting, if any.
    pub fn first_id(&self, part: u32) -> Result<Option<EntryId>, RedisError> {
        self.edge_id(part, "XRANGE", "-", "+")
    }

    fn edge_id(
        &self,
        part: u32,
        cmd: &str,
        from: &str,
        to: &str,
    ) -> Result<Option<EntryId>, RedisError> {
        let (inbox, _) = self.keys(part);
        let v: Value = self.conn.with(|con| {
            ::redis::cmd(cmd)
                .arg(&inbox)
                .arg(from)
                .arg(to)
                .arg("COUNT")
                .arg(1)
                .query(con)
        })?;
        let entries = parse_xread(Value::Array(vec![Value::Array(vec![Value::Nil, v])]));
        Ok(entries.first().and_then(|(id, _)| EntryId::parse(id)))
    }

    /// Up to `count` entries of partition `part` after entry id `after` ("0-0" for the
    /// start), waiting up to `block_ms` when there are none. Entries are `(id, payload)`.
    pub fn read(
        &self,
        part: u32,
        after: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<(String, Vec<u8>)>, RedisError> {
        let (inbox, _) = self.keys(part);
        let v: Value = self.conn.with(|con| {
            ::redis::cmd("XREAD")
                .arg("COUNT")
                .arg(count.max(1))
                .arg("BLOCK")
                .arg(block_ms)
                .arg("STREAMS")
                .arg(&inbox)
                .arg(after)
                .query(con)
        })?;
        Ok(parse_xread(v))
    }
}

/// `XREAD` answers `[[stream, [[id, [field, value]], …]]]` (RESP2) or a map (RESP3);
/// entries that do not have that shape are skipped (nothing else writes these streams).
fn parse_xread(v: Value) -> Vec<(String, Vec<u8>)> {
    let streams = match v {
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => kv.pop(),
                _ => None,
            })
            .collect::<Vec<_>>(),
        Value::Map(kv) => kv.into_iter().map(|(_, v)| v).collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for entries in streams {
        let Value::Array(entries) = entries else {
            continue;
        };
        for entry in entries {
            let Value::Array(mut parts) = entry else {
                continue;
            };
            if parts.len() != 2 {
                continue;
            }
            let (Some(Value::Array(mut fields)), Some(id)) = (parts.pop(), parts.pop()) else {
                continue;
            };
            let id = match id {
                Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
                Value::SimpleString(s) => s,
                _ => continue,
            };
            if fields.len() != 2 {
                continue;
            }
            if let Some(Value::BulkString(payload)) = fields.pop() {
                out.push((id, payload));
            }
        }
    }
    out
}
