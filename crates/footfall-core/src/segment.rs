//! Saved segments: named sets of Stats API v2 filters per site, personal to the user who
//! saved them or shared with every user of the dashboard. A query names them as
//! `["is", "segment", [name, …]]`; [`expand`] puts their filters in its place before the
//! query is parsed, so a segment means exactly what its filters would.

use crate::query::QueryError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Most segments one site may hold.
pub const MAX_SEGMENTS: usize = 200;
/// Most segment names one query may use, all conditions together (repeats count once per
/// condition): each is replaced by up to 16 KB of filters.
pub const MAX_NAMES_PER_QUERY: usize = 10;
/// Largest filter list a segment may hold, as JSON.
const MAX_FILTERS_BYTES: usize = 16 * 1024;
const MAX_NAME: usize = 120;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    #[error("segment name must be 1 to {MAX_NAME} characters, not . or ..")]
    Name,
    #[error(
        "filters must be a non-empty list of v2 filters, at most {MAX_FILTERS_BYTES} bytes as JSON"
    )]
    Filters,
    #[error("a segment can't name another segment")]
    Nested,
    #[error("filters: {0}")]
    Invalid(QueryError),
}

/// A saved segment. `owner` is the dashboard user who saved it ("" for the admin token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Stored")]
pub struct Segment {
    pub name: String,
    pub filters: Vec<Value>,
    pub shared: bool,
    pub owner: String,
}

/// What a user sends to save a segment: the owner is whoever sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentSpec {
    pub name: String,
    pub filters: Value,
    #[serde(default)]
    pub shared: bool,
}

/// A segment as stored, validated again when read.
#[derive(Deserialize)]
struct Stored {
    name: String,
    filters: Value,
    shared: bool,
    owner: String,
}

impl TryFrom<Stored> for Segment {
    type Error = SegmentError;
    fn try_from(s: Stored) -> Result<Self, Self::Error> {
        Segment::new(
            SegmentSpec {
                name: s.name,
                filters: s.filters,
                shared: s.shared,
            },
            s.owner,
        )
    }
}

/// Whether a filter names a segment: its own dimension, or one of its sub-filters' (values
/// are not looked at: a page may well be called "segment").
fn names_a_segment(v: &Value) -> bool {
    let Some(a) = v.as_array() else {
        return false;
    };
    match a.first().and_then(Value::as_str) {
        Some("and" | "or") => a
            .get(1)
            .and_then(Value::as_array)
            .is_some_and(|subs| subs.iter().any(names_a_segment)),
        Some("not" | "has_done" | "has_not_done") => a.get(1).is_some_and(names_a_segment),
        _ => a.get(1).and_then(Value::as_str) == Some("segment"),
    }
}

/// The segment names a filter list uses, repeats within a condition counted once.
fn names_used(list: &[Value]) -> usize {
    list.iter()
        .map(|f| {
            let Some(a) = f.as_array() else {
                return 0;
            };
            match a.first().and_then(Value::as_str) {
                Some("and" | "or") => a
                    .get(1)
                    .and_then(Value::as_array)
                    .map_or(0, |subs| names_used(subs)),
                Some("not" | "has_done" | "has_not_done") => a
                    .get(1)
                    .map_or(0, |sub| names_used(std::slice::from_ref(sub))),
                _ if a.get(1).and_then(Value::as_str) == Some("segment") => {
                    a.get(2).and_then(Value::as_array).map_or(1, |names| {
                        let distinct: std::collections::HashSet<String> =
                            names.iter().map(Value::to_string).collect();
                        distinct.len().max(1)
                    })
                }
                _ => 0,
            }
        })
        .sum()
}

impl Segment {
    /// A segment from what a user sent, or why it is not one: its filters must be what a
    /// v2 query accepts (checked by parsing one).
    pub fn new(spec: SegmentSpec, owner: String) -> Result<Segment, SegmentError> {
        let name = spec.name.trim().to_string();
        let n = name.chars().count();
        if !(1..=MAX_NAME).contains(&n)
            || name.chars().any(char::is_control)
            || name == "."
            || name == ".."
        {
            return Err(SegmentError::Name);
        }
        let filters = match spec.filters {
            Value::Array(f) if !f.is_empty() => f,
            _ => return Err(SegmentError::Filters),
        };
        if Value::Array(filters.clone()).to_string().len() > MAX_FILTERS_BYTES {
            return Err(SegmentError::Filters);
        }
        if filters.iter().any(names_a_segment) {
            return Err(SegmentError::Nested);
        }
        let probe = json!({"site_id": "segment.invalid", "date_range": "all",
            "metrics": ["visitors"], "filters": filters});
        crate::query::parse::parse_v2(&probe, chrono_tz::UTC).map_err(SegmentError::Invalid)?;
        Ok(Segment {
            name,
            filters,
            shared: spec.shared,
            owner,
        })
    }
}

