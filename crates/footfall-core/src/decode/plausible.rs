//! Plausible's Events API (`POST /api/event`), footfall's native format, and the batch form
//! `POST /api/events` for trusted server-side senders.

use super::fields::Fields;
use super::{limits, parse_json, DecodeError};
use crate::event::{EventKind, IncomingEvent};
use crate::money::{Amount, Currency, Revenue};
use crate::types::Timestamp;
use serde_json::Value;

/// Decodes one `POST /api/event` body. Browser requests can't set timestamp, IP or UA.
pub fn decode(body: &[u8]) -> Result<IncomingEvent, DecodeError> {
    decode_value(&parse_json(body)?, false)
}

/// Decodes a `POST /api/events` body: a JSON array of events in the same shape, each of
/// which may carry `timestamp`, `ip` and `user_agent`.
pub fn decode_batch(body: &[u8]) -> Result<Vec<IncomingEvent>, DecodeError> {
    let items = match parse_json(body)? {
        Value::Array(items) => items,
        _ => return Err(DecodeError::NotAnObject("array of events")),
    };
    if items.len() > limits::BATCH_EVENTS {
        return Err(DecodeError::BatchTooLarge(items.len()));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, v)| {
            decode_value(v, true).map_err(|e| DecodeError::InBatch {
                index,
                error: Box::new(e),
            })
        })
        .collect()
}

pub fn decode_value(value: &Value, server_side: bool) -> Result<IncomingEvent, DecodeError> {
    let f = Fields::new(value)?;
    let name = f.required_string(&["name", "n"], limits::NAME)?;
    let url = f.required_string(&["url", "u"], limits::URL)?;
    let domain = f.required_string(&["domain", "d"], limits::DOMAIN)?;
    let hash_mode = f.boolean(&["hashMode", "h"])?.unwrap_or(false);

    let mut ev = IncomingEvent::new(EventKind::from_name(&name), name);
    ev.domain = domain;
    let page = parse_page_url(&url, hash_mode, "url")?;
    ev.hostname = page.hostname;
    ev.pathname = page.pathname;
    ev.query = page.query;
    ev.referrer = f
        .string(&["referrer", "r"], limits::REFERRER)?
        .filter(|r| !r.is_empty());
    ev.interactive = f.boolean(&["interactive", "i"])?.unwrap_or(true);
    ev.props = decode_props(&f)?;
    ev.revenue = decode_revenue(&f)?;
    if ev.revenue.is_some() && ev.kind != EventKind::Custom {
        return Err(DecodeError::Invalid {
            field: "revenue".into(),
            reason: "only custom events carry revenue".into(),
        });
    }
    ev.title = f.string(&["title", "t"], limits::TITLE)?;
    ev.client_id = f
        .string(&["sid"], limits::CLIENT_ID)?
        .filter(|s| !s.is_empty());
    ev.scroll_depth = f.bounded(&["sd"], 0.0, 100.0)?.map(|v| v.round() as u8);
    ev.engaged_ms = f
        .bounded(&["e"], 0.0, 30.0 * 86_400_000.0)?
        .map(|v| v as u64);

    let server_fields = ["timestamp", "ip", "user_agent"];
    if server_side {
        ev.timestamp = decode_timestamp(&f)?;
        ev.ip = f.string(&["ip"], 64)?;
        ev.user_agent = f.string(&["user_agent"], limits::USER_AGENT)?;
    } else if let Some((field, _)) = f.raw(&server_fields) {
        return Err(DecodeError::Invalid {
            field: field.into(),
            reason: "may only be set through the authenticated batch route POST /api/events".into(),
        });
    }
    Ok(ev)
}

pub(crate) struct PageUrl {
    pub hostname: String,
    pub pathname: String,
    pub query: String,
}

/// Splits an absolute http(s) URL into what we keep. In hash mode the fragment is part of
/// the page (`/#/settings`), as Plausible records it.
pub(crate) fn parse_page_url(
    raw: &str,
    hash_mode: bool,
    field: &'static str,
) -> Result<PageUrl, DecodeError> {
    let invalid = |reason: &str| DecodeError::Invalid {
        field: field.into(),
        reason: reason.into(),
    };
    let url = url::Url::parse(raw).map_err(|e| invalid(&format!("not an absolute URL ({e})")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid("scheme must be http or https"));
    }
    let hostname = url
        .host_str()
        .ok_or_else(|| invalid("has no host"))?
        .to_ascii_lowercase();
    let mut pathname = url.path().to_string();
    if hash_mode {
        if let Some(fragment) = url.fragment().filter(|f| !f.is_empty()) {
            pathname = format!("{pathname}#{fragment}");
        }
    }
    Ok(PageUrl {
        hostname,
        pathname,
        query: url.query().unwrap_or("").to_string(),
    })
}

