//! Cluster-wide notices over Redis pub/sub: "something in the metadata changed", so every
//! node reloads its caches of sites, keys and sessions at once. A notice carries nothing
//! but its occurrence; a node that was disconnected reloads when it subscribes again,
//! so a notice missed meanwhile costs nothing.

use super::conn::Conn;
use ::redis::{Client, RedisResult};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

pub struct Notices {
    conn: Arc<Conn>,
    url: String,
    channel: String,
}

impl Notices {
    pub fn new(conn: Arc<Conn>, url: &str, prefix: &str, name: &str) -> Notices {
        Notices {
            conn,
            url: url.to_owned(),
            channel: format!("{prefix}:notice:{name}"),
        }
    }

    /// Tells every subscribed node (this one included).
    pub fn publish(&self) -> RedisResult<()> {
        let _: i64 = self.conn.with(|c| {
            ::redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg("changed")
                .query(c)
        })?;
        Ok(())
    }

    /// Calls `on_notice` once after each (re)subscription and once per notice, until
    /// `stop` is set (checked every second). Reconnects after errors. Blocks: run it on a
    /// thread of its own.
    pub fn listen(&self, stop: &AtomicBool, mut on_notice: impl FnMut()) {
        while !stop.load(SeqCst) {
            if let Err(e) = self.subscribed(stop, &mut on_notice) {
                tracing::warn!(error = %e, channel = %self.channel, "notice subscription lost; reconnecting");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }

    fn subscribed(&self, stop: &AtomicBool, on_notice: &mut impl FnMut()) -> RedisResult<()> {
        let client = Client::open(self.url.as_str())?;
        let mut con = client.get_connection_with_timeout(Duration::from_secs(5))?;
        let mut sub = con.as_pubsub();
        sub.subscribe(&self.channel)?;
        sub.set_read_timeout(Some(Duration::from_secs(1)))?;
        // Whatever changed while unsubscribed.
        on_notice();
        while !stop.load(SeqCst) {
            match sub.get_message() {
                Ok(_) => on_notice(),
                Err(e) if e.is_timeout() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
