//! Query planning: a validated [`Query`] and a resolved range become a few SQL statements
//! for a backend [`Dialect`]. Every value is a bound parameter; every identifier comes from
//! the model's fixed column names. Written once: backends differ only in the handful of
//! functions the `Dialect` trait names.
//!
//! A query is split into parts, each one `GROUP BY` over the query's dimensions:
//! - `EventCounts` over `events` (visitors, page views, events, visits touched),
//! - `VisitTotals` over the current state of `sessions` (visits, bounces, durations),
//! - `TimeOnPage` and `ScrollDepth`, which need per-visit sub-aggregates,
//! - `Total`: visitors without dimensions, the denominator of `percentage`.
//!
//! [`super::result`] joins the parts' rows by their dimension values.

use super::model::*;
use super::time::Bucket;

#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(String),
    Int(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// visitors, pageviews, events, visits (distinct visits with a matching event)
    EventCounts,
    /// visits, bounces, duration sum (ms), page view sum
    VisitTotals,
    /// mean per-visit time on page (ms)
    TimeOnPage,
    /// mean over (visit, local day) pairs of the deepest scroll (%)
    ScrollDepth,
    /// visitors without dimensions
    Total,
}

impl Part {
    /// Number of value columns after the dimension columns.
    pub fn width(self) -> usize {
        match self {
            Part::EventCounts | Part::VisitTotals => 4,
            Part::TimeOnPage | Part::ScrollDepth | Part::Total => 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SqlQuery {
    pub part: Part,
    pub sql: String,
    pub params: Vec<Param>,
    /// Dimension columns first in each row (as text), then `part.width()` numbers.
    pub dimensions: usize,
}

impl SqlQuery {
    /// Whether this part reads the rollups rather than raw rows.
    pub fn from_rollups(&self) -> bool {
        self.sql.contains(" FROM rollups r ")
    }
}

/// The functions that differ between SQL engines.
pub trait Dialect {
    fn count_if(&self, cond: &str) -> String;
    fn uniq_if(&self, expr: &str, cond: &str) -> String;
    /// Distinct (id, day) pairs where `cond`: visitors under the day rule (see
    /// [`crate::rollup`]). `day` is an integer expression of 32 bits.
    fn uniq_pair_if(&self, id: &str, day: &str, cond: &str) -> String;
    /// The value of the property named by the next parameter, or NULL.
    fn prop_value(&self, alias: &str) -> String;
    /// Whether `expr` matches the regex in the next parameter.
    fn regex_match(&self, expr: &str) -> String;
    /// Whether `expr` contains the next parameter.
    fn contains(&self, expr: &str) -> String;
    fn lower(&self, expr: &str) -> String;
    fn to_text(&self, expr: &str) -> String;
    /// Integer division rounding down (both operands are non-negative here).
    fn int_div(&self, a: &str, b: &str) -> String;
    /// year × 12 + zero-based month of a local time given as epoch milliseconds.
    fn month_index(&self, local_ms: &str) -> String;
    /// A table `e` of (ts, visitor_id, name, k, pv): one row per property of each event
    /// but engagement events, the first value of each key, of the site (first parameter)
    /// in `[start, end)` (second and third).
    fn prop_rows(&self) -> String;
    /// The number of characters in `expr`.
    fn char_length(&self, expr: &str) -> String;
    /// `len` characters of `expr` (all the rest if None) from the `start`th (1-based).
    fn substr(&self, expr: &str, start: usize, len: Option<usize>) -> String;
}

pub struct DuckDb;

impl Dialect for DuckDb {
    fn count_if(&self, cond: &str) -> String {
        format!("count(*) FILTER (WHERE {cond})")
    }
    fn uniq_if(&self, expr: &str, cond: &str) -> String {
        format!("count(DISTINCT {expr}) FILTER (WHERE {cond})")
    }
    fn uniq_pair_if(&self, id: &str, day: &str, cond: &str) -> String {
        // Exact: distinct structs. (A 128-bit id × 2³² + day was as exact and half as fast:
        // HUGEINT arithmetic on every row.)
        format!("count(DISTINCT {{'v': {id}, 'd': {day}}}) FILTER (WHERE {cond})")
    }
    fn prop_value(&self, alias: &str) -> String {
        format!("{alias}.prop_values[list_position({alias}.prop_keys, ?)]")
    }
    fn prop_rows(&self) -> String {
        "(SELECT x.ts, x.visitor_id, x.name, x.prop_keys[x.i] AS k, x.prop_values[x.i] AS pv FROM \
         (SELECT ts, visitor_id, name, prop_keys, prop_values, unnest(generate_series(1, len(prop_keys))) AS i \
          FROM events WHERE site = ? AND ts >= ? AND ts < ? AND name <> 'engagement' AND len(prop_keys) > 0) x \
         WHERE list_position(x.prop_keys, x.prop_keys[x.i]) = x.i) e"
            .to_string()
    }
    fn char_length(&self, expr: &str) -> String {
        format!("length({expr})")
    }
    fn substr(&self, expr: &str, start: usize, len: Option<usize>) -> String {
        match len {
            Some(n) => format!("substr({expr}, {start}, {n})"),
            None => format!("substr({expr}, {start})"),
        }
    }
    fn regex_match(&self, expr: &str) -> String {
        format!("regexp_matches({expr}, ?)")
    }
    fn contains(&self, expr: &str) -> String {
        format!("contains({expr}, ?)")
    }
    fn lower(&self, expr: &str) -> String {
        format!("lower({expr})")
    }
    fn to_text(&self, expr: &str) -> String {
        format!("CAST({expr} AS VARCHAR)")
    }
    fn int_div(&self, a: &str, b: &str) -> String {
        format!("(({a}) // ({b}))")
    }
    fn month_index(&self, local_ms: &str) -> String {
        format!("(year(epoch_ms({local_ms})) * 12 + month(epoch_ms({local_ms})) - 1)")
    }
}

/// SQL text with its parameters, in order.
#[derive(Debug, Default, Clone)]
pub struct Sql {
    pub text: String,
    pub params: Vec<Param>,
}

impl Sql {
    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }
    pub fn bind(&mut self, p: Param) -> &mut Self {
        self.params.push(p);
        self
    }
    pub fn append(&mut self, other: Sql) -> &mut Self {
        self.text.push_str(&other.text);
        self.params.extend(other.params);
        self
    }
}

/// Everything a plan needs besides the query.
pub struct Context<'a> {
    pub site: &'a str,
    pub start: i64,
    pub end: i64,
    /// Present when the query has a time dimension.
    pub buckets: Option<&'a BucketKey>,
    /// The site's zone: the days visitors are counted in.
    pub tz: chrono_tz::Tz,
    /// Whether the site's rollups are complete and kept in `tz`: only then may a part be
    /// answered from them.
    pub rollups: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Base {
    Events,
    Visits,
}

/// The current state of every visit of the site: the +1 rows whose version has not been
/// cancelled by a −1 row.
pub(crate) fn live_visits(site: &str, from: Option<i64>, to: i64) -> Sql {
    // Both rows of a cancelled version carry the same start, so bounding the start on both
    // sides keeps every pair whole, and spares the anti-join the site's other visits.
    let bounds = if from.is_some() {
        "start_ts >= ? AND {a}.start_ts < ?"
    } else {
        "start_ts < ?"
    };
    let mut s = Sql::default();
    s.push(&format!(
        "s AS (SELECT * FROM sessions x WHERE x.site = ? AND x.{} AND x.sign = 1 AND NOT EXISTS (\
         SELECT 1 FROM sessions y WHERE y.site = x.site AND y.{} AND y.session_id = x.session_id \
         AND y.version = x.version AND y.sign = -1))",
        bounds.replace("{a}", "x"),
        bounds.replace("{a}", "y"),
    ))
    .bind(Param::Text(site.to_string()));
    for _ in 0..2 {
        if let Some(from) = from {
            s.bind(Param::Int(from));
        }
        s.bind(Param::Int(to));
    }
    s
}

/// How a row finds its time bucket: arithmetic on local time, not a join. The caller builds
/// it from the buckets [`super::time::buckets`] made in the site's zone, and maps keys back
/// to labels. Every bucket size costs the same per row, however many buckets there are.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketKey {
    /// Each stretch of constant UTC offset in the range: (first UTC ms, offset ms).
    segments: Vec<(i64, i64)>,
    unit: TimeBucket,
}

const DAY_MS: i64 = 86_400_000;

impl BucketKey {
    pub fn new(bucket: TimeBucket, buckets: &[Bucket], tz: chrono_tz::Tz) -> BucketKey {
        let segments = match (buckets.first(), buckets.last()) {
            (Some(first), Some(last)) => super::time::offset_segments(tz, first.start, last.end),
            _ => vec![(0, 0)],
        };
        BucketKey {
            segments,
            unit: bucket,
        }
    }

