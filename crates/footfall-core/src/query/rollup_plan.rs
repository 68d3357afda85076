//! Which parts of a query the rollups answer, and the SQL that reads them. A part is read
//! from rollups only when the answer is the one the raw tables would give:
//! - the site's rollups are complete and kept in the query's time zone;
//! - the range is whole local days (whole local hours for an hourly series of totals);
//! - at most one breakdown dimension, one the rollups keep, plus optionally a time
//!   dimension (hourly only without a breakdown);
//! - filters only on the breakdown dimension — or, with no breakdown, a single exact value
//!   of one dimension (the row for that value); a breakdown by an event property may also
//!   have one exact event name (the dashboard's view of a custom event). Its "(none)" row —
//!   events without the property, which no kept row counts — is read from raw rows
//!   ([`none_row`]);
//! - not visits split by an event dimension (distinct visits don't add up across days);
//!   time on page and scroll depth only by page (a breakdown or a single page), by day or
//!   longer.
//!
//! Everything else — goals among them — goes to the raw tables ([`super::plan`]).

use super::model::*;
use super::plan::{condition_on, filter_tree, Context, Dialect, Param, Part, Sql, SqlQuery};
use crate::rollup::{dim, dim_code, prop_prefix, Grain, LocalClock};

#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub grain: Grain,
    /// Which rows: `dim::TOTAL` or a dimension's.
    pub rows: u8,
    /// The one value read, when a filter picks a single row (no breakdown).
    pub only: Option<String>,
    /// Property rows: the start of the values read, cut off in the answer.
    pub prefix: Option<String>,
    /// Top-level filters already answered by the choice of rows (an event name picking
    /// property rows), by index in `q.filters`.
    pub settled: Vec<usize>,
}

/// Whether rollups answer `part` (over `dims`) exactly, and how.
pub fn choose(q: &Query, dims: &[Dimension], part: Part, cx: &Context<'_>) -> Option<Choice> {
    // Goals are a lens on raw events: no row keeps which goals an event converted; nor
    // does one keep who else a visitor's events were (behavioural filters).
    if q.all_conditions()
        .iter()
        .any(|c| c.dimension == Dimension::Goal)
        || dims.contains(&Dimension::Goal)
        || q.filters.iter().any(Filter::has_behaviour)
    {
        return None;
    }
    if !cx.rollups
        || !matches!(
            part,
            Part::EventCounts
                | Part::VisitTotals
                | Part::Total
                | Part::ScrollDepth
                | Part::TimeOnPage
        )
    {
        return None;
    }
    let by_visit_page =
        |d: &Dimension| matches!(d, Dimension::Visit(p) if p.changes_during_visit());
    let per_page = matches!(part, Part::ScrollDepth | Part::TimeOnPage);
    if per_page && dims.iter().any(by_visit_page) {
        return None;
    }
    let has_event_dim = dims.iter().any(Dimension::is_event);
    if part == Part::EventCounts && q.metrics.contains(&Metric::Visits) && has_event_dim {
        return None;
    }
    if part == Part::VisitTotals && has_event_dim {
        return None;
    }
    let times: Vec<&Dimension> = dims.iter().filter(|d| d.is_time()).collect();
    let others: Vec<&Dimension> = dims.iter().filter(|d| !d.is_time()).collect();
    if times.len() > 1 || others.len() > 1 {
        return None;
    }
    let conditions = q.all_conditions();
    let mut prefix = None;
    let mut settled = Vec::new();
    let (rows, only) = match others.first() {
        Some(Dimension::Prop(key)) => {
            if !matches!(part, Part::EventCounts) {
                return None;
            }
            let name = event_name(q, key)?;
            if let Some((i, _)) = name {
                settled.push(i);
            }
            prefix = Some(prop_prefix(name.map(|(_, n)| n), key));
            (
                if name.is_some() {
                    dim::NAME_PROP
                } else {
                    dim::PROP
                },
                None,
            )
        }
        Some(d) => {
            if conditions.iter().any(|c| &c.dimension != *d) {
                return None;
            }
            (dim_code(d)?, None)
        }
        None if conditions.is_empty() => (dim::TOTAL, None),
        None => {
            let [Filter::Condition(c)] = q.filters.as_slice() else {
                return None;
            };
            let [value] = c.values.as_slice() else {
                return None;
            };
            if c.op != Op::Is || !c.case_sensitive {
                return None;
            }
            // Entry/exit rows count visits; as a filter on events they select the events of
            // those visits, which the rows don't hold. Event rows hold no visits.
            let fits = match (&c.dimension, part) {
                (Dimension::Visit(_), Part::VisitTotals) => true,
                (Dimension::Visit(p), _) => !p.changes_during_visit(),
                (_, Part::VisitTotals) => false,
                _ => true,
            };
            if !fits {
                return None;
            }
            (dim_code(&c.dimension)?, Some(value.clone()))
        }
    };
    // Scroll depth and time on page are kept on page rows only (the API always asks for
    // them by page).
    if per_page && rows != dim::PAGE {
        return None;
    }
    let hourly = !times.is_empty() && cx.buckets.map(|b| b.unit()) == Some(TimeBucket::Hour);
    let clock = LocalClock::new(cx.tz);
    let grain = if hourly {
        if rows != dim::TOTAL
            || per_page
            || !clock.starts_hour(cx.start)
            || !clock.starts_hour(cx.end)
        {
            return None;
        }
        Grain::Hour
    } else {
        if !clock.starts_day(cx.start) || !clock.starts_day(cx.end) {
            return None;
        }
        Grain::Day
    };
    Some(Choice {
        grain,
        rows,
        only,
        prefix,
        settled,
    })
}

