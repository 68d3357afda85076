//! Rollups answer exactly what the raw tables answer. Random traffic (sites in UTC, a
//! half-hour zone and two zones crossing a DST change; visits across local midnight;
//! client-held ids that never rotate; out-of-order events) is applied to a real DuckDB file
//! in random chunks, reopening the database between some of them (so the rollup keeper
//! reloads its days from storage), and then every query of a random set is answered twice —
//! with rollups allowed and with raw tables only — and the answers must be equal. The kept
//! rollups must also equal a rebuild from raw rows.
//!
//! Between chunks, closed days move to the archive tier (compaction) at random cutoffs, so
//! late events land in days already moved and visits change after their move; every answer
//! must equal that of a store the same records went into without compaction.

mod common;

use common::traffic::*;
use footfall_core::query::parse;
use footfall_core::query::plan::{Part, SqlQuery};
use footfall_core::SiteId;
use footfall_store::{DuckStore, EventStore, MetadataStore};
use proptest::prelude::*;
use serde_json::{json, Value};

fn rollup_rows(store: &DuckStore) -> Vec<Vec<String>> {
    let q = SqlQuery {
        sql: "SELECT site || '|' || grain || '|' || bucket || '|' || dim || '|' || value, \
              visitors || ',' || pageviews || ',' || events || ',' || visits || ',' || bounces || ',' || duration_ms || ',' || visit_pageviews || ',' || scroll_sum || ',' || scroll_visits || ',' || page_time_ms || ',' || page_time_visits \
, 0 FROM rollups WHERE visitors <> 0 OR pageviews <> 0 OR events <> 0 OR visits <> 0 OR bounces <> 0 OR duration_ms <> 0 OR visit_pageviews <> 0 OR scroll_sum <> 0 OR scroll_visits <> 0 OR page_time_ms <> 0 OR page_time_visits <> 0 ORDER BY 1"
            .into(),
        params: vec![],
        part: Part::Total,
        dimensions: 2,
    };
    EventStore::run_query(store, &q)
        .unwrap()
        .into_iter()
        .map(|(d, _)| d)
        .collect()
}

/// Every stored event and the current state of every visit, in a fixed order.
fn stored_rows(store: &DuckStore) -> Vec<Vec<String>> {
    let q = SqlQuery {
        sql: "SELECT * FROM (SELECT 'e|' || event_id || '|' || site || '|' || ts || '|' || name || '|' || session_id AS r, 0 FROM events \
              UNION ALL SELECT 's|' || site || '|' || session_id || '|' || version || '|' || start_ts || '|' || end_ts || '|' || pageviews || '|' || exit_page, 0 \
              FROM sessions GROUP BY ALL HAVING sum(sign) <> 0) ORDER BY 1"
            .into(),
        params: vec![],
        part: Part::Total,
        dimensions: 1,
    };
    EventStore::run_query(store, &q)
        .unwrap()
        .into_iter()
        .map(|(d, _)| d)
        .collect()
}

