//! Committed records as ClickHouse rows (JSONEachRow), each tagged with its log partition
//! and position.

use crate::log::LogPosition;
use crate::StoreError;
use footfall_core::identify::{SessionAttrs, SessionRow};
use footfall_core::record::CommitRecord;
use serde::Serialize;

#[derive(Serialize)]
struct EventRow<'a> {
    event_id: u64,
    site: &'a str,
    ts: i64,
    name: &'a str,
    visitor_id: u64,
    session_id: u64,
    /// The event's own host (a visit may cross subdomains); the visit's attributes
    /// below leave theirs out.
    hostname: &'a str,
    pathname: &'a str,
    title: Option<&'a str>,
    page_type: Option<&'a str>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    props: String,
    scroll_depth: Option<u8>,
    engaged_ms: Option<u64>,
    interactive: u8,
    prop_keys: Vec<&'a str>,
    prop_values: Vec<&'a str>,
    revenue_amount: Option<i64>,
    revenue_currency: Option<String>,
    log_part: u16,
    log_pos: u64,
    #[serde(flatten)]
    visit: Attrs<'a>,
}

#[derive(Serialize)]
struct SessionRowOut<'a> {
    site: &'a str,
    session_id: u64,
    visitor_id: u64,
    sign: i8,
    version: u64,
    start_ts: i64,
    end_ts: i64,
    duration_ms: i64,
    entry_page: &'a str,
    exit_page: &'a str,
    pageviews: u32,
    events: u32,
    is_bounce: u8,
    log_part: u16,
    log_pos: u64,
    #[serde(flatten)]
    visit: Attrs<'a>,
}

/// A visit's attributes as named columns, from column `.1` on (an event row has a
/// hostname of its own).
struct Attrs<'a>(&'a SessionAttrs, usize);

impl Serialize for Attrs<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let cols = &SessionAttrs::COLUMNS[self.1.min(SessionAttrs::COLUMNS.len())..];
        let mut m = s.serialize_map(Some(cols.len()))?;
        for (i, c) in cols.iter().enumerate() {
            m.serialize_entry(c, self.0.value(self.1 + i))?;
        }
        m.end()
    }
}

fn line(out: &mut Vec<u8>, row: &impl Serialize) -> Result<(), StoreError> {
    serde_json::to_writer(&mut *out, row)
        .map_err(|e| StoreError::Corrupt(format!("encoding a row: {e}")))?;
    out.push(b'\n');
    Ok(())
}

/// The stored events of `fresh`, one JSON object per line.
pub fn events(
    fresh: &[&(LogPosition, CommitRecord)],
    part: u16,
) -> Result<(Vec<u8>, usize), StoreError> {
    debug_assert_eq!(SessionAttrs::COLUMNS[0], "hostname");
    let mut out = Vec::new();
    let mut n = 0;
    for (pos, rec) in fresh {
        for (e, attrs) in rec.stored_with_attrs() {
            let (Some(session), Some(visit)) = (e.session, attrs) else {
                return Err(StoreError::Corrupt(format!(
                    "stored event {} has no visit",
                    e.id.0
                )));
            };
            let ev = &e.event;
            let props: serde_json::Map<String, serde_json::Value> = ev
                .props
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            line(
                &mut out,
                &EventRow {
                    event_id: e.id.0,
                    site: ev.site.as_str(),
                    ts: ev.ts.0,
                    name: &ev.name,
                    visitor_id: e.visitor.0,
                    session_id: session.0,
                    hostname: &ev.hostname,
                    pathname: &ev.pathname,
                    title: ev.title.as_deref(),
                    page_type: ev.page_type.as_deref(),
                    latitude: ev.geo.latitude,
                    longitude: ev.geo.longitude,
                    props: serde_json::Value::Object(props).to_string(),
                    scroll_depth: ev.scroll_depth,
                    engaged_ms: ev.engaged_ms,
                    interactive: u8::from(ev.interactive),
                    prop_keys: ev.props.iter().map(|(k, _)| k.as_str()).collect(),
                    prop_values: ev.props.iter().map(|(_, v)| v.as_str()).collect(),
                    revenue_amount: ev.revenue.map(|r| r.amount.0),
                    revenue_currency: ev.revenue.map(|r| r.currency.to_string()),
                    log_part: part,
                    log_pos: pos.0,
                    visit: Attrs(visit, 1),
                },
            )?;
            n += 1;
        }
    }
    Ok((out, n))
}

/// The visit changes of `fresh` as collapsing rows (−1 old state, +1 new).
pub fn sessions(
    fresh: &[&(LogPosition, CommitRecord)],
    part: u16,
) -> Result<(Vec<u8>, usize), StoreError> {
    let mut out = Vec::new();
    let mut n = 0;
    for (pos, rec) in fresh {
        for change in &rec.visits {
            let rows = change
                .before
                .iter()
                .map(|r| (-1i8, r))
                .chain(std::iter::once((1i8, &change.after)));
            for (sign, r) in rows {
                line(&mut out, &session_row(sign, r, part, pos.0))?;
                n += 1;
            }
        }
    }
    Ok((out, n))
}

fn session_row(sign: i8, r: &SessionRow, log_part: u16, log_pos: u64) -> SessionRowOut<'_> {
    SessionRowOut {
        site: r.site.as_str(),
        session_id: r.session.0,
        visitor_id: r.visitor.0,
        sign,
        version: r.version,
        start_ts: r.start.0,
        end_ts: r.end.0,
        duration_ms: r.duration_ms(),
        entry_page: &r.entry_page,
        exit_page: &r.exit_page,
        pageviews: r.pageviews,
        events: r.events,
        is_bounce: u8::from(r.is_bounce),
        log_part,
        log_pos,
        visit: Attrs(&r.attrs, 0),
    }
}
