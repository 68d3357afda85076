//! Rollups recomputed from the raw tables, set-based: the statements that fill a site's
//! rows for a run of whole local days. Written independently of [`super::keep`] (plain
//! GROUP BYs over stored rows), so a rebuild is also the check that what was kept on write
//! is right.

use super::{dim, Grain, LocalClock};
use crate::query::plan::{BucketKey, Dialect, Param, Sql};
use crate::query::{TimeBucket, VisitProp};
use chrono_tz::Tz;

/// One statement and its parameters.
pub type Statement = (String, Vec<Param>);

/// The visits of `site` whose current state started in `[start, end)`, as table `s`.
fn visits(site: &str, start: i64, end: i64) -> Sql {
    let mut s = Sql::default();
    s.push("(SELECT * FROM sessions x WHERE x.site = ? AND x.sign = 1 AND x.start_ts >= ? AND x.start_ts < ? AND NOT EXISTS (SELECT 1 FROM sessions y WHERE y.site = x.site AND y.session_id = x.session_id AND y.version = x.version AND y.sign = -1)) s")
        .bind(Param::Text(site.to_string()))
        .bind(Param::Int(start))
        .bind(Param::Int(end));
    s
}

/// Binds the `site = ? AND ts >= ? AND ts < ?` of a scan of one site's range.
fn bind_range(sql: &mut Sql, site: &str, start: i64, end: i64) {
    sql.bind(Param::Text(site.to_string()))
        .bind(Param::Int(start))
        .bind(Param::Int(end));
}

/// Time on page for page rows: each view's duration by the sequencer's rule — to the next
/// page view of its visit, or for the last to the visit's end (none while the visit ends
/// on it) — summed per (visit, day, page); the pairs with a measured view are counted. A
/// view's successor can lie past the range (a visit kept alive by heartbeats), so views are
/// read up to the latest end of the visits in question.
fn page_times(site: &str, start: i64, end: i64, bucket: &Sql) -> Sql {
    let mut s = Sql::default();
    s.push(&format!("SELECT b, v, 0, 0, 0, 0, 0, 0, 0, 0, 0, sum(t), count(*) FROM (SELECT {} AS b, e.pathname AS v, e.session_id, sum(e.dur) AS t FROM (", bucket.text));
    s.params.extend(bucket.params.clone());
    s.push("SELECT e.ts, e.pathname, e.session_id, CASE WHEN e.nxt IS NOT NULL THEN e.nxt - e.ts WHEN x.end_ts > e.ts THEN x.end_ts - e.ts END AS dur FROM (\
        SELECT ts, pathname, session_id, lead(ts) OVER (PARTITION BY session_id ORDER BY ts, event_id) AS nxt FROM events \
        WHERE site = ? AND name = 'pageview' AND ts >= ? AND ts <= (SELECT max(end_ts) FROM sessions WHERE site = ? AND start_ts < ? AND end_ts >= ?)) e \
        JOIN (SELECT session_id, any_value(end_ts) AS end_ts FROM sessions WHERE site = ? AND start_ts < ? AND end_ts >= ? \
        GROUP BY session_id, version HAVING sum(sign) > 0) x ON x.session_id = e.session_id WHERE e.ts < ?) e \
        WHERE e.dur IS NOT NULL GROUP BY 1, 2, 3) AS per_visit GROUP BY 1, 2")
        .bind(Param::Text(site.to_string()))
        .bind(Param::Int(start))
        .bind(Param::Text(site.to_string()))
        .bind(Param::Int(end))
        .bind(Param::Int(start))
        .bind(Param::Text(site.to_string()))
        .bind(Param::Int(end))
        .bind(Param::Int(start))
        .bind(Param::Int(end));
    s
}