fn setup(dir: &std::path::Path) {
    let s = DuckStore::open(dir).unwrap();
    for (site, tz) in SITES {
        let id = SiteId::parse(site).unwrap();
        MetadataStore::add_site(&s, &id, false, 0).unwrap();
        MetadataStore::set_site_timezone(&s, &id, tz).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn rollups_answer_what_raw_rows_answer(
        events in prop::collection::vec(ev_strategy(), 1..400),
        batch in 1usize..60,
        reopen_every in 1usize..6,
        shapes in prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()), 12),
        compact_at in prop::collection::vec(prop::option::of(0i64..7), 0..8),
        slice in 1i64..80,
    ) {
        let recs = records(&events, batch);
        let dir = tempfile::tempdir().unwrap();
        setup(dir.path());
        let mut moved = 0;
        for (i, chunk) in recs.chunks(reopen_every).enumerate() {
            let mut s = DuckStore::open(dir.path()).unwrap();
            EventStore::apply(&mut s, chunk).unwrap();
            if let Some(Some(days)) = compact_at.get(i) {
                // In slices of a few events, as a big day moves.
                while let Some(m) = s.compact_slice(T0 + days * 86_400_000, slice).unwrap() {
                    prop_assert!(m.day_start < T0 + days * 86_400_000);
                    moved += m.events;
                }
                // And the rollups rewritten in key order, which later deltas must still find.
                s.recluster_rollups(0).unwrap();
            }
            if i % 2 == 0 {
                drop(s);
            }
        }
        let plain_dir = tempfile::tempdir().unwrap();
        setup(plain_dir.path());
        let mut plain = DuckStore::open(plain_dir.path()).unwrap();
        // One record at a time without reopening: the keeper forgets idle days between
        // batches, and late events bring them back from storage.
        for rec in recs.chunks(1) {
            EventStore::apply(&mut plain, rec).unwrap();
        }
        let mut store = DuckStore::open(dir.path()).unwrap();
        for (i, shape) in shapes.iter().enumerate() {
            let site = i % SITES.len();
            let (body, eligible) = query(site, *shape);
            let tz: chrono_tz::Tz = SITES[site].1.parse().unwrap();
            let q = parse::parse_v2(&body, tz).unwrap();
            let (raw, raw_used) = answer(&store, &q, SITES[site].0, false);
            let (fast, used) = answer(&store, &q, SITES[site].0, true);
            prop_assert!(!raw_used);
            let (raw, fast) = (comparable(&raw), comparable(&fast));
            prop_assert_eq!(&fast, &raw, "query {} (rollups used: {})", body, used);
            let (unmoved, _) = answer(&plain, &q, SITES[site].0, false);
            prop_assert_eq!(&raw, &comparable(&unmoved), "query {} after moving {} events", body, moved);
            if eligible {
                prop_assert!(used, "rollups should serve {}", body);
            }
        }
        // What was kept on write is what a rebuild from raw rows makes.
        let kept = rollup_rows(&store);
        for (site, _) in SITES {
            store.rebuild_rollups(&SiteId::parse(site).unwrap(), &mut |_| true).unwrap();
        }
        prop_assert_eq!(&kept, &rollup_rows(&store));
        prop_assert_eq!(kept, rollup_rows(&plain));
        // Nothing was lost or doubled by the moves.
        prop_assert_eq!(stored_rows(&store), stored_rows(&plain));
    }
}

/// Scroll depth from rollups, by hand: one visit scrolls to 35 % and 38 % before midnight
/// and 45 % after it — two (visit, day) pairs, 38 and 45 — and another visitor's visit on
/// the second day scrolls to 10 % (scroll depth is the event's minute mod 100 here).
#[test]
fn scroll_depth_is_kept_per_visit_and_day() {
    let ev = |minute, kind, visitor| Ev {
        site: 0,
        minute,
        kind,
        page: 1,
        visitor,
    };
    // records() holds back every seventh event (index 3 first): let that be other traffic.
    let other = |minute| Ev {
        site: 1,
        minute,
        kind: 0,
        page: 0,
        visitor: 9,
    };
    let events = vec![
        other(1),
        other(2),
        other(3),
        other(4),
        ev(1430, 0, 1),
        ev(1435, 7, 1),
        ev(1438, 7, 1),
        ev(1445, 7, 1),
        ev(1500, 0, 2),
        ev(1510, 7, 2),
    ];
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let mut store = DuckStore::open(dir.path()).unwrap();
    EventStore::apply(&mut store, &records(&events, 1)).unwrap();
    let body = json!({"site_id": "a.com", "date_range": ["2026-03-07", "2026-03-08"],
                      "metrics": ["scroll_depth"], "dimensions": ["event:page"]});
    let q = parse::parse_v2(&body, chrono_tz::UTC).unwrap();
    let (raw, _) = answer(&store, &q, "a.com", false);
    let (fast, used) = answer(&store, &q, "a.com", true);
    assert!(
        used,
        "rollups should serve a scroll-depth breakdown by page"
    );
    assert_eq!(comparable(&fast), comparable(&raw));
    let expected = ((38.0 + 45.0 + 10.0) / 3.0_f64).round() as i64;
    assert_eq!(
        comparable(&fast),
        vec![(vec!["/pricing".to_string()], vec![json!(expected)])]
    );
    // Per day: the first day has only the 38 % pair.
    let body = json!({"site_id": "a.com", "date_range": ["2026-03-07", "2026-03-07"],
                      "metrics": ["scroll_depth"], "filters": [["is", "event:page", ["/pricing"]]]});
    let q = parse::parse_v2(&body, chrono_tz::UTC).unwrap();
    let (fast, used) = answer(&store, &q, "a.com", true);
    assert!(used);
    assert_eq!(comparable(&fast), vec![(vec![], vec![json!(38)])]);
    // A page with views but no scroll that day: null on both paths, not 0.
    let body = json!({"site_id": "b.com", "date_range": ["2026-03-07", "2026-03-07"],
                      "metrics": ["pageviews", "scroll_depth"], "filters": [["is", "event:page", ["/"]]]});
    let q = parse::parse_v2(&body, chrono_tz::Asia::Kolkata).unwrap();
    let (raw, _) = answer(&store, &q, "b.com", false);
    let (fast, used) = answer(&store, &q, "b.com", true);
    assert!(used);
    assert_eq!(comparable(&fast), comparable(&raw));
    let rows = comparable(&fast);
    assert_eq!(rows.len(), 1);
    assert!(rows[0].1[0].as_f64().is_some_and(|v| v > 0.0), "{rows:?}");
    assert_eq!(rows[0].1[1], Value::Null, "{rows:?}");
}

