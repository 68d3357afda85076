//! Goals in queries. A goal is a lens on stored events, not a column: an `event:goal`
//! condition becomes the goals it names, each a condition on the event row (`e`), and a
//! breakdown by goal counts each goal over the events that convert it. Names are resolved
//! here, against the site's goals, before any SQL is written.

use super::model::*;
use super::plan::{Dialect, Param, Sql};
use super::QueryError;
use crate::goal::{Goal, GoalKind, PathPattern};

/// Whether condition `c` names goal `name` (its operator read without negation: `is_not`
/// names what `is` would, and the caller negates).
fn names(c: &Condition, name: &str, patterns: &[regex::Regex]) -> bool {
    let fold = |s: &str| {
        if c.case_sensitive {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    let name_f = fold(name);
    match c.op {
        Op::Is | Op::IsNot => c.values.iter().any(|v| fold(v) == name_f),
        Op::Contains | Op::ContainsNot => c.values.iter().any(|v| name_f.contains(&fold(v))),
        Op::Matches | Op::MatchesNot => patterns.iter().any(|r| r.is_match(name)),
    }
}

/// The goals condition `c` (on `event:goal`) names, in the site's order.
pub fn named<'a>(c: &Condition, goals: &'a [Goal]) -> Vec<&'a Goal> {
    // Checked by the parser (RE2 syntax, bounded size); one that still fails names nothing.
    let patterns: Vec<regex::Regex> = if matches!(c.op, Op::Matches | Op::MatchesNot) {
        c.values
            .iter()
            .filter_map(|v| {
                regex::RegexBuilder::new(v)
                    .case_insensitive(!c.case_sensitive)
                    .size_limit(256 * 1024)
                    .dfa_size_limit(256 * 1024)
                    .build()
                    .ok()
            })
            .collect()
    } else {
        Vec::new()
    };
    goals
        .iter()
        .filter(|g| names(c, &g.name, &patterns))
        .collect()
}

/// Every goal an `is` / `is_not` condition names must be one of the site's: a typo would
/// otherwise answer "no conversions" rather than say what is wrong.
pub fn check(q: &Query, goals: &[Goal]) -> Result<(), QueryError> {
    for c in q.all_conditions() {
        if c.dimension != Dimension::Goal || !matches!(c.op, Op::Is | Op::IsNot) {
            continue;
        }
        for v in &c.values {
            let one = Condition {
                values: vec![v.clone()],
                ..c.clone()
            };
            if named(&one, goals).is_empty() {
                let known: Vec<&str> = goals.iter().take(20).map(|g| g.name.as_str()).collect();
                return Err(QueryError::new(
                    "filters",
                    if known.is_empty() {
                        format!("unknown goal {v:?}: this site has no goals")
                    } else {
                        format!(
                            "unknown goal {v:?}; this site's goals include: {}",
                            known.join(", ")
                        )
                    },
                ));
            }
        }
    }
    Ok(())
}

/// The goals a breakdown by goal has rows for: all of the site's, narrowed by the
/// top-level conditions on `event:goal` (as a filtered goal list shows only those goals).
pub fn breakdown<'a>(q: &Query, goals: &'a [Goal]) -> Vec<&'a Goal> {
    let mut out: Vec<&Goal> = goals.iter().collect();
    for f in &q.filters {
        let (c, negated) = match f {
            Filter::Condition(c) => (c, c.op.negated()),
            Filter::Not(inner) => match &**inner {
                Filter::Condition(c) => (c, !c.op.negated()),
                _ => continue,
            },
            _ => continue,
        };
        if c.dimension != Dimension::Goal {
            continue;
        }
        let picked = named(c, goals);
        out.retain(|g| picked.iter().any(|p| std::ptr::eq(*p, *g)) != negated);
    }
    out
}

/// The query without its top-level goal and property conditions: whose visitors are the
/// denominator of conversion rates (a conversion is a goal completed with the filtered
/// properties).
pub fn without_goal_filters(q: &Query) -> Query {
    let mut out = q.clone();
    let goal_or_prop = |c: &Condition| matches!(c.dimension, Dimension::Goal | Dimension::Prop(_));
    out.filters.retain(|f| match f {
        Filter::Condition(c) => !goal_or_prop(c),
        Filter::Not(inner) => !matches!(&**inner, Filter::Condition(c) if goal_or_prop(c)),
        _ => true,
    });
    out
}

