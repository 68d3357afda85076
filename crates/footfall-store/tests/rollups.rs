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

use footfall_core::event::{EnrichedEvent, EventKind};
use footfall_core::identify::Config;
use footfall_core::query::plan::{self, BucketKey, Context, Part, SqlQuery};
use footfall_core::query::result::{self, PartRows, Row};
use footfall_core::query::{parse, time, Dimension, Query};
use footfall_core::sequence::Sequencer;
use footfall_core::{SiteId, Timestamp, VisitorId};
use footfall_store::{DuckStore, EventStore, LogPosition, MetadataStore};
use proptest::prelude::*;
use serde_json::{json, Value};

/// 2026-03-07 00:00 UTC: the US changes to summer time the next day, Chile leaves it on
/// 2026-04-05; Lord Howe (half-hour DST) on 2026-04-05 too.
const T0: i64 = 1_772_841_600_000;
const SITES: [(&str, &str); 4] = [
    ("a.com", "UTC"),
    ("b.com", "Asia/Kolkata"),
    ("c.com", "America/New_York"),
    ("d.com", "Australia/Lord_Howe"),
];
const PAGES: [&str; 4] = ["/", "/pricing", "/blog/x", "/about"];
const COUNTRIES: [&str; 3] = ["DE", "US", "IN"];
const SOURCES: [&str; 3] = ["", "Google", "Hacker News"];

#[derive(Debug, Clone)]
struct Ev {
    site: usize,
    /// Hours after T0 (fractional via minutes).
    minute: i64,
    kind: u8,
    page: usize,
    visitor: u64,
}

/// Half the events anywhere in five days; half in bursts (20 moments, 367 minutes apart so
/// they fall at every hour of the local day, including across midnight), so that visits
/// have several page views and heartbeats and time on page is measured.
fn ev_strategy() -> impl Strategy<Value = Ev> {
    let minute = prop_oneof![
        0i64..(5 * 24 * 60),
        (0i64..20, 0i64..40).prop_map(|(burst, offset)| burst * 367 + offset),
    ];
    (0usize..4, minute, 0u8..10, 0usize..4, 0u64..12).prop_map(
        |(site, minute, kind, page, visitor)| Ev {
            site,
            minute,
            kind,
            page,
            visitor,
        },
    )
}

fn enriched(e: &Ev) -> EnrichedEvent {
    let kind = match e.kind {
        0..=5 => EventKind::Pageview,
        6 => EventKind::Custom,
        7 => EventKind::Engagement,
        _ => EventKind::Heartbeat,
    };
    let mut x = EnrichedEvent::bare(
        SiteId::parse(SITES[e.site].0).unwrap(),
        kind,
        Timestamp(T0 + e.minute * 60_000),
        PAGES[e.page],
        // The same id on every day: a client-held id.
        VisitorId(e.visitor),
    );
    if kind == EventKind::Custom {
        x.name = if e.page.is_multiple_of(2) {
            "signup".into()
        } else {
            "download".into()
        };
    }
    // A visitor's attributes vary with the hour they arrive, so one visitor has several.
    let k = (e.visitor as usize + (e.minute / 600) as usize) % 3;
    x.geo.country = Some(COUNTRIES[k].into());
    x.referrer_source = SOURCES[(e.visitor as usize) % 3].into();
    x.client.browser = if e.visitor.is_multiple_of(2) {
        "Firefox".into()
    } else {
        "Chrome".into()
    };
    if kind == EventKind::Engagement {
        x.scroll_depth = Some((e.minute % 100) as u8);
    }
    // Properties: on most custom events and some page views; a few events repeat a key
    // (a breakdown reads its first value); one value is the literal "(none)".
    let plan = ["free", "pro", "(none)", "team"][(e.minute % 4) as usize];
    x.props = match (kind, e.minute % 5) {
        (EventKind::Custom, 0) => vec![],
        (EventKind::Custom, 1) => vec![("plan".into(), plan.into()), ("plan".into(), "x".into())],
        (EventKind::Custom, _) => vec![("plan".into(), plan.into()), ("seats".into(), "3".into())],
        (EventKind::Pageview, 0) => vec![("plan".into(), plan.into())],
        _ => vec![],
    };
    x
}

