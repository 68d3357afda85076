//! OpenPanel's SDK calls (`@openpanel/web` on top of `@openpanel/sdk`): `POST /track` with
//! a JSON body `{type, payload}` and the site in the `openpanel-client-id` header.
//!
//! - `track` events are analytics: `screen_view` is a page view (its page is the
//!   `__path` property, the page's full URL; `__title` and `__referrer` go with it), any
//!   other name a custom event with the caller's properties.
//! - The SDK's `__`-prefixed properties are its own bookkeeping. `__timestamp` is not used:
//!   a browser may not set an event's time here, as on `/api/event`.
//! - `identify`, `increment`, `decrement`, `group`, `assign_group`, `alias` and `replay`
//!   are about profiles and recordings, which footfall does not keep. They are accepted
//!   and not stored, so that a page using them keeps working.

use super::plausible::parse_page_url;
use super::{limits, parse_json, DecodeError};
use crate::event::{EventKind, IncomingEvent};
use serde_json::{Map, Value};

/// The request header that names the site.
pub const CLIENT_ID_HEADER: &str = "openpanel-client-id";

/// Message types accepted and not stored.
const IGNORED: [&str; 7] = [
    "identify",
    "increment",
    "decrement",
    "group",
    "assign_group",
    "alias",
    "replay",
];

/// Decodes one `/track` body sent with `client_id` (the `openpanel-client-id` header, which
/// names the site). `None`: a valid message of a kind footfall does not store.
pub fn decode(body: &[u8], client_id: Option<&str>) -> Result<Option<IncomingEvent>, DecodeError> {
    let value = parse_json(body)?;
    let obj = value
        .as_object()
        .ok_or(DecodeError::NotAnObject("object {type, payload}"))?;
    let kind = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err(wrong("type", "a string")),
        None => return Err(DecodeError::Missing("type")),
    };
    let payload = match obj.get("payload") {
        Some(Value::Object(p)) => p,
        Some(_) => return Err(wrong("payload", "an object")),
        None => return Err(DecodeError::Missing("payload")),
    };
    if IGNORED.contains(&kind) {
        return Ok(None);
    }
    if kind != "track" {
        return Err(DecodeError::Invalid {
            field: "type".into(),
            reason: format!(
                "{kind:?} is not an OpenPanel message type (track, {})",
                IGNORED.join(", ")
            ),
        });
    }
    let name = match payload.get("name") {
        Some(Value::String(n)) => n.as_str(),
        Some(_) => return Err(wrong("payload.name", "a string")),
        None => return Err(DecodeError::Missing("payload.name")),
    };
    if name.is_empty() {
        return Err(DecodeError::Invalid {
            field: "payload.name".into(),
            reason: "must not be empty".into(),
        });
    }
    if name.chars().count() > limits::NAME {
        return Err(DecodeError::TooLong {
            field: "payload.name".into(),
            max: limits::NAME,
        });
    }
    let domain = client_id
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or(DecodeError::Missing("openpanel-client-id (request header)"))?;
    if domain.chars().count() > limits::DOMAIN {
        return Err(DecodeError::TooLong {
            field: CLIENT_ID_HEADER.into(),
            max: limits::DOMAIN,
        });
    }
    let empty = Map::new();
    let props = match payload.get("properties") {
        Some(Value::Object(p)) => p,
        None | Some(Value::Null) => &empty,
        Some(_) => return Err(wrong("payload.properties", "an object")),
    };

    // footfall's own names mean something else here: a page view, or the tracker's
    // engagement and heartbeat events, which count in nothing.
    if EventKind::from_name(name) != EventKind::Custom {
        return Err(DecodeError::Invalid {
            field: "payload.name".into(),
            reason: format!("{name:?} is reserved: send page views as screen_view, and give custom events another name"),
        });
    }
    let mut ev = if name == "screen_view" {
        IncomingEvent::new(EventKind::Pageview, "pageview")
    } else {
        IncomingEvent::new(EventKind::Custom, name)
    };
    ev.domain = domain.to_string();
    // The page: the full URL the SDK sends as __path (a path alone is taken too). The SDK
    // sends link clicks, and events before the first screen view, without one: left empty,
    // the sequencer puts them on the page their visitor is on (or "/").
    match text(props, "__path", limits::URL)? {
        Some(p) if p.starts_with('/') => {
            if p.chars().any(char::is_control) {
                return Err(DecodeError::Invalid {
                    field: "payload.properties.__path".into(),
                    reason: "contains control characters".into(),
                });
            }
            // A path (`op.screenView('/x?utm_source=y')`): read as a URL would be, so its
            // query keeps its UTM tags and its escapes are normalised alike.
            let page = parse_page_url(
                &format!("http://path.invalid{p}"),
                false,
                "payload.properties.__path",
            )?;
            ev.pathname = page.pathname;
            ev.query = page.query;
        }
        Some(p) if !p.is_empty() => {
            let page = parse_page_url(p, false, "payload.properties.__path")?;
            ev.hostname = page.hostname;
            ev.pathname = page.pathname;
            ev.query = page.query;
        }
        _ if ev.kind == EventKind::Pageview => ev.pathname = "/".into(),
        _ => ev.pathname.clear(),
    }
    ev.referrer = text(props, "__referrer", limits::REFERRER)?
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    // The SDK fills the title and some properties (a link's text) itself: over-long ones
    // are cut rather than the event refused (which the SDK would retry three times).
    ev.title = text(props, "__title", usize::MAX)?
        .filter(|t| !t.is_empty())
        .map(|t| truncate(t, limits::TITLE));
    for (k, v) in props.iter().filter(|(k, _)| !k.starts_with("__")) {
        let value = match v {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            Value::Bool(_) | Value::Number(_) => v.to_string(),
            // OpenPanel stores nested values as they are; a breakdown needs text.
            Value::Array(_) | Value::Object(_) => v.to_string(),
        };
        let field = || format!("payload.properties.{k}");
        if k.is_empty() {
            return Err(DecodeError::Invalid {
                field: "payload.properties".into(),
                reason: "a property name must not be empty".into(),
            });
        }
        if k.chars().count() > limits::PROP_KEY {
            return Err(DecodeError::TooLong {
                field: field(),
                max: limits::PROP_KEY,
            });
        }
        // An empty value is no value, as on /api/event.
        if value.is_empty() {
            continue;
        }
        let value = truncate(&value, limits::PROP_VALUE);
        if ev.props.len() == limits::PROPS {
            return Err(DecodeError::Invalid {
                field: "payload.properties".into(),
                reason: format!("at most {} properties are allowed", limits::PROPS),
            });
        }
        ev.props.push((k.clone(), value));
    }
    Ok(Some(ev))
}