fn page_match(page: &PathPattern, dialect: &dyn Dialect) -> Sql {
    let mut s = Sql::default();
    // Most goals name one page or a section; equality and a prefix read no regex.
    if !page.as_str().contains('*') {
        s.push("e.pathname = ?")
            .bind(Param::Text(page.as_str().to_string()));
    } else if let Some(prefix) = page.literal_prefix() {
        s.push(&dialect.starts_with("e.pathname"))
            .bind(Param::Text(prefix.to_string()));
    } else {
        s.push(&dialect.regex_match("e.pathname"))
            .bind(Param::Text(page.regex()));
    }
    s
}

/// The condition on event row `e` under which it converts `g`: the SQL twin of
/// [`Goal::converts`].
pub fn converts(g: &Goal, dialect: &dyn Dialect) -> Sql {
    let mut s = Sql::default();
    s.push("(");
    match &g.kind {
        GoalKind::Page { page } => {
            s.push("e.name = 'pageview' AND ")
                .append(page_match(page, dialect));
        }
        GoalKind::Event { event, props } => {
            s.push("e.name = ?").bind(Param::Text(event.clone()));
            for (k, v) in props {
                s.push(&format!(" AND {} = ?", dialect.prop_value("e")))
                    .bind(Param::Text(k.clone()))
                    .bind(Param::Text(v.clone()));
            }
        }
        GoalKind::Scroll { page, depth } => {
            s.push("e.name = 'engagement' AND e.scroll_depth >= ? AND ")
                .bind(Param::Int(i64::from(*depth)))
                .append(page_match(page, dialect));
        }
    }
    s.push(")");
    s
}

/// Any of `goals` converted, as a condition on `e` (false for none).
pub fn any_converts(goals: &[&Goal], dialect: &dyn Dialect) -> Sql {
    let mut s = Sql::default();
    if goals.is_empty() {
        s.push("1 = 0");
        return s;
    }
    s.push("(");
    for (i, g) in goals.iter().enumerate() {
        if i > 0 {
            s.push(" OR ");
        }
        s.append(converts(g, dialect));
    }
    s.push(")");
    s
}

/// A condition on `event:goal` as a condition on the event row.
pub fn condition(c: &Condition, goals: &[Goal], dialect: &dyn Dialect) -> Sql {
    let mut s = Sql::default();
    if c.op.negated() {
        s.push("NOT ");
    }
    s.append(any_converts(&named(c, goals), dialect));
    s
}

/// The scroll goals a query's conditions name. Engagement events count in no metric but
/// these goals' conversions, so those that convert one are counted.
pub fn scroll_goals<'a>(q: &Query, goals: &'a [Goal]) -> Vec<&'a Goal> {
    scroll_goals_of(&q.filters, goals)
}

