//! ClickHouse: the cluster's engine, written to the subset that both Debian's 18.16 and
//! current releases run. 18.16 has no common table expressions, no window functions and no
//! correlated subqueries, so named subqueries are written in place, a visit's current
//! state is found by grouping its collapsing rows, and the next page view comes from a
//! per-visit array.

use super::Dialect;
use crate::identify::SessionAttrs;
use crate::query::plan::{Param, Sql};

pub struct ClickHouse;

/// The columns of `sessions` besides site, sign and version.
const VISIT_COLUMNS: [&str; 10] = [
    "session_id",
    "visitor_id",
    "start_ts",
    "end_ts",
    "duration_ms",
    "entry_page",
    "exit_page",
    "pageviews",
    "events",
    "is_bounce",
];

impl Dialect for ClickHouse {
    fn starts_with(&self, expr: &str) -> String {
        format!("startsWith({expr}, ?)")
    }
    fn events_per_name(&self, conds: &[String], scope: &str) -> String {
        // Names are never empty (goals are validated), so '' means "not this one"; a
        // condition on a missing property is NULL, which is no.
        let names: Vec<String> = conds
            .iter()
            .map(|c| format!("if(ifNull({c}, 0), toString(?), '')"))
            .collect();
        format!(
            "SELECT *, goal_ FROM events AS e ARRAY JOIN arrayFilter(x -> x != '', [{}]) AS goal_ WHERE {scope}",
            names.join(", ")
        )
    }
    fn sorted_list(&self, expr: &str) -> String {
        format!("arraySort(groupArray({expr}))")
    }
    fn steps_in_order(&self, list: &str, steps: usize) -> String {
        // No fold in 18.16: the position of each step's event, the first after the last
        // step's (0: not reached), each named in place for the next to read.
        (0..steps)
            .map(|k| {
                let after = if k == 0 {
                    String::new()
                } else {
                    format!("fs{k} > 0 AND i > fs{k} AND ")
                };
                format!(
                    "((arrayFirstIndex((x, i) -> {after}bitAnd(x, {}) > 0, {list}, arrayEnumerate({list})) AS fs{}) > 0)",
                    1u64 << k,
                    k + 1
                )
            })
            .collect::<Vec<_>>()
            .join(" + ")
    }
    fn count_if(&self, cond: &str) -> String {
        format!("countIf({cond})")
    }
    fn uniq_if(&self, expr: &str, cond: &str) -> String {
        format!("uniqExactIf({expr}, {cond})")
    }
    fn uniq_pair_if(&self, id: &str, day: &str, cond: &str) -> String {
        format!("uniqExactIf(({id}, {day}), {cond})")
    }
    fn prop_value(&self, alias: &str) -> String {
        // A missing key indexes 0, which reads as ''; stored values are never empty (the
        // decoders drop empty properties), so '' means "no such property".
        format!("nullIf({alias}.prop_values[indexOf({alias}.prop_keys, ?)], '')")
    }
    fn regex_match(&self, expr: &str) -> String {
        format!("match({expr}, ?)")
    }
    fn contains(&self, expr: &str) -> String {
        format!("(position({expr}, ?) > 0)")
    }
    fn lower(&self, expr: &str) -> String {
        format!("lowerUTF8({expr})")
    }
    fn to_text(&self, expr: &str) -> String {
        format!("toString({expr})")
    }
    fn int_div(&self, a: &str, b: &str) -> String {
        format!("intDiv({a}, {b})")
    }
    fn month_index(&self, local_ms: &str) -> String {
        let t = format!("toDateTime(intDiv({local_ms}, 1000), 'UTC')");
        format!("(toYear({t}) * 12 + toMonth({t}) - 1)")
    }
    fn prop_rows(&self, scope: &str) -> String {
        format!(
            "(SELECT ts, visitor_id, name, k, pv FROM events ARRAY JOIN prop_keys AS k, prop_values AS pv, \
             arrayEnumerate(prop_keys) AS i WHERE site = ? AND ts >= ? AND ts < ? AND name <> 'engagement' \
             AND indexOf(prop_keys, k) = i{scope}) e"
        )
    }
    fn char_length(&self, expr: &str) -> String {
        format!("lengthUTF8({expr})")
    }
    fn substr(&self, expr: &str, start: usize, len: Option<usize>) -> String {
        match len {
            Some(n) => format!("substringUTF8({expr}, {start}, {n})"),
            None => format!("substringUTF8({expr}, {start}, 1048576)"),
        }
    }
    fn to_double(&self, expr: &str) -> String {
        format!("CAST({expr} AS Nullable(Float64))")
    }
    fn null_double(&self) -> &'static str {
        "CAST(NULL AS Nullable(Float64))"
    }
    fn inline_subqueries(&self) -> bool {
        true
    }
    fn live_visits(&self, site: &str, from: Option<i64>, to: i64, scope: &str) -> Sql {
        // The rows of one (visit, version) are a +1 and, once the visit changed again, a
        // −1 that is its exact copy; whatever merges have run, the versions whose signs sum
        // above zero are the current ones, and `any` reads their columns. No FINAL: merging
        // at read time would cost every query the whole table's merge.
        let mut cols: Vec<String> = VISIT_COLUMNS[1..]
            .iter()
            .chain(SessionAttrs::COLUMNS.iter())
            .map(|c| format!("any({c}) AS {c}"))
            .collect();
        cols.insert(0, "session_id".into());
        let mut s = Sql::default();
        // Filtered in a subquery: ClickHouse's aliases are visible in WHERE, where
        // `start_ts` would mean `any(start_ts)`.
        s.push(&format!(
            "SELECT {} FROM (SELECT * FROM sessions WHERE site = ?",
            cols.join(", ")
        ))
        .bind(Param::Text(site.to_string()));
        if let Some(from) = from {
            s.push(" AND start_ts >= ?").bind(Param::Int(from));
        }
        s.push(" AND start_ts < ?")
            .bind(Param::Int(to))
            .push(scope)
            .push(") GROUP BY session_id, version HAVING sum(sign) > 0");
        s
    }
    fn with_next(&self, cond: &Sql) -> Sql {
        // Per visit, its events sorted by (ts, event id); each paired with its successor's
        // time (0 for the last: no event is at the epoch), then joined back by visit and
        // event id — event ids alone repeat between a cluster's partition 0 and the rows
        // copied from an embedded store, which numbered theirs from the same base.
        let mut s = Sql::default();
        s.push(
            "SELECT e.*, nullIf(n.next_ts, 0) AS nxt FROM events e JOIN (\
             SELECT visit, tupleElement(p, 1) AS event_id, tupleElement(p, 2) AS next_ts FROM (\
             SELECT visit, arrayJoin(arrayMap(i -> (tupleElement(o[i], 2), if(i < length(o), tupleElement(o[i + 1], 1), toInt64(0))), arrayEnumerate(o))) AS p \
             FROM (SELECT e.session_id AS visit, arraySort(groupArray((e.ts, e.event_id))) AS o FROM events e WHERE ",
        )
        .append(cond.clone())
        .push(" GROUP BY e.session_id))) AS n ON n.event_id = e.event_id AND n.visit = e.session_id WHERE ")
        .append(cond.clone());
        s
    }
}
