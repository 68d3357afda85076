//! Read-your-writes in cluster mode: a query waits until storage holds every event that
//! was acknowledged before it began, on any node.
//!
//! An acknowledged event is in its partition's inbox, or in the log, or in storage. So the
//! barrier notes each inbox's newest entry, waits until the owners have consumed up to it
//! (it is then in the log), notes each log's end, and waits until ClickHouse's applied
//! position for the partition reaches it.

use footfall_store::redis::{Inbox, RedisLog};
use footfall_store::{ChStore, Log};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the barrier looks again while waiting.
const POLL: Duration = Duration::from_millis(10);

pub struct ClusterBarrier {
    inner: Arc<Inner>,
}

struct Inner {
    inbox: Inbox,
    logs: Vec<RedisLog>,
    store: Mutex<ChStore>,
}

impl ClusterBarrier {
    pub fn new(inbox: Inbox, logs: Vec<RedisLog>, store: ChStore) -> Self {
        ClusterBarrier {
            inner: Arc::new(Inner {
                inbox,
                logs,
                store: Mutex::new(store),
            }),
        }
    }

    /// Waits (up to `limit`) until storage holds everything acknowledged before now.
    /// Returns false if it did not by then (or the services did not answer).
    pub async fn wait(&self, limit: Duration) -> bool {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.wait(limit))
            .await
            .unwrap_or(false)
    }
}

impl Inner {
    fn wait(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let until = |mut done: Box<dyn FnMut() -> Option<bool> + '_>| -> bool {
            loop {
                match done() {
                    Some(true) => return true,
                    None => return false,
                    Some(false) if Instant::now() >= deadline => return false,
                    Some(false) => std::thread::sleep(POLL),
                }
            }
        };
        let mut newest = Vec::with_capacity(self.logs.len());
        for part in 0..self.logs.len() as u32 {
            match self.inbox.last_id(part) {
                Ok(id) => newest.push(id),
                Err(_) => return false,
            }
        }
        let consumed = until(Box::new(|| {
            for (part, newest) in newest.iter().enumerate() {
                let Some(newest) = newest else { continue };
                match self.inbox.first_id(part as u32) {
                    Ok(Some(first)) if first <= *newest => return Some(false),
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
            Some(true)
        }));
        if !consumed {
            return false;
        }
        let ends: Vec<u64> = self.logs.iter().map(|l| l.end().0).collect();
        until(Box::new(|| {
            let store = self.store.lock().unwrap_or_else(|p| p.into_inner());
            let applied = store.applied_positions().ok()?;
            Some(ends.iter().enumerate().all(|(part, end)| {
                *end == 0 || applied.get(&(part as u16)).is_some_and(|a| a >= end)
            }))
        }))
    }
}
