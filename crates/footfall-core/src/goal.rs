//! Goals: what a site counts as a conversion. A goal is a lens on stored events, not a
//! filter at ingest, so adding one applies to past data too.
//!
//! Three kinds, as Plausible has them (plus scroll depth):
//! - a page view of a path matching a pattern, where `*` stands for any run of characters
//!   but `/` and `**` for any run at all (`/blog/*` is a post, `/blog/**` anything below);
//! - a custom event by name, optionally only with given property values;
//! - a page (pattern) scrolled to at least N %.
//!
//! Everything here is validated on the way in; a goal that exists is well-formed.

use crate::money::Currency;
use serde::{Deserialize, Serialize};

/// Longest goal name, event name or property text accepted.
pub const MAX_NAME: usize = 120;
/// Longest page pattern accepted.
pub const MAX_PATTERN: usize = 2_000;
/// Most property conditions on one event goal.
pub const MAX_PROPS: usize = 10;
/// Most goals per site.
pub const MAX_GOALS: usize = 500;
/// Most saved funnels per site.
pub const MAX_FUNNELS: usize = 100;
/// Steps of a funnel.
pub const FUNNEL_STEPS: std::ops::RangeInclusive<usize> = 2..=8;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GoalError {
    #[error("goal name must be 1 to {MAX_NAME} characters, not . or ..")]
    Name,
    #[error("page pattern must start with / and be at most {MAX_PATTERN} characters of visible ASCII, without ? or # (write other characters percent-encoded, as browsers send paths: /caf%C3%A9)")]
    Pattern,
    #[error("a pattern may not have three * in a row")]
    Stars,
    #[error("event name must be 1 to {MAX_NAME} characters")]
    Event,
    #[error(
        "at most {MAX_PROPS} property conditions, each key and value 1 to {MAX_NAME} characters"
    )]
    Props,
    #[error("scroll depth must be 1 to 100 (percent)")]
    Depth,
    #[error("a goal is one of: page, event, or page with scroll_depth")]
    Kind,
    #[error("currency must be a three-letter ISO 4217 code such as EUR")]
    Currency,
    #[error("only custom-event goals have a currency (their events carry the revenue)")]
    CurrencyKind,
    #[error("funnel name must be 1 to {MAX_NAME} characters, not . or ..")]
    FunnelName,
    #[error("a funnel has 2 to 8 steps, each a goal's name")]
    FunnelSteps,
}

/// A saved funnel: an ordered list of the site's goals, by name (see
/// [`crate::query::funnel`]). Written and read as `{"name", "steps": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FunnelSpec", into = "FunnelSpec")]
pub struct Funnel {
    pub name: String,
    pub steps: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelSpec {
    pub name: String,
    pub steps: Vec<String>,
}

impl TryFrom<FunnelSpec> for Funnel {
    type Error = GoalError;
    fn try_from(spec: FunnelSpec) -> Result<Self, Self::Error> {
        let name = spec.name.trim().to_string();
        if !text_ok(&name) || name == "." || name == ".." {
            return Err(GoalError::FunnelName);
        }
        if !FUNNEL_STEPS.contains(&spec.steps.len()) || !spec.steps.iter().all(|s| text_ok(s)) {
            return Err(GoalError::FunnelSteps);
        }
        Ok(Funnel {
            name,
            steps: spec.steps,
        })
    }
}

impl From<Funnel> for FunnelSpec {
    fn from(f: Funnel) -> FunnelSpec {
        FunnelSpec {
            name: f.name,
            steps: f.steps,
        }
    }
}

/// A path pattern with `*` (within one segment) and `**` (across segments).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PathPattern(String);

/// One piece of a parsed pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    /// `*`: any run of characters but `/`.
    Segment,
    /// `**`: any run of characters.
    Any,
}

