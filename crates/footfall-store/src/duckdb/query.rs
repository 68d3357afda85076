//! Running planned read queries.

use super::DuckStore;
use crate::event_store::QueryRow;
use crate::StoreError;
use ::duckdb::types::Value;
use footfall_core::query::plan::{Param, SqlQuery};

impl DuckStore {
    pub fn run_query(&self, q: &SqlQuery) -> Result<Vec<QueryRow>, StoreError> {
        let params: Vec<Value> = q
            .params
            .iter()
            .map(|p| match p {
                Param::Text(s) => Value::Text(s.clone()),
                Param::Int(i) => Value::BigInt(*i),
            })
            .collect();
        let started = std::time::Instant::now();
        let mut stmt = self.conn.prepare(&q.sql)?;
        let mut rows = stmt.query(::duckdb::params_from_iter(params.iter()))?;
        let width = q.part.width();
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut dims = Vec::with_capacity(q.dimensions);
            for i in 0..q.dimensions {
                dims.push(r.get::<_, Option<String>>(i)?.unwrap_or_default());
            }
            let mut nums = Vec::with_capacity(width);
            for i in 0..width {
                nums.push(r.get::<_, Option<f64>>(q.dimensions + i)?);
            }
            out.push((dims, nums));
        }
        // Which part took how long, with its SQL: what a slow dashboard is profiled from.
        tracing::debug!(part = ?q.part, rollups = q.from_rollups(), ms = started.elapsed().as_secs_f64() * 1e3, rows = out.len(), sql = %q.sql, params = ?q.params, "query");
        Ok(out)
    }
}
