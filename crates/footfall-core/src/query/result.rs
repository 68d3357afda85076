//! Joining the parts' rows by dimension values, deriving the metrics, ordering and
//! paginating: the same for every backend.

use super::model::*;
use super::plan::Part;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One part's rows: dimension values, then the part's numbers (None for SQL NULL).
#[derive(Debug, Clone)]
pub struct PartRows {
    pub part: Part,
    pub rows: Vec<(Vec<String>, Vec<Option<f64>>)>,
}

#[derive(Debug, Clone, Default)]
struct Raw {
    visitors: f64,
    pageviews: f64,
    events: f64,
    visits_with_event: f64,
    visits: f64,
    bounces: f64,
    duration_ms: f64,
    visit_pageviews: f64,
    time_on_page_ms: Option<f64>,
    scroll_depth: Option<f64>,
    /// Visitors of the row's group without goal conditions.
    group_visitors: f64,
    /// Revenue per currency.
    revenue: super::revenue::Sums,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub dimensions: Vec<String>,
    /// JSON values, in the query's metric order.
    pub metrics: Vec<Value>,
    /// The same as numbers, for ordering and comparisons (NaN for null).
    pub numbers: Vec<f64>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// The denominators of shares: all visitors, and all visitors without goal conditions.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    visitors: f64,
    goal_visitors: f64,
}

/// How a row reads its revenue: the currency it is reported in and the rates.
struct RowRevenue<'a> {
    currency: Option<crate::money::Currency>,
    rates: &'a crate::money::Rates,
}

fn metric_value(
    m: Metric,
    r: &Raw,
    totals: Totals,
    event_dims: bool,
    revenue: &RowRevenue<'_>,
) -> (Value, f64) {
    let int = |x: f64| (json!(x.round() as i64), x.round());
    let float = |x: f64| (json!(round2(x)), round2(x));
    match m {
        Metric::Visitors => int(r.visitors),
        Metric::Visits => int(if event_dims {
            r.visits_with_event
        } else {
            r.visits
        }),
        Metric::Pageviews => int(r.pageviews),
        Metric::Events => int(r.events),
        Metric::ViewsPerVisit => float(ratio(r.visit_pageviews, r.visits)),
        Metric::BounceRate => float(100.0 * ratio(r.bounces, r.visits)),
        Metric::VisitDuration => int(ratio(r.duration_ms, r.visits) / 1000.0),
        Metric::Percentage => float(100.0 * ratio(r.visitors, totals.visitors)),
        Metric::ConversionRate => float(100.0 * ratio(r.visitors, totals.goal_visitors)),
        Metric::GroupConversionRate => float(100.0 * ratio(r.visitors, r.group_visitors)),
        Metric::TimeOnPage => r
            .time_on_page_ms
            .map_or((Value::Null, f64::NAN), |ms| int(ms / 1000.0)),
        Metric::ScrollDepth => r.scroll_depth.map_or((Value::Null, f64::NAN), int),
        Metric::TotalRevenue | Metric::AverageRevenue => {
            super::revenue::metric(m, &r.revenue, revenue.currency, revenue.rates)
        }
    }
}

/// Splits a revenue row's dimensions into the query's and (currency, exact sum).
pub fn revenue_row(dims: &[String]) -> Option<(&[String], &str, i128)> {
    let n = dims.len().checked_sub(2)?;
    Some((&dims[..n], &dims[n], dims[n + 1].parse().ok()?))
}

/// The currencies of revenue rows that `lens` cannot convert (their revenue is left out).
pub fn unconverted(
    q: &Query,
    parts: &[PartRows],
    lens: &super::revenue::Lens<'_>,
) -> std::collections::BTreeSet<String> {
    let goal_at = q.dimensions.iter().position(|d| *d == Dimension::Goal);
    let mut out = std::collections::BTreeSet::new();
    for p in parts.iter().filter(|p| p.part == Part::Revenue) {
        for (dims, vals) in &p.rows {
            let Some((key, code, sum)) = revenue_row(dims) else {
                continue;
            };
            let Some(to) = lens.currency(goal_at.and_then(|i| key.get(i)).map(String::as_str))
            else {
                continue;
            };
            let n = vals.first().copied().flatten().unwrap_or(0.0) as i64;
            let sums = vec![(code.to_string(), sum, n)];
            out.extend(super::revenue::fold(&sums, to, lens.rates).1);
        }
    }
    out
}