fn decode_props(f: &Fields<'_>) -> Result<Vec<(String, String)>, DecodeError> {
    let Some((field, raw)) = f.raw(&["props", "p", "meta", "m"]) else {
        return Ok(Vec::new());
    };
    // Plausible's trackers may send props as a JSON-encoded string.
    let parsed;
    let obj = match raw {
        Value::Object(o) => o,
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s).map_err(|e| DecodeError::Invalid {
                field: field.into(),
                reason: format!("is a string but not a JSON object ({e})"),
            })?;
            match &parsed {
                Value::Object(o) => o,
                _ => {
                    return Err(DecodeError::WrongType {
                        field: field.into(),
                        expected: "an object",
                    })
                }
            }
        }
        _ => {
            return Err(DecodeError::WrongType {
                field: field.into(),
                expected: "an object",
            })
        }
    };
    if obj.len() > limits::PROPS {
        return Err(DecodeError::Invalid {
            field: field.into(),
            reason: format!(
                "has {} keys; at most {} are allowed",
                obj.len(),
                limits::PROPS
            ),
        });
    }
    let mut props = Vec::with_capacity(obj.len());
    for (k, v) in obj {
        let key_field = || format!("{field}.{}", k.chars().take(40).collect::<String>());
        if k.is_empty() || k.chars().count() > limits::PROP_KEY {
            return Err(DecodeError::Invalid {
                field: key_field(),
                reason: format!(
                    "property names must be 1 to {} characters",
                    limits::PROP_KEY
                ),
            });
        }
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            _ => {
                return Err(DecodeError::WrongType {
                    field: key_field(),
                    expected: "a string, number or boolean",
                })
            }
        };
        if value.chars().count() > limits::PROP_VALUE {
            return Err(DecodeError::TooLong {
                field: key_field(),
                max: limits::PROP_VALUE,
            });
        }
        if !value.is_empty() {
            props.push((k.clone(), value));
        }
    }
    props.sort();
    Ok(props)
}

/// Plausible's `revenue` (its tracker sends `$`): `{"amount": 19.99 or "19.99", "currency":
/// "EUR"}`, kept exactly to thousandths.
fn decode_revenue(f: &Fields<'_>) -> Result<Option<Revenue>, DecodeError> {
    let Some((field, raw)) = f.raw(&["revenue", "$"]) else {
        return Ok(None);
    };
    let parsed;
    let raw = match raw {
        Value::String(s) if s.len() <= 1024 => {
            parsed = serde_json::from_str::<Value>(s).map_err(|_| DecodeError::WrongType {
                field: field.into(),
                expected: "an object {amount, currency}",
            })?;
            &parsed
        }
        v => v,
    };
    let obj = match raw {
        Value::Object(o) if o.len() == 2 => o,
        _ => {
            return Err(DecodeError::WrongType {
                field: field.into(),
                expected: "an object {amount, currency}",
            })
        }
    };
    let invalid = |part: &str, e: crate::money::MoneyError| DecodeError::Invalid {
        field: format!("{field}.{part}"),
        reason: e.to_string(),
    };
    let amount = match obj.get("amount") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if s.len() <= 64 => s.clone(),
        _ => return Err(invalid("amount", crate::money::MoneyError::Amount)),
    };
    let amount = Amount::parse(&amount).map_err(|e| invalid("amount", e))?;
    let currency = match obj.get("currency") {
        Some(Value::String(s)) => Currency::parse(s).map_err(|e| invalid("currency", e))?,
        _ => return Err(invalid("currency", crate::money::MoneyError::Currency)),
    };
    Ok(Some(Revenue { amount, currency }))
}

