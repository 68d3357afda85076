//! Funnels: an ordered list of goals, and how many visitors reached each step in order
//! within a visit. One statement per funnel, written once for both dialects:
//!
//! 1. each event in the range that passes the filters and converts a step gets a step mask
//!    (bit k: it converts step k + 1's goal);
//! 2. each visit's masks, in event order, give the number of steps it reached in order —
//!    the earliest event of each step after the previous step's, one event per step.
//!    Events of one millisecond are in step order: the order key is the time above the
//!    mask, so a visit's list is sorted small integers (cheaper than an ordered aggregate,
//!    and the same in both engines);
//! 3. each visitor keeps their best visit of the day (the local day of the visit's first
//!    step), as every visitor count is per visitor and day;
//! 4. one row: the visitors who reached at least 1, 2, … steps.
//!
//! All visitors — the funnel's denominator — are the `visitors` metric of the same range and
//! filters, planned as such (rollups answer it when they can).

use super::goals;
use super::model::{Query, TimeBucket};
use super::plan::{
    event_filters, events_source, BucketKey, Context, Dialect, Param, Part, Sql, SqlQuery,
};
use super::QueryError;
use crate::goal::{Goal, GoalKind};

pub const MIN_STEPS: usize = 2;
pub const MAX_STEPS: usize = 8;

/// The goals a funnel's steps name, in order; a name must be one of the site's goals.
pub fn resolve<'a>(steps: &[String], goals: &'a [Goal]) -> Result<Vec<&'a Goal>, QueryError> {
    if !(MIN_STEPS..=MAX_STEPS).contains(&steps.len()) {
        return Err(QueryError::new(
            "steps",
            format!("a funnel has {MIN_STEPS} to {MAX_STEPS} steps, each a goal's name"),
        ));
    }
    steps
        .iter()
        .enumerate()
        .map(|(i, name)| {
            goals.iter().find(|g| g.name == *name).ok_or_else(|| {
                QueryError::new(
                    format!("steps[{i}]"),
                    format!("unknown goal {name:?}: steps name the site's goals"),
                )
            })
        })
        .collect()
}

/// The funnel's statement: one row of `1 + MAX_STEPS` numbers (NULL, then the visitors
/// reaching at least k steps; NULL past the last step). `q` gives the filters; `cx` the
/// range.
pub fn plan(q: &Query, steps: &[&Goal], cx: &Context<'_>, dialect: &dyn Dialect) -> SqlQuery {
    let mut mask = Sql::default();
    for (k, g) in steps.iter().enumerate() {
        if k > 0 {
            mask.push(" + ");
        }
        mask.push("(CASE WHEN ")
            .append(goals::converts(g, dialect))
            .push(&format!(" THEN {} ELSE 0 END)", 1u64 << k));
    }
    // Engagement events count as visitors nowhere, but they are a scroll step's events.
    let scroll: Vec<&Goal> = steps
        .iter()
        .copied()
        .filter(|g| matches!(g.kind, GoalKind::Scroll { .. }))
        .collect();
    let mut counted = Sql::default();
    counted
        .push(" WHERE e.site = ? AND e.ts >= ? AND e.ts < ?")
        .bind(Param::Text(cx.site.to_string()))
        .bind(Param::Int(cx.start))
        .bind(Param::Int(cx.end))
        .append(event_filters(q, cx, dialect));
    if scroll.is_empty() {
        counted.push(" AND e.name <> 'engagement'");
    } else {
        counted
            .push(" AND (e.name <> 'engagement' OR ")
            .append(goals::any_converts(&scroll, dialect))
            .push(")");
    }
    // Only step events go on: the rest is dropped before anything else is computed of it.
    counted
        .push(" AND ")
        .append(goals::any_converts(steps, dialect));
    let day = BucketKey::over(TimeBucket::Day, cx.tz, cx.start, cx.end).sql("e.ts", dialect);
    // Entry and exit page filters read the event's visit.
    let (with, from) = events_source(q, cx, dialect);
    let mut sql = with;
    sql.push(&format!("SELECT {} AS m0", dialect.null_double()));
    for k in 1..=MAX_STEPS {
        let col = if k <= steps.len() {
            dialect.to_double(&dialect.count_if(&format!("r >= {k}")))
        } else {
            dialect.null_double().to_string()
        };
        sql.push(&format!(", {col} AS m{k}"));
    }
    sql.push(" FROM (SELECT max(r) AS r FROM (SELECT v, d, ")
        .push(&dialect.steps_in_order("m", steps.len()))
        .push(" AS r FROM (SELECT min(v) AS v, min(day_) AS d, ")
        .push(&dialect.sorted_list("(t - ?) * 256 + mask"))
        .bind(Param::Int(cx.start))
        .push(" AS m FROM (SELECT e.session_id AS sid, e.visitor_id AS v, e.ts AS t, ")
        .append(day)
        .push(" AS day_, ")
        .append(mask)
        .push(" AS mask")
        .append(from)
        .append(counted)
        .push(") AS marked WHERE mask > 0 GROUP BY sid) AS per_visit) AS reached GROUP BY v, d) AS per_visitor_day");
    SqlQuery {
        part: Part::Funnel,
        sql: sql.text,
        params: sql.params,
        dimensions: 0,
    }
}

/// One step of the answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Step {
    pub label: String,
    pub visitors: u64,
    /// Of the visitors who entered (reached step 1), in %.
    pub conversion_rate: f64,
    /// Of the previous step's visitors, in % (100 for the first).
    pub conversion_rate_step: f64,
    /// The previous step's visitors who did not reach this one.
    pub dropoff: u64,
    pub dropoff_percentage: f64,
}