impl PathPattern {
    pub fn parse(s: &str) -> Result<PathPattern, GoalError> {
        // Stored paths are the URL's path, percent-encoded, without query or fragment: a
        // pattern with anything else could never match.
        let visible = |b: u8| b.is_ascii_graphic() && b != b'?' && b != b'#';
        if !s.starts_with('/') || s.len() > MAX_PATTERN || !s.bytes().all(visible) {
            return Err(GoalError::Pattern);
        }
        if s.contains("***") {
            return Err(GoalError::Stars);
        }
        Ok(PathPattern(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn pieces(&self) -> Vec<Piece<'_>> {
        let mut out = Vec::new();
        let mut rest = self.0.as_str();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("**") {
                out.push(Piece::Any);
                rest = r;
            } else if let Some(r) = rest.strip_prefix('*') {
                out.push(Piece::Segment);
                rest = r;
            } else {
                let end = rest.find('*').unwrap_or(rest.len());
                out.push(Piece::Text(&rest[..end]));
                rest = &rest[end..];
            }
        }
        out
    }

    /// Whether `path` matches the whole pattern. Linear in pattern × path at worst (a
    /// table over positions), whatever the stars: no backtracking blow-up on hostile
    /// patterns.
    pub fn matches(&self, path: &str) -> bool {
        let pieces = self.pieces();
        let bytes = path.as_bytes();
        // reach[i]: the pieces so far can end at byte i of the path.
        let mut reach = vec![false; bytes.len() + 1];
        reach[0] = true;
        for piece in pieces {
            let mut next = vec![false; bytes.len() + 1];
            match piece {
                Piece::Text(t) => {
                    for i in 0..=bytes.len() {
                        if reach[i] && bytes[i..].starts_with(t.as_bytes()) {
                            next[i + t.len()] = true;
                        }
                    }
                }
                Piece::Segment | Piece::Any => {
                    let mut on = false;
                    for i in 0..=bytes.len() {
                        on |= reach[i];
                        next[i] = on;
                        if piece == Piece::Segment && i < bytes.len() && bytes[i] == b'/' {
                            on = false;
                        }
                    }
                }
            }
            reach = next;
        }
        reach[bytes.len()]
    }

    /// The literal start of a pattern that is that start then `**` (`/blog/**`): a path
    /// matches it exactly when it starts so, which engines check faster than a regex.
    pub fn literal_prefix(&self) -> Option<&str> {
        let start = self.0.strip_suffix("**")?;
        (!start.contains('*')).then_some(start)
    }

    /// The pattern as a regular expression over a whole path (for SQL engines).
    pub fn regex(&self) -> String {
        // `(?s)`: `.` crosses newlines in every engine, as `**` does here.
        let mut out = String::from("(?s)^");
        for piece in self.pieces() {
            match piece {
                Piece::Text(t) => out.push_str(&regex::escape(t)),
                Piece::Segment => out.push_str("[^/]*"),
                Piece::Any => out.push_str(".*"),
            }
        }
        out.push('$');
        out
    }
}

impl TryFrom<String> for PathPattern {
    type Error = GoalError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        PathPattern::parse(&s)
    }
}

impl From<PathPattern> for String {
    fn from(p: PathPattern) -> String {
        p.0
    }
}

/// What a goal counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoalKind {
    /// Page views of a matching path.
    Page { page: PathPattern },
    /// Custom events of this name carrying every given property value (sorted by key).
    Event {
        event: String,
        props: Vec<(String, String)>,
    },
    /// A matching page scrolled to at least `depth` percent.
    Scroll { page: PathPattern, depth: u8 },
}

/// A named goal of a site. Written and read (API, CLI, storage) as its [`GoalSpec`], and
/// validated whenever read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "GoalSpec", into = "GoalSpec")]
pub struct Goal {
    pub name: String,
    pub kind: GoalKind,
    /// A revenue goal's currency (custom-event goals only): its conversions' revenue is
    /// reported in it.
    pub currency: Option<Currency>,
}

/// A goal as the API and CLI describe it: `{"name", "page"}`, `{"name", "event",
/// "props"?}` or `{"name", "page", "scroll_depth"}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoalSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub props: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scroll_depth: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

impl TryFrom<GoalSpec> for Goal {
    type Error = GoalError;
    fn try_from(spec: GoalSpec) -> Result<Self, Self::Error> {
        Goal::from_spec(spec)
    }
}

impl From<Goal> for GoalSpec {
    fn from(g: Goal) -> GoalSpec {
        let mut spec = GoalSpec {
            name: g.name,
            currency: g.currency.map(String::from),
            ..GoalSpec::default()
        };
        match g.kind {
            GoalKind::Page { page } => spec.page = Some(page.into()),
            GoalKind::Event { event, props } => {
                spec.event = Some(event);
                spec.props = props.into_iter().collect();
            }
            GoalKind::Scroll { page, depth } => {
                spec.page = Some(page.into());
                spec.scroll_depth = Some(u32::from(depth));
            }
        }
        spec
    }
}

