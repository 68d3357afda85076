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
    /// Runs `sql` and hands its rows to `each` in chunks of `chunk`, streaming: one scan,
    /// however many chunks (a query per chunk would sort the table again each time).
    fn export_chunks(
        &self,
        sql: &str,
        params: &[&dyn ::duckdb::ToSql],
        chunk: usize,
        each: &mut dyn FnMut(Vec<Row>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare(sql)?;
        let mut rows = stmt.query(params)?;
        let names: Vec<String> = rows.as_ref().map(|s| s.column_names()).unwrap_or_default();
        let mut out = Vec::with_capacity(chunk.clamp(1, 65_536));
        while let Some(r) = rows.next()? {
            let mut row = Map::new();
            for (i, name) in names.iter().enumerate() {
                row.insert(name.clone(), json(r.get::<_, Db>(i)?));
            }
            out.push(row);
            if out.len() >= chunk.max(1) {
                each(std::mem::take(&mut out))?;
            }
        }
        if !out.is_empty() {
            each(out)?;
        }
        Ok(())
    }

    fn export(&self, sql: &str, params: &[&dyn ::duckdb::ToSql]) -> Result<Vec<Row>, StoreError> {
        let mut all = Vec::new();
        self.export_chunks(sql, params, usize::MAX, &mut |rows| {
            all.extend(rows);
            Ok(())
        })?;
        Ok(all)
    }

    /// Stored events with ids above `after`, in id order, in chunks of `chunk`.
    pub fn export_events(
        &self,
        after: u64,
        chunk: usize,
        each: &mut dyn FnMut(Vec<Row>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.export_chunks(
            "SELECT * FROM events WHERE event_id > ? ORDER BY event_id",
            &[&after],
            chunk,
            each,
        )
    }

    /// The current state (the +1 row of the version whose signs sum to +1) of the visits
    /// with ids above `after`, in id order, in chunks of `chunk`.
    pub fn export_visits(
        &self,
        after: u64,
        chunk: usize,
        each: &mut dyn FnMut(Vec<Row>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.export_chunks(
            "SELECT * FROM sessions s WHERE s.sign = 1 AND s.session_id > ? AND (s.session_id, s.version) IN \
             (SELECT session_id, version FROM sessions WHERE session_id > ? GROUP BY session_id, version HAVING sum(sign) > 0) \
             ORDER BY s.session_id",
            &[&after, &after],
            chunk,
            each,
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
        self.exported_through(u64::MAX, u64::MAX)
    }
}