/// The first `max` characters of `s`.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

fn wrong(field: &str, expected: &'static str) -> DecodeError {
    DecodeError::WrongType {
        field: field.into(),
        expected,
    }
}

/// A string property, None when absent or null.
fn text<'a>(
    props: &'a Map<String, Value>,
    key: &str,
    max: usize,
) -> Result<Option<&'a str>, DecodeError> {
    match props.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() > max => Err(DecodeError::TooLong {
            field: format!("payload.properties.{key}"),
            max,
        }),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(wrong(&format!("payload.properties.{key}"), "a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(body: &str) -> Result<Option<IncomingEvent>, DecodeError> {
        decode(body.as_bytes(), Some("example.com"))
    }

    /// What `@openpanel/web` 1.4 sends for a screen view (its global __referrer, then
    /// __path and __title).
    #[test]
    fn a_screen_view_is_a_page_view() {
        let ev = track(r#"{"type":"track","payload":{"name":"screen_view","properties":{"__referrer":"https://news.ycombinator.com/","__path":"https://example.com/blog/x?utm_source=hn#top","__title":"X"}}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(ev.kind, EventKind::Pageview);
        assert_eq!(ev.name, "pageview");
        assert_eq!(ev.domain, "example.com");
        assert_eq!(ev.hostname, "example.com");
        assert_eq!(ev.pathname, "/blog/x");
        assert_eq!(ev.query, "utm_source=hn");
        assert_eq!(ev.title.as_deref(), Some("X"));
        assert_eq!(
            ev.referrer.as_deref(),
            Some("https://news.ycombinator.com/")
        );
        assert!(ev.props.is_empty());
    }

    #[test]
    fn other_events_are_custom_with_their_properties() {
        let ev = track(r#"{"type":"track","payload":{"name":"signup","profileId":"u1","properties":{"__referrer":"","__path":"https://example.com/pricing","plan":"pro","seats":3,"trial":true,"tags":["a","b"],"gone":null,"__timestamp":"2020-01-01T00:00:00Z"}}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(ev.kind, EventKind::Custom);
        assert_eq!(ev.name, "signup");
        assert_eq!(ev.pathname, "/pricing");
        assert_eq!(ev.referrer, None);
        assert_eq!(
            ev.props,
            vec![
                ("plan".to_string(), "pro".to_string()),
                ("seats".to_string(), "3".to_string()),
                ("tags".to_string(), r#"["a","b"]"#.to_string()),
                ("trial".to_string(), "true".to_string()),
            ]
        );
        // The client's time is not taken.
        assert_eq!(ev.timestamp, None);
    }

    #[test]
    fn an_event_without_a_page_leaves_it_to_the_sequencer() {
        let ev = track(r#"{"type":"track","payload":{"name":"click","properties":{"__path":""}}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(ev.pathname, "");
        let ev = track(r#"{"type":"track","payload":{"name":"link_out","properties":{"href":"https://x.org/"}}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(ev.pathname, "");
        // A page view always has a page.
        let ev = track(r#"{"type":"track","payload":{"name":"screen_view"}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(ev.pathname, "/");
        let ev = track(r#"{"type":"track","payload":{"name":"screen_view","properties":{"__path":"/docs/a%20b?utm_source=x#f"}}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(ev.pathname, "/docs/a%20b");
        assert_eq!(ev.query, "utm_source=x");
        let ev = track(r#"{"type":"track","payload":{"name":"screen_view","properties":{"__path":"/docs/a b"}}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(ev.pathname, "/docs/a%20b", "escaped as a URL's path is");
    }

    #[test]
    fn long_titles_and_values_are_cut_and_empty_values_dropped() {
        let title = "t".repeat(limits::TITLE + 10);
        let text = "é".repeat(limits::PROP_VALUE + 10);
        let ev = track(&format!(r#"{{"type":"track","payload":{{"name":"link_out","properties":{{"__title":"{title}","text":"{text}","href":""}}}}}}"#))
            .unwrap()
            .unwrap();
        assert_eq!(ev.title.unwrap().chars().count(), limits::TITLE);
        assert_eq!(ev.props.len(), 1);
        assert_eq!(ev.props[0].1.chars().count(), limits::PROP_VALUE);
    }

    #[test]
    fn profile_and_replay_messages_are_accepted_and_not_stored() {
        for t in IGNORED {
            let body =
                format!(r#"{{"type":"{t}","payload":{{"profileId":"u1","email":"a@b.c"}}}}"#);
            assert_eq!(track(&body).unwrap(), None, "{t}");
        }
    }

    #[test]
    fn hostile_bodies_get_clear_errors() {
        let cases: &[(&str, &str)] = &[
            ("not json", "not valid JSON"),
            ("[]", "must be a JSON object"),
            (r#"{"payload":{}}"#, "`type`"),
            (r#"{"type":7,"payload":{}}"#, "`type` must be a string"),
            (r#"{"type":"track"}"#, "`payload`"),
            (
                r#"{"type":"track","payload":[]}"#,
                "`payload` must be an object",
            ),
            (
                r#"{"type":"drop_tables","payload":{}}"#,
                "not an OpenPanel message type",
            ),
            (r#"{"type":"track","payload":{}}"#, "payload.name"),
            (
                r#"{"type":"track","payload":{"name":""}}"#,
                "must not be empty",
            ),
            (
                r#"{"type":"track","payload":{"name":{}}}"#,
                "payload.name` must be a string",
            ),
            (
                r#"{"type":"track","payload":{"name":"x","properties":"a=b"}}"#,
                "must be an object",
            ),
            (
                r#"{"type":"track","payload":{"name":"x","properties":{"__path":"javascript:alert(1)"}}}"#,
                "__path",
            ),
            (
                r#"{"type":"track","payload":{"name":"x","properties":{"__path":"/a\u0000b"}}}"#,
                "control",
            ),
            (
                r#"{"type":"track","payload":{"name":"x","properties":{"__title":5}}}"#,
                "__title` must be a string",
            ),
            (
                r#"{"type":"track","payload":{"name":"x","properties":{"":"v"}}}"#,
                "must not be empty",
            ),
        ];
        for (body, needle) in cases {
            let e = track(body).unwrap_err().to_string();
            assert!(e.contains(needle), "{body}: {e}");
        }
        let long = "x".repeat(limits::NAME + 1);
        let e = track(&format!(
            r#"{{"type":"track","payload":{{"name":"{long}"}}}}"#
        ))
        .unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
        let many: Vec<String> = (0..=limits::PROPS)
            .map(|i| format!(r#""k{i}":"v""#))
            .collect();
        let e = track(&format!(
            r#"{{"type":"track","payload":{{"name":"x","properties":{{{}}}}}}}"#,
            many.join(",")
        ))
        .unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
        for reserved in ["pageview", "engagement", "heartbeat"] {
            let e = track(&format!(
                r#"{{"type":"track","payload":{{"name":"{reserved}"}}}}"#
            ))
            .unwrap_err();
            assert!(e.to_string().contains("reserved"), "{e}");
        }
        // Without the header there is no site.
        let e = decode(br#"{"type":"track","payload":{"name":"x"}}"#, None).unwrap_err();
        assert!(e.to_string().contains("openpanel-client-id"), "{e}");
        let e = decode(br#"{"type":"track","payload":{"name":"x"}}"#, Some("  ")).unwrap_err();
        assert!(e.to_string().contains("openpanel-client-id"), "{e}");
    }
}
