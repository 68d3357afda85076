//! [`RedisLog`]: the commit log as a Redis Stream, one stream per partition.
//!
//! Record `n` is the stream entry with id `0-n`, so positions stay dense and readers
//! address them exactly as in the file log. A small hash beside the stream keeps the end
//! (the stream alone forgets it once trimmed to nothing), the payload bytes held, and the
//! nonce of the last append.
//!
//! Appends run as one Lua script, atomic in Redis: it checks the writer's lease token
//! (fencing: a writer whose lease lapsed is refused inside Redis, not by a clock on the
//! writer), checks that the end is where the writer thinks, adds the group and moves the
//! end. With `appendonly yes` and `appendfsync always` Redis fsyncs its AOF before it
//! replies, so an `Ok` from [`Log::append`] means the group is on disk.
//!
//! A reply lost to the network leaves the outcome unknown; the nonce lets the writer ask
//! Redis afterwards whether its group went in, instead of guessing.

use super::conn::{broken, Conn};
use super::lease::Token;
use crate::log::{Log, LogError, LogPosition};
use ::redis::{RedisError, Script, Value};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;

/// KEYS: stream, meta, lease, inbox. ARGV: token ('' = unfenced), expected end, nonce,
/// end of a stream not yet created, inbox id consumed up to ('' = none), records….
const APPEND: &str = r"
if redis.call('HGET', KEYS[2], 'void') == ARGV[3] then
  return redis.error_reply('VOID this append was given up as failed')
end
if ARGV[1] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[1] then
  return redis.error_reply('FENCED the lease is no longer held by this writer')
end
local e = tonumber(redis.call('HGET', KEYS[2], 'end') or ARGV[4])
if e ~= tonumber(ARGV[2]) then
  return redis.error_reply('CONFLICT ' .. string.format('%d', e))
end
local bytes = 0
for i = 6, #ARGV do
  e = e + 1
  redis.call('XADD', KEYS[1], string.format('0-%d', e), 'r', ARGV[i])
  bytes = bytes + #ARGV[i]
end
redis.call('HSET', KEYS[2], 'end', string.format('%d', e), 'nonce', ARGV[3])
redis.call('HINCRBY', KEYS[2], 'bytes', bytes)
-- Consumed inbox entries go last: Redis does not undo a script that fails half-way, and
-- an entry dropped before its record was added would be lost.
if ARGV[5] ~= '' then
  local ms, seq = string.match(ARGV[5], '^(%d+)-(%d+)$')
  redis.call('XTRIM', KEYS[4], 'MINID', ms .. '-' .. string.format('%d', tonumber(seq) + 1))
end
return e
";

/// After a lost reply: returns the end if the append with nonce ARGV[1] went in; else
/// voids that nonce, so that the append, should it still be in flight, can never land
/// after its requests were refused.
const RESOLVE: &str = r"
if redis.call('HGET', KEYS[1], 'nonce') == ARGV[1] then
  return tonumber(redis.call('HGET', KEYS[1], 'end'))
end
redis.call('HSET', KEYS[1], 'void', ARGV[1])
return false
";

