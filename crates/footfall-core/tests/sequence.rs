//! The log's promise, at the level of pure logic: replaying records from any snapshot
//! rebuilds exactly the state that wrote them, so a crash at any point — after any prefix
//! of the log, with or without a snapshot — ends in the same records, visits and counters
//! as one clean run.

use footfall_core::event::{EnrichedEvent, EventKind, GeoHint};
use footfall_core::identify::Config;
use footfall_core::live::{ActiveVisitors, LiveModel, LiveSnapshot};
use footfall_core::record::{CommitRecord, Disposition};
use footfall_core::sequence::{event_id, Sequencer};
use footfall_core::{SiteId, Timestamp, VisitorId};
use proptest::prelude::*;
use std::collections::HashSet;

const MIN: i64 = 60_000;
/// 2026-03-10 23:10 UTC: batches run across midnight, so days close during the run.
const T0: i64 = 1_773_184_200_000;

fn ev(kind: EventKind, ts: i64, path: &str, visitor: u64, site: &str) -> EnrichedEvent {
    let mut e = EnrichedEvent::bare(
        SiteId::parse(site).unwrap(),
        kind,
        Timestamp(ts),
        path,
        VisitorId(visitor),
    );
    if kind == EventKind::Custom {
        e.name = "signup".into();
    }
    e.title = Some(format!("Title of {path}"));
    e.referrer_source = "Direct / None".into();
    e.geo = GeoHint {
        country: Some("FR".into()),
        city: Some("Paris".into()),
        latitude: Some(48.85),
        longitude: Some(2.35),
        region: None,
    };
    e.props = vec![("plan".into(), "pro".into())];
    e
}

/// Batches of events; each batch is sequenced at its last event's time.
fn batches() -> impl Strategy<Value = Vec<Vec<EnrichedEvent>>> {
    let one = (0u8..4, 0i64..(20 * MIN), 0usize..4, 0u64..5, 0usize..2);
    prop::collection::vec(prop::collection::vec(one, 1..6), 1..25).prop_map(|bs| {
        let mut t = T0;
        bs.into_iter()
            .map(|b| {
                b.into_iter()
                    .map(|(k, dt, p, v, s)| {
                        t += dt;
                        let kind = [
                            EventKind::Pageview,
                            EventKind::Heartbeat,
                            EventKind::Engagement,
                            EventKind::Custom,
                        ][k as usize];
                        // A little out of order: some events are dated slightly earlier.
                        let ts = if dt % 7 == 0 { t - 3 * MIN } else { t };
                        let site = ["a.com", "b.org"][s];
                        ev(kind, ts, &format!("/p{p}"), v, site)
                    })
                    .collect()
            })
            .collect()
    })
}

fn now_of(batch: &[EnrichedEvent]) -> Timestamp {
    Timestamp(batch.iter().map(|e| e.ts.0).max().unwrap_or(T0))
}

fn cfg() -> Config {
    Config::default()
}

/// One clean run: the records, and the sequencer snapshot after each record.
fn clean(bs: &[Vec<EnrichedEvent>]) -> (Vec<CommitRecord>, Vec<Vec<u8>>) {
    let mut seq = Sequencer::new(cfg(), 0);
    let mut snaps = vec![seq.snapshot().unwrap()];
    let mut records = Vec::new();
    for (i, b) in bs.iter().enumerate() {
        records.push(seq.sequence(i as u64 + 1, now_of(b), b.clone()));
        snaps.push(seq.snapshot().unwrap());
    }
    (records, snaps)
}

