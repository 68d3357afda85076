//! The live state shared between the writer (which changes it after each commit) and the
//! readers, plus the change feed: a version that grows with every change, watched by SSE
//! streams.

use crate::clock::Clock;
use footfall_core::live::{ActiveVisitors, Counters, LiveStats};
use footfall_core::SiteId;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

pub struct LiveState {
    pub counters: Counters,
    pub active: ActiveVisitors,
    pub version: u64,
}

pub struct Live {
    state: Mutex<LiveState>,
    feed: watch::Sender<u64>,
}

impl Live {
    pub fn new(counters: Counters, active_timeout_ms: i64) -> Self {
        let (feed, _) = watch::channel(1);
        Live {
            state: Mutex::new(LiveState {
                counters,
                active: ActiveVisitors::new(active_timeout_ms),
                version: 1,
            }),
            feed,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, LiveState> {
        // A panic while holding the lock can't leave counters half-updated in a way that
        // matters more than stopping all reads would, so recover the guard.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes a new version to subscribers. Call after releasing the lock.
    pub fn publish(&self, version: u64) {
        self.feed.send_if_modified(|v| {
            if version > *v {
                *v = version;
                true
            } else {
                false
            }
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.feed.subscribe()
    }

    /// Expires inactive visitors as of now; bumps the version if anyone left.
    pub fn expire(&self, clock: &dyn Clock) {
        let version = {
            let mut st = self.lock();
            if st.active.expire(clock.now()) == 0 {
                return;
            }
            st.version += 1;
            st.version
        };
        self.publish(version);
    }

    /// Visitors active now on `site`, without building the whole stats object.
    pub fn active_count(&self, site: &SiteId, clock: &dyn Clock) -> usize {
        self.expire(clock);
        self.lock().active.count(site)
    }

    /// The latest title seen for each of `paths` that has one.
    pub fn titles<'a>(
        &self,
        site: &SiteId,
        paths: impl Iterator<Item = &'a str>,
    ) -> Vec<(String, String)> {
        let st = self.lock();
        let Some(c) = st.counters.site(site) else {
            return Vec::new();
        };
        paths
            .filter_map(|p| {
                let (title, _) = c.paths.get(p)?.title.as_ref()?;
                Some((p.to_string(), title.clone()))
            })
            .collect()
    }

    pub fn snapshot(&self, site: &SiteId, clock: &dyn Clock, limit: Option<usize>) -> LiveStats {
        self.expire(clock);
        let st = self.lock();
        LiveStats::build(site, st.version, st.counters.site(site), &st.active, limit)
    }
}

/// Expires visitors as their time comes, so that streams see "active now" fall without
/// any new event. Checks at least once a second, since the clock may be moved by tests.
pub fn spawn_expiry(live: Arc<Live>, clock: Arc<dyn Clock>, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => live.expire(clock.as_ref()),
                _ = shutdown.changed() => break,
            }
        }
    });
}
