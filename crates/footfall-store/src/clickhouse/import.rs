//! Rows copied in from an embedded store (`footfall migrate`), exactly once across
//! interruptions. Each kind of row has a partition number of its own, above any log
//! partition, and is written in numbered chunks with the applier's mechanism: rows tagged
//! with the chunk, then a `log_applied` marker whose `id_base` field holds the copy's
//! cursor (the last id copied). A copy that stops anywhere resumes after the last marker,
//! its half-written chunk removed first.

use super::ChStore;
use crate::StoreError;
use serde_json::{Map, Value};

/// Events copied from an embedded store.
pub const MIGRATED_EVENTS: u16 = u16::MAX;
/// Visits (their current state) copied from an embedded store.
pub const MIGRATED_VISITS: u16 = u16::MAX - 1;
/// Rollup rows copied from an embedded store, and their `rollup_sites` rows.
pub const MIGRATED_ROLLUPS: u16 = u16::MAX - 2;
/// No rows: its markers' `id_base` holds a fingerprint of the copy's source, so a resumed
/// copy can tell that the source is still the one it began with; marker 1 is written
/// when the copy begins, 2 when it is done.
pub const MIGRATED_SOURCE: u16 = u16::MAX - 3;

const TABLES: [&str; 4] = ["events", "sessions", "rollups", "rollup_sites"];

impl ChStore {
    /// Where a copy into this connection's partition stands: chunks done and the cursor
    /// the last one recorded (0, 0 before the first).
    pub fn import_progress(&mut self) -> Result<(u64, u64), StoreError> {
        let done = self.recovered()?;
        let (_, cursor) = self.marker()?;
        Ok((done, cursor))
    }

    /// Writes chunk `n` — the one after the last done — as `rows` per table, then marks
    /// it done with `cursor`.
    pub fn import_chunk(
        &mut self,
        n: u64,
        cursor: u64,
        rows: Vec<(&str, Vec<Map<String, Value>>)>,
    ) -> Result<(), StoreError> {
        let done = self.recovered()?;
        if n != done + 1 {
            return Err(StoreError::Corrupt(format!(
                "import chunk {n} after chunk {done}: chunks go in order"
            )));
        }
        let result = (|| {
            for (table, rows) in rows {
                if !TABLES.contains(&table) {
                    return Err(StoreError::Corrupt(format!(
                        "no table {table} to import into"
                    )));
                }
                let mut body = Vec::new();
                for mut row in rows {
                    row.insert("log_part".into(), Value::from(self.part));
                    row.insert("log_pos".into(), Value::from(n));
                    serde_json::to_writer(&mut body, &row)
                        .map_err(|e| StoreError::Corrupt(format!("encoding a row: {e}")))?;
                    body.push(b'\n');
                }
                self.http.insert_json(table, body)?;
                self.stop_at(super::FlushStage::AfterEvents)?;
            }
            self.http.execute(&format!(
                "INSERT INTO log_applied (log_part, position, id_base) VALUES ({}, {n}, {cursor})",
                self.part
            ))
        })();
        match result {
            Ok(()) => {
                self.applied = Some(n);
                Ok(())
            }
            Err(e) => {
                self.applied = None;
                Err(e)
            }
        }
    }

    /// Stored events and current visits of `site`, all partitions (for checking a copy).
    pub fn row_counts(&self, site: &footfall_core::SiteId) -> Result<(u64, u64), StoreError> {
        let s = super::http::quote(site.as_str());
        let events = self
            .http
            .number(&format!("SELECT count() FROM events WHERE site = {s}"))?;
        let visits = self.http.number(&format!(
            "SELECT count() FROM (SELECT session_id FROM sessions WHERE site = {s} \
             GROUP BY session_id, version HAVING sum(sign) > 0)"
        ))?;
        Ok((events, visits))
    }
}
