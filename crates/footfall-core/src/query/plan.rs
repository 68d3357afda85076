//! Query planning: a validated [`Query`] and a resolved range become a few SQL statements
//! for a backend [`Dialect`]. Every value is a bound parameter; every identifier comes from
//! the model's fixed column names. Written once: backends differ only in the handful of
//! functions the `Dialect` trait names.
//!
//! A query is split into parts, each one `GROUP BY` over the query's dimensions:
//! - `EventCounts` over `events` (visitors, page views, events, visits touched),
//! - `VisitTotals` over the current state of `sessions` (visits, bounces, durations),
//! - `TimeOnPage` and `ScrollDepth`, which need per-visit sub-aggregates,
//! - `Total`: visitors without dimensions, the denominator of `percentage`;
//! - `GoalTotal` and `GroupTotal`: the visitors of the query without its goal and property
//!   conditions, in all and by the other dimensions — the denominators of conversion rates;
//! - `Revenue`: revenue sums per currency of the revenue goals' conversions.
//!
//! A breakdown by goal is one `EventCounts` over the range's events, each repeated once per
//! goal it converts with that goal's name as a column ([`super::goals`] writes the
//! conditions).
//!
//! [`super::result`] joins the parts' rows by their dimension values.

pub use super::dialect::{ClickHouse, Dialect, DuckDb};
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
    /// `EventCounts` of the query without goal and property conditions or dimensions
    GoalTotal,
    /// `EventCounts` of the query without goal and property conditions, by the query's
    /// dimensions other than `event:goal`
    GroupTotal,
    /// all visitors, then those reaching each funnel step ([`super::funnel`])
    Funnel,
    /// revenue of revenue-goal conversions ([`super::revenue`]): two more text columns
    /// after the dimensions, the currency and the exact sum of thousandths, then the
    /// number of events
    Revenue,
}

impl Part {
    /// Number of value columns after the dimension columns.
    pub fn width(self) -> usize {
        match self {
            Part::EventCounts | Part::VisitTotals | Part::GoalTotal | Part::GroupTotal => 4,
            Part::TimeOnPage | Part::ScrollDepth | Part::Total | Part::Revenue => 1,
            Part::Funnel => 1 + super::funnel::MAX_STEPS,
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
#[derive(Clone, Copy)]
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
    /// The site's goals, which `event:goal` names (checked by [`super::goals::check`]).
    pub goals: &'a [crate::goal::Goal],
    /// In a breakdown by goal: the goals with rows. Each event is read once per goal it
    /// converts, with that goal's name as `e.goal_`.
    pub by_goal: Option<&'a [&'a crate::goal::Goal]>,
}

#[derive(Clone, Copy, PartialEq)]
enum Base {
    Events,
    Visits,
}

/// A named subquery: written once in a `WITH` clause, or in place at every use where the
/// dialect has no common table expressions.
#[derive(Clone)]
struct Relation {
    name: &'static str,
    body: Sql,
}

impl Relation {
    /// The relation where a FROM or JOIN names it.
    fn at_use(&self, dialect: &dyn Dialect) -> Sql {
        let mut s = Sql::default();
        if dialect.inline_subqueries() {
            s.push("(")
                .append(self.body.clone())
                .push(&format!(") AS {}", self.name));
        } else {
            s.push(self.name);
        }
        s
    }
}

/// The current state of every visit of the site, as relation `s`: the +1 rows whose version
/// has not been cancelled by a −1 row.
fn live_visits(site: &str, from: Option<i64>, to: i64, dialect: &dyn Dialect) -> Relation {
    Relation {
        name: "s",
        body: dialect.live_visits(site, from, to, ""),
    }
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
        // Not a column of `events`: `e.goal_` of a breakdown by goal (`dims_select`);
        // conditions are written by `super::goals`.
        Dimension::Goal => s.push("NULL"),
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

/// A filter tree as SQL: and/or/not kept as they are, each condition by `leaf`, each
/// behavioural filter by `behaviour`. One walk for raw rows and rollup rows, which differ
/// only in what a condition reads.
pub(crate) fn filter_tree(
    f: &Filter,
    leaf: &mut dyn FnMut(&Condition) -> Sql,
    behaviour: &mut dyn FnMut(bool, &Filter) -> Sql,
) -> Sql {
    match f {
        Filter::Condition(c) => leaf(c),
        Filter::Behaviour(done, inner) => behaviour(*done, inner),
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
                s.append(filter_tree(sub, leaf, behaviour));
            }
            s.push(")");
            s
        }
        Filter::Not(inner) => {
            let mut s = Sql::default();
            s.push("NOT (")
                .append(filter_tree(inner, leaf, behaviour))
                .push(")");
            s
        }
    }
}

