//! DuckDB: the embedded engine. Common table expressions, `FILTER` clauses, window
//! functions and list functions.

use super::Dialect;
use crate::query::plan::{Param, Sql};

pub struct DuckDb;

impl Dialect for DuckDb {
    fn to_double(&self, expr: &str) -> String {
        format!("CAST({expr} AS DOUBLE)")
    }
    fn null_double(&self) -> &'static str {
        "CAST(NULL AS DOUBLE)"
    }
    fn live_visits(&self, site: &str, from: Option<i64>, to: i64, scope: &str) -> Sql {
        // Both rows of a cancelled version carry the same start, so bounding the start on
        // both sides keeps every pair whole, and spares the anti-join the site's other
        // visits.
        let bounds = if from.is_some() {
            "start_ts >= ? AND {a}.start_ts < ?"
        } else {
            "start_ts < ?"
        };
        let mut s = Sql::default();
        s.push(&format!(
            "SELECT * FROM sessions x WHERE x.site = ? AND x.{} AND x.sign = 1{} AND NOT EXISTS (\
             SELECT 1 FROM sessions y WHERE y.site = x.site AND y.{} AND y.session_id = x.session_id \
             AND y.version = x.version AND y.sign = -1)",
            bounds.replace("{a}", "x"),
            scope,
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
    fn with_next(&self, cond: &Sql) -> Sql {
        let mut s = Sql::default();
        s.push("SELECT e.*, lead(e.ts) OVER (PARTITION BY e.session_id ORDER BY e.ts, e.event_id) AS nxt FROM events e WHERE ")
            .append(cond.clone());
        s
    }
    fn starts_with(&self, expr: &str) -> String {
        format!("starts_with({expr}, ?)")
    }
    fn events_per_name(&self, conds: &[String], scope: &str) -> String {
        let names: Vec<String> = conds
            .iter()
            .map(|c| format!("CASE WHEN {c} THEN CAST(? AS VARCHAR) END"))
            .collect();
        format!(
            "SELECT e.*, unnest(list_filter([{}], lambda x: x IS NOT NULL)) AS goal_ FROM events e WHERE {scope}",
            names.join(", ")
        )
    }
    fn sorted_list(&self, expr: &str) -> String {
        // Sorting each small list costs far less than an ordered aggregate, which sorts
        // the whole input.
        format!("list_sort(list({expr}))")
    }
    fn steps_in_order(&self, list: &str, steps: usize) -> String {
        // A fold from 0 steps reached: an event with the next step's bit moves it on (the
        // bits past the last step's belong to the order key, so the fold stops there).
        format!(
            "list_reduce(list_prepend(CAST(0 AS BIGINT), {list}), \
             lambda acc, x: CASE WHEN acc < {steps} AND (x >> acc) & 1 = 1 THEN acc + 1 ELSE acc END)"
        )
    }
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
    fn prop_rows(&self, scope: &str) -> String {
        format!(
            "(SELECT x.ts, x.visitor_id, x.name, x.prop_keys[x.i] AS k, x.prop_values[x.i] AS pv FROM \
             (SELECT ts, visitor_id, name, prop_keys, prop_values, unnest(generate_series(1, len(prop_keys))) AS i \
              FROM events WHERE site = ? AND ts >= ? AND ts < ? AND name <> 'engagement' AND len(prop_keys) > 0{scope}) x \
             WHERE list_position(x.prop_keys, x.prop_keys[x.i]) = x.i) e"
        )
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
