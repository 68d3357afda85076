//! Which parts of a query the rollups answer, and the SQL that reads them. A part is read
//! from rollups only when the answer is the one the raw tables would give:
//! - the site's rollups are complete and kept in the query's time zone;
//! - the range is whole local days (whole local hours for an hourly series of totals);
//! - at most one breakdown dimension, one the rollups keep (not event properties), plus
//!   optionally a time dimension (hourly only without a breakdown);
//! - filters only on the breakdown dimension — or, with no breakdown, a single exact value
//!   of one dimension (the row for that value);
//! - not visits split by an event dimension (distinct visits don't add up across days),
//!   nor time on page; scroll depth only by page (a breakdown or a single page), by day
//!   or longer.
//!
//! Everything else goes to the raw tables ([`super::plan`]).

use super::model::*;
use super::plan::{condition_on, filter_tree, Context, Dialect, Param, Part, Sql, SqlQuery};
use crate::rollup::{dim, dim_code, Grain, LocalClock};

#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub grain: Grain,
    /// Which rows: `dim::TOTAL` or a dimension's.
    pub rows: u8,
    /// The one value read, when a filter picks a single row (no breakdown).
    pub only: Option<String>,
}

/// Whether rollups answer `part` (over `dims`) exactly, and how.
pub fn choose(q: &Query, dims: &[Dimension], part: Part, cx: &Context<'_>) -> Option<Choice> {
    if !cx.rollups
        || !matches!(
            part,
            Part::EventCounts | Part::VisitTotals | Part::Total | Part::ScrollDepth
        )
    {
        return None;
    }
    let by_visit_page =
        |d: &Dimension| matches!(d, Dimension::Visit(p) if p.changes_during_visit());
    if part == Part::ScrollDepth && dims.iter().any(by_visit_page) {
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
    let (rows, only) = match others.first() {
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
                (Dimension::Visit(p), Part::EventCounts | Part::Total | Part::ScrollDepth) => {
                    !p.changes_during_visit()
                }
                (Dimension::Visit(_), _) => true,
                (_, Part::VisitTotals) => false,
                _ => true,
            };
            if !fits {
                return None;
            }
            (dim_code(&c.dimension)?, Some(value.clone()))
        }
    };
    // Scroll depth is kept on page rows only (the API always asks for it by page).
    if part == Part::ScrollDepth && rows != dim::PAGE {
        return None;
    }
    let hourly = !times.is_empty() && cx.buckets.map(|b| b.unit()) == Some(TimeBucket::Hour);
    let clock = LocalClock::new(cx.tz);
    let grain = if hourly {
        if rows != dim::TOTAL
            || part == Part::ScrollDepth
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
    Some(Choice { grain, rows, only })
}

/// A filter on the breakdown dimension, as a condition on the rollup row's value.
fn value_filter(f: &Filter, dialect: &dyn Dialect) -> Sql {
    filter_tree(f, &mut |c| {
        let mut value = Sql::default();
        value.push("r.value");
        condition_on(value, c, dialect)
    })
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
            _ => "r.value".to_string(),
        };
        sql.push(&format!("{} AS d{i}, ", dialect.to_text(&expr)));
        group.push(format!("d{i}"));
    }
    let sums = |cols: &[&str]| {
        cols.iter()
            .map(|c| format!("CAST(coalesce(sum({c}), 0) AS DOUBLE)"))
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
                "{}, CAST(NULL AS DOUBLE)",
                sums(&["r.visitors", "r.pageviews", "r.events"])
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
            "CAST(sum(r.scroll_sum) AS DOUBLE) / CAST(nullif(sum(r.scroll_visits), 0) AS DOUBLE)"
                .to_string(),
            "r.scroll_visits",
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
    if let Some(v) = &choice.only {
        sql.push(" AND r.value = ?").bind(Param::Text(v.clone()));
    } else if choice.rows != dim::TOTAL {
        for f in &q.filters {
            sql.push(" AND ").append(value_filter(f, dialect));
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
