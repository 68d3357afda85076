//! The storage side of the log: committed records become rows, in one transaction that also
//! records the last applied log position, so applying is idempotent and a crash at any
//! point replays exactly the records after that position.

use super::DuckStore;
use crate::log::LogPosition;
use crate::StoreError;
use ::duckdb::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, Int8Array, ListBuilder, StringArray,
    StringBuilder, UInt32Array, UInt64Array, UInt8Array,
};
use ::duckdb::arrow::record_batch::RecordBatch;
use ::duckdb::params;
use footfall_core::identify::{SessionAttrs, SessionRow};
use footfall_core::record::{CommitRecord, Entry};
use footfall_core::SessionId;
use std::sync::Arc;

impl DuckStore {
    /// The last log position applied, and the base for event ids.
    pub fn applied(&self) -> Result<(LogPosition, u64), StoreError> {
        let (pos, base): (u64, u64) = self.conn.query_row(
            "SELECT position, id_base FROM log_applied WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((LogPosition(pos), base))
    }

    /// Writes every record after the applied position, atomically with the new position;
    /// records at or before it are skipped (already stored). Returns the position reached.
    pub fn apply_records(
        &mut self,
        records: &[(LogPosition, CommitRecord)],
    ) -> Result<LogPosition, StoreError> {
        let t0 = std::time::Instant::now();
        let tx = self.conn.transaction()?;
        let applied: u64 =
            tx.query_row("SELECT position FROM log_applied WHERE id = 1", [], |r| {
                r.get(0)
            })?;
        let fresh: Vec<&(LogPosition, CommitRecord)> =
            records.iter().filter(|(p, _)| p.0 > applied).collect();
        // Records must continue the applied position without a gap: a skipped record would
        // be lost for good once the position moves past it.
        for (i, (p, _)) in fresh.iter().enumerate() {
            if p.0 != applied + 1 + i as u64 {
                return Err(StoreError::Corrupt(format!(
                    "log record {} given to storage after position {}: records must be applied in order without gaps",
                    p.0,
                    applied + i as u64
                )));
            }
        }
        let Some(last) = fresh.last().map(|(p, _)| *p) else {
            return Ok(LogPosition(applied));
        };
        let events = events_batch(&fresh)?;
        let sessions = sessions_batch(&fresh)?;
        let (n_events, n_sessions) = (events.num_rows(), sessions.num_rows());
        let keep = self.keep_rollups;
        let keeping = &mut self.rollups;
        let mut phases = [0u64; 3];
        let written = (|| -> Result<usize, StoreError> {
            // Rollup deltas first: the keeper reads back days as storage holds them before
            // this transaction's rows.
            let records: Vec<&CommitRecord> = fresh.iter().map(|(_, r)| r).collect();
            let t = std::time::Instant::now();
            let deltas = if keep {
                super::rollups::deltas_for(&tx, keeping, &records)?
            } else {
                Default::default()
            };
            phases[0] = t.elapsed().as_micros() as u64;
            let t = std::time::Instant::now();
            {
                let mut app = tx.appender("events_hot")?;
                app.append_record_batch(events)?;
                app.flush()?;
                let mut app = tx.appender("sessions_hot")?;
                app.append_record_batch(sessions)?;
                app.flush()?;
            }
            phases[1] = t.elapsed().as_micros() as u64;
            let t = std::time::Instant::now();
            let n = super::rollups::add(&tx, &deltas)?;
            phases[2] = t.elapsed().as_micros() as u64;
            tx.execute(
                "UPDATE log_applied SET position = ? WHERE id = 1",
                params![last.0],
            )?;
            tx.commit()?;
            Ok(n)
        })();
        let n_rollups = match written {
            Ok(n) => n,
            Err(e) => {
                // The keeper already counted this batch's visitors, which storage doesn't
                // hold: start over from storage.
                self.rollups.clear();
                return Err(e);
            }
        };
        self.rollups.applied(fresh.iter().map(|(_, r)| r));
        tracing::debug!(
            records = fresh.len(),
            events = n_events,
            session_rows = n_sessions,
            rollup_rows = n_rollups,
            deltas_us = phases[0],
            append_us = phases[1],
            rollup_write_us = phases[2],
            position = last.0,
            committed_us = t0.elapsed().as_micros() as u64,
            "applied"
        );
        Ok(last)
    }

    /// The highest event id stored.
    pub fn max_event_id(&self) -> Result<u64, StoreError> {
        let v: Option<u64> = self
            .conn
            .query_row("SELECT max(event_id) FROM events", [], |r| r.get(0))?;
        Ok(v.unwrap_or(0))
    }

    pub fn count_events(&self, site: &str) -> Result<u64, StoreError> {
        let v: i64 =
            self.conn
                .query_row("SELECT count(*) FROM events WHERE site = ?", [site], |r| {
                    r.get(0)
                })?;
        Ok(v as u64)
    }
}

type Fresh<'a> = [&'a (LogPosition, CommitRecord)];

fn text<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn arrow_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("building a columnar batch: {e}"))
}

