//! Cluster mode splits visitors into partitions, each sequenced on its own with its own
//! live counters; the live numbers a node shows are the partitions' counters added up
//! (`SiteCounters::absorb`). For traffic arriving in time order, that must equal what one
//! sequencer and one set of counters make of the same events.

use footfall_core::event::{EnrichedEvent, EventKind};
use footfall_core::identify::Config;
use footfall_core::live::{ActiveVisitors, Counters, LiveModel, LiveStats, PartitionedLive};
use footfall_core::record::CommitRecord;
use footfall_core::sequence::Sequencer;
use footfall_core::{SiteId, Timestamp, VisitorId};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const MIN: i64 = 60_000;
/// 23:10 UTC: the run crosses midnights, so days close while it goes.
const T0: i64 = 1_773_184_200_000;
const SITES: [&str; 2] = ["a.com", "b.com"];
const CFG: Config = Config {
    visit_gap_ms: 30 * MIN,
    dedup_window_ms: MIN,
};

fn ev(kind: EventKind, ts: i64, path: &str, visitor: u64, site: usize) -> EnrichedEvent {
    let mut e = EnrichedEvent::bare(
        SiteId::parse(SITES[site]).unwrap(),
        kind,
        Timestamp(ts),
        path,
        VisitorId(visitor),
    );
    e.title = Some(format!("Title of {path}"));
    e
}

/// Batches of events in time order, each sequenced at its last event's time.
fn batches() -> impl Strategy<Value = Vec<Vec<EnrichedEvent>>> {
    // Up to 25 min between events, up to 30 × 8 of them: several days, so visitors
    // (client ids never rotate) come back after days have closed.
    let one = (0u8..3, 0i64..(25 * MIN), 0usize..4, 0u64..12, 0usize..2);
    prop::collection::vec(prop::collection::vec(one, 1..8), 1..30).prop_map(|bs| {
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
                        ][k as usize];
                        ev(kind, t, &format!("/p{p}"), v + 1, s)
                    })
                    .collect()
            })
            .collect()
    })
}

/// The rule `VisitorDays` documents, computed directly: per visitor, in day order, a page
/// view counts the visitor unless it was counted that day or the day before.
fn unique_by_rule(days: &BTreeMap<(SiteId, VisitorId), BTreeSet<i64>>, site: &SiteId) -> u64 {
    let mut n = 0;
    for ((s, _), ds) in days {
        if s != site {
            continue;
        }
        let mut counted: Option<i64> = None;
        for &d in ds {
            if counted.is_none_or(|c| d >= c + 2) {
                counted = Some(d);
                n += 1;
            }
        }
    }
    n
}

fn now_of(batch: &[EnrichedEvent]) -> Timestamp {
    batch.iter().map(|e| e.ts).max().unwrap_or(Timestamp(T0))
}

proptest! {
    #[test]
    fn partition_counters_add_up_to_one_sequencers(
        bs in batches(),
        parts in 1u64..5,
        snap_at in 0usize..30,
    ) {
        // One sequencer, one model.
        let mut seq = Sequencer::new(CFG, 0);
        let mut one = LiveModel::new(Counters::default(), ActiveVisitors::new(5 * MIN));
        // A sequencer and counters per partition; who is active is kept once per node.
        let mut seqs: Vec<Sequencer> =
            (0..parts).map(|p| Sequencer::new(CFG, p << 56)).collect();
        let mut models: Vec<LiveModel> = (0..parts)
            .map(|_| LiveModel::new(Counters::default(), ActiveVisitors::new(5 * MIN)))
            .collect();
        let mut positions = vec![0u64; parts as usize];
        // Every stored page view's UTC day, per site and visitor: the rule's input.
        let mut days: BTreeMap<(SiteId, VisitorId), BTreeSet<i64>> = BTreeMap::new();
        // Each partition's records, and its owner's snapshot after `snap_at` batches.
        let mut logs: Vec<Vec<CommitRecord>> = vec![Vec::new(); parts as usize];
        let mut snapshots: Vec<Option<(usize, Vec<u8>)>> = vec![None; parts as usize];
        for (i, batch) in bs.iter().enumerate() {
            let now = now_of(batch);
            let rec = seq.sequence(i as u64 + 1, now, batch.clone());
            one.apply(&rec);
            for e in rec.stored().filter(|e| e.event.kind == EventKind::Pageview) {
                days.entry((e.event.site.clone(), e.visitor)).or_default().insert(e.event.ts.day_number());
            }
            if i == snap_at {
                for (p, m) in models.iter().enumerate() {
                    let bytes = postcard::to_stdvec(&m.to_snapshot()).unwrap();
                    snapshots[p] = Some((logs[p].len(), bytes));
                }
            }
            for p in 0..parts {
                let mine: Vec<EnrichedEvent> = batch
                    .iter()
                    .filter(|e| e.visitor.0 % parts == p)
                    .cloned()
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let p = p as usize;
                positions[p] += 1;
                let rec = seqs[p].sequence(positions[p], now, mine);
                models[p].apply(&rec);
                logs[p].push(rec);
            }
        }
        for site in SITES {
            let site = SiteId::parse(site).unwrap();
            let mut merged = footfall_core::live::SiteCounters::default();
            for m in &models {
                if let Some(c) = m.counters.site(&site) {
                    merged.absorb(c);
                }
            }
            // Active visitors: the union of the partitions' (disjoint) visitors.
            let mut active = ActiveVisitors::restore(
                5 * MIN,
                models.iter().flat_map(|m| m.active.to_snapshot()).collect(),
            );
            let end = Timestamp(bs.iter().flatten().map(|e| e.ts.0).max().unwrap_or(T0));
            active.expire(end);
            let mut single_active = ActiveVisitors::restore(5 * MIN, one.active.to_snapshot());
            single_active.expire(end);
            let want = LiveStats::build(&site, 0, one.counters.site(&site), &single_active, None);
            let got = LiveStats::build(&site, 0, Some(&merged), &active, None);
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(want.unique_visitors, unique_by_rule(&days, &site));

            // A node that starts later: each partition from its snapshot, then its log,
            // the partitions taken in reverse order.
            let mut node = PartitionedLive::new(parts as u32, 5 * MIN);
            for p in (0..parts as usize).rev() {
                let from = match &snapshots[p] {
                    Some((n, bytes)) => {
                        node.restore_partition(p as u32, postcard::from_bytes(bytes).unwrap());
                        *n
                    }
                    None => 0,
                };
                for rec in &logs[p][from..] {
                    node.apply(p as u32, rec);
                }
            }
            node.expire(end);
            let mut from_node = node.stats(&site, None);
            from_node.version = want.version;
            prop_assert_eq!(from_node, want);
        }
    }
}
