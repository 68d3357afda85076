//! Random traffic for the store tests, and answering a query the way the server does: the
//! same records and queries go to every backend under test.
#![allow(dead_code)]

use footfall_core::event::{EnrichedEvent, EventKind};
use footfall_core::identify::Config;
use footfall_core::query::plan::{self, BucketKey, Context, SqlQuery};
use footfall_core::query::result::{self, PartRows, Row};
use footfall_core::query::{time, Dimension, Query};
use footfall_core::sequence::Sequencer;
use footfall_core::{SiteId, Timestamp, VisitorId};
use footfall_store::{EventStore, LogPosition};
use proptest::prelude::*;
use serde_json::json;

/// 2026-03-07 00:00 UTC: the US changes to summer time the next day, Chile leaves it on
/// 2026-04-05; Lord Howe (half-hour DST) on 2026-04-05 too.
pub const T0: i64 = 1_772_841_600_000;
pub const SITES: [(&str, &str); 4] = [
    ("a.com", "UTC"),
    ("b.com", "Asia/Kolkata"),
    ("c.com", "America/New_York"),
    ("d.com", "Australia/Lord_Howe"),
];
pub const PAGES: [&str; 4] = ["/", "/pricing", "/blog/x", "/about"];
pub const COUNTRIES: [&str; 3] = ["DE", "US", "IN"];
pub const SOURCES: [&str; 3] = ["", "Google", "Hacker News"];

#[derive(Debug, Clone)]
pub struct Ev {
    pub site: usize,
    /// Hours after T0 (fractional via minutes).
    pub minute: i64,
    pub kind: u8,
    pub page: usize,
    pub visitor: u64,
}

/// Half the events anywhere in five days; half in bursts (20 moments, 367 minutes apart so
/// they fall at every hour of the local day, including across midnight), so that visits
/// have several page views and heartbeats and time on page is measured.
pub fn ev_strategy() -> impl Strategy<Value = Ev> {
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

pub fn enriched(e: &Ev) -> EnrichedEvent {
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
    // The blog is on a subdomain: one visit's events have different hosts.
    if PAGES[e.page].starts_with("/blog") {
        x.hostname = format!("blog.{}", SITES[e.site].0);
    }
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
pub fn records(events: &[Ev], batch: usize) -> Vec<(LogPosition, CommitRecord)> {
    records_with_base(events, batch, 0)
}

/// As [`records`], with event and visit ids from `id_base` (another log's).
pub fn records_with_base(
    events: &[Ev],
    batch: usize,
    id_base: u64,
) -> Vec<(LogPosition, CommitRecord)> {
    let mut sorted = events.to_vec();
    sorted.sort_by_key(|e| e.minute);
    // Every seventh event arrives late, at the end.
    let (mut on_time, late): (Vec<_>, Vec<_>) = sorted
        .into_iter()
        .enumerate()
        .partition(|(i, _)| i % 7 != 3);
    on_time.extend(late);
    let mut seq = Sequencer::new(Config::default(), id_base);
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

pub fn answer(store: &dyn EventStore, q: &Query, site: &str, rollups: bool) -> (Vec<Row>, bool) {
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
        goals: &[],
        by_goal: None,
    };
    let sql = plan::plan(q, &cx, store.dialect());
    let used = sql.iter().any(SqlQuery::from_rollups);
    let mut parts: Vec<PartRows> = sql
        .iter()
        .map(|s| PartRows {
            part: s.part,
            rows: store.run_query(s).unwrap(),
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
    let rates = footfall_core::money::Rates::none();
    let lens = footfall_core::query::revenue::Lens::none(&rates);
    (result::assemble(q, &parts, labels.as_deref(), &lens), used)
}

pub const DIMS: [&str; 10] = [
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

/// The few numbers a query is made from: (metrics, dimension, time grain, filter, range).
pub type Shape = (u8, u8, u8, u8, u8);

/// A query of the kind the dashboard makes, from a few numbers.
pub fn query(site: usize, shape: Shape) -> (serde_json::Value, bool) {
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

/// Rows as the API shows them (a metric over nothing is null, whose number is NaN and so
/// never equal to itself).
pub fn comparable(rows: &[Row]) -> Vec<(Vec<String>, Vec<serde_json::Value>)> {
    rows.iter()
        .map(|r| (r.dimensions.clone(), r.metrics.clone()))
        .collect()
}