fn live_of(records: &[CommitRecord]) -> LiveModel {
    let mut m = LiveModel::new(Default::default(), ActiveVisitors::new(2 * MIN));
    for r in records {
        m.apply(r);
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Snapshot after record k, crash after record m (k ≤ m): restore, replay k+1..m, then
    /// carry on with the rest. The decisions for the rest are exactly the clean run's.
    #[test]
    fn replay_from_any_snapshot_continues_exactly(bs in batches(), k in 0usize..25, m in 0usize..25) {
        let n = bs.len();
        let (k, m) = (k.min(n), m.min(n));
        let (k, m) = (k.min(m), k.max(m));
        let (records, snaps) = clean(&bs);
        let mut seq = Sequencer::from_snapshot(&snaps[k], cfg(), 0).unwrap();
        for (i, r) in records.iter().enumerate().take(m).skip(k) {
            prop_assert!(seq.replay(i as u64 + 1, r), "replay of record {} decides the same", i + 1);
        }
        for (i, b) in bs.iter().enumerate().skip(m) {
            let again = seq.sequence(i as u64 + 1, now_of(b), b.clone());
            prop_assert_eq!(&again, &records[i]);
        }
    }

    /// Live state from a snapshot after any prefix plus the rest of the log equals live
    /// state from the whole log; and every record survives encoding.
    #[test]
    fn live_state_from_snapshot_plus_log_equals_one_run(bs in batches(), k in 0usize..25) {
        let (records, _) = clean(&bs);
        let k = k.min(records.len());
        let whole = live_of(&records);
        let prefix = live_of(&records[..k]);
        let bytes = postcard::to_stdvec(&prefix.to_snapshot()).unwrap();
        let snap: LiveSnapshot = postcard::from_bytes(&bytes).unwrap();
        let mut resumed = LiveModel::new(snap.counters, ActiveVisitors::restore(2 * MIN, snap.active));
        for r in &records[k..] {
            resumed.apply(r);
        }
        prop_assert_eq!(&resumed.counters, &whole.counters);
        for site in ["a.com", "b.org"] {
            let s = SiteId::parse(site).unwrap();
            let (mut a, mut b) = (resumed.stats(&s, None), whole.stats(&s, None));
            a.version = 0;
            b.version = 0;
            prop_assert_eq!(a, b);
        }
        for r in &records {
            prop_assert_eq!(&CommitRecord::decode(&r.encode().unwrap()).unwrap(), r);
        }
    }

    /// Event ids are unique across records and never reused; stored events carry their
    /// visit; unique visitors follow the rule of `VisitorDays`: a visitor counts once, and
    /// again only on a day at least two after the day it was last counted.
    #[test]
    fn ids_unique_and_visitors_per_day(bs in batches()) {
        let (records, _) = clean(&bs);
        let mut ids = HashSet::new();
        let mut days: std::collections::BTreeSet<(String, u64, i64)> = Default::default();
        for (i, r) in records.iter().enumerate() {
            for (e, attrs) in r.stored_with_attrs() {
                prop_assert!(attrs.is_some() && e.session.is_some());
            }
            for (j, e) in r.entries.iter().enumerate() {
                prop_assert_eq!(e.id, event_id(0, i as u64 + 1, j));
                prop_assert!(ids.insert(e.id));
                if e.disposition == Disposition::Stored && e.event.kind == EventKind::Pageview {
                        days.insert((e.event.site.to_string(), e.visitor.0, e.event.ts.day_number()));
                }
            }
        }
        let live = live_of(&records);
        let total: u64 = live.counters.sites.values().map(|c| c.visitor_days.total()).sum();
        let mut expected = 0u64;
        let mut last: Option<(String, u64, i64)> = None;
        for (site, v, day) in days {
            match &mut last {
                Some((s, lv, counted)) if *s == site && *lv == v => {
                    if day >= *counted + 2 {
                        expected += 1;
                        *counted = day;
                    }
                }
                _ => {
                    expected += 1;
                    last = Some((site, v, day));
                }
            }
        }
        prop_assert_eq!(total, expected);
    }
}

#[test]
fn a_record_of_another_format_is_refused() {
    let mut seq = Sequencer::new(cfg(), 0);
    let r = seq.sequence(
        1,
        Timestamp(T0),
        vec![ev(EventKind::Pageview, T0, "/", 1, "a.com")],
    );
    let mut bytes = r.encode().unwrap();
    bytes[0] = 99;
    assert!(CommitRecord::decode(&bytes).is_err());
    assert!(CommitRecord::decode(&[]).is_err());
    assert!(CommitRecord::decode(&bytes[..1]).is_err());
}

/// An event whose sender didn't say where it happened (empty page: OpenPanel's link clicks)
/// goes on the page its visitor was viewing at that time; with no visit, on "/". The
/// record keeps the page, so a replay decides the same.
#[test]
fn an_event_without_a_page_takes_its_visitors_page() {
    let site = "example.com";
    let mut seq = Sequencer::new(Config::default(), 0);
    let batch = vec![
        ev(EventKind::Pageview, T0, "/a", 1, site),
        ev(EventKind::Pageview, T0 + 2 * MIN, "/b", 1, site),
        // Clicked on /b.
        ev(EventKind::Custom, T0 + 3 * MIN, "", 1, site),
        // Late, dated while the visitor was still on /a.
        ev(EventKind::Custom, T0 + MIN, "", 1, site),
        // Nobody known: no visit to take a page from.
        ev(EventKind::Custom, T0 + 3 * MIN, "", 2, site),
    ];
    let rec = seq.sequence(1, Timestamp(T0 + 3 * MIN), batch);
    let pages: Vec<&str> = rec
        .entries
        .iter()
        .map(|e| e.event.pathname.as_str())
        .collect();
    assert_eq!(pages, ["/a", "/b", "/b", "/a", "/"]);
    // A fresh sequencer replaying the record decides the same.
    let mut again = Sequencer::new(Config::default(), 0);
    assert!(again.replay(1, &rec));
}