/// Replaces every `["is", "segment", [names]]` in the query's filters by the named
/// segments' filters: spliced in place in the top-level list or an `and` list (so a goal
/// filter in a segment stays top-level, as conversion rates need), grouped with `and`
/// elsewhere, several names joined with `or`. `lookup` gives a segment's filters, or None
/// for a name the requester may not use.
pub fn expand(
    query: &mut Value,
    lookup: &dyn Fn(&str) -> Option<Vec<Value>>,
) -> Result<(), QueryError> {
    let Some(Value::Array(filters)) = query.get_mut("filters") else {
        return Ok(());
    };
    // Counted before anything is copied: a query naming one segment thousands of times
    // must cost nothing.
    let used = names_used(filters);
    if used > MAX_NAMES_PER_QUERY {
        return Err(QueryError::new(
            "filters",
            format!("{used} segment names; a query may use at most {MAX_NAMES_PER_QUERY}"),
        ));
    }
    let expanded = expand_list(std::mem::take(filters), "filters", true, lookup)?;
    *filters = expanded;
    Ok(())
}

fn expand_list(
    list: Vec<Value>,
    field: &str,
    splice: bool,
    lookup: &dyn Fn(&str) -> Option<Vec<Value>>,
) -> Result<Vec<Value>, QueryError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, f) in list.into_iter().enumerate() {
        let field = format!("{field}[{i}]");
        match resolve(&f, &field, lookup)? {
            Some(mut parts) if splice && parts.len() > 1 => {
                // One segment's filters, all of which must hold: spliced. Several names
                // come back as one `or`.
                out.append(&mut parts);
            }
            Some(mut parts) if parts.len() == 1 => out.extend(parts.pop()),
            Some(parts) => out.push(json!(["and", parts])),
            None => out.push(expand_inside(f, &field, lookup)?),
        }
    }
    Ok(out)
}

/// A filter's sub-filters expanded (and/or/not/has_done); others as they are.
fn expand_inside(
    f: Value,
    field: &str,
    lookup: &dyn Fn(&str) -> Option<Vec<Value>>,
) -> Result<Value, QueryError> {
    let Value::Array(mut a) = f else {
        return Ok(f);
    };
    match a.first().and_then(Value::as_str) {
        Some(op @ ("and" | "or")) if a.len() == 2 => {
            let splice = op == "and";
            if let Value::Array(subs) = std::mem::take(&mut a[1]) {
                a[1] = Value::Array(expand_list(subs, &format!("{field}[1]"), splice, lookup)?);
            }
            Ok(Value::Array(a))
        }
        Some("not" | "has_done" | "has_not_done") if a.len() == 2 => {
            let inner = std::mem::take(&mut a[1]);
            let sub = format!("{field}[1]");
            a[1] = match resolve(&inner, &sub, lookup)? {
                Some(mut parts) if parts.len() == 1 => parts.pop().unwrap_or(Value::Null),
                Some(parts) => json!(["and", parts]),
                None => expand_inside(inner, &sub, lookup)?,
            };
            Ok(Value::Array(a))
        }
        _ => Ok(Value::Array(a)),
    }
}