/// Events in batches: mostly in time order, some late.
fn records(events: &[Ev], batch: usize) -> Vec<(LogPosition, CommitRecord)> {
    let mut sorted = events.to_vec();
    sorted.sort_by_key(|e| e.minute);
    // Every seventh event arrives late, at the end.
    let (mut on_time, late): (Vec<_>, Vec<_>) = sorted
        .into_iter()
        .enumerate()
        .partition(|(i, _)| i % 7 != 3);
    on_time.extend(late);
    let mut seq = Sequencer::new(Config::default(), 0);
    on_time
        .chunks(batch.max(1))
        .enumerate()
        .map(|(i, chunk)| {
            let evs: Vec<EnrichedEvent> = chunk.iter().map(|(_, e)| enriched(e)).collect();
            let now = evs.iter().map(|e| e.ts.0).max().unwrap_or(T0);
            let pos = i as u64 + 1;
            (LogPosition(pos), seq.sequence(pos, Timestamp(now), evs))
        })
        .collect()
}
use footfall_core::record::CommitRecord;

fn answer(store: &DuckStore, q: &Query, site: &str, rollups: bool) -> (Vec<Row>, bool) {
    let today = chrono::NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
    let range = time::resolve(&q.date_range, q.timezone, today, Some(T0));
    let buckets = q.time_dimension().map(|d| {
        let Dimension::Time(b) = d else {
            unreachable!()
        };
        let unit = b.unwrap_or_else(|| time::auto_bucket(&range));
        let bs = time::buckets(&range, unit, q.timezone, 10_000);
        (BucketKey::new(unit, &bs, q.timezone), bs)
    });
    let cx = Context {
        site,
        start: range.start,
        end: range.end,
        buckets: buckets.as_ref().map(|b| &b.0),
        tz: q.timezone,
        rollups,
    };
    let sql = plan::plan(q, &cx, EventStore::dialect(store));
    let used = sql.iter().any(SqlQuery::from_rollups);
    let mut parts: Vec<PartRows> = sql
        .iter()
        .map(|s| PartRows {
            part: s.part,
            rows: EventStore::run_query(store, s).unwrap(),
        })
        .collect();
    let labels = buckets.as_ref().map(|(key, bs)| {
        let map = key.labels(bs);
        if let Some(i) = q.dimensions.iter().position(Dimension::is_time) {
            for p in &mut parts {
                for (dims, _) in &mut p.rows {
                    if let Some(l) = dims.get(i).and_then(|k| map.get(k)) {
                        dims[i] = l.clone();
                    }
                }
            }
        }
        bs.iter().map(|b| b.label.clone()).collect::<Vec<_>>()
    });
    (result::assemble(q, &parts, labels.as_deref()), used)
}

const DIMS: [&str; 10] = [
    "event:page",
    "event:name",
    "event:hostname",
    "visit:source",
    "visit:country",
    "visit:browser",
    "visit:entry_page",
    "visit:exit_page",
    "visit:city",
    "event:props:plan",
];

