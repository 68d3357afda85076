//! The live state (embedded: in memory), changed only by committed records and by time,
//! with one change feed per site: a write on one site wakes only that site's streams.
//!
//! Expiry sleeps until the next visitor is due to leave, in the manner of mini-redis's
//! purge task: a `Notify` wakes it when a record may have brought that moment forward, or
//! when a test's clock moved.

use crate::clock::Clock;
use footfall_core::live::{LiveModel, LiveSnapshot, LiveStats};
use footfall_core::record::CommitRecord;
use footfall_core::{SiteId, Timestamp};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{watch, Notify};

/// The live-state seam: applied with committed records, read as per-site snapshots, and
/// watched per site. Embedded: [`Live`], in memory; the cluster keeps the same in Redis.
pub trait LiveState: Send + Sync {
    /// Applies a committed (durable) record of log partition `part` (embedded: the one
    /// log, 0), waking the streams of the sites it changed.
    fn apply(&self, part: u32, rec: &CommitRecord);
    /// The site's live stats as of `clock`'s now.
    fn snapshot(&self, site: &SiteId, clock: &dyn Clock, limit: Option<usize>) -> LiveStats;
    /// A feed of the site's version: it changes after every change to that site only.
    fn subscribe(&self, site: &SiteId) -> watch::Receiver<u64>;
    /// Visitors active now on `site`, without building the whole stats object.
    fn active_count(&self, site: &SiteId, clock: &dyn Clock) -> usize;
    /// The time of the site's first page view.
    fn tracking_since(&self, site: &SiteId) -> Option<Timestamp>;
    fn total_pageviews(&self, site: &SiteId) -> u64;
    /// The latest title seen for each of `paths` that has one.
    fn titles(&self, site: &SiteId, paths: &mut dyn Iterator<Item = &str>)
        -> Vec<(String, String)>;
    /// Everything a restart needs to continue (counters and active visitors).
    fn to_snapshot(&self) -> LiveSnapshot;
    /// The counters as they are now (compared with a rebuild from storage).
    fn counters(&self) -> footfall_core::live::Counters;
}

/// One version feed per site that has watchers, so a change wakes only its site's streams.
#[derive(Default)]
pub struct Feeds(Mutex<HashMap<SiteId, watch::Sender<u64>>>);

impl Feeds {
    /// Moves each site's feed forward to its new version (never back).
    pub fn publish(&self, versions: Vec<(SiteId, u64)>) {
        if versions.is_empty() {
            return;
        }
        let feeds = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for (site, version) in versions {
            if let Some(tx) = feeds.get(&site) {
                tx.send_if_modified(|v| {
                    let newer = version > *v;
                    if newer {
                        *v = version;
                    }
                    newer
                });
            }
        }
    }

    /// A receiver of the site's feed, starting at `version` if the feed is new.
    pub fn subscribe(&self, site: &SiteId, version: u64) -> watch::Receiver<u64> {
        let mut feeds = self.0.lock().unwrap_or_else(|p| p.into_inner());
        feeds
            .entry(site.clone())
            .or_insert_with(|| watch::channel(version).0)
            .subscribe()
    }
}

pub struct Live {
    model: Mutex<LiveModel>,
    feeds: Feeds,
    expiry: Notify,
}

impl Live {
    pub fn new(model: LiveModel) -> Self {
        Live {
            model: Mutex::new(model),
            feeds: Feeds::default(),
            expiry: Notify::new(),
        }
    }

    fn model(&self) -> MutexGuard<'_, LiveModel> {
        // A panic while holding the lock can't leave counters half-updated in a way that
        // matters more than stopping all reads would, so recover the guard.
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the model and reads the changed sites' versions under one lock, so a stream
    /// never sees a version go down.
    fn change(&self, f: impl FnOnce(&mut LiveModel) -> BTreeSet<SiteId>) -> Vec<(SiteId, u64)> {
        let mut m = self.model();
        let sites = f(&mut m);
        sites
            .into_iter()
            .map(|s| {
                let v = m.version(&s);
                (s, v)
            })
            .collect()
    }

    /// Expires inactive visitors as of now, waking the streams of the sites they left.
    pub fn expire(&self, clock: &dyn Clock) {
        let left = self.change(|m| m.expire(clock.now()));
        self.feeds.publish(left);
    }

    fn next_expiry(&self) -> Option<Timestamp> {
        self.model().active.next_expiry()
    }
}

impl LiveState for Live {
    fn apply(&self, _part: u32, rec: &CommitRecord) {
        let changed = self.change(|m| m.apply(rec));
        self.feeds.publish(changed);
        self.expiry.notify_one();
    }

