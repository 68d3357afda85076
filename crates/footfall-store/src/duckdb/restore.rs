//! Restoring identify's state after a restart, so that a visit in progress continues and
//! dedup still holds across the restart.

use super::DuckStore;
use crate::StoreError;
use footfall_core::event::Utm;
use footfall_core::identify::{Identifier, PageviewRecord, SessionAttrs, SessionRow};
use footfall_core::{EventId, SessionId, SiteId, Timestamp, VisitorId};
use std::collections::HashMap;

impl DuckStore {
    /// Loads visits that ended at or after `visits_since` and page views at or after
    /// `dedup_since` into `id`. Returns how many visits were restored.
    pub fn restore_identify(
        &self,
        id: &mut Identifier,
        visits_since: Timestamp,
        dedup_since: Timestamp,
    ) -> Result<usize, StoreError> {
        let mut pageviews: HashMap<u64, Vec<PageviewRecord>> = HashMap::new();
        let mut stmt = self.conn.prepare(
            "SELECT session_id, event_id, ts, pathname FROM events
             WHERE name = 'pageview' AND session_id IN (SELECT session_id FROM sessions WHERE end_ts >= ?)",
        )?;
        let mut rows = stmt.query([visits_since.0])?;
        while let Some(r) = rows.next()? {
            pageviews
                .entry(r.get(0)?)
                .or_default()
                .push(PageviewRecord {
                    event: EventId(r.get(1)?),
                    ts: Timestamp(r.get(2)?),
                    pathname: r.get(3)?,
                });
        }

        let mut stmt = self.conn.prepare(
            "SELECT site, session_id, version, any_value(visitor_id), any_value(start_ts), any_value(end_ts),
                    any_value(entry_page), any_value(exit_page), any_value(pageviews), any_value(events), any_value(is_bounce),
                    any_value(hostname), any_value(referrer), any_value(referrer_source),
                    any_value(utm_source), any_value(utm_medium), any_value(utm_campaign), any_value(utm_content), any_value(utm_term),
                    any_value(country), any_value(region), any_value(city),
                    any_value(browser), any_value(browser_version), any_value(os), any_value(os_version), any_value(device)
             FROM sessions WHERE end_ts >= ?
             GROUP BY site, session_id, version HAVING sum(sign) > 0",
        )?;
        let mut rows = stmt.query([visits_since.0])?;
        let mut n = 0;
        while let Some(r) = rows.next()? {
            let site_raw: String = r.get(0)?;
            let site = SiteId::parse(&site_raw).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let session: u64 = r.get(1)?;
            let row = SessionRow {
                site,
                session: SessionId(session),
                version: r.get(2)?,
                visitor: VisitorId(r.get(3)?),
                start: Timestamp(r.get(4)?),
                end: Timestamp(r.get(5)?),
                entry_page: r.get(6)?,
                exit_page: r.get(7)?,
                pageviews: r.get(8)?,
                events: r.get(9)?,
                is_bounce: r.get(10)?,
                attrs: std::sync::Arc::new(SessionAttrs {
                    hostname: r.get(11)?,
                    referrer: r.get(12)?,
                    referrer_source: r.get(13)?,
                    utm: Utm {
                        source: r.get(14)?,
                        medium: r.get(15)?,
                        campaign: r.get(16)?,
                        content: r.get(17)?,
                        term: r.get(18)?,
                    },
                    country: r.get(19)?,
                    region: r.get(20)?,
                    city: r.get(21)?,
                    browser: r.get(22)?,
                    browser_version: r.get(23)?,
                    os: r.get(24)?,
                    os_version: r.get(25)?,
                    device: r.get(26)?,
                }),
            };
            id.restore(row, pageviews.remove(&session).unwrap_or_default());
            n += 1;
        }

        let mut stmt = self.conn.prepare(
            "SELECT site, visitor_id, pathname, ts FROM events WHERE name = 'pageview' AND ts >= ?",
        )?;
        let mut rows = stmt.query([dedup_since.0])?;
        while let Some(r) = rows.next()? {
            let site_raw: String = r.get(0)?;
            let site = SiteId::parse(&site_raw).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let path: String = r.get(2)?;
            id.restore_counted(&site, VisitorId(r.get(1)?), &path, Timestamp(r.get(3)?));
        }
        Ok(n)
    }
}