fn text_ok(s: &str) -> bool {
    let n = s.chars().count();
    (1..=MAX_NAME).contains(&n) && !s.chars().any(char::is_control)
}

impl Goal {
    /// A goal from its description, or why it is not one.
    pub fn from_spec(spec: GoalSpec) -> Result<Goal, GoalError> {
        let name = spec.name.trim().to_string();
        // "." and ".." could not be named in a URL path (clients resolve them away).
        if !text_ok(&name) || name == "." || name == ".." {
            return Err(GoalError::Name);
        }
        let kind = match (spec.page, spec.event, spec.scroll_depth) {
            (Some(page), None, None) => {
                if !spec.props.is_empty() {
                    return Err(GoalError::Kind);
                }
                GoalKind::Page {
                    page: PathPattern::parse(&page)?,
                }
            }
            (Some(page), None, Some(depth)) => {
                if !spec.props.is_empty() {
                    return Err(GoalError::Kind);
                }
                let depth = u8::try_from(depth)
                    .ok()
                    .filter(|d| (1..=100).contains(d))
                    .ok_or(GoalError::Depth)?;
                GoalKind::Scroll {
                    page: PathPattern::parse(&page)?,
                    depth,
                }
            }
            (None, Some(event), None) => {
                if !text_ok(&event) {
                    return Err(GoalError::Event);
                }
                if spec.props.len() > MAX_PROPS
                    || spec.props.iter().any(|(k, v)| !text_ok(k) || !text_ok(v))
                {
                    return Err(GoalError::Props);
                }
                GoalKind::Event {
                    event,
                    props: spec.props.into_iter().collect(),
                }
            }
            _ => return Err(GoalError::Kind),
        };
        let currency = match spec.currency {
            None => None,
            Some(_) if !matches!(kind, GoalKind::Event { .. }) => {
                return Err(GoalError::CurrencyKind)
            }
            Some(c) => Some(Currency::parse(&c).map_err(|_| GoalError::Currency)?),
        };
        Ok(Goal {
            name,
            kind,
            currency,
        })
    }

