//! One blocking Redis connection that reconnects on the next call after a network error.
//!
//! Every caller of a networked store must expect the network to fail; what it must not
//! do is keep using a socket whose last reply may still be in flight (the next read would
//! take the old reply for the new command). So any I/O error or timeout drops the
//! connection, and the next call opens a fresh one.

use ::redis::{Client, Connection, RedisError, RedisResult};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// How long a connect, a read or a write may take before the call fails. Lua scripts
/// here are bounded (a few thousand entries at most), so replies come in milliseconds;
/// anything near this limit means Redis is gone or stalled.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Conn {
    client: Client,
    con: Mutex<Option<Connection>>,
    timeout: Duration,
}

impl Conn {
    /// Parses the URL (`redis://host:port/db`); connects lazily, on the first call.
    pub fn open(url: &str) -> RedisResult<Conn> {
        Ok(Conn {
            client: Client::open(url)?,
            con: Mutex::new(None),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// A copy that talks over its own socket (for a thread that blocks on `XREAD`).
    pub fn fresh(&self) -> Conn {
        Conn {
            client: self.client.clone(),
            con: Mutex::new(None),
            timeout: self.timeout,
        }
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Runs `f` on the connection, connecting first if needed.
    pub fn with<T>(&self, f: impl FnOnce(&mut Connection) -> RedisResult<T>) -> RedisResult<T> {
        let mut slot = self.con.lock().unwrap_or_else(PoisonError::into_inner);
        let con = match &mut *slot {
            Some(con) => con,
            empty => {
                let con = self.client.get_connection_with_timeout(self.timeout)?;
                con.set_read_timeout(Some(self.timeout))?;
                con.set_write_timeout(Some(self.timeout))?;
                empty.insert(con)
            }
        };
        let result = f(con);
        if let Err(e) = &result {
            if broken(e) {
                *slot = None;
            }
        }
        result
    }
}

/// Whether the socket can no longer be trusted to pair the next reply with its command.
pub fn broken(e: &RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_unrecoverable_error()
}
