//! Plausible Stats API v2 request JSON → [`Query`], with every rule checked here so that
//! the planner can assume a valid query. Errors name the field and say why.

use super::model::*;
use super::QueryError;
use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;
use serde_json::Value;

/// Bounds on what one query may ask, so a request can't make the planner do unbounded work.
pub const MAX_FILTER_CONDITIONS: usize = 50;
pub const MAX_FILTER_VALUES: usize = 100;
pub const MAX_FILTER_DEPTH: usize = 8;
pub const MAX_REGEX_LEN: usize = 1000;
pub const MAX_LIMIT: usize = 10_000;

fn err(field: impl Into<String>, reason: impl Into<String>) -> QueryError {
    QueryError::new(field, reason)
}

fn string_list<'a>(v: &'a Value, field: &str) -> Result<Vec<&'a str>, QueryError> {
    let arr = v
        .as_array()
        .ok_or_else(|| err(field, "must be a list of strings"))?;
    arr.iter()
        .map(|x| {
            x.as_str()
                .ok_or_else(|| err(field, "must be a list of strings"))
        })
        .collect()
}

/// Parses and validates a v2 query for a site whose time zone is `tz`.
pub fn parse_v2(body: &Value, tz: Tz) -> Result<Query, QueryError> {
    let obj = body
        .as_object()
        .ok_or_else(|| err("query", "must be a JSON object"))?;
    const KNOWN: [&str; 9] = [
        "site_id",
        "date_range",
        "metrics",
        "dimensions",
        "filters",
        "order_by",
        "include",
        "pagination",
        "date",
    ];
    if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(err(
            k.clone(),
            format!("unknown field; expected one of {}", KNOWN.join(", ")),
        ));
    }
    let site = obj
        .get("site_id")
        .and_then(Value::as_str)
        .ok_or_else(|| err("site_id", "required: the site's domain"))?
        .to_string();
    let date_range = parse_date_range(
        obj.get("date_range")
            .ok_or_else(|| err("date_range", "required"))?,
    )?;
    let relative_date = match obj.get("date") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_date(v.as_str().unwrap_or(""), "date")?),
    };

    let metric_names = string_list(
        obj.get("metrics")
            .ok_or_else(|| err("metrics", "required: at least one metric"))?,
        "metrics",
    )?;
    if metric_names.is_empty() {
        return Err(err("metrics", "at least one metric is required"));
    }
    let mut metrics = Vec::new();
    for name in metric_names {
        let m = Metric::parse(name).ok_or_else(|| {
            err(
                "metrics",
                format!(
                    "unknown metric {name:?}; valid: {}",
                    Metric::ALL.map(Metric::name).join(", ")
                ),
            )
        })?;
        if metrics.contains(&m) {
            return Err(err("metrics", format!("{name:?} is listed twice")));
        }
        metrics.push(m);
    }

    let mut dimensions = Vec::new();
    if let Some(v) = obj.get("dimensions") {
        for name in string_list(v, "dimensions")? {
            let d = Dimension::parse(name)
                .ok_or_else(|| err("dimensions", format!("unknown dimension {name:?}")))?;
            if dimensions.contains(&d) {
                return Err(err("dimensions", format!("{name:?} is listed twice")));
            }
            dimensions.push(d);
        }
    }
    if dimensions.iter().filter(|d| d.is_time()).count() > 1 {
        return Err(err("dimensions", "at most one time dimension"));
    }

    let filters = match obj.get("filters") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut count = 0;
            items
                .iter()
                .enumerate()
                .map(|(i, f)| parse_filter(f, &format!("filters[{i}]"), 1, &mut count))
                .collect::<Result<_, _>>()?
        }
        Some(_) => return Err(err("filters", "must be a list of filters")),
    };

    let include = parse_include(obj.get("include"))?;
    let (limit, offset) = parse_pagination(obj.get("pagination"))?;
    let order_by = parse_order_by(obj.get("order_by"), &metrics, &dimensions)?;

    let q = Query {
        site,
        date_range,
        relative_date,
        timezone: tz,
        metrics,
        dimensions,
        filters,
        order_by,
        limit,
        offset,
        include,
    };
    validate(&q)?;
    Ok(q)
}