/// A condition on the event row `e`.
fn event_condition(c: &Condition, cx: &Context<'_>, dialect: &dyn Dialect) -> Sql {
    if c.dimension == Dimension::Goal {
        super::goals::condition(c, cx.goals, dialect)
    } else {
        condition_on(
            dimension_expr(&c.dimension, Base::Events, dialect),
            c,
            dialect,
        )
    }
}

fn filter_sql(f: &Filter, base: Base, cx: &Context<'_>, dialect: &dyn Dialect) -> Sql {
    filter_tree(
        f,
        &mut |c| {
            if base == Base::Visits && c.dimension.is_event() {
                // A visit matches an event condition if any of its events in range does.
                let mut s = Sql::default();
                s.push("s.session_id IN (SELECT e.session_id FROM events e WHERE e.site = ? AND e.ts >= ? AND e.ts < ? AND ")
                .bind(Param::Text(cx.site.to_string()))
                .bind(Param::Int(cx.start))
                .bind(Param::Int(cx.end));
                s.append(event_condition(c, cx, dialect));
                s.push(")");
                s
            } else if base == Base::Events {
                event_condition(c, cx, dialect)
            } else {
                condition_on(dimension_expr(&c.dimension, base, dialect), c, dialect)
            }
        },
        &mut |done, inner| {
            // The visitors with an event in range that `inner` describes — a counted event:
            // engagement events only as a scroll goal's conversion. Visitor ids are daily
            // (unless the browser sends its own), so "did" is per visitor id.
            let mut s = Sql::default();
            let scroll = super::goals::scroll_goals_of(std::slice::from_ref(inner), cx.goals);
            let mut counted = Sql::default();
            if scroll.is_empty() {
                counted.push(" AND e.name <> 'engagement'");
            } else {
                counted
                    .push(" AND (e.name <> 'engagement' OR ")
                    .append(super::goals::any_converts(&scroll, dialect))
                    .push(")");
            }
            let who = if base == Base::Events {
                "e.visitor_id"
            } else {
                "s.visitor_id"
            };
            if !done {
                s.push("NOT ");
            }
            s.push(&format!("({who} IN (SELECT e.visitor_id FROM events e WHERE e.site = ? AND e.ts >= ? AND e.ts < ? AND "))
            .bind(Param::Text(cx.site.to_string()))
            .bind(Param::Int(cx.start))
            .bind(Param::Int(cx.end))
            .append(filter_sql(inner, Base::Events, cx, dialect))
            .append(counted)
            .push("))");
            s
        },
    )
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
            (Dimension::Goal, _) => {
                let mut s = Sql::default();
                s.push("e.goal_");
                s
            }
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

fn with_clause(ctes: &[&Relation], dialect: &dyn Dialect) -> Sql {
    let mut s = Sql::default();
    if !ctes.is_empty() && !dialect.inline_subqueries() {
        s.push("WITH ");
        for (i, c) in ctes.iter().enumerate() {
            if i > 0 {
                s.push(", ");
            }
            s.push(&format!("{} AS (", c.name))
                .append(c.body.clone())
                .push(")");
        }
        s.push(" ");
    }
    s
}

/// The query's filters on the event row `e`, each as ` AND …`.
pub(crate) fn event_filters(q: &Query, cx: &Context<'_>, dialect: &dyn Dialect) -> Sql {
    where_filters(q, Base::Events, cx, dialect)
}

/// `events e` as the query's filters need it: with its visit as `s` when they read entry
/// or exit pages. The named subqueries to put before the statement (a `WITH` clause, or
/// nothing where the dialect writes them in place), and the `FROM` clause.
pub(crate) fn events_source(q: &Query, cx: &Context<'_>, dialect: &dyn Dialect) -> (Sql, Sql) {
    let mut from = Sql::default();
    from.push(" FROM events e");
    if !needs_visits_join(q, &[]) {
        return (Sql::default(), from);
    }
    let visits = live_visits(cx.site, None, cx.end, dialect);
    from.push(" JOIN ")
        .append(visits.at_use(dialect))
        .push(" ON s.session_id = e.session_id");
    (with_clause(&[&visits], dialect), from)
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
    // Events in the range can belong to visits begun before it.
    let visits = join_visits.then(|| live_visits(cx.site, None, cx.end, dialect));
    let pv = visits.as_ref().filter(|_| part == Part::TimeOnPage).map(|s| {
        // Page views with the time of the next one in their visit. The next can lie past
        // the range (heartbeats keep a visit going), but not past the end of the visits
        // that began before the range ends.
        let mut cond = Sql::default();
        cond.push("e.site = ? AND e.name = 'pageview' AND e.ts >= ? AND e.ts <= (SELECT max(s.end_ts) FROM ")
            .bind(Param::Text(cx.site.to_string()))
            .bind(Param::Int(cx.start))
            .append(s.at_use(dialect))
            .push(" WHERE s.start_ts < ?")
            .bind(Param::Int(cx.end))
            .push(")");
        Relation {
            name: "pv",
            body: dialect.with_next(&cond),
        }
    });
    let (sel, group) = dims_select(dims, Base::Events, cx, dialect);
    let mut from = Sql::default();
    match (&pv, cx.by_goal) {
        (Some(pv), _) if dialect.inline_subqueries() => {
            from.push(" FROM (").append(pv.body.clone()).push(") AS e")
        }
        (Some(_), _) => from.push(" FROM pv e"),
        (None, Some(goals)) => {
            // One read of the range's events, each repeated per goal it converts.
            let mut names = Sql::default();
            let mut conds = Vec::new();
            for g in goals {
                let c = super::goals::converts(g, dialect);
                names.params.extend(c.params);
                names.bind(Param::Text(g.name.clone()));
                conds.push(c.text);
            }
            // The rows converting none go before anything else is read of them.
            let mut scope = Sql::default();
            scope
                .push("e.site = ? AND e.ts >= ? AND e.ts < ? AND ")
                .bind(Param::Text(cx.site.to_string()))
                .bind(Param::Int(cx.start))
                .bind(Param::Int(cx.end))
                .append(super::goals::any_converts(goals, dialect));
            from.push(" FROM (")
                .push(&dialect.events_per_name(&conds, &scope.text))
                .push(") AS e");
            from.params.extend(names.params);
            from.params.extend(scope.params);
            &mut from
        }
        (None, None) => from.push(" FROM events e"),
    };
    if let Some(s) = &visits {
        from.push(" JOIN ")
            .append(s.at_use(dialect))
            .push(" ON s.session_id = e.session_id");
    }
    from.push(" WHERE e.site = ? AND e.ts >= ? AND e.ts < ?")
        .bind(Param::Text(cx.site.to_string()))
        .bind(Param::Int(cx.start))
        .bind(Param::Int(cx.end));
    from.append(where_filters(q, Base::Events, cx, dialect));
    // Engagement events count in none of these metrics but scroll goals' conversions: a
    // group of only engagement events is no group.
    let scroll_goals = super::goals::scroll_goals(q, cx.goals);
    let engagement_counts = cx.by_goal.is_some() || !scroll_goals.is_empty();
    if matches!(part, Part::EventCounts | Part::Total) {
        if cx.by_goal.is_some() {
            // Every row there converts a goal: an engagement event, a scroll goal.
        } else if engagement_counts {
            from.push(" AND (e.name <> 'engagement' OR ")
                .append(super::goals::any_converts(&scroll_goals, dialect))
                .push(")");
        } else {
            from.push(" AND e.name <> 'engagement'");
        }
    }

    if part == Part::Revenue {
        from.push(" AND e.revenue_amount IS NOT NULL");
    }

    let ctes: Vec<&Relation> = visits.iter().chain(pv.iter()).collect();
    let mut sql = with_clause(&ctes, dialect);
    let mut dimensions = dims.len();
    match part {
        Part::Revenue => {
            // Exact sums, as text: a double would round past 2^53 thousandths.
            sql.push("SELECT ").append(sel).push(&format!(
                "{} AS c_, {} AS s_, {} AS m0",
                dialect.to_text("e.revenue_currency"),
                dialect.to_text("sum(e.revenue_amount)"),
                dialect.to_double("count(*)")
            ));
            sql.append(from);
            sql.push(&if group.is_empty() {
                " GROUP BY c_".to_string()
            } else {
                format!("{group}, c_")
            });
            dimensions += 2;
        }
        Part::EventCounts | Part::Total => {
            // Only the columns the query's metrics read: the distinct counts cost most of a
            // scan, and a panel asks for visitors alone.
            let wants = |m: Metric| part == Part::Total || q.metrics.contains(&m);
            let visitors = wants(Metric::Visitors)
                || wants(Metric::Percentage)
                || wants(Metric::ConversionRate)
                || wants(Metric::GroupConversionRate);
            let pageviews = part == Part::EventCounts && wants(Metric::Pageviews);
            let events = part == Part::EventCounts && wants(Metric::Events);
            // Visits split by an event dimension; otherwise they come from visits.
            let visits = part == Part::EventCounts
                && wants(Metric::Visits)
                && dims.iter().any(Dimension::is_event);
            let day =
                BucketKey::over(TimeBucket::Day, cx.tz, cx.start, cx.end).sql("e.ts", dialect);
            let null = dialect.null_double();
            let col = |wanted: bool, expr: &str| {
                if wanted {
                    dialect.to_double(expr)
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
                sql.push(&named(&cols));
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
                // Which events count is settled in WHERE; this repeats it where it can.
                let not_engagement = if engagement_counts {
                    "1 = 1"
                } else {
                    "e.name <> 'engagement'"
                };
                sql.push("SELECT ").append(sel);
                if visitors {
                    sql.push(&format!(
                        "{} AS m0",
                        col(
                            true,
                            &dialect.uniq_pair_if("e.visitor_id", &day.text, not_engagement),
                        )
                    ));
                    sql.params.extend(day.params);
                } else {
                    sql.push(&format!("{null} AS m0"));
                }
                if part == Part::EventCounts {
                    sql.push(&format!(
                        ", {} AS m1, {} AS m2, {} AS m3",
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
            sql.push(&dialect.to_double("avg(v)"))
                .push(" FROM (SELECT ")
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
        Part::VisitTotals | Part::GoalTotal | Part::GroupTotal | Part::Funnel => {
            unreachable!("planned by visit_query and conversion_totals")
        }
    }
    SqlQuery {
        part,
        sql: sql.text,
        params: sql.params,
        dimensions,
    }
}

/// Value columns with names of their own: ClickHouse merges same-named columns (two NULL
/// columns) of a statement read through `SELECT * FROM (…)`.
fn named(cols: &[String]) -> String {
    cols.iter()
        .enumerate()
        .map(|(i, c)| format!("{c} AS m{i}"))
        .collect::<Vec<_>>()
        .join(", ")
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
    let visits = live_visits(cx.site, Some(cx.start), cx.end, dialect);
    let mut sql = with_clause(&[&visits], dialect);
    let day = BucketKey::over(TimeBucket::Day, cx.tz, cx.start, cx.end).sql("s.start_ts", dialect);
    sql.push("SELECT ").append(sel).push(&format!(
        "{}, ",
        dialect.to_double(&dialect.uniq_pair_if("s.visitor_id", &day.text, "1 = 1"))
    ));
    sql.params.extend(day.params);
    sql.push(&format!(
        "{}, {}, {} FROM ",
        dialect.to_double("sum(s.pageviews)"),
        dialect.to_double("sum(s.events)"),
        dialect.to_double("count(*)")
    ))
    .append(visits.at_use(dialect))
    .push(" WHERE s.start_ts >= ? AND s.start_ts < ?")
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
    let visits = live_visits(cx.site, Some(cx.start), cx.end, dialect);
    let (sel, group) = dims_select(dims, Base::Visits, cx, dialect);
    let mut sql = with_clause(&[&visits], dialect);
    sql.push("SELECT ")
        .append(sel)
        .push(&format!(
            "{}, {}, {}, {} FROM ",
            dialect.to_double("count(*)"),
            dialect.to_double("sum(CASE WHEN s.is_bounce THEN 1 ELSE 0 END)"),
            dialect.to_double("sum(s.duration_ms)"),
            dialect.to_double("sum(s.pageviews)")
        ))
        .append(visits.at_use(dialect));
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
    let by_goal = dims.contains(&Dimension::Goal);
    if by_goal {
        out.extend(goal_breakdown(q, dims, cx, dialect));
    } else if wants(Metric::Visitors)
        || wants(Metric::Pageviews)
        || wants(Metric::Events)
        || wants(Metric::Percentage)
        || wants(Metric::ConversionRate)
        || wants(Metric::GroupConversionRate)
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
    if wants(Metric::ConversionRate) {
        out.extend(conversion_totals(q, &[], Part::GoalTotal, cx, dialect));
    }
    if wants(Metric::GroupConversionRate) {
        let others: Vec<Dimension> = dims
            .iter()
            .filter(|d| **d != Dimension::Goal)
            .cloned()
            .collect();
        out.extend(conversion_totals(q, &others, Part::GroupTotal, cx, dialect));
    }
    if super::revenue::wanted(q) {
        out.extend(revenue_query(q, dims, cx, dialect));
    }
    out
}

/// The revenue sums of the goals [`super::revenue::target`] picks: in a breakdown by goal,
/// read per goal as the breakdown reads conversions; otherwise the query's rows narrowed
/// to those goals' conversions. None when revenue metrics are null.
fn revenue_query(
    q: &Query,
    dims: &[Dimension],
    cx: &Context<'_>,
    dialect: &dyn Dialect,
) -> Option<SqlQuery> {
    let target = super::revenue::target(q, cx.goals);
    let (goals, by_goal) = super::revenue::goals_read(&target)?;
    if by_goal {
        let cx = Context {
            by_goal: Some(goals),
            ..*cx
        };
        return Some(event_query(q, dims, Part::Revenue, &cx, dialect));
    }
    let mut narrowed = q.clone();
    narrowed.filters.push(Filter::Condition(Condition {
        dimension: Dimension::Goal,
        op: Op::Is,
        values: goals.iter().map(|g| g.name.clone()).collect(),
        case_sensitive: true,
    }));
    Some(event_query(&narrowed, dims, Part::Revenue, cx, dialect))
}

/// Conversions by goal: the event counts over the range's events, each read once per goal
/// it converts. None when no goal can have a row.
fn goal_breakdown(
    q: &Query,
    dims: &[Dimension],
    cx: &Context<'_>,
    dialect: &dyn Dialect,
) -> Option<SqlQuery> {
    let goals = super::goals::breakdown(q, cx.goals);
    if goals.is_empty() {
        return None;
    }
    let cx = Context {
        by_goal: Some(&goals),
        ..*cx
    };
    Some(event_query(q, dims, Part::EventCounts, &cx, dialect))
}

/// The visitors of the query without its top-level goal and property conditions, by
/// `dims`: planned as such a query of its own (so rollups answer it when they can), its
/// parts relabelled `part`.
fn conversion_totals(
    q: &Query,
    dims: &[Dimension],
    part: Part,
    cx: &Context<'_>,
    dialect: &dyn Dialect,
) -> Vec<SqlQuery> {
    let mut base = super::goals::without_goal_filters(q);
    base.metrics = vec![Metric::Visitors];
    base.dimensions = dims.to_vec();
    base.order_by.clear();
    plan(&base, cx, dialect)
        .into_iter()
        .map(|mut s| {
            s.part = part;
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse::parse_v2;
    use serde_json::json;

    fn planned(v: serde_json::Value) -> Vec<SqlQuery> {
        planned_in(v, &DuckDb)
    }

    fn planned_in(v: serde_json::Value, dialect: &dyn Dialect) -> Vec<SqlQuery> {
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
                goals: &[],
                by_goal: None,
            },
            dialect,
        )
    }

    #[test]
    fn placeholders_match_params_and_no_value_is_inlined() {
        let evil = "'); DROP TABLE events; --";
        let query = json!({"site_id": "e.com", "date_range": "7d",
            "metrics": ["visitors", "visits", "bounce_rate", "time_on_page", "scroll_depth", "percentage"],
            "dimensions": ["visit:country", "time:day"],
            "filters": [["is", "event:page", [evil]], ["or", [["contains", "visit:source", [evil], {"case_sensitive": false}], ["matches_not", "event:props:plan", ["^pro$"]]]]]});
        let qs = planned(query.clone());
        assert_eq!(qs.len(), 5);
        let inline = planned_in(query, &ClickHouse);
        assert_eq!(inline.len(), 5);
        for q in qs.iter().chain(&inline) {
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
