//! The seed's calls: `POST /api/pageview {path, pageType, sessionId}` and
//! `POST /api/heartbeat {sessionId, currentPath, city?, country?, latitude?, longitude?}`.
//!
//! The seed served one site, so its calls carry no domain; ours take `domain` from the body
//! when present and otherwise leave it empty for the server to fill from Origin/Referer.

use super::fields::Fields;
use super::{limits, parse_json, DecodeError};
use crate::event::{EventKind, IncomingEvent};

pub fn decode_pageview(body: &[u8]) -> Result<IncomingEvent, DecodeError> {
    let value = parse_json(body)?;
    let f = Fields::new(&value)?;
    let mut ev = IncomingEvent::new(EventKind::Pageview, "pageview");
    ev.pathname = path(&f, &["path"])?;
    ev.page_type = f.string(&["pageType"], limits::PAGE_TYPE)?;
    ev.client_id = Some(f.required_string(&["sessionId"], limits::CLIENT_ID)?);
    ev.title = f.string(&["title"], limits::TITLE)?;
    ev.referrer = f
        .string(&["referrer"], limits::REFERRER)?
        .filter(|r| !r.is_empty());
    ev.domain = f.string(&["domain"], limits::DOMAIN)?.unwrap_or_default();
    Ok(ev)
}

pub fn decode_heartbeat(body: &[u8]) -> Result<IncomingEvent, DecodeError> {
    let value = parse_json(body)?;
    let f = Fields::new(&value)?;
    let mut ev = IncomingEvent::new(EventKind::Heartbeat, "heartbeat");
    ev.client_id = Some(f.required_string(&["sessionId"], limits::CLIENT_ID)?);
    ev.pathname = path(&f, &["currentPath"])?;
    ev.domain = f.string(&["domain"], limits::DOMAIN)?.unwrap_or_default();
    ev.geo.city = f.string(&["city"], limits::GEO_TEXT)?;
    ev.geo.country = f.string(&["country"], limits::GEO_TEXT)?;
    ev.geo.latitude = f.bounded(&["latitude"], -90.0, 90.0)?;
    ev.geo.longitude = f.bounded(&["longitude"], -180.0, 180.0)?;
    Ok(ev)
}

fn path(f: &Fields<'_>, names: &[&'static str]) -> Result<String, DecodeError> {
    let p = f.required_string(names, limits::URL)?;
    if !p.starts_with('/') || p.chars().any(char::is_control) {
        return Err(DecodeError::Invalid {
            field: names[0].into(),
            reason: "must be a path starting with '/'".into(),
        });
    }
    // A path is a path: drop any query or fragment the caller left on it.
    let end = p.find(['?', '#']).unwrap_or(p.len());
    Ok(p[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pageview() {
        let ev = decode_pageview(
            br#"{"path":"/blog/x?y=1","pageType":"blog","sessionId":"abc","domain":"e.com"}"#,
        )
        .unwrap();
        assert_eq!(ev.pathname, "/blog/x");
        assert_eq!(ev.page_type.as_deref(), Some("blog"));
        assert_eq!(ev.client_id.as_deref(), Some("abc"));
        assert!(decode_pageview(br#"{"path":"blog","sessionId":"a"}"#).is_err());
        assert!(decode_pageview(br#"{"path":"/"}"#)
            .unwrap_err()
            .to_string()
            .contains("sessionId"));
    }

    #[test]
    fn heartbeat_with_geo() {
        let ev = decode_heartbeat(br#"{"sessionId":"abc","currentPath":"/a","city":"Paris","country":"FR","latitude":48.85,"longitude":2.35}"#).unwrap();
        assert_eq!(ev.kind, EventKind::Heartbeat);
        assert_eq!(ev.geo.city.as_deref(), Some("Paris"));
        assert_eq!(ev.geo.latitude, Some(48.85));
        assert!(
            decode_heartbeat(br#"{"sessionId":"abc","currentPath":"/a","latitude":91}"#).is_err()
        );
        assert!(
            decode_heartbeat(br#"{"sessionId":"abc","currentPath":"/a","latitude":"x"}"#).is_err()
        );
    }
}
