//! Revenue in queries: `total_revenue` and `average_revenue`, as Plausible defines them —
//! the revenue of conversions of revenue goals, reported in the goal's currency. Which
//! goals count is decided here from the query alone (the plan reads their events, the
//! result converts their sums), so both always agree.
//!
//! The SQL sums amounts per row and currency, exactly (integers of thousandths); each
//! sum is converted into the goal's currency here with the operator's [`Rates`], rounded
//! once. A currency the table cannot convert is left out and named in a warning.

use super::goals;
use super::model::*;
use crate::goal::Goal;
use crate::money::{self, Currency, Rates};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Why revenue metrics are null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// No revenue goal among the goals the query filters or breaks down by.
    NoRevenueGoals,
    /// The filtered revenue goals have more than one currency: no single sum.
    MixedCurrencies,
}

/// Whose revenue a query reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Target<'a> {
    Missing(Missing),
    /// Conversions of these goals (all in this currency), in every row.
    One(Currency, Vec<&'a Goal>),
    /// A breakdown by goal: each revenue goal's row, in its own currency.
    ByGoal(Vec<&'a Goal>),
}

/// The revenue goals a query's goal dimension or top-level goal filters select.
pub fn target<'a>(q: &Query, all: &'a [Goal]) -> Target<'a> {
    let revenue = |gs: Vec<&'a Goal>| -> Vec<&'a Goal> {
        gs.into_iter().filter(|g| g.currency.is_some()).collect()
    };
    if q.dimensions.contains(&Dimension::Goal) {
        let gs = revenue(goals::breakdown(q, all));
        return if gs.is_empty() {
            Target::Missing(Missing::NoRevenueGoals)
        } else {
            Target::ByGoal(gs)
        };
    }
    let filtered = q.filters.iter().any(
        |f| matches!(f, Filter::Condition(c) if c.dimension == Dimension::Goal && !c.op.negated()),
    );
    if !filtered {
        return Target::Missing(Missing::NoRevenueGoals);
    }
    let gs = revenue(goals::breakdown(q, all));
    let currencies: BTreeSet<Currency> = gs.iter().filter_map(|g| g.currency).collect();
    match (currencies.len(), currencies.first()) {
        (1, Some(c)) => Target::One(*c, gs),
        (0, _) => Target::Missing(Missing::NoRevenueGoals),
        _ => Target::Missing(Missing::MixedCurrencies),
    }
}

/// The goals whose conversions a revenue read counts, with whether the read is by goal.
pub fn goals_read<'t, 'a>(t: &'t Target<'a>) -> Option<(&'t [&'a Goal], bool)> {
    match t {
        Target::Missing(_) => None,
        Target::One(_, gs) => Some((gs, false)),
        Target::ByGoal(gs) => Some((gs, true)),
    }
}

pub fn wanted(q: &Query) -> bool {
    q.metrics
        .iter()
        .any(|m| matches!(m, Metric::TotalRevenue | Metric::AverageRevenue))
}

/// How a result reads revenue: the target and the operator's rates.
#[derive(Debug, Clone)]
pub struct Lens<'a> {
    pub target: Target<'a>,
    pub rates: &'a Rates,
}

impl<'a> Lens<'a> {
    pub fn new(q: &Query, goals: &'a [Goal], rates: &'a Rates) -> Lens<'a> {
        Lens {
            target: target(q, goals),
            rates,
        }
    }

    /// No revenue anywhere (queries without revenue metrics).
    pub fn none(rates: &'a Rates) -> Lens<'a> {
        Lens {
            target: Target::Missing(Missing::NoRevenueGoals),
            rates,
        }
    }

    /// The currency a row's revenue is reported in: the target's, or in a breakdown by
    /// goal the row's goal's (`goal` is the row's goal name).
    pub fn currency(&self, goal: Option<&str>) -> Option<Currency> {
        match &self.target {
            Target::Missing(_) => None,
            Target::One(c, _) => Some(*c),
            Target::ByGoal(gs) => gs
                .iter()
                .find(|g| Some(g.name.as_str()) == goal)
                .and_then(|g| g.currency),
        }
    }
}

/// A row's revenue sums, one per currency the SQL found: (currency, thousandths, events).
pub type Sums = Vec<(String, i128, i64)>;

/// The row's revenue in `to`: (thousandths, events counted), and the currencies left out
/// for want of a rate.
pub fn fold(sums: &Sums, to: Currency, rates: &Rates) -> ((i128, i64), Vec<String>) {
    let (mut total, mut count, mut left) = (0i128, 0i64, Vec::new());
    for (code, sum, n) in sums {
        match Currency::parse(code)
            .ok()
            .and_then(|from| rates.convert(*sum, from, to))
        {
            Some(v) => {
                total += v;
                count += n;
            }
            None => left.push(code.clone()),
        }
    }
    ((total, count), left)
}