/// The scroll goals `filters` name (not those inside a behavioural filter, whose goals
/// select visitors, not the rows counted).
pub fn scroll_goals_of<'a>(filters: &[Filter], goals: &'a [Goal]) -> Vec<&'a Goal> {
    let mut out: Vec<&Goal> = Vec::new();
    for c in filters.iter().flat_map(Filter::own_conditions) {
        if c.dimension != Dimension::Goal {
            continue;
        }
        for g in named(c, goals) {
            if matches!(g.kind, GoalKind::Scroll { .. }) && !out.iter().any(|x| std::ptr::eq(*x, g))
            {
                out.push(g);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goal::GoalSpec;
    use crate::query::parse::parse_v2;
    use serde_json::json;

    fn goals() -> Vec<Goal> {
        let spec = |v: serde_json::Value| {
            Goal::from_spec(serde_json::from_value::<GoalSpec>(v).unwrap()).unwrap()
        };
        vec![
            spec(json!({"name": "Signup", "event": "signup"})),
            spec(json!({"name": "Pro signup", "event": "signup", "props": {"plan": "pro"}})),
            spec(json!({"name": "Blog", "page": "/blog/**"})),
            spec(json!({"name": "Read", "page": "/blog/*", "scroll_depth": 75})),
        ]
    }

    fn q(filters: serde_json::Value) -> Query {
        parse_v2(
            &json!({"site_id": "e.com", "date_range": "7d", "metrics": ["visitors"], "dimensions": ["event:goal"], "filters": filters}),
            chrono_tz::UTC,
        )
        .unwrap()
    }

    fn names_of(gs: Vec<&Goal>) -> Vec<&str> {
        gs.into_iter().map(|g| g.name.as_str()).collect()
    }

    #[test]
    fn conditions_name_goals_by_operator_and_case() {
        let gs = goals();
        let all = q(json!([]));
        assert_eq!(names_of(breakdown(&all, &gs)).len(), 4);
        assert_eq!(
            names_of(breakdown(&q(json!([["is", "event:goal", ["Blog"]]])), &gs)),
            ["Blog"]
        );
        assert_eq!(
            names_of(breakdown(
                &q(json!([["contains", "event:goal", ["SIGN"], {"case_sensitive": false}]])),
                &gs
            )),
            ["Signup", "Pro signup"]
        );
        assert_eq!(
            names_of(breakdown(
                &q(json!([["matches", "event:goal", ["^.{4}$"]]])),
                &gs
            )),
            ["Blog", "Read"]
        );
        assert_eq!(
            names_of(breakdown(
                &q(json!([["is_not", "event:goal", ["Blog", "Read"]]])),
                &gs
            )),
            ["Signup", "Pro signup"]
        );
        assert_eq!(
            names_of(breakdown(
                &q(json!([["not", ["is", "event:goal", ["Signup"]]]])),
                &gs
            )),
            ["Pro signup", "Blog", "Read"]
        );
        assert_eq!(
            names_of(scroll_goals(
                &q(json!([["contains", "event:goal", ["e"]]])),
                &gs
            )),
            ["Read"]
        );
    }

    #[test]
    fn unknown_goal_names_are_refused() {
        let gs = goals();
        let e = check(&q(json!([["is", "event:goal", ["Sign up"]]])), &gs).unwrap_err();
        assert!(e.reason.contains("unknown goal \"Sign up\""), "{e}");
        assert!(e.reason.contains("Signup"), "lists the goals: {e}");
        assert!(check(
            &q(json!([["is", "event:goal", ["signup"], {"case_sensitive": false}]])),
            &gs
        )
        .is_ok());
        assert!(
            check(&q(json!([["contains", "event:goal", ["zzz"]]])), &gs).is_ok(),
            "a pattern may name none"
        );
        let e = check(&q(json!([["is", "event:goal", ["Signup"]]])), &[]).unwrap_err();
        assert!(e.reason.contains("no goals"), "{e}");
    }

    #[test]
    fn goal_sql_binds_every_value() {
        let gs = goals();
        for g in &gs {
            for d in [
                &super::super::plan::DuckDb as &dyn Dialect,
                &super::super::plan::ClickHouse,
            ] {
                let s = converts(g, d);
                assert_eq!(s.text.matches('?').count(), s.params.len(), "{}", s.text);
            }
        }
        let s = converts(&gs[2], &super::super::plan::DuckDb);
        assert!(s.text.contains("starts_with(e.pathname, ?)"), "{}", s.text);
        assert!(
            s.params.contains(&Param::Text("/blog/".into())),
            "{:?}",
            s.params
        );
        let s = converts(&gs[3], &super::super::plan::DuckDb);
        assert!(
            s.params.contains(&Param::Text("(?s)^/blog/[^/]*$".into())),
            "{:?}",
            s.params
        );
        let exact = Goal::from_spec(GoalSpec {
            name: "P".into(),
            page: Some("/pricing".into()),
            ..GoalSpec::default()
        })
        .unwrap();
        assert!(converts(&exact, &super::super::plan::DuckDb)
            .text
            .contains("e.pathname = ?"));
        assert_eq!(any_converts(&[], &super::super::plan::DuckDb).text, "1 = 0");
    }
}
