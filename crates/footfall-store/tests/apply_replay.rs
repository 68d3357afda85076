//! Storage's half of the log's promise, on a real DuckDB file: applying records in any
//! chunks, crashing (dropping the connection) after any of them, and replaying from any
//! earlier point — overlapping what was already applied — ends with exactly the rows of
//! one clean run: every record's events once, every visit's collapsing rows once.

use footfall_core::event::{EnrichedEvent, EventKind};
use footfall_core::identify::Config;
use footfall_core::record::CommitRecord;
use footfall_core::sequence::Sequencer;
use footfall_core::{SiteId, Timestamp, VisitorId};
use footfall_store::{DuckStore, EventStore, LogPosition};
use proptest::prelude::*;

const T0: i64 = 1_773_144_000_000;

fn ev(kind: EventKind, ts: i64, path: &str, visitor: u64) -> EnrichedEvent {
    let mut e = EnrichedEvent::bare(
        SiteId::parse("a.com").unwrap(),
        kind,
        Timestamp(ts),
        path,
        VisitorId(visitor),
    );
    e.props = vec![("k".into(), format!("v{visitor}"))];
    e
}

fn records(batches: &[Vec<(bool, u64, u64, u8)>]) -> Vec<(LogPosition, CommitRecord)> {
    let mut seq = Sequencer::new(Config::default(), 0);
    let mut t = T0;
    batches
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let events: Vec<EnrichedEvent> = b
                .iter()
                .map(|&(custom, dt, v, p)| {
                    t += dt as i64 * 1000;
                    let kind = if custom {
                        EventKind::Custom
                    } else {
                        EventKind::Pageview
                    };
                    ev(kind, t, &format!("/p{p}"), v)
                })
                .collect();
            let pos = i as u64 + 1;
            (LogPosition(pos), seq.sequence(pos, Timestamp(t), events))
        })
        .collect()
}

/// (event id, path, ts) per event row.
type EventRows = Vec<(u64, String, i64)>;
/// (session id, sign, version, page views) per collapsing row.
type SessionRows = Vec<(u64, i8, u64, u32)>;

/// Everything stored, in a stable order, and the applied position.
fn contents(dir: &std::path::Path) -> (EventRows, SessionRows, u64) {
    let store = DuckStore::open(dir).unwrap();
    let q = |sql: &str| -> Vec<Vec<String>> {
        let q = footfall_core::query::plan::SqlQuery {
            sql: sql.into(),
            params: vec![],
            part: footfall_core::query::plan::Part::Total,
            dimensions: 3,
        };
        store
            .run_query(&q)
            .unwrap()
            .into_iter()
            .map(|(d, _)| d)
            .collect()
    };
    let events =
        q("SELECT event_id::VARCHAR, pathname, ts::VARCHAR, 0 FROM events ORDER BY event_id")
            .into_iter()
            .map(|r| (r[0].parse().unwrap(), r[1].clone(), r[2].parse().unwrap()))
            .collect();
    let sessions = q("SELECT session_id::VARCHAR, sign::VARCHAR, (version::VARCHAR || ':' || pageviews::VARCHAR), 0 FROM sessions ORDER BY session_id, version, sign")
        .into_iter()
        .map(|r| {
            let (v, pv) = r[2].split_once(':').unwrap();
            (r[0].parse().unwrap(), r[1].parse().unwrap(), v.parse().unwrap(), pv.parse().unwrap())
        })
        .collect();
    let applied = EventStore::applied(&store).unwrap().0 .0;
    (events, sessions, applied)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn any_chunks_crashes_and_replays_store_exactly_once(
        batches in prop::collection::vec(
            prop::collection::vec((any::<bool>(), 0u64..900, 0u64..4, 0u8..3), 1..5), 1..10),
        cuts in prop::collection::vec((0usize..10, 0usize..10), 1..5),
    ) {
        let recs = records(&batches);
        let n = recs.len();

        let clean = tempfile::tempdir().unwrap();
        {
            let mut s = DuckStore::open(clean.path()).unwrap();
            EventStore::apply(&mut s, &recs).unwrap();
        }

        // Apply ranges that overlap and repeat, reopening the database between them, as
        // restarts after crashes would; then finish from the start. A range that would
        // leave a gap after the applied position is refused and changes nothing.
        let dir = tempfile::tempdir().unwrap();
        for (a, b) in cuts {
            let (a, b) = (a.min(n), b.min(n));
            let (a, b) = (a.min(b), a.max(b));
            let mut s = DuckStore::open(dir.path()).unwrap();
            let before = EventStore::applied(&s).unwrap().0 .0 as usize;
            let result = EventStore::apply(&mut s, &recs[a..b]);
            drop(s);
            if a > before && a < b {
                prop_assert!(result.is_err(), "a gap ({before} applied, range {a}..{b}) is refused");
                prop_assert_eq!(contents(dir.path()).2, before as u64);
            } else {
                let reached = if a < b { before.max(b) } else { before };
                prop_assert_eq!(result.unwrap().0, reached as u64);
            }
        }
        {
            let mut s = DuckStore::open(dir.path()).unwrap();
            EventStore::apply(&mut s, &recs).unwrap();
        }
        let want = contents(clean.path());
        prop_assert_eq!(want.2, n as u64);
        prop_assert_eq!(contents(dir.path()), want);
    }
}