/// The stored events of `fresh` as one columnar batch, columns in the `events` table's
/// order (DuckDB appends Arrow batches by position).
fn events_batch(fresh: &Fresh<'_>) -> Result<RecordBatch, StoreError> {
    let mut rows: Vec<(&Entry, SessionId, &SessionAttrs)> = Vec::new();
    for (_, rec) in fresh {
        for (e, attrs) in rec.stored_with_attrs() {
            let (Some(session), Some(v)) = (e.session, attrs) else {
                return Err(StoreError::Corrupt(format!(
                    "stored event {} has no visit",
                    e.id.0
                )));
            };
            rows.push((e, session, v));
        }
    }
    let ev = |f: fn(&Entry) -> &str| text(rows.iter().map(|(e, _, _)| f(e)));
    // The visit's attributes, by their index in `SessionAttrs::COLUMNS`.
    let visit = |i: usize| text(rows.iter().map(|(_, _, v)| v.value(i)));
    let props = |value: bool| -> ArrayRef {
        let mut b = ListBuilder::new(StringBuilder::new());
        for (e, _, _) in &rows {
            for (k, v) in &e.event.props {
                b.values().append_value(if value { v } else { k });
            }
            b.append(true);
        }
        Arc::new(b.finish())
    };
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(rows.iter().map(|(e, _, _)| e.id.0).collect::<UInt64Array>()),
        ev(|e| e.event.site.as_str()),
        Arc::new(
            rows.iter()
                .map(|(e, _, _)| e.event.ts.0)
                .collect::<Int64Array>(),
        ),
        ev(|e| &e.event.name),
        Arc::new(
            rows.iter()
                .map(|(e, _, _)| e.visitor.0)
                .collect::<UInt64Array>(),
        ),
        Arc::new(rows.iter().map(|(_, s, _)| s.0).collect::<UInt64Array>()),
        ev(|e| &e.event.hostname),
        ev(|e| &e.event.pathname),
        Arc::new(
            rows.iter()
                .map(|(e, _, _)| e.event.title.as_deref())
                .collect::<StringArray>(),
        ),
        Arc::new(
            rows.iter()
                .map(|(e, _, _)| e.event.page_type.as_deref())
                .collect::<StringArray>(),
        ),
    ];
    // referrer … city: the visit's attributes after its hostname.
    columns.extend((1..=10).map(visit));
    columns.push(Arc::new(
        rows.iter()
            .map(|(e, _, _)| e.event.geo.latitude)
            .collect::<Float64Array>(),
    ));
    columns.push(Arc::new(
        rows.iter()
            .map(|(e, _, _)| e.event.geo.longitude)
            .collect::<Float64Array>(),
    ));
    // browser … device.
    columns.extend((11..SessionAttrs::COLUMNS.len()).map(visit));
    let json: Vec<String> = rows
        .iter()
        .map(|(e, _, _)| props_json(&e.event.props))
        .collect();
    columns.push(text(json.iter().map(String::as_str)));
    columns.push(Arc::new(
        rows.iter()
            .map(|(e, _, _)| e.event.scroll_depth)
            .collect::<UInt8Array>(),
    ));
    columns.push(Arc::new(
        rows.iter()
            .map(|(e, _, _)| e.event.engaged_ms)
            .collect::<UInt64Array>(),
    ));
    columns.push(Arc::new(
        rows.iter()
            .map(|(e, _, _)| Some(e.event.interactive))
            .collect::<BooleanArray>(),
    ));
    columns.push(props(false));
    columns.push(props(true));
    columns.push(Arc::new(
        rows.iter()
            .map(|(e, _, _)| e.event.revenue.map(|r| r.amount.0))
            .collect::<Int64Array>(),
    ));
    columns.push(Arc::new(
        rows.iter()
            .map(|(e, _, _)| e.event.revenue.map(|r| r.currency.to_string()))
            .collect::<StringArray>(),
    ));
    batch(columns)
}

/// The visit changes of `fresh` as collapsing rows (−1 old state, +1 new), columns in the
/// `sessions` table's order.
fn sessions_batch(fresh: &Fresh<'_>) -> Result<RecordBatch, StoreError> {
    let rows: Vec<(i8, &SessionRow)> = fresh
        .iter()
        .flat_map(|(_, rec)| &rec.visits)
        .flat_map(|c| {
            c.before
                .iter()
                .map(|r| (-1i8, r))
                .chain(std::iter::once((1i8, &c.after)))
        })
        .collect();
    let u64s = |f: fn(&SessionRow) -> u64| -> ArrayRef {
        Arc::new(rows.iter().map(|(_, r)| f(r)).collect::<UInt64Array>())
    };
    let i64s = |f: fn(&SessionRow) -> i64| -> ArrayRef {
        Arc::new(rows.iter().map(|(_, r)| f(r)).collect::<Int64Array>())
    };
    let u32s = |f: fn(&SessionRow) -> u32| -> ArrayRef {
        Arc::new(rows.iter().map(|(_, r)| f(r)).collect::<UInt32Array>())
    };
    let mut columns: Vec<ArrayRef> = vec![
        text(rows.iter().map(|(_, r)| r.site.as_str())),
        u64s(|r| r.session.0),
        u64s(|r| r.visitor.0),
        Arc::new(rows.iter().map(|(sign, _)| *sign).collect::<Int8Array>()),
        u64s(|r| r.version),
        i64s(|r| r.start.0),
        i64s(|r| r.end.0),
        i64s(|r| r.duration_ms()),
        text(rows.iter().map(|(_, r)| &*r.entry_page)),
        text(rows.iter().map(|(_, r)| &*r.exit_page)),
        u32s(|r| r.pageviews),
        u32s(|r| r.events),
        Arc::new(
            rows.iter()
                .map(|(_, r)| Some(r.is_bounce))
                .collect::<BooleanArray>(),
        ),
    ];
    columns.extend(
        (0..SessionAttrs::COLUMNS.len()).map(|i| text(rows.iter().map(|(_, r)| r.attrs.value(i)))),
    );
    batch(columns)
}

pub(super) fn batch(columns: Vec<ArrayRef>) -> Result<RecordBatch, StoreError> {
    RecordBatch::try_from_iter(
        columns
            .into_iter()
            .enumerate()
            .map(|(i, c)| (format!("c{i}"), c)),
    )
    .map_err(arrow_err)
}

fn props_json(props: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = props
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}