/// Deletes at most ARGV[2] entries with position <= ARGV[1]; returns {bytes, last}.
/// Bounded so that trimming a large backlog never blocks Redis for long.
const TRIM: &str = r"
local rows = redis.call('XRANGE', KEYS[1], '-', string.format('0-%d', ARGV[1]), 'COUNT', ARGV[2])
if #rows == 0 then return {0, 0} end
local bytes = 0
for _, r in ipairs(rows) do bytes = bytes + #r[2][2] end
local last = tonumber(string.sub(rows[#rows][1], 3))
redis.call('XTRIM', KEYS[1], 'MINID', string.format('0-%d', last + 1))
redis.call('HINCRBY', KEYS[2], 'bytes', -bytes)
return {bytes, last}
";

/// Entries a trim script deletes per call.
const TRIM_STEP: usize = 2_000;

/// How a [`RedisLog`] handle is used.
#[derive(Debug, Clone)]
pub struct RedisLogOptions {
    /// Largest record accepted (default 64 MiB; Redis itself takes up to 512 MB).
    pub max_record_bytes: usize,
    /// Position of the first record of a stream that does not exist yet (default 1).
    pub first_position: u64,
    pub role: Role,
}

/// Whether a handle writes the partition's log or only follows it.
#[derive(Debug, Clone, Default)]
pub enum Role {
    /// Follows another node's appends: `end()` asks Redis, `subscribe()` watches it.
    #[default]
    Reader,
    /// The partition's one writer: `end()` is answered from memory, since nobody else can
    /// move it, and every append is fenced by `fence` (lease key, token) when given
    /// (unfenced only for a single-writer setup and tests).
    Writer { fence: Option<(String, Token)> },
}

impl Default for RedisLogOptions {
    fn default() -> Self {
        RedisLogOptions {
            max_record_bytes: 64 * 1024 * 1024,
            first_position: 1,
            role: Role::Reader,
        }
    }
}

/// The Redis keys of partition `part`: one hash tag, so a Redis Cluster keeps them in one
/// slot (a script may only touch keys of one slot).
pub fn partition_tag(prefix: &str, part: u32) -> String {
    format!("{{{prefix}:{part}}}")
}

pub struct RedisLog {
    conn: Arc<Conn>,
    stream: String,
    meta: String,
    inbox: String,
    /// (lease key, token) checked by every append; `None` for an unfenced writer.
    fence: Mutex<Option<(String, Token)>>,
    writer: bool,
    first_position: u64,
    max_record_bytes: usize,
    /// Last known values, answered when Redis cannot be asked (the trait's `end`, `first`
    /// and `size_bytes` cannot fail).
    end: AtomicU64,
    first: AtomicU64,
    bytes: AtomicU64,
    /// Set after an append whose outcome is unknown: the next `end()` asks Redis.
    stale: AtomicBool,
    watch: watch::Sender<LogPosition>,
    watcher_started: AtomicBool,
    stop: Arc<AtomicBool>,
    append: Script,
    resolve: Script,
    trim: Script,
}

impl RedisLog {
    /// Opens partition `part`'s log under `prefix`, reading its end and size.
    pub fn open(
        conn: Arc<Conn>,
        prefix: &str,
        part: u32,
        options: RedisLogOptions,
    ) -> Result<RedisLog, LogError> {
        let tag = partition_tag(prefix, part);
        let (writer, fence) = match options.role {
            Role::Writer { fence } => (true, fence),
            Role::Reader => (false, None),
        };
        let log = RedisLog {
            conn,
            stream: format!("{tag}:log"),
            meta: format!("{tag}:meta"),
            inbox: super::inbox::inbox_key(&tag),
            fence: Mutex::new(fence),
            writer,
            first_position: options.first_position.max(1),
            max_record_bytes: options.max_record_bytes,
            end: AtomicU64::new(0),
            first: AtomicU64::new(1),
            bytes: AtomicU64::new(0),
            stale: AtomicBool::new(false),
            watch: watch::channel(LogPosition(0)).0,
            watcher_started: AtomicBool::new(false),
            stop: Arc::new(AtomicBool::new(false)),
            append: Script::new(APPEND),
            resolve: Script::new(RESOLVE),
            trim: Script::new(TRIM),
        };
        let end = log.fetch_end()?;
        log.watch.send_replace(end);
        log.fetch_first_and_size()?;
        Ok(log)
    }

    /// Replaces the fencing token (after the lease was taken anew).
    pub fn set_fence(&self, fence: Option<(String, Token)>) {
        *self.fence.lock().unwrap_or_else(PoisonError::into_inner) = fence;
        self.stale.store(true, SeqCst);
    }

    fn fetch_end(&self) -> Result<LogPosition, LogError> {
        let end: Option<u64> = self
            .conn
            .with(|con| ::redis::cmd("HGET").arg(&self.meta).arg("end").query(con))
            .map_err(unavailable)?;
        let end = LogPosition(end.unwrap_or(self.first_position - 1));
        self.end.store(end.0, SeqCst);
        self.watch.send_if_modified(|w| {
            let newer = *w < end;
            if newer {
                *w = end;
            }
            newer
        });
        Ok(end)
    }

    fn fetch_first_and_size(&self) -> Result<(), LogError> {
        let (first, bytes, end): (Value, Option<u64>, Option<u64>) = self
            .conn
            .with(|con| {
                ::redis::pipe()
                    .atomic()
                    .cmd("XRANGE")
                    .arg(&self.stream)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(1)
                    .cmd("HGET")
                    .arg(&self.meta)
                    .arg("bytes")
                    .cmd("HGET")
                    .arg(&self.meta)
                    .arg("end")
                    .query(con)
            })
            .map_err(unavailable)?;
        // With nothing held, the log starts after its end as Redis has it (not as this
        // handle last saw it: another node may have appended since).
        let end = end.unwrap_or(self.first_position - 1);
        let first = match entries(&first)?.first() {
            Some((pos, _)) => pos.0,
            None => end + 1,
        };
        self.first.store(first, SeqCst);
        self.bytes.store(bytes.unwrap_or(0), SeqCst);
        Ok(())
    }

    /// After a lost reply: `Ok(Some(end))` if the append with `nonce` went in, `Ok(None)`
    /// if it did not and now never will, `Err` if Redis could not be asked.
    fn resolve(&self, nonce: &str) -> Result<Option<u64>, RedisError> {
        let mut last = None;
        for attempt in 0..3 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200));
            }
            match self
                .conn
                .with(|con| self.resolve.key(&self.meta).arg(nonce).invoke(con))
            {
                Ok(end) => return Ok(end),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| RedisError::from(std::io::Error::other("no attempt"))))
    }

    /// Starts the thread that blocks on `XREAD` and moves the watched end when another
    /// node appends. Stops when the log is dropped.
    fn start_watcher(&self) {
        if self.watcher_started.swap(true, SeqCst) {
            return;
        }
        let conn = self.conn.fresh();
        let stream = self.stream.clone();
        let meta = self.meta.clone();
        let tx = self.watch.clone();
        let stop = self.stop.clone();
        let spawned = std::thread::Builder::new()
            .name("footfall-log-watch".into())
            .spawn(move || watch_loop(conn, stream, meta, tx, stop));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the log watcher; consumers will poll");
            self.watcher_started.store(false, SeqCst);
        }
    }
}

