//! Token buckets shared by every node (the Stats API's per-key rate limit), kept in Redis
//! and refilled by Redis's own clock, so the nodes' clocks do not matter.

use super::conn::Conn;
use ::redis::{RedisResult, Script};
use std::sync::Arc;

/// KEYS: bucket. ARGV: capacity, refill per millisecond, idle expiry (ms). Returns 1 if a
/// token was taken.
const TAKE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local cap = tonumber(ARGV[1])
local tokens = tonumber(b[1]) or cap
local at = tonumber(b[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - at) * tonumber(ARGV[2]))
local ok = 0
if tokens >= 1 then
  tokens = tokens - 1
  ok = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return ok
";

pub struct TokenBuckets {
    conn: Arc<Conn>,
    prefix: String,
    take: Script,
}

impl TokenBuckets {
    pub fn new(conn: Arc<Conn>, prefix: &str) -> TokenBuckets {
        TokenBuckets {
            conn,
            prefix: prefix.to_owned(),
            take: Script::new(TAKE),
        }
    }

    /// Takes a token from bucket `name`, which holds at most `per_hour` and refills at
    /// `per_hour` an hour. Returns whether there was one.
    pub fn take(&self, name: &str, per_hour: f64) -> RedisResult<bool> {
        let key = format!("{}:bucket:{name}", self.prefix);
        let per_ms = per_hour / 3_600_000.0;
        let ok: i64 = self.conn.with(|c| {
            self.take
                .key(&key)
                .arg(per_hour)
                .arg(per_ms)
                // A full bucket needs no state: forget it once it would be full again.
                .arg(3_600_000u64)
                .invoke(c)
        })?;
        Ok(ok == 1)
    }
}

/// KEYS: counters; ARGV: window (ms), then each counter's limit. Refuses (0) without
/// counting if any counter is at its limit; otherwise counts the attempt on every counter
/// (a counter's window starts at its first attempt) and returns 1.
const ATTEMPT: &str = r"
for i, k in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', k) or '0')
  if n >= tonumber(ARGV[i + 1]) then return 0 end
end
for _, k in ipairs(KEYS) do
  redis.call('INCR', k)
  redis.call('PEXPIRE', k, ARGV[1], 'NX')
end
return 1
";

/// KEYS: counters. Takes one attempt back from each (a success is not a failure).
const FORGIVE: &str = r"
for _, k in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', k) or '0')
  if n > 0 then redis.call('DECR', k) end
end
return 1
";

/// Failure counters every node shares (the login brake): a guesser spreading attempts
/// over the nodes meets the same limit as one talking to a single node.
pub struct Attempts {
    conn: Arc<Conn>,
    prefix: String,
    attempt: Script,
    forgive: Script,
}

impl Attempts {
    pub fn new(conn: Arc<Conn>, prefix: &str) -> Attempts {
        Attempts {
            conn,
            // One hash tag: a script touches all of a login's counters.
            prefix: format!("{{{prefix}:attempts}}"),
            attempt: Script::new(ATTEMPT),
            forgive: Script::new(FORGIVE),
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// Counts an attempt against every `(counter, limit)`, unless one is at its limit
    /// already: then returns false and counts nothing.
    pub fn attempt(&self, counters: &[(String, u32)], window_ms: i64) -> RedisResult<bool> {
        let mut call = self.attempt.prepare_invoke();
        call.arg(window_ms.max(1));
        for (name, limit) in counters {
            call.key(self.key(name)).arg(*limit);
        }
        let ok: i64 = self.conn.with(|c| call.invoke(c))?;
        Ok(ok == 1)
    }

    /// Takes one attempt back from each counter.
    pub fn forgive(&self, counters: &[String]) -> RedisResult<()> {
        let mut call = self.forgive.prepare_invoke();
        for name in counters {
            call.key(self.key(name));
        }
        let _: i64 = self.conn.with(|c| call.invoke(c))?;
        Ok(())
    }
}