/// Rules between fields (Plausible's, plus our bounds).
pub fn validate(q: &Query) -> Result<(), QueryError> {
    let has_event_dim = q.dimensions.iter().any(Dimension::is_event);
    for m in &q.metrics {
        if m.is_session_only() && has_event_dim {
            return Err(err(
                "metrics",
                format!(
                    "{} is a visit metric and can't be split by an event dimension ({})",
                    m.name(),
                    q.dimensions
                        .iter()
                        .filter(|d| d.is_event())
                        .map(Dimension::name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    // A conversion rate's denominator is the query without its top-level goal filters;
    // one nested in and/or would stay in it and make every rate about 100 %.
    let nested_goal = q.filters.iter().any(|f| {
        !matches!(f, Filter::Condition(_))
            && !matches!(f, Filter::Not(inner) if matches!(**inner, Filter::Condition(_)))
            && f.own_conditions()
                .iter()
                .any(|c| c.dimension == Dimension::Goal)
    });
    for m in &q.metrics {
        if m.needs_goal() && !q.about_goals() {
            return Err(err(
                "metrics",
                format!("{} needs an event:goal dimension or filter", m.name()),
            ));
        }
        if m.needs_goal() && nested_goal {
            return Err(err(
                "metrics",
                format!(
                    "{} needs its event:goal filters at the top level (not inside and/or)",
                    m.name()
                ),
            ));
        }
        if !m.splits_by_goal() && q.dimensions.contains(&Dimension::Goal) {
            return Err(err(
                "metrics",
                format!(
                    "{} can't be split by event:goal; use visitors, visits, events, percentage, conversion_rate, group_conversion_rate, total_revenue or average_revenue",
                    m.name()
                ),
            ));
        }
    }
    let page_known = q.dimensions.contains(&Dimension::Page)
        || q.filters
            .iter()
            .flat_map(Filter::own_conditions)
            .any(|c| c.dimension == Dimension::Page);
    for m in [Metric::TimeOnPage, Metric::ScrollDepth] {
        if q.metrics.contains(&m) && !page_known {
            return Err(err(
                "metrics",
                format!("{} requires an event:page dimension or filter", m.name()),
            ));
        }
    }
    if q.metrics.contains(&Metric::Percentage) && q.dimensions.is_empty() {
        return Err(err("metrics", "percentage requires at least one dimension"));
    }
    if q.include.time_labels && q.time_dimension().is_none() {
        return Err(err("include.time_labels", "requires a time dimension"));
    }
    Ok(())
}

/// A date as `YYYY-MM-DD` between 1970 and 9999: chrono alone would accept signed
/// six-digit years, whose arithmetic overflows.
pub fn parse_date(s: &str, field: &str) -> Result<NaiveDate, QueryError> {
    let shaped = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .filter(|d| shaped && d.format("%Y").to_string().as_str() >= "1970")
        .ok_or_else(|| {
            err(
                field,
                format!("{s:?} is not a date (YYYY-MM-DD, 1970 or later)"),
            )
        })
}

pub fn parse_date_range(v: &Value) -> Result<DateRange, QueryError> {
    let field = "date_range";
    match v {
        Value::String(s) => Ok(match s.as_str() {
            "day" => DateRange::Day,
            "month" => DateRange::Month,
            "year" => DateRange::Year,
            "all" => DateRange::All,
            other => {
                let (n, unit) = other.split_at(
                    other
                        .find(|c: char| !c.is_ascii_digit())
                        .unwrap_or(other.len()),
                );
                let n: u32 = n.parse().map_err(|_| err(field, format!("unknown range {other:?}; use day, 7d, 30d, month, 6mo, 12mo, year, all or [from, to]")))?;
                match unit {
                    "d" if (1..=3660).contains(&n) => DateRange::LastDays(n),
                    "mo" if (1..=120).contains(&n) => DateRange::LastMonths(n),
                    _ => return Err(err(field, format!("unknown range {other:?}; use day, 7d, 30d, month, 6mo, 12mo, year, all or [from, to]"))),
                }
            }
        }),
        Value::Array(a) if a.len() == 2 => {
            let (from, to) = (a[0].as_str().unwrap_or(""), a[1].as_str().unwrap_or(""));
            if from.len() == 10 && to.len() == 10 {
                let (f, t) = (parse_date(from, field)?, parse_date(to, field)?);
                if f > t {
                    return Err(err(field, "starts after it ends"));
                }
                Ok(DateRange::Dates(f, t))
            } else {
                let p = |s: &str| {
                    DateTime::parse_from_rfc3339(s).map(|d| d.timestamp_millis()).map_err(|_| err(field, format!("{s:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 date-time")))
                };
                let (f, t) = (p(from)?, p(to)?);
                if f > t {
                    return Err(err(field, "starts after it ends"));
                }
                Ok(DateRange::Datetimes(f, t))
            }
        }
        _ => Err(err(
            field,
            "must be a string such as \"7d\" or a list [from, to]",
        )),
    }
}

fn parse_filter(
    v: &Value,
    field: &str,
    depth: usize,
    count: &mut usize,
) -> Result<Filter, QueryError> {
    if depth > MAX_FILTER_DEPTH {
        return Err(err(
            field,
            format!("filters nest deeper than {MAX_FILTER_DEPTH} levels"),
        ));
    }
    let a = v.as_array().ok_or_else(|| err(field, "a filter is a list: [operator, dimension, values] or [and|or, [filters]] or [not, filter]"))?;
    let op = a
        .first()
        .and_then(Value::as_str)
        .ok_or_else(|| err(field, "the first element must be an operator"))?;
    match op {
        "and" | "or" => {
            let subs = a
                .get(1)
                .and_then(Value::as_array)
                .filter(|s| !s.is_empty() && a.len() == 2)
                .ok_or_else(|| err(field, format!("{op} takes one non-empty list of filters")))?;
            let parsed = subs
                .iter()
                .enumerate()
                .map(|(i, f)| parse_filter(f, &format!("{field}[1][{i}]"), depth + 1, count))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if op == "and" {
                Filter::And(parsed)
            } else {
                Filter::Or(parsed)
            })
        }
        "has_done" | "has_not_done" => {
            let sub = a
                .get(1)
                .filter(|_| a.len() == 2)
                .ok_or_else(|| err(field, format!("{op} takes one filter")))?;
            let inner = parse_filter(sub, &format!("{field}[1]"), depth + 1, count)?;
            if inner.has_behaviour() || inner.conditions().iter().any(|c| !c.dimension.is_event()) {
                return Err(err(
                    field,
                    format!("{op} takes a filter on event dimensions (event:name, event:page, event:goal, event:hostname, event:props:*), not another behavioural filter"),
                ));
            }
            Ok(Filter::Behaviour(op == "has_done", Box::new(inner)))
        }
        "not" => {
            let sub = a
                .get(1)
                .filter(|_| a.len() == 2)
                .ok_or_else(|| err(field, "not takes one filter"))?;
            Ok(Filter::Not(Box::new(parse_filter(
                sub,
                &format!("{field}[1]"),
                depth + 1,
                count,
            )?)))
        }
        _ => {
            let op_parsed = Op::parse(op).ok_or_else(|| {
                err(field, format!("unknown operator {op:?}; valid: is, is_not, contains, contains_not, matches, matches_not, and, or, not, has_done, has_not_done"))
            })?;
            if !(3..=4).contains(&a.len()) {
                return Err(err(
                    field,
                    "a condition is [operator, dimension, values] with optional modifiers",
                ));
            }
            let dim_name = a[1]
                .as_str()
                .ok_or_else(|| err(field, "the dimension must be a string"))?;
            let dimension = Dimension::parse(dim_name)
                .ok_or_else(|| err(field, format!("unknown dimension {dim_name:?}")))?;
            if dimension.is_time() {
                return Err(err(
                    field,
                    "time dimensions can't be filtered; set date_range instead",
                ));
            }
            let values: Vec<String> = string_list(&a[2], &format!("{field}[2]"))?
                .into_iter()
                .map(str::to_string)
                .collect();
            if values.is_empty() || values.len() > MAX_FILTER_VALUES {
                return Err(err(
                    format!("{field}[2]"),
                    format!("give 1 to {MAX_FILTER_VALUES} values"),
                ));
            }
            if values.iter().any(|v| v.chars().count() > 2000) {
                return Err(err(
                    format!("{field}[2]"),
                    "values are at most 2000 characters",
                ));
            }
            let mut case_sensitive = true;
            if let Some(m) = a.get(3) {
                let m = m
                    .as_object()
                    .ok_or_else(|| err(format!("{field}[3]"), "modifiers must be an object"))?;
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("case_sensitive", Value::Bool(b)) => case_sensitive = *b,
                        _ => {
                            return Err(err(
                                format!("{field}[3]"),
                                format!("unknown modifier {k:?}; only case_sensitive (boolean)"),
                            ))
                        }
                    }
                }
            }
            if matches!(op_parsed, Op::Matches | Op::MatchesNot) {
                for (i, pattern) in values.iter().enumerate() {
                    check_regex(pattern, &format!("{field}[2][{i}]"))?;
                }
            }
            *count += 1;
            if *count > MAX_FILTER_CONDITIONS {
                return Err(err(
                    "filters",
                    format!("more than {MAX_FILTER_CONDITIONS} conditions"),
                ));
            }
            Ok(Filter::Condition(Condition {
                op: op_parsed,
                dimension,
                values,
                case_sensitive,
            }))
        }
    }
}

/// Regexes are run by the database (RE2, linear time); we still refuse long or huge ones
/// before they get there, using the same syntax family.
pub fn check_regex(pattern: &str, field: &str) -> Result<(), QueryError> {
    if pattern.len() > MAX_REGEX_LEN {
        return Err(err(
            field,
            format!("regex longer than {MAX_REGEX_LEN} characters"),
        ));
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(256 * 1024)
        .dfa_size_limit(256 * 1024)
        .build()
        .map(|_| ())
        .map_err(|e| {
            let msg = e.to_string();
            let first = msg.lines().last().unwrap_or("invalid").trim();
            err(field, format!("invalid or too large regex: {first}"))
        })
}

fn parse_include(v: Option<&Value>) -> Result<Include, QueryError> {
    let mut inc = Include::default();
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(inc);
    };
    let obj = v
        .as_object()
        .ok_or_else(|| err("include", "must be an object"))?;
    for (k, v) in obj {
        match (k.as_str(), v) {
            ("time_labels", Value::Bool(b)) => inc.time_labels = *b,
            ("total_rows", Value::Bool(b)) => inc.total_rows = *b,
            ("imports", Value::Bool(_)) => {}
            ("compare", Value::Null) => {}
            ("compare", Value::String(s)) => {
                inc.compare = Some(match s.as_str() {
                    "previous_period" => Comparison::PreviousPeriod,
                    "year_over_year" => Comparison::YearOverYear,
                    _ => return Err(err("include.compare", "previous_period or year_over_year")),
                })
            }
            _ => return Err(err(format!("include.{k}"), "unknown option or wrong type (time_labels, total_rows, imports: booleans; compare: previous_period | year_over_year)")),
        }
    }
    Ok(inc)
}

fn parse_pagination(v: Option<&Value>) -> Result<(usize, usize), QueryError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok((MAX_LIMIT, 0));
    };
    let obj = v
        .as_object()
        .ok_or_else(|| err("pagination", "must be an object {limit, offset}"))?;
    let get = |k: &str, default: u64| -> Result<u64, QueryError> {
        match obj.get(k) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .ok_or_else(|| err(format!("pagination.{k}"), "must be a non-negative integer")),
        }
    };
    if let Some(k) = obj.keys().find(|k| *k != "limit" && *k != "offset") {
        return Err(err(
            format!("pagination.{k}"),
            "unknown; use limit and offset",
        ));
    }
    let limit = get("limit", MAX_LIMIT as u64)?;
    if limit == 0 || limit > MAX_LIMIT as u64 {
        return Err(err("pagination.limit", format!("must be 1 to {MAX_LIMIT}")));
    }
    let offset = get("offset", 0)?;
    Ok((limit as usize, offset.min(u32::MAX as u64) as usize))
}

