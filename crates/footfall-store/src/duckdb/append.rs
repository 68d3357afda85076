//! Group commit: one transaction per batch, rows added with DuckDB's Appender.

use super::DuckStore;
use crate::{EventRow, SessionChange, StoreError};
use ::duckdb::params;

impl DuckStore {
    /// Writes a batch atomically: either every row is durable when this returns Ok, or
    /// none is.
    pub fn commit(
        &mut self,
        events: &[EventRow<'_>],
        sessions: &[SessionChange<'_>],
    ) -> Result<(), StoreError> {
        let t0 = std::time::Instant::now();
        let tx = self.conn.transaction()?;
        let t_app;
        let t_flush;
        {
            let mut app = tx.appender("events")?;
            t_app = t0.elapsed();
            for r in events {
                let e = r.event;
                let v = r.visit;
                let props = props_json(&e.props);
                let keys = ::duckdb::types::Value::List(
                    e.props
                        .iter()
                        .map(|(k, _)| ::duckdb::types::Value::Text(k.clone()))
                        .collect(),
                );
                let values = ::duckdb::types::Value::List(
                    e.props
                        .iter()
                        .map(|(_, v)| ::duckdb::types::Value::Text(v.clone()))
                        .collect(),
                );
                app.append_row(params![
                    r.id.0,
                    e.site.as_str(),
                    e.ts.0,
                    e.name,
                    r.visitor.0,
                    r.session.0,
                    e.hostname,
                    e.pathname,
                    e.title,
                    e.page_type,
                    v.referrer,
                    v.referrer_source,
                    v.utm.source,
                    v.utm.medium,
                    v.utm.campaign,
                    v.utm.content,
                    v.utm.term,
                    v.country,
                    v.region,
                    v.city,
                    e.geo.latitude,
                    e.geo.longitude,
                    v.browser,
                    v.browser_version,
                    v.os,
                    v.os_version,
                    v.device,
                    props,
                    e.scroll_depth,
                    e.engaged_ms,
                    e.interactive,
                    keys,
                    values,
                ])?;
            }
            app.flush()?;
            let mut app = tx.appender("sessions")?;
            for c in sessions {
                let s = c.row;
                let a = &s.attrs;
                app.append_row(params![
                    s.site.as_str(),
                    s.session.0,
                    s.visitor.0,
                    c.sign,
                    s.version,
                    s.start.0,
                    s.end.0,
                    s.duration_ms(),
                    s.entry_page,
                    s.exit_page,
                    s.pageviews,
                    s.events,
                    s.is_bounce,
                    a.hostname,
                    a.referrer,
                    a.referrer_source,
                    a.utm.source,
                    a.utm.medium,
                    a.utm.campaign,
                    a.utm.content,
                    a.utm.term,
                    a.country,
                    a.region,
                    a.city,
                    a.browser,
                    a.browser_version,
                    a.os,
                    a.os_version,
                    a.device,
                ])?;
            }
            app.flush()?;
            t_flush = t0.elapsed();
        }
        tx.commit()?;
        tracing::debug!(
            events = events.len(),
            sessions = sessions.len(),
            appender_us = t_app.as_micros() as u64,
            flushed_us = t_flush.as_micros() as u64,
            committed_us = t0.elapsed().as_micros() as u64,
            "commit"
        );
        Ok(())
    }

    /// The highest event id stored, so ids keep increasing across restarts.
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

fn props_json(props: &[(String, String)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = props
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map).to_string()
}
