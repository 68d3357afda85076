//! Leases: one owner at a time for a piece of work (a partition's sequencer, its
//! ClickHouse applier), decided inside Redis.
//!
//! A lease is a key holding `<epoch>:<node>` with a time to live. Taking a free lease
//! increments the key's epoch counter first, so every holder in history has a distinct,
//! increasing epoch: that value is the fencing token. A holder renews well before the TTL
//! runs out; a holder that paused longer (GC, a stopped VM, a partition) finds its token
//! gone, and every write it makes through a script that checks the token (the log's
//! append) is refused, so a stale owner can never interleave with the new one.

use super::conn::Conn;
use ::redis::{RedisResult, Script};
use std::sync::Arc;
use std::time::Duration;

/// Takes the lease if free, renews it if `held` is still the value, else returns nil.
const ACQUIRE: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then
  local epoch = redis.call('INCR', KEYS[2])
  local token = string.format('%d', epoch) .. ':' .. ARGV[1]
  redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
  return token
end
if cur == ARGV[3] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return cur
end
return false
";

/// Gives the lease up, only if it is still ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// A lease's current token: `<epoch>:<node>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token(pub String);

impl Token {
    /// The fencing epoch: larger for every later holder.
    pub fn epoch(&self) -> u64 {
        self.0
            .split_once(':')
            .and_then(|(e, _)| e.parse().ok())
            .unwrap_or(0)
    }
}

/// One named lease (`key`), contended by nodes that each know their own name.
pub struct Lease {
    conn: Arc<Conn>,
    key: String,
    epoch_key: String,
    node: String,
    ttl: Duration,
    acquire: Script,
    release: Script,
}

impl Lease {
    /// `key` must share a Redis Cluster hash tag with whatever checks the token.
    pub fn new(conn: Arc<Conn>, key: String, node: &str, ttl: Duration) -> Lease {
        Lease {
            conn,
            epoch_key: format!("{key}:epoch"),
            key,
            node: node.to_owned(),
            ttl,
            acquire: Script::new(ACQUIRE),
            release: Script::new(RELEASE),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Takes the lease if it is free, or renews it if `held` is still its token. `None`
    /// when someone else holds it (or our hold expired and was taken).
    pub fn acquire_or_renew(&self, held: Option<&Token>) -> RedisResult<Option<Token>> {
        let ttl_ms = self.ttl.as_millis().max(1) as u64;
        let held = held.map(|t| t.0.as_str()).unwrap_or("");
        let got: Option<String> = self.conn.with(|con| {
            self.acquire
                .key(&self.key)
                .key(&self.epoch_key)
                .arg(&self.node)
                .arg(ttl_ms)
                .arg(held)
                .invoke(con)
        })?;
        Ok(got.map(Token))
    }

    /// Gives the lease up now (on shutdown), so the next owner need not wait out the TTL.
    pub fn release(&self, token: &Token) -> RedisResult<bool> {
        let n: i64 = self
            .conn
            .with(|con| self.release.key(&self.key).arg(&token.0).invoke(con))?;
        Ok(n == 1)
    }

    /// Who holds it now, if anyone.
    pub fn holder(&self) -> RedisResult<Option<Token>> {
        let v: Option<String> = self
            .conn
            .with(|con| ::redis::cmd("GET").arg(&self.key).query(con))?;
        Ok(v.map(Token))
    }
}