/// A query of the kind the dashboard makes, from a few numbers.
fn query(site: usize, shape: (u8, u8, u8, u8, u8)) -> (serde_json::Value, bool) {
    let (metrics_kind, dim, time, filter, range) = shape;
    let d = DIMS[dim as usize % DIMS.len()];
    let event_dim = d.starts_with("event:");
    let metrics = match (metrics_kind % 3, event_dim) {
        (0, _) => json!(["visitors", "percentage"]),
        (1, true) => json!(["visitors", "pageviews", "events"]),
        (1, false) => json!([
            "visitors",
            "visits",
            "pageviews",
            "bounce_rate",
            "visit_duration",
            "views_per_visit"
        ]),
        (_, _) => json!(["visitors", "events", "pageviews"]),
    };
    let mut dims = vec![];
    let with_dim = time % 3 != 0 || metrics_kind % 3 == 0;
    if with_dim {
        dims.push(json!(d));
    }
    let time_dim = match time % 5 {
        1 => Some("time:day"),
        2 => Some("time:hour"),
        3 => Some("time:week"),
        4 if !with_dim => Some("time:month"),
        _ => None,
    };
    if let Some(t) = time_dim {
        dims.push(json!(t));
    }
    let value = match d {
        "event:page" | "visit:entry_page" | "visit:exit_page" => PAGES[filter as usize % 4],
        "visit:country" => COUNTRIES[filter as usize % 3],
        "visit:source" => SOURCES[filter as usize % 3],
        "visit:browser" => "Firefox",
        "event:name" => "pageview",
        "event:props:plan" => ["pro", "(none)"][filter as usize / 4 % 2],
        _ => SITES[site].0,
    };
    let prop = d == "event:props:plan";
    let filters = match filter % 4 {
        // A custom event's properties, as the dashboard shows them.
        1 if prop => json!([["is", "event:name", ["signup"]]]),
        0 | 1 => json!([]),
        2 => json!([["is", d, [value]]]),
        _ => json!([["contains", d, ["o"]]]),
    };
    let date_range = match range % 4 {
        0 => json!(["2026-03-07", "2026-03-11"]),
        1 => json!(["2026-03-08", "2026-03-08"]),
        2 => json!("7d"),
        _ => json!(["2026-03-09", "2026-03-10"]),
    };
    // Whole days, at most one breakdown filtered on itself (or a single value without a
    // breakdown), hourly only for totals, and no visits split by event dimensions: these
    // the rollups must serve.
    let hourly_with_dim = time_dim == Some("time:hour") && with_dim;
    let filter_elsewhere = !with_dim && filter % 4 == 3;
    let single_value_on_visit_page =
        !with_dim && filter % 4 == 2 && (d.ends_with("entry_page") || d.ends_with("exit_page"));
    let single_value = filter % 4 == 2 || (prop && filter % 4 == 1);
    let single_value_hourly = !with_dim && single_value && time_dim == Some("time:hour");
    // A property filter without a breakdown by it has no row of its own.
    let single_value_on_prop = prop && !with_dim && filter % 4 == 2;
    // Scroll depth and time on page (the API wants them by page: a breakdown or a filter)
    // are kept by day: an hourly series of them reads raw rows.
    let scroll = d == "event:page" && metrics_kind % 3 != 0 && (with_dim || filter % 4 >= 2);
    let scroll_raw = scroll && time_dim == Some("time:hour");
    let eligible = !hourly_with_dim
        && !filter_elsewhere
        && !single_value_on_visit_page
        && !single_value_hourly
        && !single_value_on_prop
        && !scroll_raw;
    let mut metrics = metrics;
    if scroll {
        if let Some(m) = metrics.as_array_mut() {
            // Alone too: then the page rows come from these parts only.
            if metrics_kind % 3 == 2 {
                m.clear();
            }
            m.push(json!("scroll_depth"));
            m.push(json!("time_on_page"));
        }
    }
    (
        json!({"site_id": SITES[site].0, "date_range": date_range, "metrics": metrics,
               "dimensions": dims, "filters": filters, "pagination": {"limit": 1000}}),
        eligible,
    )
}

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

/// Rows as the API shows them (a metric over nothing is null, whose number is NaN and so
/// never equal to itself).
fn comparable(rows: &[Row]) -> Vec<(Vec<String>, Vec<serde_json::Value>)> {
    rows.iter()
        .map(|r| (r.dimensions.clone(), r.metrics.clone()))
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