impl Drop for RedisLog {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
    }
}

fn watch_loop(
    conn: Conn,
    stream: String,
    meta: String,
    tx: watch::Sender<LogPosition>,
    stop: Arc<AtomicBool>,
) {
    // Blocks at most a second at a time so that a dropped log stops its thread soon.
    let block_ms = 1_000u64;
    while !stop.load(SeqCst) {
        let after = *tx.borrow();
        let got: Result<Value, RedisError> = conn.with(|con| {
            ::redis::cmd("XREAD")
                .arg("COUNT")
                .arg(1)
                .arg("BLOCK")
                .arg(block_ms)
                .arg("STREAMS")
                .arg(&stream)
                .arg(format!("0-{}", after.0))
                .query(con)
        });
        match got {
            Ok(Value::Nil) => {}
            Ok(_) => {
                let end: Result<Option<u64>, _> =
                    conn.with(|con| ::redis::cmd("HGET").arg(&meta).arg("end").query(con));
                if let Ok(Some(end)) = end {
                    tx.send_if_modified(|w| {
                        let newer = w.0 < end;
                        if newer {
                            *w = LogPosition(end);
                        }
                        newer
                    });
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

fn unavailable(e: RedisError) -> LogError {
    LogError::Unavailable(e.to_string())
}

/// Parses an `XRANGE`/`XREAD` entry list: `[[id, [field, value]], …]`.
fn entries(v: &Value) -> Result<Vec<(LogPosition, Vec<u8>)>, LogError> {
    let bad = |what: &str| LogError::Unavailable(format!("unexpected reply from Redis: {what}"));
    let rows = match v {
        Value::Array(rows) => rows,
        Value::Nil => return Ok(Vec::new()),
        _ => return Err(bad("entry list")),
    };
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let Value::Array(parts) = row else {
            return Err(bad("entry"));
        };
        let (Some(id), Some(Value::Array(fields))) = (parts.first(), parts.get(1)) else {
            return Err(bad("entry shape"));
        };
        let id = match id {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            _ => return Err(bad("entry id")),
        };
        let pos = id
            .strip_prefix("0-")
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| bad("entry id"))?;
        let Some(Value::BulkString(payload)) = fields.get(1) else {
            return Err(bad("entry payload"));
        };
        out.push((LogPosition(pos), payload.clone()));
    }
    Ok(out)
}

impl RedisLog {
    /// Appends like [`Log::append`] and, in the same atomic step, deletes the partition's
    /// inbox entries up to and including `consumed` (an inbox entry id): an event is then
    /// in the inbox or in the log, never both, never neither.
    pub fn append_consuming(
        &self,
        records: &[&[u8]],
        consumed: &str,
    ) -> Result<LogPosition, LogError> {
        self.append_inner(records, Some(consumed))
    }

    fn append_inner(
        &self,
        records: &[&[u8]],
        consumed: Option<&str>,
    ) -> Result<LogPosition, LogError> {
        if records.is_empty() && consumed.is_none() {
            return Ok(self.end());
        }
        if let Some(big) = records.iter().find(|r| r.len() > self.max_record_bytes) {
            return Err(LogError::TooLarge(big.len()));
        }
        if self.stale.load(SeqCst) || !self.writer {
            self.fetch_end()?;
            self.stale.store(false, SeqCst);
        }
        let expected = self.end.load(SeqCst);
        let fence = self
            .fence
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (lease_key, token) = match &fence {
            Some((key, token)) => (key.clone(), token.0.clone()),
            // Unfenced: the script ignores KEYS[3]; it names this partition's meta key so
            // that every key stays in the partition's slot.
            None => (self.meta.clone(), String::new()),
        };
        let nonce = format!("{:016x}", rand::random::<u64>());
        let result: Result<u64, RedisError> = self.conn.with(|con| {
            let mut call = self.append.prepare_invoke();
            call.key(&self.stream)
                .key(&self.meta)
                .key(&lease_key)
                .key(&self.inbox)
                .arg(&token)
                .arg(expected)
                .arg(&nonce)
                .arg(self.first_position - 1)
                .arg(consumed.unwrap_or(""));
            for r in records {
                call.arg(*r);
            }
            call.invoke(con)
        });
        let end = match result {
            Ok(end) => end,
            Err(e) if e.code() == Some("FENCED") => {
                self.stale.store(true, SeqCst);
                return Err(LogError::Fenced);
            }
            Err(e) if e.code() == Some("CONFLICT") => {
                self.stale.store(true, SeqCst);
                return Err(LogError::Conflict(format!(
                    "expected the end at {expected}, Redis has {}",
                    e.detail().unwrap_or("?")
                )));
            }
            Err(e) if broken(&e) => {
                self.stale.store(true, SeqCst);
                match self.resolve(&nonce) {
                    Ok(Some(end)) => end,
                    Ok(None) => return Err(unavailable(e)),
                    Err(again) => {
                        return Err(LogError::Unavailable(format!(
                            "{e}; whether the group was stored is unknown ({again}): the \
                             writer must rebuild its state from the log"
                        )))
                    }
                }
            }
            Err(e) => return Err(unavailable(e)),
        };
        let added: u64 = records.iter().map(|r| r.len() as u64).sum();
        self.bytes.fetch_add(added, Relaxed);
        self.end.store(end, SeqCst);
        if self.first.load(SeqCst) > end {
            self.first.store(expected + 1, SeqCst);
        }
        self.watch.send_replace(LogPosition(end));
        Ok(LogPosition(end))
    }
}

impl Log for RedisLog {
    fn append(&self, records: &[&[u8]]) -> Result<LogPosition, LogError> {
        self.append_inner(records, None)
    }

    fn end(&self) -> LogPosition {
        if !self.writer || self.stale.load(SeqCst) {
            if let Ok(end) = self.fetch_end() {
                self.stale.store(false, SeqCst);
                return end;
            }
        }
        LogPosition(self.end.load(SeqCst))
    }

    fn first(&self) -> LogPosition {
        let _ = self.fetch_first_and_size();
        LogPosition(self.first.load(SeqCst))
    }

    fn read_after(
        &self,
        after: LogPosition,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<(LogPosition, Vec<u8>)>, LogError> {
        let (end, rows): (Option<u64>, Value) = self
            .conn
            .with(|con| {
                ::redis::pipe()
                    .atomic()
                    .cmd("HGET")
                    .arg(&self.meta)
                    .arg("end")
                    .cmd("XRANGE")
                    .arg(&self.stream)
                    .arg(format!("0-{}", after.0.saturating_add(1)))
                    .arg("+")
                    .arg("COUNT")
                    .arg(max_records.max(1))
                    .query(con)
            })
            .map_err(unavailable)?;
        let end = end.unwrap_or(self.first_position - 1);
        if !self.writer {
            self.end.fetch_max(end, SeqCst);
        }
        let rows = entries(&rows)?;
        let next = after.0 + 1;
        match rows.first() {
            Some((pos, _)) if pos.0 != next => return Err(LogError::Trimmed(next)),
            None if end > after.0 => return Err(LogError::Trimmed(next)),
            _ => {}
        }
        let mut out = Vec::with_capacity(rows.len());
        let mut bytes = 0usize;
        for (pos, payload) in rows {
            if !out.is_empty() && bytes + payload.len() > max_bytes {
                break;
            }
            bytes += payload.len();
            out.push((pos, payload));
        }
        Ok(out)
    }

    fn trim(&self, upto: LogPosition) -> Result<u64, LogError> {
        let mut freed = 0u64;
        loop {
            let (bytes, last): (u64, u64) = self
                .conn
                .with(|con| {
                    self.trim
                        .key(&self.stream)
                        .key(&self.meta)
                        .arg(upto.0)
                        .arg(TRIM_STEP)
                        .invoke(con)
                })
                .map_err(unavailable)?;
            freed += bytes;
            if last == 0 || last >= upto.0 {
                break;
            }
        }
        let _ = self.fetch_first_and_size();
        Ok(freed)
    }

    fn size_bytes(&self) -> u64 {
        let got: Result<Option<u64>, _> = self
            .conn
            .with(|con| ::redis::cmd("HGET").arg(&self.meta).arg("bytes").query(con));
        if let Ok(bytes) = got {
            self.bytes.store(bytes.unwrap_or(0), SeqCst);
        }
        self.bytes.load(SeqCst)
    }

    fn subscribe(&self) -> watch::Receiver<LogPosition> {
        if !self.writer {
            self.start_watcher();
        }
        self.watch.subscribe()
    }
}

impl std::fmt::Debug for RedisLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLog")
            .field("stream", &self.stream)
            .field("writer", &self.writer)
            .finish()
    }
}
