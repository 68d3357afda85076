//! Reading the embedded store out whole, for `footfall migrate`: stored events, the current
//! state of every visit, and a site's rollups, each row as a JSON object named by column
//! (the cluster's tables use the same names), in a stable order a resumed copy can continue.

use super::DuckStore;
use crate::StoreError;
use ::duckdb::types::Value as Db;
use footfall_core::SiteId;
use serde_json::{Map, Number, Value};

/// One exported row: column name → value.
pub type Row = Map<String, Value>;

fn json(v: Db) -> Value {
    match v {
        Db::Null => Value::Null,
        // ClickHouse takes UInt8 for booleans.
        Db::Boolean(b) => Value::from(u8::from(b)),
        Db::TinyInt(n) => Value::from(n),
        Db::SmallInt(n) => Value::from(n),
        Db::Int(n) => Value::from(n),
        Db::BigInt(n) => Value::from(n),
        Db::UTinyInt(n) => Value::from(n),
        Db::USmallInt(n) => Value::from(n),
        Db::UInt(n) => Value::from(n),
        Db::UBigInt(n) => Value::from(n),
        Db::Float(f) => Number::from_f64(f64::from(f)).map_or(Value::Null, Value::Number),
        Db::Double(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Db::Text(s) => Value::String(s),
        Db::List(items) => Value::Array(items.into_iter().map(json).collect()),
        other => Value::String(format!("{other:?}")),
    }
}

impl DuckStore {
    fn export(&self, sql: &str, params: &[&dyn ::duckdb::ToSql]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.conn.prepare(sql)?;
        let mut rows = stmt.query(params)?;
        let names: Vec<String> = rows.as_ref().map(|s| s.column_names()).unwrap_or_default();
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut row = Map::new();
            for (i, name) in names.iter().enumerate() {
                row.insert(name.clone(), json(r.get::<_, Db>(i)?));
            }
            out.push(row);
        }
        Ok(out)
    }

    /// Up to `limit` stored events with ids above `after`, in id order.
    pub fn export_events(&self, after: u64, limit: usize) -> Result<Vec<Row>, StoreError> {
        self.export(
            "SELECT * FROM events WHERE event_id > ? ORDER BY event_id LIMIT ?",
            &[&after, &(limit as u64)],
        )
    }

    /// The current state (the +1 row of the version whose signs sum to +1) of up to
    /// `limit` visits with ids above `after`, in id order.
    pub fn export_visits(&self, after: u64, limit: usize) -> Result<Vec<Row>, StoreError> {
        self.export(
            "SELECT * FROM sessions s WHERE s.sign = 1 AND s.session_id > ? AND (s.session_id, s.version) IN \
             (SELECT session_id, version FROM sessions WHERE session_id > ? GROUP BY session_id, version HAVING sum(sign) > 0) \
             ORDER BY s.session_id LIMIT ?",
            &[&after, &after, &(limit as u64)],
        )
    }

    /// Every rollup row of `site`.
    pub fn export_rollups(&self, site: &SiteId) -> Result<Vec<Row>, StoreError> {
        self.export(
            "SELECT * FROM rollups WHERE site = ? ORDER BY grain, dim, bucket, value",
            &[&site.as_str()],
        )
    }

    /// How many events and current visits `site` has.
    pub fn row_counts(&self, site: &SiteId) -> Result<(u64, u64), StoreError> {
        let events: i64 = self.conn.query_row(
            "SELECT count(*) FROM events WHERE site = ?",
            [site.as_str()],
            |r| r.get(0),
        )?;
        let visits: i64 = self.conn.query_row(
            "SELECT count(*) FROM (SELECT session_id FROM sessions WHERE site = ? GROUP BY session_id, version HAVING sum(sign) > 0)",
            [site.as_str()],
            |r| r.get(0),
        )?;
        Ok((events as u64, visits as u64))
    }

    /// How many events have ids up to `id`, and how many visits ids up to `session` (a
    /// resumed copy's progress).
    pub fn exported_through(&self, id: u64, session: u64) -> Result<(u64, u64), StoreError> {
        let events: i64 = self.conn.query_row(
            "SELECT count(*) FROM events WHERE event_id <= ?",
            [id],
            |r| r.get(0),
        )?;
        let visits: i64 = self.conn.query_row(
            "SELECT count(*) FROM (SELECT session_id FROM sessions WHERE session_id <= ? GROUP BY session_id, version HAVING sum(sign) > 0)",
            [session],
            |r| r.get(0),
        )?;
        Ok((events as u64, visits as u64))
    }

    /// The number of stored events and of visits, all sites (for progress).
    pub fn totals(&self) -> Result<(u64, u64), StoreError> {
        let events: i64 = self
            .conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
        let visits: i64 = self.conn.query_row(
            "SELECT count(*) FROM (SELECT session_id FROM sessions GROUP BY session_id, version HAVING sum(sign) > 0)",
            [],
            |r| r.get(0),
        )?;
        Ok((events as u64, visits as u64))
    }
}