/// For a breakdown by property `key`: the one event name its filters pick (with the index
/// of that filter), `Some(None)` for none, and `None` when another filter needs raw rows.
fn event_name<'q>(q: &'q Query, key: &str) -> Option<Option<(usize, &'q str)>> {
    let mut name = None;
    for (i, f) in q.filters.iter().enumerate() {
        match f {
            Filter::Condition(c)
                if c.dimension == Dimension::Name
                    && c.op == Op::Is
                    && c.case_sensitive
                    && c.values.len() == 1
                    && name.is_none() =>
            {
                name = Some((i, c.values[0].as_str()));
            }
            f if f
                .conditions()
                .iter()
                .all(|c| matches!(&c.dimension, Dimension::Prop(k) if k == key)) => {}
            _ => return None,
        }
    }
    Some(name)
}

/// The query whose answer is a property breakdown's "(none)" row: the events without the
/// property (or with the literal value "(none)", which raw rows group with them), under the
/// same filters. `None` unless `dims` break down by a property.
pub fn none_row(q: &Query, dims: &[Dimension]) -> Option<Query> {
    let key = dims.iter().find(|d| matches!(d, Dimension::Prop(_)))?;
    let mut q = q.clone();
    q.filters.push(Filter::Condition(Condition {
        op: Op::Is,
        dimension: key.clone(),
        values: vec!["(none)".into()],
        case_sensitive: true,
    }));
    Some(q)
}

/// A filter on the breakdown dimension, as a condition on the rollup row's value.
fn value_filter(f: &Filter, value: &str, dialect: &dyn Dialect) -> Sql {
    filter_tree(
        f,
        &mut |c| {
            let mut v = Sql::default();
            v.push(value);
            condition_on(v, c, dialect)
        },
        // Never reached: `choose` leaves behavioural filters to raw rows.
        &mut |_, _| {
            let mut never = Sql::default();
            never.push("1 = 0");
            never
        },
    )
}