/// Deletes, then refills, `site`'s rows for local days `[from_day, to_day)`.
pub fn statements(
    site: &str,
    tz: Tz,
    from_day: i64,
    to_day: i64,
    dialect: &dyn Dialect,
) -> Vec<Statement> {
    let clock = LocalClock::new(tz);
    let (start, _) = clock.day_span(from_day);
    let (end, _) = clock.day_span(to_day);
    let mut out = Vec::new();
    out.push((
        "DELETE FROM rollups WHERE site = ? AND ((grain = ? AND bucket >= ? AND bucket < ?) OR (grain = ? AND bucket >= ? AND bucket < ?))".to_string(),
        vec![
            Param::Text(site.to_string()),
            Param::Int(Grain::Day as i64),
            Param::Int(from_day),
            Param::Int(to_day),
            Param::Int(Grain::Hour as i64),
            Param::Int(clock.hour(start)),
            Param::Int(clock.hour(end)),
        ],
    ));
    let day = BucketKey::over(TimeBucket::Day, tz, start, end);
    let hour = BucketKey::over(TimeBucket::Hour, tz, start, end);
    // (dim, event column, visit column): None where that side has no rows.
    let mut dims: Vec<(u8, Option<String>, Option<String>)> = vec![
        (dim::TOTAL, Some("''".into()), Some("''".into())),
        (dim::PAGE, Some("e.pathname".into()), None),
        (dim::NAME, Some("e.name".into()), None),
        (dim::HOSTNAME, Some("e.hostname".into()), None),
    ];
    for (i, p) in VisitProp::ALL.iter().enumerate() {
        let code = dim::VISIT + i as u8;
        if p.changes_during_visit() {
            dims.push((code, None, Some(format!("s.{}", p.column()))));
        } else {
            dims.push((
                code,
                Some(format!("e.{}", p.column())),
                Some(format!("s.{}", p.column())),
            ));
        }
    }
    let pageview = dialect.count_if("e.name = 'pageview'");
    for (grain, key) in [(Grain::Day, &day), (Grain::Hour, &hour)] {
        for (code, event_col, visit_col) in &dims {
            if grain == Grain::Hour && *code != dim::TOTAL {
                continue;
            }
            let mut sql = Sql::default();
            sql.push("INSERT INTO rollups SELECT ?, ?, b, ?, v, sum(visitors), sum(pageviews), sum(events), sum(visits), sum(bounces), sum(duration_ms), sum(visit_pageviews), sum(scroll_sum), sum(scroll_visits), sum(page_time_ms), sum(page_time_visits) FROM (")
                .bind(Param::Text(site.to_string()))
                .bind(Param::Int(grain as i64))
                .bind(Param::Int(i64::from(*code)));
            let mut halves = 0;
            if let Some(col) = event_col {
                let b = key.sql("e.ts", dialect);
                sql.push(&format!("SELECT {} AS b, {col} AS v, count(DISTINCT e.visitor_id) AS visitors, {pageview} AS pageviews, count(*) AS events, 0 AS visits, 0 AS bounces, 0 AS duration_ms, 0 AS visit_pageviews, 0 AS scroll_sum, 0 AS scroll_visits, 0 AS page_time_ms, 0 AS page_time_visits FROM events e WHERE e.site = ? AND e.ts >= ? AND e.ts < ? AND e.name <> 'engagement' GROUP BY 1, 2", b.text));
                sql.params.extend(b.params);
                bind_range(&mut sql, site, start, end);
                halves += 1;
                if grain == Grain::Day && *code == dim::PAGE {
                    // Each visit's deepest scroll per day and page, then summed.
                    let b = key.sql("e.ts", dialect);
                    sql.push(&format!(" UNION ALL SELECT b, v, 0, 0, 0, 0, 0, 0, 0, sum(m) AS scroll_sum, count(*) AS scroll_visits, 0, 0 FROM (SELECT {} AS b, {col} AS v, e.session_id, max(e.scroll_depth) AS m FROM events e WHERE e.site = ? AND e.ts >= ? AND e.ts < ? AND e.name = 'engagement' AND e.scroll_depth IS NOT NULL GROUP BY 1, 2, 3) AS per_visit GROUP BY 1, 2", b.text));
                    sql.params.extend(b.params);
                    bind_range(&mut sql, site, start, end);
                    sql.push(" UNION ALL ").append(page_times(
                        site,
                        start,
                        end,
                        &key.sql("e.ts", dialect),
                    ));
                }
            }
            if let Some(col) = visit_col {
                if halves > 0 {
                    sql.push(" UNION ALL ");
                }
                // Entry and exit rows count everything by visit.
                let by_visit = *code != dim::TOTAL && event_col.is_none();
                let event_side = if by_visit {
                    "count(DISTINCT s.visitor_id) AS visitors, sum(s.pageviews) AS pageviews, sum(s.events) AS events"
                } else {
                    "0 AS visitors, 0 AS pageviews, 0 AS events"
                };
                let b = key.sql("s.start_ts", dialect);
                sql.push(&format!("SELECT {} AS b, {col} AS v, {event_side}, count(*) AS visits, sum(CASE WHEN s.is_bounce THEN 1 ELSE 0 END) AS bounces, sum(s.duration_ms) AS duration_ms, sum(s.pageviews) AS visit_pageviews, 0 AS scroll_sum, 0 AS scroll_visits, 0 AS page_time_ms, 0 AS page_time_visits FROM ", b.text));
                sql.params.extend(b.params);
                sql.append(visits(site, start, end)).push(" GROUP BY 1, 2");
            }
            sql.push(") AS parts GROUP BY b, v");
            out.push((sql.text, sql.params));
        }
    }
    // Property rows, from one row per (event, key).
    let len = |x: &str| format!("{} || ':' || {x}", dialect.char_length(x));
    for (code, value) in [
        (dim::PROP, format!("{} || e.pv", len("e.k"))),
        (
            dim::NAME_PROP,
            format!("{} || {} || e.pv", len("e.name"), len("e.k")),
        ),
    ] {
        let b = day.sql("e.ts", dialect);
        let mut sql = Sql::default();
        sql.push(&format!("INSERT INTO rollups SELECT ?, ?, {} AS b, ?, {value} AS v, count(DISTINCT e.visitor_id), {pageview}, count(*), 0, 0, 0, 0, 0, 0, 0, 0 FROM {} GROUP BY 3, 5", b.text, dialect.prop_rows()))
            .bind(Param::Text(site.to_string()))
            .bind(Param::Int(Grain::Day as i64));
        sql.params.extend(b.params);
        sql.bind(Param::Int(i64::from(code)));
        bind_range(&mut sql, site, start, end);
        out.push((sql.text, sql.params));
    }
    out
}