    /// Keys for every instant of `[start, end)` (not tied to a list of buckets).
    pub fn over(unit: TimeBucket, tz: chrono_tz::Tz, start: i64, end: i64) -> BucketKey {
        BucketKey {
            segments: super::time::offset_segments(tz, start, end.max(start + 1)),
            unit,
        }
    }

    pub fn unit(&self) -> TimeBucket {
        self.unit
    }

    /// The key of an instant: hours or days since the epoch in local time, Monday-based
    /// weeks (the epoch was a Thursday), or year × 12 + month.
    fn key_of(&self, ts: i64) -> i64 {
        let off = self
            .segments
            .iter()
            .rev()
            .find(|(from, _)| *from <= ts)
            .or(self.segments.first())
            .map_or(0, |s| s.1);
        let local = ts + off;
        match self.unit {
            TimeBucket::Hour => local.div_euclid(3_600_000),
            TimeBucket::Day => local.div_euclid(DAY_MS),
            TimeBucket::Week => (local.div_euclid(DAY_MS) + 3).div_euclid(7),
            TimeBucket::Month => {
                use chrono::Datelike;
                let d = chrono::DateTime::from_timestamp_millis(local)
                    .map(|d| d.date_naive())
                    .unwrap_or_default();
                i64::from(d.year()) * 12 + i64::from(d.month0())
            }
        }
    }

