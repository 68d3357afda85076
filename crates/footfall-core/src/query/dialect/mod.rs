//! The SQL dialects the planner writes: one query model, two engines. The planner calls
//! these for every function and every structure that differs; nothing else in it names an
//! engine.

mod clickhouse;
mod duckdb;

pub use clickhouse::ClickHouse;
pub use duckdb::DuckDb;

use super::plan::Sql;

/// The functions that differ between SQL engines.
pub trait Dialect {
    fn count_if(&self, cond: &str) -> String;
    fn uniq_if(&self, expr: &str, cond: &str) -> String;
    /// Distinct (id, day) pairs where `cond`: visitors under the day rule (see
    /// [`crate::rollup`]). `day` is an integer expression of 32 bits.
    fn uniq_pair_if(&self, id: &str, day: &str, cond: &str) -> String;
    /// The value of the property named by the next parameter, or NULL.
    fn prop_value(&self, alias: &str) -> String;
    /// Whether `expr` matches the regex in the next parameter.
    fn regex_match(&self, expr: &str) -> String;
    /// Whether `expr` starts with the next parameter.
    fn starts_with(&self, expr: &str) -> String;
    /// Whether `expr` contains the next parameter.
    fn contains(&self, expr: &str) -> String;
    fn lower(&self, expr: &str) -> String;
    fn to_text(&self, expr: &str) -> String;
    /// Integer division rounding down (both operands are non-negative here).
    fn int_div(&self, a: &str, b: &str) -> String;
    /// year × 12 + zero-based month of a local time given as epoch milliseconds.
    fn month_index(&self, local_ms: &str) -> String;
    /// A table `e` of (ts, visitor_id, name, k, pv): one row per property of each event
    /// but engagement events, the first value of each key, of the site (first parameter)
    /// in `[start, end)` (second and third); `scope` is a further condition on `events`
    /// (`AND …`, or empty).
    fn prop_rows(&self, scope: &str) -> String;
    /// The number of characters in `expr`.
    fn char_length(&self, expr: &str) -> String;
    /// `len` characters of `expr` (all the rest if None) from the `start`th (1-based).
    fn substr(&self, expr: &str, start: usize, len: Option<usize>) -> String;
    /// `expr` as a nullable double: every number a query returns.
    fn to_double(&self, expr: &str) -> String;
    /// A NULL double, for a column a part does not compute.
    fn null_double(&self) -> &'static str;

    // The structural differences: what one engine writes as a WITH clause, a correlated
    // subquery or a window function, another must write otherwise.

    /// Whether named subqueries are written in place, `(…) AS name`, at every use rather
    /// than once in a `WITH` clause (engines without common table expressions).
    fn inline_subqueries(&self) -> bool {
        false
    }
    /// The body of the relation of visits as they are now (see
    /// [`crate::query::plan::live_visits`]): the +1 rows of `sessions` for `site` whose
    /// version no −1 row cancelled, with `from <= start_ts < to` (no lower bound if None);
    /// `scope` is a further condition on `sessions` (`AND …`, or empty).
    fn live_visits(&self, site: &str, from: Option<i64>, to: i64, scope: &str) -> Sql;
    /// The body of a relation of the events matching `cond` (over `events e`), each with
    /// `nxt`: the time of the next of them in its visit (by time, then event id), NULL for
    /// the last.
    fn with_next(&self, cond: &Sql) -> Sql;
    /// The body of a relation of the rows of `events e` where `scope`, each repeated once
    /// per condition of `conds` it meets, with that condition's name as `goal_` (each
    /// condition's parameters are followed by one more: its name); rows meeting none are
    /// left out.
    fn events_per_name(&self, conds: &[String], scope: &str) -> String;
    /// An aggregate: the values of the integer `expr` in a group, in ascending order.
    fn sorted_list(&self, expr: &str) -> String;
    /// How many of `steps` funnel steps the list `list` reaches in order, each event
    /// serving one step at most. Each element's low 8 bits are its step mask (bit k: the
    /// event is step k + 1); the bits above only order the list.
    fn steps_in_order(&self, list: &str, steps: usize) -> String;
}