fn decode_timestamp(f: &Fields<'_>) -> Result<Option<Timestamp>, DecodeError> {
    let Some((field, raw)) = f.raw(&["timestamp"]) else {
        return Ok(None);
    };
    let invalid = |reason: &str| DecodeError::Invalid {
        field: field.into(),
        reason: reason.into(),
    };
    let ms = match raw {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| invalid("must be integer unix milliseconds"))?,
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|e| invalid(&format!("not an RFC 3339 date-time ({e})")))?
            .timestamp_millis(),
        _ => {
            return Err(DecodeError::WrongType {
                field: field.into(),
                expected: "RFC 3339 text or unix milliseconds",
            })
        }
    };
    // 2000-01-01 .. 2100-01-01: anything outside is a unit mistake (seconds, microseconds).
    if !(946_684_800_000..4_102_444_800_000).contains(&ms) {
        return Err(invalid(
            "is outside 2000-01-01..2100-01-01 (unix milliseconds expected)",
        ));
    }
    Ok(Some(Timestamp(ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_short_and_long_names() {
        let short = decode(br#"{"n":"pageview","u":"https://Example.com/a?utm_source=x","d":"example.com","r":"https://google.com/","t":"A"}"#).unwrap();
        let long = decode(br#"{"name":"pageview","url":"https://Example.com/a?utm_source=x","domain":"example.com","referrer":"https://google.com/","title":"A"}"#).unwrap();
        assert_eq!(short, long);
        assert_eq!(short.kind, EventKind::Pageview);
        assert_eq!(short.hostname, "example.com");
        assert_eq!(short.pathname, "/a");
        assert_eq!(short.query, "utm_source=x");
        assert_eq!(short.title.as_deref(), Some("A"));
    }

    #[test]
    fn hash_mode_keeps_fragment() {
        let ev = decode(br#"{"n":"pageview","u":"https://e.com/app#/settings","d":"e.com","h":1}"#)
            .unwrap();
        assert_eq!(ev.pathname, "/app#/settings");
        let ev =
            decode(br#"{"n":"pageview","u":"https://e.com/app#/settings","d":"e.com"}"#).unwrap();
        assert_eq!(ev.pathname, "/app");
    }

    #[test]
    fn props_as_object_or_string_scalars_only() {
        let ev = decode(br#"{"n":"signup","u":"https://e.com/","d":"e.com","p":{"plan":"pro","seats":3,"trial":true,"x":null}}"#).unwrap();
        assert_eq!(
            ev.props,
            vec![
                ("plan".into(), "pro".into()),
                ("seats".into(), "3".into()),
                ("trial".into(), "true".into())
            ]
        );
        let ev =
            decode(br#"{"n":"signup","u":"https://e.com/","d":"e.com","p":"{\"plan\":\"pro\"}"}"#)
                .unwrap();
        assert_eq!(ev.props, vec![("plan".into(), "pro".into())]);
        let err = decode(br#"{"n":"signup","u":"https://e.com/","d":"e.com","p":{"a":{"b":1}}}"#)
            .unwrap_err();
        assert!(err.to_string().contains("p.a"), "{err}");
    }

    #[test]
    fn engagement_fields() {
        let ev =
            decode(br#"{"n":"engagement","u":"https://e.com/","d":"e.com","sd":57,"e":12000}"#)
                .unwrap();
        assert_eq!(ev.kind, EventKind::Engagement);
        assert_eq!(ev.scroll_depth, Some(57));
        assert_eq!(ev.engaged_ms, Some(12000));
        assert!(
            decode(br#"{"n":"engagement","u":"https://e.com/","d":"e.com","sd":101}"#).is_err()
        );
    }

    #[test]
    fn bad_input_names_the_problem() {
        let cases: &[(&[u8], &str)] = &[
            (b"{", "not valid JSON"),
            (b"[1]", "JSON object"),
            (b"\xff\xfe", "UTF-8"),
            (br#"{"u":"https://e.com/","d":"e.com"}"#, "`name`"),
            (br#"{"n":"x","d":"e.com"}"#, "`url`"),
            (br#"{"n":"x","u":"https://e.com/"}"#, "`domain`"),
            (br#"{"n":"x","u":"not a url","d":"e.com"}"#, "`url`"),
            (br#"{"n":"x","u":"ftp://e.com/","d":"e.com"}"#, "scheme"),
            (
                br#"{"n":5,"u":"https://e.com/","d":"e.com"}"#,
                "`n` must be a string",
            ),
            (
                br#"{"n":"x","u":"https://e.com/","d":"e.com","timestamp":1}"#,
                "batch route",
            ),
        ];
        for (body, needle) in cases {
            let err = decode(body).unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
        }
        let long_name = format!(
            r#"{{"n":"{}","u":"https://e.com/","d":"e.com"}}"#,
            "x".repeat(121)
        );
        assert!(decode(long_name.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("longer than 120"));
        let long_url = format!(
            r#"{{"n":"x","u":"https://e.com/{}","d":"e.com"}}"#,
            "x".repeat(2000)
        );
        assert!(decode(long_url.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("longer than 2000"));
        let many: String = (0..31)
            .map(|i| format!(r#""k{i}":"v""#))
            .collect::<Vec<_>>()
            .join(",");
        let many = format!(r#"{{"n":"x","u":"https://e.com/","d":"e.com","p":{{{many}}}}}"#);
        assert!(decode(many.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("at most 30"));
    }

    #[test]
    fn revenue_is_exact_and_checked() {
        let rev = |extra: &str| {
            decode(
                format!(r#"{{"n":"Purchase","u":"https://e.com/","d":"e.com",{extra}}}"#)
                    .as_bytes(),
            )
            .map(|e| e.revenue.map(|r| (r.amount.0, r.currency.to_string())))
            .map_err(|e| e.to_string())
        };
        assert_eq!(
            rev(r#""revenue":{"amount":1322.22,"currency":"EUR"}"#),
            Ok(Some((1_322_220, "EUR".into())))
        );
        assert_eq!(
            rev(r#""$":{"amount":"0.1","currency":"usd"}"#),
            Ok(Some((100, "USD".into())))
        );
        assert_eq!(
            rev(r#""$":"{\"amount\":\"7\",\"currency\":\"GBP\"}""#),
            Ok(Some((7_000, "GBP".into())))
        );
        assert_eq!(rev(r#""revenue":null"#), Ok(None));
        for (bad, needle) in [
            (r#""revenue":5"#, "an object"),
            (r#""revenue":{"amount":5}"#, "an object"),
            (
                r#""revenue":{"amount":"x","currency":"EUR"}"#,
                "revenue.amount",
            ),
            (
                r#""revenue":{"amount":1e20,"currency":"EUR"}"#,
                "revenue.amount",
            ),
            (
                r#""revenue":{"amount":"1000000000.5","currency":"EUR"}"#,
                "revenue.amount",
            ),
            (
                r#""revenue":{"amount":true,"currency":"EUR"}"#,
                "revenue.amount",
            ),
            (
                r#""revenue":{"amount":1,"currency":"EURO"}"#,
                "revenue.currency",
            ),
            (r#""revenue":{"amount":1,"currency":7}"#, "revenue.currency"),
            (r#""revenue":{"amount":1,"cur":"EUR"}"#, "revenue.currency"),
            (r#""revenue":"{nope""#, "an object"),
        ] {
            let err = rev(bad).unwrap_err();
            assert!(
                err.contains(needle),
                "{bad}: {err:?} should mention {needle:?}"
            );
        }
        let pv = decode(br#"{"n":"pageview","u":"https://e.com/","d":"e.com","revenue":{"amount":1,"currency":"EUR"}}"#);
        assert!(pv.unwrap_err().to_string().contains("only custom events"));
    }

    #[test]
    fn batch_accepts_server_fields_and_reports_index() {
        let evs = decode_batch(br#"[{"n":"pageview","u":"https://e.com/","d":"e.com","timestamp":"2026-01-02T03:04:05Z","ip":"1.2.3.4","user_agent":"UA"},{"n":"pageview","u":"https://e.com/b","d":"e.com","timestamp":1767323045000}]"#).unwrap();
        assert_eq!(evs[0].timestamp, Some(Timestamp(1_767_323_045_000)));
        assert_eq!(evs[1].timestamp, Some(Timestamp(1_767_323_045_000)));
        assert_eq!(evs[0].ip.as_deref(), Some("1.2.3.4"));
        let err = decode_batch(br#"[{"n":"pageview","u":"https://e.com/","d":"e.com"},{"n":"x"}]"#)
            .unwrap_err();
        assert!(err.to_string().starts_with("event 1 in batch"), "{err}");
        let err = decode_batch(
            br#"[{"n":"pageview","u":"https://e.com/","d":"e.com","timestamp":1767323045}]"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unix milliseconds"), "{err}");
    }
}