    /// Key (as the SQL returns it, text) → bucket label.
    pub fn labels(&self, buckets: &[Bucket]) -> std::collections::HashMap<String, String> {
        buckets
            .iter()
            .map(|b| (self.key_of(b.start).to_string(), b.label.clone()))
            .collect()
    }

    pub fn sql(&self, ts: &str, dialect: &dyn Dialect) -> Sql {
        let mut local = Sql::default();
        if self.segments.len() <= 1 {
            local
                .push(&format!("{ts} + CAST(? AS BIGINT)"))
                .bind(Param::Int(self.segments.first().map_or(0, |x| x.1)));
        } else {
            local.push(&format!("{ts} + CASE"));
            for w in self.segments.windows(2) {
                local
                    .push(&format!(" WHEN {ts} < ? THEN CAST(? AS BIGINT)"))
                    .bind(Param::Int(w[1].0))
                    .bind(Param::Int(w[0].1));
            }
            local
                .push(" ELSE CAST(? AS BIGINT) END")
                .bind(Param::Int(self.segments.last().map_or(0, |x| x.1)));
        }
        let text = match self.unit {
            TimeBucket::Hour => dialect.int_div(&local.text, "3600000"),
            TimeBucket::Day => dialect.int_div(&local.text, "86400000"),
            TimeBucket::Week => dialect.int_div(
                &format!("{} + 3", dialect.int_div(&local.text, "86400000")),
                "7",
            ),
            TimeBucket::Month => dialect.month_index(&local.text),
        };
        // month_index may repeat its argument; repeat its parameters to match.
        let repeats = text.matches('?').count() / local.params.len().max(1);
        let mut s = Sql::default();
        s.push(&text);
        for _ in 0..repeats {
            s.params.extend(local.params.clone());
        }
        s
    }
}

/// The SQL expression of a dimension on a base (`e` events, `s` visits, `b` buckets).
fn dimension_expr(d: &Dimension, base: Base, dialect: &dyn Dialect) -> Sql {
    let mut s = Sql::default();
    match d {
        Dimension::Page => s.push("e.pathname"),
        Dimension::Name => s.push("e.name"),
        Dimension::Hostname => s.push("e.hostname"),
        Dimension::Prop(k) => s
            .push(&format!("coalesce({}, '(none)')", dialect.prop_value("e")))
            .bind(Param::Text(k.clone())),
        // Events carry their visit's attributes; only the entry and exit pages, which
        // change as the visit goes on, come from the visit itself.
        Dimension::Visit(p) if base == Base::Events && !p.changes_during_visit() => {
            s.push(&format!("e.{}", p.column()))
        }
        Dimension::Visit(p) => s.push(&format!("s.{}", p.column())),
        // Replaced by the bucket key in `dims_select`; never filtered on.
        Dimension::Time(_) => s.push("NULL"),
    };
    debug_assert!(base == Base::Events || !d.is_event());
    s
}

pub(crate) fn condition_on(expr: Sql, c: &Condition, dialect: &dyn Dialect) -> Sql {
    let mut out = Sql::default();
    let fold = |v: &String| {
        if c.case_sensitive {
            v.clone()
        } else {
            v.to_lowercase()
        }
    };
    let target = |out: &mut Sql| {
        if c.case_sensitive || matches!(c.op, Op::Matches | Op::MatchesNot) {
            out.append(expr.clone());
        } else {
            out.push(&dialect.lower(&expr.text));
            out.params.extend(expr.params.clone());
        }
    };
    if c.op.negated() {
        out.push("NOT ");
    }
    out.push("(");
    match c.op {
        Op::Is | Op::IsNot => {
            target(&mut out);
            out.push(" IN (");
            for (i, v) in c.values.iter().enumerate() {
                out.push(if i == 0 { "?" } else { ", ?" })
                    .bind(Param::Text(fold(v)));
            }
            out.push(")");
        }
        Op::Contains | Op::ContainsNot | Op::Matches | Op::MatchesNot => {
            for (i, v) in c.values.iter().enumerate() {
                if i > 0 {
                    out.push(" OR ");
                }
                let mut inner = Sql::default();
                target(&mut inner);
                if matches!(c.op, Op::Matches | Op::MatchesNot) {
                    out.push(&dialect.regex_match(&inner.text));
                    out.params.extend(inner.params);
                    let pattern = if c.case_sensitive {
                        v.clone()
                    } else {
                        format!("(?i){v}")
                    };
                    out.bind(Param::Text(pattern));
                } else {
                    out.push(&dialect.contains(&inner.text));
                    out.params.extend(inner.params);
                    out.bind(Param::Text(fold(v)));
                }
            }
        }
    }
    out.push(")");
    out
}

/// A filter tree as SQL: and/or/not kept as they are, each condition by `leaf`. One walk
/// for raw rows and rollup rows, which differ only in what a condition reads.
pub(crate) fn filter_tree(f: &Filter, leaf: &mut dyn FnMut(&Condition) -> Sql) -> Sql {
    match f {
        Filter::Condition(c) => leaf(c),
        Filter::And(v) | Filter::Or(v) => {
            let joiner = if matches!(f, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            let mut s = Sql::default();
            s.push("(");
            for (i, sub) in v.iter().enumerate() {
                if i > 0 {
                    s.push(joiner);
                }
                s.append(filter_tree(sub, leaf));
            }
            s.push(")");
            s
        }
        Filter::Not(inner) => {
            let mut s = Sql::default();
            s.push("NOT (").append(filter_tree(inner, leaf)).push(")");
            s
        }
    }
}

fn filter_sql(f: &Filter, base: Base, cx: &Context<'_>, dialect: &dyn Dialect) -> Sql {
    filter_tree(f, &mut |c| {
        if base == Base::Visits && c.dimension.is_event() {
            // A visit matches an event condition if any of its events in range does.
            let mut s = Sql::default();
            s.push("s.session_id IN (SELECT e.session_id FROM events e WHERE e.site = ? AND e.ts >= ? AND e.ts < ? AND ")
                .bind(Param::Text(cx.site.to_string()))
                .bind(Param::Int(cx.start))
                .bind(Param::Int(cx.end));
            s.append(condition_on(
                dimension_expr(&c.dimension, Base::Events, dialect),
                c,
                dialect,
            ));
            s.push(")");
            s
        } else {
            condition_on(dimension_expr(&c.dimension, base, dialect), c, dialect)
        }
    })
}

fn needs_visits_join(q: &Query, dims: &[Dimension]) -> bool {
    let joined = |d: &Dimension| matches!(d, Dimension::Visit(p) if p.changes_during_visit());
    dims.iter().any(joined) || q.all_conditions().iter().any(|c| joined(&c.dimension))
}

/// `SELECT d0, d1, ...` pieces and the matching GROUP BY.
fn dims_select(
    dims: &[Dimension],
    base: Base,
    cx: &Context<'_>,
    dialect: &dyn Dialect,
) -> (Sql, String) {
    let mut sel = Sql::default();
    let mut group = Vec::new();
    for (i, d) in dims.iter().enumerate() {
        let e = match (d, cx.buckets) {
            (Dimension::Time(_), Some(key)) => key.sql(
                if base == Base::Events {
                    "e.ts"
                } else {
                    "s.start_ts"
                },
                dialect,
            ),
            _ => dimension_expr(d, base, dialect),
        };
        sel.push(&format!("{} AS d{i}, ", dialect.to_text(&e.text)));
        sel.params.extend(e.params);
        group.push(format!("d{i}"));
    }
    (
        sel,
        if group.is_empty() {
            String::new()
        } else {
            format!(" GROUP BY {}", group.join(", "))
        },
    )
}

fn with_clause(ctes: Vec<Sql>) -> Sql {
    let mut s = Sql::default();
    if !ctes.is_empty() {
        s.push("WITH ");
        for (i, c) in ctes.into_iter().enumerate() {
            if i > 0 {
                s.push(", ");
            }
            s.append(c);
        }
        s.push(" ");
    }
    s
}

fn where_filters(q: &Query, base: Base, cx: &Context<'_>, dialect: &dyn Dialect) -> Sql {
    let mut s = Sql::default();
    for f in &q.filters {
        s.push(" AND ").append(filter_sql(f, base, cx, dialect));
    }
    s
}

fn event_query(
    q: &Query,
    dims: &[Dimension],
    part: Part,
    cx: &Context<'_>,
    dialect: &dyn Dialect,
) -> SqlQuery {
    let join_visits = needs_visits_join(q, dims) || part == Part::TimeOnPage;
    let mut ctes = Vec::new();
    if join_visits {
        // Events in the range can belong to visits begun before it.
        ctes.push(live_visits(cx.site, None, cx.end));
    }
    if part == Part::TimeOnPage {
        // Page views with the time of the next one in their visit. The next can lie past
        // the range (heartbeats keep a visit going), but not past the end of the visits
        // that began before the range ends.
        let mut pv = Sql::default();
        pv.push("pv AS (SELECT e.*, lead(e.ts) OVER (PARTITION BY e.session_id ORDER BY e.ts, e.event_id) AS nxt FROM events e WHERE e.site = ? AND e.name = 'pageview' AND e.ts >= ? AND e.ts <= (SELECT max(s.end_ts) FROM s WHERE s.start_ts < ?))")
            .bind(Param::Text(cx.site.to_string()))
            .bind(Param::Int(cx.start))
            .bind(Param::Int(cx.end));
        ctes.push(pv);
    }
    let (sel, group) = dims_select(dims, Base::Events, cx, dialect);
    let mut from = Sql::default();
    from.push(if part == Part::TimeOnPage {
        " FROM pv e"
    } else {
        " FROM events e"
    });
    if join_visits {
        from.push(" JOIN s ON s.session_id = e.session_id");
    }
    from.push(" WHERE e.site = ? AND e.ts >= ? AND e.ts < ?")
        .bind(Param::Text(cx.site.to_string()))
        .bind(Param::Int(cx.start))
        .bind(Param::Int(cx.end));
    from.append(where_filters(q, Base::Events, cx, dialect));
    if matches!(part, Part::EventCounts | Part::Total) {
        // Engagement events count in none of these metrics: a group of only engagement
        // events is no group.
        from.push(" AND e.name <> 'engagement'");
    }

    let mut sql = with_clause(ctes);
    match part {
        Part::EventCounts | Part::Total => {
            // Only the columns the query's metrics read: the distinct counts cost most of a
            // scan, and a panel asks for visitors alone.
            let wants = |m: Metric| part == Part::Total || q.metrics.contains(&m);
            let visitors = wants(Metric::Visitors) || wants(Metric::Percentage);
            let pageviews = part == Part::EventCounts && wants(Metric::Pageviews);
            let events = part == Part::EventCounts && wants(Metric::Events);
            // Visits split by an event dimension; otherwise they come from visits.
            let visits = part == Part::EventCounts
                && wants(Metric::Visits)
                && dims.iter().any(Dimension::is_event);
            let day =
                BucketKey::over(TimeBucket::Day, cx.tz, cx.start, cx.end).sql("e.ts", dialect);
            let null = "CAST(NULL AS DOUBLE)";
            let col = |wanted: bool, expr: &str| {
                if wanted {
                    format!("CAST({expr} AS DOUBLE)")
                } else {
                    null.to_string()
                }
            };
            let mut cols = vec![String::new()];
            if part == Part::EventCounts {
                cols.extend([String::new(), String::new(), String::new()]);
            }
            if visitors && !visits {
                // Visitors under the day rule by grouping twice — per group, visitor and
                // local day, then per group — rather than counting distinct (visitor, day)
                // pairs, which costs twice as much. Every row here is a counted event.
                let outer: Vec<String> = (0..dims.len()).map(|i| format!("d{i}")).collect();
                let mut inner = outer.clone();
                inner.extend(["v_".to_string(), "day_".to_string()]);
                cols[0] = col(true, "count(*)");
                if part == Part::EventCounts {
                    cols[1] = col(pageviews, "coalesce(sum(pv_), 0)");
                    cols[2] = col(events, "coalesce(sum(n_), 0)");
                    cols[3] = null.to_string();
                }
                sql.push("SELECT ");
                for d in &outer {
                    sql.push(&format!("{d}, "));
                }
                sql.push(&cols.join(", "));
                sql.push(" FROM (SELECT ").append(sel);
                sql.push("e.visitor_id AS v_, ").append(day).push(&format!(
                    " AS day_, {} AS pv_, count(*) AS n_",
                    dialect.count_if("e.name = 'pageview'")
                ));
                sql.append(from).push(&format!(
                    " GROUP BY {}) AS per_visitor_day",
                    inner.join(", ")
                ));
                if !outer.is_empty() {
                    sql.push(&format!(" GROUP BY {}", outer.join(", ")));
                }
            } else {
                let not_engagement = "e.name <> 'engagement'";
                sql.push("SELECT ").append(sel);
                if visitors {
                    sql.push(&col(
                        true,
                        &dialect.uniq_pair_if("e.visitor_id", &day.text, not_engagement),
                    ));
                    sql.params.extend(day.params);
                } else {
                    sql.push(null);
                }
                if part == Part::EventCounts {
                    sql.push(&format!(
                        ", {}, {}, {}",
                        col(pageviews, &dialect.count_if("e.name = 'pageview'")),
                        col(events, &dialect.count_if(not_engagement)),
                        col(visits, &dialect.uniq_if("e.session_id", not_engagement)),
                    ));
                }
                sql.append(from).push(&group);
            }
        }
        Part::TimeOnPage | Part::ScrollDepth => {
            // Per visit first (time summed, scroll maxed over the visit's views of the
            // group), then averaged over visits.
            let value = if part == Part::TimeOnPage {
                "sum(CASE WHEN e.nxt IS NOT NULL THEN e.nxt - e.ts WHEN s.end_ts > e.ts THEN s.end_ts - e.ts END)"
            } else {
                "max(e.scroll_depth)"
            };
            let inner_cond = if part == Part::ScrollDepth {
                " AND e.name = 'engagement' AND e.scroll_depth IS NOT NULL"
            } else {
                ""
            };
            let outer_dims: Vec<String> = (0..dims.len()).map(|i| format!("d{i}")).collect();
            let mut inner_group: Vec<String> = outer_dims.clone();
            inner_group.push("e.session_id".into());
            sql.push("SELECT ");
            for d in &outer_dims {
                sql.push(&format!("{d}, "));
            }
            sql.push("CAST(avg(v) AS DOUBLE) FROM (SELECT ")
                .append(sel)
                .push(&format!("{value} AS v"));
            sql.append(from)
                .push(inner_cond)
                .push(&format!(" GROUP BY {}", inner_group.join(", ")));
            {
                // Per visit and local day, like visitors (see crate::rollup): a visit across
                // midnight counts once on each day it viewed or scrolled the page.
                let day =
                    BucketKey::over(TimeBucket::Day, cx.tz, cx.start, cx.end).sql("e.ts", dialect);
                sql.push(", ").append(day);
            }
            sql.push(") AS per_visit");
            if !outer_dims.is_empty() {
                sql.push(&format!(" GROUP BY {}", outer_dims.join(", ")));
            }
        }
        Part::VisitTotals => unreachable!("visit totals are planned by visit_query"),
    }
    SqlQuery {
        part,
        sql: sql.text,
        params: sql.params,
        dimensions: dims.len(),
    }
}

/// Event counts broken down by entry or exit page, which belong to a visit, not an event:
/// counted over the visits that started in the range (as Plausible does) — visitors by the
/// day rule on the visit's start, page views and events as the visits' own totals.
fn visit_event_counts(
    q: &Query,
    dims: &[Dimension],
    cx: &Context<'_>,
    dialect: &dyn Dialect,
) -> SqlQuery {
    let (sel, group) = dims_select(dims, Base::Visits, cx, dialect);
    let mut sql = with_clause(vec![live_visits(cx.site, Some(cx.start), cx.end)]);
    let day = BucketKey::over(TimeBucket::Day, cx.tz, cx.start, cx.end).sql("s.start_ts", dialect);
    sql.push("SELECT ").append(sel).push(&format!(
        "CAST({} AS DOUBLE), ",
        dialect.uniq_pair_if("s.visitor_id", &day.text, "true")
    ));
    sql.params.extend(day.params);
    sql.push("CAST(sum(s.pageviews) AS DOUBLE), CAST(sum(s.events) AS DOUBLE), CAST(count(*) AS DOUBLE) FROM s WHERE s.start_ts >= ? AND s.start_ts < ?")
        .bind(Param::Int(cx.start))
        .bind(Param::Int(cx.end));
    sql.append(where_filters(q, Base::Visits, cx, dialect))
        .push(&group);
    SqlQuery {
        part: Part::EventCounts,
        sql: sql.text,
        params: sql.params,
        dimensions: dims.len(),
    }
}

fn visit_query(q: &Query, dims: &[Dimension], cx: &Context<'_>, dialect: &dyn Dialect) -> SqlQuery {
    let ctes = vec![live_visits(cx.site, Some(cx.start), cx.end)];
    let (sel, group) = dims_select(dims, Base::Visits, cx, dialect);
    let mut sql = with_clause(ctes);
    sql.push("SELECT ")
        .append(sel)
        .push("CAST(count(*) AS DOUBLE), CAST(sum(CASE WHEN s.is_bounce THEN 1 ELSE 0 END) AS DOUBLE), CAST(sum(s.duration_ms) AS DOUBLE), CAST(sum(s.pageviews) AS DOUBLE) FROM s");
    sql.push(" WHERE s.start_ts >= ? AND s.start_ts < ?")
        .bind(Param::Int(cx.start))
        .bind(Param::Int(cx.end));
    sql.append(where_filters(q, Base::Visits, cx, dialect))
        .push(&group);
    SqlQuery {
        part: Part::VisitTotals,
        sql: sql.text,
        params: sql.params,
        dimensions: dims.len(),
    }
}

/// Plans a validated query. The time dimension's bucket must already be decided (the
/// caller passes the buckets in `cx`).
pub fn plan(q: &Query, cx: &Context<'_>, dialect: &dyn Dialect) -> Vec<SqlQuery> {
    let dims = &q.dimensions;
    let has_event_dim = dims.iter().any(Dimension::is_event);
    let by_visit_page = !has_event_dim
        && dims
            .iter()
            .any(|d| matches!(d, Dimension::Visit(p) if p.changes_during_visit()));
    let wants = |m: Metric| q.metrics.contains(&m);
    let from_rollups = |part: Part, dims: &[Dimension]| {
        super::rollup_plan::choose(q, dims, part, cx)
            .map(|choice| super::rollup_plan::query(q, dims, part, &choice, cx, dialect))
    };
    let mut out = Vec::new();
    if wants(Metric::Visitors)
        || wants(Metric::Pageviews)
        || wants(Metric::Events)
        || wants(Metric::Percentage)
        || (wants(Metric::Visits) && has_event_dim)
    {
        match from_rollups(Part::EventCounts, dims) {
            Some(sql) => {
                out.push(sql);
                // Events without the property of a property breakdown: no kept row has them.
                if let Some(none) = super::rollup_plan::none_row(q, dims) {
                    out.push(event_query(&none, dims, Part::EventCounts, cx, dialect));
                }
            }
            None if by_visit_page => out.push(visit_event_counts(q, dims, cx, dialect)),
            None => out.push(event_query(q, dims, Part::EventCounts, cx, dialect)),
        }
    }
    if wants(Metric::BounceRate)
        || wants(Metric::VisitDuration)
        || wants(Metric::ViewsPerVisit)
        || (wants(Metric::Visits) && !has_event_dim)
    {
        out.push(
            from_rollups(Part::VisitTotals, dims)
                .unwrap_or_else(|| visit_query(q, dims, cx, dialect)),
        );
    }
    if wants(Metric::TimeOnPage) {
        out.push(
            from_rollups(Part::TimeOnPage, dims)
                .unwrap_or_else(|| event_query(q, dims, Part::TimeOnPage, cx, dialect)),
        );
    }
    if wants(Metric::ScrollDepth) {
        out.push(
            from_rollups(Part::ScrollDepth, dims)
                .unwrap_or_else(|| event_query(q, dims, Part::ScrollDepth, cx, dialect)),
        );
    }
    if wants(Metric::Percentage) {
        out.push(
            from_rollups(Part::Total, &[])
                .unwrap_or_else(|| event_query(q, &[], Part::Total, cx, dialect)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse::parse_v2;
    use serde_json::json;

    fn planned(v: serde_json::Value) -> Vec<SqlQuery> {
        let q = parse_v2(&v, chrono_tz::UTC).unwrap();
        let buckets = vec![Bucket {
            start: 0,
            end: 10,
            label: "x".into(),
        }];
        let key = BucketKey::new(TimeBucket::Day, &buckets, chrono_tz::UTC);
        plan(
            &q,
            &Context {
                site: "e.com",
                start: 0,
                end: 10,
                buckets: Some(&key),
                tz: chrono_tz::UTC,
                rollups: false,
            },
            &DuckDb,
        )
    }

    #[test]
    fn placeholders_match_params_and_no_value_is_inlined() {
        let evil = "'); DROP TABLE events; --";
        let qs = planned(json!({"site_id": "e.com", "date_range": "7d",
            "metrics": ["visitors", "visits", "bounce_rate", "time_on_page", "scroll_depth", "percentage"],
            "dimensions": ["visit:country", "time:day"],
            "filters": [["is", "event:page", [evil]], ["or", [["contains", "visit:source", [evil], {"case_sensitive": false}], ["matches_not", "event:props:plan", ["^pro$"]]]]]}));
        assert_eq!(qs.len(), 5);
        for q in &qs {
            assert_eq!(q.sql.matches('?').count(), q.params.len(), "{}", q.sql);
            assert!(
                !q.sql.contains("DROP"),
                "values are never in the SQL text: {}",
                q.sql
            );
        }
    }

    #[test]
    fn parts_follow_metrics() {
        let parts = |v| planned(v).into_iter().map(|q| q.part).collect::<Vec<_>>();
        assert_eq!(
            parts(json!({"site_id": "e.com", "date_range": "7d", "metrics": ["visitors"]})),
            vec![Part::EventCounts]
        );
        assert_eq!(
            parts(json!({"site_id": "e.com", "date_range": "7d", "metrics": ["visits"]})),
            vec![Part::VisitTotals]
        );
        assert_eq!(
            parts(
                json!({"site_id": "e.com", "date_range": "7d", "metrics": ["visits"], "dimensions": ["event:page"]})
            ),
            vec![Part::EventCounts]
        );
        assert_eq!(
            parts(
                json!({"site_id": "e.com", "date_range": "7d", "metrics": ["pageviews", "percentage"], "dimensions": ["event:page"]})
            ),
            vec![Part::EventCounts, Part::Total]
        );
    }

    proptest::proptest! {
        /// The SQL-side key of any instant maps back to the label of the bucket holding it,
        /// in zones with and without DST, for every bucket size.
        #[test]
        fn bucket_keys_match_buckets(start in 0i64..3000, len in 0i64..120, zone in 0usize..5, b in 0usize..4, at in 0.0f64..1.0) {
            use crate::query::time::{buckets, resolve};
            let zones = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago"];
            let tz: chrono_tz::Tz = zones[zone].parse().unwrap();
            let first = chrono::NaiveDate::from_ymd_opt(2016, 1, 1).unwrap() + chrono::Duration::days(start);
            let r = resolve(&DateRange::Dates(first, first + chrono::Duration::days(len)), tz, first, None);
            let kind = [TimeBucket::Hour, TimeBucket::Day, TimeBucket::Week, TimeBucket::Month][b];
            let bs = buckets(&r, kind, tz, 100_000);
            let key = BucketKey::new(kind, &bs, tz);
            let labels = key.labels(&bs);
            let ts = r.start + ((r.end - r.start) as f64 * at) as i64;
            let ts = ts.min(r.end - 1);
            let holder = bs.iter().find(|x| x.start <= ts && ts < x.end).unwrap();
            proptest::prop_assert_eq!(labels.get(&key.key_of(ts).to_string()), Some(&holder.label));
        }
    }
}