    fn snapshot(&self, site: &SiteId, clock: &dyn Clock, limit: Option<usize>) -> LiveStats {
        self.expire(clock);
        self.model().stats(site, limit)
    }

    fn subscribe(&self, site: &SiteId) -> watch::Receiver<u64> {
        let version = self.model().version(site);
        self.feeds.subscribe(site, version)
    }

    fn active_count(&self, site: &SiteId, clock: &dyn Clock) -> usize {
        self.expire(clock);
        self.model().active.count(site)
    }

    fn tracking_since(&self, site: &SiteId) -> Option<Timestamp> {
        self.model()
            .counters
            .site(site)
            .and_then(|c| c.tracking_since)
    }

    fn total_pageviews(&self, site: &SiteId) -> u64 {
        self.model()
            .counters
            .site(site)
            .map_or(0, |c| c.total_pageviews)
    }

    fn titles(
        &self,
        site: &SiteId,
        paths: &mut dyn Iterator<Item = &str>,
    ) -> Vec<(String, String)> {
        let m = self.model();
        m.counters
            .site(site)
            .map_or_else(Vec::new, |c| titles_of(c, paths))
    }

    fn counters(&self) -> footfall_core::live::Counters {
        self.model().counters.clone()
    }

    fn to_snapshot(&self) -> LiveSnapshot {
        self.model().to_snapshot()
    }
}

/// The latest title seen for each of `paths` that has one.
pub fn titles_of(
    c: &footfall_core::live::SiteCounters,
    paths: &mut dyn Iterator<Item = &str>,
) -> Vec<(String, String)> {
    paths
        .filter_map(|p| {
            let (title, _) = c.paths.get(p)?.title.as_ref()?;
            Some((p.to_string(), title.clone()))
        })
        .collect()
}

/// Expires visitors as their time comes, so that streams see "active now" fall without any
/// new event: sleeps until the next expiry, woken early by a new record or a moved clock.
pub fn spawn_expiry(live: Arc<Live>, clock: Arc<dyn Clock>, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            let wait = live
                .next_expiry()
                .map(|t| std::time::Duration::from_millis((t.0 - clock.now().0).max(0) as u64));
            let sleep = async {
                match wait {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sleep => {}
                _ = live.expiry.notified() => {}
                _ = clock.moved() => {}
                _ = shutdown.changed() => break,
            }
            live.expire(clock.as_ref());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use footfall_core::identify::Config;
    use footfall_core::live::ActiveVisitors;
    use footfall_core::sequence::Sequencer;
    use footfall_core::{EnrichedEvent, EventKind, VisitorId};

    fn pageview(site: &SiteId, ts: i64) -> EnrichedEvent {
        EnrichedEvent::bare(
            site.clone(),
            EventKind::Pageview,
            Timestamp(ts),
            "/",
            VisitorId(7),
        )
    }

    #[test]
    fn a_write_wakes_only_its_own_sites_streams() {
        let (a, b) = (
            SiteId::parse("a.com").unwrap(),
            SiteId::parse("b.com").unwrap(),
        );
        let live = Live::new(LiveModel::new(
            Default::default(),
            ActiveVisitors::new(120_000),
        ));
        let mut seq = Sequencer::new(Config::default(), 0);
        let (mut feed_a, mut feed_b) = (live.subscribe(&a), live.subscribe(&b));
        live.apply(
            0,
            &seq.sequence(1, Timestamp(1_000), vec![pageview(&a, 1_000)]),
        );
        assert!(feed_a.has_changed().unwrap());
        assert!(
            !feed_b.has_changed().unwrap(),
            "site B's stream is not woken"
        );
        feed_a.borrow_and_update();
        live.apply(
            0,
            &seq.sequence(2, Timestamp(2_000), vec![pageview(&b, 2_000)]),
        );
        assert!(feed_b.has_changed().unwrap());
        assert!(!feed_a.has_changed().unwrap());

        // Expiry wakes only the site a visitor left.
        feed_b.borrow_and_update();
        let clock = ManualClock::new(Timestamp(121_500));
        live.expire(&clock);
        assert!(feed_a.has_changed().unwrap(), "a's visitor left");
        assert!(
            !feed_b.has_changed().unwrap(),
            "b's visitor is still active"
        );
        assert_eq!(live.snapshot(&b, &clock, None).active_visitors, 1);
        assert_eq!(live.snapshot(&a, &clock, None).active_visitors, 0);
    }
}