fn parse_order_by(
    v: Option<&Value>,
    metrics: &[Metric],
    dims: &[Dimension],
) -> Result<Vec<(OrderKey, Direction)>, QueryError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let items = v.as_array().ok_or_else(|| {
        err(
            "order_by",
            "must be a list of [metric_or_dimension, asc|desc]",
        )
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let field = format!("order_by[{i}]");
            let pair = item
                .as_array()
                .filter(|p| p.len() == 2)
                .ok_or_else(|| err(&field, "must be [metric_or_dimension, asc|desc]"))?;
            let name = pair[0]
                .as_str()
                .ok_or_else(|| err(&field, "the key must be a string"))?;
            let dir = match pair[1].as_str() {
                Some("asc") => Direction::Asc,
                Some("desc") => Direction::Desc,
                _ => return Err(err(&field, "direction must be asc or desc")),
            };
            if let Some(m) = Metric::parse(name).filter(|m| metrics.contains(m)) {
                return Ok((OrderKey::Metric(m), dir));
            }
            if let Some(d) = Dimension::parse(name).filter(|d| dims.contains(d)) {
                return Ok((OrderKey::Dimension(d), dir));
            }
            Err(err(
                &field,
                format!("{name:?} is not one of the query's metrics or dimensions"),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(v: Value) -> Result<Query, QueryError> {
        parse_v2(&v, chrono_tz::UTC)
    }

    #[test]
    fn full_query() {
        let q = p(json!({
            "site_id": "example.com", "date_range": ["2024-01-01", "2024-01-31"],
            "metrics": ["visitors", "pageviews", "percentage"], "dimensions": ["visit:country", "time:day"],
            "filters": [["is", "event:page", ["/a", "/b"]], ["not", ["contains", "visit:source", ["goo"], {"case_sensitive": false}]]],
            "order_by": [["visitors", "desc"], ["time:day", "asc"]],
            "include": {"total_rows": true, "time_labels": true, "compare": "previous_period"},
            "pagination": {"limit": 5, "offset": 10}
        }))
        .unwrap();
        assert_eq!(
            q.metrics,
            vec![Metric::Visitors, Metric::Pageviews, Metric::Percentage]
        );
        assert_eq!(q.dimensions[1], Dimension::Time(Some(TimeBucket::Day)));
        assert_eq!((q.limit, q.offset), (5, 10));
        assert_eq!(q.include.compare, Some(Comparison::PreviousPeriod));
        assert!(
            matches!(&q.filters[1], Filter::Not(f) if matches!(&**f, Filter::Condition(c) if !c.case_sensitive))
        );
    }

    #[test]
    fn every_rule_has_a_precise_error() {
        let base = json!({"site_id": "e.com", "date_range": "7d", "metrics": ["visitors"]});
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            p(b).unwrap_err()
        };
        let cases: Vec<(QueryError, &str, &str)> = vec![
            (p(json!([])).unwrap_err(), "query", "object"),
            (
                p(json!({"date_range": "7d", "metrics": ["visitors"]})).unwrap_err(),
                "site_id",
                "required",
            ),
            (with("metrics", json!([])), "metrics", "at least one"),
            (
                with("metrics", json!(["bogus"])),
                "metrics",
                "unknown metric",
            ),
            (
                with("metrics", json!(["conversion_rate"])),
                "metrics",
                "needs an event:goal",
            ),
            (
                p(json!({"site_id": "e.com", "date_range": "7d", "metrics": ["conversion_rate"],
                    "filters": [["and", [["is", "event:goal", ["X"]], ["is", "visit:country", ["DE"]]]]]}))
                .unwrap_err(),
                "metrics",
                "top level",
            ),
            (
                p(json!({"site_id": "e.com", "date_range": "7d", "metrics": ["time_on_page"],
                    "filters": [["has_done", ["is", "event:page", ["/x"]]]]}))
                .unwrap_err(),
                "metrics",
                "event:page",
            ),
            (
                p(json!({"site_id": "e.com", "date_range": "7d", "metrics": ["pageviews"], "dimensions": ["event:goal"]})).unwrap_err(),
                "metrics",
                "split by event:goal",
            ),
            (
                with("metrics", json!(["visitors", "visitors"])),
                "metrics",
                "twice",
            ),
            (
                with("dimensions", json!(["event:nope"])),
                "dimensions",
                "unknown dimension",
            ),
            (
                with("dimensions", json!(["time:day", "time:hour"])),
                "dimensions",
                "one time dimension",
            ),
            (
                with("date_range", json!("8x")),
                "date_range",
                "unknown range",
            ),
            (
                with("date_range", json!(["2024-02-01", "2024-01-01"])),
                "date_range",
                "starts after",
            ),
            (
                with("date_range", json!(["2024-13-01", "2024-01-01"])),
                "date_range",
                "not a date",
            ),
            (
                with("filters", json!([["equals", "event:page", ["/"]]])),
                "filters[0]",
                "unknown operator",
            ),
            (
                with("filters", json!([["is", "time:day", ["/"]]])),
                "filters[0]",
                "set date_range",
            ),
            (
                with("filters", json!([["is", "event:page", []]])),
                "filters[0][2]",
                "1 to 100",
            ),
            (
                with("filters", json!([["matches", "event:page", ["(a"]]])),
                "filters[0][2][0]",
                "regex",
            ),
            (
                with(
                    "filters",
                    json!([["matches", "event:page", ["a{1000}{1000}"]]]),
                ),
                "filters[0][2][0]",
                "regex",
            ),
            (
                with("filters", json!([["has_done", "event:page", ["/"]]])),
                "filters[0]",
                "takes one filter",
            ),
            (
                with(
                    "filters",
                    json!([["has_done", ["is", "visit:country", ["DE"]]]]),
                ),
                "filters[0]",
                "event dimensions",
            ),
            (
                with(
                    "filters",
                    json!([["has_done", ["has_not_done", ["is", "event:page", ["/"]]]]]),
                ),
                "filters[0]",
                "event dimensions",
            ),
            (
                with("filters", json!([["is", "event:page", ["/"], {"x": 1}]])),
                "filters[0][3]",
                "unknown modifier",
            ),
            (
                with("order_by", json!([["pageviews", "desc"]])),
                "order_by[0]",
                "not one of",
            ),
            (
                with("order_by", json!([["visitors", "up"]])),
                "order_by[0]",
                "asc or desc",
            ),
            (
                with("pagination", json!({"limit": 0})),
                "pagination.limit",
                "1 to",
            ),
            (
                with("include", json!({"time_labels": true})),
                "include.time_labels",
                "time dimension",
            ),
            (
                with("include", json!({"compare": "last_week"})),
                "include.compare",
                "previous_period",
            ),
            (with("bogus", json!(1)), "bogus", "unknown field"),
        ];
        for (e, field, needle) in cases {
            assert_eq!(e.field, field, "{e}");
            assert!(e.reason.contains(needle), "{e} should mention {needle:?}");
        }
    }

    #[test]
    fn extreme_dates_are_refused_not_overflowed() {
        let q = |range: Value, date: Option<&str>| {
            let mut v = json!({"site_id": "e.com", "date_range": range, "metrics": ["visitors"]});
            if let Some(d) = date {
                v["date"] = json!(d);
            }
            p(v)
        };
        assert_eq!(
            q(json!(["-99999-1-1", "+99999-1-1"]), None)
                .unwrap_err()
                .field,
            "date_range"
        );
        assert_eq!(
            q(json!("7d"), Some("-262143-01-01")).unwrap_err().field,
            "date"
        );
        assert_eq!(
            q(json!("7d"), Some("+262143-12-31")).unwrap_err().field,
            "date"
        );
        assert_eq!(
            q(json!(["1969-12-31", "1970-01-02"]), None)
                .unwrap_err()
                .field,
            "date_range"
        );
        assert!(q(json!(["1970-01-01", "9999-12-31"]), None).is_ok());
    }

    #[test]
    fn cross_field_rules() {
        let e = p(json!({"site_id": "e.com", "date_range": "7d", "metrics": ["bounce_rate"], "dimensions": ["event:page"]})).unwrap_err();
        assert!(e.reason.contains("visit metric"), "{e}");
        let e = p(json!({"site_id": "e.com", "date_range": "7d", "metrics": ["time_on_page"]}))
            .unwrap_err();
        assert!(e.reason.contains("event:page"), "{e}");
        assert!(p(json!({"site_id": "e.com", "date_range": "7d", "metrics": ["time_on_page"], "filters": [["is", "event:page", ["/"]]]})).is_ok());
        let e = p(json!({"site_id": "e.com", "date_range": "7d", "metrics": ["percentage"]}))
            .unwrap_err();
        assert!(e.reason.contains("dimension"), "{e}");
        assert!(p(json!({"site_id": "e.com", "date_range": "7d", "metrics": ["visits"], "dimensions": ["event:page"]})).is_ok(), "visits can be split by page");
    }

    #[test]
    fn hostile_filter_values_are_just_values() {
        let q = p(
            json!({"site_id": "e.com", "date_range": "7d", "metrics": ["visitors"],
            "filters": [["is", "event:page", ["'; DROP TABLE events; --", "\" OR 1=1", "\u{0}"]]]}),
        )
        .unwrap();
        assert_eq!(q.all_conditions()[0].values.len(), 3);
        let deep = (0..20).fold(json!(["is", "event:page", ["/"]]), |f, _| json!(["not", f]));
        assert!(p(json!({"site_id": "e.com", "date_range": "7d", "metrics": ["visitors"], "filters": [deep]})).unwrap_err().reason.contains("deeper"));
    }
}