/// The answer, shaped as Plausible's funnel report (numbers rather than strings).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Answer {
    pub steps: Vec<Step>,
    pub all_visitors: u64,
    pub entering_visitors: u64,
    pub entering_visitors_percentage: f64,
    pub never_entering_visitors: u64,
    pub never_entering_visitors_percentage: f64,
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        (10_000.0 * a as f64 / b as f64).round() / 100.0
    }
}

/// The answer from the statement's row (`None` values: no rows at all) and the range's
/// visitors.
pub fn answer(steps: &[&Goal], all_visitors: f64, row: &[Option<f64>]) -> Answer {
    let n = |i: usize| row.get(i).copied().flatten().unwrap_or(0.0).max(0.0) as u64;
    let all = all_visitors.max(0.0) as u64;
    let entering = n(1);
    let mut out = Vec::new();
    let mut before = entering;
    for (k, g) in steps.iter().enumerate() {
        let visitors = n(k + 1);
        let (rate_step, dropoff) = if k == 0 {
            (100.0, 0)
        } else {
            (pct(visitors, before), before.saturating_sub(visitors))
        };
        out.push(Step {
            label: g.name.clone(),
            visitors,
            conversion_rate: pct(visitors, entering),
            conversion_rate_step: if k == 0 && entering == 0 {
                0.0
            } else {
                rate_step
            },
            dropoff,
            dropoff_percentage: if k == 0 { 0.0 } else { pct(dropoff, before) },
        });
        before = visitors;
    }
    Answer {
        steps: out,
        all_visitors: all,
        entering_visitors: entering,
        entering_visitors_percentage: pct(entering, all),
        never_entering_visitors: all.saturating_sub(entering),
        never_entering_visitors_percentage: pct(all.saturating_sub(entering), all),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goal::GoalSpec;
    use crate::query::plan::{ClickHouse, DuckDb};

    fn goal(name: &str, page: &str) -> Goal {
        Goal::from_spec(GoalSpec {
            name: name.into(),
            page: Some(page.into()),
            ..GoalSpec::default()
        })
        .unwrap()
    }

    #[test]
    fn steps_name_goals() {
        let gs = vec![goal("A", "/a"), goal("B", "/b/**")];
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(resolve(&names(&["A", "B", "A"]), &gs).unwrap().len(), 3);
        assert_eq!(resolve(&names(&["A"]), &gs).unwrap_err().field, "steps");
        assert_eq!(resolve(&names(&["A"; 9]), &gs).unwrap_err().field, "steps");
        let e = resolve(&names(&["A", "b"]), &gs).unwrap_err();
        assert_eq!(e.field, "steps[1]");
    }

    #[test]
    fn the_statement_binds_every_value() {
        let gs = [goal("A", "/a"), goal("B", "/b/**")];
        let q = crate::query::parse::parse_v2(
            &serde_json::json!({"site_id": "e.com", "date_range": "7d", "metrics": ["visitors"],
                "filters": [["is", "visit:country", ["'; DROP TABLE events"]]]}),
            chrono_tz::UTC,
        )
        .unwrap();
        let cx = Context {
            site: "e.com",
            start: 0,
            end: 10,
            buckets: None,
            tz: chrono_tz::UTC,
            rollups: false,
            goals: &gs,
            by_goal: None,
        };
        for d in [&DuckDb as &dyn Dialect, &ClickHouse] {
            let s = plan(&q, &[&gs[0], &gs[1]], &cx, d);
            assert_eq!(s.sql.matches('?').count(), s.params.len(), "{}", s.sql);
            assert!(!s.sql.contains("DROP"));
        }
        // An entry page filter reads the visit: joined, every value bound.
        let q = crate::query::parse::parse_v2(
            &serde_json::json!({"site_id": "e.com", "date_range": "7d", "metrics": ["visitors"],
                "filters": [["is", "visit:entry_page", ["/a"]]]}),
            chrono_tz::UTC,
        )
        .unwrap();
        for d in [&DuckDb as &dyn Dialect, &ClickHouse] {
            let s = plan(&q, &[&gs[0], &gs[1]], &cx, d);
            assert!(s.sql.contains("s.session_id = e.session_id"), "{}", s.sql);
            assert_eq!(s.sql.matches('?').count(), s.params.len(), "{}", s.sql);
        }
    }

    #[test]
    fn rates_and_dropoffs() {
        let gs = [goal("A", "/a"), goal("B", "/b"), goal("C", "/c")];
        let a = answer(
            &[&gs[0], &gs[1], &gs[2]],
            200.0,
            &[None, Some(100.0), Some(40.0), Some(10.0), None],
        );
        assert_eq!((a.all_visitors, a.entering_visitors), (200, 100));
        assert_eq!(a.entering_visitors_percentage, 50.0);
        assert_eq!(a.never_entering_visitors, 100);
        assert_eq!(a.steps[1].conversion_rate, 40.0);
        assert_eq!(a.steps[2].conversion_rate_step, 25.0);
        assert_eq!(
            (a.steps[2].dropoff, a.steps[2].dropoff_percentage),
            (30, 75.0)
        );
        assert_eq!(a.steps[0].dropoff, 0);
        let empty = answer(&[&gs[0], &gs[1]], 0.0, &[]);
        assert_eq!(empty.steps[1].conversion_rate, 0.0);
    }
}