/// The metric's JSON and its number for ordering.
pub fn metric(m: Metric, sums: &Sums, currency: Option<Currency>, rates: &Rates) -> (Value, f64) {
    let Some(to) = currency else {
        return (Value::Null, f64::NAN);
    };
    let ((total, count), _) = fold(sums, to, rates);
    let v = if m == Metric::AverageRevenue {
        if count > 0 {
            money::div_half_even(total, i128::from(count))
        } else {
            0
        }
    } else {
        total
    };
    (money::money_json(v, to), v as f64 / 1000.0)
}

/// Plausible's `meta.metric_warnings` for a query's revenue metrics: why they are null,
/// or which currencies had no rate (their revenue is left out).
pub fn warnings(q: &Query, lens: &Lens<'_>, unconverted: &BTreeSet<String>) -> Option<Value> {
    if !wanted(q) {
        return None;
    }
    let warning = match &lens.target {
        Target::Missing(Missing::NoRevenueGoals) => json!({
            "code": "no_revenue_goals_matching",
            "message": "Revenue metrics are null: the query filters or breaks down by no revenue goal (a custom-event goal with a currency)."
        }),
        Target::Missing(Missing::MixedCurrencies) => json!({
            "code": "no_single_revenue_currency",
            "message": "Revenue metrics are null: the filtered revenue goals have different currencies."
        }),
        _ if !unconverted.is_empty() => json!({
            "code": "unconverted_currencies",
            "currencies": unconverted,
            "message": "Revenue in these currencies is left out: the server's rate table (--currency-rates) has no rate for them."
        }),
        _ => return None,
    };
    let mut out = serde_json::Map::new();
    for m in &q.metrics {
        if matches!(m, Metric::TotalRevenue | Metric::AverageRevenue) {
            out.insert(m.name().to_string(), warning.clone());
        }
    }
    Some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goal::GoalSpec;
    use crate::query::parse::parse_v2;

    fn goals() -> Vec<Goal> {
        let g = |json: serde_json::Value| {
            Goal::from_spec(serde_json::from_value::<GoalSpec>(json).unwrap()).unwrap()
        };
        vec![
            g(json!({"name": "Buy", "event": "Purchase", "currency": "EUR"})),
            g(
                json!({"name": "Buy US", "event": "Purchase", "props": {"store": "us"}, "currency": "USD"}),
            ),
            g(json!({"name": "Tip", "event": "Tip", "currency": "EUR"})),
            g(json!({"name": "Signup", "event": "Signup"})),
        ]
    }

    fn q(extra: serde_json::Value) -> Query {
        let mut v = json!({"site_id": "e.com", "date_range": "7d", "metrics": ["total_revenue"]});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        parse_v2(&v, chrono_tz::UTC).unwrap()
    }

    fn names(t: &Target<'_>) -> Vec<String> {
        goals_read(t)
            .map(|(gs, _)| gs.iter().map(|g| g.name.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn targets_follow_plausible() {
        let gs = goals();
        let t = |v| target(&q(v), &gs);
        assert_eq!(t(json!({})), Target::Missing(Missing::NoRevenueGoals));
        assert_eq!(
            t(json!({"filters": [["is", "event:goal", ["Signup"]]]})),
            Target::Missing(Missing::NoRevenueGoals)
        );
        assert_eq!(
            t(json!({"filters": [["is", "event:goal", ["Buy", "Buy US"]]]})),
            Target::Missing(Missing::MixedCurrencies)
        );
        let one = t(json!({"filters": [["is", "event:goal", ["Buy", "Tip", "Signup"]]]}));
        assert!(matches!(one, Target::One(c, _) if c.as_str() == "EUR"));
        assert_eq!(names(&one), ["Buy", "Tip"]);
        let by = t(json!({"dimensions": ["event:goal"]}));
        assert_eq!(names(&by), ["Buy", "Buy US", "Tip"]);
        let lens = Lens {
            target: by,
            rates: &Rates::none(),
        };
        assert_eq!(lens.currency(Some("Buy US")).unwrap().as_str(), "USD");
        assert_eq!(lens.currency(Some("Signup")), None);
        assert_eq!(
            t(json!({"filters": [["is_not", "event:goal", ["Buy"]]]})),
            Target::Missing(Missing::NoRevenueGoals),
            "a negated goal filter selects no goal"
        );
    }

    #[test]
    fn sums_convert_or_are_named() {
        let rates = Rates::from_json(r#"{"base": "EUR", "rates": {"USD": "1.25"}}"#).unwrap();
        let eur = Currency::parse("EUR").unwrap();
        let sums: Sums = vec![
            ("EUR".into(), 10_000, 2),
            ("USD".into(), 12_500, 1),
            ("JPY".into(), 5_000, 1),
        ];
        let ((total, n), left) = fold(&sums, eur, &rates);
        assert_eq!((total, n), (20_000, 3));
        assert_eq!(left, ["JPY"]);
        let (v, x) = metric(Metric::AverageRevenue, &sums, Some(eur), &rates);
        assert_eq!(v["long"], "€6.667");
        assert!((x - 6.667).abs() < 1e-9);
        assert_eq!(
            metric(Metric::TotalRevenue, &sums, None, &rates).0,
            Value::Null
        );
    }
}