/// A log record written before an upgrade (format 1) says when its page durations were
/// measured but not when the page views happened: the rollups of its sites are rebuilt
/// from raw rows, and until then that site's reports read raw rows.
#[test]
fn a_record_from_before_the_upgrade_rebuilds_its_sites_rollups() {
    // A visit across local midnight with page views on both sides, then a later one. The
    // fourth event is another site's (records() holds every seventh back, from the fourth).
    let events: Vec<Ev> = [
        (0, 1430, 0, 0),
        (0, 1436, 0, 1),
        (0, 1442, 8, 1),
        (1, 1443, 0, 0),
        (0, 1450, 0, 2),
        (0, 2000, 0, 3),
        (0, 2010, 0, 0),
        (0, 2020, 8, 0),
    ]
    .into_iter()
    .map(|(site, minute, kind, page)| Ev {
        site,
        minute,
        kind,
        page,
        visitor: 1,
    })
    .collect();
    let mut recs = records(&events, 2);
    let (first, rest) = recs.split_at_mut(2);
    assert!(first[0].1.entries.iter().any(|e| !e.durations.is_empty()));
    first[0].1.legacy = true;
    first[1].1.legacy = true;
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let mut store = DuckStore::open(dir.path()).unwrap();
    let site = SiteId::parse("a.com").unwrap();
    // A backlog of old records, applied one by one: stale throughout, not rebuilt per batch.
    EventStore::apply(&mut store, &first[..1]).unwrap();
    assert_eq!(store.rollup_zone(&site).unwrap(), None);
    EventStore::apply(&mut store, &first[1..]).unwrap();
    assert_eq!(store.rollup_zone(&site).unwrap(), None);
    EventStore::apply(&mut store, rest).unwrap();
    assert_eq!(store.rollup_zone(&site).unwrap().as_deref(), Some("UTC"));
    let kept = rollup_rows(&store);
    store.rebuild_rollups(&site, &mut |_| true).unwrap();
    assert_eq!(kept, rollup_rows(&store));
    // The time on page those rows hold, by hand. Visit 1: "/" at 23:50 and "/pricing" at
    // 23:56 (day 20519), a heartbeat at 00:02, "/blog/x" at 00:10; each view runs to the
    // next, and the last is unmeasured (the visit ends on it). Visit 2 (day
    // 20520): "/about" at 09:20, "/" at 09:30, a heartbeat at 09:40.
    let expected: Vec<(&str, i64, i64)> = vec![
        ("a.com|1|20519|1|/", 6 * 60_000, 1),
        ("a.com|1|20519|1|/pricing", 14 * 60_000, 1),
        ("a.com|1|20520|1|/", 10 * 60_000, 1),
        ("a.com|1|20520|1|/about", 10 * 60_000, 1),
        ("a.com|1|20520|1|/blog/x", 0, 0),
    ];
    for (row, ms, visits) in expected {
        let r = kept
            .iter()
            .find(|r| r[0] == row)
            .unwrap_or_else(|| panic!("no row {row}"));
        let v: Vec<i64> = r[1].split(',').map(|x| x.parse().unwrap()).collect();
        assert_eq!((v[9], v[10]), (ms, visits), "{row}");
    }
}