/// Builds the result rows (ordered, not yet paginated).
pub fn assemble(
    q: &Query,
    parts: &[PartRows],
    time_labels: Option<&[String]>,
    lens: &super::revenue::Lens<'_>,
) -> Vec<Row> {
    let mut raw: BTreeMap<Vec<String>, Raw> = BTreeMap::new();
    let mut totals = Totals::default();
    // Group totals are keyed by the dimensions other than the goal.
    let mut groups: BTreeMap<Vec<String>, f64> = BTreeMap::new();
    for p in parts {
        for (dims, vals) in &p.rows {
            let v = |i: usize| vals.get(i).copied().flatten();
            match p.part {
                Part::Total => {
                    totals.visitors = v(0).unwrap_or(0.0);
                    continue;
                }
                Part::GoalTotal => {
                    totals.goal_visitors += v(0).unwrap_or(0.0);
                    continue;
                }
                Part::GroupTotal => {
                    groups.insert(dims.clone(), v(0).unwrap_or(0.0));
                    continue;
                }
                // Answered by `super::funnel::answer`, never joined here.
                Part::Funnel => continue,
                Part::Revenue => {
                    // A row whose sum does not read is no revenue (never so from SQL).
                    if let Some((key, code, sum)) = revenue_row(dims) {
                        let n = v(0).unwrap_or(0.0) as i64;
                        raw.entry(key.to_vec()).or_default().revenue.push((
                            code.to_string(),
                            sum,
                            n,
                        ));
                    }
                    continue;
                }
                _ => {}
            }
            let r = raw.entry(dims.clone()).or_default();
            match p.part {
                Part::EventCounts => {
                    r.visitors = v(0).unwrap_or(0.0);
                    r.pageviews = v(1).unwrap_or(0.0);
                    r.events = v(2).unwrap_or(0.0);
                    r.visits_with_event = v(3).unwrap_or(0.0);
                }
                Part::VisitTotals => {
                    r.visits = v(0).unwrap_or(0.0);
                    r.bounces = v(1).unwrap_or(0.0);
                    r.duration_ms = v(2).unwrap_or(0.0);
                    r.visit_pageviews = v(3).unwrap_or(0.0);
                }
                Part::TimeOnPage => r.time_on_page_ms = v(0),
                Part::ScrollDepth => r.scroll_depth = v(0),
                Part::Total | Part::GoalTotal | Part::GroupTotal | Part::Funnel | Part::Revenue => {
                }
            }
        }
    }
    // An aggregate without dimensions has exactly one row, even over no data.
    if q.dimensions.is_empty() && raw.is_empty() {
        raw.insert(Vec::new(), Raw::default());
    }
    let event_dims = q.dimensions.iter().any(Dimension::is_event);
    let goal_at = q.dimensions.iter().position(|d| *d == Dimension::Goal);
    let mut rows: Vec<Row> = raw
        .into_iter()
        .map(|(dimensions, mut r)| {
            let mut group = dimensions.clone();
            if let Some(i) = goal_at.filter(|i| *i < group.len()) {
                group.remove(i);
            }
            r.group_visitors = groups.get(&group).copied().unwrap_or(0.0);
            let revenue = RowRevenue {
                currency: lens
                    .currency(goal_at.and_then(|i| dimensions.get(i)).map(String::as_str)),
                rates: lens.rates,
            };
            let (metrics, numbers) = q
                .metrics
                .iter()
                .map(|m| metric_value(*m, &r, totals, event_dims, &revenue))
                .unzip();
            Row {
                dimensions,
                metrics,
                numbers,
            }
        })
        .collect();
    sort(q, &mut rows, time_labels);
    rows
}