/// The SQL reading a part from rollups, with the same columns the raw plan gives.
pub fn query(
    q: &Query,
    dims: &[Dimension],
    part: Part,
    choice: &Choice,
    cx: &Context<'_>,
    dialect: &dyn Dialect,
) -> SqlQuery {
    let clock = LocalClock::new(cx.tz);
    let (from, to) = match choice.grain {
        Grain::Hour => (clock.hour(cx.start), clock.hour(cx.end)),
        Grain::Day => (clock.day(cx.start), clock.day(cx.end)),
    };
    // Property rows carry their key (and event name) in front of the value.
    let value = match &choice.prefix {
        Some(p) => dialect.substr("r.value", p.chars().count() + 1, None),
        None => "r.value".to_string(),
    };
    let mut sql = Sql::default();
    sql.push("SELECT ");
    let mut group = Vec::new();
    for (i, d) in dims.iter().enumerate() {
        let expr = match d {
            Dimension::Time(_) => match cx.buckets.map(|b| b.unit()) {
                Some(TimeBucket::Week) => dialect.int_div("r.bucket + 3", "7"),
                Some(TimeBucket::Month) => dialect.month_index("r.bucket * 86400000"),
                _ => "r.bucket".to_string(),
            },
            _ => value.clone(),
        };
        sql.push(&format!("{} AS d{i}, ", dialect.to_text(&expr)));
        group.push(format!("d{i}"));
    }
    let sums = |cols: &[&str]| {
        cols.iter()
            .map(|c| dialect.to_double(&format!("coalesce(sum({c}), 0)")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let visit_rows = dims
        .iter()
        .any(|d| matches!(d, Dimension::Visit(p) if p.changes_during_visit()));
    let (columns, present) = match part {
        Part::EventCounts if visit_rows => (
            sums(&["r.visitors", "r.pageviews", "r.events", "r.visits"]),
            "r.visits",
        ),
        Part::EventCounts => (
            format!(
                "{}, {}",
                sums(&["r.visitors", "r.pageviews", "r.events"]),
                dialect.null_double()
            ),
            "r.events",
        ),
        Part::VisitTotals => (
            sums(&[
                "r.visits",
                "r.bounces",
                "r.duration_ms",
                "r.visit_pageviews",
            ]),
            "r.visits",
        ),
        Part::ScrollDepth => (
            // NULL, as the raw average over no visits, where a page has rows but no scroll.
            format!(
                "{} / {}",
                dialect.to_double("sum(r.scroll_sum)"),
                dialect.to_double("nullif(sum(r.scroll_visits), 0)")
            ),
            "r.scroll_visits",
        ),
        Part::TimeOnPage => (
            // NULL where the page was viewed but no view was measured: the raw rows have
            // the group (every page view in range) with an average over nothing.
            format!(
                "{} / {}",
                dialect.to_double("sum(r.page_time_ms)"),
                dialect.to_double("nullif(sum(r.page_time_visits), 0)")
            ),
            "r.pageviews",
        ),
        _ => (sums(&["r.visitors"]), "r.visitors"),
    };
    sql.push(&columns);
    sql.push(" FROM rollups r WHERE r.site = ? AND r.grain = ? AND r.dim = ? AND r.bucket >= ? AND r.bucket < ?")
        .bind(Param::Text(cx.site.to_string()))
        .bind(Param::Int(choice.grain as i64))
        .bind(Param::Int(i64::from(choice.rows)))
        .bind(Param::Int(from))
        .bind(Param::Int(to));
    if let Some(p) = &choice.prefix {
        // Raw rows put a literal "(none)" in the "(none)" row ([`none_row`]).
        sql.push(&format!(
            " AND {} = ? AND r.value <> ?",
            dialect.substr("r.value", 1, Some(p.chars().count()))
        ))
        .bind(Param::Text(p.clone()))
        .bind(Param::Text(format!("{p}(none)")));
    }
    if let Some(v) = &choice.only {
        sql.push(" AND r.value = ?").bind(Param::Text(v.clone()));
    } else if choice.rows != dim::TOTAL {
        for (i, f) in q.filters.iter().enumerate() {
            if !choice.settled.contains(&i) {
                sql.push(" AND ").append(value_filter(f, &value, dialect));
            }
        }
    }
    if !group.is_empty() {
        // Rows whose changes cancelled out (a visit that moved to another exit page) are
        // groups the raw tables don't have.
        sql.push(&format!(
            " GROUP BY {} HAVING sum({present}) > 0",
            group.join(", ")
        ));
    }
    SqlQuery {
        part,
        sql: sql.text,
        params: sql.params,
        dimensions: dims.len(),
    }
}
