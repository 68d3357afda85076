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

/// Where a rebuild reads and writes: the embedded store refills `rollups` from every row;
/// the cluster's applier of one log partition fills a scratch table from the rows of its
/// partition (and those copied from an embedded store).
pub struct Target<'a> {
    /// The table the rows go into, with the columns of `rollups` (site … page_time_visits).
    pub table: &'a str,
    /// The log partitions whose rows are read (the `log_part` column), or None for all.
    pub parts: Option<&'a [u16]>,
}

impl Target<'static> {
    /// All rows into `rollups`.
    pub const ALL: Target<'static> = Target {
        table: "rollups",
        parts: None,
    };
}

impl Target<'_> {
    /// The condition on a scan's rows (`AND …` on `alias`, or nothing).
    fn scope(&self, alias: &str) -> String {
        match self.parts {
            None => String::new(),
            Some(parts) => {
                let list: Vec<String> = parts.iter().map(u16::to_string).collect();
                format!(" AND {alias}log_part IN ({})", list.join(", "))
            }
        }
    }
}

/// The columns of a rollup row, in the order the statements fill them.
const COLUMNS: &str =
    "site, grain, bucket, dim, value, visitors, pageviews, events, visits, bounces, duration_ms, \
     visit_pageviews, scroll_sum, scroll_visits, page_time_ms, page_time_visits";

/// The visits of `site` whose current state started in `[start, end)`, as table `s`.
fn visits(site: &str, start: i64, end: i64, scope: &str, dialect: &dyn Dialect) -> Sql {
    let mut s = Sql::default();
    s.push("(")
        .append(dialect.live_visits(site, Some(start), end, scope))
        .push(") s");
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
fn page_times(
    site: &str,
    start: i64,
    end: i64,
    bucket: &Sql,
    target: &Target,
    dialect: &dyn Dialect,
) -> Sql {
    let scope = target.scope("");
    // Views up to the latest end of the visits that overlap the range.
    let mut cond = Sql::default();
    cond.push(&format!("e.site = ? AND e.name = 'pageview' AND e.ts >= ? AND e.ts <= (SELECT max(end_ts) FROM sessions WHERE site = ? AND start_ts < ? AND end_ts >= ?{scope}){}", target.scope("e.")))
        .bind(Param::Text(site.to_string()))
        .bind(Param::Int(start))
        .bind(Param::Text(site.to_string()))
        .bind(Param::Int(end))
        .bind(Param::Int(start));
    let mut s = Sql::default();
    s.push(&format!("SELECT b, v, 0, 0, 0, 0, 0, 0, 0, 0, 0, sum(t), count(*) FROM (SELECT {} AS b, e.pathname AS v, e.session_id AS sid, sum(e.dur) AS t FROM (", bucket.text));
    s.params.extend(bucket.params.clone());
    // The visit's end is read as `visit_end`: ClickHouse's aliases are visible in WHERE.
    s.push("SELECT e.ts, e.pathname, e.session_id, CASE WHEN e.nxt IS NOT NULL THEN e.nxt - e.ts WHEN x.visit_end > e.ts THEN x.visit_end - e.ts END AS dur FROM (")
        .append(dialect.with_next(&cond))
        .push(&format!(") e JOIN (SELECT session_id, max(end_ts) AS visit_end FROM sessions WHERE site = ? AND start_ts < ? AND end_ts >= ?{scope} \
        GROUP BY session_id, version HAVING sum(sign) > 0) x ON x.session_id = e.session_id WHERE e.ts < ?) e \
        WHERE e.dur IS NOT NULL GROUP BY b, v, sid) AS per_visit GROUP BY b, v"))
        .bind(Param::Text(site.to_string()))
        .bind(Param::Int(end))
        .bind(Param::Int(start))
        .bind(Param::Int(end));
    s
}

/// Deletes, then refills, `site`'s rows of `rollups` for local days `[from_day, to_day)`.
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
    let mut out = vec![(
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
    )];
    out.extend(fill(site, tz, from_day, to_day, &Target::ALL, dialect));
    out
}