fn sort(q: &Query, rows: &mut [Row], time_labels: Option<&[String]>) {
    let mut keys: Vec<(OrderKey, Direction)> = q.order_by.clone();
    if keys.is_empty() {
        if let Some(t) = q.time_dimension() {
            keys.push((OrderKey::Dimension(t.clone()), Direction::Asc));
        }
        if let Some(m) = q.metrics.first() {
            keys.push((OrderKey::Metric(*m), Direction::Desc));
        }
    }
    let _ = time_labels;
    rows.sort_by(|a, b| {
        for (key, dir) in &keys {
            let ord = match key {
                OrderKey::Metric(m) => {
                    let i = q.metrics.iter().position(|x| x == m).unwrap_or(0);
                    let (x, y) = (a.numbers[i], b.numbers[i]);
                    // Nulls last whatever the direction.
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => return std::cmp::Ordering::Greater,
                        (false, true) => return std::cmp::Ordering::Less,
                        _ => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                    }
                }
                OrderKey::Dimension(d) => {
                    let i = q.dimensions.iter().position(|x| x == d).unwrap_or(0);
                    a.dimensions[i].cmp(&b.dimensions[i])
                }
            };
            let ord = if *dir == Direction::Desc {
                ord.reverse()
            } else {
                ord
            };
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
        }
        a.dimensions.cmp(&b.dimensions)
    });
}

/// Percent change from `before` to `now` (rates: the difference in points).
pub fn change(m: Metric, now: f64, before: f64) -> Value {
    if now.is_nan() || before.is_nan() {
        return Value::Null;
    }
    if m == Metric::BounceRate || m.needs_goal() {
        return json!(round2(now - before));
    }
    if before == 0.0 {
        return json!(if now > 0.0 { 100 } else { 0 });
    }
    json!(((now - before) / before * 100.0).round() as i64)
}

/// The JSON of one result row, with its comparison when there is one.
pub fn row_json(row: &Row, comparison: Option<(&Row, &[Metric])>) -> Value {
    let mut v = json!({ "dimensions": row.dimensions, "metrics": row.metrics });
    if let Some((prev, metrics)) = comparison {
        let changes: Vec<Value> = metrics
            .iter()
            .enumerate()
            .map(|(i, m)| change(*m, row.numbers[i], prev.numbers[i]))
            .collect();
        v["comparison"] =
            json!({ "dimensions": prev.dimensions, "metrics": prev.metrics, "change": changes });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse::parse_v2;

    #[test]
    fn joins_parts_and_derives_metrics() {
        let q = parse_v2(&json!({"site_id": "e.com", "date_range": "7d", "metrics": ["visitors", "bounce_rate", "visit_duration", "views_per_visit", "percentage"], "dimensions": ["visit:country"]}), chrono_tz::UTC).unwrap();
        let parts = vec![
            PartRows {
                part: Part::EventCounts,
                rows: vec![
                    (
                        vec!["DE".into()],
                        vec![Some(3.0), Some(5.0), Some(6.0), Some(4.0)],
                    ),
                    (
                        vec!["FR".into()],
                        vec![Some(1.0), Some(1.0), Some(1.0), Some(1.0)],
                    ),
                ],
            },
            PartRows {
                part: Part::VisitTotals,
                rows: vec![(
                    vec!["DE".into()],
                    vec![Some(4.0), Some(1.0), Some(90_000.0), Some(5.0)],
                )],
            },
            PartRows {
                part: Part::Total,
                rows: vec![(vec![], vec![Some(4.0)])],
            },
        ];
        let rates = crate::money::Rates::none();
        let rows = assemble(&q, &parts, None, &super::super::revenue::Lens::none(&rates));
        assert_eq!(rows[0].dimensions, vec!["DE"]);
        assert_eq!(
            rows[0].metrics,
            vec![json!(3), json!(25.0), json!(23), json!(1.25), json!(75.0)]
        );
        assert_eq!(
            rows[1].metrics[1],
            json!(0.0),
            "no visits: no bounce rate, not NaN"
        );
    }

    #[test]
    fn empty_aggregate_has_one_row() {
        let q = parse_v2(&json!({"site_id": "e.com", "date_range": "7d", "metrics": ["visitors", "time_on_page"], "filters": [["is", "event:page", ["/"]]]}), chrono_tz::UTC).unwrap();
        let rates = crate::money::Rates::none();
        let rows = assemble(&q, &[], None, &super::super::revenue::Lens::none(&rates));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].metrics, vec![json!(0), Value::Null]);
    }

    #[test]
    fn changes() {
        assert_eq!(change(Metric::Visitors, 150.0, 100.0), json!(50));
        assert_eq!(change(Metric::Visitors, 5.0, 0.0), json!(100));
        assert_eq!(change(Metric::BounceRate, 40.0, 50.0), json!(-10.0));
    }
}