    /// Whether an event counts as a conversion of this goal: `name` and `pathname` are
    /// the event's, `props` its properties, `scroll` its scroll depth (engagement events).
    pub fn converts(
        &self,
        name: &str,
        pathname: &str,
        props: &[(String, String)],
        scroll: Option<u8>,
    ) -> bool {
        match &self.kind {
            GoalKind::Page { page } => name == "pageview" && page.matches(pathname),
            GoalKind::Event { event, props: want } => {
                name == event
                    && want.iter().all(|(k, v)| {
                        // A repeated key counts by its first value, as breakdowns read it.
                        props.iter().find(|(pk, _)| pk == k).map(|(_, pv)| pv) == Some(v)
                    })
            }
            GoalKind::Scroll { page, depth } => {
                scroll.is_some_and(|s| s >= *depth) && page.matches(pathname)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> PathPattern {
        PathPattern::parse(s).unwrap()
    }

    #[test]
    fn stars_match_as_documented() {
        assert!(p("/blog/*").matches("/blog/post"));
        assert!(!p("/blog/*").matches("/blog/post/comments"));
        assert!(p("/blog/**").matches("/blog/post/comments"));
        assert!(p("/blog/**").matches("/blog/"));
        assert!(!p("/blog/**").matches("/blog"));
        assert!(p("/*/pricing").matches("/de/pricing"));
        assert!(!p("/*/pricing").matches("/de/at/pricing"));
        assert!(p("/").matches("/"));
        assert!(!p("/").matches("/x"));
        assert!(p("/docs*").matches("/docs-old"));
        assert!(p("/a.b").matches("/a.b"));
        assert_eq!(p("/blog/**").literal_prefix(), Some("/blog/"));
        assert_eq!(p("/blog**").literal_prefix(), Some("/blog"));
        assert_eq!(p("/**").literal_prefix(), Some("/"));
        assert_eq!(p("/*/x/**").literal_prefix(), None);
        assert_eq!(p("/blog/*").literal_prefix(), None);
        assert_eq!(p("/blog").literal_prefix(), None);
        assert!(!p("/a.b").matches("/axb"), "dots are literal");
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(PathPattern::parse("blog"), Err(GoalError::Pattern));
        assert_eq!(PathPattern::parse("/a***"), Err(GoalError::Stars));
        assert_eq!(PathPattern::parse("/a\n"), Err(GoalError::Pattern));
        assert_eq!(PathPattern::parse("/café"), Err(GoalError::Pattern));
        assert_eq!(PathPattern::parse("/a b"), Err(GoalError::Pattern));
        assert_eq!(PathPattern::parse("/a?x=1"), Err(GoalError::Pattern));
        assert!(PathPattern::parse("/caf%C3%A9/*").is_ok());
        assert!(PathPattern::parse(&format!("/{}", "a".repeat(MAX_PATTERN))).is_err());
    }

    #[test]
    fn specs_become_goals_or_clear_errors() {
        let spec = |json: &str| Goal::from_spec(serde_json::from_str(json).unwrap());
        assert_eq!(
            spec(r#"{"name": "Signup", "event": "Signup"}"#)
                .unwrap()
                .kind,
            GoalKind::Event {
                event: "Signup".into(),
                props: vec![]
            }
        );
        assert!(matches!(
            spec(r#"{"name": "Blog", "page": "/blog/**"}"#)
                .unwrap()
                .kind,
            GoalKind::Page { .. }
        ));
        assert!(matches!(
            spec(r#"{"name": "Read", "page": "/blog/*", "scroll_depth": 75}"#)
                .unwrap()
                .kind,
            GoalKind::Scroll { depth: 75, .. }
        ));
        assert_eq!(spec(r#"{"name": "", "event": "x"}"#), Err(GoalError::Name));
        assert_eq!(
            spec(r#"{"name": "x", "event": "x", "page": "/"}"#),
            Err(GoalError::Kind)
        );
        assert_eq!(spec(r#"{"name": "x"}"#), Err(GoalError::Kind));
        assert_eq!(
            spec(r#"{"name": "x", "page": "/", "scroll_depth": 0}"#),
            Err(GoalError::Depth)
        );
        assert_eq!(
            spec(r#"{"name": "x", "page": "/", "scroll_depth": 101}"#),
            Err(GoalError::Depth)
        );
        assert_eq!(
            spec(r#"{"name": "x", "page": "/", "props": {"a": "b"}}"#),
            Err(GoalError::Kind)
        );
        assert!(serde_json::from_str::<GoalSpec>(r#"{"name": "x", "evil": 1}"#).is_err());
        let paid = spec(r#"{"name": "Buy", "event": "Purchase", "currency": "eur"}"#).unwrap();
        assert_eq!(paid.currency.map(|c| c.to_string()), Some("EUR".into()));
        assert_eq!(
            serde_json::to_value(&paid).unwrap(),
            serde_json::json!({"name": "Buy", "event": "Purchase", "currency": "EUR"})
        );
        assert_eq!(
            spec(r#"{"name": "x", "event": "x", "currency": "EURO"}"#),
            Err(GoalError::Currency)
        );
        assert_eq!(
            spec(r#"{"name": "x", "page": "/", "currency": "EUR"}"#),
            Err(GoalError::CurrencyKind)
        );
    }

    #[test]
    fn goals_read_back_as_written() {
        for json in [
            r#"{"name":"Signup","event":"Signup","props":{"a":"1","plan":"pro"}}"#,
            r#"{"name":"Blog","page":"/blog/**"}"#,
            r#"{"name":"Read","page":"/post/*","scroll_depth":75}"#,
        ] {
            let g: Goal = serde_json::from_str(json).unwrap();
            assert_eq!(serde_json::to_string(&g).unwrap(), json);
        }
        // Reading validates: a stored goal that is no goal is an error, not a goal.
        assert!(serde_json::from_str::<Goal>(r#"{"name":"x","page":"no-slash"}"#).is_err());
    }

    #[test]
    fn event_goals_check_properties() {
        let g = Goal::from_spec(GoalSpec {
            name: "Pro signup".into(),
            event: Some("Signup".into()),
            props: [("plan".to_string(), "pro".to_string())].into(),
            ..Default::default()
        })
        .unwrap();
        let props = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert!(g.converts("Signup", "/", &props(&[("plan", "pro")]), None));
        assert!(!g.converts("Signup", "/", &props(&[("plan", "free")]), None));
        assert!(!g.converts("Signup", "/", &props(&[]), None));
        assert!(!g.converts(
            "Signup",
            "/",
            &props(&[("plan", "free"), ("plan", "pro")]),
            None
        ));
        assert!(!g.converts("pageview", "/", &props(&[("plan", "pro")]), None));
    }

    /// A path made of the characters that matter to patterns, and some that regexes
    /// treat specially.
    fn path() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("/"),
                Just("a"),
                Just("b"),
                Just("."),
                Just("%"),
                Just("+"),
                Just("("),
                Just("\\"),
                Just("é"),
                Just("\n")
            ],
            0..12,
        )
        .prop_map(|v| format!("/{}", v.concat()))
    }

    fn pattern() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("/"),
                Just("a"),
                Just("b"),
                Just("*"),
                Just("**"),
                Just("."),
                Just("%"),
                Just("+"),
                Just("("),
                Just("\\")
            ],
            0..8,
        )
        .prop_map(|v| format!("/{}", v.concat()))
        .prop_filter("no ***", |s| !s.contains("***"))
    }

    /// The documented rule as a regex, written here without the module's tokenizer:
    /// `**` any run, `*` any run without `/`, everything else literal.
    fn reference(pat: &str) -> regex::Regex {
        let mut re = String::from("(?s)^");
        let chars: Vec<char> = pat.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '*' && chars.get(i + 1) == Some(&'*') {
                re.push_str(".*");
                i += 2;
            } else if chars[i] == '*' {
                re.push_str("[^/]*");
                i += 1;
            } else {
                re.push_str(&regex::escape(&chars[i].to_string()));
                i += 1;
            }
        }
        re.push('$');
        regex::Regex::new(&re).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        /// The matcher, and the regex the SQL engines get, both agree with the rule.
        #[test]
        fn matcher_and_regex_follow_the_rule(pat in pattern(), path in path()) {
            let p = PathPattern::parse(&pat).unwrap();
            let want = reference(&pat).is_match(&path);
            prop_assert_eq!(p.matches(&path), want, "{} on {:?}", pat, path);
            let re = regex::Regex::new(&p.regex()).unwrap();
            prop_assert_eq!(re.is_match(&path), want, "regex of {} on {:?}", pat, path);
            if let Some(prefix) = p.literal_prefix() {
                prop_assert_eq!(path.starts_with(prefix), want, "prefix of {} on {:?}", pat, path);
            }
        }
    }

    #[test]
    fn hostile_patterns_stay_fast() {
        let pat = format!("/{}", "*a".repeat(900));
        let p = PathPattern::parse(&pat).unwrap();
        let path = format!("/{}", "a".repeat(1800));
        // Quadratic at worst: this is 2 M steps, not 2^900.
        assert!(!p.matches(&format!("{path}b")));
    }
}

#[cfg(test)]
mod funnel_tests {
    use super::*;

    #[test]
    fn funnels_are_validated_on_the_way_in() {
        let f = |v: &str| serde_json::from_str::<Funnel>(v);
        let ok = f(r#"{"name": " Checkout ", "steps": ["Visit pricing", "Signup"]}"#).unwrap();
        assert_eq!(ok.name, "Checkout");
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"name":"Checkout","steps":["Visit pricing","Signup"]}"#
        );
        for bad in [
            r#"{"name": "x", "steps": ["a"]}"#,
            r#"{"name": "x", "steps": ["a", "b", "c", "d", "e", "f", "g", "h", "i"]}"#,
            r#"{"name": "x", "steps": ["a", ""]}"#,
            r#"{"name": "", "steps": ["a", "b"]}"#,
            r#"{"name": "..", "steps": ["a", "b"]}"#,
            r#"{"name": "x", "steps": ["a", "b"], "extra": 1}"#,
            r#"{"name": "x", "steps": "a"}"#,
        ] {
            assert!(f(bad).is_err(), "{bad}");
        }
    }
}