/// Inserts into `target` the rollup rows of `site` for local days `[from_day, to_day)`,
/// computed from the rows `target` reads.
pub fn fill(
    site: &str,
    tz: Tz,
    from_day: i64,
    to_day: i64,
    target: &Target,
    dialect: &dyn Dialect,
) -> Vec<Statement> {
    let clock = LocalClock::new(tz);
    let (start, _) = clock.day_span(from_day);
    let (end, _) = clock.day_span(to_day);
    let mut out = Vec::new();
    let (table, es, ss) = (target.table, target.scope("e."), target.scope(""));
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
            // The parts' columns are named n_…: ClickHouse would read a name shared with a
            // column of `sessions` as the alias inside its own aggregate.
            sql.push(&format!("INSERT INTO {table} ({COLUMNS}) SELECT ?, ?, b, ?, v, sum(n_visitors), sum(n_pageviews), sum(n_events), sum(n_visits), sum(n_bounces), sum(n_duration_ms), sum(n_visit_pageviews), sum(n_scroll_sum), sum(n_scroll_visits), sum(n_page_time_ms), sum(n_page_time_visits) FROM ("))
                .bind(Param::Text(site.to_string()))
                .bind(Param::Int(grain as i64))
                .bind(Param::Int(i64::from(*code)));
            let mut halves = 0;
            if let Some(col) = event_col {
                let b = key.sql("e.ts", dialect);
                sql.push(&format!("SELECT {} AS b, {col} AS v, count(DISTINCT e.visitor_id) AS n_visitors, {pageview} AS n_pageviews, count(*) AS n_events, 0 AS n_visits, 0 AS n_bounces, 0 AS n_duration_ms, 0 AS n_visit_pageviews, 0 AS n_scroll_sum, 0 AS n_scroll_visits, 0 AS n_page_time_ms, 0 AS n_page_time_visits FROM events e WHERE e.site = ? AND e.ts >= ? AND e.ts < ? AND e.name <> 'engagement'{es} GROUP BY b, v", b.text));
                sql.params.extend(b.params);
                bind_range(&mut sql, site, start, end);
                halves += 1;
                if grain == Grain::Day && *code == dim::PAGE {
                    // Each visit's deepest scroll per day and page, then summed.
                    let b = key.sql("e.ts", dialect);
                    sql.push(&format!(" UNION ALL SELECT b, v, 0, 0, 0, 0, 0, 0, 0, sum(m), count(*), 0, 0 FROM (SELECT {} AS b, {col} AS v, e.session_id AS sid, max(e.scroll_depth) AS m FROM events e WHERE e.site = ? AND e.ts >= ? AND e.ts < ? AND e.name = 'engagement' AND e.scroll_depth IS NOT NULL{es} GROUP BY b, v, sid) AS per_visit GROUP BY b, v", b.text));
                    sql.params.extend(b.params);
                    bind_range(&mut sql, site, start, end);
                    sql.push(" UNION ALL ").append(page_times(
                        site,
                        start,
                        end,
                        &key.sql("e.ts", dialect),
                        target,
                        dialect,
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
                    "count(DISTINCT s.visitor_id) AS n_visitors, sum(s.pageviews) AS n_pageviews, sum(s.events) AS n_events"
                } else {
                    "0 AS n_visitors, 0 AS n_pageviews, 0 AS n_events"
                };
                let b = key.sql("s.start_ts", dialect);
                sql.push(&format!("SELECT {} AS b, {col} AS v, {event_side}, count(*) AS n_visits, sum(CASE WHEN s.is_bounce THEN 1 ELSE 0 END) AS n_bounces, sum(s.duration_ms) AS n_duration_ms, sum(s.pageviews) AS n_visit_pageviews, 0 AS n_scroll_sum, 0 AS n_scroll_visits, 0 AS n_page_time_ms, 0 AS n_page_time_visits FROM ", b.text));
                sql.params.extend(b.params);
                sql.append(visits(site, start, end, &ss, dialect))
                    .push(" GROUP BY b, v");
            }
            sql.push(") AS parts GROUP BY b, v");
            out.push((sql.text, sql.params));
        }
    }
    // Property rows, from one row per (event, key).
    let len = |x: &str| format!("{} || ':' || {x}", dialect.to_text(&dialect.char_length(x)));
    for (code, value) in [
        (dim::PROP, format!("{} || e.pv", len("e.k"))),
        (
            dim::NAME_PROP,
            format!("{} || {} || e.pv", len("e.name"), len("e.k")),
        ),
    ] {
        let b = day.sql("e.ts", dialect);
        let mut sql = Sql::default();
        sql.push(&format!("INSERT INTO {table} ({COLUMNS}) SELECT ?, ?, {} AS b, ?, {value} AS v, count(DISTINCT e.visitor_id), {pageview}, count(*), 0, 0, 0, 0, 0, 0, 0, 0 FROM {} GROUP BY b, v", b.text, dialect.prop_rows(&ss)))
            .bind(Param::Text(site.to_string()))
            .bind(Param::Int(Grain::Day as i64));
        sql.params.extend(b.params);
        sql.bind(Param::Int(i64::from(code)));
        bind_range(&mut sql, site, start, end);
        out.push((sql.text, sql.params));
    }
    out
}