/// For a segment condition, the filters it stands for (one segment: its list; several:
/// one `or` of them); None for any other filter.
fn resolve(
    f: &Value,
    field: &str,
    lookup: &dyn Fn(&str) -> Option<Vec<Value>>,
) -> Result<Option<Vec<Value>>, QueryError> {
    let Some(a) = f.as_array() else {
        return Ok(None);
    };
    if a.get(1).and_then(Value::as_str) != Some("segment") {
        return Ok(None);
    }
    if a.first().and_then(Value::as_str) != Some("is") || a.len() != 3 {
        return Err(QueryError::new(
            field,
            "a segment is named as [\"is\", \"segment\", [name, …]]",
        ));
    }
    let mut names: Vec<&str> = a[2]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if names.is_empty() || a[2].as_array().is_some_and(|v| v.len() != names.len()) {
        return Err(QueryError::new(
            format!("{field}[2]"),
            "give one or more segment names",
        ));
    }
    // A name twice is the same alternative once.
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.trim()));
    let mut each = Vec::new();
    for name in &names {
        let filters = lookup(name.trim()).ok_or_else(|| {
            QueryError::new(
                format!("{field}[2]"),
                format!("unknown segment {name:?} (or not one you may use)"),
            )
        })?;
        each.push(filters);
    }
    if each.len() == 1 {
        return Ok(each.pop());
    }
    let alternatives: Vec<Value> = each
        .into_iter()
        .map(|mut fs| {
            if fs.len() == 1 {
                fs.pop().unwrap_or(Value::Null)
            } else {
                json!(["and", fs])
            }
        })
        .collect();
    Ok(Some(vec![json!(["or", alternatives])]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<Vec<Value>> {
        match name {
            "Mobile" => Some(vec![json!(["is", "visit:device", ["Mobile"]])]),
            "Google buyers" => Some(vec![
                json!(["is", "visit:source", ["Google"]]),
                json!(["is", "event:goal", ["Signup"]]),
            ]),
            _ => None,
        }
    }

    fn expanded(filters: Value) -> Result<Value, QueryError> {
        let mut q = json!({"site_id": "e.com", "filters": filters});
        expand(&mut q, &lookup)?;
        Ok(q["filters"].clone())
    }

    #[test]
    fn segments_become_their_filters() {
        // Top level: spliced, so the goal filter stays top-level.
        assert_eq!(
            expanded(json!([
                ["is", "segment", ["Google buyers"]],
                ["is", "event:page", ["/"]]
            ])),
            Ok(json!([
                ["is", "visit:source", ["Google"]],
                ["is", "event:goal", ["Signup"]],
                ["is", "event:page", ["/"]]
            ]))
        );
        // Several: any of them.
        assert_eq!(
            expanded(json!([["is", "segment", ["Mobile", "Google buyers"]]])),
            Ok(json!([[
                "or",
                [
                    ["is", "visit:device", ["Mobile"]],
                    [
                        "and",
                        [
                            ["is", "visit:source", ["Google"]],
                            ["is", "event:goal", ["Signup"]]
                        ]
                    ]
                ]
            ]]))
        );
        // Inside or / not: grouped.
        assert_eq!(
            expanded(json!([[
                "or",
                [
                    ["is", "segment", ["Google buyers"]],
                    ["is", "visit:country", ["DE"]]
                ]
            ]])),
            Ok(json!([[
                "or",
                [
                    [
                        "and",
                        [
                            ["is", "visit:source", ["Google"]],
                            ["is", "event:goal", ["Signup"]]
                        ]
                    ],
                    ["is", "visit:country", ["DE"]]
                ]
            ]]))
        );
        assert_eq!(
            expanded(json!([["not", ["is", "segment", ["Mobile"]]]])),
            Ok(json!([["not", ["is", "visit:device", ["Mobile"]]]]))
        );
        // No segment: unchanged.
        let plain = json!([
            ["is", "event:page", ["/"]],
            ["and", [["is", "visit:country", ["DE"]]]]
        ]);
        assert_eq!(expanded(plain.clone()), Ok(plain));
    }

    #[test]
    fn bad_segment_conditions_say_why() {
        let e = |f: Value| expanded(f).unwrap_err().to_string();
        assert!(e(json!([["is", "segment", ["Nope"]]])).contains("unknown segment \"Nope\""));
        assert!(e(json!([["is_not", "segment", ["Mobile"]]])).starts_with("filters[0]:"));
        assert!(e(json!([["is", "segment", []]])).contains("segment names"));
        assert!(e(json!([["is", "segment", [5]]])).contains("segment names"));
        assert!(e(json!([["and", [["is", "segment", ["x"]]]]])).starts_with("filters[0][1][0][2]:"));
        // Many names: refused before any is copied; repeats count once.
        let many: Vec<String> = (0..11).map(|i| format!("S{i}")).collect();
        assert!(e(json!([["is", "segment", many]])).contains("at most 10"));
        let repeated = vec!["Mobile"; 16_000];
        assert_eq!(
            expanded(json!([["is", "segment", repeated]])),
            Ok(json!([["is", "visit:device", ["Mobile"]]]))
        );
        let spread: Vec<Value> = (0..11)
            .map(|_| json!(["is", "segment", ["Mobile"]]))
            .collect();
        assert!(e(json!(spread)).contains("at most 10"));
    }

    #[test]
    fn segments_are_checked_when_saved() {
        let spec = |name: &str, filters: Value| {
            Segment::new(
                SegmentSpec {
                    name: name.into(),
                    filters,
                    shared: true,
                },
                "ana".into(),
            )
        };
        let ok = spec(" Mobile ", json!([["is", "visit:device", ["Mobile"]]])).unwrap();
        assert_eq!(ok.name, "Mobile");
        let stored: Segment = serde_json::from_value(serde_json::to_value(&ok).unwrap()).unwrap();
        assert_eq!(stored, ok);
        assert_eq!(
            spec("", json!([["is", "visit:device", ["x"]]])),
            Err(SegmentError::Name)
        );
        assert_eq!(spec("x", json!([])), Err(SegmentError::Filters));
        assert_eq!(spec("x", json!({"a": 1})), Err(SegmentError::Filters));
        assert_eq!(
            spec("x", json!([["and", [["is", "segment", ["y"]]]]])),
            Err(SegmentError::Nested)
        );
        assert!(
            spec("x", json!([["is", "event:page", ["/pricing", "segment"]]])).is_ok(),
            "a value called segment is a value"
        );
        assert!(matches!(
            spec("x", json!([["is", "visit:nope", ["y"]]])),
            Err(SegmentError::Invalid(e)) if e.reason.contains("unknown dimension")
        ));
        assert!(matches!(
            spec("x", json!([["matches", "event:page", ["("]]])),
            Err(SegmentError::Invalid(_))
        ));
        let huge: Vec<Value> = (0..2000)
            .map(|i| json!(["is", "event:page", [format!("/{i}")]]))
            .collect();
        assert_eq!(spec("x", json!(huge)), Err(SegmentError::Filters));
    }
}
